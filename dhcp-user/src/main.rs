fn main() -> anyhow::Result<()> {
    anyhow::bail!("dhcp-user: the command line is being written")
}
