//! A control-socket request line: `parse_request` gives a request or the error the server
//! answers with, never a panic; a parsed request survives a JSON round trip, a `clear` gets a
//! selector or an error, and every response serialises.
#![no_main]

use dhcp_user::control::protocol::{parse_request, ControlRequest, ControlResponse};
use dhcp_user::control::server::clear_selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &str| {
    match parse_request(line) {
        Ok(request) => {
            let json = serde_json::to_string(&request).expect("a request serialises");
            // (Not parse_request: the re-serialisation may be longer than the line limit.)
            let back: ControlRequest = serde_json::from_str(&json).expect("it parses back");
            assert_eq!(back, request);
            if let ControlRequest::Clear { duid, address, all } = request {
                let _ = clear_selector(duid, address, all);
            }
        }
        Err(err) => {
            serde_json::to_vec(&ControlResponse::Error(err)).expect("an error serialises");
        }
    }
});
