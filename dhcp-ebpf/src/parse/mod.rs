//! Parsing, bounded by named caps: the frame's headers, the relay hop, the client's options.

pub(crate) mod frame;
pub(crate) mod options;
pub(crate) mod relay;
