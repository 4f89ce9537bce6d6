//! `dhcp-user convert-kea-config`: Kea's DHCPv6 JSON configuration to ours, for what maps.
//!
//! What maps: the interfaces, every subnet (top level and inside shared networks) with its id,
//! prefix, interface, address pools, PD pools, lifetimes and timers, rapid commit, relay
//! addresses and interface-ids, reservations (one address and one prefix by DUID), the
//! dns-servers, domain-search and preference options (global ones copied into each subnet),
//! and a PostgreSQL lease database. Everything else is listed, by its path in Kea's file, as
//! not converted: nothing is dropped silently.

use serde_json::Value;
use toml::Table;

/// A converted configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// Our configuration (TOML), headed by comments listing what did not convert.
    pub toml: String,
    /// Kea settings that have no counterpart here (`Dhcp6.loggers`, `Dhcp6.subnet6[0].pools[1]: ...`).
    pub unmapped: Vec<String>,
}

/// Converts the text of Kea's `kea-dhcp6.conf` (JSON with `//`, `#` and `/* */` comments).
pub fn convert(text: &str) -> Result<Converted, String> {
    let json: Value = serde_json::from_str(&strip_comments(text))
        .map_err(|err| format!("not Kea's JSON configuration: {err}"))?;
    let dhcp6 = json
        .get("Dhcp6")
        .and_then(Value::as_object)
        .ok_or("no `Dhcp6` object: is this kea-dhcp6's configuration?")?;
    let mut out = Converter::default();
    let mut root = Table::new();
    let mut defaults = Defaults::default();
    for (key, value) in dhcp6 {
        let path = format!("Dhcp6.{key}");
        match key.as_str() {
            "interfaces-config" => {
                let interfaces: Vec<toml::Value> = value
                    .get("interfaces")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    // Kea's `eth0/2001:db8::1` names an address to listen on: we serve the interface.
                    .map(|name| toml::Value::from(name.split('/').next().unwrap_or(name)))
                    .collect();
                root.insert("interfaces".into(), toml::Value::Array(interfaces));
                out.rest(&path, value, &["interfaces"]);
            }
            "preferred-lifetime" | "valid-lifetime" | "renew-timer" | "rebind-timer" => {
                match value.as_u64() {
                    Some(seconds) => {
                        defaults.timers.insert(key.clone(), seconds);
                    }
                    None => out.unmapped(&path, value),
                }
            }
            "rapid-commit" => defaults.rapid_commit = value.as_bool(),
            "option-data" => defaults.options = out.options(&path, value),
            "lease-database" => out.lease_database(&path, value, &mut root),
            "subnet6" | "shared-networks" | "loggers" => {}
            _ => out.unmapped(&path, value),
        }
    }
    let mut subnets = Vec::new();
    for (i, subnet) in dhcp6
        .get("subnet6")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        subnets.push(out.subnet(&format!("Dhcp6.subnet6[{i}]"), subnet, &defaults));
    }
    for (n, network) in dhcp6
        .get("shared-networks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("Dhcp6.shared-networks[{n}]");
        out.note(
            &path,
            "a shared network: its subnets are converted as separate subnets",
        );
        for (i, subnet) in network
            .get("subnet6")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            subnets.push(out.subnet(&format!("{path}.subnet6[{i}]"), subnet, &defaults));
        }
        if let Some(object) = network.as_object() {
            for (key, value) in object {
                if !matches!(key.as_str(), "name" | "subnet6") {
                    out.unmapped(&format!("{path}.{key}"), value);
                }
            }
        }
    }
    if dhcp6.contains_key("loggers") {
        out.note("Dhcp6.loggers", "logging is set with RUST_LOG");
    }
    if !subnets.is_empty() {
        root.insert("subnet".into(), toml::Value::Array(subnets));
    }
    let body = toml::to_string(&root).map_err(|err| format!("writing TOML: {err}"))?;
    let mut toml = String::from(
        "# Converted from Kea's DHCPv6 configuration by dhcp-user convert-kea-config.\n",
    );
    if out.unmapped.is_empty() {
        toml.push_str("# Everything converted.\n");
    } else {
        toml.push_str("# Not converted (no counterpart here):\n");
        for line in &out.unmapped {
            toml.push_str(&format!("#   {line}\n"));
        }
    }
    toml.push('\n');
    toml.push_str(&body);
    Ok(Converted {
        toml,
        unmapped: out.unmapped,
    })
}

/// Global settings each subnet inherits unless it sets its own.
#[derive(Default)]
struct Defaults {
    timers: std::collections::BTreeMap<String, u64>,
    rapid_commit: Option<bool>,
    options: Table,
}

#[derive(Default)]
struct Converter {
    unmapped: Vec<String>,
}

