//! `[api]` (the opt-in HTTP JSON API) and `[lease-log]` (the forensic lease log): their keys
//! as written and as validated, kept apart from the rest of the file's keys.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// Longest request body the HTTP API reads by default (bytes).
pub const DEFAULT_API_MAX_REQUEST_SIZE: usize = 64 * 1024;
/// Connections the HTTP API serves at once by default.
pub const DEFAULT_API_MAX_CONNECTIONS: usize = 64;
/// Default `[lease-log] retention`: 400 days.
pub const DEFAULT_LEASE_LOG_RETENTION: u64 = 400 * 86_400;
/// Default `[lease-log] renewal-interval`: a renewal answered in XDP is logged at most once an
/// hour per lease.
pub const DEFAULT_LEASE_LOG_RENEWAL_INTERVAL: u64 = 3600;

/// `[api]`: the HTTP JSON API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// The bearer token every request must carry (read from `token-file`).
    pub token: ApiToken,
    /// Our certificate chain and key, with TLS; `None`: plain HTTP.
    pub tls: Option<crate::tls::Identity>,
    /// Longest request body read, bytes (a longer one is answered 413).
    pub max_request_size: usize,
    /// Connections served at once (more wait in the kernel's backlog).
    pub max_connections: usize,
}

/// The API's bearer token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(pub Vec<u8>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(redacted)")
    }
}

