//! The lab's dhclient script: applies the leased address inside the client's namespace and
//! touches nothing else (the demo and the tests that run ISC dhclient use it).

use std::path::{Path, PathBuf};

/// The dhclient script of the lab: applies the address to the client's interface (inside its
/// namespace) and does nothing else. Debian's dhclient-script would also rewrite
/// /etc/resolv.conf, which network namespaces share with the host.
pub const LAB_DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
# dhcp-user lab: configure the leased address on the interface only; never touch /etc.
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    if [ -n "$new_ip6_address" ]; then
      ip -6 addr replace "$new_ip6_address/128" dev "$interface" \
        valid_lft "${new_max_life:-forever}" preferred_lft "${new_preferred_life:-forever}"
    fi
    if [ -n "$new_ip6_prefix" ]; then
      echo "dhclient: delegated prefix $new_ip6_prefix on $interface"
    fi
    ;;
  RELEASE6|EXPIRE6|STOP6)
    if [ -n "$old_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null
    fi
    ;;
esac
exit 0
"#;

/// Writes [`LAB_DHCLIENT_SCRIPT`] into `dir` and returns its path.
pub fn write_dhclient_script(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("dhclient-script");
    let context = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    std::fs::write(&path, LAB_DHCLIENT_SCRIPT).map_err(|e| context("writing", e))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| context("making executable", e))?;
    Ok(path)
}
