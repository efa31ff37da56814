//! Certificates made at run time (rcgen) and the temporary files tests hand to the binary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// A server certificate for `127.0.0.1` and `localhost`, and the PEM of the CA to trust for it.
pub struct Pki {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivatePkcs8KeyDer<'static>,
    pub ca_pem: String,
    /// `chain` and `key` as PEM, for the binary's `--tls-cert` and `--tls-key`.
    pub chain_pem: String,
    pub key_pem: String,
}

pub const NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// A CA called `ca_name`, and a leaf it issued: what a real deployment has. CAs in one test
/// need distinct names: a verifier looks an issuer up by name.
pub fn ca_signed(ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(NAMES.map(String::from))
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Pki {
        chain: vec![leaf.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        ca_pem: ca_cert.pem(),
        chain_pem: leaf.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A certificate that vouches for itself: what a test server has.
pub fn self_signed() -> Pki {
    let made = rcgen::generate_simple_self_signed(NAMES.map(String::from)).unwrap();
    Pki {
        chain: vec![made.cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
        ca_pem: made.cert.pem(),
        chain_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
    }
}

/// A certificate for CN=localhost and `names`, marked `is_ca`: `openssl req -x509` marks what
/// it makes `CA:TRUE` unless told otherwise.
pub fn localhost(names: &[&str], is_ca: IsCa) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = is_ca;
    params
}

/// `params` signed by their own new key: a certificate that vouches for itself.
pub fn self_signed_from(params: &CertificateParams) -> Pki {
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Pki {
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        ca_pem: cert.pem(),
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A self-signed `CA:TRUE` certificate for CN=localhost and `names`.
pub fn self_signed_ca(names: &[&str]) -> Pki {
    self_signed_from(&localhost(names, IsCa::Ca(BasicConstraints::Unconstrained)))
}

/// A trust store holding one unrelated self-signed end-entity certificate for CN=localhost, as
/// Debian's `/etc/ssl/certs/ssl-cert-snakeoil.pem` is: a verifier finds it as the issuer of any
/// self-signed CN=localhost certificate, and its signature then does not match. Its key is EC,
/// like the servers' here; Debian's is RSA (readme_tls.rs makes that one with openssl).
pub fn snakeoil_roots() -> TempFile {
    let snakeoil = self_signed_from(&localhost(&["localhost"], IsCa::ExplicitNoCa));
    TempFile::new("snakeoil-roots.pem", &snakeoil.ca_pem)
}

/// A path in the temporary directory for `name`: tests run in parallel, so it is made unique
/// within the process as well as between processes.
fn unique_temp_path(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    std::env::temp_dir().join(format!("pipelined-{pid}-{n}-{name}"))
}

/// A file in the temporary directory, removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str, contents: &str) -> TempFile {
        let path = unique_temp_path(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A trust store holding a CA that issued nothing a test serves.
pub fn unrelated_roots() -> TempFile {
    TempFile::new("unrelated-roots.pem", &ca_signed("unrelated CA").ca_pem)
}

/// A new directory in the temporary directory, removed with its contents when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = unique_temp_path(name);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
