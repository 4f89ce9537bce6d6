//! TLS to the PostgreSQL server, libpq's way: `sslmode` (`disable`, `prefer`, `require`,
//! `verify-ca`, `verify-full`) and a CA file (`ssl-ca`, libpq's `sslrootcert`), over rustls with
//! the ring provider.
//!
//! As with libpq: `prefer` tries TLS and falls back to a plain connection when the server has
//! none; `prefer` and `require` without a CA accept any certificate (encryption only);
//! `require` with a CA verifies as `verify-ca` does; `verify-ca` checks the chain against the
//! CA but not the name; `verify-full` checks both (the host's name or IP address).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use super::StoreError;

/// How the connection to the database uses TLS (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, else plain (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is verified only when a CA is given.
    Require,
    /// TLS, the certificate signed by the CA; its name is not checked.
    VerifyCa,
    /// TLS, the certificate signed by the CA and naming the host connected to.
    VerifyFull,
}

impl SslMode {
    /// Every mode's name, as written in the configuration (and libpq).
    pub const NAMES: [&'static str; 5] =
        ["disable", "prefer", "require", "verify-ca", "verify-full"];

    /// The mode named `name`, `None` for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode's name.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the mode verifies the server's certificate whatever else is set.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// `[lease-database]`'s TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PgTls {
    /// `sslmode`.
    pub mode: SslMode,
    /// `ssl-ca`: the PEM file of the CA(s) that sign the server's certificate.
    pub ca: Option<PathBuf>,
}

/// What tokio-postgres connects with: our rustls configuration, or none for `disable`.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    config: Option<Arc<ClientConfig>>,
    /// For messages: the CA file the certificate was checked against.
    ca: Option<PathBuf>,
}

impl MakeRustls {
    /// The connector for `tls`; the CA file is read now (a bad one fails the start).
    pub(crate) fn new(tls: &PgTls) -> Result<(Self, tokio_postgres::config::SslMode), StoreError> {
        use tokio_postgres::config::SslMode as Wire;
        let wire = match tls.mode {
            SslMode::Disable => {
                return Ok((
                    MakeRustls {
                        config: None,
                        ca: None,
                    },
                    Wire::Disable,
                ))
            }
            SslMode::Prefer => Wire::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Wire::Require,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_error = |what: String| StoreError::Tls(what);
        let verifier: Arc<dyn ServerCertVerifier> = match &tls.ca {
            Some(path) => {
                let anchors = crate::tls::load_trust_anchors(path)
                    .map_err(|err| tls_error(format!("[lease-database] ssl-ca: {err}")))?;
                let mut roots = RootCertStore::empty();
                for anchor in anchors {
                    roots.add(anchor).map_err(|err| {
                        tls_error(format!("[lease-database] ssl-ca {}: {err}", path.display()))
                    })?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|err| {
                            tls_error(format!("[lease-database] ssl-ca {}: {err}", path.display()))
                        })?;
                Arc::new(CaVerifier {
                    webpki,
                    check_name: tls.mode == SslMode::VerifyFull,
                })
            }
            None if tls.mode.verifies() => {
                return Err(tls_error(format!(
                    "[lease-database] sslmode = \"{}\" needs ssl-ca (the CA that signs the \
                     server's certificate)",
                    tls.mode.name()
                )))
            }
            None => Arc::new(AnyCertificate(provider.clone())),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| tls_error(format!("TLS to the lease database: {err}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok((
            MakeRustls {
                config: Some(Arc::new(config)),
                ca: tls.ca.clone(),
            },
            wire,
        ))
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        // Called for Unix sockets too (with no name), where PostgreSQL has no TLS: the name
        // is checked only when a handshake happens.
        Ok(RustlsConnect {
            config: self.config.clone(),
            domain: domain.to_owned(),
            ca: self.ca.clone(),
        })
    }
}

/// One connection's TLS handshake.
pub(crate) struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    domain: String,
    ca: Option<PathBuf>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self
                .config
                .ok_or_else(|| io::Error::other("TLS is disabled (sslmode = \"disable\")"))?;
            let name = ServerName::try_from(self.domain.clone()).map_err(|err| {
                io::Error::other(format!("{:?} is no TLS server name: {err}", self.domain))
            })?;
            let connector = tokio_rustls::TlsConnector::from(config);
            match connector.connect(name, stream).await {
                Ok(stream) => Ok(RustlsStream(stream)),
                Err(err) => Err(name_the_ca(err, self.ca.as_ref())),
            }
        })
    }
}

