//! Device identity: who may connect to the gateway as which device.
//!
//! Credentials live in a compacted Kafka topic (`gateway.devices_topic`) keyed by device id,
//! so every gateway replica knows every device and nothing ties the registry to a machine.
//! A value is `{"salt": hex, "hash": hex}` (SHA-256 of salt + secret) or `{"retired": true}`;
//! a tombstone forgets the device. The secret itself is made here from 32 random bytes, shown
//! once to whoever provisioned it, and never stored: a machine-made secret of that length
//! needs no slow password hash, so logging in costs one SHA-256 even in a reconnect storm.
//!
//! [`Registry::tail`] reads the topic from the beginning in a thread of its own and keeps
//! reading; the gateway serves logins only once it has read to the end as of its start.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use sluice_common::Event;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// One device's entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Credential {
    Active { salt: String, hash: String },
    Retired { retired: bool },
}

/// What a login attempt finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    WrongSecret,
    Unknown,
    Retired,
}

/// Called with a device id when it is retired (the gateway closes its connections).
pub type OnRetire = Box<dyn Fn(&str) + Send + Sync>;

#[derive(Default)]
pub struct Registry {
    entries: RwLock<HashMap<String, Credential>>,
    caught_up: AtomicBool,
    stop: AtomicBool,
}

