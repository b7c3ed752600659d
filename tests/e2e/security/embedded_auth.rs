//! The embedded MQTT broker with users and TLS: ingest logs in as one of the users over TLS;
//! a client without credentials, or with a wrong password, is refused; the one with them is
//! served. Off loopback, the embedded broker is refused without users.

use super::certs::Certs;
use super::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use sluice_config::security::MqttTlsConfig;
use std::sync::Arc;

/// Connects to `broker` over TLS (trusting `ca`), publishes `count` readings of device
/// `device`, and returns how many the broker acknowledged within 20 s (0 when refused).
fn publish_tls(
    broker: &str,
    ca: &Path,
    login: Option<(&str, &str)>,
    device: &str,
    count: u64,
) -> u64 {
    let tls = MqttTlsConfig {
        ca_file: Some(ca.to_path_buf()),
        server_name: Some("localhost".into()),
        ..Default::default()
    };
    let client_config = sluice_ingest::tls::client_config(&tls).unwrap();
    let (host, port) = sluice_common::addr::host_port(broker).unwrap();
    let mut options = MqttOptions::new(format!("pub-{}", free_port()), host, port);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(client_config),
    )));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let device = device.to_string();
        tokio::spawn(async move {
            for seq in 0..count {
                let payload = format!(r#"{{"device":"{device}","seq":{seq}}}"#);
                let topic = format!("devices/{device}/telemetry");
                if client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        let mut acked = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while acked < count {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(_)) => {}
                // Refused: a CONNACK with a refusal code, then the connection closes.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        acked
    })
}

#[test]
fn the_embedded_broker_serves_only_its_users_over_tls() {
    let setup = Setup::new();
    let certs = Certs::make(&setup.dir.path().join("certs"));
    let http = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        r#"
[[embedded.mqtt_users]]
username = "ingest"
password_env = "TEST_INGEST_PASSWORD"

[[embedded.mqtt_users]]
username = "device"
password_file = "device.password"

[embedded.mqtt_tls]
cert_file = {cert}
key_file = {key}

[mqtt]
username = "ingest"
[mqtt.tls]
ca_file = {ca}
server_name = "localhost"

{ALL_TO_PARQUET}"#,
        cert = toml_path(&certs.server_cert),
        key = toml_path(&certs.server_key),
        ca = toml_path(&certs.ca),
    );
    std::fs::write(setup.dir.path().join("device.password"), "device-pw\n").unwrap();
    let config = setup.write_config("sluice.toml", &http, &extra);
    let (code, out) = sluice_cli(
        &["config", "check", config.to_str().unwrap()],
        setup.dir.path(),
    );
    assert_ne!(code, 0, "an unset password_env is a config error: {out}");
    assert!(out.contains("TEST_INGEST_PASSWORD is unset"), "{out}");

    let mut sluice = Logged::start(&config, &[], &[("TEST_INGEST_PASSWORD", "ingest-pw")]);
    sluice.wait_ready(&http);
    assert_eq!(
        publish_tls(&setup.mqtt, &certs.ca, None, "anonymous", 5),
        0,
        "no credentials: refused"
    );
    assert_eq!(
        publish_tls(
            &setup.mqtt,
            &certs.ca,
            Some(("device", "wrong")),
            "guesser",
            5
        ),
        0,
        "wrong password: refused"
    );
    assert_eq!(
        publish_tls(
            &setup.mqtt,
            &certs.ca,
            Some(("device", "device-pw")),
            "dev-00000",
            50
        ),
        50
    );
    assert_all_rows(&setup.parquet_root(), "all", 1, 50);
    let rows = device_seqs(&setup.parquet_root(), "all");
    assert!(
        rows.keys().all(|(d, _)| d == "dev-00000"),
        "only the authenticated device's rows"
    );
    let log = sluice.stop();
    assert!(
        !log.contains("ingest-pw") && !log.contains("device-pw"),
        "no password in the log"
    );
}

#[test]
fn an_embedded_broker_off_loopback_needs_users() {
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open.toml");
    std::fs::write(&open, "[embedded]\nmqtt_listen = \"0.0.0.0:1883\"\n").unwrap();
    let (code, out) = sluice_cli(&["config", "check", open.to_str().unwrap()], dir.path());
    assert_ne!(code, 0);
    assert!(
        out.contains("embedded.mqtt_listen") && out.contains("[[embedded.mqtt_users]]"),
        "{out}"
    );

    let closed = dir.path().join("closed.toml");
    std::fs::write(
        &closed,
        "[embedded]\nmqtt_listen = \"0.0.0.0:1883\"\n[[embedded.mqtt_users]]\nusername = \"ingest\"\n\
         password_env = \"TEST_PW\"\n[mqtt]\nusername = \"ingest\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["config", "check"])
        .arg(&closed)
        .env("TEST_PW", "pw")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
