//! TLS for connections: a client configuration that trusts the CAs of one PEM file (a
//! broker's development CA, say), on rustls with *ring*.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::error::{Error, Result};

/// A TLS client configuration trusting exactly the CA certificates in the PEM file `ca`.
pub fn tls_config_trusting(ca: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let fail = |what: String| Error::Tls(format!("{}: {what}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca).map_err(|e| fail(e.to_string()))?;
    for certificate in certificates {
        roots
            .add(certificate.map_err(|e| fail(e.to_string()))?)
            .map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no CA certificate in the file".to_owned()));
    }
    config_trusting(roots)
}

/// A TLS client configuration trusting the public web CAs (Mozilla's list), as Azure
/// Service Bus's certificates need.
pub fn tls_config_public_roots() -> Result<Arc<rustls::ClientConfig>> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    config_trusting(roots)
}

fn config_trusting(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// *ring*: the smaller build; rustls deprecates it for lacking post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
