//! `[mqtt.tls]` → a rustls client configuration for rumqttc.
//!
//! Why our own rustls config rather than rumqttc's `Transport::tls`: that one takes a CA
//! only, while managed brokers need the system roots (AWS IoT Core's ATS endpoint chains to
//! Amazon's public roots) and sometimes a certificate name other than the host dialled
//! (`server_name`). The crypto provider is `ring`, named explicitly because the dependency
//! tree carries two providers and rustls refuses to guess.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_config::security::MqttTlsConfig;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A `[mqtt.tls]` that cannot be used; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not PEM certificates: {source}", path.display())]
    NotPem {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM {what} in it", path.display())]
    Missing { path: PathBuf, what: &'static str },
    #[error("mqtt.tls.ca_file: no CA certificate found in {0}")]
    NoRoots(String),
    #[error("mqtt.tls.server_name '{name}': {reason}")]
    ServerName { name: String, reason: String },
    #[error("{setting}: {reason}")]
    Rejected {
        setting: &'static str,
        reason: String,
    },
}

fn rejected(setting: &'static str) -> impl Fn(rustls::Error) -> TlsError {
    move |e| TlsError::Rejected {
        setting,
        reason: e.to_string(),
    }
}

/// Builds the TLS client of `[mqtt.tls]`.
pub fn client_config(tls: &MqttTlsConfig) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(root_store(tls)?);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rejected("mqtt.tls"))?;
    let builder = match &tls.server_name {
        Some(name) => {
            let expected =
                ServerName::try_from(name.clone()).map_err(|e| TlsError::ServerName {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| TlsError::Rejected {
                    setting: "mqtt.tls",
                    reason: e.to_string(),
                })?;
            builder
                .dangerous() // Still full verification, against the configured name.
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, expected }))
        }
        None => builder.with_root_certificates(roots),
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(rejected("mqtt.tls.cert_file/key_file")),
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn root_store(tls: &MqttTlsConfig) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = match &tls.ca_file {
        Some(ca) => read_certs(ca)?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        let from = tls
            .ca_file
            .as_ref()
            .map_or("the system's roots".into(), |p| p.display().to_string());
        return Err(TlsError::NoRoots(from));
    }
    Ok(roots)
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::NotPem {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::Missing {
            path: path.to_path_buf(),
            what: "private key",
        })
}

/// WebPKI verification of the broker's certificate against `expected` instead of the host
/// that was dialled.
#[derive(Debug)]
struct NamedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: ServerName<'static>,
}

impl ServerCertVerifier for NamedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.expected, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The gateway's TLS server (`[embedded.mqtt_tls]`): its certificate chain and key, no client
/// certificates asked for (devices log in with their credentials).
pub fn server_config(
    tls: &sluice_config::security::ServerTlsConfig,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rejected("embedded.mqtt_tls"))?
        .with_no_client_auth()
        .with_single_cert(read_certs(&tls.cert_file)?, read_key(&tls.key_file)?)
        .map_err(rejected("embedded.mqtt_tls"))
}
