//! `[[client-classes]]` and a pool's `client-classes`: parsed and checked here; matched by
//! the parent module.
//!
//! ```toml
//! [[client-classes]]
//! name = "cpe-acme"
//! vendor-class = { enterprise = 4491, prefix = "ACME-CPE" }   # or data = "..." (exact)
//!
//! [[client-classes.option]]
//! name = "aftr-name"
//! value = "aftr.example.net"
//!
//! [[client-classes]]
//! name = "business"
//! relay-remote-id = { enterprise = 3561, id = "0a0b0c" }
//! ```

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::super::{options::RawOption, ConfigError, HexBytes, RawRemoteId, Validator};
use super::{ClassSet, ClientClass, DataMatch, VendorClassMatch, MAX_CLASSES};

/// One `[[client-classes]]` entry as written.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(in crate::config) struct RawClientClass {
    name: Spanned<String>,
    vendor_class: Option<Spanned<RawVendorClass>>,
    user_class: Option<Spanned<RawData>>,
    relay_interface_id: Option<Spanned<String>>,
    relay_remote_id: Option<Spanned<RawRemoteId>>,
    interfaces: Option<Spanned<Vec<String>>>,
    duid_prefix: Option<Spanned<HexBytes>>,
    #[serde(default)]
    option: Vec<RawOption>,
}

/// `vendor-class = { enterprise = 4491, data = "..." }` (or `prefix = "..."`).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawVendorClass {
    enterprise: Option<u32>,
    data: Option<String>,
    prefix: Option<String>,
}

/// `user-class = { data = "..." }` (or `prefix = "..."`).
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawData {
    data: Option<String>,
    prefix: Option<String>,
}

impl Validator<'_> {
    /// The classes, in file order.
    pub(in crate::config) fn client_classes(
        &self,
        raw: &[RawClientClass],
    ) -> Result<Vec<ClientClass>, ConfigError> {
        if raw.len() > MAX_CLASSES {
            return Err(self.invalid(
                Some(raw[MAX_CLASSES].name.span()),
                format!("client-classes[{MAX_CLASSES}]"),
                format!("at most {MAX_CLASSES} client classes"),
            ));
        }
        let mut out: Vec<ClientClass> = Vec::with_capacity(raw.len());
        for (i, class) in raw.iter().enumerate() {
            let key = |rest: &str| format!("client-classes[{i}].{rest}");
            let name = class.name.get_ref().trim();
            if name.is_empty() {
                return Err(self.invalid(
                    Some(class.name.span()),
                    key("name"),
                    "a class needs a name".into(),
                ));
            }
            if out.iter().any(|c| c.name == name) {
                return Err(self.invalid(
                    Some(class.name.span()),
                    key("name"),
                    format!("class `{name}` is defined twice"),
                ));
            }
            let vendor_class = match &class.vendor_class {
                None => None,
                Some(v) => {
                    let raw = v.get_ref();
                    let data = self.data_match(
                        raw.data.as_deref(),
                        raw.prefix.as_deref(),
                        v.span(),
                        &key("vendor-class"),
                    )?;
                    if raw.enterprise.is_none() && data.is_none() {
                        return Err(self.invalid(
                            Some(v.span()),
                            key("vendor-class"),
                            "give `enterprise`, `data` or `prefix`".into(),
                        ));
                    }
                    Some(VendorClassMatch {
                        enterprise: raw.enterprise,
                        data,
                    })
                }
            };
            let user_class = match &class.user_class {
                None => None,
                Some(u) => {
                    let raw = u.get_ref();
                    let data = self.data_match(
                        raw.data.as_deref(),
                        raw.prefix.as_deref(),
                        u.span(),
                        &key("user-class"),
                    )?;
                    if data.is_none() {
                        return Err(self.invalid(
                            Some(u.span()),
                            key("user-class"),
                            "give `data` or `prefix`".into(),
                        ));
                    }
                    data
                }
            };
            let relay_remote_id = class.relay_remote_id.as_ref().map(|r| {
                let mut body = r.get_ref().enterprise.to_be_bytes().to_vec();
                body.extend_from_slice(&r.get_ref().id.0);
                body
            });
            let interfaces = class
                .interfaces
                .as_ref()
                .map(|i| i.get_ref().clone())
                .unwrap_or_default();
            if let Some(list) = &class.interfaces {
                if list.get_ref().is_empty() || list.get_ref().iter().any(|n| n.is_empty()) {
                    return Err(self.invalid(
                        Some(list.span()),
                        key("interfaces"),
                        "name at least one interface (or pattern), none empty".into(),
                    ));
                }
            }
            let parsed = ClientClass {
                name: name.to_string(),
                vendor_class,
                user_class,
                relay_interface_id: class
                    .relay_interface_id
                    .as_ref()
                    .map(|id| id.get_ref().clone().into_bytes()),
                relay_remote_id,
                interfaces,
                duid_prefix: class.duid_prefix.as_ref().map(|d| d.get_ref().0.clone()),
                options: self.options(&class.option, &key("option"))?,
            };
            let any_condition = parsed.vendor_class.is_some()
                || parsed.user_class.is_some()
                || parsed.relay_interface_id.is_some()
                || parsed.relay_remote_id.is_some()
                || !parsed.interfaces.is_empty()
                || parsed.duid_prefix.is_some();
            if !any_condition {
                return Err(self.invalid(
                    Some(class.name.span()),
                    key("name"),
                    format!(
                        "class `{name}` has no condition (vendor-class, user-class, \
                         relay-interface-id, relay-remote-id, interfaces, duid-prefix)"
                    ),
                ));
            }
            out.push(parsed);
        }
        Ok(out)
    }

    /// `data` (exact) or `prefix`, not both.
    fn data_match(
        &self,
        data: Option<&str>,
        prefix: Option<&str>,
        span: Range<usize>,
        key: &str,
    ) -> Result<Option<DataMatch>, ConfigError> {
        match (data, prefix) {
            (Some(_), Some(_)) => Err(self.invalid(
                Some(span),
                key.to_string(),
                "give `data` (exact) or `prefix`, not both".into(),
            )),
            (Some(d), None) => Ok(Some(DataMatch {
                bytes: d.as_bytes().to_vec(),
                prefix: false,
            })),
            (None, Some(p)) => Ok(Some(DataMatch {
                bytes: p.as_bytes().to_vec(),
                prefix: true,
            })),
            (None, None) => Ok(None),
        }
    }

    /// A pool's `client-classes`, resolved against the classes defined: `None` when absent
    /// (the pool serves every client).
    pub(in crate::config) fn pool_classes(
        &self,
        raw: Option<&Spanned<Vec<String>>>,
        classes: &[ClientClass],
        key: &str,
    ) -> Result<Option<ClassSet>, ConfigError> {
        let Some(names) = raw else {
            return Ok(None);
        };
        if names.get_ref().is_empty() {
            return Err(self.invalid(
                Some(names.span()),
                key.to_string(),
                "name at least one class (leave the key out for a pool serving everyone)".into(),
            ));
        }
        let mut set = ClassSet::NONE;
        for (i, name) in names.get_ref().iter().enumerate() {
            let Some(index) = classes.iter().position(|c| &c.name == name) else {
                return Err(self.invalid(
                    Some(names.span()),
                    format!("{key}[{i}]"),
                    format!("no [[client-classes]] entry is named `{name}`"),
                ));
            };
            set = set.with(index);
        }
        Ok(Some(set))
    }
}
