//! The control socket of a running server: its protocol, the server side and the client side.
//!
//! The server listens on a Unix socket, `<state-dir>/control.sock`. The protocol is one JSON
//! object per line each way: a [`ControlRequest`] in, a [`ControlResponse`] out, as many as the
//! client wants on one connection.
//!
//! ```text
//! → {"command":"bindings"}
//! ← {"bindings":[{"duid":"000300010200000000 01","iaid":1,"ia":"na","lease":"2001:db8:1::1000",...}]}
//! → {"command":"clear","duid":"00030001020000000001"}
//! ← {"cleared":1}
//! ```
//!
//! [`protocol`] holds the messages, [`server`] answers them ([`serve_control`]), [`client`]
//! sends them ([`request`]). The command line that uses them is `crate::cli`.

pub mod client;
pub mod protocol;
pub mod server;

pub use client::request;
pub use protocol::{
    socket_path, Binding, ControlRequest, ControlResponse, ErrorCode, Failure, ReconfigureSpec,
    StatsReply, CONTROL_SOCKET,
};
pub use server::{answer, bind_control_socket, serve_control};

#[cfg(test)]
mod tests;
