//! Every metric Sluice exports, with its help text: Prometheus tools (and `promtool check
//! metrics`) expect a `# HELP` line per family. A new metric gets its line here.

/// (kind, name, help).
const METRICS: &[(&str, &str, &str)] = &[
    (
        "counter",
        "sluice_stage_restarts_total",
        "Times a failed stage (ingest, router) was restarted by its supervisor",
    ),
    (
        "counter",
        "sluice_poison_messages_total",
        "Messages the router failed on repeatedly, isolated by bisecting their batch and dead-lettered",
    ),
    (
        "counter",
        "sluice_decode_fields_retired_total",
        "Top-level payload fields dropped from the router's schema after router.decode.field_ttl_secs unseen",
    ),
    (
        "counter",
        "sluice_event_time_outside_window_total",
        "Rows filed by receive time because their event time was outside the Parquet sink's window",
    ),
    (
        "counter",
        "sluice_parquet_files_evicted_total",
        "Parquet files closed early to stay within max_open_files",
    ),
    (
        "counter",
        "sluice_ingest_kafka_rejected_total",
        "Messages Kafka refused for good (too large, invalid): sent to the dead-letter topic and acknowledged",
    ),
    (
        "counter",
        "sluice_ingest_messages_in_total",
        "MQTT messages received by ingest",
    ),
    (
        "counter",
        "sluice_ingest_produced_total",
        "Records Kafka confirmed on the raw topic",
    ),
    (
        "counter",
        "sluice_ingest_kafka_errors_total",
        "Kafka produce errors in ingest",
    ),
    (
        "counter",
        "sluice_ingest_mqtt_errors_total",
        "MQTT connection errors in ingest",
    ),
    (
        "counter",
        "sluice_dlq_total",
        "Records sent to the dead-letter topic",
    ),
    (
        "counter",
        "sluice_router_consumed_total",
        "Records the router decoded and routed",
    ),
    (
        "counter",
        "sluice_router_kafka_errors_total",
        "Kafka consumer errors in the router",
    ),
    (
        "counter",
        "sluice_router_rejoins_total",
        "Times the router rejoined its group after sitting unassigned",
    ),
    (
        "counter",
        "sluice_decode_type_mismatch_total",
        "Payload values that did not fit their column's type (read as NULL)",
    ),
    (
        "counter",
        "sluice_retired_messages_dropped_total",
        "Messages of retired devices dropped by the router",
    ),
    (
        "counter",
        "sluice_unmatched_total",
        "Rows no rule matched (sent to the fallback action)",
    ),
    (
        "counter",
        "sluice_rule_evaluated_total",
        "Rows each rule evaluated",
    ),
    (
        "counter",
        "sluice_rule_matched_total",
        "Rows each rule matched",
    ),
    (
        "counter",
        "sluice_rule_rows_total",
        "Rows each rule selected",
    ),
    (
        "counter",
        "sluice_rule_failures_total",
        "Rows each rule failed on",
    ),
    (
        "counter",
        "sluice_rule_plans_total",
        "Rule query plans built (at load and reload, never per batch)",
    ),
    (
        "counter",
        "sluice_rule_action_rows_total",
        "Rows written per rule and action",
    ),
    (
        "counter",
        "sluice_rule_action_failures_total",
        "Failed writes per rule and action",
    ),
    (
        "counter",
        "sluice_rules_reloads_total",
        "Rule reloads by outcome",
    ),
    (
        "counter",
        "sluice_files_written_total",
        "Parquet files renamed into place",
    ),
    (
        "counter",
        "sluice_alerts_fired_total",
        "Alerts that started firing and were notified, per rule",
    ),
    (
        "counter",
        "sluice_alerts_resolved_total",
        "Firing alerts resolved after the quiet period, per rule",
    ),
    (
        "counter",
        "sluice_alerts_suppressed_total",
        "Alert occurrences counted without a notification (dedup, cooldown), per rule",
    ),
    (
        "counter",
        "sluice_alerts_failed_total",
        "Alert notifications that failed after the retries, per rule",
    ),
    (
        "counter",
        "sluice_alert_webhook_attempts_failed_total",
        "Webhook attempts that failed (each retry counts)",
    ),
    (
        "counter",
        "sluice_compliance_retired_reports_dropped_total",
        "Reports of retired devices ignored by the compliance tracker",
    ),
    (
        "counter",
        "sluice_compliance_snapshots_total",
        "Compliance Parquet snapshots written",
    ),
    (
        "counter",
        "sluice_http_unauthorized_total",
        "API requests refused for a missing or unknown token",
    ),
    (
        "counter",
        "sluice_http_forbidden_total",
        "API requests refused for a role too low",
    ),
    (
        "gauge",
        "sluice_devices_known",
        "Devices in the device metadata table",
    ),
    (
        "gauge",
        "sluice_rules_active",
        "Rules in the active rule set",
    ),
    (
        "gauge",
        "sluice_rules_version",
        "Version (hash) of the active rule set",
    ),
    (
        "gauge",
        "sluice_rules_reload_failed",
        "1 when the last rule reload failed",
    ),
    (
        "gauge",
        "sluice_alerts_firing",
        "Alerts firing now, per alert sink",
    ),
    (
        "gauge",
        "sluice_compliance_devices",
        "Devices per compliance state and group",
    ),
    (
        "gauge",
        "sluice_compliance_percent",
        "Percent of a group's devices on the latest update",
    ),
    (
        "gauge",
        "sluice_compliance_fleet_devices",
        "Devices tracked (not retired)",
    ),
    (
        "gauge",
        "sluice_compliance_fleet_percent",
        "Percent of all devices on the latest update",
    ),
    (
        "gauge",
        "sluice_deployment_failed_devices",
        "Devices whose last report says the deployment failed, per deployment and group",
    ),
    (
        "gauge",
        "sluice_kafka_partition_lag",
        "Records behind per raw-topic partition (high watermark - committed)",
    ),
    (
        "gauge",
        "sluice_kafka_group_lag",
        "Records behind, all partitions",
    ),
    (
        "gauge",
        "sluice_kafka_produce_rate",
        "Records per second written to the raw topic (EWMA)",
    ),
    (
        "gauge",
        "sluice_kafka_consume_rate",
        "Records per second the router group commits (EWMA)",
    ),
    (
        "gauge",
        "sluice_kafka_lag_seconds",
        "Lag divided by the consume rate (+Inf when nothing is consumed)",
    ),
    (
        "gauge",
        "sluice_router_desired_replicas",
        "Router replicas advised (capped at partitions, stabilized)",
    ),
    (
        "gauge",
        "sluice_router_partition_limited",
        "1 when the partition count caps the advice: add partitions",
    ),
    (
        "gauge",
        "sluice_ingest_message_rate",
        "MQTT messages per second received by this process (EWMA)",
    ),
    (
        "gauge",
        "sluice_ingest_desired_replicas",
        "Ingest replicas advised",
    ),
    (
        "histogram",
        "sluice_batch_seconds",
        "Seconds to decode and route one batch",
    ),
    (
        "histogram",
        "sluice_checkpoint_seconds",
        "Seconds per checkpoint (sinks durable, offsets committed)",
    ),
    (
        "histogram",
        "sluice_parquet_flush_seconds",
        "Seconds to close, fsync and rename a Parquet file",
    ),
    (
        "histogram",
        "sluice_rule_eval_seconds",
        "Seconds to evaluate one rule on one batch",
    ),
    (
        "histogram",
        "sluice_alert_delivery_seconds",
        "Seconds to deliver one alert notification (retries included)",
    ),
];

