//! The provisioning commands: `lease get|add|update|delete`, `reservation add|delete|list`,
//! `usage` (through the control socket, the same requests the HTTP API takes) and
//! `lease-log export|held` (read from the state directory, no server needed).

use std::net::Ipv6Addr;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::Locate;
use crate::control::{request, Binding, ControlRequest, ControlResponse};
use crate::server::operator::{LeaseSpec, LeaseUpdate, RemoteIdSpec, ReservationSpec};

/// `lease` subcommands.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Show the leases of an address (or the prefixes containing it), a prefix, or a client.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["address", "prefix", "duid"]))]
    Get {
        #[command(flatten)]
        locate: Locate,
        /// An address.
        #[arg(long)]
        address: Option<Ipv6Addr>,
        /// A delegated prefix, addr/len.
        #[arg(long)]
        prefix: Option<String>,
        /// A client's DUID, hex.
        #[arg(long)]
        duid: Option<String>,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Add a lease: it must be in a pool of its subnet (or the client's reservation) and held
    /// by no other client.
    #[command(group = clap::ArgGroup::new("key").required(true).args(["address", "prefix"]))]
    Add {
        #[command(flatten)]
        locate: Locate,
        /// The address (IA_NA).
        #[arg(long)]
        address: Option<Ipv6Addr>,
        /// The delegated prefix (IA_PD), addr/len.
        #[arg(long)]
        prefix: Option<String>,
        /// The client's DUID, hex (`:` separators allowed).
        #[arg(long)]
        duid: String,
        /// The IA's IAID.
        #[arg(long)]
        iaid: u32,
        /// Subnet id (default: the subnet whose pools hold it).
        #[arg(long)]
        subnet: Option<u32>,
        /// Preferred lifetime, seconds (default: the subnet's).
        #[arg(long)]
        preferred_lifetime: Option<u32>,
        /// Valid lifetime, seconds (default: the subnet's).
        #[arg(long)]
        valid_lifetime: Option<u32>,
        /// The interface the client is on.
        #[arg(long)]
        interface: Option<String>,
        /// The link-address of the relay closest to a relayed client (default `::`: the
        /// client is on a link of ours), as leasequery by link-address reports it.
        #[arg(long)]
        link_address: Option<Ipv6Addr>,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// New lifetimes for a lease, counted from now.
    #[command(group = clap::ArgGroup::new("key").required(true).args(["address", "prefix"]))]
    #[command(group = clap::ArgGroup::new("until").required(true).args(["valid_lifetime", "expires"]))]
    Update {
        #[command(flatten)]
        locate: Locate,
        /// The address.
        #[arg(long)]
        address: Option<Ipv6Addr>,
        /// The delegated prefix, addr/len.
        #[arg(long)]
        prefix: Option<String>,
        /// New valid lifetime, seconds.
        #[arg(long)]
        valid_lifetime: Option<u32>,
        /// New preferred lifetime, seconds (default: the valid lifetime).
        #[arg(long)]
        preferred_lifetime: Option<u32>,
        /// New expiry: unix seconds or RFC 3339 UTC (2026-12-01T16:00:00Z).
        #[arg(long, value_parser = crate::lease_log::parse_time)]
        expires: Option<i64>,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Delete the lease of exactly this address or prefix.
    #[command(group = clap::ArgGroup::new("key").required(true).args(["address", "prefix"]))]
    Delete {
        #[command(flatten)]
        locate: Locate,
        /// The address.
        #[arg(long)]
        address: Option<Ipv6Addr>,
        /// The delegated prefix, addr/len.
        #[arg(long)]
        prefix: Option<String>,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// Who a reservation is for: exactly one identity.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("client").required(true).args(["duid", "remote_id", "interface_id", "subscriber_id", "client_linklayer_address"]))]
pub struct ReservedClientArgs {
    /// The client's DUID, hex.
    #[arg(long)]
    duid: Option<String>,
    /// The line's Remote-ID: ENTERPRISE:HEX (`3561:aa01`).
    #[arg(long)]
    remote_id: Option<String>,
    /// The line's Interface-ID, as a string.
    #[arg(long)]
    interface_id: Option<String>,
    /// The line's Subscriber-ID, as a string.
    #[arg(long)]
    subscriber_id: Option<String>,
    /// The client's link-layer address (option 79), a MAC.
    #[arg(long)]
    client_linklayer_address: Option<String>,
}

/// `reservation` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReservationCommand {
    /// Add a reservation (kept across restarts in the state directory; the client's next
    /// request gets it).
    Add {
        #[command(flatten)]
        locate: Locate,
        /// Subnet id.
        #[arg(long)]
        subnet: u32,
        #[command(flatten)]
        client: ReservedClientArgs,
        /// The reserved address.
        #[arg(long)]
        address: Option<Ipv6Addr>,
        /// The reserved prefix, addr/len.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Delete a reservation made at run time.
    Delete {
        #[command(flatten)]
        locate: Locate,
        /// Subnet id.
        #[arg(long)]
        subnet: u32,
        #[command(flatten)]
        client: ReservedClientArgs,
    },
    /// Every reservation: the configuration's and those made at run time.
    List {
        #[command(flatten)]
        locate: Locate,
        /// JSON output for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// `lease-log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LeaseLogCommand {
    /// The records, as JSON lines, oldest first.
    Export {
        #[command(flatten)]
        locate: Locate,
        /// From this time on: unix seconds or RFC 3339 UTC.
        #[arg(long, value_parser = crate::lease_log::parse_time)]
        since: Option<i64>,
        /// Up to this time.
        #[arg(long, value_parser = crate::lease_log::parse_time)]
        until: Option<i64>,
        /// Records of this address (or of the prefixes containing it).
        #[arg(long)]
        address: Option<Ipv6Addr>,
        /// Records of this client (hex DUID).
        #[arg(long)]
        duid: Option<String>,
    },
    /// Who held an address (or a prefix containing it) at a time, as JSON lines.
    Held {
        #[command(flatten)]
        locate: Locate,
        /// The address.
        #[arg(long)]
        address: Ipv6Addr,
        /// The time: unix seconds or RFC 3339 UTC.
        #[arg(long, value_parser = crate::lease_log::parse_time)]
        at: i64,
        /// How far back to look for the grant, days (longer than the longest lease).
        #[arg(long, default_value_t = 30)]
        lookback_days: i64,
    },
}

impl ReservedClientArgs {
    fn spec(&self, subnet: u32) -> anyhow::Result<ReservationSpec> {
        let remote_id = match &self.remote_id {
            Some(text) => {
                let (enterprise, id) = text
                    .split_once(':')
                    .context("--remote-id is ENTERPRISE:HEX (3561:aa01)")?;
                Some(RemoteIdSpec {
                    enterprise: enterprise
                        .parse()
                        .context("--remote-id: the enterprise number")?,
                    id: id.to_owned(),
                })
            }
            None => None,
        };
        Ok(ReservationSpec {
            subnet,
            duid: self.duid.clone(),
            remote_id,
            interface_id: self.interface_id.clone(),
            subscriber_id: self.subscriber_id.clone(),
            client_linklayer_address: self.client_linklayer_address.clone(),
            address: None,
            prefix: None,
        })
    }
}

fn print_lease(row: &Binding, json: bool, verb: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(row)?);
    } else {
        println!(
            "{verb} {} for {} (IAID {}), subnet {}, expires in {}s",
            row.lease, row.duid, row.iaid, row.subnet, row.expires_in
        );
    }
    Ok(())
}

/// Runs a `lease` subcommand.
pub fn lease(command: &LeaseCommand) -> anyhow::Result<()> {
    let (locate, body, json, verb) = match command {
        LeaseCommand::Get {
            locate,
            address,
            prefix,
            duid,
            json,
        } => (
            locate,
            ControlRequest::LeaseGet {
                address: *address,
                prefix: prefix.clone(),
                duid: duid.clone(),
            },
            *json,
            "",
        ),
        LeaseCommand::Add {
            locate,
            address,
            prefix,
            duid,
            iaid,
            subnet,
            preferred_lifetime,
            valid_lifetime,
            interface,
            link_address,
            json,
        } => (
            locate,
            ControlRequest::LeaseAdd(LeaseSpec {
                address: *address,
                prefix: prefix.clone(),
                duid: duid.clone(),
                iaid: *iaid,
                subnet: *subnet,
                preferred_lifetime: *preferred_lifetime,
                valid_lifetime: *valid_lifetime,
                interface: interface.clone(),
                link_address: *link_address,
            }),
            *json,
            "added",
        ),
        LeaseCommand::Update {
            locate,
            address,
            prefix,
            valid_lifetime,
            preferred_lifetime,
            expires,
            json,
        } => (
            locate,
            ControlRequest::LeaseUpdate(LeaseUpdate {
                address: *address,
                prefix: prefix.clone(),
                preferred_lifetime: *preferred_lifetime,
                valid_lifetime: *valid_lifetime,
                expires: *expires,
            }),
            *json,
            "updated",
        ),
        LeaseCommand::Delete {
            locate,
            address,
            prefix,
            json,
        } => (
            locate,
            ControlRequest::LeaseDelete {
                address: *address,
                prefix: prefix.clone(),
            },
            *json,
            "deleted",
        ),
    };
    match request(&locate.state_dir()?, &body)? {
        ControlResponse::Leases(rows) if json => {
            println!("{}", serde_json::to_string_pretty(&rows)?)
        }
        ControlResponse::Leases(rows) => print!("{}", super::format_bindings(&rows)),
        ControlResponse::Lease(row) => print_lease(&row, json, verb)?,
        other => bail!("unexpected answer {other:?}"),
    }
    Ok(())
}

/// Runs a `reservation` subcommand.
pub fn reservation(command: &ReservationCommand) -> anyhow::Result<()> {
    match command {
        ReservationCommand::Add {
            locate,
            subnet,
            client,
            address,
            prefix,
        } => {
            let mut spec = client.spec(*subnet)?;
            spec.address = *address;
            spec.prefix = prefix.clone();
            let ControlResponse::Reservation(added) =
                request(&locate.state_dir()?, &ControlRequest::ReservationAdd(spec))?
            else {
                bail!("unexpected answer to reservation add");
            };
            println!("added {}", serde_json::to_string(&added)?);
        }
        ReservationCommand::Delete {
            locate,
            subnet,
            client,
        } => {
            let spec = client.spec(*subnet)?;
            let ControlResponse::Reservation(deleted) = request(
                &locate.state_dir()?,
                &ControlRequest::ReservationDelete(spec),
            )?
            else {
                bail!("unexpected answer to reservation delete");
            };
            println!("deleted {}", serde_json::to_string(&deleted)?);
        }
        ReservationCommand::List { locate, json } => {
            let ControlResponse::Reservations(rows) =
                request(&locate.state_dir()?, &ControlRequest::ReservationList)?
            else {
                bail!("unexpected answer to reservation list");
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for row in &rows {
                    println!(
                        "{:<6} {}",
                        row.source,
                        serde_json::to_string(&row.reservation)?
                    );
                }
                println!("{} reservation(s)", rows.len());
            }
        }
    }
    Ok(())
}

/// Runs `usage`.
pub fn usage(locate: &Locate, json: bool) -> anyhow::Result<()> {
    let ControlResponse::Usage(rows) = request(&locate.state_dir()?, &ControlRequest::Usage)?
    else {
        bail!("unexpected answer to usage");
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:>6} {:<3} {:<44} {:>12} {:>9} {:>9} {:>12}",
        "SUBNET", "IA", "POOL", "TOTAL", "ASSIGNED", "DECLINED", "FREE"
    );
    for row in &rows {
        println!(
            "{:>6} {:<3} {:<44} {:>12} {:>9} {:>9} {:>12}",
            row.subnet_id, row.kind, row.pool, row.total, row.assigned, row.declined, row.free
        );
    }
    Ok(())
}

/// Runs a `lease-log` subcommand.
pub fn lease_log(command: &LeaseLogCommand) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match command {
        LeaseLogCommand::Export {
            locate,
            since,
            until,
            address,
            duid,
        } => {
            let filter = crate::lease_log::ExportFilter {
                since: *since,
                until: *until,
                address: *address,
                duid: duid
                    .as_deref()
                    .map(crate::config::parse_hex)
                    .transpose()
                    .map_err(|err| anyhow::anyhow!("--duid: {err}"))?,
            };
            crate::lease_log::export(&locate.state_dir()?, &filter, &mut |record| {
                serde_json::to_writer(&mut out, record)?;
                out.write_all(b"\n")
            })?;
        }
        LeaseLogCommand::Held {
            locate,
            address,
            at,
            lookback_days,
        } => {
            let held = crate::lease_log::held_at(
                &locate.state_dir()?,
                *address,
                *at,
                lookback_days.saturating_mul(86_400),
            )?;
            for holding in held {
                serde_json::to_writer(&mut out, &holding)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
