//! `[reconfigure]` (RFC 8415 section 18.3.11: the server tells clients to come back): its keys
//! as written and as validated. A subnet's own `reconfigure = true|false` overrides `enabled`.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Validator};

/// Default `[reconfigure] rate`: Reconfigure exchanges started per second.
pub const DEFAULT_RECONFIGURE_RATE: u32 = 100;

/// What a Reconfigure asks the client to send (the Reconfigure Message option, RFC 8415
/// section 21.19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReconfigureMessage {
    /// A Renew (msg-type 5): the client renews its leases and takes the new options.
    Renew,
    /// An Information-Request (msg-type 11): the client only refreshes its options.
    InfReq,
}

impl ReconfigureMessage {
    /// The msg-type carried in the Reconfigure Message option.
    pub fn msg_type(self) -> u8 {
        match self {
            ReconfigureMessage::Renew => dhcp_common::dhcpv6::MSG_RENEW,
            ReconfigureMessage::InfReq => dhcp_common::dhcpv6::MSG_INFORMATION_REQUEST,
        }
    }
}

/// `[reconfigure]`, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconfigureConfig {
    /// Subnets without a `reconfigure` key of their own give clients that send Reconfigure
    /// Accept a reconfigure key (default off).
    pub enabled: bool,
    /// After a reload that changes a subnet's options, send its reconfigurable clients a
    /// Reconfigure (default off).
    pub on_reload: bool,
    /// What the Reconfigures after a reload ask for.
    pub message: ReconfigureMessage,
    /// Reconfigure exchanges started per second (a `--subnet` storm, a reload), at least 1.
    pub rate: u32,
}

impl Default for ReconfigureConfig {
    fn default() -> Self {
        ReconfigureConfig {
            enabled: false,
            on_reload: false,
            message: ReconfigureMessage::Renew,
            rate: DEFAULT_RECONFIGURE_RATE,
        }
    }
}

/// `[reconfigure]` as written.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawReconfigure {
    enabled: Option<bool>,
    on_reload: Option<bool>,
    message: Option<ReconfigureMessage>,
    rate: Option<Spanned<u32>>,
}

impl Validator<'_> {
    pub(super) fn reconfigure(
        &self,
        raw: Option<RawReconfigure>,
    ) -> Result<ReconfigureConfig, ConfigError> {
        let defaults = ReconfigureConfig::default();
        let Some(raw) = raw else {
            return Ok(defaults);
        };
        if let Some(rate) = raw.rate.as_ref().filter(|r| *r.get_ref() == 0) {
            return Err(self.invalid(
                Some(rate.span()),
                "reconfigure.rate".into(),
                "must be at least 1 (Reconfigure exchanges started per second)".into(),
            ));
        }
        Ok(ReconfigureConfig {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            on_reload: raw.on_reload.unwrap_or(defaults.on_reload),
            message: raw.message.unwrap_or(defaults.message),
            rate: raw.rate.map_or(defaults.rate, Spanned::into_inner),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ReconfigureMessage;
    use crate::config::Config;

    const SUBNET: &str = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\ninterface = \"eth0\"\n";

    /// Without `[reconfigure]` no subnet gives out reconfigure keys.
    #[test]
    fn reconfigure_is_off_by_default() {
        let config = Config::parse(SUBNET, "x.toml").unwrap();
        assert!(!config.reconfigure.enabled);
        assert!(!config.subnets[0].reconfigure);
    }

    /// `enabled` is the subnets' default; a subnet's own `reconfigure` wins.
    #[test]
    fn subnet_reconfigure_overrides_the_global_default() {
        let text = format!(
            "[reconfigure]\nenabled = true\nmessage = \"inf-req\"\nrate = 5\n{SUBNET}\
             [[subnet]]\nprefix = \"2001:db8:2::/64\"\ninterface = \"eth1\"\nreconfigure = false\n"
        );
        let config = Config::parse(&text, "x.toml").unwrap();
        assert!(config.subnets[0].reconfigure);
        assert!(!config.subnets[1].reconfigure);
        assert_eq!(config.reconfigure.message, ReconfigureMessage::InfReq);
        assert_eq!(config.reconfigure.rate, 5);
    }

    /// A rate of 0 is refused, naming the key and the line.
    #[test]
    fn zero_rate_is_refused() {
        let err = Config::parse(&format!("[reconfigure]\nrate = 0\n{SUBNET}"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reconfigure.rate"), "{err}");
        assert!(err.contains("x.toml, line 2"), "{err}");
    }
}
