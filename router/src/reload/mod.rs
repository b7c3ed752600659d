//! Rule changes while the router runs: a new rule set is compiled elsewhere (the reloader),
//! offered here, and taken by the router at the next batch boundary, so every batch is routed
//! by exactly one set. A set that fails to compile is never offered; the running one stays and
//! the failure is kept for `/rules` and counted.
//!
//! [`watch`]: the reloader that re-reads the rule files and the devices CSV while running.

mod watch;
pub use watch::{load_devices, Reloaded, Reloader};

use crate::events::{RulesActivated, RulesReloaded};
use serde::Serialize;
use sluice_common::Event;
use sluice_config::{RuleConfig, RuleOrigin};
use sluice_processors::rule::RuleSet;
use std::sync::{Mutex, RwLock};

/// What `/rules` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RulesStatus {
    /// The active set's content hash, hex.
    pub version: String,
    pub active_since_ms: i64,
    pub rules: Vec<RuleInfo>,
    pub fallback_action: Option<String>,
    /// A set compiled and waiting for the next batch boundary.
    pub pending_version: Option<String>,
    pub last_reload: Option<ReloadOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub name: String,
    pub actions: Vec<String>,
    pub error_action: Option<String>,
    pub description: Option<String>,
    /// `rules[2]` in the config, or the rule file.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadOutcome {
    pub at_ms: i64,
    pub ok: bool,
    pub version: Option<String>,
    pub errors: Vec<String>,
}

/// The hand-over point between the reloader and the router.
#[derive(Debug, Default)]
pub struct RuleControl {
    pending: Mutex<Option<(RuleSet, Vec<RuleInfo>)>>,
    status: RwLock<RulesStatus>,
    /// The configs of the latest set offered: what a restarted router compiles.
    latest: Mutex<Option<Vec<RuleConfig>>>,
}

pub fn version_hex(v: u64) -> String {
    format!("{v:016x}")
}

pub fn rule_infos(configs: &[RuleConfig]) -> Vec<RuleInfo> {
    configs
        .iter()
        .map(|c| RuleInfo {
            name: c.name.clone(),
            actions: c.actions.clone(),
            error_action: c.error_action.clone(),
            description: c.description.clone(),
            source: match &c.origin {
                RuleOrigin::File { path, .. } => path.display().to_string(),
                RuleOrigin::Config(i) => format!("rules[{i}]"),
                RuleOrigin::Inline => String::new(),
            },
        })
        .collect()
}

use sluice_common::now_ms;

impl RuleControl {
    /// Control for a router starting with `active`.
    pub fn new(active: &RuleSet, configs: &[RuleConfig]) -> Self {
        let control = Self::default();
        control.set_active(active, rule_infos(configs));
        control
    }

    fn set_active(&self, set: &RuleSet, rules: Vec<RuleInfo>) {
        let mut s = self.status.write().unwrap_or_else(|e| e.into_inner());
        s.version = version_hex(set.version);
        s.active_since_ms = now_ms();
        s.rules = rules;
        s.fallback_action = set.fallback_action.clone();
        s.pending_version = None;
        RulesActivated {
            version: set.version,
            rules: set.rules(),
        }
        .emit();
    }

    /// The version a new set must differ from to be worth offering (pending, else active).
    pub fn latest_version(&self) -> String {
        let s = self.status.read().unwrap_or_else(|e| e.into_inner());
        s.pending_version
            .clone()
            .unwrap_or_else(|| s.version.clone())
    }

    /// Offers a compiled set; the router takes it at its next batch boundary.
    pub fn offer(&self, set: RuleSet, configs: &[RuleConfig]) {
        let version = version_hex(set.version);
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = Some((set, rule_infos(configs)));
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(configs.to_vec());
        let mut s = self.status.write().unwrap_or_else(|e| e.into_inner());
        s.pending_version = Some(version.clone());
        s.last_reload = Some(ReloadOutcome {
            at_ms: now_ms(),
            ok: true,
            version: Some(version),
            errors: vec![],
        });
        RulesReloaded { errors: None }.emit();
    }

    /// Records a failed reload. Returns false when it is the same failure as last time (the
    /// periodic check sees an unchanged broken file again), which is then not counted again.
    pub fn failed(&self, errors: Vec<String>) -> bool {
        let mut s = self.status.write().unwrap_or_else(|e| e.into_inner());
        if s.last_reload
            .as_ref()
            .is_some_and(|r| !r.ok && r.errors == errors)
        {
            return false;
        }
        RulesReloaded {
            errors: Some(&errors),
        }
        .emit();
        s.last_reload = Some(ReloadOutcome {
            at_ms: now_ms(),
            ok: false,
            version: None,
            errors,
        });
        true
    }

    /// Called by the router between batches: the new set, if one was offered.
    pub fn take(&self) -> Option<RuleSet> {
        let (set, infos) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        self.set_active(&set, infos);
        tracing::info!(version = %version_hex(set.version), rules = set.rules().len(), "rule set activated");
        Some(set)
    }

    /// The rules of the latest reload, if any (else the config's rules are current).
    pub fn latest_rules(&self) -> Option<Vec<RuleConfig>> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn status(&self) -> RulesStatus {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
