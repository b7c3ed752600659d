//! The client side of the management API, shared by `scale`, `compliance report` and
//! `devices`: where the API is (`--url`, else the config's `[http]`), which CA to trust for
//! HTTPS (`--ca-file`), the token (`SLUICE_TOKEN`), and errors that say what to check.

use anyhow::Context;
use std::path::PathBuf;

/// Where the API is: `--url`, or the config's `http.listen`.
#[derive(clap::Args)]
pub struct ApiArgs {
    /// Base URL of the instance's HTTP API (`http://host:port`; a bare `host:port` means
    /// plain HTTP); default: from the config's `[http]`. Token: `SLUICE_TOKEN`.
    #[arg(long)]
    url: Option<String>,
    /// Config whose `[http].listen` (and `[http.tls]`) give the URL when --url is not given.
    #[arg(long, short, default_value = "config/sluice.toml")]
    config: PathBuf,
    /// PEM file of the CA certificate(s) that signed the API's HTTPS certificate, when it is
    /// not one this machine trusts already (a private CA, a self-signed certificate).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

/// Whom a request needs: the hint for a 401/403 names the role.
#[derive(Clone, Copy)]
pub enum Role {
    Viewer,
    Admin,
}

impl ApiArgs {
    /// The API's base URL.
    pub fn base_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.url {
            let url = url.trim_end_matches('/');
            // `--url 127.0.0.1:9464` means the plain HTTP API at that address.
            return Ok(match url.contains("://") {
                true => url.to_string(),
                false => format!("http://{url}"),
            });
        }
        let (config, _) = sluice_config::load_unvalidated(&self.config).map_err(|e| {
            anyhow::anyhow!("{e} (pass --url http://host:port, or --config <file>)")
        })?;
        let listen = &config.http.listen;
        anyhow::ensure!(
            !listen.is_empty(),
            "{}: the HTTP API is off (http.listen is empty); pass --url",
            self.config.display()
        );
        let mut addr = sluice_common::addr::listen_addr(listen)
            .with_context(|| format!("{}: http.listen = {listen:?}", self.config.display()))?;
        // Listening on every address: ask this host's loopback of the same family.
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let scheme = if config.http.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(format!("{scheme}://{addr}"))
    }

    fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &self.ca_file {
            let pem =
                std::fs::read(path).with_context(|| format!("--ca-file {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .with_context(|| {
                    format!("--ca-file {}: no PEM certificate in it", path.display())
                })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(builder.build()?)
    }

    /// Sends `method` to `path` (joined to the base URL) with `SLUICE_TOKEN`; the body of a
    /// 2xx answer, else an error that says what to do.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        role: Role,
    ) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base_url()?);
        let mut request = self.client()?.request(method.clone(), &url);
        let token = std::env::var("SLUICE_TOKEN").ok();
        if let Some(token) = &token {
            request = request.bearer_auth(token.trim());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => anyhow::bail!("{method} {url}: {}", unreachable_hint(&e)),
        };
        let status = response.status();
        let body = response.text().await?;
        let role = match role {
            Role::Viewer => "a viewer token",
            Role::Admin => "an admin token",
        };
        let hint = match (status.as_u16(), &token) {
            (401, None) => format!(": the API needs a token: set SLUICE_TOKEN to {role}"),
            (401, Some(_)) => ": the token in SLUICE_TOKEN is not one of the API's tokens".into(),
            (403, _) => {
                format!(": the token in SLUICE_TOKEN has too low a role (this needs {role})")
            }
            _ => String::new(),
        };
        anyhow::ensure!(
            status.is_success(),
            "{method} {url}: {status}{hint} ({body})"
        );
        Ok(body)
    }

    /// GETs `path` as a viewer and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let body = self.call(reqwest::Method::GET, path, Role::Viewer).await?;
        serde_json::from_str(&body).with_context(|| format!("GET {path}: the answer is not JSON"))
    }
}

/// What a request that got no HTTP answer means, and what to check.
fn unreachable_hint(e: &reqwest::Error) -> String {
    if let Some(tls) = rustls_error(e) {
        return match tls {
            rustls::Error::InvalidCertificate(why) => format!(
                "the API's certificate is not trusted here ({why:?}): pass --ca-file <PEM of \
                 the CA that signed [http.tls].cert>, or ask for the URL the certificate names"
            ),
            other => format!("TLS failed ({other}): is the API serving HTTPS with [http.tls]?"),
        };
    }
    let text = error_chain(e);
    // Some connectors wrap the rustls error in a way a downcast does not reach; its text is
    // rustls's own ("invalid peer certificate: UnknownIssuer").
    if text.contains("invalid peer certificate") {
        return format!(
            "the API's certificate is not trusted here ({text}): pass --ca-file <PEM of the CA \
             that signed [http.tls].cert>"
        );
    }
    if e.is_connect() {
        return format!(
            "nothing answers ({text}): is `sluice run` up, and are --url / --config right?"
        );
    }
    if e.is_timeout() {
        return format!("no answer in time ({text})");
    }
    // An HTTPS API asked over http:// answers with TLS bytes that are not HTTP.
    format!("{text} (is the scheme right? an API with [http.tls] needs https://)")
}

/// The rustls error somewhere in `e`'s chain (inside an `io::Error` as hyper-rustls wraps it).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(tls) = inner.and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// `e` and its causes, one after another.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}