impl Converter {
    fn unmapped(&mut self, path: &str, value: &Value) {
        let mut text = value.to_string();
        if text.len() > 60 {
            text.truncate(57);
            text.push_str("...");
        }
        self.unmapped.push(format!("{path}: {text}"));
    }

    fn note(&mut self, path: &str, why: &str) {
        self.unmapped.push(format!("{path}: {why}"));
    }

    /// Every key of `value` (an object) but `handled`, as unmapped.
    fn rest(&mut self, path: &str, value: &Value, handled: &[&str]) {
        if let Some(object) = value.as_object() {
            for (key, value) in object {
                if !handled.contains(&key.as_str()) {
                    self.unmapped(&format!("{path}.{key}"), value);
                }
            }
        }
    }

    /// Kea `option-data` into our subnet keys (dns-servers, domain-search, preference).
    fn options(&mut self, path: &str, value: &Value) -> Table {
        let mut table = Table::new();
        for (i, option) in value.as_array().into_iter().flatten().enumerate() {
            let path = format!("{path}[{i}]");
            let name = option.get("name").and_then(Value::as_str).unwrap_or("");
            let data = option.get("data").and_then(Value::as_str).unwrap_or("");
            let list = || {
                toml::Value::Array(
                    data.split(',')
                        .map(|item| toml::Value::from(item.trim()))
                        .filter(|item| item.as_str() != Some(""))
                        .collect(),
                )
            };
            match name {
                "dns-servers" => {
                    table.insert("dns-servers".into(), list());
                }
                "domain-search" => {
                    table.insert("domain-search".into(), list());
                }
                "preference" => match data.trim().parse::<u8>() {
                    Ok(preference) => {
                        table.insert("preference".into(), i64::from(preference).into());
                    }
                    Err(_) => self.unmapped(&path, option),
                },
                _ => self.unmapped(&path, option),
            }
        }
        table
    }

    fn lease_database(&mut self, path: &str, value: &Value, root: &mut Table) {
        match value.get("type").and_then(Value::as_str) {
            Some("postgresql") => {
                let mut db = Table::new();
                db.insert("type".into(), "postgresql".into());
                let text = |key: &str| value.get(key).and_then(Value::as_str);
                db.insert("host".into(), text("host").unwrap_or("localhost").into());
                if let Some(port) = value.get("port").and_then(Value::as_u64) {
                    db.insert("port".into(), (port as i64).into());
                }
                if let Some(user) = text("user") {
                    db.insert("user".into(), user.into());
                }
                if let Some(name) = text("name") {
                    db.insert("dbname".into(), name.into());
                }
                if value.get("password").is_some() {
                    self.note(
                        &format!("{path}.password"),
                        "kept out of our file: put it in a file and name it with password-file",
                    );
                }
                self.note(
                    path,
                    "our own database, not Kea's: give [lease-database] a database of its own \
                     and import Kea's leases with dhcp-user import-kea --postgresql",
                );
                root.insert("lease-database".into(), toml::Value::Table(db));
                self.rest(
                    path,
                    value,
                    &["type", "host", "port", "user", "name", "password"],
                );
            }
            Some("memfile") => {
                self.note(
                    path,
                    "memfile: our leases are kept in SQLite (state-dir); import Kea's file with \
                     dhcp-user import-kea --memfile",
                );
            }
            _ => self.unmapped(path, value),
        }
    }

    fn subnet(&mut self, path: &str, subnet: &Value, defaults: &Defaults) -> toml::Value {
        let mut table = Table::new();
        let Some(object) = subnet.as_object() else {
            self.unmapped(path, subnet);
            return toml::Value::Table(table);
        };
        for (key, seconds) in &defaults.timers {
            table.insert(key.clone(), (*seconds as i64).into());
        }
        if let Some(rapid) = defaults.rapid_commit {
            table.insert("rapid-commit".into(), rapid.into());
        }
        for (key, value) in &defaults.options {
            table.insert(key.clone(), value.clone());
        }
        for (key, value) in object {
            let here = format!("{path}.{key}");
            match key.as_str() {
                "id" => match value.as_u64() {
                    Some(id) => {
                        table.insert("id".into(), (id as i64).into());
                    }
                    None => self.unmapped(&here, value),
                },
                "subnet" => {
                    table.insert("prefix".into(), value.as_str().unwrap_or("").into());
                }
                "interface" => {
                    table.insert("interface".into(), value.as_str().unwrap_or("").into());
                }
                "preferred-lifetime" | "valid-lifetime" | "renew-timer" | "rebind-timer" => {
                    match value.as_u64() {
                        Some(seconds) => {
                            table.insert(key.clone(), (seconds as i64).into());
                        }
                        None => self.unmapped(&here, value),
                    }
                }
                "rapid-commit" => {
                    table.insert(
                        "rapid-commit".into(),
                        value.as_bool().unwrap_or(false).into(),
                    );
                }
                "pools" => {
                    let pools = self.pools(&here, value);
                    table.insert("pools".into(), toml::Value::Array(pools));
                }
                "pd-pools" => {
                    let pools = self.pd_pools(&here, value);
                    table.insert("pd-pools".into(), toml::Value::Array(pools));
                }
                "option-data" => {
                    for (key, value) in self.options(&here, value) {
                        table.insert(key, value);
                    }
                }
                "reservations" => {
                    let reservations = self.reservations(&here, value);
                    table.insert("reservations".into(), toml::Value::Array(reservations));
                }
                "relay" => {
                    let addresses: Vec<toml::Value> = value
                        .get("ip-addresses")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(toml::Value::from)
                        .collect();
                    table.insert("relay-addresses".into(), toml::Value::Array(addresses));
                    self.rest(&here, value, &["ip-addresses"]);
                }
                "interface-id" => {
                    table.insert(
                        "relay-interface-ids".into(),
                        toml::Value::Array(vec![value.as_str().unwrap_or("").into()]),
                    );
                }
                _ => self.unmapped(&here, value),
            }
        }
        toml::Value::Table(table)
    }

