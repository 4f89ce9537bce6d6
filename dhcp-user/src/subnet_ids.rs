//! Stable subnet ids: the record of which id each subnet prefix has had, kept in the state
//! directory (`subnet-ids`), so that reordering or deleting `[[subnet]]` tables never renumbers
//! the leases of the others.
//!
//! Every lease carries its subnet's id. A subnet without `id` used to take its position in the
//! file, so deleting the first subnet gave the second one id 1, and with it the leases of the
//! deleted one (and the second one's own leases, under id 2, were no longer its). Now:
//!
//! - a subnet without `id` whose prefix is in the record gets the recorded id;
//! - one whose prefix is not recorded keeps its position, unless that id is recorded for
//!   another prefix or taken by another subnet: then it gets the next id never used;
//! - an explicit `id` that differs from its prefix's recorded id, or that the record gives to
//!   another prefix, is refused (start, reload and `check-config`), saying which and why.
//!
//! The record only grows: every prefix served is added when `serve` starts or a reload is
//! applied. The first start of a release with the record writes the ids in force (positional or
//! explicit) as they are: an existing install upgrades without renumbering. A prefix's line may
//! be removed by hand (with the server stopped) once no lease of that prefix is kept.
//!
//! ```text
//! # dhcp-user: the id each subnet prefix has had (leases carry it); see docs/operations.md
//! 1 2001:db8:1::/64
//! 2 2001:db8:2::/64
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ipnet::Ipv6Net;

use crate::config::Config;

/// File of the record in the state directory.
pub const SUBNET_IDS_FILE: &str = "subnet-ids";

/// Why the ids of a configuration are refused, or the record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SubnetIdError {
    /// The record could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The record's file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line of the record does not parse.
    #[error("{path}, line {line}: {message}")]
    Record {
        /// The record's file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The configuration would renumber leases.
    #[error("key `subnet[{index}].id`: {message}")]
    Renumbers {
        /// The subnet's position in the file.
        index: usize,
        /// Which prefixes and ids, and what to do.
        message: String,
    },
}

/// The record: the id of every prefix served so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetIds {
    by_prefix: BTreeMap<Ipv6Net, u32>,
}