/// How messages name the CA's key.
pub(crate) const CA_KEY: &str = "[lease-database] ssl-ca";

/// A certificate the CA does not vouch for is said to be so, naming the key that gave the CA.
fn name_the_ca(err: io::Error, ca: Option<&PathBuf>) -> io::Error {
    let certificate = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|inner| matches!(inner, rustls::Error::InvalidCertificate(_)));
    match ca {
        Some(ca) if certificate => io::Error::other(format!(
            "the server's certificate does not verify against {CA_KEY} {}: {err}",
            ca.display()
        )),
        _ => err,
    }
}

/// A TLS connection to the database.
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        // SCRAM without channel binding, as libpq's default `channel_binding = prefer` allows.
        ChannelBinding::none()
    }
}

/// The CA's verdict; without `check_name` (verify-ca) a certificate for another name passes.
#[derive(Debug)]
struct CaVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for CaVerifier {
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
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
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
}

/// `prefer` and `require` without a CA: encryption only, any certificate (libpq's behaviour);
/// the handshake's signatures are still checked.
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
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL query or `key=value`
/// pairs): tokio-postgres knows only some of libpq's modes, so they are ours to apply.
/// Returns the rest of the string and the two values, if given.
pub fn split_tls_params(conninfo: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut root) = (None, None);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            mode = Some(value);
            true
        }
        "sslrootcert" => {
            root = Some(value);
            true
        }
        _ => false,
    };
    let rest = if conninfo.starts_with("postgres://") || conninfo.starts_with("postgresql://") {
        match conninfo.split_once('?') {
            None => conninfo.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(key, value.to_owned())
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value, text) in keyword_pairs(conninfo) {
            if !take(&key, value) {
                kept.push(text);
            }
        }
        kept.join(" ")
    };
    (rest, mode, root)
}

/// `key=value` pairs of a libpq keyword string: (key, unquoted value, the pair as written).
fn keyword_pairs(conninfo: &str) -> Vec<(String, String, String)> {
    let mut pairs = Vec::new();
    let mut chars = conninfo.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|&(_, c)| c == '=') {
            chars.next();
            while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_some_and(|&(_, c)| c == '\'') {
                chars.next();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '\'' => break,
                        c => value.push(c),
                    }
                }
            } else {
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        let end = chars.peek().map_or(conninfo.len(), |&(i, _)| i);
        pairs.push((key, value, conninfo[start..end].to_owned()));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sslmode and sslrootcert come out of URLs and keyword strings; the rest stays as written.
    #[test]
    fn tls_parameters_are_taken_out_of_the_connection_string() {
        let (rest, mode, root) = split_tls_params(
            "postgresql://dhcp@db.example:5432/leases?sslmode=verify-full&application_name=x&sslrootcert=/etc/ca.pem",
        );
        assert_eq!(
            rest,
            "postgresql://dhcp@db.example:5432/leases?application_name=x"
        );
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, root) = split_tls_params("postgresql://h/db?sslmode=require");
        assert_eq!(
            (rest.as_str(), mode.as_deref(), root),
            ("postgresql://h/db", Some("require"), None)
        );
        let (rest, mode, root) = split_tls_params(
            "host=127.0.0.1 sslmode = verify-ca user='a b' sslrootcert='/x y.pem'",
        );
        assert_eq!(rest, "host=127.0.0.1 user='a b'");
        assert_eq!(mode.as_deref(), Some("verify-ca"));
        assert_eq!(root.as_deref(), Some("/x y.pem"));
        assert_eq!(split_tls_params("host=h").0, "host=h");
    }

    /// verify-ca and verify-full without a CA are refused, naming the key.
    #[test]
    fn verifying_modes_need_a_ca() {
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let err = MakeRustls::new(&PgTls { mode, ca: None }).err().unwrap();
            assert!(err.to_string().contains("ssl-ca"), "{err}");
        }
        assert!(MakeRustls::new(&PgTls::default()).is_ok());
        for name in SslMode::NAMES {
            assert_eq!(SslMode::parse(name).unwrap().name(), name);
        }
        assert_eq!(SslMode::parse("allow"), None);
    }
}
