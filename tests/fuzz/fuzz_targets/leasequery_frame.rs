//! The leasequery TCP stream: arbitrary bytes cut into arbitrary chunks go through
//! `FrameDecoder`, which must give the same frames as a one-shot read; every frame decoded as a
//! message goes through `parse_query` and `parse_active_query` (errors, never a panic).
#![no_main]

use dhcp_user::leasequery::{parse_active_query, parse_query};
use dhcp_user::proto::framing::{encode_frame, FrameDecoder};
use dhcp_user::proto::Message;
use libfuzzer_sys::fuzz_target;

/// Frames of `stream`, fed in chunks of the given sizes (then the rest), or the error.
fn frames(stream: &[u8], chunks: &[u8], max: usize) -> (Vec<Vec<u8>>, bool) {
    let mut decoder = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().map(|&n| usize::from(n));
    loop {
        let take = sizes.next().unwrap_or(rest.len()).min(rest.len());
        decoder.push(&rest[..take]);
        rest = &rest[take..];
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => out.push(frame.to_vec()),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
        if rest.is_empty() {
            return (out, false);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte: how many chunk sizes follow; then the sizes; then the stream.
    let Some((&n, data)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(data.len());
    let (chunks, stream) = data.split_at(n);
    let max = 1 + usize::from(chunks.first().copied().unwrap_or(255)) * 256;
    let (chunked, chunked_failed) = frames(stream, chunks, max);
    let (whole, whole_failed) = frames(stream, &[], max);
    assert_eq!(chunked, whole, "chunking changed the frames");
    assert_eq!(chunked_failed, whole_failed);
    for frame in &chunked {
        assert!(frame.len() <= max);
        assert_eq!(&encode_frame(frame).unwrap()[2..], &frame[..]);
        if let Ok(message) = Message::decode(frame) {
            let _ = parse_query(&message);
            let _ = parse_active_query(&message);
        }
    }
});
