//! The `dhcp-user leasequery ...` subcommand, ready to mount: `Leasequery(LeasequeryArgs)` in
//! the CLI's command enum, and `leasequery::cli::run(&args).await` to run it.
//!
//! ```text
//! dhcp-user leasequery --server [2001:db8:1::1]:547 address 2001:db8:1::1000
//! dhcp-user leasequery --server 2001:db8:1::1 --json relay-id 00:02:00:00:00:09:01:02
//! dhcp-user leasequery link ::                      # every binding (bulk, TCP)
//! dhcp-user leasequery --active --start-time 1700000000 link ::   # follow changes
//! dhcp-user leasequery --tls --ca ca.pem --cert me.pem --key me.key link ::   # over TLS
//! ```
//! Address and client-ID queries go over UDP (RFC 5007) unless `--tcp` or `--tls`; the other
//! kinds are bulk queries over TCP (RFC 5460); `--active` follows changes (RFC 7653) until the
//! server ends the query. `--tls` StartTLSes first (RFC 7653 §5.2), verifying the server's
//! certificate against `--ca` and the server's address (or `--tls-name`), presenting
//! `--cert`/`--key` when given (servers that require client certificates need them).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use dhcp_common::dhcpv6::{SERVER_PORT, STATUS_SUCCESS};

use super::client::{
    query_udp, ActiveEvent, ActiveLeasequery, Answer, Binding, LeasequeryConnection, Query,
    QueryOptions,
};
use crate::proto::Duid;
use crate::tls::{self, ClientTls};

/// `dhcp-user leasequery`: ask a DHCPv6 server about its bindings.
#[derive(Debug, Clone, clap::Args)]
pub struct LeasequeryArgs {
    /// The server: an IPv6 address (port 547) or `[address]:port`.
    #[arg(long, default_value = "::1")]
    pub server: String,
    /// Use TCP (bulk leasequery) for address and client-ID queries too.
    #[arg(long)]
    pub tcp: bool,
    /// StartTLS before the query (TCP; RFC 7653 section 5.2). Needs --ca.
    #[arg(long, requires = "ca")]
    pub tls: bool,
    /// With --tls: the trust anchors (PEM) the server's certificate must chain to.
    #[arg(long, requires = "tls")]
    pub ca: Option<PathBuf>,
    /// With --tls: our certificate (PEM), for servers that require client certificates.
    #[arg(long, requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,
    /// With --tls: the private key (PEM) of --cert.
    #[arg(long, requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
    /// With --tls: the name the server's certificate must carry (default: the server's address).
    #[arg(long, requires = "tls")]
    pub tls_name: Option<String>,
    /// Active leasequery: print the catch-up (with --start-time) and every later change.
    #[arg(long)]
    pub active: bool,
    /// Print JSON (one object per answer; one per line with --active).
    #[arg(long)]
    pub json: bool,
    /// The link-address of the query (default `::`, any link).
    #[arg(long)]
    pub link: Option<Ipv6Addr>,
    /// Ask for LQ_RELAY_DATA.
    #[arg(long)]
    pub relay_data: bool,
    /// LQ_START_TIME, unix seconds.
    #[arg(long)]
    pub start_time: Option<u32>,
    /// LQ_END_TIME, unix seconds (bulk).
    #[arg(long)]
    pub end_time: Option<u32>,
    /// Our DUID (default: a random DUID-UUID).
    #[arg(long)]
    pub duid: Option<Duid>,
    /// Our Relay-ID, for servers in restricted-requestor mode.
    #[arg(long)]
    pub relay_id: Option<Duid>,
    /// Seconds to wait for the server.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
    /// What to ask for.
    #[command(subcommand)]
    pub query: QueryArg,
}

/// The query kinds.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum QueryArg {
    /// The binding of an address (or of the delegated prefix containing it).
    Address { address: Ipv6Addr },
    /// The bindings of a client (DUID as colon hex or plain hex).
    ClientId { duid: Duid },
    /// The bindings learnt through a relay (its Relay-ID DUID).
    RelayId { duid: Duid },
    /// The bindings on a link (`::` for every link).
    Link { link: Ipv6Addr },
    /// The bindings whose request carried this Remote-ID (enterprise number, id as hex).
    RemoteId { enterprise: u32, remote_id: String },
}

/// Parses `--server`.
pub fn server_address(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let ip: IpAddr = text
        .parse()
        .with_context(|| format!("--server {text}: not an address or [address]:port"))?;
    Ok(SocketAddr::new(ip, SERVER_PORT))
}

