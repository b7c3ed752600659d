//! `sluice loadtest` against a running `sluice run` (embedded brokers): a short steady run
//! reports rates, latency percentiles and 0 lost (every acked (device, seq) found in Kafka),
//! writes its JSON report, reads the lag from `/scaling`; an impossible SLO fails the command.
//! Also that the embedded broker runs Sluice's patched tansu (vendor/tansu-storage): without
//! the header index the load test's numbers fall by an order of magnitude.

use crate::common::*;

#[test]
fn loadtest_reports_no_loss_and_fails_an_impossible_slo() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let report = setup.dir.path().join("report.json");
    let url = format!("http://{http}");
    let args = |slo: &str| -> Vec<String> {
        [
            "loadtest",
            "--broker",
            &setup.mqtt,
            "--kafka",
            &setup.kafka,
            "--sluice-url",
            &url,
            "--profile",
            "steady:500:4",
            "--devices",
            "50",
            "--report",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([report.display().to_string(), "--slo".into(), slo.into()])
        .collect()
    };
    let run = |slo: &str| {
        let a = args(slo);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        sluice_cli(&refs, setup.dir.path())
    };

    let (code, out) = run("lost=0,rate>=0.8");
    assert_eq!(code, 0, "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["sent"], 2000, "{r}");
    assert_eq!(r["acked"], 2000, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert!(
        r["publish_to_kafka"]["p99_ms"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert!(r["puback"]["count"].as_u64().unwrap() == 2000, "{r}");
    assert!(
        !r["lag_timeline"].as_array().unwrap().is_empty(),
        "read /scaling: {r}"
    );
    assert!(out.contains("publish→Kafka"), "{out}");

    let (code, out) = run("p99<0.001ms");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SLO violated: p99<0.001"), "{out}");
    sluice.stop();
    assert_eq!(
        header_indexes(&setup.dir.path().join("data/tansu.db")),
        "header_topition_offset"
    );
}

/// The front-door baseline publishes `--burst` messages in one second; a front door that
/// pushes back gets fewer out. The measurement waits for what was sent (it waited for all of
/// `--burst`, ran into its 300 s deadline and reported 0 msg/s).
#[test]
fn a_burst_the_gateway_pushes_back_on_is_still_measured() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let sluice = Sluice::start(&cfg, &[], Some(http));
    let report = setup.dir.path().join("report.json");
    let cfg = cfg.display().to_string();
    let report_arg = report.display().to_string();
    #[rustfmt::skip]
    let args = [
        "loadtest", "--broker", &setup.mqtt, "--kafka", &setup.kafka, "--profile", "steady:200:1",
        "--devices", "50", "--baseline", "--config", &cfg, "--burst", "1000000",
        "--report", &report_arg,
    ];
    let started = std::time::Instant::now();
    let (code, out) = sluice_cli(&args, setup.dir.path());
    assert_eq!(code, 0, "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let b = &r["baseline"];
    let sent = b["burst"].as_u64().unwrap();
    assert!(
        sent > 0 && sent < 1_000_000,
        "no front door takes 10^6 in a second: {b}"
    );
    assert!(b["ingest_rate"].as_f64().unwrap() > 0.0, "{b}");
    assert!(b["gateway_ratio"].as_f64().unwrap() > 0.0, "{b}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(240),
        "the burst's wait ran into its deadline: {:?}",
        started.elapsed()
    );
    sluice.stop();
}

/// The indexes of the embedded broker's `header` table, read with Python's sqlite3 module.
fn header_indexes(db: &std::path::Path) -> String {
    let script = "import sqlite3, sys\n\
        rows = sqlite3.connect(sys.argv[1]).execute(\n\
            \"select name from sqlite_master where type = 'index' and tbl_name = 'header'\")\n\
        print(','.join(sorted(r[0] for r in rows)))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `--format protobuf` and `--format sparkplug`: the load test publishes the encodings a
/// fleet uses (Sparkplug: an NBIRTH per edge node, then NDATA by alias), reads them back out
/// of Kafka (0 lost), and the router decodes every reading into rows.
#[test]
fn loadtest_speaks_protobuf_and_sparkplug() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/protos/loadtest.proto");
    let extra = format!(
        "[[payloads]]\ntopics = \"devices/+/pb\"\nformat = \"protobuf\"\nproto = \"{proto}\"\n\
         message = \"sluice.loadtest.v1.Reading\"\n\
         [[payloads]]\ntopics = \"spBv1.0/#\"\nformat = \"sparkplug\"\n\
         [[rules]]\nname = \"pb\"\nsql = \"SELECT device, seq, temperature FROM 'devices/+/pb' \
         WHERE temperature IS NOT NULL\"\nactions = [\"lake\"]\n\
         [[rules]]\nname = \"sp\"\nsql = \"SELECT edge_node, int_value AS seq FROM 'spBv1.0/#' \
         WHERE message_type = 'NDATA' AND metric = 'seq'\"\nactions = [\"lake\"]\n\
         [sinks.lake]\ntype = \"parquet\"\n"
    );
    let cfg = setup.write_config("sluice.toml", &http, &extra);
    let sluice = Sluice::start(&cfg, &[], Some(http));
    let report = setup.dir.path().join("report.json");
    let run = |format: &[&str]| {
        let mut a = vec![
            "loadtest",
            "--broker",
            &setup.mqtt,
            "--kafka",
            &setup.kafka,
            "--profile",
            "steady:300:3",
            "--devices",
            "20",
            "--slo",
            "lost=0",
        ];
        let report = report.to_str().unwrap();
        a.extend(["--report", report]);
        a.extend(format);
        let (code, out) = sluice_cli(&a, setup.dir.path());
        assert_eq!(code, 0, "{format:?}: {out}");
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
        assert_eq!(
            (r["acked"].as_u64(), r["lost"].as_u64()),
            (Some(900), Some(0)),
            "{r}"
        );
    };
    run(&[
        "--format",
        "protobuf",
        "--topic",
        "devices/{device}/pb",
        "--proto",
        proto,
        "--message",
        "sluice.loadtest.v1.Reading",
    ]);
    run(&["--format", "sparkplug"]);
    let root = setup.parquet_root();
    wait_until(
        "every reading decoded",
        std::time::Duration::from_secs(60),
        || rule_rows(&root, "pb") >= 900 && rule_rows(&root, "sp") >= 900,
    );
    sluice.stop();
    assert_eq!((rule_rows(&root, "pb"), rule_rows(&root, "sp")), (900, 900));
}
