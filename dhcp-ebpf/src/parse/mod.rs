//! Parsing, bounded by named caps: the frame's headers, the relay hop, the client's options,
//! and the line the frame came from.

pub(crate) mod frame;
pub(crate) mod line;
pub(crate) mod options;
pub(crate) mod relay;
