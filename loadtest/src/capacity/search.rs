//! Which rate to try next: a geometric ramp until a step fails, then bisection (in the
//! logarithm of the rate) between the best sustainable and the lowest failed rate. Pure: the
//! caller runs the steps and passes back what they showed.

use serde::Serialize;

#[derive(Debug, Clone)]
pub struct Search {
    pub start: f64,
    pub max: f64,
    /// Ramp factor between steps until the first failure.
    pub factor: f64,
    /// Stop when failed ÷ sustainable is at most this (and the sustainable rate held in a
    /// second run).
    pub resolution: f64,
    pub max_steps: usize,
}

/// Why the search ended: what bounded the reported knee.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// A sustainable and a failed rate within `resolution` of each other: the knee is between.
    Converged,
    /// `--max-rate` was sustainable: the deployment takes at least that.
    MaxRate,
    /// Even `--start-rate` ÷ 16 failed.
    NothingSustainable,
    /// `--max-steps` ran out.
    Steps,
    /// `--budget-secs` ran out.
    Time,
}

impl Bound {
    pub fn says(self) -> &'static str {
        match self {
            Bound::Converged => {
                "converged: the knee lies between the best sustainable and the lowest failed rate"
            }
            Bound::MaxRate => {
                "--max-rate was sustainable: the deployment takes at least that (raise --max-rate)"
            }
            Bound::NothingSustainable => {
                "no rate tried was sustainable (lower --start-rate, or see the limiting stage)"
            }
            Bound::Steps => "--max-steps ran out before the search converged",
            Bound::Time => "--budget-secs ran out before the search converged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    Try(f64),
    Done(Bound),
}

impl Search {
    /// The next rate after `tried` (rate, sustainable) in the order run.
    pub fn next(&self, tried: &[(f64, bool)]) -> Next {
        if tried.is_empty() {
            return Next::Try(self.start.min(self.max));
        }
        // A rate counts as sustainable only if every run of it was: a confirmation run that
        // fails turns it into the upper bound.
        let held = |r: f64| tried.iter().filter(|t| t.0 == r).all(|t| t.1);
        let good = tried
            .iter()
            .filter(|t| t.1 && held(t.0))
            .map(|t| t.0)
            .fold(None, max);
        // The lowest failure above the best success: noise can fail a step below a good one.
        let runs = |r: f64| tried.iter().filter(|t| t.0 == r).count();
        let bad = tried
            .iter()
            .filter(|t| !t.1 && good.is_none_or(|g| t.0 > g))
            .map(|t| t.0)
            .fold(None, min);
        let next = match (good, bad) {
            (Some(g), None) if g >= self.max => return Next::Done(Bound::MaxRate),
            (Some(g), None) => (g * self.factor).min(self.max),
            // Near the knee one run can pass by luck: the knee must hold twice.
            (Some(g), Some(b)) if b / g <= self.resolution && runs(g) < 2 => g,
            (Some(g), Some(b)) if b / g <= self.resolution => return Next::Done(Bound::Converged),
            (Some(g), Some(b)) => (g * b).sqrt(),
            (None, Some(b)) if b <= self.start / 16.0 => {
                return Next::Done(Bound::NothingSustainable)
            }
            (None, Some(b)) => b / self.factor,
            (None, None) => unreachable!("tried is not empty"),
        };
        if tried.len() >= self.max_steps {
            return Next::Done(Bound::Steps);
        }
        Next::Try(round_rate(next))
    }
}

fn max(a: Option<f64>, b: f64) -> Option<f64> {
    Some(a.map_or(b, |a| a.max(b)))
}

fn min(a: Option<f64>, b: f64) -> Option<f64> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Two significant digits: 12 345 → 12 000, 871 → 870 (rates a person can rerun by hand).
pub fn round_rate(r: f64) -> f64 {
    if r < 10.0 {
        return r.max(1.0).round();
    }
    let scale = 10f64.powi(r.log10().floor() as i32 - 1);
    (r / scale).round() * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search() -> Search {
        Search {
            start: 1000.0,
            max: 100_000.0,
            factor: 2.0,
            resolution: 1.2,
            max_steps: 12,
        }
    }

    /// Runs the search against a pipeline whose knee is `knee`.
    fn run(s: &Search, knee: f64) -> (Vec<(f64, bool)>, Bound) {
        run_with(s, |r, _| r <= knee)
    }

    /// `holds(rate, earlier runs of that rate)`.
    fn run_with(s: &Search, holds: impl Fn(f64, usize) -> bool) -> (Vec<(f64, bool)>, Bound) {
        let mut tried: Vec<(f64, bool)> = Vec::new();
        loop {
            match s.next(&tried) {
                Next::Try(r) => {
                    let before = tried.iter().filter(|t| t.0 == r).count();
                    tried.push((r, holds(r, before)))
                }
                Next::Done(b) => return (tried, b),
            }
        }
    }

    #[test]
    fn ramps_then_bisects_to_within_the_resolution() {
        let (tried, bound) = run(&search(), 7300.0);
        assert_eq!(bound, Bound::Converged, "{tried:?}");
        assert_eq!(
            &tried[..4],
            &[
                (1000.0, true),
                (2000.0, true),
                (4000.0, true),
                (8000.0, false)
            ]
        );
        let good = tried
            .iter()
            .filter(|t| t.1)
            .map(|t| t.0)
            .fold(0.0, f64::max);
        let bad = tried
            .iter()
            .filter(|t| !t.1)
            .map(|t| t.0)
            .fold(f64::MAX, f64::min);
        assert!(
            good <= 7300.0 && bad > 7300.0 && bad / good <= 1.2,
            "{tried:?}"
        );
        assert_eq!(
            tried.iter().filter(|t| t.0 == good).count(),
            2,
            "the knee ran twice: {tried:?}"
        );
    }

    #[test]
    fn a_knee_that_fails_its_confirmation_is_not_the_knee() {
        // 6800 passes once by luck, then fails; 5700 is the rate that holds.
        let (tried, bound) = run_with(&search(), |r, before| {
            r <= 5700.0 || (r == 6800.0 && before == 0)
        });
        assert_eq!(bound, Bound::Converged, "{tried:?}");
        assert!(tried.contains(&(6800.0, false)), "{tried:?}");
        let knee = tried
            .iter()
            .filter(|t| tried.iter().filter(|u| u.0 == t.0).all(|u| u.1))
            .map(|t| t.0)
            .fold(0.0, f64::max);
        assert!(knee <= 5700.0, "{tried:?}");
    }

    #[test]
    fn says_what_bounded_it() {
        assert_eq!(run(&search(), 1e9).1, Bound::MaxRate);
        assert_eq!(run(&search(), 10.0).1, Bound::NothingSustainable);
        let few = Search {
            max_steps: 3,
            ..search()
        };
        let (tried, bound) = run(&few, 7300.0);
        assert_eq!((tried.len(), bound), (3, Bound::Steps));
    }

    #[test]
    fn a_noisy_failure_below_a_success_does_not_trap_the_search() {
        let s = Search {
            resolution: 1.1,
            ..search()
        };
        let tried = [
            (1000.0, true),
            (2000.0, false),
            (1400.0, true),
            (1700.0, true),
        ];
        // 2000 failed once; the best success is 1700 < 2000, so 2000 is still the upper bound.
        assert_eq!(s.next(&tried), Next::Try(1800.0));
        let tried = [
            (1000.0, true),
            (2000.0, true),
            (1500.0, false),
            (4000.0, false),
        ];
        assert_eq!(
            s.next(&tried),
            Next::Try(2800.0),
            "1500 is below a success: ignored"
        );
    }

    #[test]
    fn rates_have_two_significant_digits() {
        assert_eq!(round_rate(12_345.0), 12_000.0);
        assert_eq!(round_rate(871.0), 870.0);
        assert_eq!(round_rate(5656.85), 5700.0);
    }
}
