//! Stage supervision: a failing ingest or router (an error or a panic) is restarted with
//! backoff while the embedded brokers and the other stage keep running.
//!
//! Each restart is logged and counted (`sluice_stage_restarts_total{stage}`), and the stage is
//! marked down in [`StageHealth`] until it runs again, so `/readyz` answers 503 with the reason
//! meanwhile. A stage that ran for a while before failing starts again from the shortest delay.

use crate::events::StageRestarting;
use sluice_common::retry::{Backoff, Policy};
use sluice_common::Event;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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
    loop {
        let started = Instant::now();
        let run = match next.take() {
            Some(run) => Ok(run),
            None => start(),
        };
        let outcome = match run {
            Ok(run) => match tokio::spawn(run).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(anyhow::anyhow!("panicked: {}", panic_text(e))),
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
        let reason = match outcome {
            Ok(()) => "stopped on its own".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if started.elapsed() >= HEALTHY_AFTER {
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
