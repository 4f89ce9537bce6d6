//! Typed option values, from the config's TOML to the option body, checked as they are encoded.
//!
//! | type | TOML `value` | body |
//! |---|---|---|
//! | addresses | `"2001:db8::1"` or a list | 16 bytes each |
//! | domains | `"example.com"` or a list | each name in DNS wire format |
//! | domain | `"aftr.example.net"` | one name in DNS wire format |
//! | string | `"text"` | the UTF-8 bytes |
//! | u8, u16, u32 | an integer | network order |
//! | hex | `"0a:0b"` | the bytes |
//! | ntp-server | `[{ server = "…" }, { multicast = "ff05::101" }, { fqdn = "…" }]` | RFC 5908 sub-options 1, 2, 3 |
//! | vendor-opts | `{ enterprise = 4491, options = [{ code = 1, hex = "…" }, { code = 2, text = "…" }] }` | RFC 8415 §21.17 |
//! | dnr | `{ priority = 1, adn = "…", addresses = […], svc-params = "hex" }` | RFC 9463 §4.1 |

use std::net::Ipv6Addr;
use std::str::FromStr;

use toml::Value;

use super::Kind;

/// Longest option body: its length must fit the 16-bit length field.
pub const MAX_BODY: usize = u16::MAX as usize;

/// The body of an option of type `kind` with value `value`, or why the value does not fit.
pub fn encode(kind: Kind, value: &Value) -> Result<Vec<u8>, String> {
    let body = match kind {
        Kind::Addresses => {
            let list = one_or_list(value, "an IPv6 address")?;
            if list.is_empty() {
                return Err("needs at least one address".into());
            }
            let mut out = Vec::new();
            for (i, v) in list.iter().enumerate() {
                out.extend_from_slice(&address(v).map_err(|e| at(i, list.len(), e))?.octets());
            }
            out
        }
        Kind::Domains => {
            let list = one_or_list(value, "a domain name")?;
            if list.is_empty() {
                return Err("needs at least one domain name".into());
            }
            let mut out = Vec::new();
            for (i, v) in list.iter().enumerate() {
                out.extend(domain(v).map_err(|e| at(i, list.len(), e))?);
            }
            out
        }
        Kind::Domain => domain(value)?,
        Kind::Text => {
            let text = string(value, "a string")?;
            if text.is_empty() {
                return Err("a string option may not be empty".into());
            }
            text.as_bytes().to_vec()
        }
        Kind::U8 => integer(value, u8::MAX.into())?.to_be_bytes()[7..].to_vec(),
        Kind::U16 => integer(value, u16::MAX.into())?.to_be_bytes()[6..].to_vec(),
        Kind::U32 => integer(value, u32::MAX.into())?.to_be_bytes()[4..].to_vec(),
        Kind::Hex => hex(value)?,
        Kind::NtpServer => ntp_server(value)?,
        Kind::VendorOpts => vendor_opts(value)?,
        Kind::Dnr => dnr(value)?,
    };
    if body.len() > MAX_BODY {
        return Err(format!(
            "encodes to {} bytes, more than an option holds ({MAX_BODY})",
            body.len()
        ));
    }
    Ok(body)
}

/// `[i]: ` before `message` when the value was a list.
fn at(i: usize, len: usize, message: String) -> String {
    if len > 1 {
        format!("[{i}]: {message}")
    } else {
        message
    }
}

fn one_or_list<'a>(value: &'a Value, what: &str) -> Result<Vec<&'a Value>, String> {
    match value {
        Value::Array(list) => Ok(list.iter().collect()),
        Value::String(_) => Ok(vec![value]),
        other => Err(format!(
            "expected {what} or a list of them, found {}",
            other.type_str()
        )),
    }
}

fn string<'a>(value: &'a Value, what: &str) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected {what}, found {}", value.type_str()))
}

