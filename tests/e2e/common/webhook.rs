//! A real HTTP server (axum) on a free port that records every POST body and answers with a
//! fixed status: the far end of alert webhooks.

use axum::{extract::State, http::StatusCode, routing::post, Router};
use std::sync::{Arc, Mutex};

pub struct WebhookServer {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

type Bodies = Arc<Mutex<Vec<serde_json::Value>>>;

impl WebhookServer {
    pub fn start(status: u16) -> WebhookServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies: Bodies = Arc::default();
        let status = StatusCode::from_u16(status).unwrap();
        let app = Router::new()
            .route("/{*path}", post(record))
            .with_state((bodies.clone(), status));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        WebhookServer { url, bodies }
    }

    /// Bodies received so far with `status` (firing/resolved) for `device`.
    pub fn count(&self, status: &str, device: &str) -> usize {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["status"] == status && b["device"] == device)
            .count()
    }

    pub fn total(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

async fn record(State((bodies, status)): State<(Bodies, StatusCode)>, body: String) -> StatusCode {
    if let Ok(v) = serde_json::from_str(&body) {
        bodies.lock().unwrap().push(v);
    }
    status
}
