//! The server's certificate: read from PEM files (given, or the development CA's), handed
//! to every TLS handshake through a resolver whose current key can be swapped, so a reload
//! (SIGHUP) reaches new connections without touching the open ones.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// Where the server's certificate chain and key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The certificate chain, server certificate first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The certificate every TLS handshake presents; replaced whole by [`CertStore::reload`].
#[derive(Debug)]
pub struct CertStore {
    files: CertificateFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Reads `files`; fails if they can't be read, hold no certificate or key, or the key
    /// doesn't belong to the certificate.
    pub fn open(files: CertificateFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let current = load(&files, &provider)?;
        Ok(CertStore {
            files,
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again and presents what they hold from the next handshake on. On
    /// failure the certificate in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = load(&self.files, &self.provider)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    pub fn files(&self) -> &CertificateFiles {
        &self.files
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(Arc::clone(&current))
    }
}

fn load(files: &CertificateFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key(files.key.display().to_string(), e.to_string()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        TlsError::Key(
            files.key.display().to_string(),
            format!(
                "not usable with the certificate in {}: {e}",
                files.cert.display()
            ),
        )
    })
}

/// The certificates of a PEM file, in order; an error if it holds none.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate(path.display().to_string(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate(
            path.display().to_string(),
            "no certificate in the file".to_owned(),
        ));
    }
    Ok(chain)
}

/// Checks that the server certificate in `cert` is valid for `localhost`, signed by the
/// CA in `ca`.
#[cfg(test)]
pub(super) fn verify_chain(ca: &Path, cert: &Path) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    for root in read_chain(ca).map_err(|e| e.to_string())? {
        roots.add(root).map_err(|e| e.to_string())?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(super::crypto_provider()),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let chain = read_chain(cert).map_err(|e| e.to_string())?;
    let (leaf, intermediates) = chain.split_first().ok_or("empty chain")?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    rustls::client::danger::ServerCertVerifier::verify_server_cert(
        &*verifier,
        leaf,
        intermediates,
        &name,
        &[],
        rustls::pki_types::UnixTime::now(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}
