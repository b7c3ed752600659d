//! Whether the front door is up — the gateway listening, or broker mode subscribed — and,
//! when it is not, why: `/readyz` says it, so "starting" never hides "the broker at … refused
//! the connection".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Shared by every restart of the ingest stage and the HTTP API.
#[derive(Default)]
pub struct FrontDoor {
    up: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl FrontDoor {
    /// A front door that is up from the start (a process that runs no ingest).
    pub fn up_already() -> Self {
        let door = Self::default();
        door.set_up();
        door
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Devices' messages can come in (listener bound, subscriptions confirmed).
    pub fn set_up(&self) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.up.store(true, Ordering::Relaxed);
    }

    /// They cannot, and `why` (what failed and what to check).
    pub fn set_down(&self, why: String) {
        self.up.store(false, Ordering::Relaxed);
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// The last reason it went down, while it is down.
    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
