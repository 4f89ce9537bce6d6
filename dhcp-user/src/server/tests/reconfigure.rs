//! Reconfigure Accept and the reconfigure key in the controller's replies (RFC 8415 20.4.1),
//! and who may be sent a Reconfigure (18.3.11).

use super::*;
use crate::server::reconfigure::{ReconfigureSelector, TYPE_KEY};

fn with_reconfigure() -> World {
    World::with_config(&CONFIG.replace(
        "rapid-commit = true\n",
        "rapid-commit = true\nreconfigure = true\n",
    ))
}

/// The key of a reply's Authentication option (protocol 3, HMAC-MD5, RDM 0, type 1).
fn key_in(reply: &Message) -> Option<[u8; 16]> {
    reply.options.iter().find_map(|o| match o {
        DhcpOption::Auth(body) if body.len() == 28 && body[..3] == [3, 1, 0] => {
            assert_eq!(body[11], TYPE_KEY);
            Some(body[12..].try_into().unwrap())
        }
        _ => None,
    })
}

fn rapid_solicit(n: u8, accept: bool) -> Message {
    let mut options = vec![ia_na(1, &[]), DhcpOption::RapidCommit];
    if accept {
        options.push(DhcpOption::ReconfAccept);
    }
    msg(MSG_SOLICIT, &client(n), options)
}

/// A client that sends Reconfigure Accept gets Reconfigure Accept and its key last in the
/// Reply, and the key is stored with its lease, with its source address.
#[test]
fn reconfigure_accept_gets_a_key_stored_with_the_lease() {
    let mut world = with_reconfigure();
    let (decision, reply) = world.decide(rapid_solicit(1, true));
    let reply = reply.unwrap();
    let key = key_in(&reply).expect("an Authentication option with the key");
    let tail: Vec<u16> = codes(&reply).into_iter().rev().take(2).collect();
    assert_eq!(tail, [OPT_AUTH, OPT_RECONF_ACCEPT]);
    let LeaseChange::Upsert(lease) = &decision.changes[0] else {
        panic!("no upsert");
    };
    let stored = lease.reconfigure.unwrap();
    assert_eq!(stored.key, key);
    assert_eq!(stored.reply_to, addr("fe80::1"));
}

/// The key is chosen once: a Renew with Reconfigure Accept gets the same key again.
#[test]
fn the_key_is_kept_on_later_replies() {
    let mut world = with_reconfigure();
    let (_, reply) = world.decide(rapid_solicit(1, true));
    let reply = reply.unwrap();
    let first = key_in(&reply).unwrap();
    let address = reply
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    let renew = msg(
        MSG_RENEW,
        &client(1),
        vec![
            DhcpOption::ServerId(server_duid()),
            ia_na(1, &[&address.to_string()]),
            DhcpOption::ReconfAccept,
        ],
    );
    let (_, again) = world.decide(renew);
    assert_eq!(key_in(&again.unwrap()), Some(first));
}

/// Without Reconfigure Accept, or where `reconfigure` is off, no key is given or stored.
#[test]
fn no_key_without_reconfigure_accept_or_config() {
    let mut world = with_reconfigure();
    let (decision, reply) = world.decide(rapid_solicit(1, false));
    assert_eq!(key_in(&reply.unwrap()), None);
    assert!(decision.changes.iter().all(|c| match c {
        LeaseChange::Upsert(lease) => lease.reconfigure.is_none(),
        _ => true,
    }));
    let mut world = World::new();
    let (decision, reply) = world.decide(rapid_solicit(2, true));
    let reply = reply.unwrap();
    assert_eq!(key_in(&reply), None);
    assert!(!codes(&reply).contains(&OPT_RECONF_ACCEPT));
    assert!(decision.changes.iter().all(|c| match c {
        LeaseChange::Upsert(lease) => lease.reconfigure.is_none(),
        _ => true,
    }));
}

/// An Advertise commits nothing and carries no key.
#[test]
fn an_advertise_carries_no_key() {
    let mut world = with_reconfigure();
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::ReconfAccept],
    );
    let (_, reply) = world.decide(solicit);
    let reply = reply.unwrap();
    assert_eq!(reply.msg_type, MSG_ADVERTISE);
    assert_eq!(key_in(&reply), None);
}

/// RFC 8415 18.3.11: the server MUST NOT send a Reconfigure to a client that did not send
/// Reconfigure Accept: `reconfigure --duid` of such a client is refused, none is started.
#[tokio::test]
async fn no_reconfigure_to_a_client_without_a_key() {
    let dir = temp_dir("reconf-nokey");
    let server = open_server(&dir);
    handle_bytes(&server, rapid_solicit(1, true)).await.unwrap();
    let refused = server.reconfigure(
        &ReconfigureSelector::Duid(client(1).as_bytes().to_vec()),
        crate::config::ReconfigureMessage::Renew,
    );
    assert!(
        matches!(
            refused,
            Err(crate::server::operator::OperatorError::Conflict(_))
        ),
        "{refused:?}"
    );
    let unknown = server.reconfigure(
        &ReconfigureSelector::Duid(client(9).as_bytes().to_vec()),
        crate::config::ReconfigureMessage::Renew,
    );
    assert!(matches!(
        unknown,
        Err(crate::server::operator::OperatorError::NotFound(_))
    ));
    let subnet = server.reconfigure(
        &ReconfigureSelector::Subnet(7),
        crate::config::ReconfigureMessage::Renew,
    );
    assert!(matches!(subnet, Ok(0)), "{subnet:?}");
    assert!(server.reconfigure_stats().snapshot().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The key survives a restart: the store keeps it with the lease.
#[tokio::test]
async fn the_key_is_persisted() {
    let dir = temp_dir("reconf-persist");
    let text = CONFIG.replace(
        "rapid-commit = true\n",
        "rapid-commit = true\nreconfigure = true\n",
    );
    let mut config = Config::parse(&text, "t").unwrap();
    config.state_dir = dir.clone();
    let server = Server::open(config, &[]).unwrap();
    server.set_direct_subnet("eth1", Some(0));
    let reply = handle_bytes(&server, rapid_solicit(1, true)).await.unwrap();
    let key = key_in(decode(&reply).unwrap().as_message().unwrap()).unwrap();
    drop(server);
    let store = SqliteStore::open(dir.join(crate::server::LEASE_DB_FILE)).unwrap();
    let leases: Vec<Lease> =
        crate::store::LeasePages::new(&store, crate::store::LeaseFilter::All, 10)
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(leases[0].reconfigure.unwrap().key, key);
    let _ = std::fs::remove_dir_all(&dir);
}
