//! `cargo xtask package`: the Debian package of the server, built with `dpkg-deb` (no other
//! tool to install): the binary, the systemd unit, an example configuration as a conffile, the
//! manual page generated from the command line's help (clap_mangen, `dhcp-user manpage`) and
//! the docs. The result is checked before it is reported: its file list (`dpkg-deb -c`) must
//! hold every one of those, and the unit must pass `systemd-analyze verify` (pointed at the
//! staged binary) where systemd-analyze is installed.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

use crate::Workspace;

/// Where each file goes in the package, as `dpkg-deb -c` lists it (after `./`).
const UNIT: &str = "lib/systemd/system/dhcp-user.service";
const BINARY: &str = "usr/sbin/dhcp-user";
const EXAMPLE_CONFIG: &str = "etc/dhcp-user/server.toml";
const MAN_PAGE: &str = "usr/share/man/man8/dhcp-user.8.gz";
const MAN_DIR: &str = "usr/share/man/man8";
const DOC_DIR: &str = "usr/share/doc/dhcp-user";
/// The docs shipped, from the repository's root.
const DOCS: &[&str] = &[
    "README.md",
    "docs/configuration.md",
    "docs/operations.md",
    "docs/fastpath.md",
];

/// Builds the .deb around `binary` (a built dhcp-user) in `target/package/`; returns its path.
pub fn package(ws: &Workspace, binary: &Path) -> Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?;
    let name = format!("dhcp-user_{version}_{arch}");
    let out_dir = ws.target.join("package");
    let root = out_dir.join(&name);
    let _ = fs::remove_dir_all(&root);
    let put = |path: &str, bytes: &[u8], mode: u32| -> Result<()> {
        let target = root.join(path);
        fs::create_dir_all(target.parent().expect("a path under the root"))?;
        fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let read = |path: &str| -> Result<Vec<u8>> {
        let source = ws.root.join(path);
        fs::read(&source).with_context(|| format!("reading {}", source.display()))
    };

    put(BINARY, &fs::read(binary)?, 0o755)?;
    // Debug info stays in target/; the package gets the code (the XDP object is data, kept).
    let staged = root.join(BINARY);
    if Command::new("strip")
        .arg("--strip-debug")
        .arg(&staged)
        .status()
        .is_ok_and(|s| s.success())
    {
        println!("[package] stripped debug info from {BINARY}");
    }
    put(UNIT, &read("packaging/dhcp-user.service")?, 0o644)?;
    put(EXAMPLE_CONFIG, &read("packaging/server.toml")?, 0o644)?;
    let pages = out_dir.join("man");
    let _ = fs::remove_dir_all(&pages);
    fs::create_dir_all(&pages)?;
    let status = Command::new(binary)
        .arg("manpage")
        .arg("--dir")
        .arg(&pages)
        .status()
        .context("running dhcp-user manpage")?;
    if !status.success() {
        bail!("dhcp-user manpage --dir failed");
    }
    let mut written = 0;
    for page in fs::read_dir(&pages)? {
        let page = page?.path();
        let name = page.file_name().expect("a page's name").to_string_lossy();
        put(
            &format!("{MAN_DIR}/{name}.gz"),
            &gzip(&fs::read(&page)?)?,
            0o644,
        )?;
        written += 1;
    }
    println!("[package] {written} manual pages (dhcp-user(8) and one per command)");
    for doc in DOCS {
        let file = Path::new(doc).file_name().expect("a file name");
        put(
            &format!("{DOC_DIR}/{}", file.to_string_lossy()),
            &read(doc)?,
            0o644,
        )?;
    }
    put(
        &format!("{DOC_DIR}/copyright"),
        format!(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
             Upstream-Name: dhcp-user\n\nFiles: *\nLicense: {}\n",
            env!("CARGO_PKG_LICENSE")
        )
        .as_bytes(),
        0o644,
    )?;

    let installed_kib = du_kib(&root)?;
    let control = format!(
        "Package: dhcp-user\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: dhcp-user developers <root@localhost>\n\
         Installed-Size: {installed_kib}\n\
         Depends: libc6, libgcc-s1\n\
         Recommends: bpftool\n\
         Section: net\n\
         Priority: optional\n\
         Description: DHCPv6 server with an XDP fast path\n \
         A DHCPv6 server (RFC 8415, prefix delegation, leasequery) whose XDP program answers\n \
         renewals of known clients in the driver; the controller, a tokio program, owns the\n \
         leases (SQLite or PostgreSQL). Runs as the systemd service dhcp-user.\n"
    );
    put("DEBIAN/control", control.as_bytes(), 0o644)?;
    put(
        "DEBIAN/conffiles",
        format!("/{EXAMPLE_CONFIG}\n").as_bytes(),
        0o644,
    )?;
    // The service is not started by the install: its configuration must be edited first.
    let reload_systemd =
        "if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n";
    put(
        "DEBIAN/postinst",
        format!("#!/bin/sh\nset -e\n{reload_systemd}").as_bytes(),
        0o755,
    )?;
    put(
        "DEBIAN/prerm",
        b"#!/bin/sh\nset -e\nif [ -d /run/systemd/system ] && [ \"$1\" = remove ]; then\n  \
          systemctl stop dhcp-user.service || true\nfi\n",
        0o755,
    )?;
    put(
        "DEBIAN/postrm",
        format!("#!/bin/sh\nset -e\n{reload_systemd}").as_bytes(),
        0o755,
    )?;

    let deb = out_dir.join(format!("{name}.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .stdout(Stdio::null())
        .status()
        .context("running dpkg-deb (package dpkg)")?;
    if !status.success() {
        bail!("dpkg-deb --build failed");
    }
    check_contents(&deb)?;
    verify_unit(&root)?;
    Ok(deb)
}

/// Fails unless `dpkg-deb -c` lists every file the package must hold.
fn check_contents(deb: &Path) -> Result<()> {
    let listing = output(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    let mut missing = Vec::new();
    let docs: Vec<String> = DOCS
        .iter()
        .map(|doc| {
            let file = Path::new(doc).file_name().expect("a file name");
            format!("{DOC_DIR}/{}", file.to_string_lossy())
        })
        .collect();
    for path in [UNIT, BINARY, EXAMPLE_CONFIG, MAN_PAGE]
        .into_iter()
        .chain(docs.iter().map(String::as_str))
    {
        if !listing
            .lines()
            .any(|line| line.ends_with(&format!(" ./{path}")))
        {
            missing.push(path);
        }
    }
    if !missing.is_empty() {
        bail!("{} lacks {}:\n{listing}", deb.display(), missing.join(", "));
    }
    println!(
        "[package] dpkg-deb -c: the unit, the binary, the example configuration, the manual page \
         and the docs are in it"
    );
    Ok(())
}

/// `systemd-analyze verify` of the staged unit, its commands pointed at the staged binary (the
/// unit names /usr/sbin/dhcp-user, which is not installed here); skipped without
/// systemd-analyze.
fn verify_unit(root: &Path) -> Result<()> {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("[package] systemd-analyze not installed: the unit is not verified");
        return Ok(());
    };
    if !probe.status.success() {
        println!("[package] systemd-analyze does not run: the unit is not verified");
        return Ok(());
    }
    let unit = fs::read_to_string(root.join(UNIT))?;
    let staged = root.join(BINARY);
    let dir = root.join("verify");
    fs::create_dir_all(&dir)?;
    let copy = dir.join("dhcp-user.service");
    fs::write(
        &copy,
        unit.replace("/usr/sbin/dhcp-user", &staged.to_string_lossy()),
    )?;
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .context("running systemd-analyze verify")?;
    let _ = fs::remove_dir_all(&dir);
    if !out.status.success() {
        bail!(
            "systemd-analyze verify {UNIT}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!("[package] systemd-analyze verify: the unit is valid");
    Ok(())
}

/// `bytes` through `gzip -9n` (no name or time stamp: the same input gives the same file).
fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-9n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    child.stdin.take().expect("piped stdin").write_all(bytes)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip failed");
    }
    Ok(out.stdout)
}

/// Kibibytes under `root` (the control file's Installed-Size).
fn du_kib(root: &Path) -> Result<u64> {
    let text = output(
        Command::new("du")
            .args(["-sk", "--exclude=DEBIAN"])
            .arg(root),
    )?;
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("reading du's output")
}

/// A command's stdout, trimmed; fails on a non-zero exit.
fn output(command: &mut Command) -> Result<String> {
    let out = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!("{command:?} failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
