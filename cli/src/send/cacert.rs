//! `--cacert PATH`: the certificates of a PEM file as the only trusted roots, and, as with curl,
//! a server whose own certificate is one of them.
//!
//! `openssl req -x509` marks the certificate it makes `CA:TRUE` unless told otherwise. curl
//! (OpenSSL) accepts a server that presents exactly a certificate from `--cacert`, whatever its
//! basic constraints say; webpki refuses every CA certificate as a server's own
//! (`CaUsedAsEndEntity`). [`CaFile`] is webpki's verifier plus that one exception, and only
//! when the presented certificate is byte for byte one the user handed over and names the
//! server: every other refusal stands, and the handshake's signatures are checked by webpki's
//! verifier as always, so the server must still hold the certificate's key.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::{verify_server_name, WebPkiServerVerifier};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::ParsedCertificate;
use tokio_rustls::rustls::{
    self, CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore,
    SignatureScheme,
};

/// The server certificate verifier for `--cacert`.
#[derive(Debug)]
pub struct CaFile {
    webpki: Arc<WebPkiServerVerifier>,
    /// The file's certificates, to compare a presented one with byte for byte.
    certs: Vec<CertificateDer<'static>>,
}

impl CaFile {
    /// Reads the PEM file at `path`; fails, naming it, when it holds no usable certificate.
    pub fn load(path: &Path, provider: Arc<CryptoProvider>) -> Result<CaFile, String> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read --cacert {shown}: {e}"))?;
        let mut certs = Vec::new();
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("--cacert {shown} is not valid PEM: {e}"))?;
            roots
                .add(cert.clone())
                .map_err(|e| format!("--cacert {shown} holds an unusable certificate: {e}"))?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err(format!("--cacert {shown} holds no PEM certificate"));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("cannot set up TLS with --cacert {shown}: {e}"))?;
        Ok(CaFile { webpki, certs })
    }

    /// The one exception to webpki's verdict: a CA certificate from the file, presented as the
    /// server's own, for the name the client asked for.
    fn served_as_its_own(
        &self,
        refused: &rustls::Error,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
    ) -> Result<(), rustls::Error> {
        if !is_ca_used_as_end_entity(refused) || !self.certs.iter().any(|c| c == end_entity) {
            return Err(refused.clone());
        }
        verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)
    }
}

/// Whether webpki refused the certificate only for being a CA's. webpki checks the validity
/// period before the basic constraints, so such a certificate is also within its dates.
pub fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    let rustls::Error::InvalidCertificate(CertificateError::Other(other)) = e else {
        return false;
    };
    matches!(
        other.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

impl ServerCertVerifier for CaFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(refused) => self
                .served_as_its_own(&refused, end_entity, server_name)
                .map(|()| ServerCertVerified::assertion()),
            verified => verified,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}
