//! Delta Lake output (`format = "delta"`): routers `kill -9`ed under load, on local disk and
//! on an S3-compatible server, leave every (device, seq) in the table exactly once, read back
//! with the `deltalake` Python package, and the table's history shows one commit per router
//! checkpoint. A field that appears mid-stream widens the table; `sluice lake optimize`
//! compacts while a router writes, without changing a row; polars reads an older version.

use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where a test's table lives, for the Rust poller and the Python readers.
struct TableAt {
    uri: String,
    /// Storage options as `deltalake-core` (Rust) takes them.
    options: HashMap<String, String>,
    /// The same for delta-rs in Python.
    py_options: Value,
}

impl TableAt {
    fn local(root: &Path, rule: &str) -> Self {
        let uri = url::Url::from_directory_path(root.join(rule))
            .unwrap()
            .to_string();
        TableAt {
            uri: uri.trim_end_matches('/').to_string(),
            options: HashMap::new(),
            py_options: json!({}),
        }
    }

    fn s3(s3: &s3::S3Server, bucket: &str, prefix: &str, rule: &str) -> Self {
        let env: HashMap<_, _> = s3.env().into_iter().collect();
        let options = HashMap::from([
            ("endpoint".into(), s3.endpoint.clone()),
            ("allow_http".into(), "true".into()),
            ("access_key_id".into(), env["AWS_ACCESS_KEY_ID"].clone()),
            (
                "secret_access_key".into(),
                env["AWS_SECRET_ACCESS_KEY"].clone(),
            ),
            ("region".into(), env["AWS_REGION"].clone()),
        ]);
        let py_options = json!({
            "AWS_ENDPOINT_URL": s3.endpoint, "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
            "AWS_REGION": env["AWS_REGION"], "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        });
        TableAt {
            uri: format!("s3://{bucket}/{prefix}/{rule}"),
            options,
            py_options,
        }
    }

    /// Rows in the table's current version (0 before it exists): cheap to poll.
    fn rows(&self) -> u64 {
        let url = url::Url::parse(&self.uri).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            match sluice_sinks::delta::lake::open(&url, &self.options).await {
                Ok(Some(table)) => sluice_sinks::delta::lake::size(&table)
                    .await
                    .map_or(0, |s| s.1),
                _ => 0,
            }
        })
    }

