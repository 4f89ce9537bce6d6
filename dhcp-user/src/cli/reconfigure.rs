//! `dhcp-user reconfigure`: tell clients to come back (RFC 8415 section 18.3.11), through the
//! control socket.

use anyhow::bail;
use clap::{Args, ValueEnum};

use super::Locate;
use crate::config::ReconfigureMessage;
use crate::control::{request, ControlRequest, ControlResponse, ReconfigureSpec};

/// What the client is to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageArg {
    /// A Renew: the client renews its leases and takes the new options.
    Renew,
    /// An Information-Request: the client refreshes its options only.
    InfReq,
}

/// `reconfigure` options.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["duid", "subnet"]))]
pub struct ReconfigureArgs {
    #[command(flatten)]
    pub locate: Locate,
    /// The client's DUID, hex (it must have sent Reconfigure Accept).
    #[arg(long)]
    pub duid: Option<String>,
    /// Every client of this subnet id that sent Reconfigure Accept (paced by `[reconfigure]
    /// rate`).
    #[arg(long)]
    pub subnet: Option<u32>,
    /// What the clients are to send.
    #[arg(long = "msg", value_enum, default_value = "renew")]
    pub message: MessageArg,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Runs `reconfigure`.
pub fn run(args: &ReconfigureArgs) -> anyhow::Result<()> {
    let message = match args.message {
        MessageArg::Renew => ReconfigureMessage::Renew,
        MessageArg::InfReq => ReconfigureMessage::InfReq,
    };
    let body = ControlRequest::Reconfigure(ReconfigureSpec {
        duid: args.duid.clone(),
        subnet: args.subnet,
        message: Some(message),
    });
    let ControlResponse::Reconfiguring(started) = request(&args.locate.state_dir()?, &body)? else {
        bail!("unexpected answer to reconfigure");
    };
    if args.json {
        println!("{}", serde_json::json!({ "started": started }));
    } else {
        println!(
            "reconfigure started for {started} client(s); see `dhcp-user stats` (reconfigure)"
        );
    }
    Ok(())
}
