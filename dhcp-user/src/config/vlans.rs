//! `vlans` of a subnet: the 802.1Q / QinQ lines of a NIC whose direct clients it serves, by
//! (interface, S-VLAN range, C-VLAN range), with no kernel VLAN interface for them
//! (docs/configuration.md, "VLAN lines without sub-interfaces").

use std::ops::{Range, RangeInclusive};

use dhcp_common::{vlan_key_count, MAX_VLAN_KEYS, VLAN_ID_MAX};
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Subnet, Validator};

/// One `vlans` entry as written.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawVlanLines {
    interface: Spanned<String>,
    s_vlan: Spanned<RawVlanRange>,
    c_vlan: Option<Spanned<RawVlanRange>>,
}

/// A VLAN ID or a range: `100`, `"100"` or `"100-199"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawVlanRange {
    One(u16),
    Text(String),
}

/// Lines of one interface whose direct clients a subnet serves: frames whose outer tag (S-VLAN,
/// 802.1ad or 802.1Q) is in `outer` and whose inner tag (C-VLAN) is in `inner`, or that carry
/// the outer tag alone when `inner` is `None`. Ranges include both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanLines {
    /// The served interface the tagged frames arrive on: a name, or a pattern with `*` and `?`
    /// (as in `interfaces`). Ranges that meet are refused on one name, or where a pattern is.
    pub interface: String,
    /// S-VLAN IDs.
    pub outer: RangeInclusive<u16>,
    /// C-VLAN IDs; `None`: single-tagged frames.
    pub inner: Option<RangeInclusive<u16>>,
}

impl VlanLines {
    /// True if a frame on `interface` with these VLAN IDs (0: no such tag) is on these lines.
    pub fn contains(&self, interface: &str, outer: u16, inner: u16) -> bool {
        self.on(interface)
            && self.outer.contains(&outer)
            && match &self.inner {
                None => inner == 0,
                Some(range) => range.contains(&inner),
            }
    }

    /// True if the lines are on `interface` (the name, or a pattern matching it).
    pub fn on(&self, interface: &str) -> bool {
        super::interface_matches(&self.interface, interface)
    }

    /// The ranges as `dhcp_common::for_each_vlan_key` takes them.
    pub fn key_ranges(&self) -> ((u16, u16), Option<(u16, u16)>) {
        (
            (*self.outer.start(), *self.outer.end()),
            self.inner.as_ref().map(|r| (*r.start(), *r.end())),
        )
    }

    /// True if some frame may be on both: their ranges meet on one interface name, or on
    /// patterns (which may match one interface).
    fn overlaps(&self, other: &VlanLines) -> bool {
        let meet = |a: &RangeInclusive<u16>, b: &RangeInclusive<u16>| {
            a.start() <= b.end() && b.start() <= a.end()
        };
        let pattern = |l: &VlanLines| super::is_interface_pattern(&l.interface);
        (self.interface == other.interface || pattern(self) || pattern(other))
            && meet(&self.outer, &other.outer)
            && match (&self.inner, &other.inner) {
                (None, None) => true,
                (Some(a), Some(b)) => meet(a, b),
                _ => false,
            }
    }
}

impl std::fmt::Display for VlanLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let range = |r: &RangeInclusive<u16>| {
            if r.start() == r.end() {
                r.start().to_string()
            } else {
                format!("{}-{}", r.start(), r.end())
            }
        };
        write!(f, "{} s-vlan {}", self.interface, range(&self.outer))?;
        match &self.inner {
            Some(inner) => write!(f, " c-vlan {}", range(inner)),
            None => write!(f, " (single tag)"),
        }
    }
}

impl Validator<'_> {
    /// A subnet's `vlans` entries, checked one by one (`key` names the subnet's keys).
    pub(super) fn vlan_lines(
        &self,
        raw: &[RawVlanLines],
        key: &dyn Fn(&str) -> String,
    ) -> Result<(Vec<VlanLines>, Vec<Range<usize>>), ConfigError> {
        let mut lines = Vec::with_capacity(raw.len());
        let mut spans = Vec::with_capacity(raw.len());
        for (k, entry) in raw.iter().enumerate() {
            let interface = entry.interface.get_ref();
            if interface.is_empty() {
                return Err(self.invalid(
                    Some(entry.interface.span()),
                    key(&format!("vlans[{k}].interface")),
                    "names the interface (or a pattern such as \"eth*\")".into(),
                ));
            }
            let range = |value: &Spanned<RawVlanRange>, name: &str| {
                vlan_range(value.get_ref()).map_err(|message| {
                    self.invalid(
                        Some(value.span()),
                        key(&format!("vlans[{k}].{name}")),
                        message,
                    )
                })
            };
            let outer = range(&entry.s_vlan, "s-vlan")?;
            let inner = entry
                .c_vlan
                .as_ref()
                .map(|c| range(c, "c-vlan"))
                .transpose()?;
            lines.push(VlanLines {
                interface: interface.clone(),
                outer,
                inner,
            });
            spans.push(entry.interface.span());
        }
        Ok((lines, spans))
    }

    /// No frame on two subnets' (or one subnet's two) `vlans`, and all of them fit the fast
    /// path's `VLANS` map.
    pub(super) fn check_vlan_lines(
        &self,
        subnets: &[Subnet],
        spans: &[Vec<Range<usize>>],
    ) -> Result<(), ConfigError> {
        let mut seen: Vec<(usize, usize, &VlanLines)> = Vec::new();
        let mut keys: u64 = 0;
        for (i, subnet) in subnets.iter().enumerate() {
            for (k, lines) in subnet.vlans.iter().enumerate() {
                let span = spans.get(i).and_then(|s| s.get(k)).cloned();
                let at = format!("subnet[{i}].vlans[{k}]");
                if let Some((j, l, _)) = seen.iter().find(|(_, _, other)| other.overlaps(lines)) {
                    return Err(self.invalid(
                        span,
                        at,
                        format!("{lines} overlaps subnet[{j}].vlans[{l}]: a line has one subnet"),
                    ));
                }
                let (outer, inner) = lines.key_ranges();
                keys += u64::from(vlan_key_count(outer, inner));
                if keys > u64::from(MAX_VLAN_KEYS) {
                    return Err(self.invalid(
                        span,
                        at,
                        format!(
                            "the `vlans` so far take {keys} fast-path entries, more than \
                             {MAX_VLAN_KEYS}: a full c-vlan range (\"1-{VLAN_ID_MAX}\") takes one \
                             per s-vlan, any other one per (s-vlan, c-vlan) pair"
                        ),
                    ));
                }
                seen.push((i, k, lines));
            }
        }
        Ok(())
    }
}

