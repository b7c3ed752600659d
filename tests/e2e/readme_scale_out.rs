//! README's "Scale-out on one machine" block, run exactly as written (issue #29) — only its
//! ports are swapped for free ones, in the commands and in a copy of `config/`: the brokers
//! process, two gateway replicas and two routers come up, readings sent through both gateways
//! all reach Parquet, and both routers own partitions of the one consumer group.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The README's block after `marker`: one entry per command (continuation lines joined,
/// comments dropped).
fn readme_commands(marker: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = &readme[readme.find(marker).expect("the scale-out block in README")..];
    let block = after
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let joined = block.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split(" #").next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every `:PORT` (4–5 digits) in `text` replaced by a free port, the same one for the same
/// port everywhere (`ports` remembers them across texts).
fn swap_ports(text: &str, ports: &mut BTreeMap<String, u16>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(':') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if (4..=5).contains(&digits.len()) {
            let free = *ports.entry(digits.clone()).or_insert_with(free_port);
            out.push_str(&free.to_string());
            rest = &rest[digits.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn readme_scale_out_block_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut ports = BTreeMap::new();
    let commands = readme_commands("Scale-out on one machine");
    assert_eq!(commands.len(), 5, "{commands:?}");
    let commands: Vec<String> = commands.iter().map(|c| swap_ports(c, &mut ports)).collect();
    // The config the block names, with the same ports swapped.
    let config_dir = dir.path().join("config");
    copy_dir(&repo.join("config"), &config_dir);
    let toml_path = config_dir.join("sluice.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let mut text = swap_ports(&text, &mut ports);
    text = text.replace("commit_interval_ms = 5000", "commit_interval_ms = 500");
    std::fs::write(&toml_path, text).unwrap();

    let mut running: Vec<Sluice> = Vec::new();
    let mut apis = Vec::new();
    let mut gateways = Vec::new();
    let mut logs = Vec::new();
    for (n, command) in commands.iter().enumerate() {
        let (env, args) = split_command(command);
        let api = env
            .get("SLUICE_HTTP_LISTEN")
            .cloned()
            .unwrap_or_else(|| format!("127.0.0.1:{}", ports["9464"]));
        if let Some(mqtt) = env.get("SLUICE_MQTT_LISTEN") {
            gateways.push(mqtt.clone());
        }
        // The block sets no log level: each process logs at the default, as a newcomer's does.
        let log = dir.path().join(format!("process-{n}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args[1..])
            .envs(&env)
            .env_remove("SLUICE_LOG")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sluice");
        running.push(Sluice {
            child,
            http: Some(api.clone()),
        });
        let last = running.last_mut().unwrap();
        wait_until(
            &format!("`{command}` ready"),
            Duration::from_secs(120),
            || {
                assert!(
                    last.child.try_wait().unwrap().is_none(),
                    "`{command}` exited"
                );
                http_get(&api, "/readyz").is_some_and(|(code, _)| code == 200)
            },
        );
        apis.push(api);
        logs.push((command.clone(), log));
    }
    assert_eq!(gateways.len(), 2, "two gateway replicas: {commands:?}");

    let mut sent = 0;
    for (g, gateway) in gateways.iter().enumerate() {
        let messages: Vec<(String, serde_json::Value)> = (0..20)
            .flat_map(|d| {
                (0..10).map(move |seq| (format!("gw{g}-dev-{d}"), serde_json::json!({"seq": seq})))
            })
            .collect();
        sent += messages.len() as u64;
        publish_json(gateway, &messages);
    }
    let roots: Vec<PathBuf> = ["data-r1", "data-r2"]
        .iter()
        .map(|d| dir.path().join(d).join("parquet"))
        .collect();
    wait_until(
        "every reading in the routers' Parquet",
        Duration::from_secs(90),
        || {
            roots
                .iter()
                .map(|r| rule_rows(r, "all_telemetry"))
                .sum::<u64>()
                >= sent
        },
    );
    // The group's rebalance gives the second router its share (it may join after the rows).
    let owned = |api: &String| {
        let metrics = http_get(api, "/metrics").map(|r| r.1).unwrap_or_default();
        metric_value(&metrics, "sluice_router_partitions_owned", &[]).unwrap_or(0.0)
    };
    wait_until(
        "both routers own partitions",
        Duration::from_secs(60),
        || apis[3..].iter().all(|api| owned(api) >= 1.0),
    );
    for s in running.drain(..).rev() {
        s.stop();
    }
    for (command, log) in &logs {
        assert_log_is_readable(command, &std::fs::read_to_string(log).unwrap());
    }
}

/// Issue #29.5: a router joining the group made the embedded Kafka broker log its stored group
/// document (~2 000 characters a line) at ERROR, and a clean stop ended with librdkafka's
/// `AllBrokersDown` errors. A newcomer's log has neither.
fn assert_log_is_readable(command: &str, log: &str) {
    let long: Vec<&str> = log.lines().filter(|l| l.len() > 600).collect();
    assert!(
        long.is_empty(),
        "`{command}` logged {} lines over 600 characters, the first: {}",
        long.len(),
        long.first().map(|l| &l[..600]).unwrap_or("")
    );
    assert!(
        !log.contains("SerdeJson"),
        "`{command}` logged a storage error:\n{log}"
    );
    let stopped = log
        .find("sluice stopped cleanly")
        .unwrap_or_else(|| panic!("`{command}` did not log a clean stop:\n{log}"));
    let after: Vec<&str> = log[stopped..]
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("AllBrokersDown"))
        .collect();
    assert!(
        after.is_empty(),
        "`{command}` logged errors after its clean stop: {after:?}"
    );
}

/// `A=1 B=2 sluice run …` → ({A: 1, B: 2}, ["sluice", "run", …]).
fn split_command(command: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut env = BTreeMap::new();
    let mut words = command.split_whitespace().peekable();
    while let Some((k, v)) = words.peek().and_then(|w| w.split_once('=')) {
        env.insert(k.to_string(), v.to_string());
        words.next();
    }
    let args: Vec<String> = words.map(String::from).collect();
    assert_eq!(args[0], "sluice", "{command}");
    (env, args)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        match entry.file_type().unwrap().is_dir() {
            true => copy_dir(&entry.path(), &target),
            false => {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
}
