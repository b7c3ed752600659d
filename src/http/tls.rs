//! `[http.tls]`: the management API over HTTPS (rustls, ring provider).

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sluice_config::security::ServerTlsConfig;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Serves `app` over TLS on `listener` until `shutdown`.
pub fn spawn(
    listener: std::net::TcpListener,
    tls: &ServerTlsConfig,
    app: axum::Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = RustlsConfig::from_config(Arc::new(server_config(tls)?));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    listener.set_nonblocking(true)?;
    let mut server = axum_server::tls_rustls::from_tcp_rustls(listener, config)?
        .handle(handle)
        .map(super::limit::Limited::new);
    super::limit_connections(server.http_builder());
    tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "https server stopped");
        }
    });
    Ok(())
}

fn server_config(tls: &ServerTlsConfig) -> anyhow::Result<rustls::ServerConfig> {
    let read = |p: &std::path::Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| anyhow::anyhow!("http.tls: {}: {e}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut read(&tls.cert_file)?).collect::<Result<_, _>>()?;
    anyhow::ensure!(
        !certs.is_empty(),
        "http.tls.cert_file {}: no PEM certificate in it",
        tls.cert_file.display()
    );
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(&tls.key_file)?)?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "http.tls.key_file {}: no PEM private key in it",
                tls.key_file.display()
            )
        })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| anyhow::anyhow!("http.tls: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
