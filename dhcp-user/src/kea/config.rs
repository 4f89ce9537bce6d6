//! `dhcp-user convert-kea-config`: Kea's DHCPv6 JSON configuration to ours, for what maps.
//!
//! What maps: the interfaces, every subnet (top level and inside shared networks) with its id,
//! prefix, interface, address pools, PD pools, lifetimes and timers, rapid commit, relay
//! addresses and interface-ids, reservations (one address and one prefix by DUID), the
//! `option-data` of every level (global, subnet, pool, pd-pool, reservation: the Kea options
//! of the table `KEA_OPTIONS`, others by code as hex), the `client-classes` whose `test` ours
//! can express exactly (the shapes of the `classes` module) with their `option-data`, and the
//! `client-class` of subnets, shared networks, pools and pd-pools, and a PostgreSQL lease
//! database. Everything else is listed, by its path in Kea's file, as not converted: nothing is
//! dropped silently. A class that does not convert takes what is kept for it along (a pool
//! for it is left out, never made to serve every client).
//!
//! An option goes over by Kea's name or by its code, in the dhcp6 space: with `csv-format`
//! (Kea's default) its `data` becomes our typed `value`, without it the hex `data` our `hex`.
//! `dns-servers`, `domain-search` (global ones copied into each subnet) and `preference`
//! become the subnet keys of those names; the others `option` entries (global ones the
//! top-level `[[option]]`). Kea's `always-send` comes along.

use serde_json::Value;
use toml::Table;

use crate::options::Kind;

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
            "option-data" => {
                let (keys, entries) = out.options(&path, value, Level::Subnet);
                defaults.options = keys;
                if !entries.is_empty() {
                    root.insert("option".into(), toml::Value::Array(entries));
                }
            }
            "lease-database" => out.lease_database(&path, value, &mut root),
            "client-classes" => {
                let classes = out.client_classes(&path, value);
                if !classes.is_empty() {
                    root.insert("client-classes".into(), toml::Value::Array(classes));
                }
            }
            "subnet6" | "shared-networks" | "loggers" => {}
            _ => out.unmapped(&path, value),
        }
    }
    // Kea puts a class's options above the global ones: a global shorthand a class also sets
    // stays global here (copied into the subnets it would sit above the class).
    let class_codes = class_option_codes(&root);
    for (key, code) in SHORTHAND_CODES {
        if class_codes.contains(code) {
            if let Some(value) = defaults.options.remove(*key) {
                let mut entry = Table::new();
                entry.insert("name".into(), (*key).into());
                entry.insert("value".into(), value);
                if let Some(toml::Value::Array(list)) = root.get_mut("option") {
                    list.push(toml::Value::Table(entry));
                } else {
                    root.insert(
                        "option".into(),
                        toml::Value::Array(vec![toml::Value::Table(entry)]),
                    );
                }
            }
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
        subnets.extend(out.subnet(&format!("Dhcp6.subnet6[{i}]"), subnet, &defaults, None));
    }
    for (n, network) in dhcp6
        .get("shared-networks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("Dhcp6.shared-networks[{n}]");
        let class = network.get("client-class");
        let class = match class.map(Value::as_str) {
            None => None,
            Some(Some(name)) => Some(name),
            Some(None) => {
                out.note(
                    &path,
                    "`client-class` is not a class name: its subnets are left out",
                );
                continue;
            }
        };
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
            subnets.extend(out.subnet(&format!("{path}.subnet6[{i}]"), subnet, &defaults, class));
        }
        if let Some(object) = network.as_object() {
            for (key, value) in object {
                match key.as_str() {
                    "name" | "subnet6" | "client-class" => {}
                    "require-client-classes" => out.required_classes(&format!("{path}.{key}")),
                    _ => out.unmapped(&format!("{path}.{key}"), value),
                }
            }
        }
    }
    if dhcp6.contains_key("loggers") {
        out.note("Dhcp6.loggers", "logging is set with RUST_LOG");
    }
    out.class_options_below_subnets(&mut root, &subnets);
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

/// The subnet keys that are options, and their codes.
const SHORTHAND_CODES: &[(&str, u16)] = &[("dns-servers", 23), ("domain-search", 24)];

