//! Replica advice from rates and lag: pure arithmetic, unit-tested.
//!
//! Router replicas = ceil((incoming rate + drain rate) ÷ capacity per replica), where the drain
//! rate is lag ÷ target lag-seconds when lag-seconds exceed the target (enough extra capacity to
//! clear the backlog within the target), capped at the partition count (a consumer group
//! cannot use more members than partitions: the KEDA Kafka-scaler rule), at least 1.
//! A lower count is advised only once every recommendation over the scale-down window was
//! lower (the highest in the window wins, like Kubernetes' HPA stabilization), so the advice
//! rises at once and falls without flapping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Exponentially weighted moving average of a rate.
#[derive(Debug, Clone, Default)]
pub struct Ewma {
    value: Option<f64>,
}

impl Ewma {
    pub fn update(&mut self, sample: f64, alpha: f64) -> f64 {
        let v = match self.value {
            None => sample,
            Some(v) => v + alpha * (sample - v),
        };
        self.value = Some(v);
        v
    }

    pub fn get(&self) -> f64 {
        self.value.unwrap_or(0.0)
    }
}

/// Replicas the load needs, before stabilization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Need {
    /// What the load asks for, uncapped.
    pub wanted: u32,
    /// `wanted` capped at `max` (the partition count) and at least 1.
    pub capped: u32,
    /// The cap is what limits scaling: add partitions.
    pub limited_by_cap: bool,
}

/// Replicas for `rate`/s at `capacity`/s each, plus enough to drain `lag` within
/// `target_lag_s` when lag-seconds (`lag_seconds`) exceed the target.
pub fn replicas_needed(
    rate: f64,
    lag: u64,
    lag_seconds: Option<f64>,
    capacity: f64,
    target_lag_s: f64,
    max: Option<u32>,
) -> Need {
    // No consumption with a backlog: lag-seconds is unbounded.
    let behind = lag > 0 && lag_seconds.is_none_or(|s| s > target_lag_s);
    let drain = if behind {
        lag as f64 / target_lag_s
    } else {
        0.0
    };
    let wanted = ((rate.max(0.0) + drain) / capacity).ceil().max(1.0) as u32;
    let capped = max.map_or(wanted, |m| wanted.min(m.max(1)));
    Need {
        wanted,
        capped,
        limited_by_cap: wanted > capped,
    }
}

/// Scale up at once, scale down only when the whole window agrees.
#[derive(Debug)]
pub struct Stabilizer {
    window: Duration,
    recent: VecDeque<(Instant, u32)>,
}

impl Stabilizer {
    pub fn new(window: Duration) -> Self {
        Stabilizer {
            window,
            recent: VecDeque::new(),
        }
    }

    /// Records a recommendation; returns the advice: the highest recommendation in the window.
    pub fn advise(&mut self, now: Instant, recommendation: u32) -> u32 {
        self.recent.push_back((now, recommendation));
        while let Some(&(t, _)) = self.recent.front() {
            if now.duration_since(t) > self.window && self.recent.len() > 1 {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.iter().map(|(_, r)| *r).max().unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_follow_the_rate_and_grow_to_drain_a_backlog_up_to_the_partitions() {
        let n = replicas_needed(900.0, 0, Some(0.0), 100.0, 10.0, Some(16));
        assert_eq!((n.wanted, n.capped, n.limited_by_cap), (9, 9, false));
        // 5 000 behind with nothing consumed: drain 500/s more within 10 s.
        let n = replicas_needed(100.0, 5_000, None, 100.0, 10.0, Some(4));
        assert_eq!((n.wanted, n.capped, n.limited_by_cap), (6, 4, true));
        // A backlog within the target lag-seconds needs no extra replicas.
        let n = replicas_needed(100.0, 500, Some(5.0), 100.0, 10.0, Some(4));
        assert_eq!(n.capped, 1);
        assert_eq!(replicas_needed(0.0, 0, None, 100.0, 10.0, None).capped, 1);
    }

    #[test]
    fn the_advice_rises_at_once_and_falls_only_after_a_full_window() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut st = Stabilizer::new(Duration::from_secs(10));
        assert_eq!(st.advise(s(0), 1), 1);
        assert_eq!(st.advise(s(1), 4), 4, "up at once");
        assert_eq!(st.advise(s(2), 1), 4);
        assert_eq!(st.advise(s(5), 3), 4);
        assert_eq!(st.advise(s(11), 1), 4, "4 is still in the window");
        assert_eq!(st.advise(s(12), 1), 3, "now 3 is the highest left");
        assert_eq!(st.advise(s(16), 1), 1);
    }

    #[test]
    fn the_moving_average_starts_at_the_first_sample() {
        let mut e = Ewma::default();
        assert_eq!(e.update(100.0, 0.5), 100.0);
        assert_eq!(e.update(0.0, 0.5), 50.0);
        assert_eq!(e.get(), 50.0);
    }
}
