//! The `dhcp-user` binary: see `dhcp_user::cli` for the commands.

fn main() -> anyhow::Result<()> {
    dhcp_user::cli::cli_main(std::env::args_os())
}
