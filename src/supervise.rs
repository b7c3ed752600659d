//! Stage supervision: a failing ingest or router (an error or a panic) is restarted with
//! backoff while the embedded brokers and the other stage keep running.
//!
//! What the supervisor does depends on whose fault the failure is ([`sluice_core::fault`],
//! found anywhere in the error's chain): a configuration mistake (`Retry::Never`) stops the
//! stage with its message on `/readyz` and in the log, once, instead of restarting forever;
//! `Retry::Now` restarts from the shortest delay; a panic (a bug) is restarted at most
//! [`MAX_BUG_RESTARTS`] times in a row and then reported and stopped; anything else (an
//! outside system) backs off.
//!
//! Each restart is logged and counted (`sluice_stage_restarts_total{stage}`), and the stage is
//! marked down in [`StageHealth`] until it runs again, so `/readyz` answers 503 with the reason
//! meanwhile. A stage that ran for a while before failing starts again from the shortest delay.

use crate::events::{StageRestarting, StageStopped};
use sluice_common::retry::{Backoff, Policy};
use sluice_common::Event;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One run of a stage, as the supervisor starts it.
pub(crate) type StageRun =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

/// A stage that ran this long before failing was healthy: its backoff starts over.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// Which stages are down, and why (for `/readyz`).
#[derive(Debug, Default)]
pub struct StageHealth {
    down: Mutex<BTreeMap<&'static str, String>>,
}

impl StageHealth {
    fn set(&self, stage: &'static str, reason: Option<String>) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match reason {
            Some(r) => down.insert(stage, r),
            None => down.remove(stage),
        };
    }

    /// `stage: reason` for every stage that is down; empty when all run.
    pub fn problems(&self) -> Vec<String> {
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        down.iter().map(|(s, r)| format!("{s}: {r}")).collect()
    }
}

/// Panics in a row (without a healthy run between) before a stage is stopped as broken.
pub const MAX_BUG_RESTARTS: u32 = 10;

/// What to do after a failure.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Restart { shortest: bool },
    Stop(String),
}

/// The supervisor's policy: the failure's classification and how many bugs came in a row.
fn next_step(failure: &anyhow::Error, panicked: bool, bugs_in_a_row: u32) -> Next {
    use sluice_core::fault::{Classified, Retry};
    if panicked {
        return match bugs_in_a_row >= MAX_BUG_RESTARTS {
            true => Next::Stop(format!(
                "stopped after {bugs_in_a_row} panics in a row (a bug in Sluice; please report it)"
            )),
            false => Next::Restart { shortest: false },
        };
    }
    match failure.chain().find_map(|c| c.downcast_ref::<Classified>()) {
        Some(c) if c.retry == Retry::Never => Next::Stop(format!(
            "stopped: {} (fix it and restart Sluice)",
            c.whose.describe()
        )),
        Some(c) if c.retry == Retry::Now => Next::Restart { shortest: true },
        _ => Next::Restart { shortest: false },
    }
}

/// Restart delays: 0.5 s doubling to 30 s, with jitter so restarts of many replicas spread.
const RESTART: Policy =
    Policy::doubling(Duration::from_millis(500), Duration::from_secs(30)).with_jitter();

