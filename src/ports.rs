//! Listening addresses: fail early with a one-line error that names the port and its key.

use std::net::{SocketAddr, TcpListener};

/// Checks that `addr` can be bound; the error names `key`, the config key that sets it.
pub fn check_free(addr: &str, key: &str) -> anyhow::Result<SocketAddr> {
    let parsed: SocketAddr = sluice_common::addr::listen_addr(addr)
        .map_err(|_| anyhow::anyhow!("{key} = '{addr}' is not ip:port (or localhost:port)"))?;
    match TcpListener::bind(parsed) {
        Ok(_) => Ok(parsed),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(anyhow::anyhow!(
            "port {} is already in use ({addr}); choose another with {key}",
            parsed.port()
        )),
        Err(e) => Err(anyhow::anyhow!("cannot listen on {addr} ({key}): {e}")),
    }
}

/// A port on 127.0.0.1 that is free right now (for demos and tests).
pub fn free_local_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `addr`.
pub async fn wait_listening(addr: SocketAddr, within: std::time::Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("nothing listens on {addr} after {within:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