/// Registers the help text of every metric with the installed recorder.
pub fn describe_all() {
    for &(kind, name, help) in METRICS {
        match kind {
            "counter" => metrics::describe_counter!(name, help),
            "gauge" => metrics::describe_gauge!(name, help),
            _ => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every metric the code emits has a line above (a missing one fails promtool's lint).
    #[test]
    fn every_emitted_metric_is_described() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/");
        let mut missing = Vec::new();
        for dir in [
            "src",
            "router/src",
            "sinks/src",
            "ingest/src",
            "processors/src",
        ] {
            for file in rust_files(&std::path::Path::new(root).join(dir)) {
                let text = std::fs::read_to_string(&file).unwrap();
                for name in emitted(&text) {
                    if !super::METRICS.iter().any(|(_, n, _)| *n == name) {
                        missing.push(format!("{name} ({})", file.display()));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undescribed metrics: {missing:?}");
    }

    fn emitted(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for macro_name in ["counter!(", "gauge!(", "histogram!("] {
            for part in text.split(macro_name).skip(1) {
                let part = part.trim_start();
                if let Some(rest) = part.strip_prefix('"') {
                    match rest.find('"') {
                        Some(end) if rest.starts_with("sluice_") => {
                            out.push(rest[..end].to_string())
                        }
                        _ => {}
                    }
                }
            }
        }
        out
    }

    fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(rust_files(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        out
    }
}
