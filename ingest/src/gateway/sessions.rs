//! MQTT sessions by client id: one connection per client at a time (a new CONNECT takes the
//! session over, as the spec says), and what the gateway knows that makes a resend provably a
//! second copy.
//!
//! A QoS 1 client resends, with DUP, every publish it has no PUBACK for when it reconnects.
//! If Kafka had confirmed that publish but its PUBACK never reached the device (the
//! connection broke in between), the gateway remembers the packet id and a hash of topic and
//! payload in the session; the resend with the same id and content is acknowledged without
//! being produced again. Nothing else is ever skipped: a message whose content merely looks
//! like another's is produced. A gateway that crashes forgets its sessions, so a resend after
//! a crash is produced again (a duplicate in Kafka, never a loss).
//!
//! QoS 2: packet ids whose PUBREC was sent are kept until PUBREL, so a retransmitted
//! PUBLISH before PUBREL is answered with PUBREC and not produced twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

/// The part of a session that outlives a connection.
#[derive(Debug, Default)]
pub struct SessionState {
    /// QoS 1 publishes Kafka confirmed whose PUBACK did not reach the device: id → content.
    pub unacked: HashMap<u16, u64>,
    /// QoS 2 publishes produced and PUBREC'd, awaiting PUBREL.
    pub qos2: HashSet<u16>,
}

impl SessionState {
    fn is_empty(&self) -> bool {
        self.unacked.is_empty() && self.qos2.is_empty()
    }
}

#[derive(Default)]
struct Slot {
    state: Arc<tokio::sync::Mutex<SessionState>>,
    /// The connection holding the session: cancelled to take it over.
    holder: Mutex<Option<(CancellationToken, Option<String>)>>,
}

/// Every client's session.
#[derive(Default)]
pub struct Sessions {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Numbers the sessions of clients that sent an empty client id (each its own).
    anonymous: std::sync::atomic::AtomicU64,
}

/// How long a new connection waits for the one it took over to finish.
const TAKEOVER_WITHIN: Duration = Duration::from_secs(35);

/// A connection's hold on its session; dropping it ends the hold.
pub struct Session {
    pub state: OwnedMutexGuard<SessionState>,
    /// Cancelled when another connection takes the session over or the device is retired.
    pub kicked: CancellationToken,
    /// Whether state from an earlier connection was there.
    pub present: bool,
    slot: Arc<Slot>,
    client_id: String,
    sessions: Arc<Sessions>,
}

impl Sessions {
    /// Takes `client_id`'s session for a new connection of `device`, closing the connection
    /// that held it and waiting (bounded) until that one finished. `clean`: start afresh.
    pub async fn open(
        self: &Arc<Self>,
        client_id: &str,
        device: Option<&str>,
        clean: bool,
    ) -> Option<Session> {
        // An empty id (allowed with a clean session) names no session to share: each such
        // connection gets one of its own, under a name no client can send (a NUL byte).
        let anonymous;
        let client_id = match client_id {
            "" => {
                let n = self
                    .anonymous
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                anonymous = format!("\0anonymous-{n}");
                anonymous.as_str()
            }
            id => id,
        };
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(client_id.to_string()).or_default().clone()
        };
        let kicked = CancellationToken::new();
        let previous = {
            let mut holder = slot.holder.lock().unwrap_or_else(|p| p.into_inner());
            holder.replace((kicked.clone(), device.map(str::to_string)))
        };
        if let Some((old, _)) = previous {
            old.cancel();
        }
        let state = tokio::time::timeout(TAKEOVER_WITHIN, slot.state.clone().lock_owned())
            .await
            .ok()?;
        let mut session = Session {
            // A persistent session (clean session 0) is always reported present, even after
            // a gateway restart: its state on this side is only resend proofs and QoS 2 ids,
            // and a client told "no session" may drop its unacknowledged publishes (rumqttc
            // does) instead of resending them, which turns a restart into loss at the device.
            present: !clean,
            state,
            kicked,
            slot,
            client_id: client_id.to_string(),
            sessions: self.clone(),
        };
        if clean {
            *session.state = SessionState::default();
            session.present = false;
        }
        Some(session)
    }

    /// Closes every connection of `device` (it was retired).
    pub fn kick_device(&self, device: &str) -> usize {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let mut kicked = 0;
        for slot in slots.values() {
            let holder = slot.holder.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((token, Some(d))) = &*holder {
                if d == device {
                    token.cancel();
                    kicked += 1;
                }
            }
        }
        kicked
    }

    /// Sessions remembered (connected clients and those with state left over).
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let mut slots = self
            .sessions
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut holder = self.slot.holder.lock().unwrap_or_else(|p| p.into_inner());
        if holder.as_ref().is_some_and(|(t, _)| t == &self.kicked) {
            *holder = None;
        }
        // Forget the client once nothing is left to remember and nobody waits for the slot
        // (the map and this hold are its only owners).
        if self.state.is_empty() && holder.is_none() && Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_connection_takes_the_session_over_and_sees_what_was_left() {
        let sessions = Arc::new(Sessions::default());
        let mut first = sessions.open("c1", Some("d1"), false).await.unwrap();
        assert!(
            first.present,
            "a persistent session is present even when new"
        );
        first.state.unacked.insert(7, 42);
        let kicked = first.kicked.clone();
        let s = sessions.clone();
        let second = tokio::spawn(async move { s.open("c1", Some("d1"), false).await.unwrap() });
        kicked.cancelled().await;
        drop(first);
        let second = second.await.unwrap();
        assert!(second.present);
        assert_eq!(second.state.unacked.get(&7), Some(&42));
        drop(second);
        assert_eq!(sessions.len(), 1, "left-over state is kept");
        let clean = sessions.open("c1", Some("d1"), true).await.unwrap();
        assert!(!clean.present && clean.state.unacked.is_empty());
        drop(clean);
        assert_eq!(sessions.len(), 0, "nothing left: forgotten");
    }

    #[tokio::test]
    async fn retiring_a_device_kicks_its_connections_only() {
        let sessions = Arc::new(Sessions::default());
        let a = sessions.open("c1", Some("d1"), true).await.unwrap();
        let b = sessions.open("c2", Some("d2"), true).await.unwrap();
        assert_eq!(sessions.kick_device("d1"), 1);
        assert!(a.kicked.is_cancelled() && !b.kicked.is_cancelled());
    }
}
