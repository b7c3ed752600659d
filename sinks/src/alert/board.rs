//! [`AlertBoard`]: the alert state shared by the sink (router thread), its delivery worker
//! and the HTTP API, and the count of notifications waiting for the worker.

use super::book::{self, Alert, AlertBook};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Alert state shared by the sink, its delivery worker and the HTTP API.
pub struct AlertBoard {
    book: Mutex<AlertBook>,
    failures: Mutex<Vec<(u64, String)>>,
    /// Notifications handed to the delivery worker and not yet done (the backlog).
    queued: AtomicUsize,
}

impl AlertBoard {
    pub(super) fn new(book: AlertBook) -> Self {
        Self {
            book: Mutex::new(book),
            failures: Mutex::new(vec![]),
            queued: AtomicUsize::new(0),
        }
    }

    pub(super) fn book(&self) -> MutexGuard<'_, AlertBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn delivered(&self, id: u64) {
        self.book().outbox.remove(&id);
        self.done();
    }

    pub(super) fn failed(&self, id: u64, reason: String) {
        self.hand_to_error_action(id, reason);
        self.done();
    }

    pub(super) fn hand_to_error_action(&self, id: u64, reason: String) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.push((id, reason));
    }

    /// The notifications that failed since the last call, with the reasons.
    pub(super) fn take_failed(&self) -> Vec<(u64, String)> {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *f)
    }

    /// One more notification handed to the worker.
    pub(super) fn queued(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    fn done(&self) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Notifications waiting for the delivery worker.
    pub fn backlog(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The firing alerts, for `GET /alerts`.
    pub fn firing(&self) -> Vec<Alert> {
        self.book().firing().cloned().collect()
    }

    /// Notifications not yet delivered.
    pub fn pending(&self) -> usize {
        self.book().outbox.len()
    }

    /// Marks a firing alert acknowledged; false when no such key is firing.
    pub fn acknowledge(&self, key: &str) -> bool {
        let mut book = self.book();
        match book.alerts.get_mut(key) {
            Some(a) if a.status == book::AlertStatus::Firing => {
                a.acknowledged = true;
                let partition = a.partition;
                book.changed.insert(key.to_string(), partition);
                true
            }
            _ => false,
        }
    }
}
