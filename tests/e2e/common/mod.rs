//! Helpers for the end-to-end tests: a `sluice` process on free ports, waits with deadlines,
//! and Parquet read-back. Every wait polls a condition and gives up at a deadline.

#![allow(dead_code)]

pub mod kafka;
pub mod mosquitto;
pub mod s3;
pub mod webhook;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One rule, `all`, selecting (device, seq) of every message into the Parquet sink `lake`.
pub const ALL_TO_PARQUET: &str = r#"
[[rules]]
name = "all"
sql = "SELECT device, seq FROM telemetry"
actions = ["lake"]

[sinks.lake]
type = "parquet"
"#;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` until it holds or `within` passes; panics with `what` on timeout.
pub fn wait_until(what: &str, within: Duration, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(within, cond),
        "timed out after {within:?} waiting for: {what}"
    );
}

/// Polls `cond` until it holds (true) or `within` passes (false), for a test that explains a
/// timeout before it fails.
pub fn poll_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Ports and paths of one test deployment.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub mqtt: String,
    pub kafka: String,
}

impl Setup {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            mqtt: format!("127.0.0.1:{}", free_port()),
            kafka: format!("127.0.0.1:{}", free_port()),
        }
    }

    pub fn parquet_root(&self) -> PathBuf {
        self.dir.path().join("data/parquet")
    }

    /// Writes a config with the test's ports and data folder; `extra` (rules, sinks… as TOML)
    /// is merged into it table by table.
    pub fn write_config(&self, name: &str, http: &str, extra: &str) -> PathBuf {
        self.write_config_with(name, http, extra, |_| {})
    }

    /// [`Setup::write_config`], then `edit` on the parsed config before it is written.
    pub fn write_config_with(
        &self,
        name: &str,
        http: &str,
        extra: &str,
        edit: impl FnOnce(&mut toml::Table),
    ) -> PathBuf {
        let mut config: toml::Table = toml::toml! {
            [embedded]
            [http]
            [router]
            commit_interval_ms = 500
            [router.batch]
            max_rows = 4096
            max_wait_ms = 100
        };
        // One data_dir per process (each locks its own); "sluice.toml" keeps "data".
        let stem = name.trim_end_matches(".toml");
        let data = match stem {
            "sluice" => self.dir.path().join("data"),
            _ => self.dir.path().join(format!("data-{stem}")),
        };
        config.insert("data_dir".into(), data.display().to_string().into());
        let embedded = table(&mut config, "embedded");
        embedded.insert("mqtt_listen".into(), self.mqtt.clone().into());
        embedded.insert("kafka_listen".into(), self.kafka.clone().into());
        table(&mut config, "http").insert("listen".into(), http.into());
        merge(
            &mut config,
            toml::from_str(extra).expect("extra config is TOML"),
        );
        // Every process's Parquet sinks share one output root unless the test says otherwise.
        let root = self.parquet_root().display().to_string();
        let sinks = config.get_mut("sinks").and_then(|s| s.as_table_mut());
        for (_, sink) in sinks.into_iter().flat_map(|s| s.iter_mut()) {
            let Some(sink) = sink.as_table_mut() else {
                continue;
            };
            if sink.get("type").and_then(|t| t.as_str()) == Some("parquet") {
                sink.entry("path").or_insert(root.clone().into());
            }
        }
        edit(&mut config);
        let path = self.dir.path().join(name);
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        path
    }
}

/// The table at `key` of `config` (created if missing).
pub fn table<'a>(config: &'a mut toml::Table, key: &str) -> &'a mut toml::Table {
    config
        .entry(key)
        .or_insert_with(|| toml::Table::new().into())
        .as_table_mut()
        .expect("a table")
}

/// `extra` into `base`: tables merged key by key, other values replaced.
fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A running `sluice` process; killed on drop if still running.
pub struct Sluice {
    pub child: Child,
    pub http: Option<String>,
}

impl Sluice {
    pub fn start(config: &Path, args: &[&str], http: Option<String>) -> Self {
        Self::start_with_env(config, args, http, &[])
    }

