//! Bearer tokens → roles. With no tokens configured every endpoint is open (the default
//! listener is loopback); with tokens, every path but `open_paths` and the console's static
//! files (no data in them) needs one:
//! 401 without a known token, 403 when its role is too low.
//!
//! Token values come from the environment or a file, never the config, and are never logged.

use crate::events::RequestRefused;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_common::Event;
use sluice_config::{Config, Role};
use std::path::Path;
use std::sync::Arc;

/// The configured tokens, resolved.
pub struct Tokens {
    tokens: Vec<(String, Role)>,
    open_paths: Vec<String>,
}

// Debug without the secrets.
impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.tokens.len())
    }
}

impl Tokens {
    /// Reads every token; names the `http.tokens[i]` entry that cannot be read.
    pub fn load(config: &Config) -> anyhow::Result<Tokens> {
        let base = config
            .source
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."));
        let mut tokens = Vec::new();
        for (i, t) in config.http.tokens.iter().enumerate() {
            let value = match (&t.env, &t.file) {
                (Some(var), _) => std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("http.tokens[{i}]: environment variable {var} is not set")
                })?,
                (None, Some(file)) => std::fs::read_to_string(base.join(file)).map_err(|e| {
                    anyhow::anyhow!("http.tokens[{i}]: cannot read {}: {e}", file.display())
                })?,
                (None, None) => anyhow::bail!("http.tokens[{i}]: set `env` or `file`"),
            };
            let value = value.trim().to_string();
            anyhow::ensure!(!value.is_empty(), "http.tokens[{i}]: the token is empty");
            tokens.push((value, t.role));
        }
        Ok(Tokens {
            tokens,
            open_paths: config.http.open_paths.clone(),
        })
    }

    fn role_of(&self, presented: &str) -> Option<Role> {
        self.tokens
            .iter()
            .filter(|(t, _)| constant_time_eq(t.as_bytes(), presented.as_bytes()))
            .map(|(_, r)| *r)
            .max()
    }
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The role a request needs: reads are viewer's; reloading rules and acknowledging alerts
/// operator's; everything else that changes state admin's.
pub fn required_role(method: &Method, path: &str) -> Role {
    if method == Method::GET || method == Method::HEAD {
        Role::Viewer
    } else if path == "/rules/reload" || path == "/alerts/ack" {
        Role::Operator
    } else {
        Role::Admin
    }
}

pub async fn check(State(tokens): State<Arc<Tokens>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let open = tokens.open_paths.iter().any(|p| p == path);
    if tokens.tokens.is_empty() || open || super::console::PATHS.contains(&path) {
        return next.run(request).await;
    }
    let needed = required_role(request.method(), path);
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented.and_then(|t| tokens.role_of(t.trim())) {
        None => {
            RequestRefused { forbidden: false }.emit();
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid bearer token is required",
            )
                .into_response()
        }
        Some(role) if role < needed => {
            RequestRefused { forbidden: true }.emit();
            let msg = format!("this needs the {needed:?} role; the token has {role:?}");
            (StatusCode::FORBIDDEN, msg).into_response()
        }
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_method_and_path() {
        assert_eq!(required_role(&Method::GET, "/compliance"), Role::Viewer);
        assert_eq!(
            required_role(&Method::POST, "/rules/reload"),
            Role::Operator
        );
        assert_eq!(required_role(&Method::POST, "/alerts/ack"), Role::Operator);
        assert_eq!(
            required_role(&Method::POST, "/devices/d1/retire"),
            Role::Admin
        );
        assert_eq!(
            required_role(&Method::PUT, "/compliance/catalog/u1"),
            Role::Admin
        );
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
