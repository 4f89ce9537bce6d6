//! `option` entries at every level (`[[option]]`, `[[subnet.option]]`, a pool's, a pd-pool's, a
//! reservation's) and a pd-pool's `excluded-prefix`: parsed and checked here, typed and encoded
//! by [`crate::options`].
//!
//! ```toml
//! [[subnet.option]]
//! name = "ntp-server"
//! value = [{ server = "2001:db8::123" }, { fqdn = "ntp.example.net" }]
//!
//! [[subnet.option]]
//! code = 250                     # any other option, by code
//! type = "string"                # or `hex = "00:01"` instead of type and value
//! value = "hello"
//! always-send = true             # sent without the client asking for it in its ORO
//! ```

use std::ops::Range;

use ipnet::Ipv6Net;
use serde::Deserialize;
use toml::Spanned;

use dhcp_common::dhcpv6::{OPT_DNS_SERVERS, OPT_DOMAIN_LIST, OPT_INFORMATION_REFRESH_TIME};

use super::{ConfigError, Validator};
use crate::options::{self, ConfiguredOption, Kind, PdExclude};

/// One `option` entry as written.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawOption {
    name: Option<Spanned<String>>,
    code: Option<Spanned<u16>>,
    #[serde(rename = "type")]
    kind: Option<Spanned<String>>,
    value: Option<Spanned<toml::Value>>,
    hex: Option<Spanned<String>>,
    always_send: Option<Spanned<bool>>,
}

impl RawOption {
    /// The first span of the entry, for errors about the entry as a whole.
    fn span(&self) -> Option<Range<usize>> {
        self.name
            .as_ref()
            .map(Spanned::span)
            .or(self.code.as_ref().map(Spanned::span))
            .or(self.value.as_ref().map(Spanned::span))
            .or(self.hex.as_ref().map(Spanned::span))
    }
}

/// Options that may appear more than once at one level: one per vendor (17, RFC 8415 section
/// 21.17) and one per resolver (144, RFC 9463 section 4.1).
fn may_repeat(code: u16) -> bool {
    matches!(code, 17 | 144)
}