    fn python(&self, args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/delta.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(args[0])
            .arg(&self.uri)
            .arg(self.py_options.to_string())
            .args(&args[1..])
            .output()
            .expect("python3 with deltalake and polars");
        assert!(
            out.status.success(),
            "delta.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (device, seq) → rows, read with the `deltalake` package.
    fn seqs(&self) -> BTreeMap<(String, i64), u32> {
        let mut seqs = BTreeMap::new();
        for line in self.python(&["seqs"]).lines() {
            if let Some((d, s)) = line.split_once('\t') {
                *seqs.entry((d.to_string(), s.parse().unwrap())).or_insert(0) += 1;
            }
        }
        seqs
    }

    fn history(&self) -> Vec<Value> {
        serde_json::from_str(&self.python(&["history"])).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.python(args)).unwrap()
    }
}

/// Every WRITE commit names the router checkpoint that made it, and no checkpoint made two.
fn assert_one_commit_per_checkpoint(table: &TableAt) -> usize {
    let history = table.history();
    let writes: Vec<&Value> = history
        .iter()
        .filter(|h| h["operation"] == "WRITE")
        .collect();
    let mut checkpoints = std::collections::BTreeSet::new();
    for w in &writes {
        let s = &w["sluice"];
        assert!(s["writer"].is_string() && s["checkpoint"].is_u64(), "{w}");
        let key = (s["writer"].to_string(), s["checkpoint"].as_u64().unwrap());
        assert!(
            checkpoints.insert(key),
            "two commits from one checkpoint: {w}"
        );
    }
    assert!(!writes.is_empty());
    writes.len()
}

const DEVICES: usize = 50;
const PER_DEVICE: u64 = 1000;

/// Brokers and ingest in one process, two routers in a group writing one table; routers are
/// crashed three times mid-stream (the first aborts itself before a Kafka commit, then the
/// second and the first are killed), each restarted. `sink` is the sink's TOML.
fn routers_killed_under_load(setup: &Setup, sink: &str, table: &TableAt, env: &[(&str, &str)]) {
    let rules = format!(
        "[[rules]]\nname = \"all\"\nsql = \"SELECT device, seq FROM telemetry\"\n\
         actions = [\"lake\"]\n{sink}"
    );
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, &rules);
    // Each router has an HTTP address, so that a (re)start waits for it to be ready: a
    // SIGTERM that lands before a fresh process installed its handler kills it (CI saw
    // "exited with signal: 15" when the table was complete right after a restart).
    let https: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let configs: Vec<PathBuf> = ["router-a.toml", "router-b.toml"]
        .iter()
        .zip(&https)
        .map(|(n, http)| setup.write_config(n, http, &rules))
        .collect();
    // The first router's first life ends by aborting itself between a Delta commit and the
    // Kafka commit (its 20th checkpoint): its partitions' next owner replays records whose
    // rows the table already has, which the txn versions must skip.
    let mut abort_env: Vec<(&str, &str)> = env.to_vec();
    abort_env.push(("SLUICE_FAULT_ABORT_BEFORE_COMMIT", "20"));
    let router = |i: usize, env: &[(&str, &str)]| {
        Sluice::start_with_env(
            &configs[i],
            &["--only", "router"],
            Some(https[i].clone()),
            env,
        )
    };
    let brokers = Sluice::start(
        &config,
        &["--only", "brokers", "--only", "ingest"],
        Some(http),
    );
    let mut routers = vec![router(0, &abort_env), router(1, env)];
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), DEVICES, PER_DEVICE, 1_500);
    let total = DEVICES as u64 * PER_DEVICE;
    wait_until(
        "the first router aborts itself before a commit",
        Duration::from_secs(120),
        || routers[0].child.try_wait().ok().flatten().is_some(),
    );
    assert!(
        !publisher.is_finished(),
        "the fleet had finished before the abort"
    );
    routers[0] = router(0, env);
    let mut kills = vec![];
    for victim in [1, 0] {
        let before = table.rows();
        wait_until("the routers write rows", Duration::from_secs(180), || {
            table.rows() > before
        });
        assert!(
            !publisher.is_finished(),
            "the fleet had finished before kill {victim}"
        );
        routers.remove(victim).kill();
        let at_kill = table.rows();
        kills.push(at_kill);
        wait_until("the survivor writes on", Duration::from_secs(90), || {
            table.rows() > at_kill
        });
        routers.insert(victim, router(victim, env));
    }
    publisher.join().unwrap();
    wait_until(
        "every message is in the table",
        Duration::from_secs(180),
        || table.rows() >= total,
    );
    for r in routers {
        r.stop();
    }
    brokers.stop();

    let found = table.seqs();
    let (missing, duplicates) = compare(&found, &expected(DEVICES, PER_DEVICE, |_| true));
    let commits = assert_one_commit_per_checkpoint(table);
    println!(
        "delta kill test ({}): rows at the kills {kills:?}, {} distinct, {duplicates} duplicates, \
         {commits} commits",
        table.uri,
        found.len()
    );
    assert!(
        missing.is_empty(),
        "{} missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(duplicates, 0, "rows written twice");
    assert_eq!(table.rows(), total);
}

#[test]
fn delta_table_on_disk_keeps_every_record_once_across_router_kills() {
    let setup = Setup::new();
    let sink = "[sinks.lake]\ntype = \"parquet\"\nformat = \"delta\"\n";
    let table = TableAt::local(&setup.parquet_root(), "all");
    routers_killed_under_load(&setup, sink, &table, &[]);
}

#[test]
fn delta_table_on_s3_keeps_every_record_once_across_router_kills() {
    let setup = Setup::new();
    let s3 = s3::spawn(setup.dir.path(), &["lake"]);
    let sink = format!(
        "{}format = \"delta\"\n",
        s3.parquet_sink("lake", "lake", "tables")
    );
    let table = TableAt::s3(&s3, "lake", "tables", "all");
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    routers_killed_under_load(&setup, &sink, &table, &env);
}

