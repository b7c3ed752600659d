//! Bad input loses nothing and stops nothing: invalid JSON, non-UTF-8, non-object and
//! oversize payloads go to `telemetry.dlq` with a reason; every valid message still lands.

use crate::common::*;
use std::time::Duration;

const CONFIG: &str = "[ingest]\nmax_payload_bytes = 2048\n";

#[test]
fn malformed_payloads_go_to_the_dead_letter_topic_with_reasons() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, &format!("{CONFIG}{ALL_TO_PARQUET}"));
    let sluice = Sluice::start(&config, &[], Some(http));

    let mut messages = Vec::new();
    let valid = 200u64;
    for seq in 0..valid {
        let device = sluice_loadtest::fleet::device_name((seq % 10) as usize);
        let body = sluice_loadtest::fleet::payload(&device, seq, 1_700_000_000_000);
        messages.push((format!("devices/{device}/telemetry"), body.into_bytes()));
        if seq % 40 == 0 {
            messages.push(("devices/bad/telemetry".into(), b"{\"seq\": ".to_vec()));
            messages.push(("devices/bad/telemetry".into(), vec![0xff, 0xfe, 0x00, 0x7b]));
            messages.push(("devices/bad/telemetry".into(), b"42".to_vec()));
            let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(4000));
            messages.push(("devices/bad/telemetry".into(), big.into_bytes()));
        }
    }
    publish_raw(&setup.mqtt, messages);

    let bad = 4 * 5;
    let dlq = read_topic(&setup.kafka, "telemetry.dlq", bad);
    let mut reasons: Vec<String> = dlq
        .iter()
        .map(|(_, _, h)| {
            h.get("sluice.dlq.reason")
                .cloned()
                .expect("every DLQ record has a reason")
        })
        .collect();
    reasons.sort();
    assert_eq!(dlq.len(), bad, "reasons: {reasons:?}");
    let count = |prefix: &str| reasons.iter().filter(|r| r.starts_with(prefix)).count();
    assert_eq!(count("invalid JSON"), 5, "{reasons:?}");
    assert_eq!(count("payload is not UTF-8"), 5, "{reasons:?}");
    assert_eq!(count("payload is not a JSON object"), 5, "{reasons:?}");
    assert_eq!(count("oversize"), 5, "{reasons:?}");
    // Router-side rejects say where they came from; the original bytes are kept.
    let from_router: Vec<_> = dlq
        .iter()
        .filter(|(_, _, h)| h.contains_key("sluice.source.offset"))
        .collect();
    assert_eq!(from_router.len(), 15);
    assert!(from_router
        .iter()
        .any(|(_, v, _)| v == &[0xff, 0xfe, 0x00, 0x7b]));

    let root = setup.parquet_root();
    wait_until("valid rows in parquet", Duration::from_secs(60), || {
        rule_rows(&root, "all") >= valid
    });
    sluice.stop();
    let found = device_seqs(&root, "all");
    assert_eq!(found.len() as u64, valid);
}