    /// `start` with extra environment variables (tokens, secrets).
    pub fn start_with_env(
        config: &Path,
        args: &[&str],
        http: Option<String>,
        env: &[(&str, &str)],
    ) -> Self {
        Self::start_logged(config, args, http, env, Stdio::inherit())
    }

    /// `start_with_env` with the process's log lines going to `log` (a file the test reads
    /// when it has to explain a failure) instead of the test's own stderr.
    pub fn start_logged(
        config: &Path,
        args: &[&str],
        http: Option<String>,
        env: &[(&str, &str)],
        log: Stdio,
    ) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .envs(env.iter().copied())
            .arg("--config")
            .arg(config)
            .args(args)
            .env("SLUICE_LOG", "warn,tansu_storage=off,sluice=info")
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sluice");
        let mut s = Self { child, http };
        if let Some(addr) = s.http.clone() {
            wait_until("sluice /readyz = 200", Duration::from_secs(120), || {
                if let Ok(Some(status)) = s.child.try_wait() {
                    panic!("sluice exited during startup with {status}");
                }
                http_get(&addr, "/readyz").is_some_and(|(code, _)| code == 200)
            });
        }
        s
    }

    /// SIGTERM, then waits for a clean exit (code 0) within the deadline.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "sluice exited with {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sluice did not stop within 60s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGSTOP: the process stalls (as on a long I/O or scheduling stall) with its sockets open;
    /// clients' unacknowledged publishes and queued requests pile up. `kill` still works.
    pub fn freeze(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    }

    /// SIGCONT: a frozen process goes on.
    pub fn thaw(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    }

    /// SIGKILL: the crash case.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first row of a DuckDB query (Python's duckdb package, as an analyst reads the
/// Parquet), each value as Python prints it.
pub fn duckdb_first_row(query: &str) -> Vec<String> {
    let py = format!("import duckdb; print(*duckdb.sql(\"{query}\").fetchall()[0])");
    let out = Command::new("python3")
        .args(["-c", &py])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "duckdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().map(String::from).collect()
}

/// GET `path` of the API at `addr`: (status, body); `None` when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path)
}

/// A bodyless request; (status, body).
pub fn http_request(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    http_send(addr, method, path, "")
}

/// A request with a JSON body (empty: none); (status, body).
pub fn http_send(addr: &str, method: &str, path: &str, json: &str) -> Option<(u16, String)> {
    http_call(addr, method, path, None, json)
}

/// A request with an optional bearer token and a JSON body (reqwest, 5 s time-out).
pub fn http_call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    json: &str,
) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).ok()?;
    let mut request = client.request(method, format!("http://{addr}{path}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if !json.is_empty() {
        request = request
            .header("content-type", "application/json")
            .body(json.to_string());
    }
    let response = request.send().ok()?;
    let code = response.status().as_u16();
    Some((code, response.text().unwrap_or_default()))
}

/// Every record batch of every Parquet file under `root`, read back as an analyst would.
pub fn parquet_batches(root: &Path) -> Vec<arrow::record_batch::RecordBatch> {
    let mut out = Vec::new();
    for path in sluice::cli::summary::parquet_files(root) {
        let file = std::fs::File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        out.extend(reader.map(|b| b.unwrap()));
    }
    out
}

/// Every value of string-castable column `column` (all columns: None) under `root`.
pub fn parquet_strings(root: &Path, column: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for batch in parquet_batches(root) {
        let schema = batch.schema();
        for (field, col) in schema.fields().iter().zip(batch.columns()) {
            if column.is_some_and(|c| c != field.name()) {
                continue;
            }
            let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
            out.extend(col.as_string::<i32>().iter().flatten().map(String::from));
        }
    }
    out
}

/// (device, seq) → how many times it appears, for every file of `rule` under `root`.
pub fn device_seqs(root: &Path, rule: &str) -> BTreeMap<(String, i64), u32> {
    let mut out = BTreeMap::new();
    for batch in parquet_batches(&root.join(format!("rule={rule}"))) {
        let devices = batch
            .column_by_name("device")
            .expect("device column")
            .as_string::<i32>()
            .clone();
        let seqs = batch
            .column_by_name("seq")
            .expect("seq column")
            .as_primitive::<Int64Type>()
            .clone();
        for i in 0..batch.num_rows() {
            if devices.is_null(i) || seqs.is_null(i) {
                continue;
            }
            *out.entry((devices.value(i).to_string(), seqs.value(i)))
                .or_insert(0) += 1;
        }
    }
    out
}