impl Validator<'_> {
    /// The options of one level; `at` is its key path (`subnet[0].option`).
    pub(super) fn options(
        &self,
        raw: &[RawOption],
        at: &str,
    ) -> Result<Vec<ConfiguredOption>, ConfigError> {
        let mut out: Vec<ConfiguredOption> = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            let key = |rest: &str| format!("{at}[{i}]{rest}");
            let option = self.option(entry, &key)?;
            if !may_repeat(option.code) && out.iter().any(|o| o.code == option.code) {
                return Err(self.invalid(
                    entry.span(),
                    key(""),
                    format!(
                        "option {} is already set at this level (only vendor-opts and dnr may \
                         repeat)",
                        option.code
                    ),
                ));
            }
            out.push(option);
        }
        Ok(out)
    }

    fn option(
        &self,
        entry: &RawOption,
        key: &dyn Fn(&str) -> String,
    ) -> Result<ConfiguredOption, ConfigError> {
        let (code, kind) = match (&entry.name, &entry.code) {
            (Some(name), None) => match options::by_name(name.get_ref()) {
                Some(def) => (def.code, Some(def.kind)),
                None => {
                    let known: Vec<&str> = options::REGISTRY.iter().map(|d| d.name).collect();
                    return Err(self.invalid(
                        Some(name.span()),
                        key(".name"),
                        format!(
                            "no option is named `{}`; known names: {} (or give `code`)",
                            name.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
            },
            (None, Some(code)) => (
                *code.get_ref(),
                options::by_code(*code.get_ref()).map(|d| d.kind),
            ),
            (Some(_), Some(code)) => {
                return Err(self.invalid(
                    Some(code.span()),
                    key(".code"),
                    "give `name` or `code`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(self.invalid(
                    entry.span(),
                    key(""),
                    "an option needs `name` or `code`".into(),
                ))
            }
        };
        let name_span = entry
            .name
            .as_ref()
            .map(Spanned::span)
            .or(entry.code.as_ref().map(Spanned::span));
        if options::is_protocol_option(code) {
            return Err(self.invalid(
                name_span,
                key(if entry.name.is_some() { ".name" } else { ".code" }),
                format!("option {code} is the server's own (built from leases and the protocol), not configurable"),
            ));
        }
        let kind = match (&entry.kind, kind) {
            (Some(t), Some(known)) => {
                return Err(self.invalid(
                    Some(t.span()),
                    key(".type"),
                    format!(
                        "option {code} is a standard option of type `{}`: leave `type` out",
                        known.name()
                    ),
                ))
            }
            (Some(t), None) => match Kind::generic(t.get_ref()) {
                Some(kind) => Some(kind),
                None => {
                    return Err(self.invalid(
                        Some(t.span()),
                        key(".type"),
                        format!(
                            "unknown type `{}`: one of addresses, domains, domain, string, u8, \
                             u16, u32, hex",
                            t.get_ref()
                        ),
                    ))
                }
            },
            (None, known) => known,
        };
        let data = match (&entry.value, &entry.hex) {
            (Some(value), None) => {
                let Some(kind) = kind else {
                    return Err(self.invalid(
                        Some(value.span()),
                        key(".value"),
                        format!("option {code} is not a standard one: give its `type`, or its bytes as `hex`"),
                    ));
                };
                options::value::encode(kind, value.get_ref())
                    .map_err(|message| self.invalid(Some(value.span()), key(".value"), message))?
            }
            (None, Some(hex)) => {
                options::value::encode(Kind::Hex, &toml::Value::String(hex.get_ref().clone()))
                    .map_err(|message| self.invalid(Some(hex.span()), key(".hex"), message))?
            }
            (Some(_), Some(hex)) => {
                return Err(self.invalid(
                    Some(hex.span()),
                    key(".hex"),
                    "give `value` or `hex`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(self.invalid(
                    name_span,
                    key(""),
                    "an option needs its `value` (or its bytes as `hex`)".into(),
                ))
            }
        };
        let always_send = entry.always_send.as_ref().is_some_and(|a| *a.get_ref());
        if always_send && options::only_when_requested(code) {
            return Err(self.invalid(
                entry.always_send.as_ref().map(Spanned::span),
                key(".always-send"),
                format!(
                    "option {code} goes only to a client that asks for it in its ORO (RFC 8415 \
                     sections 21.24, 21.25)"
                ),
            ));
        }
        Ok(ConfiguredOption {
            code,
            data,
            always_send,
        })
    }

    /// A subnet's own options: `[[subnet.option]]`, with `dns-servers`, `domain-search` and
    /// `information-refresh-time` as options 23, 24 and 32 (sent when asked for, as before).
    pub(super) fn subnet_options(
        &self,
        raw: &super::RawSubnet,
        domain_search: &[String],
        key: &dyn Fn(&str) -> String,
    ) -> Result<Vec<ConfiguredOption>, ConfigError> {
        let mut own = self.options(&raw.option, &key("option"))?;
        let mut shorthand = Vec::new();
        if !raw.dns_servers.is_empty() {
            let data = raw.dns_servers.iter().flat_map(|a| a.octets()).collect();
            shorthand.push(("dns-servers", OPT_DNS_SERVERS, data));
        }
        if !domain_search.is_empty() {
            let data = crate::proto::encode_domain_list(domain_search)
                .map_err(|e| self.invalid(None, key("domain-search"), e.to_string()))?;
            shorthand.push(("domain-search", OPT_DOMAIN_LIST, data));
        }
        if let Some(refresh) = raw.information_refresh_time {
            shorthand.push((
                "information-refresh-time",
                OPT_INFORMATION_REFRESH_TIME,
                refresh.to_be_bytes().to_vec(),
            ));
        }
        for (name, code, data) in shorthand {
            if let Some(i) = own.iter().position(|o| o.code == code) {
                return Err(self.invalid(
                    raw.option[i].span(),
                    key(&format!("option[{i}]")),
                    format!("option {code} is set by `{name}` already: give it once"),
                ));
            }
            own.push(ConfiguredOption {
                code,
                data,
                always_send: false,
            });
        }
        Ok(own)
    }

    /// A pd-pool's `excluded-prefix` (RFC 6603): inside the pool's prefix and longer than the
    /// delegated length, so that it lies within each delegated prefix and is longer than it.
    pub(super) fn pd_exclude(
        &self,
        raw: Option<&Spanned<super::Prefix>>,
        pool: Ipv6Net,
        delegated_length: u8,
        key: &str,
    ) -> Result<Option<PdExclude>, ConfigError> {
        let Some(raw) = raw else { return Ok(None) };
        let excluded = raw.get_ref().0;
        if !pool.contains(&excluded) {
            return Err(self.invalid(
                Some(raw.span()),
                key.into(),
                format!("{excluded} is outside the pool's prefix {pool}"),
            ));
        }
        if excluded.prefix_len() <= delegated_length {
            return Err(self.invalid(
                Some(raw.span()),
                key.into(),
                format!(
                    "an excluded prefix is longer than the delegated prefixes (/{delegated_length}) \
                     it is cut from (RFC 6603 section 4.2); this one is /{}",
                    excluded.prefix_len()
                ),
            ));
        }
        Ok(Some(PdExclude { excluded }))
    }
}

impl super::Subnet {
    /// The option levels below the subnet for a lease of it (`prefix_len` for a delegated
    /// prefix, `None` for an address): the pool's (or pd-pool's) own options, then the
    /// reservation's (the reservation of this address or prefix), each when it has any.
    pub fn lease_option_levels(
        &self,
        address: std::net::Ipv6Addr,
        prefix_len: Option<u8>,
    ) -> (Option<&[ConfiguredOption]>, Option<&[ConfiguredOption]>) {
        let pool = match prefix_len {
            None => self
                .pools
                .iter()
                .position(|p| p.contains(address))
                .map(|i| self.pool_options[i].as_slice()),
            Some(len) => self
                .pd_pools
                .iter()
                .position(|p| p.holds(address, len))
                .map(|i| self.pd_pool_options[i].as_slice()),
        };
        let reservation = self
            .reservations
            .iter()
            .find(|r| match prefix_len {
                None => r.address == Some(address),
                Some(len) => r
                    .prefix
                    .is_some_and(|p| p.network() == address && p.prefix_len() == len),
            })
            .map(|r| r.options.as_slice());
        (
            pool.filter(|l| !l.is_empty()),
            reservation.filter(|l| !l.is_empty()),
        )
    }

    /// The configured options of a reply granting `granted` (addresses, and prefixes with
    /// their length) from `shared` (the request's subnet, then the rest of its shared network):
    /// the `base` levels (the subnet's, global merged in, then its clients' classes'), then
    /// the own options of the pd-pools, then of the pools, of the leases granted, then those
    /// of their reservations, each level replacing a code of the levels before
    /// ([`options::merge`]). The one rule for the controller's replies and the fast path's
    /// pre-encoded option sets.
    pub fn reply_options<'a>(
        base: impl IntoIterator<Item = &'a [ConfiguredOption]>,
        shared: &[&'a super::Subnet],
        granted: &[(std::net::Ipv6Addr, Option<u8>)],
    ) -> Vec<ConfiguredOption> {
        let mut granted = granted.to_vec();
        // Prefixes first: an address pool's options are more specific than a pd-pool's.
        granted.sort_by_key(|(_, len)| len.is_none());
        let mut pools: Vec<&[ConfiguredOption]> = Vec::new();
        let mut reservations: Vec<&[ConfiguredOption]> = Vec::new();
        for (address, len) in granted {
            if let Some((pool, reservation)) = shared
                .iter()
                .map(|s| s.lease_option_levels(address, len))
                .find(|levels| levels.0.is_some() || levels.1.is_some())
            {
                pools.extend(pool);
                reservations.extend(reservation);
            }
        }
        // Reservation > pool > class > subnet (global merged in): a class is about the client,
        // a pool or reservation about the lease itself.
        options::merge(base.into_iter().chain(pools).chain(reservations))
    }

    /// The Prefix Exclude of the pd-pool delegating `prefix`/`len`, if it has one.
    pub fn pd_exclude_for(&self, prefix: std::net::Ipv6Addr, len: u8) -> Option<PdExclude> {
        self.pd_pools
            .iter()
            .find(|p| p.holds(prefix, len))
            .and_then(|p| p.exclude)
    }
}

#[cfg(test)]
mod tests;