/// One process, two rules into one Delta sink: `wide` (every field) gets a field mid-stream;
/// `all` is compacted by `sluice lake optimize` while the fleet publishes.
#[test]
fn delta_schema_widens_and_optimize_compacts_while_a_router_writes() {
    let setup = Setup::new();
    let rules = "[[rules]]\nname = \"all\"\nsql = \"SELECT device, seq FROM telemetry\"\n\
                 actions = [\"lake\"]\n\
                 [[rules]]\nname = \"wide\"\nsql = \"SELECT * FROM telemetry WHERE device_id() = 'probe'\"\n\
                 actions = [\"lake\"]\n\
                 [sinks.lake]\ntype = \"parquet\"\nformat = \"delta\"\n";
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, rules);
    let sluice = Sluice::start(&config, &[], Some(http));

    // A field appears mid-stream.
    let wide = TableAt::local(&setup.parquet_root(), "wide");
    let old: Vec<_> = (0..20)
        .map(|i| ("probe", json!({"seq": i, "temp": 20.5})))
        .collect();
    publish_json(&setup.mqtt, &old);
    wait_until("the first 20 rows", Duration::from_secs(60), || {
        wide.rows() == 20
    });
    let before_field = wide.history().last().unwrap()["version"].as_u64().unwrap();
    let new: Vec<_> = (20..40)
        .map(|i| ("probe", json!({"seq": i, "temp": 21.5, "fw": "2.1.0"})))
        .collect();
    publish_json(&setup.mqtt, &new);
    wait_until("all 40 rows", Duration::from_secs(60), || wide.rows() == 40);
    let fw = wide.json(&["column", "fw"]);
    assert_eq!(fw["rows"], 40, "{fw}");
    assert_eq!(
        fw["nulls"], 20,
        "older rows read the new column as NULL: {fw}"
    );
    // Time travel: polars reads the version before the field, as it was.
    let then = wide.json(&["count", &before_field.to_string()]);
    assert_eq!(then["rows"], 20, "{then}");

    // Many small files (a commit every 500 ms), compacted while the router writes.
    let all = TableAt::local(&setup.parquet_root(), "all");
    let (devices, per_device) = (20, 400);
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), devices, per_device, 1_000);
    wait_until("ten commits", Duration::from_secs(60), || {
        all.history().len() > 10
    });
    assert!(
        !publisher.is_finished(),
        "the fleet had finished before optimize"
    );
    let (code, out) = sluice_cli(
        &["lake", "optimize", "--config", config.to_str().unwrap()],
        setup.dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("compacted"), "{out}");
    publisher.join().unwrap();
    let total = devices as u64 * per_device;
    wait_until(
        "every message is in the table",
        Duration::from_secs(120),
        || all.rows() >= total,
    );

    let history = all.history();
    let optimize = history
        .iter()
        .find(|h| h["operation"] == "OPTIMIZE")
        .unwrap_or_else(|| panic!("no OPTIMIZE in {history:?}"));
    let v = optimize["version"].as_u64().unwrap();
    let (before, after) = (
        all.json(&["count", &(v - 1).to_string()]),
        all.json(&["count", &v.to_string()]),
    );
    println!("optimize at version {v}: {before} → {after}");
    assert_eq!(before["rows"], after["rows"], "optimize changed no row");
    assert!(
        after["files"].as_u64() < before["files"].as_u64(),
        "{before} → {after}"
    );
    let found = all.seqs();
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    assert!(
        missing.is_empty() && duplicates == 0,
        "{} missing, {duplicates} twice",
        missing.len()
    );

    // Vacuum deletes the compacted files; the table still reads whole.
    let (code, out) = sluice_cli(
        &[
            "lake",
            "vacuum",
            "--retain",
            "0",
            "--config",
            config.to_str().unwrap(),
        ],
        setup.dir.path(),
    );
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("/all:"))
        .unwrap_or_default();
    assert!(
        line.contains("deleted") && !line.contains("deleted 0 files"),
        "{out}"
    );
    let (missing, duplicates) = compare(&all.seqs(), &expected(devices, per_device, |_| true));
    assert!(
        missing.is_empty() && duplicates == 0,
        "after vacuum: {} missing",
        missing.len()
    );
    sluice.stop();
}