/// Total rows in `rule`'s files (footer counts; cheap to poll).
pub fn rule_rows(root: &Path, rule: &str) -> u64 {
    sluice::cli::summary::rows_per_rule(root)
        .ok()
        .and_then(|m| m.get(rule).map(|f| f.rows))
        .unwrap_or(0)
}

/// Every (device, seq) the fleet sends, filtered.
pub fn expected(devices: usize, per_device: u64, keep: impl Fn(i64) -> bool) -> Vec<(String, i64)> {
    let mut v = Vec::new();
    for d in 0..devices {
        for seq in 0..per_device as i64 {
            if keep(seq) {
                v.push((sluice_loadtest::fleet::device_name(d), seq));
            }
        }
    }
    v.sort();
    v
}

/// Publishes a fleet's messages and asserts the broker acked all of them.
pub fn publish_fleet(
    cfg: sluice_loadtest::fleet::FleetConfig,
) -> sluice_loadtest::fleet::FleetReport {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt
        .block_on(sluice_loadtest::fleet::run(cfg, Duration::from_secs(120)))
        .unwrap();
    assert_eq!(
        report.acked, report.published,
        "broker acked every QoS1 publish"
    );
    report
}

/// Missing keys and the number of duplicate rows, against the expectation.
pub fn compare(
    found: &BTreeMap<(String, i64), u32>,
    expected: &[(String, i64)],
) -> (Vec<(String, i64)>, u64) {
    let missing: Vec<_> = expected
        .iter()
        .filter(|k| !found.contains_key(*k))
        .cloned()
        .collect();
    let duplicates = found
        .values()
        .map(|&n| u64::from(n.saturating_sub(1)))
        .sum();
    (missing, duplicates)
}

/// Publishes raw (topic, payload) pairs with QoS 1 and waits until the broker acked them all.
pub fn publish_raw(broker: &str, messages: Vec<(String, Vec<u8>)>) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (host, port) = sluice_common::addr::host_port(broker).unwrap();
        let mut opts = MqttOptions::new(format!("raw-{}", free_port()), host, port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let total = messages.len();
        let sender = tokio::spawn(async move {
            for (topic, payload) in messages {
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
            client
        });
        let mut acked = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while acked < total {
            let ev = tokio::time::timeout_at(deadline, eventloop.poll())
                .await
                .expect("acks within 60s");
            if let Ok(Event::Incoming(Packet::PubAck(_))) = ev {
                acked += 1;
            }
        }
        let client = sender.await.unwrap();
        client.disconnect().await.ok();
    });
}

/// Reads every record of a Kafka topic from the beginning until `want` were read (or 60 s):
/// (key, value, headers).
pub fn read_topic(
    bootstrap: &str,
    topic: &str,
    want: usize,
) -> Vec<(Vec<u8>, Vec<u8>, BTreeMap<String, String>)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("test-reader-{}", free_port()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers = BTreeMap::new();
            if let Some(h) = m.headers() {
                for h in h.iter() {
                    headers.insert(
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
        }
    }
    out
}

/// GETs a JSON document from the API (no token); panics unless 200.
pub fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let (code, body) = http_get(addr, path).unwrap_or_else(|| panic!("GET {path}: no answer"));
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Publishes one JSON message per (device, payload) on `devices/<device>/telemetry`.
pub fn publish_json<D: AsRef<str>>(broker: &str, messages: &[(D, serde_json::Value)]) {
    let raw = messages
        .iter()
        .map(|(d, v)| {
            let topic = format!("devices/{}/telemetry", d.as_ref());
            (topic, v.to_string().into_bytes())
        })
        .collect();
    publish_raw(broker, raw);
}

/// Runs the `sluice` command in `dir` to completion: (exit code, stdout then stderr).
pub fn sluice_cli(args: &[&str], dir: &Path) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).current_dir(dir);
    run_to_text(cmd)
}

