//! The fuzz targets' seeds (tests/fuzz/seeds, `cargo xtask fuzz`) are the test frames: the
//! hand-built messages of the fast-path and leasequery tests. This test fails when a frame
//! changes and its seed does not; `FUZZ_SEEDS_WRITE=1 cargo test -p tests --test fuzz_seeds`
//! rewrites them. (The codec's golden vectors and the configs are written by dhcp-user's own
//! unit tests, `golden_vectors_are_fuzz_seeds` and `good_configs_are_fuzz_seeds`.)

mod fastpath_common;
mod leasequery_common;

use std::path::Path;

use dhcp_common::dhcpv6::*;
use fastpath_common::*;

fn seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let path = dir.join(name);
    if std::env::var_os("FUZZ_SEEDS_WRITE").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    assert!(
        std::fs::read(&path).unwrap_or_default() == bytes,
        "fuzz seed {} is stale: FUZZ_SEEDS_WRITE=1 cargo test -p tests --test fuzz_seeds \
         rewrites it",
        path.display()
    );
}

/// DHCPv6 messages of the fast-path tests, direct and relayed.
fn client_messages() -> Vec<(&'static str, Vec<u8>)> {
    let solicit = msg(
        MSG_SOLICIT,
        &[
            client_id(),
            elapsed(),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
            opt(OPT_RAPID_COMMIT, &[]),
            oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
        ],
    );
    let info = msg(
        MSG_INFORMATION_REQUEST,
        &[client_id(), elapsed(), oro(&[OPT_DNS_SERVERS])],
    );
    vec![
        ("solicit", solicit.clone()),
        ("renew", renew()),
        ("renew_reply", renew_reply()),
        ("information_request", info),
        (
            "relay_forw_solicit",
            relay_forw(solicit.clone(), Some(b"eth0")),
        ),
        ("relay_forw_renew", relay_forw(renew(), None)),
        ("relay_repl_reply", relay_repl(renew_reply(), Some(b"eth0"))),
        (
            "wire_relay_forw",
            wire::relay_forw(&solicit, relay_addr(), client_ll(), Some(b"port1")),
        ),
        (
            "two_relays",
            relay_forw(
                wire::relay_forw(&renew(), relay_addr(), client_ll(), None),
                Some(b"up"),
            ),
        ),
    ]
}

/// LEASEQUERY and ACTIVELEASEQUERY messages of the leasequery tests.
fn queries() -> Vec<(&'static str, Vec<u8>)> {
    use leasequery_common::{iaaddr_opt, query, LINK_A, REQUESTOR_DUID};
    let xid = [1, 2, 3];
    let unspecified = std::net::Ipv6Addr::UNSPECIFIED;
    let relay_data_oro = oro(&[OPT_LQ_RELAY_DATA]);
    vec![
        (
            "lq_by_address",
            query(
                MSG_LEASEQUERY,
                xid,
                QUERY_BY_ADDRESS,
                unspecified,
                &iaaddr_opt(na_addr()),
                &[],
            ),
        ),
        (
            "lq_by_clientid",
            query(
                MSG_LEASEQUERY,
                xid,
                QUERY_BY_CLIENTID,
                unspecified,
                &opt(OPT_CLIENTID, CLIENT_DUID),
                &relay_data_oro,
            ),
        ),
        (
            "lq_by_relay_id",
            query(
                MSG_LEASEQUERY,
                xid,
                QUERY_BY_RELAY_ID,
                unspecified,
                &opt(OPT_RELAY_ID, &REQUESTOR_DUID),
                &[],
            ),
        ),
        (
            "lq_by_link_address",
            query(MSG_LEASEQUERY, xid, QUERY_BY_LINK_ADDRESS, LINK_A, &[], &[]),
        ),
        (
            "lq_by_remote_id",
            query(
                MSG_LEASEQUERY,
                xid,
                QUERY_BY_REMOTE_ID,
                unspecified,
                &opt(OPT_REMOTE_ID, &[0, 0, 0x0d, 0xe9, b'p', b'1']),
                &[],
            ),
        ),
        (
            "active_all",
            [
                vec![MSG_ACTIVELEASEQUERY, 1, 2, 3],
                opt(OPT_CLIENTID, &REQUESTOR_DUID),
                opt(
                    OPT_LQ_START_TIME,
                    &leasequery_common::lq_time(1_700_000_000),
                ),
            ]
            .concat(),
        ),
        (
            "active_by_link",
            query(
                MSG_ACTIVELEASEQUERY,
                xid,
                QUERY_BY_LINK_ADDRESS,
                LINK_A,
                &relay_data_oro,
                &[],
            ),
        ),
    ]
}

#[test]
fn fuzz_seeds_are_the_test_frames() {
    for (name, bytes) in client_messages() {
        seed("dhcpv6_decode", name, &bytes);
    }
    // leasequery_frame: a chunk-count byte, chunk sizes, then the stream.
    let mut stream = Vec::new();
    for (name, bytes) in queries() {
        seed("dhcpv6_decode", name, &bytes);
        let framed = leasequery_common::frame(&bytes);
        seed("leasequery_frame", name, &[&[0][..], &framed].concat());
        stream.extend(framed);
    }
    seed(
        "leasequery_frame",
        "all_queries_one_stream",
        &[&[0][..], &stream].concat(),
    );
    seed(
        "leasequery_frame",
        "all_queries_in_chunks",
        &[&[3, 1, 7, 40][..], &stream].concat(),
    );
    for (name, line) in [
        ("bindings", r#"{"command":"bindings"}"#),
        ("stats", r#"{"command":"stats"}"#),
        ("clear_all", r#"{"command":"clear","all":true}"#),
        (
            "clear_duid",
            r#"{"command":"clear","duid":"00:03:00:01:02:c1:00:00:00:01"}"#,
        ),
        (
            "clear_address",
            r#"{"command":"clear","address":"2001:db8:1::1234"}"#,
        ),
        (
            "clear_two",
            r#"{"command":"clear","duid":"0003","all":true}"#,
        ),
    ] {
        seed("control_protocol", name, line.as_bytes());
    }
}
