//! Field fault (#24): the disk under the Parquet output fills up mid-stream. Routing stops
//! committing (the records stay in Kafka), `/readyz` says why, nothing acknowledged is lost,
//! and when space returns the router resumes by itself: every (device, seq) once.
//!
//! The small disk is a tmpfs mounted for the test (root, as on the CI machine), grown with a
//! remount: the same file system gets space back, as when an operator frees some.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A size-limited tmpfs, unmounted when dropped (also when the test fails).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let opts = format!("size={size}");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount a {size} tmpfs at {} (needs root)", at.display());
        SmallDisk(at.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let opts = format!("remount,size={size}");
        let ok = Command::new("mount")
            .args(["-o", &opts])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {} with {size}", self.0.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn field_fault_a_full_disk_stops_commits_says_why_and_resumes_when_space_returns() {
    let setup = Setup::new();
    let lake = setup.dir.path().join("lake");
    let disk = SmallDisk::mount(&lake, "96k");
    let extra = format!("{ALL_TO_PARQUET}path = \"{}\"\n", lake.display());
    let http = format!("127.0.0.1:{}", free_port());
    let config = setup.write_config("sluice.toml", &http, &extra);
    let sluice = Sluice::start(&config, &[], Some(http.clone()));

    let (devices, per_device) = (40, 250);
    let publisher = publish_fleet_in_background(setup.mqtt.clone(), devices, per_device, 1_000);
    let mut said = String::new();
    wait_until(
        "/readyz says the disk is full",
        Duration::from_secs(90),
        || {
            let (code, body) = http_get(&http, "/readyz").unwrap_or_default();
            said = body;
            code == 503 && said.contains("No space left")
        },
    );
    let fleet = publisher.join().unwrap();
    assert_eq!(
        fleet.acked,
        (devices as u64) * per_device,
        "every publish acknowledged"
    );

    disk.grow("64m");
    let total = devices as u64 * per_device;
    wait_until(
        "every reading in Parquet once space returned",
        Duration::from_secs(120),
        || rule_rows(&lake, "all") >= total,
    );
    wait_until("ready again", Duration::from_secs(30), || {
        http_get(&http, "/readyz").is_some_and(|(code, _)| code == 200)
    });
    sluice.stop();
    let found = device_seqs(&lake, "all");
    let (missing, duplicates) = compare(&found, &expected(devices, per_device, |_| true));
    println!("disk full: /readyz said {said:?}; after space returned {} rows, {} missing, {duplicates} duplicates",
        found.values().sum::<u32>(), missing.len());
    assert!(
        missing.is_empty(),
        "missing: {:?}",
        &missing[..missing.len().min(5)]
    );
    assert_eq!(duplicates, 0, "rows written twice");
}
