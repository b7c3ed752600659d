//! An S3-compatible server process (`s3s-fs`, from crates.io; `.ci/run` installs it) on a free
//! port, storing objects as files under a directory of the test's, and pyarrow's S3 file
//! system to read Parquet back as an analyst would.

use super::{free_port, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ACCESS_KEY: &str = "sluice-test";
pub const REGION: &str = "us-east-1";

pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub root: PathBuf,
    secret: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let candidates = [
        std::env::var_os("SLUICE_S3S_FS").map(PathBuf::from),
        Some(PathBuf::from("/var/tmp/sluice-tools/bin/s3s-fs")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .or_else(|| {
            let which = Command::new("which").arg("s3s-fs").output().ok()?;
            let path = String::from_utf8(which.stdout).ok()?;
            (!path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
        })
        .expect(
            "s3s-fs is installed (cargo install s3s-fs --version 0.14.1 --features binary \
             --root /var/tmp/sluice-tools; .ci/run does this)",
        )
}

/// Starts the server with `buckets` created, and waits until it accepts connections.
pub fn spawn(dir: &Path, buckets: &[&str]) -> S3Server {
    let root = dir.join("s3");
    for b in buckets {
        std::fs::create_dir_all(root.join(b)).unwrap();
    }
    let port = free_port();
    let secret = format!("secret-{}", std::process::id());
    let child = start(dir, &root, port, &secret);
    S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        root,
        secret,
    }
}

fn start(dir: &Path, root: &Path, port: u16, secret: &str) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("s3s-fs.log"))
        .unwrap();
    let child = Command::new(binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", secret])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start s3s-fs");
    wait_until("s3s-fs listening", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

impl S3Server {
    /// An outage: the server process killed, its port closed; the objects stay on disk.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server back after [`S3Server::stop`], on the same port and objects.
    pub fn restart(&mut self) {
        let port: u16 = self.endpoint.rsplit(':').next().unwrap().parse().unwrap();
        let dir = self.root.parent().unwrap().to_path_buf();
        self.child = start(&dir, &self.root, port, &self.secret);
    }

    /// The standard AWS environment a Sluice process reads its credentials from.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", REGION.to_string()),
        ]
    }

    /// A Parquet sink writing to `s3://<bucket>/<prefix>` on this server (TOML).
    pub fn parquet_sink(&self, name: &str, bucket: &str, prefix: &str) -> String {
        format!(
            "[sinks.{name}]\ntype = \"parquet\"\npath = \"s3://{bucket}/{prefix}\"\n\
             storage_options = {{ endpoint = \"{}\", allow_http = \"true\" }}\n",
            self.endpoint
        )
    }

    /// (device, seq) → count of rows, read with pyarrow's S3 file system from
    /// `<bucket>/<prefix>/rule=<rule>`, the way an analyst would.
    pub fn device_seqs(
        &self,
        bucket: &str,
        prefix: &str,
        rule: &str,
    ) -> std::collections::BTreeMap<(String, i64), u32> {
        let script = r#"
import sys, collections
import pyarrow.dataset as ds, pyarrow.fs as fs
endpoint, key, secret, region, path = sys.argv[1:6]
s3 = fs.S3FileSystem(access_key=key, secret_key=secret, region=region,
                     endpoint_override=endpoint.split("://")[1], scheme="http")
# List, then read the files: s3s-fs answers a HEAD on a prefix (a missing key) with a 500.
listed = s3.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
files = [f.path for f in listed if f.type == fs.FileType.File and f.path.endswith(".parquet")]
if files:
    table = ds.dataset(files, filesystem=s3, format="parquet").to_table(columns=["device", "seq"])
    for d, s in zip(table.column("device").to_pylist(), table.column("seq").to_pylist()):
        print(f"{d}\t{s}")
"#;
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                &self.endpoint,
                ACCESS_KEY,
                &self.secret,
                REGION,
            ])
            .arg(format!("{bucket}/{prefix}/rule={rule}"))
            .output()
            .expect("python3 with pyarrow");
        assert!(
            out.status.success(),
            "pyarrow read: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut seqs = std::collections::BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((d, s)) = line.split_once('\t') {
                *seqs.entry((d.to_string(), s.parse().unwrap())).or_insert(0) += 1;
            }
        }
        seqs
    }

    /// Object keys under `<bucket>/<prefix>` (the server keeps them as files).
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let base = self.root.join(bucket);
        sluice_common::fs::files_under(&base.join(prefix))
            .into_iter()
            .filter_map(|p| Some(p.strip_prefix(&base).ok()?.display().to_string()))
            .collect()
    }
}
