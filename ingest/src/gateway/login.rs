//! Who a CONNECT is, and what it may publish.
//!
//! - With `gateway.device_auth`, a device logs in as itself: username = device id, password =
//!   the secret `sluice devices provision` made. Its records are keyed by that id, and a
//!   publish whose topic names another device is refused.
//! - `[[embedded.mqtt_users]]` are shared logins (a bridge, a trusted back end): the device
//!   id comes from the topic.
//! - With neither, the gateway is open (it then listens on loopback only: `config check`).

use super::registry::{Registry, Verdict};
use rumqttc::mqttbytes::v4::Connect;
use rumqttc::ConnectReturnCode;
use sluice_core::record::device_id_from_topic;
use std::collections::HashMap;
use std::sync::Arc;

/// Who a connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A device logged in with its own credentials.
    Device(String),
    /// A shared login, or an open gateway: the topic says which device.
    Topic,
}

/// Why a publish is not telemetry (it is dead-lettered and acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoDeviceId(usize),
    OtherDevice { topic_device: String },
    BadTopic,
}

impl Refusal {
    pub fn reason(&self, identity: &Identity) -> String {
        match (self, identity) {
            (Refusal::NoDeviceId(level), _) => format!("no device id at topic level {level}"),
            (Refusal::OtherDevice { topic_device }, Identity::Device(me)) => format!(
                "unauthorized: the topic names device {:?} but the connection logged in as {:?}",
                super::printable(topic_device),
                super::printable(me)
            ),
            (Refusal::OtherDevice { .. }, Identity::Topic) => "unauthorized".into(),
            (Refusal::BadTopic, _) => {
                "invalid topic: a PUBLISH topic must be non-empty without + or # or NUL".into()
            }
        }
    }
}

pub struct Login {
    pub device_auth: bool,
    pub registry: Arc<Registry>,
    /// Shared logins: user → password.
    pub users: HashMap<String, String>,
    pub device_id_level: usize,
}

impl Login {
    /// Whether anyone reaching the gateway may connect.
    pub fn open(&self) -> bool {
        !self.device_auth && self.users.is_empty()
    }

    /// The identity of a CONNECT, or the CONNACK code refusing it.
    pub fn check(&self, connect: &Connect) -> Result<Identity, ConnectReturnCode> {
        if self.open() {
            return Ok(Identity::Topic);
        }
        let Some(login) = &connect.login else {
            return Err(ConnectReturnCode::NotAuthorized);
        };
        if let Some(password) = self.users.get(&login.username) {
            return match same(password.as_bytes(), login.password.as_bytes()) {
                true => Ok(Identity::Topic),
                false => Err(ConnectReturnCode::BadUserNamePassword),
            };
        }
        if !self.device_auth {
            return Err(ConnectReturnCode::BadUserNamePassword);
        }
        match self.registry.verify(&login.username, &login.password) {
            Verdict::Accepted => Ok(Identity::Device(login.username.clone())),
            Verdict::Retired => Err(ConnectReturnCode::NotAuthorized),
            Verdict::WrongSecret | Verdict::Unknown => Err(ConnectReturnCode::BadUserNamePassword),
        }
    }

    /// The record key for a publish on `topic` by `identity`, or why it is refused.
    pub fn key_for<'a>(&self, identity: &'a Identity, topic: &'a str) -> Result<&'a str, Refusal> {
        if topic.is_empty() || topic.contains(['+', '#', '\0']) {
            return Err(Refusal::BadTopic);
        }
        let in_topic = device_id_from_topic(topic, self.device_id_level);
        match (identity, in_topic) {
            (Identity::Device(me), Some(d)) if d == me => Ok(me),
            (Identity::Device(_), Some(d)) => Err(Refusal::OtherDevice {
                topic_device: d.to_string(),
            }),
            (_, None) => Err(Refusal::NoDeviceId(self.device_id_level)),
            (Identity::Topic, Some(d)) => Ok(d),
        }
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(device_auth: bool, users: &[(&str, &str)]) -> Login {
        Login {
            device_auth,
            registry: Arc::new(Registry::default()),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            device_id_level: 2,
        }
    }

    fn connect(user: Option<(&str, &str)>) -> Connect {
        let mut c = Connect::new("c1");
        if let Some((u, p)) = user {
            c.set_login(u, p);
        }
        c
    }

    #[test]
    fn an_open_gateway_keys_by_topic_and_refuses_bad_topics() {
        let l = login(false, &[]);
        let id = l.check(&connect(None)).unwrap();
        assert_eq!(l.key_for(&id, "devices/d1/telemetry"), Ok("d1"));
        assert_eq!(l.key_for(&id, "devices"), Err(Refusal::NoDeviceId(2)));
        assert_eq!(l.key_for(&id, "devices/+/x"), Err(Refusal::BadTopic));
        assert_eq!(l.key_for(&id, ""), Err(Refusal::BadTopic));
    }

    #[test]
    fn shared_users_need_their_password() {
        let l = login(false, &[("bridge", "pw")]);
        assert_eq!(
            l.check(&connect(None)),
            Err(ConnectReturnCode::NotAuthorized)
        );
        assert_eq!(
            l.check(&connect(Some(("bridge", "px")))),
            Err(ConnectReturnCode::BadUserNamePassword)
        );
        assert_eq!(
            l.check(&connect(Some(("bridge", "pw")))),
            Ok(Identity::Topic)
        );
    }

    #[test]
    fn a_device_publishes_only_under_its_own_id() {
        let l = login(true, &[]);
        let me = Identity::Device("d1".into());
        assert_eq!(l.key_for(&me, "devices/d1/telemetry"), Ok("d1"));
        let refused = l.key_for(&me, "devices/d2/telemetry").unwrap_err();
        assert!(
            refused.reason(&me).contains("\"d2\""),
            "{}",
            refused.reason(&me)
        );
        assert_eq!(
            l.check(&connect(Some(("d1", "guess")))),
            Err(ConnectReturnCode::BadUserNamePassword),
            "an unknown device is refused"
        );
    }
}
