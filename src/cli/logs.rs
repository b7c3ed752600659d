//! Logging for people: `SLUICE_LOG` and `SLUICE_LOG_FORMAT`.
//!
//! - `SLUICE_LOG=debug` (a bare level) means *Sluice's* lines at debug; dependencies stay at
//!   warn (DataFusion alone prints hundreds of planner lines at debug). Directives with a
//!   target ask for a dependency explicitly: `SLUICE_LOG=debug,datafusion=debug`.
//! - Colour only when stderr is a terminal (and `NO_COLOR` is unset), so log files stay clean.
//! - `SLUICE_LOG_FORMAT=json`: one JSON object per line, for log shippers.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Dependencies that are noisy even at warn in normal operation: tansu's storage, and
/// deltalake-core's "table updated during transaction", which is every commit of a router
/// whose table another router committed to since (a conflict it then checks and resolves).
const QUIET: &str = "warn,tansu_storage=off,deltalake_core::kernel::transaction=error";

/// The filter directives for a `SLUICE_LOG` value (`None`: info for Sluice).
pub fn directives(sluice_log: Option<&str>) -> String {
    let mut level = "info";
    let mut explicit = vec![];
    for part in sluice_log.unwrap_or("").split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        if part.contains('=') {
            explicit.push(part);
        } else {
            level = part;
        }
    }
    let mut out = format!("{QUIET},sluice={level}");
    for d in explicit {
        out.push(',');
        out.push_str(d);
    }
    out
}

/// Installs the subscriber (stderr).
pub fn init() {
    let wanted = std::env::var("SLUICE_LOG").ok();
    let filter = EnvFilter::try_new(directives(wanted.as_deref())).unwrap_or_else(|e| {
        eprintln!("SLUICE_LOG: {e}; using the default (info)");
        EnvFilter::new(directives(None))
    });
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match std::env::var("SLUICE_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().init(),
        Ok("text") | Err(_) => builder.with_ansi(ansi).init(),
        Ok(other) => {
            builder.with_ansi(ansi).init();
            tracing::warn!(
                format = other,
                "SLUICE_LOG_FORMAT is json or text; using text"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn a_bare_level_is_for_sluice_and_targets_are_for_whom_they_name() {
        assert_eq!(
            directives(None),
            "warn,tansu_storage=off,deltalake_core::kernel::transaction=error,sluice=info"
        );
        assert_eq!(
            directives(Some("debug")),
            "warn,tansu_storage=off,deltalake_core::kernel::transaction=error,sluice=debug"
        );
        assert_eq!(
            directives(Some("trace,datafusion=debug")),
            "warn,tansu_storage=off,deltalake_core::kernel::transaction=error,sluice=trace,datafusion=debug"
        );
    }
}
