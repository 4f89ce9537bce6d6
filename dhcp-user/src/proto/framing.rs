//! Message framing for DHCPv6 over TCP (bulk and active leasequery, RFC 5460 §5.1, RFC 7653 §8):
//! every message is preceded by its length as a 2-byte big-endian integer.

use bytes::{Buf, Bytes, BytesMut};

/// Size of the length prefix.
pub const FRAME_HEADER_LEN: usize = 2;
/// Largest message a 2-byte length can describe.
pub const MAX_FRAME_LEN: usize = u16::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A message too long for the 16-bit length prefix (encoding side).
    #[error("message of {len} bytes does not fit a 2-byte length prefix")]
    MessageTooLong { len: usize },
    /// The peer announced a frame above the decoder's limit; the stream cannot be resynchronised.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
}

impl FrameError {
    /// Stable snake_case label for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::MessageTooLong { .. } => "message_too_long",
            FrameError::FrameTooLarge { .. } => "frame_too_large",
        }
    }
}

/// `message` with its length prefix.
pub fn encode_frame(message: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(FRAME_HEADER_LEN + message.len());
    encode_frame_into(message, &mut buf)?;
    Ok(buf)
}

/// Appends `message` with its length prefix to `buf` (nothing is appended on error).
pub fn encode_frame_into(message: &[u8], buf: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = u16::try_from(message.len())
        .map_err(|_| FrameError::MessageTooLong { len: message.len() })?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(message);
    Ok(())
}

/// Incremental frame decoder: feed it bytes as they arrive with [`push`](Self::push), take
/// complete messages out with [`next_frame`](Self::next_frame).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_frame_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(MAX_FRAME_LEN)
    }
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_frame_len` bytes (the prefix not counted).
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_frame_len: max_frame_len.min(MAX_FRAME_LEN),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, without its prefix; `Ok(None)` until one has fully arrived.
    /// After `FrameTooLarge` the decoder keeps returning that error: the connection should be
    /// closed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
        if len > self.max_frame_len {
            return Err(FrameError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        if self.buf.len() < FRAME_HEADER_LEN + len {
            return Ok(None);
        }
        self.buf.advance(FRAME_HEADER_LEN);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a frame has started but not finished (a peer closing now cut a message short).
    pub fn is_mid_frame(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_is_big_endian_length_then_message() {
        assert_eq!(
            encode_frame(&[0x0e, 1, 2, 3]).unwrap(),
            vec![0, 4, 0x0e, 1, 2, 3]
        );
        assert_eq!(encode_frame(&[]).unwrap(), vec![0, 0]);
        let big = vec![7u8; 300];
        let framed = encode_frame(&big).unwrap();
        assert_eq!(&framed[..2], &[0x01, 0x2c]);
        assert_eq!(&framed[2..], &big[..]);
    }

    #[test]
    fn oversized_message_is_an_error_not_a_truncation() {
        let huge = vec![0u8; MAX_FRAME_LEN + 1];
        assert_eq!(
            encode_frame(&huge),
            Err(FrameError::MessageTooLong {
                len: MAX_FRAME_LEN + 1
            })
        );
        assert!(encode_frame(&huge[..MAX_FRAME_LEN]).is_ok());
    }

    #[test]
    fn decoder_yields_frames_split_across_reads_byte_by_byte() {
        let mut stream = encode_frame(b"first").unwrap();
        stream.extend(encode_frame(b"").unwrap());
        stream.extend(encode_frame(b"third message").unwrap());
        let mut decoder = FrameDecoder::default();
        let mut frames = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame.to_vec());
            }
        }
        assert_eq!(
            frames,
            vec![b"first".to_vec(), Vec::new(), b"third message".to_vec()]
        );
        assert!(!decoder.is_mid_frame());
    }

    #[test]
    fn decoder_yields_several_frames_from_one_read() {
        let mut stream = encode_frame(b"a").unwrap();
        stream.extend(encode_frame(b"bc").unwrap());
        stream.extend(&[0, 5, 1]); // start of a third, incomplete
        let mut decoder = FrameDecoder::default();
        decoder.push(&stream);
        assert_eq!(decoder.next_frame().unwrap().unwrap().as_ref(), b"a");
        assert_eq!(decoder.next_frame().unwrap().unwrap().as_ref(), b"bc");
        assert_eq!(decoder.next_frame().unwrap(), None);
        assert!(decoder.is_mid_frame());
        assert_eq!(decoder.buffered_len(), 3);
    }

    #[test]
    fn decoder_rejects_frames_over_its_limit_and_stays_failed() {
        let mut decoder = FrameDecoder::new(100);
        decoder.push(&[0, 101]);
        let err = FrameError::FrameTooLarge { len: 101, max: 100 };
        assert_eq!(decoder.next_frame(), Err(err.clone()));
        decoder.push(&[0; 200]);
        assert_eq!(decoder.next_frame(), Err(err));
        let mut ok = FrameDecoder::new(100);
        ok.push(&encode_frame(&[1; 100]).unwrap());
        assert_eq!(ok.next_frame().unwrap().unwrap().len(), 100);
    }
}
