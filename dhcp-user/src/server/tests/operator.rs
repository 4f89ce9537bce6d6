//! Reservations made at run time (`operator_add_reservation`, `operator_delete_reservation`):
//! what the controller does with a client that holds a lease when it is given one, and what
//! the fast path's map sync is told, and when.

use std::sync::{Mutex, Weak};

use super::*;
use crate::config::{Reservation, ReservedClient};
use crate::server::operator::{ReservationFollower, ReservationSpec};

/// One change a follower was told of: added, the clients, whether the allocator honoured the
/// reservation then.
type Call = (bool, Option<Vec<Vec<u8>>>, bool);

/// A follower that records each change, and whether the allocator honoured the reservation
/// when it was told.
#[derive(Default)]
struct Recorder {
    server: Mutex<Weak<Server>>,
    calls: Mutex<Vec<Call>>,
}

impl ReservationFollower for Recorder {
    fn reservation_changed(
        &self,
        _subnet_id: u32,
        reservation: &Reservation,
        added: bool,
        clients: Option<&[Vec<u8>]>,
    ) -> Result<(), anyhow::Error> {
        let server = self.server.lock().unwrap().upgrade().unwrap();
        let key = LeaseKey::na(reservation.address.unwrap());
        let honoured =
            server.lock_state().allocator.reservations().owner(&key) == Some(&reservation.client);
        self.calls
            .lock()
            .unwrap()
            .push((added, clients.map(<[Vec<u8>]>::to_vec), honoured));
        Ok(())
    }
}

/// The address of a reply's first IA_NA.
fn address_of(reply: &[u8]) -> Ipv6Addr {
    let packet = decode(reply).unwrap();
    let message = packet.as_message().unwrap();
    let ia = message.ia_nas().next().unwrap().clone();
    let address = ia.ia_addrs().next().unwrap().addr;
    address
}

/// A client holding a pool lease is given a reservation of another address at run time (no
/// longer refused): the fast path's follower is told first (with the client's DUID, before
/// the allocator honours it), the client's Renew still extends its lease, and its next
/// Solicit is offered the reservation. Deleted, the follower is told after the allocator
/// forgot it.
#[tokio::test]
async fn a_reservation_for_a_client_holding_a_lease_is_taken_and_the_fast_path_told_first() {
    let dir = temp_dir("operator-resv");
    let server = open_server(&dir);
    let recorder = Arc::new(Recorder::default());
    *recorder.server.lock().unwrap() = Arc::downgrade(&server);
    server.follow_reservations(recorder.clone());
    let sid = DhcpOption::ServerId(server.server_duid().clone());
    let solicit = |rapid: bool| {
        let mut options = vec![ia_na(1, &[])];
        if rapid {
            options.push(DhcpOption::RapidCommit);
        }
        msg(MSG_SOLICIT, &client(3), options)
    };
    let granted = address_of(&handle_bytes(&server, solicit(true)).await.unwrap());
    let reserved = addr("2001:db8:1::77");
    assert_ne!(granted, reserved);
    let spec = ReservationSpec {
        subnet: 7,
        duid: Some(hex::encode(client(3).as_bytes())),
        remote_id: None,
        interface_id: None,
        subscriber_id: None,
        client_linklayer_address: None,
        address: Some(reserved),
        prefix: None,
    };
    server.operator_add_reservation(&spec).await.unwrap();
    assert_eq!(
        recorder.calls.lock().unwrap().as_slice(),
        [(true, Some(vec![client(3).as_bytes().to_vec()]), false)],
        "told with the client's DUID, before the allocator honoured it"
    );
    let renew = msg(
        MSG_RENEW,
        &client(3),
        vec![sid.clone(), ia_na(1, &[&granted.to_string()])],
    );
    let reply = handle_bytes(&server, renew).await.unwrap();
    assert_eq!(
        address_of(&reply),
        granted,
        "the Renew extends the lease held"
    );
    let advertise = handle_bytes(&server, solicit(false)).await.unwrap();
    assert_eq!(
        address_of(&advertise),
        reserved,
        "the Solicit gets the reservation"
    );

    server.operator_delete_reservation(&spec).await.unwrap();
    assert_eq!(
        recorder.calls.lock().unwrap()[1],
        (false, Some(vec![client(3).as_bytes().to_vec()]), false),
        "told after the allocator forgot it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reservation by line names no DUID: the follower is told to rebuild every binding.
#[tokio::test]
async fn a_reservation_by_line_has_the_fast_path_rebuild_every_binding() {
    let dir = temp_dir("operator-resv-line");
    let server = open_server(&dir);
    let recorder = Arc::new(Recorder::default());
    *recorder.server.lock().unwrap() = Arc::downgrade(&server);
    server.follow_reservations(recorder.clone());
    let spec = ReservationSpec {
        subnet: 7,
        duid: None,
        remote_id: None,
        interface_id: Some("port-7".into()),
        subscriber_id: None,
        client_linklayer_address: None,
        address: Some(addr("2001:db8:1::78")),
        prefix: None,
    };
    server.operator_add_reservation(&spec).await.unwrap();
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(calls, [(true, None, false)]);
    assert!(matches!(
        server
            .lock_state()
            .allocator
            .reservations()
            .owner(&LeaseKey::na(addr("2001:db8:1::78"))),
        Some(ReservedClient::Line(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