/// The code of one of our `option` entries (`name` or `code`).
fn entry_code(entry: &toml::Value) -> Option<u16> {
    match (entry.get("name"), entry.get("code")) {
        (Some(toml::Value::String(name)), _) => crate::options::by_name(name).map(|d| d.code),
        (_, Some(toml::Value::Integer(code))) => u16::try_from(*code).ok(),
        _ => None,
    }
}

/// The `option` entries of `table` and the options of its shorthand keys, by code.
fn option_codes(table: &toml::Value) -> std::collections::BTreeSet<u16> {
    let entries = table.get("option").and_then(toml::Value::as_array);
    let shorthand = SHORTHAND_CODES
        .iter()
        .filter(|(key, _)| table.get(*key).is_some())
        .map(|(_, code)| *code);
    entries
        .into_iter()
        .flatten()
        .filter_map(entry_code)
        .chain(shorthand)
        .collect()
}

/// Every option code the converted classes of `root` set.
fn class_option_codes(root: &Table) -> std::collections::BTreeSet<u16> {
    root.get("client-classes")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(option_codes)
        .collect()
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
    /// Kea's classes by name: for those converted, the names of ours (one per `or` branch).
    classes: std::collections::HashMap<String, Option<Vec<String>>>,
    /// The path in Kea's file of each class of ours, in order.
    class_paths: Vec<String>,
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

    /// Kea `option-data` at `level`: the subnet keys (`dns-servers`, `domain-search`,
    /// `preference`; at the subnet level only) and our `option` entries. What does not convert
    /// is listed with the reason.
    fn options(&mut self, path: &str, value: &Value, level: Level) -> (Table, Vec<toml::Value>) {
        let mut keys = Table::new();
        let mut entries = Vec::new();
        let Some(list) = value.as_array() else {
            self.unmapped(path, value);
            return (keys, entries);
        };
        for (i, option) in list.iter().enumerate() {
            let path = format!("{path}[{i}]");
            match convert_option(option, level) {
                Ok(OptionOut::Key(key, value)) => {
                    keys.insert(key.into(), value);
                }
                Ok(OptionOut::Entry(entry)) => entries.push(toml::Value::Table(entry)),
                Err(why) => {
                    self.note(&path, &why);
                    continue;
                }
            }
            self.rest(
                &path,
                option,
                &["name", "code", "space", "data", "csv-format", "always-send"],
            );
        }
        (keys, entries)
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

    /// Kea's subnet at `path` as ours; `network_class` its shared network's `client-class`.
    /// `None` when it is left out: kept for a class that has no counterpart here, or for a
    /// class while it has reservations or options (Kea gives those to members only, ours
    /// would to every client of the subnet).
    fn subnet(
        &mut self,
        path: &str,
        subnet: &Value,
        defaults: &Defaults,
        network_class: Option<&str>,
    ) -> Option<toml::Value> {
        let mut table = Table::new();
        let Some(object) = subnet.as_object() else {
            self.unmapped(path, subnet);
            return Some(toml::Value::Table(table));
        };
        let class = match self.guard(network_class, object.get("client-class")) {
            Ok(class) => class,
            Err(why) => {
                self.note(path, &format!("subnet left out: {why}"));
                return None;
            }
        };
        if let Some(class) = &class {
            let has = |key: &str| {
                object
                    .get(key)
                    .and_then(Value::as_array)
                    .is_some_and(|list| !list.is_empty())
            };
            if has("reservations") || has("option-data") {
                self.note(
                    path,
                    &format!(
                        "subnet left out: it is for class `{class}` only and has reservations \
                         or option-data, which Kea gives to the class's members only; ours \
                         keeps pools for a class, not a subnet's reservations and options"
                    ),
                );
                return None;
            }
        }
        let class = class.as_deref();
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
                "client-class" => {}
                "require-client-classes" => self.required_classes(&here),
                "pools" => {
                    let pools = self.pools(&here, value, class);
                    table.insert("pools".into(), toml::Value::Array(pools));
                }
                "pd-pools" => {
                    let pools = self.pd_pools(&here, value, class);
                    table.insert("pd-pools".into(), toml::Value::Array(pools));
                }
                "option-data" => {
                    let (keys, entries) = self.options(&here, value, Level::Subnet);
                    for (key, value) in keys {
                        table.insert(key, value);
                    }
                    // A code given here as an entry replaces the shorthand copied in from the
                    // global level (both at one level would be refused).
                    for entry in &entries {
                        if let Some(key) = entry.get("name").and_then(toml::Value::as_str) {
                            if matches!(key, "dns-servers" | "domain-search") {
                                table.remove(key);
                            }
                        }
                    }
                    if !entries.is_empty() {
                        table.insert("option".into(), toml::Value::Array(entries));
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
        Some(toml::Value::Table(table))
    }

    /// The class a subnet, pool or pd-pool is kept for: `outer` its subnet's (or shared
    /// network's), `own` its `client-class`. `Ok(None)`: every client. An error when ours
    /// cannot keep it for exactly those clients (the caller leaves it out).
    fn guard(&self, outer: Option<&str>, own: Option<&Value>) -> Result<Option<String>, String> {
        let own = match own {
            None => None,
            Some(Value::String(name)) => Some(name.as_str()),
            Some(other) => return Err(format!("`client-class` {other} is not a class name")),
        };
        // Kea's built-in `ALL` holds every client.
        let names: Vec<&str> = outer
            .into_iter()
            .chain(own)
            .filter(|n| *n != "ALL")
            .collect();
        let name = match names.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            [outer, own] if outer == own => *own,
            [outer, own] => {
                return Err(format!(
                    "for clients in both class `{outer}` (its subnet's) and `{own}`: a pool of \
                     ours serves clients in any of its classes; write one class with both \
                     conditions by hand"
                ))
            }
            _ => unreachable!("at most two names"),
        };
        match self.classes.get(name) {
            Some(Some(_)) => Ok(Some(name.to_string())),
            Some(None) => Err(format!(
                "for class `{name}`, which is not converted (above): left out rather than \
                 serving every client"
            )),
            None => Err(format!(
                "for class `{name}`, which Kea's client-classes do not define (a built-in or \
                 a hook's class: KNOWN, UNKNOWN, VENDOR_CLASS_...): no counterpart here"
            )),
        }
    }

    /// Kea puts a class's options below a subnet's, ours above: a class's option that a
    /// subnet also sets would win here where Kea's subnet wins. It is left out and listed.
    fn class_options_below_subnets(&mut self, root: &mut Table, subnets: &[toml::Value]) {
        let subnet_codes: std::collections::BTreeMap<u16, String> = subnets
            .iter()
            .flat_map(|subnet| {
                let id = subnet.get("id").map_or("?".into(), ToString::to_string);
                option_codes(subnet)
                    .into_iter()
                    .map(move |c| (c, id.clone()))
            })
            .collect();
        let Some(toml::Value::Array(classes)) = root.get_mut("client-classes") else {
            return;
        };
        for (class, path) in classes.iter_mut().zip(&self.class_paths) {
            let Some(toml::Value::Array(entries)) = class.get_mut("option") else {
                continue;
            };
            let mut dropped = Vec::new();
            entries.retain(|entry| {
                match entry_code(entry).and_then(|c| subnet_codes.get(&c).map(|id| (c, id))) {
                    Some((code, id)) => {
                        dropped.push((code, id.clone()));
                        false
                    }
                    None => true,
                }
            });
            if entries.is_empty() {
                if let Some(table) = class.as_table_mut() {
                    table.remove("option");
                }
            }
            for (code, id) in dropped {
                self.unmapped.push(format!(
                    "{path}: option {code} of the class left out: subnet {id} sets it too, and \
                     Kea gives a subnet's option over a class's, ours a class's over a \
                     subnet's (members in other subnets do not get it: set it there by hand)"
                ));
            }
        }
    }

    /// Kea's `require-client-classes` at `path`: it names `only-if-required` classes, which
    /// are not converted.
    fn required_classes(&mut self, path: &str) {
        self.note(
            path,
            "require-client-classes: ours evaluates every class on every message; the \
             only-if-required classes it names are not converted",
        );
    }

    /// Kea's `client-classes` at `path` as our `[[client-classes]]` entries, in Kea's order
    /// (which is ours for options two classes set). A class whose test has no exact
    /// counterpart is listed with the test and the reason, and left out with everything kept
    /// for it.
    fn client_classes(&mut self, path: &str, value: &Value) -> Vec<toml::Value> {
        let mut out = Vec::new();
        let Some(list) = value.as_array() else {
            self.unmapped(path, value);
            return out;
        };
        let kea_names: Vec<&str> = list
            .iter()
            .filter_map(|class| class.get("name").and_then(Value::as_str))
            .collect();
        for (i, class) in list.iter().enumerate() {
            let here = format!("{path}[{i}]");
            let Some(name) = class.get("name").and_then(Value::as_str) else {
                self.unmapped(&here, class);
                continue;
            };
            match self.client_class(&here, name, class, &kea_names) {
                Ok(tables) => {
                    let ours = tables
                        .iter()
                        .filter_map(|t| t.get("name").and_then(toml::Value::as_str))
                        .map(str::to_owned)
                        .collect();
                    self.classes.insert(name.to_string(), Some(ours));
                    for table in tables {
                        self.class_paths.push(here.clone());
                        out.push(toml::Value::Table(table));
                    }
                }
                Err(why) => {
                    self.classes.insert(name.to_string(), None);
                    self.note(
                        &here,
                        &format!(
                            "class `{name}` not converted: {why}; subnets and pools kept for \
                             it are left out"
                        ),
                    );
                }
            }
        }
        out
    }

    /// Kea's class `name` as ours: one class per branch of its test (named `name`, or
    /// `name-1`, `name-2`... for several), each with the class's options.
    fn client_class(
        &mut self,
        path: &str,
        name: &str,
        class: &Value,
        kea_names: &[&str],
    ) -> Result<Vec<Table>, String> {
        if name == "DROP" {
            return Err("Kea drops the messages of its members; ours has no such class".into());
        }
        if class.get("only-if-required") == Some(&Value::Bool(true)) {
            return Err(
                "only-if-required: ours evaluates every class on every message, not only \
                 where a subnet or pool requires it"
                    .into(),
            );
        }
        let test = match class.get("test") {
            Some(Value::String(test)) => test,
            Some(other) => return Err(format!("`test` {other} is not a string")),
            None => {
                return Err(
                    "no `test`: Kea puts clients in it by reservation or hook, ours \
                            only by what their messages carry"
                        .into(),
                )
            }
        };
        let mut tables =
            super::classes::conditions(test).map_err(|why| format!("test `{test}`: {why}"))?;
        let several = tables.len() > 1;
        let names: Vec<String> = (1..=tables.len())
            .map(|k| {
                if several {
                    format!("{name}-{k}")
                } else {
                    name.to_owned()
                }
            })
            .collect();
        if let Some(taken) = names
            .iter()
            .find(|ours| several && kea_names.contains(&ours.as_str()))
        {
            return Err(format!(
                "its `or` branches would be classes `{name}-1`... of ours, and Kea has a class \
                 `{taken}` already"
            ));
        }
        let entries = match class.get("option-data") {
            Some(value) => {
                self.options(&format!("{path}.option-data"), value, Level::Inner)
                    .1
            }
            None => Vec::new(),
        };
        for (table, ours) in tables.iter_mut().zip(names) {
            table.insert("name".into(), ours.into());
            if !entries.is_empty() {
                table.insert("option".into(), toml::Value::Array(entries.clone()));
            }
        }
        self.rest(
            path,
            class,
            &["name", "test", "option-data", "only-if-required"],
        );
        Ok(tables)
    }

    fn pools(&mut self, path: &str, value: &Value, class: Option<&str>) -> Vec<toml::Value> {
        let mut pools = Vec::new();
        for (i, pool) in value.as_array().into_iter().flatten().enumerate() {
            let here = format!("{path}[{i}]");
            let Some(guard) = self.pool_guard(&here, class, pool) else {
                continue;
            };
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
                    if let Some(guard) = guard {
                        table.insert("client-classes".into(), guard);
                    }
                    self.inner_options(&here, pool, &mut table);
                    pools.push(toml::Value::Table(table));
                }
                None => self.unmapped(&here, pool),
            }
            self.rest(
                &here,
                pool,
                &[
                    "pool",
                    "option-data",
                    "client-class",
                    "require-client-classes",
                ],
            );
        }
        pools
    }

    /// A pool's `client-classes` (`Some(None)`: every client), or `None` when the pool is
    /// left out (listed).
    fn pool_guard(
        &mut self,
        path: &str,
        class: Option<&str>,
        pool: &Value,
    ) -> Option<Option<toml::Value>> {
        if pool.get("require-client-classes").is_some() {
            self.required_classes(&format!("{path}.require-client-classes"));
        }
        match self.guard(class, pool.get("client-class")) {
            Ok(guard) => Some(guard.map(|name| {
                let ours = self
                    .classes
                    .get(&name)
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                toml::Value::Array(ours.into_iter().map(toml::Value::from).collect())
            })),
            Err(why) => {
                self.note(path, &format!("pool left out: {why}"));
                None
            }
        }
    }

    fn pd_pools(&mut self, path: &str, value: &Value, class: Option<&str>) -> Vec<toml::Value> {
        let mut pools = Vec::new();
        for (i, pool) in value.as_array().into_iter().flatten().enumerate() {
            let here = format!("{path}[{i}]");
            let Some(guard) = self.pool_guard(&here, class, pool) else {
                continue;
            };
            let prefix = pool.get("prefix").and_then(Value::as_str);
            let len = pool.get("prefix-len").and_then(Value::as_u64);
            let delegated = pool.get("delegated-len").and_then(Value::as_u64);
            match (prefix, len, delegated) {
                (Some(prefix), Some(len), Some(delegated)) => {
                    let mut table = Table::new();
                    table.insert("prefix".into(), format!("{prefix}/{len}").into());
                    table.insert("delegated-length".into(), (delegated as i64).into());
                    if let Some(guard) = guard {
                        table.insert("client-classes".into(), guard);
                    }
                    self.inner_options(&here, pool, &mut table);
                    pools.push(toml::Value::Table(table));
                }
                _ => self.unmapped(&here, pool),
            }
            self.rest(
                &here,
                pool,
                &[
                    "prefix",
                    "prefix-len",
                    "delegated-len",
                    "option-data",
                    "client-class",
                    "require-client-classes",
                ],
            );
        }
        pools
    }

    /// The `option-data` of a pool, pd-pool or reservation (`object`) as its `option` entries.
    fn inner_options(&mut self, path: &str, object: &Value, table: &mut Table) {
        let Some(value) = object.get("option-data") else {
            return;
        };
        let (_, entries) = self.options(&format!("{path}.option-data"), value, Level::Inner);
        if !entries.is_empty() {
            table.insert("option".into(), toml::Value::Array(entries));
        }
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
            self.inner_options(&here, reservation, &mut table);
            self.rest(
                &here,
                reservation,
                &["duid", "ip-addresses", "prefixes", "option-data"],
            );
            out.push(toml::Value::Table(table));
        }
        out
    }
}