/// Runs `first` (the stage as built at start: a build error there is the caller's to report)
/// until `stop`, restarting the stage with `start` whenever it fails or stops on its own.
/// `start` builds it anew each time (a fresh consumer, sinks, connection).
/// Returns when `stop` is cancelled and the running instance returned.
pub async fn supervise<F, Fut>(
    stage: &'static str,
    health: &StageHealth,
    stop: CancellationToken,
    first: Fut,
    mut start: F,
) where
    F: FnMut() -> anyhow::Result<Fut>,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut delays = Backoff::new(RESTART);
    let mut next = Some(first);
    let mut bugs_in_a_row = 0;
    loop {
        let started = Instant::now();
        let run = match next.take() {
            Some(run) => Ok(run),
            None => start(),
        };
        let mut panicked = false;
        let outcome = match run {
            Ok(run) => match tokio::spawn(run).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => {
                    panicked = true;
                    Err(anyhow::anyhow!("panicked: {}", panic_text(e)))
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            },
            Err(e) => Err(e),
        };
        if stop.is_cancelled() {
            if let Err(e) = outcome {
                tracing::error!(stage, error = %format!("{e:#}"), "stage failed while stopping");
            }
            return;
        }
        if started.elapsed() >= HEALTHY_AFTER {
            delays.reset();
            bugs_in_a_row = 0;
        }
        bugs_in_a_row += u32::from(panicked);
        let (reason, step) = match outcome {
            Ok(()) => (
                "stopped on its own".to_string(),
                Next::Restart { shortest: false },
            ),
            Err(e) => (format!("{e:#}"), next_step(&e, panicked, bugs_in_a_row)),
        };
        let shortest = match step {
            Next::Stop(why) => {
                StageStopped {
                    stage,
                    reason: &reason,
                    why: &why,
                }
                .emit();
                health.set(stage, Some(format!("{why}: {reason}")));
                return;
            }
            Next::Restart { shortest } => shortest,
        };
        if shortest {
            delays.reset();
        }
        let delay = delays.next_delay();
        StageRestarting {
            stage,
            reason: &reason,
            delay,
        }
        .emit();
        health.set(stage, Some(format!("restarting after: {reason}")));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        health.set(stage, None);
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    let panic = e.into_panic();
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::fault::{Classified, Retry, Whose};

    #[test]
    fn the_policy_follows_whose_fault_it_is() {
        let mistake = anyhow::Error::new(Classified::new(
            Whose::User,
            Retry::Never,
            "unknown action 'x'",
        ))
        .context("router");
        assert!(
            matches!(next_step(&mistake, false, 0), Next::Stop(w) if w.contains("a configuration problem"))
        );
        let outage =
            anyhow::Error::new(Classified::new(Whose::Outside, Retry::Later, "kafka down"));
        assert_eq!(
            next_step(&outage, false, 0),
            Next::Restart { shortest: false }
        );
        let fenced = anyhow::Error::new(Classified::new(Whose::Outside, Retry::Now, "fenced"));
        assert_eq!(
            next_step(&fenced, false, 0),
            Next::Restart { shortest: true }
        );
        let unknown = anyhow::anyhow!("something");
        assert_eq!(
            next_step(&unknown, false, 0),
            Next::Restart { shortest: false }
        );
        let bug = anyhow::anyhow!("panicked: x");
        assert_eq!(next_step(&bug, true, 1), Next::Restart { shortest: false });
        assert!(
            matches!(next_step(&bug, true, MAX_BUG_RESTARTS), Next::Stop(w) if w.contains("a bug"))
        );
    }

    #[tokio::test]
    async fn a_configuration_mistake_stops_the_stage_once_with_its_message() {
        let health = StageHealth::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let run = |runs: Arc<AtomicUsize>| async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Err(anyhow::Error::new(Classified::new(
                Whose::User,
                Retry::Never,
                "rule 'hot' names unknown action 'pager'",
            )))
        };
        let first = run(runs.clone());
        let again = runs.clone();
        let start = move || -> anyhow::Result<_> { Ok(run(again.clone())) };
        // Returns by itself (no stop token cancelled): the stage is not restarted.
        tokio::time::timeout(
            Duration::from_secs(5),
            supervise("router", &health, CancellationToken::new(), first, start),
        )
        .await
        .expect("the supervisor gave up on the stage instead of restarting it");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "ran once, never restarted");
        let problems = health.problems();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("router: stopped: a configuration problem"),
            "{problems:?}"
        );
        assert!(
            problems[0].contains("unknown action 'pager'"),
            "{problems:?}"
        );
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // Real time (tokio's paused clock needs a feature the binary does not build with): the
    // two restart delays take 0.5 to 2 s.
    #[tokio::test]
    async fn a_panicking_stage_is_restarted_with_backoff_and_shown_down_meanwhile() {
        let health = Arc::new(StageHealth::default());
        let stop = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let start = {
            let (runs, stop) = (runs.clone(), stop.clone());
            move || -> anyhow::Result<_> {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                let stop = stop.clone();
                Ok(async move {
                    if n <= 2 {
                        panic!("bug number {n}");
                    }
                    stop.cancelled().await;
                    Ok(())
                })
            }
        };
        let first = start().unwrap();
        let task = tokio::spawn({
            let (health, stop) = (health.clone(), stop.clone());
            async move { supervise("router", &health, stop, first, start).await }
        });
        // The first failure is seen while the restart waits out its delay.
        let deadline = Instant::now() + Duration::from_secs(5);
        while health.problems().is_empty() {
            assert!(Instant::now() < deadline, "the failure was never shown");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            health.problems()[0].starts_with("router: restarting after: panicked: bug number 1")
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        while runs.load(Ordering::SeqCst) < 3 || !health.problems().is_empty() {
            assert!(Instant::now() < deadline, "the third run never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        task.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }
}
