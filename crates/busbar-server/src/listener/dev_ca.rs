//! The development CA: made once in the data directory when no certificate is configured,
//! with a server certificate it signs for `localhost`, `127.0.0.1` and `::1`, and reused on
//! later starts. Clients trust the CA (`busbar dev-cert` prints it), not the server
//! certificate, so the server certificate may be reissued without the clients noticing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::Digest as _;

use super::TlsError;

/// Folder of the data directory the development certificates live in.
const DIR: &str = "tls";
const CA_CERT: &str = "dev-ca.pem";
const CA_KEY: &str = "dev-ca-key.pem";
const SERVER_CERT: &str = "dev-server.pem";
const SERVER_KEY: &str = "dev-server-key.pem";
/// The names the server certificate is good for: this machine, by name and address.
const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// Both certificates last ten years: a development setup should not break by itself.
const VALIDITY: time::Duration = time::Duration::days(3650);

/// Where the development CA and the server certificate it signed are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCertificates {
    /// The CA certificate clients trust (PEM).
    pub ca: PathBuf,
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// The development certificates of `data_dir`, made now if absent: the CA once, and a server
/// certificate whenever it is missing (or the CA was just made).
pub fn ensure(data_dir: &Path) -> Result<DevCertificates, TlsError> {
    let dir = data_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| TlsError::file(&dir, e))?;
    let paths = DevCertificates {
        ca: dir.join(CA_CERT),
        cert: dir.join(SERVER_CERT),
        key: dir.join(SERVER_KEY),
    };
    let ca_key_path = dir.join(CA_KEY);
    let made_ca = !(paths.ca.is_file() && ca_key_path.is_file());
    let ca_key = if made_ca {
        let key = KeyPair::generate().map_err(TlsError::generate)?;
        let cert = ca_params(&key)?
            .self_signed(&key)
            .map_err(TlsError::generate)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_public(&paths.ca, &cert.pem())?;
        tracing::info!(ca = %paths.ca.display(), "created a development CA");
        key
    } else {
        let pem =
            std::fs::read_to_string(&ca_key_path).map_err(|e| TlsError::file(&ca_key_path, e))?;
        KeyPair::from_pem(&pem)
            .map_err(|e| TlsError::Key(ca_key_path.display().to_string(), e.to_string()))?
    };
    if made_ca || !(paths.cert.is_file() && paths.key.is_file()) {
        let issuer = Issuer::new(ca_params(&ca_key)?, ca_key);
        let key = KeyPair::generate().map_err(TlsError::generate)?;
        let cert = server_params()?
            .signed_by(&key, &issuer)
            .map_err(TlsError::generate)?;
        write_private(&paths.key, &key.serialize_pem())?;
        write_public(&paths.cert, &cert.pem())?;
        tracing::info!(cert = %paths.cert.display(), "issued a development server certificate");
    }
    Ok(paths)
}

/// The CA's parameters. Its name carries a digest of its key, so CAs made in different
/// places are told apart by a trust store; given the key, the parameters come out the same
/// every time (which is what signing with it later needs).
fn ca_params(key: &KeyPair) -> Result<CertificateParams, TlsError> {
    let digest = sha2::Sha256::digest(key.public_key_raw());
    let tag: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(TlsError::generate)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Busbar");
    name.push(DnType::CommonName, format!("Busbar development CA {tag}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params);
    Ok(params)
}

fn server_params() -> Result<CertificateParams, TlsError> {
    let names: Vec<String> = SERVER_NAMES.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).map_err(TlsError::generate)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "localhost");
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // Strict verifiers (Python 3.13's default) want the issuer's key named.
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params);
    Ok(params)
}

fn set_validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // A day back, so a client whose clock is a little behind accepts it at once.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + VALIDITY;
}

fn write_public(path: &Path, pem: &str) -> Result<(), TlsError> {
    write_atomically(path, pem, 0o644)
}

fn write_private(path: &Path, pem: &str) -> Result<(), TlsError> {
    write_atomically(path, pem, 0o600)
}

/// Writes through a temporary file and a rename, so a crash never leaves half a key; the
/// file has `mode` from its creation on.
fn write_atomically(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    let temporary = path.with_extension("pem.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(text.as_bytes())?;
        file.sync_all()
    });
    written.map_err(|e| TlsError::file(&temporary, e))?;
    std::fs::rename(&temporary, path).map_err(|e| TlsError::file(path, e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_reused_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        let cert = std::fs::read_to_string(&first.cert).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

        let again = ensure(dir.path()).unwrap();
        assert_eq!(again, first);
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
        assert_eq!(std::fs::read_to_string(&again.cert).unwrap(), cert);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for key in [first.key.clone(), dir.path().join(DIR).join(CA_KEY)] {
                let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }
    }

    #[test]
    fn a_missing_server_certificate_is_reissued_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path()).unwrap();
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        let cert = std::fs::read_to_string(&first.cert).unwrap();
        std::fs::remove_file(&first.cert).unwrap();
        let again = ensure(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
        assert_ne!(std::fs::read_to_string(&again.cert).unwrap(), cert);
        super::super::certificates::verify_chain(&again.ca, &again.cert).unwrap();
    }
}
