//! Errors that say whose fault they are and whether retrying helps (Arroyo's habit).

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// The user's input: a rule, a config, a payload. Retrying the same input fails again.
    User,
    /// A system outside Sluice (broker, disk, HTTP endpoint). A retry may succeed.
    External,
    /// A bug in Sluice.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("rule '{rule}': {message}")]
    Rule { rule: String, message: String },
    #[error("decode: {0}")]
    Decode(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl ProcessorError {
    pub fn domain(&self) -> ErrorDomain {
        match self {
            ProcessorError::Rule { .. } | ProcessorError::Decode(_) => ErrorDomain::User,
            ProcessorError::Internal(_) => ErrorDomain::Internal,
        }
    }

    /// Whether the same call may succeed later.
    pub fn retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }
}
