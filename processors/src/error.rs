//! Errors of the rule engine and decoder. Each variant says whose fault it is: a rule or a
//! payload (the user's: the same input fails again, so callers report it and never retry),
//! or Sluice's own (a bug: the router's stage fails and its supervisor restarts it).

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    /// A rule that cannot be planned or evaluated (the user's).
    #[error("rule '{rule}': {message}")]
    Rule { rule: String, message: String },
    /// A payload the decoder refused (the device's).
    #[error("decode: {0}")]
    Decode(String),
    /// Sluice's own fault.
    #[error("internal: {0}")]
    Internal(String),
}
