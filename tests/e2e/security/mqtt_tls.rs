//! Ingest reads Mosquitto over TLS: with a password, with a client certificate; a wrong CA,
//! a wrong password and a topic outside the ACL each fail with a clear log line, and the
//! messages Mosquitto held meanwhile all arrive once the setting is right.

use super::certs::Certs;
use super::*;

struct Broker {
    _daemon: mosquitto::Mosquitto,
    /// Plain listener the test fleet publishes on (user `fleet`).
    plain: String,
    /// TLS listener, user name and password.
    tls: String,
    /// TLS listener that requires a client certificate (its CN is the user name).
    mtls: String,
}

fn start_mosquitto(dir: &Path, certs: &Certs) -> Broker {
    let (plain, tls, mtls) = (free_port(), free_port(), free_port());
    let passwords = dir.join("passwords");
    std::fs::write(&passwords, "").unwrap();
    for (user, password) in [
        ("fleet", "fleet-pw"),
        ("sluice", "right-pw"),
        ("outsider", "outsider-pw"),
    ] {
        let status = Command::new("mosquitto_passwd")
            .args(["-b", passwords.to_str().unwrap(), user, password])
            .status()
            .expect("mosquitto_passwd (Debian's mosquitto package)");
        assert!(status.success());
    }
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user fleet\ntopic write devices/#\n\nuser sluice\ntopic read devices/#\n\n\
         user sluice-client\ntopic read devices/#\n\nuser outsider\ntopic read other/#\n",
    )
    .unwrap();
    let tls_files = format!(
        "cafile {}\ncertfile {}\nkeyfile {}\n",
        certs.ca.display(),
        certs.server_cert.display(),
        certs.server_key.display()
    );
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npersistence false\n\
             password_file {pw}\nacl_file {acl}\nmax_inflight_messages 1000\n\
             max_queued_messages 100000\n\
             listener {plain} 127.0.0.1\n\
             listener {tls} 127.0.0.1\n{tls_files}\
             listener {mtls} 127.0.0.1\n{tls_files}require_certificate true\nuse_identity_as_username true\n",
            pw = passwords.display(),
            acl = acl.display(),
        ),
    )
    .unwrap();
    let daemon = mosquitto::spawn(&conf, &[plain, tls, mtls]);
    let at = |p: u16| format!("127.0.0.1:{p}");
    Broker {
        _daemon: daemon,
        plain: at(plain),
        tls: at(tls),
        mtls: at(mtls),
    }
}

fn publish(broker: &Broker, prefix: &str, devices: usize, per_device: u64) {
    let report = publish_fleet(sluice_loadtest::fleet::FleetConfig {
        broker: broker.plain.clone(),
        devices,
        messages_per_device: per_device,
        client_prefix: prefix.into(),
        credentials: Some(("fleet".into(), "fleet-pw".into())),
        ..Default::default()
    });
    assert_eq!(
        report.acked,
        devices as u64 * per_device,
        "Mosquitto acknowledged every message"
    );
}

/// A config reading `broker` as `client_id`, with `[mqtt]` lines `mqtt`.
fn config(setup: &Setup, name: &str, http: &str, broker: &str, mqtt: &str) -> PathBuf {
    let extra = format!(
        r#"
[mqtt]
broker = "{broker}"
client_id = "sluice-tls-test"
{mqtt}

{ALL_TO_PARQUET}"#
    );
    setup.write_config(name, http, &extra)
}

#[test]
fn ingest_over_tls_with_a_password_survives_wrong_settings_and_loses_nothing() {
    let setup = Setup::new();
    let certs = Certs::make(&setup.dir.path().join("certs"));
    let broker = start_mosquitto(setup.dir.path(), &certs);
    let http = format!("127.0.0.1:{}", free_port());
    let tls = |ca: &Path| {
        format!(
            "username = \"sluice\"\n[mqtt.tls]\nca_file = {}\n",
            toml_path(ca)
        )
    };
    let right = config(&setup, "right.toml", &http, &broker.tls, &tls(&certs.ca));
    let password = [("SLUICE_MQTT_PASSWORD", "right-pw")];

    // First run: the persistent session and its subscription exist from now on.
    let mut sluice = Logged::start(&right, &[], &password);
    sluice.wait_ready(&http);
    publish(&broker, "first", 10, 20);
    assert_all_rows(&setup.parquet_root(), "all", 10, 20);
    sluice.stop();

    // While ingest is away or misconfigured, Mosquitto holds the session's messages.
    publish(&broker, "second", 10, 40);

    let wrong_ca = config(
        &setup,
        "wrong-ca.toml",
        &http,
        &broker.tls,
        &tls(&certs.other_ca),
    );
    let mut sluice = Logged::start(&wrong_ca, &[], &password);
    sluice.wait_log(
        "the broker's certificate was not accepted",
        Duration::from_secs(60),
    );
    assert_eq!(http_get(&http, "/readyz").map(|r| r.0), Some(503));
    sluice.stop();

    let mut sluice = Logged::start(&right, &[], &[("SLUICE_MQTT_PASSWORD", "wrong-pw")]);
    sluice.wait_log("the broker refused the login", Duration::from_secs(60));
    let log = sluice.stop();
    assert!(!log.contains("wrong-pw"), "the password is never logged");

    let mut sluice = Logged::start(&right, &[], &password);
    sluice.wait_ready(&http);
    assert_all_rows(&setup.parquet_root(), "all", 10, 40);
    sluice.stop();
}