impl LeasequeryArgs {
    fn query(&self) -> anyhow::Result<Query> {
        Ok(match &self.query {
            QueryArg::Address { address } => Query::Address(*address),
            QueryArg::ClientId { duid } => Query::ClientId(duid.clone()),
            QueryArg::RelayId { duid } => Query::RelayId(duid.clone()),
            QueryArg::Link { link } => Query::LinkAddress(*link),
            QueryArg::RemoteId {
                enterprise,
                remote_id,
            } => Query::RemoteId {
                enterprise: *enterprise,
                remote_id: hex::decode(remote_id.replace(':', ""))
                    .with_context(|| format!("remote-id {remote_id}: not hex"))?,
            },
        })
    }

    /// The TLS configuration of `--tls`, `--ca`, `--cert`, `--key`, `--tls-name`.
    fn client_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        if !self.tls {
            return Ok(None);
        }
        let Some(ca) = &self.ca else {
            bail!("--tls needs --ca (the trust anchors of the server's certificate)");
        };
        let anchors = tls::load_trust_anchors(ca).context("--ca")?;
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                Some(tls::Identity::load(cert, key).context("--cert/--key")?)
            }
            _ => None,
        };
        let server_name = self
            .tls_name
            .as_deref()
            .map(tls::parse_server_name)
            .transpose()
            .map_err(|err| anyhow::anyhow!("--tls-name: {err}"))?;
        let config =
            tls::client_config(&anchors, identity.as_ref()).context("--ca/--cert/--key")?;
        Ok(Some(ClientTls {
            config,
            server_name,
        }))
    }

    fn options(&self) -> QueryOptions {
        QueryOptions {
            link_address: self.link,
            relay_data: self.relay_data,
            start_time: self.start_time,
            end_time: self.end_time,
            requestor_relay_id: self.relay_id.clone(),
            ia_data: false,
            // Next hop, interface and line when the server is one of ours; others ignore it.
            peer_data: true,
        }
    }
}

/// Runs the subcommand, printing to stdout.
pub async fn run(args: &LeasequeryArgs) -> anyhow::Result<()> {
    let server = server_address(&args.server)?;
    let query = args.query()?;
    let options = args.options();
    let me = args
        .duid
        .clone()
        .unwrap_or_else(|| Duid::uuid(rand::random()));
    let wait = Duration::from_secs(args.timeout.max(1));
    let tls = args.client_tls()?;
    if args.active {
        let connection = connect(server, wait, &me, tls.as_ref()).await?;
        return follow(connection, &me, &query, &options, wait, args.json).await;
    }
    let over_udp =
        matches!(query, Query::Address(_) | Query::ClientId(_)) && !args.tcp && tls.is_none();
    let answer = if over_udp {
        query_udp(server, &me, &query, &options, wait)
            .await
            .with_context(|| format!("leasequery to {server} over UDP"))?
    } else {
        let mut connection = connect(server, wait, &me, tls.as_ref()).await?;
        let over = if connection.is_tls() { "TLS" } else { "TCP" };
        connection
            .bulk(&me, &query, &options)
            .await
            .with_context(|| format!("bulk leasequery to {server} over {over}"))?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", render_answer(&answer));
    }
    if answer.status != STATUS_SUCCESS {
        bail!(
            "server answered status {} {}",
            answer.status,
            answer.status_message
        );
    }
    Ok(())
}

/// A TCP connection to `server`, StartTLSed with `tls`.
async fn connect(
    server: SocketAddr,
    wait: Duration,
    me: &Duid,
    tls: Option<&ClientTls>,
) -> anyhow::Result<LeasequeryConnection> {
    let what = if tls.is_some() {
        "StartTLS with"
    } else {
        "connecting to"
    };
    LeasequeryConnection::connect_with(server, wait, me, tls)
        .await
        .with_context(|| format!("leasequery: {what} {server}"))
}

