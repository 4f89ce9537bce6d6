//! A configuration swapped while serving (`Server::swap_config`, what a reload does): the next
//! decision uses the new one whole.

use super::*;

/// The DNS servers of a reply.
fn dns_of(reply: &[u8]) -> Vec<Ipv6Addr> {
    let packet = decode(reply).unwrap();
    packet
        .as_message()
        .unwrap()
        .options
        .iter()
        .find_map(|o| match o {
            DhcpOption::DnsServers(list) => Some(list.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The address of a reply's first IA_NA, and its valid lifetime.
fn address_of(reply: &[u8]) -> (Ipv6Addr, u32) {
    let packet = decode(reply).unwrap();
    let ia = packet
        .as_message()
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .clone();
    let a = ia.ia_addrs().next().unwrap();
    (a.addr, a.valid)
}

/// After a swap, a Renew is answered with the new DNS servers; a new pool hands out addresses;
/// a Renew of a lease the new pools no longer hold gets NoBinding (RFC 8415 §18.3.4), the rule
/// the docs give for leases outside changed pools: the client asks again and gets a new one.
#[tokio::test]
async fn a_swapped_configuration_serves_the_next_request() {
    let dir = temp_dir("swap");
    let server = open_server(&dir);
    let sid = DhcpOption::ServerId(server.server_duid().clone());
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit, ORO()],
    );
    let reply = handle_bytes(&server, solicit).await.unwrap();
    let (granted, _) = address_of(&reply);
    assert_eq!(dns_of(&reply), [addr("2001:db8:1::53")]);

    let renew = |address: Ipv6Addr| {
        msg(
            MSG_RENEW,
            &client(1),
            vec![sid.clone(), ia_na(1, &[&address.to_string()]), ORO()],
        )
    };
    let new_dns = CONFIG.replace("2001:db8:1::53", "2001:db8:1::5353");
    let mut config = Config::parse(&new_dns, "t").unwrap();
    config.state_dir = dir.clone();
    server.swap_config(config, &[]);
    let reply = handle_bytes(&server, renew(granted)).await.unwrap();
    assert_eq!(dns_of(&reply), [addr("2001:db8:1::5353")], "the new DNS");
    assert_eq!(address_of(&reply), (granted, 2000), "the lease renewed");

    // The pool moved away from the granted address, and a second pool was added.
    let moved = new_dns.replace(
        r#"pools = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]"#,
        r#"pools = [{ low = "2001:db8:1::400", high = "2001:db8:1::4ff" }, { low = "2001:db8:1::900", high = "2001:db8:1::9ff" }]"#,
    );
    assert_ne!(moved, new_dns);
    let mut config = Config::parse(&moved, "t").unwrap();
    config.state_dir = dir.clone();
    server.swap_config(config, &[]);
    let reply = handle_bytes(&server, renew(granted)).await.unwrap();
    let packet = decode(&reply).unwrap();
    let ia = packet
        .as_message()
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .clone();
    assert_eq!(
        ia.status_code().map(|s| s.code),
        Some(STATUS_NO_BINDING),
        "outside the pools now: {ia:?}"
    );
    let fresh = msg(
        MSG_SOLICIT,
        &client(2),
        vec![
            ia_na(1, &["2001:db8:1::950"]),
            DhcpOption::RapidCommit,
            ORO(),
        ],
    );
    let reply = handle_bytes(&server, fresh).await.unwrap();
    assert_eq!(
        address_of(&reply).0,
        addr("2001:db8:1::950"),
        "the new pool"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