impl SubnetIds {
    /// The record's path in `state_dir`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(SUBNET_IDS_FILE)
    }

    /// Reads the record of `state_dir` (empty when there is none yet).
    pub fn load(state_dir: &Path) -> Result<SubnetIds, SubnetIdError> {
        let path = SubnetIds::path(state_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SubnetIds::default())
            }
            Err(source) => return Err(SubnetIdError::Io { path, source }),
        };
        SubnetIds::parse(&text, &path)
    }

    /// Parses a record's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<SubnetIds, SubnetIdError> {
        let mut by_prefix = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: String| SubnetIdError::Record {
                path: path.to_path_buf(),
                line: n + 1,
                message,
            };
            let mut words = line.split_whitespace();
            let (Some(id), Some(prefix), None) = (words.next(), words.next(), words.next()) else {
                return Err(bad(format!("`{line}` is not `ID PREFIX`")));
            };
            let id: u32 = id
                .parse()
                .map_err(|_| bad(format!("`{id}` is not a subnet id")))?;
            let prefix = crate::config::parse_prefix(prefix).map_err(bad)?;
            if let Some(other) = by_prefix.insert(prefix, id) {
                return Err(bad(format!(
                    "{prefix} is recorded twice (ids {other} and {id})"
                )));
            }
        }
        Ok(SubnetIds { by_prefix })
    }

    /// The recorded id of `prefix`.
    pub fn id_of(&self, prefix: Ipv6Net) -> Option<u32> {
        self.by_prefix.get(&prefix).copied()
    }

    /// The prefix `id` is recorded for, other than `prefix`.
    fn other_prefix_with(&self, id: u32, prefix: Ipv6Net) -> Option<Ipv6Net> {
        self.by_prefix
            .iter()
            .find(|(p, i)| **i == id && **p != prefix)
            .map(|(p, _)| *p)
    }

    /// Gives `config`'s subnets their ids by the record (see the module's rules) and returns
    /// the record with every subnet of `config` in it; the configuration is left unchanged on
    /// error. `file` names the record in the messages.
    pub fn assign(&self, config: &mut Config, file: &Path) -> Result<SubnetIds, SubnetIdError> {
        let file = file.display();
        // Explicit ids first: they must agree with the record.
        for (index, subnet) in config.subnets.iter().enumerate() {
            if !subnet.explicit_id {
                continue;
            }
            if let Some(recorded) = self.id_of(subnet.prefix) {
                if recorded != subnet.id {
                    return Err(SubnetIdError::Renumbers {
                        index,
                        message: format!(
                            "id {} would renumber the leases of {}, granted under id {recorded} \
                             (recorded in {file}): set `id = {recorded}` (or leave `id` out)",
                            subnet.id, subnet.prefix
                        ),
                    });
                }
            }
            if let Some(other) = self.other_prefix_with(subnet.id, subnet.prefix) {
                return Err(SubnetIdError::Renumbers {
                    index,
                    message: format!(
                        "id {} is {other}'s (recorded in {file}): the leases of {other} carry it, \
                         and would become {}'s; give this subnet another id (once no lease of \
                         {other} is kept, its line may be removed from {file})",
                        subnet.id, subnet.prefix
                    ),
                });
            }
        }
        let mut ids: Vec<u32> = config.subnets.iter().map(|s| s.id).collect();
        let explicit: Vec<bool> = config.subnets.iter().map(|s| s.explicit_id).collect();
        // Defaulted ids of recorded prefixes: the recorded id.
        let mut settled: Vec<bool> = explicit.clone();
        for (i, subnet) in config.subnets.iter().enumerate() {
            if let (false, Some(recorded)) = (explicit[i], self.id_of(subnet.prefix)) {
                ids[i] = recorded;
                settled[i] = true;
            }
        }
        // The rest keep their position unless another prefix has that id (recorded, or
        // settled above): then the next id never used.
        let mut next = self
            .by_prefix
            .values()
            .chain(ids.iter())
            .copied()
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        for (i, subnet) in config.subnets.iter().enumerate() {
            if settled[i] {
                continue;
            }
            let taken = self.other_prefix_with(ids[i], subnet.prefix).is_some()
                || (0..config.subnets.len()).any(|j| j != i && settled[j] && ids[j] == ids[i]);
            if taken {
                ids[i] = next;
                next = next.saturating_add(1);
            }
            settled[i] = true;
        }
        for (subnet, id) in config.subnets.iter_mut().zip(ids) {
            subnet.id = id;
        }
        let mut record = self.clone();
        for subnet in &config.subnets {
            record.by_prefix.insert(subnet.prefix, subnet.id);
        }
        Ok(record)
    }

    /// The record as its file holds it.
    pub fn to_text(&self) -> String {
        let mut text = String::from(
            "# dhcp-user: the id each subnet prefix has had (leases carry it); see\n\
             # docs/operations.md, \"Stable subnet ids\". Written by the server.\n",
        );
        for (prefix, id) in &self.by_prefix {
            text.push_str(&format!("{id} {prefix}\n"));
        }
        text
    }

    /// Writes the record into `state_dir` (a new file moved over the old one), unless it is
    /// unchanged.
    pub fn store(&self, state_dir: &Path, before: &SubnetIds) -> Result<(), SubnetIdError> {
        let path = SubnetIds::path(state_dir);
        if self == before && path.exists() {
            return Ok(());
        }
        let staged = state_dir.join(format!(".{SUBNET_IDS_FILE}.new"));
        let io = |source| SubnetIdError::Io {
            path: path.clone(),
            source,
        };
        std::fs::write(&staged, self.to_text()).map_err(io)?;
        std::fs::rename(&staged, &path).map_err(io)
    }
}

