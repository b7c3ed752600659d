//! Hot reload of rules and device metadata while `sluice run` routes.
//!
//! The reloader re-reads the config file and its rule files (every
//! `router.rules_reload_interval_ms`, and on `POST /rules/reload`), and when the rules'
//! content hash changed, compiles the new set and offers it to the router, which swaps it in
//! at its next batch boundary. Any problem (TOML, rule SQL, an action naming a sink that is not
//! running — sinks change only on restart) leaves the running set in place; the errors are
//! logged, shown on `/rules` and counted. The devices CSV is re-read when its mtime changes.

use super::{version_hex, RuleControl};
use crate::events::DeviceTableChanged;
use sluice_common::Event;
use sluice_config::Config;
use sluice_processors::rule::devices::{read_devices_csv, DeviceTags};
use sluice_processors::rule::{version_of, RuleSet};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

pub struct Reloader {
    source: PathBuf,
    sinks: BTreeSet<String>,
    pub devices: DeviceTags,
    pub control: Arc<RuleControl>,
    /// `devices.max_devices`: the API may not grow the table past it.
    pub max_devices: usize,
    devices_seen: Mutex<Option<(SystemTime, u64)>>,
    /// One reload at a time (the timer and an API call may race).
    busy: tokio::sync::Mutex<()>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// A new set was compiled and offered (its version).
    New(String),
    /// The rules are the ones already running (or already offered).
    Unchanged(String),
}

impl Reloader {
    pub fn new(
        config: &Config,
        sinks: BTreeSet<String>,
        devices: DeviceTags,
        control: Arc<RuleControl>,
    ) -> Option<Self> {
        Some(Self {
            source: config.source.clone()?,
            sinks,
            devices,
            control,
            max_devices: config.devices.max_devices,
            // The caller loaded the table just now: the first look must not load it again.
            devices_seen: Mutex::new(config.devices.file.as_deref().and_then(file_stamp)),
            busy: tokio::sync::Mutex::new(()),
        })
    }

    /// Re-reads and, if changed, compiles and offers the rules. All problems at once.
    pub async fn reload(&self) -> Result<Reloaded, Vec<String>> {
        let _one = self.busy.lock().await;
        let outcome = self.compile();
        if let Err(errors) = &outcome {
            self.control.failed(errors.clone());
        }
        outcome
    }

    fn compile(&self) -> Result<Reloaded, Vec<String>> {
        let (config, mut errors) = sluice_config::load_unvalidated(&self.source)
            .map_err(|e| e.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let mut problems: Vec<String> = errors.drain(..).map(|e| e.to_string()).collect();
        problems.extend(config.rule_problems(true).iter().map(ToString::to_string));
        // Names of sinks defined in the new config but not running (sinks change only on
        // restart); names defined nowhere are among `rule_problems` already.
        let named = config.rules.iter().flat_map(|rule| {
            let actions = rule.actions.iter().chain(&rule.error_action);
            actions.map(move |a| (format!("rule '{}'", rule.name), a))
        });
        let fallback = config.router.fallback_action.iter();
        let named = named.chain(fallback.map(|a| ("router.fallback_action".to_string(), a)));
        for (who, action) in named {
            if !self.sinks.contains(action) && config.sinks.contains_key(action) {
                problems.push(format!(
                    "{who}: sink '{action}' is not running; sinks change only on restart"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let version = version_hex(version_of(&config.rules));
        if version == self.control.latest_version() {
            return Ok(Reloaded::Unchanged(version));
        }
        let set = RuleSet::compile_with(&config.rules, &self.devices)
            .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?
            .with_fallback(config.router.fallback_action.clone());
        self.control.offer(set, &config.rules);
        tracing::info!(%version, "rules reloaded; active from the next batch");
        Ok(Reloaded::New(version))
    }

    /// Re-reads the devices CSV if it changed since the last look.
    pub fn reload_devices(&self, config: &Config) {
        let Some(path) = &config.devices.file else {
            return;
        };
        let stamp = file_stamp(path);
        let mut seen = self.devices_seen.lock().unwrap_or_else(|e| e.into_inner());
        if stamp.is_none() || *seen == stamp {
            return;
        }
        *seen = stamp;
        load_devices(config, &self.devices);
    }

    /// Runs until `stop`: checks rules and devices every `interval`.
    pub async fn watch(
        self: Arc<Self>,
        config: Config,
        interval: Duration,
        stop: CancellationToken,
    ) {
        if interval.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let _ = self.reload().await;
            self.reload_devices(&config);
        }
    }
}

/// When a file last changed and its size: a changed stamp means read it again.
fn file_stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Loads the devices CSV into `devices`; a problem is logged and the old table stays.
pub fn load_devices(config: &Config, devices: &DeviceTags) {
    let Some(path) = &config.devices.file else {
        return;
    };
    match read_devices_csv(path, config.devices.max_devices) {
        Ok((table, skipped)) => {
            if skipped > 0 {
                crate::events::DevicesSkipped {
                    skipped,
                    max: config.devices.max_devices,
                }
                .emit();
            }
            DeviceTableChanged {
                devices: table.len(),
            }
            .emit();
            tracing::info!(devices = table.len(), file = %path.display(), "device metadata loaded");
            devices.replace(table);
        }
        Err(e) => crate::events::DevicesLoadFailed { error: &e }.emit(),
    }
}
