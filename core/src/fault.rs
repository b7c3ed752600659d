//! Whose fault an error is and whether retrying can help, so code can act on it instead of
//! reading error text: the supervisor stops a stage on a user's mistake (and says so on
//! `/readyz`) instead of restarting it forever, backs off from an outside system, and
//! restarts a bug a bounded number of times.

use std::fmt;

/// Whose fault a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// What a device sent (handled per message: dead-lettered, never a stage failure).
    Device,
    /// The operator's configuration: nothing changes until they fix it.
    User,
    /// Kafka, an object store, a webhook, the disk: it may come back.
    Outside,
    /// Sluice itself.
    Bug,
}

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// At once: the failure was a moment's (a rebalance, a fenced write).
    Now,
    /// After a while, with backoff.
    Later,
    /// Not until something outside Sluice changes (a config fix).
    Never,
}

/// Implemented by every crate's stage errors.
pub trait Classify {
    fn whose(&self) -> Whose;

    fn retry(&self) -> Retry {
        match self.whose() {
            Whose::User | Whose::Device => Retry::Never,
            Whose::Outside | Whose::Bug => Retry::Later,
        }
    }
}

/// An error with its classification attached, so it survives `anyhow` wrapping: the
/// supervisor finds it anywhere in an error's chain.
#[derive(Debug)]
pub struct Classified {
    pub whose: Whose,
    pub retry: Retry,
    message: String,
}

impl Classified {
    pub fn new(whose: Whose, retry: Retry, message: impl fmt::Display) -> Self {
        Self {
            whose,
            retry,
            message: message.to_string(),
        }
    }

    pub fn of<E: Classify + fmt::Display>(e: E) -> Self {
        Self::new(e.whose(), e.retry(), format!("{e}"))
    }
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Classified {}

impl Whose {
    /// How a person reads it, in `/readyz` and the log.
    pub fn describe(self) -> &'static str {
        match self {
            Whose::Device => "a device's input",
            Whose::User => "a configuration problem",
            Whose::Outside => "an outside system",
            Whose::Bug => "a bug in Sluice",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mistake;
    impl Classify for Mistake {
        fn whose(&self) -> Whose {
            Whose::User
        }
    }
    impl fmt::Display for Mistake {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("rule 'r' names unknown action 'x'")
        }
    }

    #[test]
    fn a_user_mistake_is_never_retried_and_keeps_its_text() {
        let c = Classified::of(Mistake);
        assert_eq!((c.whose, c.retry), (Whose::User, Retry::Never));
        assert_eq!(c.to_string(), "rule 'r' names unknown action 'x'");
    }
}