/// Gives `config` its ids from the record in its state directory and returns the record to
/// keep with them (see [`SubnetIds::assign`]), and the record as it was.
pub fn assign_from_state_dir(config: &mut Config) -> Result<(SubnetIds, SubnetIds), SubnetIdError> {
    let before = SubnetIds::load(&config.state_dir)?;
    let file = SubnetIds::path(&config.state_dir);
    let after = before.assign(config, &file)?;
    Ok((after, before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(subnets: &[(Option<u32>, &str)]) -> Config {
        let mut text = String::new();
        for (id, prefix) in subnets {
            text.push_str("[[subnet]]\n");
            if let Some(id) = id {
                text.push_str(&format!("id = {id}\n"));
            }
            text.push_str(&format!("prefix = \"{prefix}\"\n"));
        }
        Config::parse(&text, "t.toml").unwrap()
    }

    fn ids(config: &Config) -> Vec<(u32, String)> {
        config
            .subnets
            .iter()
            .map(|s| (s.id, s.prefix.to_string()))
            .collect()
    }

    fn record(text: &str) -> SubnetIds {
        SubnetIds::parse(text, Path::new("subnet-ids")).unwrap()
    }

    const A: &str = "2001:db8:1::/64";
    const B: &str = "2001:db8:2::/64";
    const C: &str = "2001:db8:3::/64";

    /// With no record yet (an upgrade), the ids in force are kept and recorded as they are.
    #[test]
    fn the_first_record_keeps_the_ids_in_force() {
        let mut c = config(&[(None, A), (Some(7), B), (None, C)]);
        let after = SubnetIds::default().assign(&mut c, Path::new("f")).unwrap();
        assert_eq!(ids(&c), [(1, A.into()), (7, B.into()), (3, C.into())]);
        assert_eq!(
            after,
            record("1 2001:db8:1::/64\n7 2001:db8:2::/64\n3 2001:db8:3::/64\n")
        );
    }

    /// Deleting the first of two subnets without ids leaves the second its id (2), not its new
    /// position (1): its leases are not renumbered.
    #[test]
    fn deleting_a_subnet_does_not_renumber_the_next() {
        let before = record("1 2001:db8:1::/64\n2 2001:db8:2::/64\n");
        let mut c = config(&[(None, B)]);
        before.assign(&mut c, Path::new("f")).unwrap();
        assert_eq!(ids(&c), [(2, B.into())]);
    }

    /// Reordering subnets without ids keeps each prefix's id.
    #[test]
    fn reordering_subnets_keeps_their_ids() {
        let before = record("1 2001:db8:1::/64\n2 2001:db8:2::/64\n");
        let mut c = config(&[(None, B), (None, A)]);
        before.assign(&mut c, Path::new("f")).unwrap();
        assert_eq!(ids(&c), [(2, B.into()), (1, A.into())]);
    }

    /// A new subnet whose position is another prefix's recorded id gets the next id never used.
    #[test]
    fn a_new_subnet_never_takes_a_recorded_id() {
        let before = record("1 2001:db8:1::/64\n2 2001:db8:2::/64\n");
        let mut c = config(&[(None, C), (None, B)]);
        let after = before.assign(&mut c, Path::new("f")).unwrap();
        assert_eq!(ids(&c), [(3, C.into()), (2, B.into())]);
        assert_eq!(after.id_of(A.parse().unwrap()), Some(1), "A stays recorded");
    }

    /// An explicit id other than the prefix's recorded one is refused, naming both.
    #[test]
    fn an_explicit_id_that_renumbers_a_prefix_is_refused() {
        let before = record("1 2001:db8:1::/64\n2 2001:db8:2::/64\n");
        let mut c = config(&[(Some(5), A)]);
        let err = before
            .assign(&mut c, Path::new("f"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("subnet[0].id"), "{err}");
        assert!(
            err.contains("granted under id 1") && err.contains("set `id = 1`"),
            "{err}"
        );
        assert_eq!(ids(&c), [(5, A.into())], "left unchanged");
    }

    /// An explicit id recorded for another prefix is refused: that prefix's leases carry it.
    #[test]
    fn an_explicit_id_of_another_prefix_is_refused() {
        let before = record("1 2001:db8:1::/64\n");
        let mut c = config(&[(Some(1), B)]);
        let err = before
            .assign(&mut c, Path::new("f"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("id 1 is 2001:db8:1::/64's"), "{err}");
    }

    /// A record line that does not parse names the file and the line.
    #[test]
    fn a_bad_record_line_names_its_line() {
        let err = SubnetIds::parse("# c\n1 2001:db8:1::/64\nx y\n", Path::new("ids"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "ids, line 3: `x` is not a subnet id");
    }

    /// The record written is the record read back.
    #[test]
    fn the_record_round_trips() {
        let r = record("1 2001:db8:1::/64\n9 2001:db8:2::/64\n");
        assert_eq!(SubnetIds::parse(&r.to_text(), Path::new("f")).unwrap(), r);
    }
}