/// `[lease-log]`: the forensic lease log (who held which address when).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLogConfig {
    /// Seconds a record is kept.
    pub retention: u64,
    /// A lease renewed in the fast path is logged at most once per this many seconds.
    pub renewal_interval: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawApi {
    listen: Spanned<SocketAddr>,
    token_file: Option<Spanned<PathBuf>>,
    tls_certificate: Option<Spanned<PathBuf>>,
    tls_private_key: Option<Spanned<PathBuf>>,
    max_request_size: Option<Spanned<usize>>,
    max_connections: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawLeaseLog {
    retention: Option<Spanned<Duration>>,
    renewal_interval: Option<Spanned<Duration>>,
}

/// A duration as written: seconds (`3600`), or a number and a unit (`90s`, `30m`, `12h`, `400d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Duration(u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Seconds(u64),
            Text(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Seconds(seconds) => Ok(Duration(seconds)),
            Written::Text(text) => parse_duration(&text)
                .map(Duration)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `90`, `90s`, `30m`, `12h`, `400d` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad =
        || format!("`{text}` is not a duration (a number of seconds, or 90s, 30m, 12h, 400d)");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number.checked_mul(scale).ok_or_else(bad)
}

impl Validator<'_> {
    /// `[api]`: the token file read (it must hold a token), TLS files loaded, limits checked.
    pub(super) fn api(&self, raw: Option<RawApi>) -> Result<Option<ApiConfig>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let key = |name: &str| format!("api.{name}");
        let Some(token_file) = &raw.token_file else {
            return Err(self.invalid(
                Some(raw.listen.span()),
                key("token-file"),
                "the API needs a bearer token: set `token-file` (a file whose first line is \
                 the token)"
                    .into(),
            ));
        };
        let token = std::fs::read_to_string(token_file.get_ref())
            .map_err(|err| {
                self.invalid(
                    Some(token_file.span()),
                    key("token-file"),
                    format!("reading {}: {err}", token_file.get_ref().display()),
                )
            })?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if token.len() < 16 {
            return Err(self.invalid(
                Some(token_file.span()),
                key("token-file"),
                format!(
                    "{} must hold a token of at least 16 characters on its first line",
                    token_file.get_ref().display()
                ),
            ));
        }
        let tls = match (&raw.tls_certificate, &raw.tls_private_key) {
            (None, None) => None,
            (Some(certificate), Some(private_key)) => {
                let load = |value: &Spanned<PathBuf>, name: &str, err: crate::tls::TlsError| {
                    self.invalid(Some(value.span()), key(name), err.to_string())
                };
                let chain = crate::tls::load_certificates(certificate.get_ref())
                    .map_err(|err| load(certificate, "tls-certificate", err))?;
                let private = crate::tls::load_private_key(private_key.get_ref())
                    .map_err(|err| load(private_key, "tls-private-key", err))?;
                Some(crate::tls::Identity {
                    chain,
                    key: private,
                })
            }
            (Some(certificate), None) => {
                return Err(self.invalid(
                    Some(certificate.span()),
                    key("tls-certificate"),
                    "needs `tls-private-key` (the certificate's key, PEM) as well".into(),
                ))
            }
            (None, Some(private_key)) => {
                return Err(self.invalid(
                    Some(private_key.span()),
                    key("tls-private-key"),
                    "needs `tls-certificate` (the certificate it is the key of, PEM) as well"
                        .into(),
                ))
            }
        };
        let at_least_one = |value: &Option<Spanned<usize>>, name: &str, default: usize| match value
        {
            Some(v) if *v.get_ref() == 0 => {
                Err(self.invalid(Some(v.span()), key(name), "must be at least 1".into()))
            }
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        };
        Ok(Some(ApiConfig {
            listen: *raw.listen.get_ref(),
            token: ApiToken(token.into_bytes()),
            tls,
            max_request_size: at_least_one(
                &raw.max_request_size,
                "max-request-size",
                DEFAULT_API_MAX_REQUEST_SIZE,
            )?,
            max_connections: at_least_one(
                &raw.max_connections,
                "max-connections",
                DEFAULT_API_MAX_CONNECTIONS,
            )?,
        }))
    }

    /// `[lease-log]`: on when the section is there.
    pub(super) fn lease_log(
        &self,
        raw: Option<RawLeaseLog>,
    ) -> Result<Option<LeaseLogConfig>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let positive = |value: &Option<Spanned<Duration>>, name: &str, default: u64| match value {
            Some(v) if v.get_ref().0 == 0 => Err(self.invalid(
                Some(v.span()),
                format!("lease-log.{name}"),
                "must be longer than 0".into(),
            )),
            Some(v) => Ok(v.get_ref().0),
            None => Ok(default),
        };
        Ok(Some(LeaseLogConfig {
            retention: positive(&raw.retention, "retention", DEFAULT_LEASE_LOG_RETENTION)?,
            renewal_interval: positive(
                &raw.renewal_interval,
                "renewal-interval",
                DEFAULT_LEASE_LOG_RENEWAL_INTERVAL,
            )?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const SUBNET: &str = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";

    fn token_file(tag: &str, token: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("api-token-{tag}-{}", std::process::id()));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        path
    }

    /// `[api]` with a token file: the token is read, the limits default; without `token-file`,
    /// with a missing file, a short token, or a certificate without its key, the error names
    /// the file, the line and the key.
    #[test]
    fn api_keys_parse_or_name_file_line_and_key() {
        let good = token_file("good", "0123456789abcdef0123");
        let text = format!(
            "[api]\nlisten = \"127.0.0.1:8547\"\ntoken-file = \"{}\"\n{SUBNET}",
            good.display()
        );
        let api = Config::parse(&text, "x.toml").unwrap().api.unwrap();
        assert_eq!(api.token.0, b"0123456789abcdef0123");
        assert_eq!(api.max_request_size, super::DEFAULT_API_MAX_REQUEST_SIZE);
        assert!(api.tls.is_none());
        assert!(
            !format!("{api:?}").contains("0123456789abcdef"),
            "never printed"
        );

        let err = |text: String| Config::parse(&text, "x.toml").unwrap_err().to_string();
        let e = err(format!("[api]\nlisten = \"127.0.0.1:8547\"\n{SUBNET}"));
        assert!(
            e.contains("x.toml") && e.contains("api.token-file") && e.contains("line 2"),
            "{e}"
        );
        let e = err(format!(
            "[api]\nlisten = \"127.0.0.1:8547\"\ntoken-file = \"/nonexistent/token\"\n{SUBNET}"
        ));
        assert!(e.contains("api.token-file") && e.contains("line 3"), "{e}");
        let short = token_file("short", "abc");
        let e = err(format!(
            "[api]\nlisten = \"127.0.0.1:8547\"\ntoken-file = \"{}\"\n{SUBNET}",
            short.display()
        ));
        assert!(e.contains("at least 16"), "{e}");
        let e = err(format!(
            "[api]\nlisten = \"127.0.0.1:8547\"\ntoken-file = \"{}\"\ntls-certificate = \"/x.pem\"\n{SUBNET}",
            good.display()
        ));
        assert!(
            e.contains("api.tls-certificate") && e.contains("tls-private-key"),
            "{e}"
        );
        let e = err(format!("[api]\nlisten = \"nowhere\"\n{SUBNET}"));
        assert!(e.contains("line 2"), "{e}");
        let _ = std::fs::remove_file(good);
        let _ = std::fs::remove_file(short);
    }

    /// `[lease-log]`: durations with units or in seconds, defaults of 400 days and an hour;
    /// a bad unit or a zero is refused naming the key and line.
    #[test]
    fn lease_log_keys_take_durations() {
        let log = Config::parse(&format!("[lease-log]\n{SUBNET}"), "x.toml")
            .unwrap()
            .lease_log
            .unwrap();
        assert_eq!(log.retention, 400 * 86_400);
        assert_eq!(log.renewal_interval, 3600);
        let log = Config::parse(
            &format!("[lease-log]\nretention = \"12h\"\nrenewal-interval = 90\n{SUBNET}"),
            "x.toml",
        )
        .unwrap()
        .lease_log
        .unwrap();
        assert_eq!((log.retention, log.renewal_interval), (43_200, 90));
        assert!(Config::parse(SUBNET, "x.toml").unwrap().lease_log.is_none());
        let e = Config::parse(
            &format!("[lease-log]\nretention = \"400y\"\n{SUBNET}"),
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("retention") && e.contains("line 2") && e.contains("400y"),
            "{e}"
        );
        let e = Config::parse(
            &format!("[lease-log]\nrenewal-interval = \"0s\"\n{SUBNET}"),
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("lease-log.renewal-interval") && e.contains("line 2"),
            "{e}"
        );
    }
}
