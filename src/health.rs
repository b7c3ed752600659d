//! What a running pipeline shares with the management API: readiness (`/readyz`), the
//! stages' health, and handles the API reads (rules, boards, the front door, devices,
//! scaling). Its own module so that the API and the pipeline that fills it in do not import
//! each other.

use crate::supervise::StageHealth;
use sluice_ingest::front_door::FrontDoor;
use sluice_ingest::gateway::registry::RegistryWriter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Shared state of a running pipeline (for HTTP and summaries).
#[derive(Default)]
pub struct Health {
    pub ready: AtomicBool,
    /// Stages being restarted after a failure (`/readyz` is 503 meanwhile).
    pub stages: StageHealth,
    /// Set when this process routes: the rule status and the reloader.
    pub rules: std::sync::OnceLock<Arc<sluice_router::reload::Reloader>>,
    /// Set when this process routes: alert and compliance state (replaced when the router
    /// restarts with new sinks).
    boards: std::sync::RwLock<Option<sluice_sinks::Boards>>,
    /// Whether devices' messages can come in (gateway listening / broker subscribed).
    pub front_door: std::sync::OnceLock<Arc<FrontDoor>>,
    /// Set with `gateway.device_auth`: provisions and retires device credentials.
    pub devices: std::sync::OnceLock<Arc<RegistryWriter>>,
    /// Set when this process watches lag and rates (`/scaling`).
    pub scaling: std::sync::OnceLock<Arc<sluice_router::scaling::ScalingMonitor>>,
}

impl Health {
    /// The alert and compliance boards of the running router.
    pub fn boards(&self) -> Option<sluice_sinks::Boards> {
        self.boards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_boards(&self, boards: sluice_sinks::Boards) {
        *self.boards.write().unwrap_or_else(|e| e.into_inner()) = Some(boards);
    }

    /// Ready: every stage asked for came up once, and none is being restarted.
    pub fn readiness(&self) -> Result<(), NotReady> {
        let door = self.front_door.get().filter(|d| !d.is_up());
        if let Some(door) = door {
            let why = door.problem().unwrap_or_else(|| "not up yet".into());
            return Err(match self.ready.load(Ordering::Relaxed) {
                false => NotReady::Starting(Some(why)),
                true => NotReady::FrontDoor(why),
            });
        }
        if !self.ready.load(Ordering::Relaxed) {
            return Err(NotReady::Starting(None));
        }
        let problems = self.stages.problems();
        if !problems.is_empty() {
            return Err(NotReady::Restarting(problems));
        }
        match self.scaling.get().and_then(|s| s.raw_topic_problem()) {
            Some(why) => Err(NotReady::RawTopic(why)),
            None => Ok(()),
        }
    }
}

/// Why `/readyz` answers 503.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("starting{}", .0.as_ref().map(|w| format!(": the front door is not up: {w}")).unwrap_or_default())]
    Starting(Option<String>),
    /// The gateway is not listening, or broker mode is not subscribed (and why).
    #[error("the front door is down: {0}")]
    FrontDoor(String),
    /// `stage: reason` of every stage being restarted.
    #[error("{}", .0.join("; "))]
    Restarting(Vec<String>),
    /// The raw topic is gone (deleted while running).
    #[error("{0}")]
    RawTopic(String),
}
