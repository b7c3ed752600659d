//! The management API on `[http].listen`.
//!
//! Layout:
//! - this file: the routes, `/metrics`, `/healthz`, `/readyz`, `/rules`, `POST /rules/reload`;
//! - [`console`]: the operator console at `/` (static files built into the binary);
//! - [`browser`]: Host and cross-origin checks, so a web page cannot drive the API;
//! - [`auth`]: bearer tokens → roles (viewer, operator, admin), checked before every route;
//! - [`devices`]: device metadata (`/devices/{id}`) and retirement;
//! - [`ops`]: `/alerts`, `/compliance`, `/scaling`;
//! - [`metrics_filter`]: the `[metrics]` allow/block lists;
//! - [`tls`]: HTTPS when `[http.tls]` is set.

pub mod auth;
mod browser;
mod console;
mod devices;
mod limit;
pub mod metrics_filter;
mod ops;
mod tls;

use crate::health::Health;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sluice_router::reload::Reloaded;

use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// The process-wide Prometheus recorder (installed once, on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then ours just stays unused.
        if metrics::set_global_recorder(recorder).is_ok() {
            sluice_common::event::recorder_installed();
            crate::events::describe_all();
        }
        handle
    })
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
    metrics: Arc<sluice_config::MetricsConfig>,
}

/// Binds `[http].listen` and serves until `shutdown`. Returns the bound address.
pub async fn serve(
    config: &sluice_config::Config,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> anyhow::Result<std::net::SocketAddr> {
    let tokens = Arc::new(auth::Tokens::load(config)?);
    let guard = Arc::new(browser::BrowserGuard {
        has_tokens: !config.http.tokens.is_empty(),
        allowed_hosts: config.http.allowed_hosts.clone(),
    });
    let addr = crate::ports::check_free(&config.http.listen, "http.listen")?;
    let listener = std::net::TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    prometheus();
    let state = AppState {
        health,
        metrics: Arc::new(config.metrics.clone()),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/rules", get(rules_status))
        .route("/rules/reload", post(rules_reload))
        .merge(devices::routes())
        .merge(ops::routes())
        .merge(console::routes())
        .layer(axum::middleware::from_fn_with_state(tokens, auth::check))
        // Outermost: a browser page's request is refused before anything else looks at it.
        .layer(axum::middleware::from_fn_with_state(guard, browser::check))
        .with_state(state);
    let https = config.http.tls.is_some();
    match &config.http.tls {
        Some(t) => tls::spawn(listener, t, app, shutdown)?,
        None => {
            listener.set_nonblocking(true)?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown.cancelled().await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
            });
            let mut server = axum_server::from_tcp(listener)?
                .handle(handle)
                .map(limit::Limited::new);
            limit_connections(server.http_builder());
            tokio::spawn(async move {
                if let Err(e) = server.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "http server stopped");
                }
            });
        }
    }
    tracing::info!(%bound, https, auth = !config.http.tokens.is_empty(), "http API listening");
    Ok(bound)
}

/// How long a client may take to send a request's headers (#24.12): a connection that
/// trickles them (slowloris) is closed instead of holding a socket forever.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// HTTP/1 limits on every API connection, plain or TLS.
fn limit_connections(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
}

/// `GET /metrics`: Prometheus text, after the `[metrics]` allow/block lists.
async fn metrics(State(s): State<AppState>) -> String {
    metrics_filter::filter(&prometheus().render(), &s.metrics)
}

/// The answer when this process does not run the part an endpoint reads.
fn not_here(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("this process does not {what}"),
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    match s.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why.to_string()),
    }
}

/// `GET /rules`: the active rule set, its version, and the last reload's outcome.
async fn rules_status(State(s): State<AppState>) -> Response {
    match s.health.rules.get() {
        Some(r) => Json(r.control.status()).into_response(),
        None => not_here("route"),
    }
}

/// `POST /rules/reload`: re-read the rule files now. 200 with the version, or 422 with every
/// problem (the running rules stay active).
async fn rules_reload(State(s): State<AppState>) -> Response {
    let Some(r) = s.health.rules.get() else {
        return not_here("route");
    };
    match r.reload().await {
        Ok(Reloaded::New(v)) => {
            Json(serde_json::json!({"version": v, "changed": true})).into_response()
        }
        Ok(Reloaded::Unchanged(v)) => {
            Json(serde_json::json!({"version": v, "changed": false})).into_response()
        }
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(serde_json::json!({ "errors": errors })),
        )
            .into_response(),
    }
}
