//! `/alerts`, `/compliance` and `/scaling`: what operators watch and steer.

use super::{not_here, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use sluice_config::{UpdateConfig, Version};
use sluice_sinks::compliance::fleet::UpdateState;
use sluice_sinks::compliance::ComplianceBoard;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(alerts))
        .route("/alerts/ack", post(alerts_ack))
        .route("/compliance", get(compliance))
        .route("/compliance/catalog", get(catalog))
        .route(
            "/compliance/catalog/{id}",
            put(catalog_put).delete(catalog_delete),
        )
        .route("/scaling", get(scaling))
}

/// `GET /scaling`: lag, rates and replica advice (KEDA metrics-api: `router.desired_replicas`).
async fn scaling(State(s): State<AppState>) -> Response {
    match s.health.scaling.get() {
        Some(m) => Json(m.report()).into_response(),
        None => not_here("watch Kafka lag"),
    }
}

/// `GET /alerts`: every firing alert, with the sink that holds it.
async fn alerts(State(s): State<AppState>) -> Response {
    let Some(boards) = s.health.boards() else {
        return not_here("route");
    };
    let firing: Vec<serde_json::Value> = boards
        .alerts
        .iter()
        .flat_map(|(sink, board)| {
            board.firing().into_iter().map(move |a| {
                let mut v = serde_json::to_value(a).unwrap_or_default();
                v["sink"] = sink.clone().into();
                v
            })
        })
        .collect();
    let pending: usize = boards.alerts.values().map(|b| b.pending()).sum();
    Json(serde_json::json!({ "firing": firing, "undelivered": pending })).into_response()
}

#[derive(Deserialize)]
struct AckRequest {
    key: String,
}

/// `POST /alerts/ack` with `{"key": "<rule>/<device>"}`: marks a firing alert acknowledged.
async fn alerts_ack(State(s): State<AppState>, Json(req): Json<AckRequest>) -> Response {
    let Some(boards) = s.health.boards() else {
        return not_here("route");
    };
    if boards.alerts.values().any(|b| b.acknowledge(&req.key)) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (StatusCode::NOT_FOUND, "no firing alert has this key").into_response()
    }
}

/// The compliance board `?sink=` names, or the only one.
fn board(s: &AppState, sink: Option<&str>) -> Result<Arc<ComplianceBoard>, Response> {
    let boards = s
        .health
        .boards()
        .ok_or_else(|| not_here("track compliance"))?;
    let found = match sink {
        Some(name) => boards.compliance.get(name),
        None => boards.compliance.values().next(),
    };
    found
        .cloned()
        .ok_or_else(|| not_here("track compliance (no such compliance sink)"))
}

#[derive(Deserialize)]
struct ComplianceQuery {
    sink: Option<String>,
    state: Option<String>,
    group: Option<String>,
    /// `false`: counts only, without the device list (the console polls this).
    devices: Option<bool>,
}

/// `GET /compliance[?state=…&group=…&sink=…&devices=false]`: totals, per-group counts,
/// failed deployments and the device list, filtered by state and group (or left out).
async fn compliance(State(s): State<AppState>, Query(q): Query<ComplianceQuery>) -> Response {
    let board = match board(&s, q.sink.as_deref()) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let wanted = match q.state.as_deref().map(|x| (x, UpdateState::parse(x))) {
        Some((x, None)) => {
            let msg = format!(
                "unknown state '{x}' (on_latest_update, update_in_progress, new_updates_available)"
            );
            return (StatusCode::BAD_REQUEST, msg).into_response();
        }
        Some((_, state)) => state,
        None => None,
    };
    let mut report = board.report();
    report.devices.retain(|d| {
        q.devices != Some(false)
            && wanted.is_none_or(|w| d.state == w)
            && q.group.as_ref().is_none_or(|g| &d.group == g)
    });
    Json(report).into_response()
}

#[derive(Deserialize)]
struct SinkQuery {
    sink: Option<String>,
}

async fn catalog(State(s): State<AppState>, Query(q): Query<SinkQuery>) -> Response {
    match board(&s, q.sink.as_deref()) {
        Ok(b) => Json(b.catalog()).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    version: String,
    models: Vec<String>,
}

/// `PUT /compliance/catalog/{id}` with `{"version": "1.11", "models": ["cam"]}`: publishes an
/// update (admin); compliance is re-evaluated against it at once.
async fn catalog_put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SinkQuery>,
    Json(body): Json<UpdateBody>,
) -> Response {
    let board = match board(&s, q.sink.as_deref()) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if Version::parse(&body.version).is_none() || body.models.is_empty() {
        let msg = "version must be dotted numbers (1.10.2) and models must not be empty";
        return (StatusCode::UNPROCESSABLE_ENTITY, msg).into_response();
    }
    tracing::info!(update = %id, version = %body.version, "update published");
    board.publish_update(UpdateConfig {
        id,
        version: body.version,
        models: body.models,
    });
    StatusCode::NO_CONTENT.into_response()
}

async fn catalog_delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<SinkQuery>,
) -> Response {
    match board(&s, q.sink.as_deref()) {
        Ok(b) if b.withdraw_update(&id) => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => (StatusCode::NOT_FOUND, "no such update").into_response(),
        Err(r) => r,
    }
}