    fn pools(&mut self, path: &str, value: &Value) -> Vec<toml::Value> {
        let mut pools = Vec::new();
        for (i, pool) in value.as_array().into_iter().flatten().enumerate() {
            let here = format!("{path}[{i}]");
            let text = pool.get("pool").and_then(Value::as_str).unwrap_or("");
            let range = match text.split_once('-') {
                Some((low, high)) => Some((low.trim().to_owned(), high.trim().to_owned())),
                // `prefix/len`: the whole prefix.
                None => text
                    .parse::<ipnet::Ipv6Net>()
                    .ok()
                    .map(|net| (net.network().to_string(), net.broadcast().to_string())),
            };
            match range {
                Some((low, high)) => {
                    let mut table = Table::new();
                    table.insert("low".into(), low.into());
                    table.insert("high".into(), high.into());
                    pools.push(toml::Value::Table(table));
                }
                None => self.unmapped(&here, pool),
            }
            self.rest(&here, pool, &["pool"]);
        }
        pools
    }

    fn pd_pools(&mut self, path: &str, value: &Value) -> Vec<toml::Value> {
        let mut pools = Vec::new();
        for (i, pool) in value.as_array().into_iter().flatten().enumerate() {
            let here = format!("{path}[{i}]");
            let prefix = pool.get("prefix").and_then(Value::as_str);
            let len = pool.get("prefix-len").and_then(Value::as_u64);
            let delegated = pool.get("delegated-len").and_then(Value::as_u64);
            match (prefix, len, delegated) {
                (Some(prefix), Some(len), Some(delegated)) => {
                    let mut table = Table::new();
                    table.insert("prefix".into(), format!("{prefix}/{len}").into());
                    table.insert("delegated-length".into(), (delegated as i64).into());
                    pools.push(toml::Value::Table(table));
                }
                _ => self.unmapped(&here, pool),
            }
            self.rest(&here, pool, &["prefix", "prefix-len", "delegated-len"]);
        }
        pools
    }

    fn reservations(&mut self, path: &str, value: &Value) -> Vec<toml::Value> {
        let mut out = Vec::new();
        for (i, reservation) in value.as_array().into_iter().flatten().enumerate() {
            let here = format!("{path}[{i}]");
            let Some(duid) = reservation.get("duid").and_then(Value::as_str) else {
                self.note(
                    &here,
                    "reserved by something else than a DUID: not converted",
                );
                continue;
            };
            let mut table = Table::new();
            table.insert("duid".into(), duid.into());
            let first = |key: &str| -> (Option<String>, usize) {
                let list: Vec<&str> = reservation
                    .get(key)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                (list.first().map(|s| (*s).to_owned()), list.len())
            };
            let (address, addresses) = first("ip-addresses");
            let (prefix, prefixes) = first("prefixes");
            if let Some(address) = address {
                table.insert("address".into(), address.into());
            }
            if let Some(prefix) = prefix {
                table.insert("prefix".into(), prefix.into());
            }
            if addresses > 1 || prefixes > 1 {
                self.note(
                    &here,
                    "more than one address or prefix: only the first is kept",
                );
            }
            self.rest(&here, reservation, &["duid", "ip-addresses", "prefixes"]);
            out.push(toml::Value::Table(table));
        }
        out
    }
}

/// Kea's JSON with its comments (`//`, `#` to the end of the line, `/* ... */`) removed.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    if c == '\n' {
                        out.push('\n');
                    }
                    last = c;
                }
            }
            _ => out.push(c),
        }
    }
    out
}
