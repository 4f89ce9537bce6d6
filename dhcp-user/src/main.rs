//! The `dhcp-user` binary: see `dhcp_user::control` for the commands.

fn main() -> anyhow::Result<()> {
    dhcp_user::control::cli_main(std::env::args_os())
}