/// `100` or `"100-199"` as IDs 1 to 4094, low to high.
fn vlan_range(raw: &RawVlanRange) -> Result<RangeInclusive<u16>, String> {
    let (low, high) = match raw {
        RawVlanRange::One(id) => (*id, *id),
        RawVlanRange::Text(text) => {
            let id = |s: &str| {
                s.trim().parse::<u16>().map_err(|_| {
                    format!("`{text}` is not a VLAN ID or a range such as \"100-199\"")
                })
            };
            match text.split_once('-') {
                Some((low, high)) => (id(low)?, id(high)?),
                None => {
                    let one = id(text)?;
                    (one, one)
                }
            }
        }
    };
    if low == 0 || high > VLAN_ID_MAX {
        return Err(format!("VLAN IDs are 1 to {VLAN_ID_MAX}"));
    }
    if low > high {
        return Err(format!("{low} is above {high}"));
    }
    Ok(low..=high)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IDs and ranges parse as written; 0, 4095 and reversed ranges are refused.
    #[test]
    fn vlan_ranges_parse_and_refuse() {
        assert_eq!(vlan_range(&RawVlanRange::One(7)), Ok(7..=7));
        assert_eq!(
            vlan_range(&RawVlanRange::Text("100-199".into())),
            Ok(100..=199)
        );
        assert_eq!(vlan_range(&RawVlanRange::Text("12".into())), Ok(12..=12));
        for bad in ["0-10", "1-4095", "20-10", "x", "1-"] {
            assert!(
                vlan_range(&RawVlanRange::Text(bad.into())).is_err(),
                "{bad}"
            );
        }
    }

    /// The range rule is the fast path's key rule: every frame a `VlanLines` contains finds its
    /// key among the keys it expands to (`VlanKey::lookups`), and no other frame does.
    #[test]
    fn vlan_lines_contain_what_their_keys_find() {
        use dhcp_common::{for_each_vlan_key, VlanKey};
        let cases = [
            (5..=6, Some(1..=VLAN_ID_MAX)),
            (5..=6, Some(10..=12)),
            (5..=6, None),
        ];
        for (outer, inner) in cases {
            let lines = VlanLines {
                interface: "eth1".into(),
                outer,
                inner,
            };
            let (o, i) = lines.key_ranges();
            let mut keys = std::collections::HashSet::new();
            for_each_vlan_key(9, o, i, |key| {
                keys.insert(key);
            });
            for s in 0..=8u16 {
                for c in [0, 1, 9, 10, 12, 13, VLAN_ID_MAX, 4095] {
                    let found = VlanKey::lookups(9, s, c)
                        .iter()
                        .any(|key| keys.contains(key));
                    assert_eq!(found, lines.contains("eth1", s, c), "{lines}: {s}/{c}");
                }
            }
        }
    }
}

#[cfg(test)]
mod config_tests {
    use crate::config::Config;

    const TWO: &str = r#"
[[subnet]]
prefix = "2001:db8:1::/64"
vlans = [{ interface = "eth1", s-vlan = "100-199", c-vlan = "1-4094" }]

[[subnet]]
prefix = "2001:db8:2::/64"
vlans = [
  { interface = "eth1", s-vlan = 300 },
  { interface = "eth1", s-vlan = "150", c-vlan = "7" },
]
"#;

    /// Overlapping lines are refused naming the file, the line and the key; a bad range names
    /// its key too; lines that do not meet select their subnets.
    #[test]
    fn vlan_lines_select_subnets_and_overlaps_are_refused() {
        let e = Config::parse(TWO, "bng.toml").unwrap_err().to_string();
        assert!(
            e.contains("bng.toml, line 10") && e.contains("key `subnet[1].vlans[1]`"),
            "{e}"
        );
        assert!(e.contains("overlaps subnet[0].vlans[0]"), "{e}");
        let ok = TWO.replace("s-vlan = \"150\"", "s-vlan = \"250\"");
        let config = Config::parse(&ok, "bng.toml").unwrap();
        assert_eq!(config.vlan_subnet("eth1", 120, 4000), Some(0));
        assert_eq!(config.vlan_subnet("eth1", 300, 0), Some(1));
        assert_eq!(config.vlan_subnet("eth1", 300, 5), None);
        assert_eq!(config.vlan_subnet("eth1", 250, 7), Some(1));
        assert_eq!(config.vlan_subnet("eth2", 120, 7), None);
        let bad = TWO.replace("c-vlan = \"7\"", "c-vlan = \"0-7\"");
        let e = Config::parse(&bad, "bng.toml").unwrap_err().to_string();
        assert!(
            e.contains("subnet[1].vlans[1].c-vlan") && e.contains("1 to 4094"),
            "{e}"
        );
    }
}
