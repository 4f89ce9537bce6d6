//! kill -9 during load, restart: every lease a client was told about is still there, and no
//! address is ever given to a second client.
//!
//! perfdhcp keeps the server busy while a recording client does Rapid-Commit Solicits, each
//! with a new DUID, and notes every address a Reply gave it. The server is SIGKILLed in the
//! middle and restarted; the recorder keeps going (retrying what was unanswered).

mod server_common;

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dhcp_user::proto::{decode, DhcpOption, Duid, IaNa, Message, OptionList};
use dhcp_user::store::{LeaseState, LeaseStore, SqliteStore};
use server_common::{lab_config, LabServer};

fn rapid_solicit(n: u32) -> (Duid, Vec<u8>) {
    let duid = Duid::en(32473, &n.to_be_bytes()).unwrap();
    let xid = n.to_be_bytes();
    let bytes = Message::new(1, [xid[1], xid[2], xid[3]])
        .with_option(DhcpOption::ClientId(duid.clone()))
        .with_option(DhcpOption::IaNa(IaNa {
            iaid: 1,
            t1: 0,
            t2: 0,
            options: Vec::new(),
        }))
        .with_option(DhcpOption::RapidCommit)
        .encode()
        .unwrap();
    (duid, bytes)
}

#[test]
fn kill_9_under_load_loses_no_lease_and_gives_no_address_twice() {
    let mut lab = LabServer::start("crash", &lab_config(&[], ""));
    let perfdhcp = lab
        .client_ns
        .command("timeout")
        .args(["20", "perfdhcp", "-6", "-l", &lab.link.b.ifname])
        .args(["-r", "150", "-R", "5000", "-p", "6", "-f", "50"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting perfdhcp");

    let socket = lab.client_socket(0);
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let target = lab.all_servers();
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut told: Vec<(Duid, Ipv6Addr)> = Vec::new();
            let mut buf = [0u8; 1500];
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let (duid, bytes) = rapid_solicit(n);
                let _ = socket.send_to(&bytes, target);
                // Until this client has its Reply (or the test ends), retry the same Solicit.
                while let Ok((len, _)) = socket.recv_from(&mut buf) {
                    let Ok(packet) = decode(&buf[..len]) else {
                        continue;
                    };
                    let Some(reply) = packet.as_message() else {
                        continue;
                    };
                    if reply.msg_type != 7 || reply.client_id() != Some(&duid) {
                        continue;
                    }
                    if let Some(addr) = reply.ia_nas().next().and_then(|ia| ia.ia_addrs().next()) {
                        told.push((duid.clone(), addr.addr));
                        n += 1;
                    }
                    break;
                }
            }
            told
        })
    };

    std::thread::sleep(Duration::from_millis(2500));
    lab.kill9();
    std::thread::sleep(Duration::from_millis(500));
    lab.start_server();
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::SeqCst);
    let told = recorder.join().unwrap();
    let out = perfdhcp.wait_with_output().unwrap();
    let perf = String::from_utf8_lossy(&out.stdout);
    assert!(told.len() > 20, "only {} clients were served", told.len());

    // No address was told to two clients.
    let mut owner: HashMap<Ipv6Addr, &Duid> = HashMap::new();
    for (duid, addr) in &told {
        if let Some(first) = owner.insert(*addr, duid) {
            assert_eq!(first, duid, "{addr} was given to two clients");
        }
    }
    assert!(!perf.contains("non unique addresses: 1"), "{perf}");

    // Every lease a client was told about survived the kill, with its owner.
    let store = SqliteStore::open(lab.lease_db()).unwrap();
    for (duid, addr) in &told {
        let lease = store
            .get_by_address(*addr)
            .unwrap()
            .unwrap_or_else(|| panic!("the lease of {addr} was lost"));
        assert_eq!(&lease.duid, duid.as_bytes(), "{addr} changed owner");
        assert_eq!(lease.state, LeaseState::Assigned);
    }
    eprintln!("{} leases told and found after kill -9", told.len());
}

/// A second server on an interface already served (another state directory) must not share
/// port 547 with the first and hand out the same pool on its own: it stops, saying why.
#[test]
fn a_second_server_on_the_same_interface_is_refused() {
    // No leasequery listener, so that port 547 of the interface is the only thing they share.
    let config = lab_config(&[("allow", "[]")], "");
    let lab = LabServer::start("second-server", &config);
    let other = std::env::temp_dir().join(format!(
        "dhcp-user-test-second-server-b-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&other);
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("server.toml"), &config).unwrap();
    let out = lab
        .server_ns
        .command("timeout")
        .arg("20")
        .arg(server_common::dhcp_user_binary())
        .args(["serve", "--config"])
        .arg(other.join("server.toml"))
        .args(["--iface", &lab.link.a.ifname, "--xdp", "off", "--state-dir"])
        .arg(&other)
        .output()
        .expect("running dhcp-user serve");
    let _ = std::fs::remove_dir_all(&other);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the second server must stop at once (124: it kept running); stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("already serves this interface"),
        "stderr:\n{stderr}"
    );
    // The first one is still serving.
    lab.stats();
}