#[test]
fn ingest_over_tls_with_a_client_certificate() {
    let setup = Setup::new();
    let certs = Certs::make(&setup.dir.path().join("certs"));
    let broker = start_mosquitto(setup.dir.path(), &certs);
    let http = format!("127.0.0.1:{}", free_port());
    // Dialled by IP; the certificate is checked against the name it carries.
    let mqtt = format!(
        "[mqtt.tls]\nca_file = {}\ncert_file = {}\nkey_file = {}\nserver_name = \"localhost\"\n",
        toml_path(&certs.ca),
        toml_path(&certs.client_cert),
        toml_path(&certs.client_key)
    );
    let path = config(&setup, "mtls.toml", &http, &broker.mtls, &mqtt);
    let mut sluice = Logged::start(&path, &[], &[]);
    sluice.wait_ready(&http);
    publish(&broker, "mtls", 10, 30);
    assert_all_rows(&setup.parquet_root(), "all", 10, 30);
    sluice.stop();

    // Without the client certificate the broker ends the handshake: a clear failure.
    let mqtt = format!("[mqtt.tls]\nca_file = {}\n", toml_path(&certs.ca));
    let path = config(&setup, "no-cert.toml", &http, &broker.mtls, &mqtt);
    let mut sluice = Logged::start(&path, &[], &[]);
    sluice.wait_log("mqtt connection failed", Duration::from_secs(60));
    assert_eq!(http_get(&http, "/readyz").map(|r| r.0), Some(503));
    sluice.stop();
}

/// Mosquitto with its dynamic-security plugin, whose ACLs refuse a subscription outright
/// (its `acl_file` grants every subscription and filters at delivery, so a client cannot
/// tell). `outsider` may subscribe to `other/#` only. Returns the TLS listener's address.
fn start_mosquitto_dynsec(dir: &Path, certs: &Certs) -> (mosquitto::Mosquitto, String) {
    let port = free_port();
    let salt = b"sluice-salt!";
    let hash = pbkdf2_sha512(b"outsider-pw", salt, 101);
    let b64 = |b: &[u8]| {
        let out = Command::new("openssl")
            .args(["base64", "-A"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        out.stdin.as_ref().unwrap().write_all(b).unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    };
    let dynsec = serde_json::json!({
        "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
        "clients": [{"username": "outsider", "password": b64(&hash), "salt": b64(salt), "iterations": 101,
                     "roles": [{"rolename": "other-reader"}]}],
        "groups": [],
        "roles": [{"rolename": "other-reader",
                   "acls": [{"acltype": "subscribePattern", "topic": "other/#", "priority": 0, "allow": true}]}],
    });
    let json = dir.join("dynsec.json");
    std::fs::write(&json, dynsec.to_string()).unwrap();
    let conf = dir.join("dynsec.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous false\n\
             plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n\
             plugin_opt_config_file {json}\nlistener {port} 127.0.0.1\n\
             cafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
            json = json.display(),
            ca = certs.ca.display(),
            cert = certs.server_cert.display(),
            key = certs.server_key.display(),
        ),
    )
    .unwrap();
    (
        mosquitto::spawn(&conf, &[port]),
        format!("127.0.0.1:{port}"),
    )
}

/// PBKDF2-HMAC-SHA512 with a 64-byte output, as the dynamic-security plugin stores passwords.
fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys,hashlib;sys.stdout.buffer.write(hashlib.pbkdf2_hmac('sha512',sys.argv[1].encode(),sys.argv[2].encode(),int(sys.argv[3]),64))",
            std::str::from_utf8(password).unwrap(),
            std::str::from_utf8(salt).unwrap(),
            &iterations.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn a_topic_outside_the_acl_is_a_clear_error() {
    let setup = Setup::new();
    let certs = Certs::make(&setup.dir.path().join("certs"));
    let (_broker, tls) = start_mosquitto_dynsec(setup.dir.path(), &certs);
    let http = format!("127.0.0.1:{}", free_port());
    let mqtt = format!(
        "username = \"outsider\"\n[mqtt.tls]\nca_file = {}\n",
        toml_path(&certs.ca)
    );
    let path = config(&setup, "acl.toml", &http, &tls, &mqtt);
    let mut sluice = Logged::start(&path, &[], &[("SLUICE_MQTT_PASSWORD", "outsider-pw")]);
    sluice.wait_log(
        "the MQTT broker refused a subscription",
        Duration::from_secs(60),
    );
    assert_eq!(http_get(&http, "/readyz").map(|r| r.0), Some(503));
    sluice.stop();
}
