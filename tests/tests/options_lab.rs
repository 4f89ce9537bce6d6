//! Configured options with real clients: ISC dhclient and dhcpcd get the subnet's NTP server
//! (56, RFC 5908), AFTR-Name (64, RFC 6334) and vendor options (17, always-send), each as the
//! client records them (dhclient's lease file, dhcpcd's hook environment), and their renewals,
//! carrying the same options, are answered by the XDP program: the controller never sees them;
//! so are dhclient's when its pool has an option of its own.
//! With client classes, dhcpcd sending a CPE vendor class gets the class's pool and options
//! while dhclient, sending none, gets the default pool; the class client's renewals, carrying
//! the same vendor class, are answered by the XDP program with the class's options.

mod server_common;

use std::time::Duration;

use dhcp_common::stat;
use server_common::{dhclient_files, lab_config, LabServer};

/// The options of the lab's subnet, after its own keys.
const OPTIONS: &str = r#"
[[subnet.option]]
name = "ntp-server"
value = [{ server = "2001:db8:1::123" }]
[[subnet.option]]
name = "aftr-name"
value = "aftr.lab.example"
[[subnet.option]]
name = "vendor-opts"
value = { enterprise = 4491, options = [{ code = 1, text = "lab" }] }
always-send = true
"#;

fn config() -> String {
    lab_config(
        &[
            ("preferred-lifetime", "8"),
            ("valid-lifetime", "16"),
            ("renew-timer", "2"),
            ("rebind-timer", "4"),
        ],
        OPTIONS,
    )
}

/// The fast path's pinned counter `index`.
fn xdp(lab: &LabServer, index: u32) -> u64 {
    dhcp_user::fastpath::pinned_stats(&lab.pin_root())
        .expect("pinned counters")
        .expect("the fast path is pinned")[index as usize]
        .1
        .packets
}

fn controller_renews(lab: &LabServer) -> u64 {
    lab.stats()
        .counters
        .received
        .get("renew")
        .copied()
        .unwrap_or(0)
}

/// dhclient's configuration: NTP and AFTR-Name defined by code (ISC dhclient has no names for
/// them), asked for with DNS and the vendor options.
const DHCLIENT_CONF: &str = "option dhcp6.ntp-server code 56 = string;\n\
option dhcp6.aftr-name code 64 = domain-list;\n\
request dhcp6.name-servers, dhcp6.ntp-server, dhcp6.aftr-name, dhcp6.vendor-opts;\n";