/// [`sluice_cli`] in the working directory with `SLUICE_TOKEN` set to `token`, or unset.
pub fn sluice_cli_token(args: &[&str], token: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(args).env_remove("SLUICE_TOKEN");
    if let Some(t) = token {
        cmd.env("SLUICE_TOKEN", t);
    }
    run_to_text(cmd)
}

/// `promtool <args>` (Debian's `prometheus` package; `.ci/run` installs it), `stdin` piped
/// in; panics with its report unless it succeeds.
pub fn promtool(args: &[&str], stdin: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: apt-get install prometheus (as .ci/run does)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{report}");
}

fn run_to_text(mut cmd: Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `publish_fleet` on a thread, so the test can act while the fleet publishes.
pub fn publish_fleet_in_background(
    broker: String,
    devices: usize,
    messages_per_device: u64,
    rate: u64,
) -> std::thread::JoinHandle<sluice_loadtest::fleet::FleetReport> {
    std::thread::spawn(move || {
        publish_fleet(sluice_loadtest::fleet::FleetConfig {
            broker,
            devices,
            messages_per_device,
            rate,
            ..Default::default()
        })
    })
}

/// The value of the series of `name` carrying every one of `labels` in a Prometheus text
/// exposition.
pub fn metric_value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of every labelled series of `name` that carries all of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A rule that records where each row's Kafka record is: with [`kafka_order`], tells a
/// message Kafka holds twice (two offsets) from one record's rows written twice.
pub const ORDER_RULE: &str = "[[rules]]\nname = \"order\"\n\
    sql = \"SELECT device, seq, _partition AS p, _offset AS o FROM telemetry\"\n\
    actions = [\"lake\"]\n";

/// The most messages one ingest process can have in Kafka without their PUBACK sent when it
/// is killed: acknowledgements go out in arrival order, and ingest holds at most 16 windows
/// of `ingest.max_inflight` (default 1000) before it stops reading, plus the one being
/// produced. A kill costs at most this many copies in Kafka.
pub const INGEST_WINDOW: usize = 17 * 1000;

/// What the `order` rule's rows (device, seq, partition, offset) show about Kafka.
pub struct KafkaOrder {
    /// Sequence numbers that went backwards in Kafka order (partition, offset), per device.
    pub reordered: usize,
    /// Messages found at more than one offset (written to Kafka twice).
    pub kafka_duplicates: usize,
    /// Rows for the same record (partition, offset) more than once (written to Parquet twice).
    pub written_twice: usize,
    /// The highest offset with rows in Parquet, per partition.
    pub highest: BTreeMap<i32, i64>,
}

pub fn kafka_order(root: &std::path::Path) -> KafkaOrder {
    let mut by_device: BTreeMap<String, Vec<(i32, i64, i64)>> = BTreeMap::new();
    for batch in parquet_batches(&root.join("rule=order")) {
        let col = |name: &str| {
            let c = batch.column_by_name(name).unwrap();
            arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap()
        };
        let (d, s, p, o) = (col("device"), col("seq"), col("p"), col("o"));
        let text = |a: &arrow::array::ArrayRef, i: usize| {
            use arrow::array::AsArray;
            a.as_string::<i32>().value(i).to_string()
        };
        for i in 0..batch.num_rows() {
            by_device.entry(text(&d, i)).or_default().push((
                text(&p, i).parse().unwrap(),
                text(&o, i).parse().unwrap(),
                text(&s, i).parse().unwrap(),
            ));
        }
    }
    let mut order = KafkaOrder {
        reordered: 0,
        kafka_duplicates: 0,
        written_twice: 0,
        highest: BTreeMap::new(),
    };
    for rows in by_device.values_mut() {
        for &(p, o, _) in rows.iter() {
            let highest = order.highest.entry(p).or_insert(o);
            *highest = (*highest).max(o);
        }
        rows.sort();
        let before = rows.len();
        rows.dedup();
        order.written_twice += before - rows.len();
        let mut highest = i64::MIN;
        let mut seen = std::collections::HashSet::new();
        for &(_, _, seq) in rows.iter() {
            if !seen.insert(seq) {
                order.kafka_duplicates += 1;
            } else if seq < highest {
                order.reordered += 1;
            }
            highest = highest.max(seq);
        }
    }
    order
}