/// Where an `option-data` list sits: the global or a subnet level (which have the shorthand
/// keys), or a pool, pd-pool or reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Subnet,
    Inner,
}

/// How a Kea option's value becomes ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ours {
    /// Our standard option of this name.
    Named(&'static str),
    /// By code, with this `type` of ours.
    Typed(Kind),
    /// Kea's `preference`: the subnet key.
    Preference,
}

/// Kea's standard DHCPv6 options that have a counterpart here: Kea's name, the code, ours.
/// Others by code go over only as hex (`csv-format: false`); the server's own options
/// ([`crate::options::is_protocol_option`]) never.
const KEA_OPTIONS: &[(&str, u16, Ours)] = &[
    ("preference", 7, Ours::Preference),
    ("vendor-opts", 17, Ours::Named("vendor-opts")),
    ("sip-server-dns", 21, Ours::Named("sip-server-d")),
    ("sip-server-addr", 22, Ours::Named("sip-server-a")),
    ("dns-servers", 23, Ours::Named("dns-servers")),
    ("domain-search", 24, Ours::Named("domain-search")),
    ("nis-servers", 27, Ours::Typed(Kind::Addresses)),
    ("nisp-servers", 28, Ours::Typed(Kind::Addresses)),
    ("nis-domain-name", 29, Ours::Typed(Kind::Domains)),
    ("nisp-domain-name", 30, Ours::Typed(Kind::Domains)),
    ("sntp-servers", 31, Ours::Named("sntp-servers")),
    (
        "information-refresh-time",
        32,
        Ours::Named("information-refresh-time"),
    ),
    ("bcmcs-server-dns", 33, Ours::Typed(Kind::Domains)),
    ("bcmcs-server-addr", 34, Ours::Typed(Kind::Addresses)),
    ("pana-agent", 40, Ours::Typed(Kind::Addresses)),
    ("new-posix-timezone", 41, Ours::Typed(Kind::Text)),
    ("new-tzdb-timezone", 42, Ours::Typed(Kind::Text)),
    ("ntp-server", 56, Ours::Named("ntp-server")),
    ("bootfile-url", 59, Ours::Typed(Kind::Text)),
    ("aftr-name", 64, Ours::Named("aftr-name")),
    ("erp-local-domain-name", 65, Ours::Typed(Kind::Domain)),
    ("solmax-rt", 82, Ours::Named("sol-max-rt")),
    ("inf-max-rt", 83, Ours::Named("inf-max-rt")),
    ("v6-captive-portal", 103, Ours::Named("captive-portal")),
    ("v6-dnr", 144, Ours::Named("dnr")),
];