async fn follow(
    connection: LeasequeryConnection,
    me: &Duid,
    query: &Query,
    options: &QueryOptions,
    wait: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let (active, reply) = ActiveLeasequery::start_on(connection, me, query, options).await?;
    let Some(mut active) = active else {
        bail!(
            "server answered status {} {}",
            reply.status,
            reply.status_message
        );
    };
    if reply.status != STATUS_SUCCESS {
        eprintln!(
            "server: status {} {} (no catch-up; run a bulk query to resynchronise)",
            reply.status, reply.status_message
        );
    }
    loop {
        // The server sends keepalives, so a long silence means the connection is dead.
        match active.next(wait.max(Duration::from_secs(300))).await? {
            ActiveEvent::Update(binding) => {
                if json {
                    println!("{}", serde_json::to_string(&binding)?);
                } else {
                    print!("{}", render_binding(&binding));
                }
            }
            ActiveEvent::CatchUpComplete { .. } => eprintln!("catch-up complete"),
            ActiveEvent::Keepalive { .. } => {}
            ActiveEvent::Done(status) => {
                let (code, message) = status.map_or((0, String::new()), |s| (s.code, s.message));
                eprintln!("server ended the query: status {code} {message}");
                return Ok(());
            }
            ActiveEvent::Closed => {
                eprintln!("server closed the connection");
                return Ok(());
            }
        }
    }
}

/// Text form of an answer: a status line when not Success, client links, then bindings.
pub fn render_answer(answer: &Answer) -> String {
    let mut out = String::new();
    if answer.status != STATUS_SUCCESS {
        out.push_str(&format!(
            "status {} {}\n",
            answer.status, answer.status_message
        ));
    }
    if !answer.client_links.is_empty() {
        let links: Vec<String> = answer.client_links.iter().map(|l| l.to_string()).collect();
        out.push_str(&format!(
            "client on several links (ask with --link): {}\n",
            links.join(" ")
        ));
    }
    for binding in &answer.bindings {
        out.push_str(&render_binding(binding));
    }
    if answer.status == STATUS_SUCCESS
        && answer.bindings.is_empty()
        && answer.client_links.is_empty()
    {
        out.push_str("no binding\n");
    }
    if let Some(code) = answer.done_status {
        out.push_str(&format!("query ended with status {code}\n"));
    }
    out
}

/// One line per address or prefix of a binding.
pub fn render_binding(binding: &Binding) -> String {
    let clt = binding
        .clt_time
        .map_or_else(|| "-".to_string(), |c| format!("{c}s"));
    let mut out = String::new();
    for a in &binding.addresses {
        out.push_str(&format!(
            "{} client {} preferred {}s valid {}s last-transaction {} ago\n",
            a.address, binding.client_id, a.preferred, a.valid, clt
        ));
    }
    for p in &binding.prefixes {
        out.push_str(&format!(
            "{}/{} client {} preferred {}s valid {}s last-transaction {} ago\n",
            p.prefix, p.prefix_len, binding.client_id, p.preferred, p.valid, clt
        ));
    }
    if let Some(relay) = &binding.relay_data {
        out.push_str(&format!(
            "  relay {} message {}\n",
            relay.peer_address, relay.relay_message
        ));
    }
    if let Some(peer) = &binding.peer {
        let mut parts = Vec::new();
        if let Some(hop) = peer.next_hop {
            parts.push(format!("next-hop {hop}"));
        }
        if !peer.interface.is_empty() {
            parts.push(format!("interface {}", peer.interface));
        }
        if let Some(line) = &peer.line {
            parts.push(format!("line {}", hex::encode(line)));
        }
        if let Some(address) = &peer.link_layer {
            parts.push(format!("link-layer {}", hex::encode(address)));
        }
        out.push_str(&format!("  {}\n", parts.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leasequery::client::BoundAddress;

    #[test]
    fn server_address_forms() {
        assert_eq!(
            server_address("2001:db8::1").unwrap(),
            "[2001:db8::1]:547".parse().unwrap()
        );
        assert_eq!(
            server_address("[::1]:1547").unwrap(),
            "[::1]:1547".parse().unwrap()
        );
        assert!(server_address("nonsense").is_err());
    }

    #[test]
    fn text_rendering() {
        let binding = Binding {
            client_id: "00:03:00:01:02:00:00:00:00:01".into(),
            addresses: vec![BoundAddress {
                address: "2001:db8:1::5".parse().unwrap(),
                iaid: None,
                preferred: 10,
                valid: 20,
            }],
            prefixes: Vec::new(),
            clt_time: Some(3),
            relay_data: None,
            base_time: None,
            peer: None,
        };
        assert_eq!(
            render_binding(&binding),
            "2001:db8:1::5 client 00:03:00:01:02:00:00:00:00:01 preferred 10s valid 20s last-transaction 3s ago\n"
        );
        let answer = Answer {
            status: 10,
            status_message: "not allowed".into(),
            done_status: None,
            bindings: Vec::new(),
            client_links: Vec::new(),
            base_time: None,
        };
        assert_eq!(render_answer(&answer), "status 10 not allowed\n");
    }
}
