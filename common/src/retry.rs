//! The backoff of every retry loop: exponential delays (doubling, capped) from `backon`, with
//! a [`Backoff`] that remembers where it is and starts over after a success.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Delays doubling from `first` up to `max`, forever, optionally with jitter (so many
/// clients retrying at once do not retry in step).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub first: Duration,
    pub max: Duration,
    pub jitter: bool,
}

impl Policy {
    pub const fn doubling(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            jitter: false,
        }
    }

    pub const fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    fn delays(self) -> backon::ExponentialBackoff {
        let b = ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .without_max_times();
        if self.jitter {
            b.with_jitter().build()
        } else {
            b.build()
        }
    }
}

/// A retry loop's position in its [`Policy`].
pub struct Backoff {
    policy: Policy,
    delays: backon::ExponentialBackoff,
    last: Duration,
}

impl Backoff {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            delays: policy.delays(),
            last: Duration::ZERO,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.last = self.delays.next().unwrap_or(self.policy.max);
        self.last
    }

    /// Whether the delays have reached the policy's cap.
    pub fn at_max(&self) -> bool {
        self.last >= self.policy.max
    }

    /// Starts over from the first delay (after a success).
    pub fn reset(&mut self) {
        self.delays = self.policy.delays();
        self.last = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_and_starts_over_after_reset() {
        let policy = Policy::doubling(Duration::from_millis(100), Duration::from_millis(400));
        let mut b = Backoff::new(policy);
        let delays: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 400]);
        assert!(b.at_max());
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }
}
