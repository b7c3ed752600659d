//! Kafka over TLS: stunnel (Debian's package) terminates TLS in front of the embedded Kafka
//! broker, which runs in its own process (`--only brokers`) and advertises stunnel's address.
//! Ingest and router produce and consume through it with CA verification and a client
//! certificate; a wrong CA fails with librdkafka's reason in the log.

use super::certs::Certs;
use super::*;

fn start_stunnel(dir: &Path, certs: &Certs, accept: u16, connect: &str) -> Daemon {
    let conf = dir.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\ndebug = 4\n\n[kafka]\naccept = 127.0.0.1:{accept}\n\
             connect = {connect}\ncert = {cert}\nkey = {key}\nCAfile = {ca}\nverifyChain = yes\n\
             requireCert = yes\n",
            cert = certs.server_cert.display(),
            key = certs.server_key.display(),
            ca = certs.ca.display(),
        ),
    )
    .unwrap();
    let child = Command::new("stunnel")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stunnel.log")).unwrap())
        .spawn()
        .expect("stunnel is installed (apt-get install stunnel4; .ci/run does this)");
    wait_port("stunnel listening", accept);
    Daemon(child)
}

#[test]
fn ingest_and_router_use_kafka_over_mutual_tls() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let certs = Certs::make(&dir.join("certs"));
    let tls_port = free_port();
    let tls_addr = format!("127.0.0.1:{tls_port}");

    // The brokers' process: embedded Kafka (devices reach the ingest process's gateway), Kafka advertised at stunnel's address.
    let brokers_http = format!("127.0.0.1:{}", free_port());
    let extra =
        format!("[kafka]\ncreate_topics = false\n[embedded]\nkafka_advertised = \"{tls_addr}\"\n");
    let brokers = setup.write_config("brokers.toml", &brokers_http, &extra);
    let mut broker_process = Logged::start(&brokers, &["--only", "brokers"], &[]);
    broker_process.wait_ready(&brokers_http);
    let _stunnel = start_stunnel(dir, &certs, tls_port, &setup.kafka);

    let pipeline = |name: &str, ca: &Path, http: &str| {
        setup.write_config(
            name,
            http,
            &format!(
                r#"
[kafka]
bootstrap = "{tls_addr}"
[kafka.security]
protocol = "ssl"
ca_file = {ca}
cert_file = {cert}
key_file = {key}

{ALL_TO_PARQUET}"#,
                ca = toml_path(ca),
                cert = toml_path(&certs.client_cert),
                key = toml_path(&certs.client_key),
            ),
        )
    };
    let http = format!("127.0.0.1:{}", free_port());

    // A CA that did not sign stunnel's certificate: the start fails with librdkafka's reason.
    let wrong = pipeline("wrong-ca.toml", &certs.other_ca, &http);
    let mut sluice = Logged::start(&wrong, &["--only", "ingest", "--only", "router"], &[]);
    sluice.wait_log("certificate verify failed", Duration::from_secs(60));
    assert!(
        sluice.wait_failed_exit(Duration::from_secs(30)),
        "a start that cannot reach Kafka fails"
    );
    drop(sluice);

    let right = pipeline("right.toml", &certs.ca, &http);
    let (code, out) = sluice_cli(&["config", "check", right.to_str().unwrap()], dir);
    assert_eq!(code, 0, "{out}");
    let mut sluice = Logged::start(&right, &["--only", "ingest", "--only", "router"], &[]);
    sluice.wait_ready(&http);
    let report = publish_fleet(sluice_loadtest::fleet::FleetConfig {
        broker: setup.mqtt.clone(),
        devices: 10,
        messages_per_device: 50,
        ..Default::default()
    });
    assert_eq!(report.acked, 500);
    assert_all_rows(&setup.parquet_root(), "all", 10, 50);
    sluice.stop();
    broker_process.stop();
}

#[test]
fn config_check_reports_kafka_settings_the_client_cannot_use() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let certs = Certs::make(&dir.join("certs"));
    let http = format!("127.0.0.1:{}", free_port());
    // SASL over TLS with SCRAM reaches librdkafka (this build carries OpenSSL and SASL).
    let sasl = setup.write_config(
        "sasl.toml",
        &http,
        &format!(
            "[kafka]\nbootstrap = \"kafka.example:9093\"\n[kafka.security]\nprotocol = \"sasl_ssl\"\n\
             sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"fleet\"\nca_file = {}\n",
            toml_path(&certs.ca)
        ),
    );
    let check = |path: &Path, env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["config", "check"])
            .arg(path)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + String::from_utf8_lossy(&out.stderr).as_ref();
        (out.status.code(), text)
    };
    let (code, out) = check(&sasl, &[("SLUICE_KAFKA_SASL_PASSWORD", "s3cret-scram")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("s3cret-scram"), "{out}");
    let (code, out) = check(&sasl, &[]);
    assert_ne!(code, Some(0));
    assert!(out.contains("SLUICE_KAFKA_SASL_PASSWORD"), "{out}");

    // A key that is not PEM: librdkafka refuses it, and config check says so.
    let bad_key = dir.join("bad.key");
    std::fs::write(&bad_key, "not a key").unwrap();
    let bad = setup.write_config(
        "bad.toml",
        &http,
        &format!(
            "[kafka]\nbootstrap = \"kafka.example:9093\"\n[kafka.security]\nprotocol = \"ssl\"\n\
             ca_file = {}\ncert_file = {}\nkey_file = {}\n",
            toml_path(&certs.ca),
            toml_path(&certs.client_cert),
            toml_path(&bad_key)
        ),
    );
    let (code, out) = check(&bad, &[]);
    assert_ne!(code, Some(0));
    assert!(
        out.contains("the Kafka client cannot use these settings"),
        "{out}"
    );

    // A password in the file is refused, pointing at the environment variable.
    let in_file = setup.write_config(
        "in-file.toml",
        &http,
        "[kafka.properties]\n\"sasl.password\" = \"s3cret\"\n[mqtt]\npassword = \"s3cret\"\n",
    );
    let (code, out) = check(&in_file, &[]);
    assert_ne!(code, Some(0));
    assert!(out.contains("SLUICE_MQTT_PASSWORD"), "{out}");
    assert!(out.contains("kafka.properties.\"sasl.password\""), "{out}");
    assert!(!out.contains("s3cret"), "{out}");
}
