//! Server -- ISC `dhcrelay -6` -- client: the relay in the lab server's client namespace, the
//! clients in a third namespace behind it.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use dhcp_lab::{Lab, Namespace, VethPair};

use super::LabServer;

/// Server -- relay -- client, three namespaces; the server runs with the fast path.
pub struct RelayLab {
    /// The server, its namespace and the server--relay link (`link.b` is the relay's upstream).
    pub server: LabServer,
    /// Where dhclient runs, behind the relay.
    pub client_ns: Namespace,
    /// relay--client (`a` the relay's lower interface, `b` the client's).
    pub lower: VethPair,
    pub relay: Option<Child>,
    pub _lab: Lab,
}

impl RelayLab {
    /// Starts the server (fast path on) on `config`, then `dhcrelay -6` relaying to `upstream`
    /// (e.g. `ff02::1:2%IFACE`, or the bare interface for its default, ff05::1:3). The clients'
    /// link behind the relay is 2001:db8:2::/64.
    pub fn start(name: &str, config: &str, upstream: impl Fn(&str) -> String) -> RelayLab {
        RelayLab::start_with_interface_id(name, config, upstream, None)
    }

    /// As [`RelayLab::start`], dhcrelay adding an Interface-ID (`-I`) of the lower interface
    /// given index `interface_id` (`-l IFNAME#INDEX`; ISC dhcrelay sends the index as a C
    /// `int`, 4 bytes in host order).
    pub fn start_with_interface_id(
        name: &str,
        config: &str,
        upstream: impl Fn(&str) -> String,
        interface_id: Option<u32>,
    ) -> RelayLab {
        // LabServer's client namespace is the relay here: its veth end faces the server, with
        // full UDP checksums (offload off) as a relay behind a real NIC sends them.
        let server = LabServer::start_with(name, config, true);
        let lab = Lab::new();
        let client_ns = lab.namespace("cli").expect("client namespace");
        let lower = lab
            .link(
                &server.client_ns,
                Some("2001:db8:2::1/64"),
                &client_ns,
                None,
            )
            .expect("relay--client veth");
        let mut relay_lab = RelayLab {
            server,
            client_ns,
            lower,
            relay: None,
            _lab: lab,
        };
        let log = std::fs::File::create(relay_lab.relay_log()).unwrap();
        let pid_file = relay_lab.server.state_dir.join("dhcrelay.pid");
        let (flags, lower) = match interface_id {
            Some(index) => (vec!["-I"], format!("{}#{index}", relay_lab.lower.a.ifname)),
            None => (Vec::new(), relay_lab.lower.a.ifname.clone()),
        };
        let child = relay_lab
            .server
            .client_ns
            .command("dhcrelay")
            .args(["-6", "-d", "-pf"])
            .arg(&pid_file)
            .args(flags)
            .args(["-l", &lower])
            .args(["-u", &upstream(&relay_lab.server.link.b.ifname)])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dhcrelay (isc-dhcp-relay)");
        relay_lab.relay = Some(child);
        // dhcrelay is ready once it has opened its sockets; its log says so.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(relay_lab.relay_log())
            .unwrap_or_default()
            .contains("Sending on")
        {
            assert!(
                Instant::now() < deadline,
                "dhcrelay did not come up:\n{}",
                relay_lab.relay_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        relay_lab
    }

    pub fn relay_log(&self) -> PathBuf {
        self.server.state_dir.join("dhcrelay.log")
    }

    pub fn relay_text(&self) -> String {
        std::fs::read_to_string(self.relay_log()).unwrap_or_default()
    }
}

impl Drop for RelayLab {
    fn drop(&mut self) {
        if let Some(mut relay) = self.relay.take() {
            let _ = relay.kill();
            let _ = relay.wait();
        }
        if std::thread::panicking() {
            eprintln!("dhcrelay log:\n{}", self.relay_text());
        }
    }
}