/// Runs dhclient once on `lab` with [`DHCLIENT_CONF`] (files named `name`) and returns its
/// lease file.
fn dhclient_lease_with_options(lab: &LabServer, name: &str) -> String {
    let conf = lab.state_dir.join("dhclient.conf");
    std::fs::write(&conf, DHCLIENT_CONF).unwrap();
    let out = lab.dhclient(name, &["-cf", conf.to_str().unwrap(), "-1"]);
    assert!(
        out.status.success(),
        "dhclient -6 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (leases, _) = dhclient_files(&lab.state_dir, name);
    std::fs::read_to_string(&leases).unwrap()
}

/// dhclient receives the NTP server, AFTR-Name and vendor options; its renewals go to XDP.
#[test]
fn dhclient_gets_ntp_aftr_and_vendor_options_and_renews_in_xdp() {
    let lab = LabServer::start_with("opt-dhclient", &config(), true);
    let lease = dhclient_lease_with_options(&lab, "opt");
    // NTP: sub-option 1 (0:1), length 16 (0:10), 2001:db8:1::123.
    assert!(
        lease.contains("option dhcp6.ntp-server 0:1:0:10:20:1:d:b8:0:1:0:0:0:0:0:0:0:0:1:23;"),
        "{lease}"
    );
    assert!(
        lease.contains("option dhcp6.aftr-name \"aftr.lab.example.\";"),
        "{lease}"
    );
    // Enterprise 4491 (0:0:11:8b), sub-option 1 "lab".
    assert!(
        lease.contains("option dhcp6.vendor-opts 0:0:11:8b:0:1:0:3:6c:61:62;"),
        "{lease}"
    );
    renewals_in_xdp_then_release(&lab, "opt");
}

/// Two of dhclient's renewals answered by XDP, none by the controller; then dhclient (`tag`)
/// releases.
fn renewals_in_xdp_then_release(lab: &LabServer, tag: &str) {
    let before = xdp(lab, stat::TX_RENEW);
    lab.wait_until(
        Duration::from_secs(30),
        "two renewals answered by XDP",
        || xdp(lab, stat::TX_RENEW) >= before + 2,
    );
    assert_eq!(controller_renews(lab), 0, "{}", lab.xdp_counters());
    let conf = lab.state_dir.join("dhclient.conf");
    let _ = lab.dhclient(tag, &["-cf", conf.to_str().unwrap(), "-r"]);
}

/// The lab's pool with an SNTP server (31) of its own over the subnet's, both always sent.
fn pool_option_config() -> String {
    lab_config(
        &[
            ("preferred-lifetime", "8"),
            ("valid-lifetime", "16"),
            ("renew-timer", "2"),
            ("rebind-timer", "4"),
            (
                "pools",
                r#"[{ low = "2001:db8:1::1000", high = "2001:db8:1::ffff", option = [{ name = "sntp-servers", value = "2001:db8:1::7b", always-send = true }] }]"#,
            ),
        ],
        "[[subnet.option]]\nname = \"sntp-servers\"\nvalue = \"2001:db8:1::7a\"\nalways-send = true\n",
    )
}

/// dhclient receives its pool's SNTP server, not the subnet's, and its renewals, whose replies
/// carry the pool's, are answered by XDP (from the binding's option set): the controller never
/// sees them.
#[test]
fn dhclient_gets_its_pools_option_and_renews_in_xdp() {
    let lab = LabServer::start_with("opt-pool", &pool_option_config(), true);
    let lease = dhclient_lease_with_options(&lab, "opt-pool");
    assert!(
        lease.contains("option dhcp6.sntp-servers 2001:db8:1::7b;"),
        "{lease}"
    );
    renewals_in_xdp_then_release(&lab, "opt-pool");
    assert_eq!(xdp(&lab, stat::PASS_BINDING_OPTIONS), 0);
}

/// dhcpcd's configuration: DHCPv6 only, an address at once (no Router Advertisement needed),
/// NTP and AFTR-Name asked for by their dhcpcd names, the vendor's sub-option named.
const DHCPCD_CONF: &str = "ipv6only\nnoipv6rs\nia_na 1\n\
option dhcp6_ntp_server\noption dhcp6_aftr_name\noption dhcp6_name_servers\n\
vendopt 4491 encap lab\nencap 1 string cm\n";

/// A hook script that appends each run's environment to `env` in the state directory.
fn dhcpcd_hook(lab: &LabServer) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = lab.state_dir.join("dhcpcd-hook");
    let env = lab.state_dir.join("dhcpcd.env");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv >> '{}'\necho --- >> '{}'\n",
            env.display(),
            env.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// dhcpcd receives the NTP server, AFTR-Name and vendor options (its hook's environment); its
/// renewals go to XDP.
#[test]
fn dhcpcd_gets_ntp_aftr_and_vendor_options_and_renews_in_xdp() {
    let lab = LabServer::start_with("opt-dhcpcd", &config(), true);
    let hook = dhcpcd_hook(&lab);
    let _dhcpcd = lab.dhcpcd(DHCPCD_CONF, &hook);
    let env_path = lab.state_dir.join("dhcpcd.env");
    let dhcpcd_log =
        || std::fs::read_to_string(lab.state_dir.join("dhcpcd.log")).unwrap_or_default();
    lab.wait_until(Duration::from_secs(40), "dhcpcd to bind", || {
        std::fs::read_to_string(&env_path).is_ok_and(|env| env.contains("reason=BOUND6"))
    });
    let env = std::fs::read_to_string(&env_path).unwrap();
    let bound = env
        .split("---")
        .find(|run| run.contains("reason=BOUND6"))
        .unwrap();
    for want in [
        "new_dhcp6_ntp_server_addr=2001:db8:1::123",
        "new_dhcp6_aftr_name=aftr.lab.example",
        "new_dhcp6_vivso_enterprise_number=4491",
        "new_dhcp6_lab_cm=lab",
    ] {
        assert!(
            bound.contains(want),
            "{want} in:\n{bound}\n{}",
            dhcpcd_log()
        );
    }
    let before = xdp(&lab, stat::TX_RENEW);
    lab.wait_until(
        Duration::from_secs(30),
        "two dhcpcd renewals answered by XDP",
        || xdp(&lab, stat::TX_RENEW) >= before + 2,
    );
    assert_eq!(
        controller_renews(&lab),
        0,
        "{}\n{}",
        lab.xdp_counters(),
        dhcpcd_log()
    );
}

/// The lab subnet with a pool kept for the class `acme-cpe` (a vendor class of enterprise 4491
/// starting `ACME-CPE`), whose AFTR-Name replaces the subnet's.
fn class_config() -> String {
    let pools = "[\n  { low = \"2001:db8:1::c000\", high = \"2001:db8:1::c0ff\", \
                 client-classes = [\"acme-cpe\"] },\n  \
                 { low = \"2001:db8:1::1000\", high = \"2001:db8:1::1fff\" },\n]";
    let mut text = lab_config(
        &[
            ("preferred-lifetime", "8"),
            ("valid-lifetime", "16"),
            ("renew-timer", "2"),
            ("rebind-timer", "4"),
            ("pools", pools),
        ],
        OPTIONS,
    );
    text.push_str(
        "[[client-classes]]\nname = \"acme-cpe\"\n\
         vendor-class = { enterprise = 4491, prefix = \"ACME-CPE\" }\n\
         [[client-classes.option]]\nname = \"aftr-name\"\nvalue = \"aftr.acme.example\"\n",
    );
    text
}

/// A client class by vendor class: dhclient (no vendor class of 4491) gets the default pool
/// and the subnet's AFTR-Name; dhcpcd sending `vendclass 4491 ACME-CPE-X1` gets the class's
/// pool and AFTR-Name, and keeps them on its renewals, which XDP answers (they carry the
/// vendor class the controller judged its classes on).
#[test]
fn a_vendor_class_selects_the_pool_and_options_of_dhcpcd_not_dhclient() {
    let lab = LabServer::start_with("opt-class", &class_config(), true);
    let lease = dhclient_lease_with_options(&lab, "cls");
    assert!(lease.contains("iaaddr 2001:db8:1::1"), "{lease}");
    assert!(
        lease.contains("option dhcp6.aftr-name \"aftr.lab.example.\";"),
        "{lease}"
    );
    // Released, so that dhcpcd has the client port to itself.
    let conf = lab.state_dir.join("dhclient.conf");
    let _ = lab.dhclient("cls", &["-cf", conf.to_str().unwrap(), "-r"]);

    let hook = dhcpcd_hook(&lab);
    // A dhcpcd of its own (`dhcpcd_on`): no DUID or lease of an earlier one to Confirm.
    let _dhcpcd = lab.dhcpcd(&format!("{DHCPCD_CONF}vendclass 4491 ACME-CPE-X1\n"), &hook);
    let env_path = lab.state_dir.join("dhcpcd.env");
    let dhcpcd_log =
        || std::fs::read_to_string(lab.state_dir.join("dhcpcd.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !std::fs::read_to_string(&env_path).is_ok_and(|env| env.contains("reason=BOUND6")) {
        assert!(
            std::time::Instant::now() < deadline,
            "dhcpcd did not bind:\n{}\n{}\n{}",
            dhcpcd_log(),
            lab.xdp_counters(),
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let renews = controller_renews(&lab);
    lab.wait_until(
        Duration::from_secs(30),
        "two dhcpcd renewals answered in XDP",
        || {
            std::fs::read_to_string(&env_path)
                .is_ok_and(|env| env.matches("reason=RENEW6").count() >= 2)
        },
    );
    let env = std::fs::read_to_string(&env_path).unwrap();
    for run in env
        .split("---")
        .filter(|run| run.contains("reason=BOUND6") || run.contains("reason=RENEW6"))
    {
        for want in [
            "new_dhcp6_ia_na1_ia_addr1=2001:db8:1::c0",
            "new_dhcp6_aftr_name=aftr.acme.example",
        ] {
            assert!(run.contains(want), "{want} in:\n{run}\n{}", dhcpcd_log());
        }
    }
    assert!(xdp(&lab, stat::TX_RENEW) >= 2, "{}", lab.xdp_counters());
    assert_eq!(controller_renews(&lab), renews, "{}", lab.xdp_counters());
    assert_eq!(
        xdp(&lab, stat::PASS_CLASS_INPUTS),
        0,
        "{}",
        lab.xdp_counters()
    );
}

/// dhcpcd asking for an IA_PD it does not delegate to an interface (`ia_pd 2`) does not ask for
/// Prefix Exclude (67), so it binds a prefix of a pd-pool with `excluded-prefix` and its
/// renewals of both IAs are answered in XDP. (Delegating to an interface it asks for 67, and
/// dhcpcd 9.4.1's Request after such an Advertise is malformed: docs/configuration.md.)
#[test]
fn dhcpcd_binds_a_prefix_of_a_pool_with_an_exclude_and_renews_in_xdp() {
    let text = config().replace(
        r#"pd-pools = [{ prefix = "2001:db8:8000::/40", delegated-length = 56 }]"#,
        r#"pd-pools = [{ prefix = "2001:db8:8000::/40", delegated-length = 56, excluded-prefix = "2001:db8:8000:1::/64" }]"#,
    );
    assert!(text.contains("excluded-prefix"), "the lab's pd-pool");
    let lab = LabServer::start_with("opt-dhcpcd-pd", &text, true);
    let hook = dhcpcd_hook(&lab);
    let _dhcpcd = lab.dhcpcd("ipv6only\nnoipv6rs\nia_na 1\nia_pd 2\n", &hook);
    let env_path = lab.state_dir.join("dhcpcd.env");
    let renews = controller_renews(&lab);
    lab.wait_until(
        Duration::from_secs(40),
        "dhcpcd bound a prefix and renewed it twice in XDP",
        || {
            std::fs::read_to_string(&env_path).is_ok_and(|env| {
                env.contains("new_dhcp6_ia_pd1_prefix1=2001:db8:8")
                    && env.matches("reason=RENEW6").count() >= 2
            })
        },
    );
    assert!(xdp(&lab, stat::TX_RENEW) >= 2, "{}", lab.xdp_counters());
    assert_eq!(controller_renews(&lab), renews, "{}", lab.xdp_counters());
}
