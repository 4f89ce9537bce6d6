//! Loading PEM material and building configurations, with certificates made by rcgen.

use std::path::PathBuf;

use super::*;

/// A CA and certificates it signed, as PEM files in a temporary directory.
pub(crate) struct TestPki {
    pub dir: PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestPki {
    pub fn new(tag: &str) -> TestPki {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tls-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "leasequery test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        TestPki { dir, ca }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` (IP addresses become IP SANs): (certificate, key) paths.
    pub fn issue(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.ca)
            .unwrap();
        let cert_path = self.dir.join(format!("{stem}.pem"));
        let key_path = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn message(err: TlsError) -> String {
    err.to_string()
}

/// A certificate and its key load; the server and client configurations build from them.
#[test]
fn certificates_keys_and_anchors_load_and_build() {
    let pki = TestPki::new("load");
    let (cert, key) = pki.issue("server", &["::1", "dhcp-a.example"]);
    let identity = Identity::load(&cert, &key).unwrap();
    assert_eq!(identity.chain.len(), 1);
    let anchors = load_trust_anchors(&pki.ca()).unwrap();
    server_config(&identity, &anchors, ClientCertificates::Required).unwrap();
    server_config(&identity, &[], ClientCertificates::Optional).unwrap();
    client_config(&anchors, Some(&identity)).unwrap();
    client_config(&anchors, None).unwrap();
    assert!(
        !format!("{identity:?}").contains("BEGIN"),
        "the key is never printed"
    );
}

/// A missing file, a file without the PEM section asked for, and garbage each say which file
/// and what is wrong.
#[test]
fn bad_files_are_named_in_the_error() {
    let pki = TestPki::new("bad");
    let missing = pki.dir.join("nope.pem");
    let err = message(load_certificates(&missing).unwrap_err());
    assert!(
        err.contains("cannot read") && err.contains("nope.pem"),
        "{err}"
    );
    let text = pki.write("text.pem", "hello\n");
    let err = message(load_certificates(&text).unwrap_err());
    assert!(
        err.contains("text.pem") && err.contains("no certificate"),
        "{err}"
    );
    let err = message(load_private_key(&text).unwrap_err());
    assert!(err.contains("no private key"), "{err}");
    let broken = pki.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n",
    );
    let err = message(load_certificates(&broken).unwrap_err());
    assert!(err.contains("broken.pem"), "{err}");
    // A certificate file given as the key: no key in it.
    let (cert, _) = pki.issue("server", &["::1"]);
    let err = message(load_private_key(&cert).unwrap_err());
    assert!(err.contains("no private key"), "{err}");
}

/// A key that is not the certificate's is refused when the server configuration is built.
#[test]
fn a_key_of_another_certificate_is_refused() {
    let pki = TestPki::new("mismatch");
    let (cert, _) = pki.issue("a", &["::1"]);
    let (_, other_key) = pki.issue("b", &["::1"]);
    let identity = Identity::load(&cert, &other_key).unwrap();
    let err = server_config(&identity, &[], ClientCertificates::Required).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch), "{err}");
    assert!(message(err).contains("not the certificate's"));
}

/// A peer name is a DNS name or an address; the default is the peer's address as an IP SAN.
#[test]
fn server_names() {
    assert!(parse_server_name("dhcp-b.example.net").is_ok());
    assert!(parse_server_name("2001:db8::3").is_ok());
    assert!(parse_server_name("not a name").is_err());
    let tls = ClientTls {
        config: client_config(&[], None).unwrap(),
        server_name: None,
    };
    let ip: std::net::IpAddr = "2001:db8::3".parse().unwrap();
    assert_eq!(tls.name_for(ip), ServerName::IpAddress(ip.into()));
}