fn address(value: &Value) -> Result<Ipv6Addr, String> {
    let text = string(value, "an IPv6 address")?;
    Ipv6Addr::from_str(text).map_err(|_| format!("`{text}` is not an IPv6 address"))
}

/// One name in DNS wire format (RFC 1035 section 3.1), uncompressed: the controller's encoder.
fn domain(value: &Value) -> Result<Vec<u8>, String> {
    let text = string(value, "a domain name")?;
    crate::proto::encode_domain_list(&[text.to_string()]).map_err(|e| e.to_string())
}

fn integer(value: &Value, max: u64) -> Result<u64, String> {
    let n = value
        .as_integer()
        .ok_or_else(|| format!("expected an integer, found {}", value.type_str()))?;
    u64::try_from(n)
        .ok()
        .filter(|&n| n <= max)
        .ok_or_else(|| format!("{n} is outside 0..={max}"))
}

fn hex(value: &Value) -> Result<Vec<u8>, String> {
    let text = string(value, "hex bytes")?;
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    ::hex::decode(&digits).map_err(|err| format!("`{text}` is not hex bytes: {err}"))
}

fn table<'a>(
    value: &'a Value,
    what: &str,
    keys: &[&str],
) -> Result<&'a toml::map::Map<String, Value>, String> {
    let table = value
        .as_table()
        .ok_or_else(|| format!("expected {what} (a table), found {}", value.type_str()))?;
    if let Some(unknown) = table.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{unknown}` in {what}, expected one of: {}",
            keys.join(", ")
        ));
    }
    Ok(table)
}

fn sub_option(out: &mut Vec<u8>, code: u16, data: &[u8]) -> Result<(), String> {
    let len = u16::try_from(data.len()).map_err(|_| "a sub-option over 65535 bytes".to_string())?;
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// RFC 5908 section 4: one or more time source sub-options, NTP_SUBOPTION_SRV_ADDR (1, a unicast
/// address), NTP_SUBOPTION_MC_ADDR (2, a multicast address), NTP_SUBOPTION_SRV_FQDN (3, a name
/// in DNS wire format).
fn ntp_server(value: &Value) -> Result<Vec<u8>, String> {
    let list = match value {
        Value::Array(list) => list.iter().collect::<Vec<_>>(),
        Value::Table(_) => vec![value],
        other => {
            return Err(format!(
                "expected a list of time sources ({{ server = \"…\" }}, {{ multicast = \"…\" }}, \
                 {{ fqdn = \"…\" }}), found {}",
                other.type_str()
            ))
        }
    };
    if list.is_empty() {
        return Err("needs at least one time source (RFC 5908)".into());
    }
    let mut out = Vec::new();
    for (i, source) in list.iter().enumerate() {
        let t = table(source, "a time source", &["server", "multicast", "fqdn"])
            .map_err(|e| at(i, list.len(), e))?;
        if t.len() != 1 {
            return Err(at(
                i,
                list.len(),
                "a time source is one of `server`, `multicast` or `fqdn`".into(),
            ));
        }
        let (key, v) = t.iter().next().expect("one entry");
        let (code, data) = match key.as_str() {
            "server" => {
                let a = address(v).map_err(|e| at(i, list.len(), e))?;
                if a.is_multicast() {
                    return Err(at(
                        i,
                        list.len(),
                        format!("server {a} is a multicast address: use `multicast`"),
                    ));
                }
                (1, a.octets().to_vec())
            }
            "multicast" => {
                let a = address(v).map_err(|e| at(i, list.len(), e))?;
                if !a.is_multicast() {
                    return Err(at(i, list.len(), format!("{a} is not a multicast address")));
                }
                (2, a.octets().to_vec())
            }
            _ => (3, domain(v).map_err(|e| at(i, list.len(), e))?),
        };
        sub_option(&mut out, code, &data)?;
    }
    Ok(out)
}

/// RFC 8415 section 21.17: enterprise-number, then sub-options (code, length, data).
fn vendor_opts(value: &Value) -> Result<Vec<u8>, String> {
    let t = table(value, "vendor options", &["enterprise", "options"])?;
    let enterprise = t
        .get("enterprise")
        .ok_or("needs `enterprise` (the vendor's IANA enterprise number)")?;
    let enterprise =
        integer(enterprise, u32::MAX.into()).map_err(|e| format!("enterprise: {e}"))?;
    let mut out = (enterprise as u32).to_be_bytes().to_vec();
    let options = match t.get("options") {
        Some(Value::Array(list)) => list.as_slice(),
        Some(other) => {
            return Err(format!(
                "options: expected a list, found {}",
                other.type_str()
            ))
        }
        None => &[],
    };
    for (i, o) in options.iter().enumerate() {
        let o = table(o, "a vendor sub-option", &["code", "hex", "text"])
            .map_err(|e| format!("options[{i}]: {e}"))?;
        let code = o
            .get("code")
            .ok_or_else(|| format!("options[{i}]: needs `code`"))
            .and_then(|c| {
                integer(c, u16::MAX.into()).map_err(|e| format!("options[{i}].code: {e}"))
            })?;
        let data = match (o.get("hex"), o.get("text")) {
            (Some(h), None) => hex(h).map_err(|e| format!("options[{i}].hex: {e}"))?,
            (None, Some(s)) => string(s, "a string")
                .map_err(|e| format!("options[{i}].text: {e}"))?
                .as_bytes()
                .to_vec(),
            _ => {
                return Err(format!(
                    "options[{i}]: give its data as `hex` or `text`, one of them"
                ))
            }
        };
        sub_option(&mut out, code as u16, &data)?;
    }
    Ok(out)
}

/// RFC 9463 section 4.1: Service Priority, ADN Length, ADN (DNS wire format); with addresses,
/// Addr Length, the addresses and the SvcParams (section 3.1.5; ADN-only mode has none of them).
fn dnr(value: &Value) -> Result<Vec<u8>, String> {
    let t = table(
        value,
        "an encrypted DNS resolver",
        &["priority", "adn", "addresses", "svc-params"],
    )?;
    let priority = t.get("priority").ok_or("needs `priority` (1..=65535)")?;
    let priority = integer(priority, u16::MAX.into()).map_err(|e| format!("priority: {e}"))?;
    // 0 is SVCB's AliasMode (RFC 9460 section 2.4.1), which names no resolver.
    if priority == 0 {
        return Err(
            "priority: 0 is SVCB's AliasMode, not a resolver's priority (1..=65535)".into(),
        );
    }
    let adn = domain(
        t.get("adn")
            .ok_or("needs `adn` (the resolver's authentication domain name)")?,
    )
    .map_err(|e| format!("adn: {e}"))?;
    let mut out = (priority as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&(adn.len() as u16).to_be_bytes());
    out.extend_from_slice(&adn);
    let addresses = match t.get("addresses") {
        Some(v) => one_or_list(v, "an IPv6 address").map_err(|e| format!("addresses: {e}"))?,
        None => Vec::new(),
    };
    let svc = match t.get("svc-params") {
        Some(v) => hex(v).map_err(|e| format!("svc-params: {e}"))?,
        None => Vec::new(),
    };
    if addresses.is_empty() {
        if !svc.is_empty() {
            return Err(
                "svc-params need `addresses` (ADN-only mode carries neither, RFC 9463 section 4.1)"
                    .into(),
            );
        }
        return Ok(out);
    }
    out.extend_from_slice(&((addresses.len() * 16) as u16).to_be_bytes());
    for (i, a) in addresses.iter().enumerate() {
        out.extend_from_slice(
            &address(a)
                .map_err(|e| format!("addresses[{i}]: {e}"))?
                .octets(),
        );
    }
    out.extend_from_slice(&svc);
    Ok(out)
}
