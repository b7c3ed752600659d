//! Rule outputs for the sinks' unit tests: records decoded and run through one rule named
//! `all`, as the router does, all received at [`T0`] from device `d`.

use crate::RuleOutput;
use sluice_config::RuleConfig;
use sluice_processors::decode::{BatchDecoder, RawBatch};
use sluice_processors::record::TelemetryRecord;
use sluice_processors::rule::RuleSet;

/// 2024-03-05T10:00:00Z in ms.
pub const T0: i64 = 1_709_632_800_000;

/// `sql`'s output for (Kafka partition, offset, JSON payload) records.
pub fn rule_output(sql: &str, rows: &[(i32, i64, &str)]) -> RuleOutput {
    let mut raw = RawBatch::default();
    for (partition, offset, payload) in rows {
        let rec = TelemetryRecord {
            device_id: "d",
            mqtt_topic: "devices/d/telemetry",
            received_ms: T0,
            redelivered: false,
            payload: payload.as_bytes(),
        };
        raw.push(&rec, *partition, *offset);
    }
    let batch = BatchDecoder::new().decode(&raw).batch.unwrap();
    let rule = RuleConfig {
        name: "all".into(),
        sql: sql.into(),
        actions: vec![],
        ..Default::default()
    };
    let mut set = RuleSet::compile(&[rule]).unwrap();
    set.evaluate(&batch).remove(0).output.unwrap()
}
