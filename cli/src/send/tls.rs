//! `https://`: TLS over the connection, then the same pipelining path as plain TCP.
//!
//! rustls with the ring provider (the library's `tls-ring` feature uses the same, so the build has
//! one of each). ALPN offers `http/1.1` only: the client pipelines HTTP/1.1, so a server must
//! not pick HTTP/2 for it.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use super::cacert::{is_ca_used_as_end_entity, CaFile};

/// Which server certificates the client accepts.
#[derive(Clone, Debug)]
pub enum Trust {
    /// Those issued by a root the machine trusts (what curl does by default).
    System,
    /// Those issued by a CA in this PEM file (`--cacert`), instead of the system's roots, or,
    /// as curl does, exactly one of its certificates presented as the server's own.
    CaFile(PathBuf),
    /// Any (`--insecure`): still encrypted, but the server is not authenticated.
    Anything,
}

/// A client TLS setup, built once before connecting so a bad `--cacert` is reported without
/// touching the network.
pub struct Tls {
    connector: TlsConnector,
    trust: Trust,
}

impl Tls {
    /// The client's TLS settings for `trust`; fails when that trust store cannot be loaded.
    pub fn new(trust: &Trust) -> Result<Tls, String> {
        // `send` pipelines HTTP/1.1, so a server must not pick HTTP/2 for it.
        Tls::with_alpn(trust, b"http/1.1")
    }

    /// The same, offering `protocol` alone by ALPN (`load --http2` offers `h2`).
    pub fn with_alpn(trust: &Trust, protocol: &[u8]) -> Result<Tls, String> {
        let mut config = client_config(trust)?;
        config.alpn_protocols = vec![protocol.to_vec()];
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
            trust: trust.clone(),
        })
    }

    /// Runs the handshake over `io` for `host` (SNI for a name, none for an IP literal). The
    /// error is the reason alone, with a hint when the usual fix is a flag.
    pub async fn handshake<IO>(&self, io: IO, host: &str) -> Result<TlsStream<IO>, String>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("`{host}` is not a name a certificate can be checked against"))?;
        self.connector
            .connect_with(name, io, unbounded_batches)
            .await
            .map_err(|e| self.explain(&e))
    }

    /// The handshake's error as one phrase, plus what to do about the common ones.
    fn explain(&self, e: &std::io::Error) -> String {
        let tls = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let untrusted = tls.is_some_and(is_untrusted);
        let hint = match (tls, &self.trust) {
            (_, Trust::System) if untrusted => {
                " (use --insecure or --cacert for a self-signed server)".to_owned()
            }
            (_, Trust::CaFile(path)) if untrusted => {
                format!(" (not issued by a CA in {})", path.display())
            }
            (Some(rustls::Error::InvalidMessage(_)), _) => {
                " (is it a plain http:// server?)".to_owned()
            }
            _ => String::new(),
        };
        let why = match (tls, e.kind()) {
            (None, std::io::ErrorKind::UnexpectedEof) => {
                "the server closed the connection".to_owned()
            }
            _ => e.to_string(),
        };
        format!("{why}{hint}")
    }
}

/// Whether the certificate failed for want of a trusted issuer, which `--cacert` or
/// `--insecure` is the fix for: no issuer known (`UnknownIssuer`); a trusted certificate of
/// the same name that did not sign it, found as its issuer by name (Debian's
/// `ssl-cert-snakeoil.pem` is CN=localhost, as a test server's certificate often is): a
/// `BadSignature`, or, its key being RSA and the server's EC, a signature algorithm that does
/// not fit its key; or a self-signed CA certificate served as the server's own (what
/// `openssl req -x509` makes by default).
fn is_untrusted(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. },
        ) => true,
        e => is_ca_used_as_end_entity(e),
    }
}

/// The client's TLS settings for `trust`, without ALPN (each user sets its own); fails when
/// that trust store cannot be loaded. Also what the demo's `/fanout` calls its own HTTPS
/// server with.
pub fn client_config(trust: &Trust) -> Result<ClientConfig, String> {
    // rustls' process-default provider: ring, the one provider the binary's build turns on.
    let builder = ClientConfig::builder();
    let provider = Arc::clone(builder.crypto_provider());
    let builder = match trust {
        Trust::System => builder.with_root_certificates(system_roots()?),
        Trust::CaFile(path) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaFile::load(path, provider)?)),
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
    };
    Ok(builder.with_no_client_auth())
}

/// Lets rustls take the whole pipeline at once. With its default 64 KiB buffer limit a large
/// batch would leave in 64 KiB socket writes; without one, it is encrypted in one go and its
/// records (up to 64 per vectored write, 1 MiB) leave together. The batch is in memory already,
/// so the limit would save nothing.
fn unbounded_batches(conn: &mut rustls::ClientConnection) {
    conn.set_buffer_limit(None);
}

/// The machine's trusted roots. A store that fails to load in part still serves with the rest;
/// one that yields nothing is an error now rather than an "unknown issuer" for every server.
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(format!(
            "no trusted root certificates on this system ({why}); pass --cacert PATH"
        ));
    }
    Ok(roots)
}

/// `--insecure`: accepts whatever certificate the server shows, but still checks that the
/// server holds its key (the handshake signatures), so the session is encrypted to whoever
/// answered.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
