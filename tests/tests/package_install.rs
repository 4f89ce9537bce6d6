//! The Debian package installs on this Debian 12 and its server checks its configuration: the
//! package `cargo xtask test` builds (`DHCP_USER_DEB`, `cargo xtask package --debug` alone) is
//! installed with `dpkg -i` into a copy-on-write view of this machine's root (an overlay in a
//! mount namespace of its own: nothing of the host changes), and removed again. Needs root.
//! systemd is not PID 1 here, so `systemctl start` is not tried; the installed unit is checked
//! with `systemd-analyze verify` instead.

use std::path::PathBuf;
use std::process::Command;

/// The package to install: `DHCP_USER_DEB`, set by `cargo xtask test`.
fn package() -> PathBuf {
    let path = std::env::var_os("DHCP_USER_DEB").map(PathBuf::from).expect(
        "DHCP_USER_DEB names no package: run `cargo xtask test`, or `cargo xtask package \
         --debug` and set DHCP_USER_DEB=target/package/dhcp-user_VERSION_ARCH.deb",
    );
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

/// `script` run by sh in a mount namespace of its own, where `$ROOT` is an overlay of `/` (its
/// writes on a tmpfs) with /proc and /dev bound in, and `$DEB` the package copied into it at
/// /tmp/pkg.deb; returns the status and the combined output.
fn in_overlay_root(script: &str) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("dhcp-user-package-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let setup = r#"set -e
mount -t tmpfs tmpfs "$DIR"
mkdir "$DIR/upper" "$DIR/work" "$DIR/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$DIR/upper,workdir=$DIR/work" "$DIR/root"
mount --bind /proc "$DIR/root/proc"
mount --bind /dev "$DIR/root/dev"
ROOT="$DIR/root"
cp "$DEB" "$ROOT/tmp/pkg.deb"
"#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(format!("{setup}{script}"))
        .env("DIR", &dir)
        .env("DEB", package())
        .output()
        .expect("running unshare (util-linux)");
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `dpkg -i` installs the package (binary, unit, example configuration as a conffile, manual
/// page); the installed binary passes `check-config` on the installed configuration and
/// answers `--version`; the installed unit passes `systemd-analyze verify`; `dpkg --purge`
/// removes it all. The host is untouched (the overlay).
#[test]
fn the_package_installs_checks_its_configuration_and_purges() {
    let host_had_it = std::path::Path::new("/usr/sbin/dhcp-user").exists();
    let (ok, text) = in_overlay_root(
        r#"chroot "$ROOT" dpkg -i /tmp/pkg.deb
chroot "$ROOT" dpkg-query -W -f '${Status}\n' dhcp-user
chroot "$ROOT" sh -c 'ls /usr/sbin/dhcp-user /lib/systemd/system/dhcp-user.service /etc/dhcp-user/server.toml /usr/share/man/man8/dhcp-user.8.gz'
chroot "$ROOT" dpkg-query --control-show dhcp-user conffiles
chroot "$ROOT" /usr/sbin/dhcp-user --version
chroot "$ROOT" /usr/sbin/dhcp-user check-config /etc/dhcp-user/server.toml
if chroot "$ROOT" systemd-analyze --version >/dev/null 2>&1; then
  chroot "$ROOT" systemd-analyze verify --man=no /lib/systemd/system/dhcp-user.service
  echo "unit verified"
fi
chroot "$ROOT" dpkg --purge dhcp-user
test ! -e "$ROOT/usr/sbin/dhcp-user" && test ! -e "$ROOT/etc/dhcp-user/server.toml"
echo "purged"
"#,
    );
    assert!(ok, "installing the package failed:\n{text}");
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_ok_and(|out| out.status.success()) {
        assert!(text.contains("unit verified"), "{text}");
    }
    for want in [
        "install ok installed",
        "/etc/dhcp-user/server.toml",
        ": ok (",
        "purged",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    assert_eq!(
        std::path::Path::new("/usr/sbin/dhcp-user").exists(),
        host_had_it,
        "the host's /usr/sbin stays as it was"
    );
}
