//! TLS, authentication and secrets, against real parts: Mosquitto with a TLS listener, a
//! password file and an ACL; stunnel terminating TLS in front of the embedded Kafka broker;
//! the embedded MQTT broker with users; a webhook URL carrying a secret. Certificates are
//! made per test with the `openssl` command.

mod api_tls;
mod certs;
mod embedded_auth;
mod kafka_tls;
mod mqtt_tls;
mod secrets;

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `sluice run` whose log goes to a file the test reads.
pub struct Logged {
    child: Child,
    pub log: PathBuf,
}

impl Logged {
    pub fn start(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Logged {
        let log = config.with_extension(format!("{}.log", free_port()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(args)
            .envs(env.iter().copied())
            .env("SLUICE_LOG", "info,tansu_storage=off,tansu_broker=off")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start sluice");
        Logged { child, log }
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`; panics with the log when it does not in time.
    pub fn wait_log(&mut self, needle: &str, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self.text().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "sluice exited ({status}) before logging '{needle}':\n{}",
                    self.text()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no '{needle}' in the log within {within:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `/readyz` on `http` answers 200.
    pub fn wait_ready(&mut self, http: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !http_get(http, "/readyz").is_some_and(|(c, _)| c == 200) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sluice exited ({status}) during startup:\n{}", self.text());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready within 120 s:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the process to end on its own; returns whether it failed (non-zero exit).
    pub fn wait_failed_exit(&mut self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return !status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running after {within:?}:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and a clean exit within 60 s.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "sluice exited with {status}:\n{}",
                    self.text()
                );
                return self.text();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process (broker, TLS terminator) killed on drop.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(what: &str, port: u16) {
    wait_until(what, Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// A TOML string literal of a path.
pub fn toml_path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// Every (device, seq) of `devices` × `per_device` is in rule `rule`'s Parquet under `root`.
pub fn assert_all_rows(root: &Path, rule: &str, devices: usize, per_device: u64) {
    let total = devices as u64 * per_device;
    wait_until("every row in Parquet", Duration::from_secs(90), || {
        rule_rows(root, rule) >= total
    });
    let found = device_seqs(root, rule);
    let (missing, _duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    assert!(
        missing.is_empty(),
        "{} missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