fn hash(salt: &[u8], secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Compares without an early exit, so timing does not tell how much of a hash matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Registry {
    pub fn verify(&self, device: &str, secret: &str) -> Verdict {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        match entries.get(device) {
            None => Verdict::Unknown,
            Some(Credential::Retired { .. }) => Verdict::Retired,
            Some(Credential::Active { salt, hash: want }) => {
                let salt = hex::decode(salt).unwrap_or_default();
                match same(hash(&salt, secret).as_bytes(), want.as_bytes()) {
                    true => Verdict::Accepted,
                    false => Verdict::WrongSecret,
                }
            }
        }
    }

    pub fn is_retired(&self, device: &str) -> bool {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        matches!(entries.get(device), Some(Credential::Retired { .. }))
    }

    /// Whether the registry has been read to its end as of the gateway's start.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one record of the topic (`None`: a tombstone). A value that does not parse
    /// is skipped (it is not ours to guess at) and logged.
    pub fn apply(&self, device: &str, value: Option<&[u8]>, on_retire: &OnRetire) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let Some(value) = value else {
            entries.remove(device);
            return;
        };
        match serde_json::from_slice::<Credential>(value) {
            Ok(c) => {
                let retired = matches!(c, Credential::Retired { .. });
                entries.insert(device.to_string(), c);
                drop(entries);
                if retired {
                    on_retire(device);
                }
            }
            Err(e) => crate::events::RegistryRecordSkipped {
                device: &crate::gateway::printable(device),
                error: &e,
            }
            .emit(),
        }
    }

    /// Reads `topic` (partition 0) from the beginning in a thread until the registry is
    /// dropped by every holder; returns once it read to the end as of now (or `within`).
    pub fn tail(
        self: &Arc<Self>,
        kafka: &ClientConfig,
        topic: &str,
        on_retire: OnRetire,
        within: Duration,
    ) -> Result<(), String> {
        let mut c = kafka.clone();
        c.set("group.id", "sluice-device-registry")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let consumer: BaseConsumer = c.create().map_err(|e| e.to_string())?;
        let (_, high) = consumer
            .fetch_watermarks(topic, 0, within)
            .map_err(|e| format!("device registry {topic}: {e}"))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Beginning)
            .map_err(|e| e.to_string())?;
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let registry = Arc::downgrade(self);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("device-registry".into())
            .spawn(move || {
                let mut ready = Some(ready_tx).filter(|_| high > 0);
                if ready.is_none() {
                    if let Some(r) = registry.upgrade() {
                        r.caught_up.store(true, Ordering::Release);
                    }
                }
                while let Some(r) = registry.upgrade() {
                    if r.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    drop(r);
                    let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
                        continue;
                    };
                    let Some(r) = registry.upgrade() else { return };
                    let Ok(m) = msg else { continue };
                    if let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
                        r.apply(key, m.payload(), &on_retire);
                    }
                    if m.offset() + 1 >= high && ready.is_some() {
                        r.caught_up.store(true, Ordering::Release);
                        let _ = ready.take().map(|t| t.send(()));
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        if high > 0 {
            ready_rx.recv_timeout(within).map_err(|_| {
                format!("device registry {topic}: not read to its end within {within:?}")
            })?;
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes the registry: what `sluice devices` and the API do.
pub struct RegistryWriter {
    producer: FutureProducer,
    topic: String,
}

/// A newly provisioned device's login, shown once.
#[derive(Debug, serde::Serialize)]
pub struct Provisioned {
    pub device: String,
    pub username: String,
    pub secret: String,
}

impl RegistryWriter {
    pub fn new(kafka: &ClientConfig, topic: &str) -> Result<Self, String> {
        let mut c = kafka.clone();
        c.set("enable.idempotence", "true").set("acks", "all");
        Ok(Self {
            producer: c.create().map_err(|e| e.to_string())?,
            topic: topic.to_string(),
        })
    }

    async fn put(&self, device: &str, value: Option<Vec<u8>>) -> Result<(), String> {
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic).key(device);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| format!("device registry {}: {e}", self.topic))
    }

    /// Makes a new secret for `device` (replacing any earlier one; a retired device becomes
    /// active again) and returns it: it is not stored anywhere.
    pub async fn provision(&self, device: &str) -> Result<Provisioned, String> {
        let mut salt = [0u8; 16];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
        getrandom::fill(&mut secret).map_err(|e| e.to_string())?;
        let secret = hex::encode(secret);
        let credential = Credential::Active {
            salt: hex::encode(salt),
            hash: hash(&salt, &secret),
        };
        let value = serde_json::to_vec(&credential).map_err(|e| e.to_string())?;
        self.put(device, Some(value)).await?;
        Ok(Provisioned {
            device: device.to_string(),
            username: device.to_string(),
            secret,
        })
    }

    /// The device is refused from now on, and its connections are closed.
    pub async fn retire(&self, device: &str) -> Result<(), String> {
        let value = serde_json::to_vec(&Credential::Retired { retired: true })
            .map_err(|e| e.to_string())?;
        self.put(device, Some(value)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_provisioned_secret_logs_in_and_retirement_refuses() {
        let registry = Registry::default();
        let retired = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = retired.clone();
        let on_retire: OnRetire = Box::new(move |d| seen.lock().unwrap().push(d.to_string()));
        let salt = [3u8; 16];
        let active = Credential::Active {
            salt: hex::encode(salt),
            hash: hash(&salt, "s3cret"),
        };
        registry.apply(
            "dev-1",
            Some(&serde_json::to_vec(&active).unwrap()),
            &on_retire,
        );
        assert_eq!(registry.verify("dev-1", "s3cret"), Verdict::Accepted);
        assert_eq!(registry.verify("dev-1", "s3cres"), Verdict::WrongSecret);
        assert_eq!(registry.verify("dev-2", "s3cret"), Verdict::Unknown);
        registry.apply("dev-1", Some(br#"{"retired":true}"#), &on_retire);
        assert_eq!(registry.verify("dev-1", "s3cret"), Verdict::Retired);
        assert_eq!(*retired.lock().unwrap(), vec!["dev-1".to_string()]);
        registry.apply("dev-1", Some(b"not json"), &on_retire);
        assert_eq!(
            registry.verify("dev-1", "s3cret"),
            Verdict::Retired,
            "garbage skipped"
        );
        registry.apply("dev-1", None, &on_retire);
        assert_eq!(registry.verify("dev-1", "s3cret"), Verdict::Unknown);
    }
}
