//! `proto::decode` of arbitrary bytes: never panics; what decodes unwraps its relay chain and
//! re-encodes to exactly the bytes received (the codec's canonical-encoding promise, which
//! LQ_RELAY_DATA relies on), and the re-encoding decodes to the same packet.
#![no_main]

use dhcp_user::proto::{decode, Message, Packet, RelayMessage, MAX_RELAY_DEPTH};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = decode(data) else {
        // The typed decoders agree with the generic one on what is refused.
        assert!(Message::decode(data).is_err());
        assert!(RelayMessage::decode(data).is_err());
        return;
    };
    let (relays, core) = packet.unwrap_relays();
    assert!(
        relays.len() <= MAX_RELAY_DEPTH,
        "{} relay layers",
        relays.len()
    );
    assert_eq!(packet.innermost_message(), core);
    if let Packet::Relay(relay) = &packet {
        let _ = relay.without_client_message().encode();
        if let Some(core) = core {
            let _ = relay.reply_with(Packet::Message(core.clone())).encode();
        }
    }
    let bytes = packet.encode().expect("a decoded packet encodes");
    assert_eq!(bytes, data, "re-encoding differs from the input");
    assert_eq!(decode(&bytes).expect("the re-encoding decodes"), packet);
});