/// One converted `option-data` entry.
enum OptionOut {
    /// A subnet key (`dns-servers`, `domain-search`, `preference`) and its value.
    Key(&'static str, toml::Value),
    /// An `option` entry.
    Entry(Table),
}

/// One Kea `option-data` entry at `level`, or why it does not convert.
fn convert_option(option: &Value, level: Level) -> Result<OptionOut, String> {
    let name = option.get("name").and_then(Value::as_str);
    let code = match option.get("code") {
        None => None,
        Some(code) => Some(
            code.as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| *c > 0)
                .ok_or_else(|| format!("`code` {code} is not an option code (1-65535)"))?,
        ),
    };
    match option.get("space").and_then(Value::as_str) {
        None | Some("dhcp6") => {}
        Some(space) => {
            return Err(format!(
                "an option of Kea's space `{space}` (a sub-option): give its parent option \
                 here as `hex` (or as `vendor-opts`, `ntp-server`, `dnr` values)"
            ))
        }
    }
    let by_name = name.and_then(|name| KEA_OPTIONS.iter().find(|(kea, _, _)| *kea == name));
    let known = match (name, code, by_name) {
        (_, _, Some(known)) => {
            if let Some(code) = code.filter(|code| *code != known.1) {
                return Err(format!("`{}` is option {}, not {code}", known.0, known.1));
            }
            Some(known)
        }
        // A custom option of Kea's (its name defined in `option-def`): by its code.
        (_, Some(code), None) => KEA_OPTIONS.iter().find(|(_, c, _)| *c == code),
        (Some(name), None, None) => {
            return Err(format!(
                "no option named `{name}` here (a custom option of Kea's: give its `code`, and \
                 its data as hex, `csv-format: false`)"
            ))
        }
        (None, None, None) => return Err("an option needs `name` or `code`".into()),
    };
    let code = known.map_or(code.unwrap_or(0), |(_, c, _)| *c);
    if known.is_none_or(|(_, _, ours)| *ours != Ours::Preference)
        && crate::options::is_protocol_option(code)
    {
        return Err(format!(
            "option {code} is built by the server itself, not configured"
        ));
    }
    let data = match option.get("data") {
        None => "",
        Some(Value::String(data)) => data.as_str(),
        Some(other) => return Err(format!("`data` {other} is not a string")),
    };
    let csv = match option.get("csv-format") {
        None => true,
        Some(Value::Bool(csv)) => *csv,
        Some(other) => return Err(format!("`csv-format` {other} is not true or false")),
    };
    let always_send = match option.get("always-send") {
        None => false,
        Some(Value::Bool(always)) => *always,
        Some(other) => return Err(format!("`always-send` {other} is not true or false")),
    };
    if let Some(Value::Bool(true)) = option.get("never-send") {
        return Err("`never-send`: the option is not sent, so it is left out".into());
    }
    let ours = known.map(|(_, _, ours)| *ours);
    if ours == Some(Ours::Preference) {
        if level != Level::Subnet {
            return Err(
                "preference is a subnet's key here, not a pool's or a reservation's".into(),
            );
        }
        let preference = if csv {
            data.trim().parse::<u8>().ok()
        } else {
            hex_body(data)
                .ok()
                .and_then(|b| (b.len() == 1).then(|| b[0]))
        };
        return preference
            .map(|p| OptionOut::Key("preference", i64::from(p).into()))
            .ok_or_else(|| format!("preference `{data}` is not 0-255"));
    }
    let mut entry = Table::new();
    let kind = match ours {
        Some(Ours::Named(ours)) => {
            entry.insert("name".into(), ours.into());
            crate::options::by_name(ours).map(|def| def.kind)
        }
        Some(Ours::Typed(kind)) => {
            entry.insert("code".into(), i64::from(code).into());
            Some(kind)
        }
        _ => {
            entry.insert("code".into(), i64::from(code).into());
            None
        }
    };
    if !csv {
        let body = hex_body(data)?;
        entry.insert("hex".into(), hex::encode(body).into());
    } else {
        let Some(kind) = kind else {
            return Err(format!(
                "option {code} is not a standard option here: its data only as hex \
                 (`csv-format: false`)"
            ));
        };
        if let Some(Ours::Typed(kind)) = ours {
            entry.insert("type".into(), kind.name().into());
        }
        entry.insert("value".into(), csv_value(kind, data, code)?);
    }
    if always_send {
        if crate::options::only_when_requested(code) {
            return Err(format!(
                "`always-send` option {code}: RFC 8415 sections 21.24, 21.25 send it only to a \
                 client that asks; convert it without `always-send`"
            ));
        }
        entry.insert("always-send".into(), true.into());
    }
    // The subnet keys of these names take typed values only, and no `always-send`.
    if level == Level::Subnet && csv && !always_send {
        for key in ["dns-servers", "domain-search"] {
            if entry.get("name").and_then(toml::Value::as_str) == Some(key) {
                if let Some(value) = entry.remove("value") {
                    return Ok(OptionOut::Key(key, value));
                }
            }
        }
    }
    Ok(OptionOut::Entry(entry))
}

