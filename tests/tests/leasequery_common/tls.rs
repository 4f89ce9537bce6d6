//! Test certificates, made at test time with rcgen: a CA, certificates it signed (IP
//! addresses become IP SANs), and the dhcp-user TLS configurations built from them.

use std::path::PathBuf;
use std::sync::Arc;

use dhcp_user::tls::{self, ClientCertificates, ClientTls, Identity};

/// A CA and the certificates it signed, as PEM files in a temporary directory (removed on
/// drop).
pub struct TestPki {
    pub dir: PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestPki {
    /// A new CA named `tag`.
    pub fn new(tag: &str) -> TestPki {
        let dir = super::temp_dir(&format!("pki-{tag}"));
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("leasequery test CA {tag}"),
        );
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        TestPki { dir, ca }
    }

    /// The CA certificate's PEM file.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` signed by the CA: its (certificate, key) PEM files.
    pub fn issue(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, stem);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cert_path = self.dir.join(format!("{stem}.pem"));
        let key_path = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// The server side for a certificate `names`, clients verified against this CA.
    pub fn server(
        &self,
        stem: &str,
        names: &[&str],
        clients: ClientCertificates,
    ) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.issue(stem, names);
        let identity = Identity::load(&cert, &key).unwrap();
        let anchors = tls::load_trust_anchors(&self.ca()).unwrap();
        tls::server_config(&identity, &anchors, clients).unwrap()
    }

    /// A requestor trusting this CA, presenting `identity` (made with [`TestPki::issue`]).
    pub fn client(&self, identity: Option<(PathBuf, PathBuf)>) -> ClientTls {
        let anchors = tls::load_trust_anchors(&self.ca()).unwrap();
        let identity = identity.map(|(cert, key)| Identity::load(&cert, &key).unwrap());
        ClientTls {
            config: tls::client_config(&anchors, identity.as_ref()).unwrap(),
            server_name: None,
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
