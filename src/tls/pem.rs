//! [`config_from_pem`]: a server config from a PEM certificate chain and private key, with an
//! error that names the file and what is wrong with it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, ServerConfig};

/// A TLS server config from PEM files: `cert_chain` holds the server's certificate first, then
/// any intermediates; `private_key` its key (PKCS#8, PKCS#1 or SEC1). ALPN offers `h2` and
/// `http/1.1` (only `http/1.1` without the `http2` feature), so [`TlsListener`] lets each
/// client's choice pick the engine. TLS 1.3 and 1.2, no client certificates.
///
/// The cryptography is rustls' process-default `CryptoProvider`: the one the application
/// installed with `CryptoProvider::install_default`, else the one rustls' crate features name
/// (ring, which feature `tls-ring` turns on). An application whose build also turns on
/// rustls' `aws-lc-rs` (through another crate) must install one, as for every rustls config
/// built by default; rustls panics and says so otherwise.
///
/// # Errors
///
/// A file that cannot be read, is not PEM, holds no certificate (or no private key), a key
/// rustls cannot use, or a key that is not the certificate's: the [`TlsError`] names the file
/// and the problem.
///
/// [`TlsListener`]: super::TlsListener
pub fn config_from_pem(
    cert_chain: impl AsRef<Path>,
    private_key: impl AsRef<Path>,
) -> Result<ServerConfig, TlsError> {
    let (cert_chain, private_key) = (cert_chain.as_ref(), private_key.as_ref());
    let certs = read_certificates(cert_chain)?;
    let key = read_private_key(private_key)?;
    let builder = ServerConfig::builder();
    let signing_key = builder
        .crypto_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::new(private_key, Problem::UnusableKey(e)))?;
    let certified = CertifiedKey::new(certs, signing_key);
    check_key_matches(&certified, cert_chain, private_key)?;
    let mut config = builder
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = super::default_alpn();
    Ok(config)
}

/// Every certificate in `path`, in order; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(path, Problem::NotPem(e)))?;
    if certs.is_empty() {
        return Err(TlsError::new(path, Problem::NoCertificate));
    }
    Ok(certs)
}

/// The first private key in `path`.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::new(path, Problem::NoPrivateKey),
        e => TlsError::new(path, Problem::NotPem(e)),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::new(path, Problem::Unreadable(e)))
}

/// A key that belongs to another certificate would fail every handshake; say so at start-up.
fn check_key_matches(
    certified: &CertifiedKey,
    cert_chain: &Path,
    private_key: &Path,
) -> Result<(), TlsError> {
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half, so there is nothing to compare.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::new(
            private_key,
            Problem::KeyMismatch(cert_chain.to_path_buf()),
        )),
        Err(e) => Err(TlsError::new(cert_chain, Problem::BadCertificate(e))),
    }
}

/// Why [`config_from_pem`] failed: which file, and what is wrong with it.
#[derive(Debug)]
pub struct TlsError {
    path: PathBuf,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Unreadable(io::Error),
    NotPem(pem::Error),
    NoCertificate,
    NoPrivateKey,
    UnusableKey(rustls::Error),
    BadCertificate(rustls::Error),
    /// The certificate file the key does not belong to.
    KeyMismatch(PathBuf),
}

impl TlsError {
    fn new(path: &Path, problem: Problem) -> Self {
        TlsError {
            path: path.to_path_buf(),
            problem,
        }
    }

    /// The file the problem is in (the key file, for a key that does not match).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Unreadable(e) => write!(f, "cannot read {path}: {e}"),
            Problem::NotPem(e) => write!(f, "{path} is not valid PEM: {e}"),
            Problem::NoCertificate => write!(
                f,
                "no certificate in {path} (expected a PEM \"BEGIN CERTIFICATE\" block)"
            ),
            Problem::NoPrivateKey => write!(
                f,
                "no private key in {path} (expected a PEM \"BEGIN PRIVATE KEY\", \
                 \"BEGIN EC PRIVATE KEY\" or \"BEGIN RSA PRIVATE KEY\" block)"
            ),
            Problem::UnusableKey(e) => write!(f, "unusable private key in {path}: {e}"),
            Problem::BadCertificate(e) => write!(f, "bad certificate in {path}: {e}"),
            Problem::KeyMismatch(cert) => write!(
                f,
                "the private key in {path} does not match the certificate in {}",
                cert.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Unreadable(e) => Some(e),
            Problem::NotPem(e) => Some(e),
            Problem::UnusableKey(e) | Problem::BadCertificate(e) => Some(e),
            Problem::NoCertificate | Problem::NoPrivateKey | Problem::KeyMismatch(_) => None,
        }
    }
}
