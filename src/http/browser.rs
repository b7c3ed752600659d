//! What a web page in the operator's browser cannot make the API do (#24.15).
//!
//! The API listens on loopback without tokens by default, and any page the operator visits
//! can send requests there: a form POST to `/devices/<id>/retire` needs no JavaScript, and a
//! name the attacker re-points at 127.0.0.1 (DNS rebinding) makes whole responses readable to
//! the page. Two checks, before the tokens, on every request:
//!
//! - **Host**: without tokens, the `Host` header must be `localhost`, an IP address, or a name
//!   in `http.allowed_hosts` — a rebinding page's requests carry its own name. With tokens the
//!   page cannot present one, so any name is served.
//! - **Cross-origin writes**: a request that changes state is refused when the browser says it
//!   comes from another site (`Sec-Fetch-Site: cross-site`/`same-site`), or its `Origin` is not
//!   this `Host`. Requests without either header are not from a browser page (curl, the CLI,
//!   Prometheus) and go on to the token check — the approach of Go's
//!   `net/http.CrossOriginProtection`.

use crate::events::BrowserRequestRefused;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_common::Event;
use std::sync::Arc;

/// What the checks need from the config.
#[derive(Debug, Clone)]
pub struct BrowserGuard {
    /// Tokens are configured: the Host check is off.
    pub has_tokens: bool,
    pub allowed_hosts: Vec<String>,
}

impl BrowserGuard {
    /// Why this request is refused, if it is.
    pub fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<&'static str> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !self.has_tokens && !host.is_some_and(|h| self.host_allowed(h)) {
            return Some(
                "this Host is not served without tokens: use localhost or an IP address, or \
                 list the name in http.allowed_hosts",
            );
        }
        if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
            return None;
        }
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if matches!(fetch_site, Some("cross-site" | "same-site")) {
            return Some("cross-origin request refused: state changes come from this origin only");
        }
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        match (origin, host) {
            (None, _) => None,
            (Some(o), Some(h)) if origin_authority(o) == Some(h) => None,
            _ => Some("cross-origin request refused: state changes come from this origin only"),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_without_port(host);
        name.eq_ignore_ascii_case("localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
            || self
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// `http://127.0.0.1:9464` → `127.0.0.1:9464` (what `Host` says for a same-origin request).
fn origin_authority(origin: &str) -> Option<&str> {
    origin
        .split_once("://")
        .map(|(_, a)| a.trim_end_matches('/'))
}

pub async fn check(
    State(guard): State<Arc<BrowserGuard>>,
    request: Request,
    next: Next,
) -> Response {
    match guard.refusal(request.method(), request.headers()) {
        None => next.run(request).await,
        Some(why) => {
            BrowserRequestRefused { why }.emit();
            (StatusCode::FORBIDDEN, why).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const OPEN: BrowserGuard = BrowserGuard {
        has_tokens: false,
        allowed_hosts: Vec::new(),
    };

    #[test]
    fn a_rebound_name_is_refused_without_tokens() {
        let g = OPEN;
        assert!(g
            .refusal(&Method::GET, &headers(&[("host", "127.0.0.1:9464")]))
            .is_none());
        assert!(g
            .refusal(&Method::GET, &headers(&[("host", "localhost:9464")]))
            .is_none());
        assert!(g
            .refusal(&Method::GET, &headers(&[("host", "[::1]:9464")]))
            .is_none());
        assert!(g
            .refusal(&Method::GET, &headers(&[("host", "evil.example:9464")]))
            .is_some());
        assert!(
            g.refusal(&Method::GET, &headers(&[])).is_some(),
            "no Host at all"
        );
        let listed = BrowserGuard {
            has_tokens: false,
            allowed_hosts: vec!["sluice.internal".into()],
        };
        assert!(listed
            .refusal(&Method::GET, &headers(&[("host", "sluice.internal")]))
            .is_none());
        let tokens = BrowserGuard {
            has_tokens: true,
            allowed_hosts: vec![],
        };
        assert!(tokens
            .refusal(&Method::GET, &headers(&[("host", "any.name")]))
            .is_none());
    }

    #[test]
    fn cross_origin_writes_are_refused_and_same_origin_or_non_browser_ones_pass() {
        let g = OPEN;
        let host = ("host", "127.0.0.1:9464");
        let post = |extra: &[(&'static str, &str)]| {
            let mut all = vec![host];
            all.extend_from_slice(extra);
            g.refusal(&Method::POST, &headers(&all))
        };
        assert!(post(&[("origin", "https://evil.example")]).is_some());
        assert!(post(&[("origin", "null")]).is_some(), "sandboxed page");
        assert!(post(&[("sec-fetch-site", "cross-site")]).is_some());
        assert!(
            post(&[("origin", "http://127.0.0.1:9464")]).is_none(),
            "the console"
        );
        assert!(post(&[]).is_none(), "curl or the CLI");
        let get = headers(&[host, ("origin", "https://evil.example")]);
        assert!(
            g.refusal(&Method::GET, &get).is_none(),
            "reads: the Host check decides"
        );
    }
}
