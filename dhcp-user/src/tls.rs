//! TLS for the leasequery TCP service and peer sessions (RFC 7653 §5.2): certificates and keys
//! read from PEM files, and the rustls configurations built from them.
//!
//! One crypto provider, ring, named explicitly (never the process default). The server side
//! verifies requestors' certificates against the configured trust anchors (mutual TLS, or
//! optional client certificates); the requestor side verifies the server's certificate against
//! its trust anchors and the server's name (a peer's IP address as an IP SAN, or a configured
//! DNS name).
//!
//! [`Stream`] is a leasequery connection before and after StartTLS: the same TCP stream, plain
//! or wrapped.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file is not the PEM expected.
    #[error("{}: {what}", .path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The private key is not the certificate's.
    #[error("the private key is not the certificate's: their public keys differ")]
    KeyMismatch,
    /// rustls refused the material (a certificate it cannot parse, a CA that is no
    /// certificate authority, ...).
    #[error("{0}")]
    Rustls(String),
}

/// A rustls error about our identity as a [`TlsError`].
fn identity_error(err: rustls::Error) -> TlsError {
    match err {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsError::KeyMismatch
        }
        other => TlsError::Rustls(other.to_string()),
    }
}

/// The crypto provider every configuration here uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Every certificate (`BEGIN CERTIFICATE`) in the PEM file at `path`, in file order; at least
/// one.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(path, format!("not a PEM certificate file: {err}")))?;
    if certs.is_empty() {
        return Err(pem_error(
            path,
            "holds no certificate (no `-----BEGIN CERTIFICATE-----` section)",
        ));
    }
    Ok(certs)
}

/// The private key (PKCS#8, PKCS#1 or SEC1 PEM) in the file at `path`.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(path)?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => pem_error(
            path,
            "holds no private key (no `-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
             `EC PRIVATE KEY` section)",
        ),
        other => pem_error(path, format!("not a PEM private key: {other}")),
    })
}

/// Trust anchors: every certificate of the PEM file at `path`, each checked to be usable as
/// one.
pub fn load_trust_anchors(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = load_certificates(path)?;
    let mut roots = RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|err| {
            pem_error(
                path,
                format!(
                    "certificate {} is not usable as a trust anchor: {err}",
                    index + 1
                ),
            )
        })?;
    }
    Ok(certs)
}

fn root_store(anchors: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in anchors {
        roots
            .add(cert.clone())
            .map_err(|err| TlsError::Rustls(format!("trust anchor: {err}")))?;
    }
    Ok(roots)
}

/// A certificate chain (end entity first) and its private key.
pub struct Identity {
    /// The chain, end-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The end entity's private key.
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// Loads a chain and a key from PEM files.
    pub fn load(certificate: &Path, private_key: &Path) -> Result<Identity, TlsError> {
        Ok(Identity {
            chain: load_certificates(certificate)?,
            key: load_private_key(private_key)?,
        })
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.key.secret_der() == other.key.secret_der()
    }
}

impl Eq for Identity {}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("chain", &format!("{} certificate(s)", self.chain.len()))
            .field("key", &"(redacted)")
            .finish()
    }
}

/// Which requestors' certificates the server asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Every TLS requestor must present a certificate signed by a trust anchor (mutual TLS).
    Required,
    /// A requestor may present one (it is then verified); one without is let in.
    Optional,
}

/// The server's configuration: our identity, and requestors' certificates verified against
/// `anchors` (none given: none asked for).
pub fn server_config(
    identity: &Identity,
    anchors: &[CertificateDer<'static>],
    clients: ClientCertificates,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Rustls(err.to_string()))?;
    let builder = if anchors.is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(anchors)?), provider);
        let verifier = match clients {
            ClientCertificates::Required => verifier,
            ClientCertificates::Optional => verifier.allow_unauthenticated(),
        };
        let verifier = verifier
            .build()
            .map_err(|err| TlsError::Rustls(err.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    builder
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map(Arc::new)
        .map_err(identity_error)
}

/// A requestor's configuration: servers verified against `anchors`; `identity` presented
/// when the server asks for a certificate.
pub fn client_config(
    anchors: &[CertificateDer<'static>],
    identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Rustls(err.to_string()))?
        .with_root_certificates(root_store(anchors)?);
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(identity_error)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// What a requestor needs to StartTLS: its configuration and the name the server's
/// certificate must carry (`None`: the server's IP address, as an IP SAN).
#[derive(Clone)]
pub struct ClientTls {
    /// The rustls configuration.
    pub config: Arc<ClientConfig>,
    /// The name to verify instead of the server's address.
    pub server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// The name the certificate of the server at `address` must carry.
    pub fn name_for(&self, address: std::net::IpAddr) -> ServerName<'static> {
        self.server_name
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(address.into()))
    }
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Parses a server name to verify (a DNS name or an IP address).
pub fn parse_server_name(text: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(text.to_string())
        .map_err(|_| format!("`{text}` is not a DNS name or an IP address"))
}

/// A leasequery connection: TCP in the clear, or after StartTLS.
pub enum Stream {
    /// In the clear.
    Plain(TcpStream),
    /// TLS over the same TCP connection.
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
