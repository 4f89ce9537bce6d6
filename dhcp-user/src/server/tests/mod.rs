//! Tests of the decision pipeline (RFC 8415 behaviour, canonical reply layout) and of the
//! server around it (durability before reply, events, reclaim, clear, fast-path reports).

mod classes;
mod lifecycle;
mod lines;
mod link;
mod operator;
mod reconfigure;
mod relay;
mod reload;
mod serving;
mod shared;
mod solicit;
mod validation;

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;

use dhcp_common::dhcpv6::*;

use super::allocator::Allocator;
use super::handler::{classify, decide, wrap_reply, ClientLimit, DecideInput, Decision, Inbound};
use super::{ClearSelector, Durability, Handling, Server};
use crate::config::Config;
use crate::lease_events::LeaseEventKind;
use crate::proto::{
    decode, DhcpOption, Duid, IaAddr, IaNa, IaPd, IaPrefix, Message, OptionList, Packet,
    RelayMessage, RemoteId,
};
use crate::store::{Lease, LeaseChange, LeaseKey, LeaseState, LeaseStore, SqliteStore};

const CONFIG: &str = r#"
interfaces = ["eth1"]
grace-period = 100
decline-probation = 500
[[subnet]]
id = 7
prefix = "2001:db8:1::/64"
interface = "eth1"
pools = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]
pd-pools = [{ prefix = "2001:db8:8000::/40", delegated-length = 56 }]
preferred-lifetime = 1000
valid-lifetime = 2000
renew-timer = 500
rebind-timer = 800
rapid-commit = true
preference = 200
dns-servers = ["2001:db8:1::53"]
domain-search = ["lab.example"]
information-refresh-time = 3600

[[subnet]]
id = 8
prefix = "2001:db8:2::/64"
pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::101" }]
"#;

const NOW: i64 = 1_700_000_000;

struct NoLimit;
impl ClientLimit for NoLimit {
    fn is_known(&self, _: &str, _: &[u8]) -> bool {
        false
    }
    fn is_full(&self, _: &str) -> bool {
        false
    }
    fn line_is_known(&self, _: &[u8], _: &[u8]) -> bool {
        false
    }
    fn line_is_full(&self, _: &[u8]) -> bool {
        false
    }
}

struct Full(Vec<u8>);
impl ClientLimit for Full {
    fn is_known(&self, _: &str, duid: &[u8]) -> bool {
        duid == self.0
    }
    fn is_full(&self, _: &str) -> bool {
        true
    }
    fn line_is_known(&self, _: &[u8], _: &[u8]) -> bool {
        false
    }
    fn line_is_full(&self, _: &[u8]) -> bool {
        false
    }
}

fn server_duid() -> Duid {
    Duid::ll(1, &[2, 0, 0, 0, 0, 0xfe]).unwrap()
}

fn client(n: u8) -> Duid {
    Duid::ll(1, &[2, 0, 0, 0, 0, n]).unwrap()
}

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ia_na(iaid: u32, addrs: &[&str]) -> DhcpOption {
    DhcpOption::IaNa(IaNa {
        iaid,
        t1: 0,
        t2: 0,
        options: addrs
            .iter()
            .map(|a| {
                DhcpOption::IaAddr(IaAddr {
                    addr: addr(a),
                    preferred: 0,
                    valid: 0,
                    options: Vec::new(),
                })
            })
            .collect(),
    })
}

fn ia_pd(iaid: u32, prefix: Option<(&str, u8)>) -> DhcpOption {
    DhcpOption::IaPd(IaPd {
        iaid,
        t1: 0,
        t2: 0,
        options: prefix
            .map(|(p, len)| {
                vec![DhcpOption::IaPrefix(IaPrefix {
                    preferred: 0,
                    valid: 0,
                    prefix_len: len,
                    prefix: addr(p),
                    options: Vec::new(),
                })]
            })
            .unwrap_or_default(),
    })
}

fn msg(msg_type: u8, duid: &Duid, options: Vec<DhcpOption>) -> Message {
    let mut m = Message::new(msg_type, [1, 2, 3]).with_option(DhcpOption::ClientId(duid.clone()));
    m.options.extend(options);
    m
}

fn inbound(packet: &Packet, destination: &str) -> Inbound {
    Inbound {
        bytes: packet.encode().unwrap(),
        source: SocketAddrV6::new(addr("fe80::1"), 546, 0, 2),
        destination: addr(destination),
        ifindex: 2,
        interface: "eth1".into(),
        link: None,
    }
}

struct World {
    config: Config,
    leases: BTreeMap<LeaseKey, Lease>,
    allocator: Allocator,
}

impl World {
    fn new() -> Self {
        World::with_config(CONFIG)
    }

    fn with_config(text: &str) -> Self {
        let config = Config::parse(text, "test.toml").unwrap();
        let allocator = Allocator::new(&config);
        World {
            config,
            leases: BTreeMap::new(),
            allocator,
        }
    }

    fn decide_with(
        &mut self,
        packet: Packet,
        dst: &str,
        limit: &dyn ClientLimit,
        now: i64,
    ) -> (Decision, Option<Packet>) {
        let request = classify(&self.config, &inbound(&packet, dst), Some(0)).unwrap();
        let input = DecideInput {
            config: &self.config,
            server_duid: &server_duid(),
            view: &self.leases,
            clients: limit,
            now,
        };
        let decision = decide(&input, &mut self.allocator, &request).unwrap();
        for change in &decision.changes {
            match change {
                LeaseChange::Upsert(lease) => {
                    self.leases.insert(lease.key(), lease.clone());
                }
                LeaseChange::Delete(key) => {
                    self.leases.remove(key);
                }
                LeaseChange::Renew { .. } => {}
            }
        }
        let wire = decision
            .outcome
            .clone()
            .ok()
            .map(|reply| decode(&wrap_reply(&request, reply).unwrap()).unwrap());
        (decision, wire)
    }

    fn decide(&mut self, message: Message) -> (Decision, Option<Message>) {
        let (decision, wire) = self.decide_with(message.into(), "ff02::1:2", &NoLimit, NOW);
        (decision, wire.map(|p| p.as_message().unwrap().clone()))
    }
}

fn codes(message: &Message) -> Vec<u16> {
    message.options.iter().map(DhcpOption::code).collect()
}

fn status_in(options: &[DhcpOption]) -> Option<u16> {
    options.status_code().map(|s| s.code)
}

const ORO: fn() -> DhcpOption = || {
    DhcpOption::Oro(vec![
        OPT_DNS_SERVERS,
        OPT_DOMAIN_LIST,
        OPT_INFORMATION_REFRESH_TIME,
    ])
};

// ---- the server around the decisions ----

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dhcp-user-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open_server(dir: &std::path::Path) -> Arc<Server> {
    let mut config = Config::parse(CONFIG, "t").unwrap();
    config.state_dir = dir.to_path_buf();
    let server = Server::open(config, &[]).unwrap();
    server.set_direct_subnet("eth1", Some(0));
    server
}

fn handle_bytes(
    server: &Server,
    message: Message,
) -> impl std::future::Future<Output = Option<Vec<u8>>> + '_ {
    let inbound = inbound(&message.into(), "ff02::1:2");
    async move { server.handle(&inbound).await }
}
