//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`, `/rules`,
//! `POST /rules/reload`.

use crate::pipeline::Health;
use crate::reload::Reloaded;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// The process-wide Prometheus recorder (installed once, on first use).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then ours just stays unused.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[derive(Clone)]
struct AppState {
    health: Arc<Health>,
}

/// Binds `listen` and serves until `shutdown`. Returns the bound address.
pub async fn serve(
    listen: &str,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> anyhow::Result<std::net::SocketAddr> {
    let addr = crate::ports::check_free(listen, "http.listen")?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    prometheus();
    let app = Router::new()
        .route("/metrics", get(|| async { prometheus().render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/rules", get(rules_status))
        .route("/rules/reload", post(rules_reload))
        .route(
            "/devices/{id}",
            get(device_get).put(device_put).delete(device_delete),
        )
        .with_state(AppState { health });
    tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned());
        if let Err(e) = server.await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    tracing::info!(%bound, "http: /metrics /healthz /readyz");
    Ok(bound)
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    if s.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// `GET /rules`: the active rule set, its version, and the last reload's outcome.
async fn rules_status(State(s): State<AppState>) -> Response {
    match s.health.rules.get() {
        Some(r) => Json(r.control.status()).into_response(),
        None => (StatusCode::NOT_FOUND, "this process does not route").into_response(),
    }
}

/// `POST /rules/reload`: re-read the rule files now. 200 with the version, or 422 with every
/// problem (the running rules stay active).
async fn rules_reload(State(s): State<AppState>) -> Response {
    let Some(r) = s.health.rules.get() else {
        return (StatusCode::NOT_FOUND, "this process does not route").into_response();
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

/// `GET /devices/{id}`: the tags `device_tag()` reads for a device.
async fn device_get(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(r) = s.health.rules.get() else {
        return (StatusCode::NOT_FOUND, "this process does not route").into_response();
    };
    match r.devices.snapshot().get(&id) {
        Some(tags) => Json(tags.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "no metadata for this device").into_response(),
    }
}

/// `PUT /devices/{id}` with a JSON object of tags: replaces the device's tags at run time
/// (the next batch reads them). The devices file, when it changes, replaces the whole table.
async fn device_put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(tags): Json<HashMap<String, String>>,
) -> Response {
    let Some(r) = s.health.rules.get() else {
        return (StatusCode::NOT_FOUND, "this process does not route").into_response();
    };
    let table = r.devices.snapshot();
    if !table.contains_key(&id) && table.len() >= r.max_devices {
        let msg = format!("devices.max_devices ({}) reached", r.max_devices);
        return (StatusCode::INSUFFICIENT_STORAGE, msg).into_response();
    }
    r.devices.set(&id, Some(tags));
    metrics::gauge!("sluice_devices_known").set(r.devices.len() as f64);
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /devices/{id}`: the device's tags read NULL from the next batch.
async fn device_delete(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(r) = s.health.rules.get() else {
        return (StatusCode::NOT_FOUND, "this process does not route").into_response();
    };
    r.devices.set(&id, None);
    StatusCode::NO_CONTENT.into_response()
}
