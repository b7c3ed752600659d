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
use std::path::Path;
use std::sync::Arc;

/// Builds the TLS client of `[mqtt.tls]`; the error names the file or setting at fault.
pub fn client_config(tls: &MqttTlsConfig) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(root_store(tls)?);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("mqtt.tls: {e}"))?;
    let builder = match &tls.server_name {
        Some(name) => {
            let expected = ServerName::try_from(name.clone())
                .map_err(|e| format!("mqtt.tls.server_name '{name}': {e}"))?;
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("mqtt.tls: {e}"))?;
            builder
                .dangerous() // Still full verification, against the configured name.
                .with_custom_certificate_verifier(Arc::new(NamedVerifier { inner, expected }))
        }
        None => builder.with_root_certificates(roots),
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| format!("mqtt.tls.cert_file/key_file: {e}")),
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn root_store(tls: &MqttTlsConfig) -> Result<RootCertStore, String> {
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
        return Err(format!(
            "mqtt.tls.ca_file: no CA certificate found in {from}"
        ));
    }
    Ok(roots)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key in it", path.display()))
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
