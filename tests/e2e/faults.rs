//! Faults other than a crash: a second process on a data directory, a reload naming a sink
//! that does not exist, a graceful stop under load.

use crate::common::*;
use std::time::Duration;

#[test]
fn a_second_process_on_a_locked_data_dir_is_refused_naming_the_holder() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let running = Sluice::start(&config, &["--only", "brokers"], Some(http));
    let holder = format!("pid {}", running.child.id());
    let (code, out) = sluice_cli(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--only",
            "brokers",
        ],
        setup.dir.path(),
    );
    assert_ne!(
        code, 0,
        "a second process started on the same data_dir: {out}"
    );
    assert!(out.contains("in use by another Sluice process"), "{out}");
    assert!(out.contains(&holder), "the holder is not named: {out}");
    running.stop();
    // The lock goes with its holder: the same directory starts again.
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    Sluice::start(&config, &["--only", "brokers"], Some(http)).stop();
}

#[test]
fn a_reload_naming_a_sink_that_is_not_running_is_rejected() {
    let setup = Setup::new();
    let rules_dir = setup.dir.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    let rule =
        |action: &str| format!("-- name: r\n-- actions: {action}\nSELECT device FROM telemetry\n");
    std::fs::write(rules_dir.join("r.sql"), rule("lake")).unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let extra = "rule_paths = [\"rules\"]\n[sinks.lake]\ntype = \"parquet\"\n";
    let config = setup.write_config("sluice.toml", &http, extra);
    let sluice = Sluice::start(
        &config,
        &["--only", "brokers", "--only", "router"],
        Some(http.clone()),
    );
    let reload = || http_request(&http, "POST", "/rules/reload").unwrap();

    std::fs::write(rules_dir.join("r.sql"), rule("nowhere")).unwrap();
    let (code, body) = reload();
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("unknown sink 'nowhere'"), "{body}");

    // A fallback action naming a sink the new config defines but the router does not run.
    std::fs::write(rules_dir.join("r.sql"), rule("lake")).unwrap();
    setup.write_config_with("sluice.toml", &http, extra, |c| {
        table(c, "router").insert("fallback_action".into(), "spare".into());
        let sinks = table(c, "sinks");
        sinks.insert("spare".into(), toml::toml! { type = "parquet" }.into());
    });
    let (code, body) = reload();
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("router.fallback_action: sink 'spare' is not running"),
        "{body}"
    );
    let status = get_json(&http, "/rules");
    assert_eq!(status["last_reload"]["ok"], false, "{status}");
    sluice.stop();
}

/// Publishes `seq = 0, 1, …` for one device at `rate` over QoS 1 until the connection breaks
/// or `stop` is set; returns the sequence numbers the broker acknowledged.
fn publish_until_cut(
    broker: String,
    rate: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::collections::BTreeSet<i64> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
    use std::sync::atomic::Ordering;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let (host, port) = sluice_common::addr::host_port(&broker).unwrap();
        let mut opts = MqttOptions::new("graceful-fleet", host, port);
        opts.set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let sender = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            for seq in 0i64.. {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let payload = format!(r#"{{"seq": {seq}}}"#);
                if client
                    .publish(
                        "devices/graceful/telemetry",
                        QoS::AtLeastOnce,
                        false,
                        payload,
                    )
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        // Packet ids are reused: map each to the seq it carries while in flight.
        let (mut next_seq, mut in_flight, mut acked) = (
            0i64,
            std::collections::HashMap::new(),
            std::collections::BTreeSet::new(),
        );
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    in_flight.insert(pkid, next_seq);
                    next_seq += 1;
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(seq) = in_flight.remove(&ack.pkid) {
                        acked.insert(seq);
                    }
                }
                Ok(_) => {}
                Err(_) => break, // The gateway closed the connection: the stop has begun.
            }
        }
        sender.abort();
        acked
    })
}

#[test]
fn a_graceful_stop_under_load_keeps_every_acknowledged_message() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let sluice = Sluice::start(&config, &[], Some(http.clone()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fleet = {
        let (broker, stop) = (setup.mqtt.clone(), stop.clone());
        std::thread::spawn(move || publish_until_cut(broker, 300, stop))
    };
    wait_until(
        "the pipeline routes the fleet",
        Duration::from_secs(60),
        || rule_rows(&setup.parquet_root(), "all") > 300,
    );
    // SIGINT, as Ctrl-C in a terminal would send.
    let pid = sluice.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let mut sluice = sluice;
    let status = sluice.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(status.success(), "sluice exited with {status}");
    let acked = fleet.join().unwrap();

    // Every acknowledged message must be in the raw topic: read it back from the broker.
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let brokers = Sluice::start(&config, &["--only", "brokers"], Some(http));
    let records = read_topic(&setup.kafka, "telemetry.raw", acked.len());
    let in_kafka: std::collections::BTreeSet<i64> = records
        .iter()
        .filter_map(|(_, v, _)| {
            serde_json::from_slice::<serde_json::Value>(v).ok()?["seq"].as_i64()
        })
        .collect();
    let lost: Vec<&i64> = acked.difference(&in_kafka).collect();
    println!(
        "graceful stop: {} acknowledged to the fleet, {} in Kafka, {} lost",
        acked.len(),
        in_kafka.len(),
        lost.len()
    );
    assert!(
        acked.len() > 300,
        "the fleet was acknowledged before the stop"
    );
    assert!(
        lost.is_empty(),
        "acknowledged but not in Kafka: {:?}",
        &lost[..lost.len().min(10)]
    );
    brokers.stop();
}
