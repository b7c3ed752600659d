//! `/devices/{id}`: device metadata for `device_tag()`, and retirement.

use super::{not_here, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sluice_common::Event;
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/devices/{id}",
            get(device_get).put(device_put).delete(device_delete),
        )
        .route("/devices/{id}/retire", post(device_retire))
        .route("/devices/{id}/credentials", post(device_provision))
}

/// A device id a device can log in with and publish under: one non-empty topic level.
fn valid_device_id(id: &str) -> Result<(), Response> {
    let ok = !id.is_empty()
        && id.len() <= 256
        && !id.contains(['/', '+', '#'])
        && !id.chars().any(char::is_control);
    match ok {
        true => Ok(()),
        false => Err((
            StatusCode::BAD_REQUEST,
            "a device id is 1 to 256 bytes without '/', '+', '#' or control characters",
        )
            .into_response()),
    }
}

/// `POST /devices/{id}/credentials`: a new secret for the device (any earlier one stops
/// working), returned once: `{"device", "username", "secret"}`. Needs `gateway.device_auth`.
async fn device_provision(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    if let Err(r) = valid_device_id(&id) {
        return r;
    }
    let Some(writer) = s.health.devices.get() else {
        return not_here("keep device credentials (set gateway.device_auth = true)");
    };
    match writer.provision(&id).await {
        Ok(p) => {
            tracing::info!(device = %sluice_ingest::gateway::printable(&id), "device provisioned");
            Json(p).into_response()
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
    }
}

/// `POST /devices/{id}/retire`: the device leaves the compliance counts and its messages are
/// dropped (and counted) from now on; with `gateway.device_auth` its login is refused and its
/// connections are closed too.
async fn device_retire(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let boards = s.health.boards().filter(|b| !b.compliance.is_empty());
    let writer = s.health.devices.get();
    if boards.is_none() && writer.is_none() {
        return not_here("track compliance or device credentials");
    }
    if let Some(writer) = writer {
        if let Err(e) = writer.retire(&id).await {
            return (StatusCode::SERVICE_UNAVAILABLE, e).into_response();
        }
    }
    for board in boards.iter().flat_map(|b| b.compliance.values()) {
        board.retire(&id);
    }
    tracing::info!(device = %sluice_ingest::gateway::printable(&id), "device retired");
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /devices/{id}`: the tags `device_tag()` reads for a device.
async fn device_get(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(r) = s.health.rules.get() else {
        return not_here("route");
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
        return not_here("route");
    };
    let table = r.devices.snapshot();
    if !table.contains_key(&id) && table.len() >= r.max_devices {
        let msg = format!("devices.max_devices ({}) reached", r.max_devices);
        return (StatusCode::INSUFFICIENT_STORAGE, msg).into_response();
    }
    r.devices.set(&id, Some(tags));
    sluice_router::events::DeviceTableChanged {
        devices: r.devices.len(),
    }
    .emit();
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /devices/{id}`: the device's tags read NULL from the next batch.
async fn device_delete(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(r) = s.health.rules.get() else {
        return not_here("route");
    };
    r.devices.set(&id, None);
    StatusCode::NO_CONTENT.into_response()
}