/// Kea's hex `data` (`0a0b0c`, `0x0a0b0c`, `0a:0b:0c`, `0a 0b 0c`) as bytes.
fn hex_body(data: &str) -> Result<Vec<u8>, String> {
    let trimmed = data.trim();
    let digits: String = trimmed
        .strip_prefix("0x")
        .or_else(|| trimmed.strip_prefix("0X"))
        .unwrap_or(trimmed)
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    if digits.is_empty() {
        return Err("no data".into());
    }
    hex::decode(&digits).map_err(|err| format!("`data` `{data}` is not hex: {err}"))
}

/// Kea's comma-separated `data` as our `value` of `kind`.
fn csv_value(kind: Kind, data: &str, code: u16) -> Result<toml::Value, String> {
    let list = || -> toml::Value {
        toml::Value::Array(
            data.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(toml::Value::from)
                .collect(),
        )
    };
    let integer = |max: u64| -> Result<toml::Value, String> {
        data.trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .map(|n| toml::Value::Integer(n as i64))
            .ok_or_else(|| format!("`data` `{data}` is not an integer 0-{max}"))
    };
    match kind {
        Kind::Addresses | Kind::Domains => Ok(list()),
        Kind::Domain => Ok(data.trim().into()),
        // Kea escapes a comma inside a string as `\,`.
        Kind::Text => Ok(data.replace("\\,", ",").into()),
        Kind::U8 => integer(u8::MAX.into()),
        Kind::U16 => integer(u16::MAX.into()),
        Kind::U32 => integer(u32::MAX.into()),
        Kind::Hex => hex_body(data).map(|body| hex::encode(body).into()),
        Kind::NtpServer | Kind::VendorOpts | Kind::Dnr => Err(format!(
            "option {code}'s sub-options are Kea option-data of their own: give it here as \
             hex (`csv-format: false`), or write its value by hand (docs/configuration.md, \
             Options)"
        )),
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
