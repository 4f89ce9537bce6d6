//! Installing as a service: the systemd unit passes `systemd-analyze verify`, the package's
//! example configuration passes `check-config`, and `check-config` exits 0 or 1 with the file,
//! line and key (and refuses subnet ids that would renumber recorded leases). No root needed.

mod server_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use server_common::dhcp_user_binary;

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh temporary directory for `tag`.
fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dhcp-user-service-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn check_config(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(dhcp_user_binary())
        .arg("check-config")
        .args(args)
        .output()
        .expect("running dhcp-user check-config")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// packaging/dhcp-user.service passes `systemd-analyze verify` (its commands pointed at the
/// built binary: /usr/sbin/dhcp-user is not installed here).
#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: skipped");
        return;
    }
    let unit = std::fs::read_to_string(repo().join("packaging/dhcp-user.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload="));
    let dir = temp("unit");
    let copy = dir.join("dhcp-user.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/sbin/dhcp-user", &dhcp_user_binary().to_string_lossy()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify:\n{}",
        text(&out)
    );
    assert!(text(&out).trim().is_empty(), "warnings:\n{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The example configuration the package installs passes `check-config`.
#[test]
fn the_packaged_example_configuration_passes_check_config() {
    let dir = temp("example");
    let out = check_config(&[
        repo().join("packaging/server.toml").as_os_str(),
        "--state-dir".as_ref(),
        dir.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check-config` exits 0 on a good file and 1 on a bad one, naming the file, line and key, in
/// text and in JSON.
#[test]
fn check_config_exits_1_naming_the_file_line_and_key() {
    let dir = temp("check");
    let lab = repo().join("examples/lab.toml");
    let out = check_config(&[lab.as_os_str(), "--state-dir".as_ref(), dir.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok (1 subnet(s), ids 1=2001:db8:1::/64)"),
        "{}",
        text(&out)
    );
    let bad = dir.join("bad.toml");
    let good = std::fs::read_to_string(&lab).unwrap();
    std::fs::write(
        &bad,
        good.replace("grace-period = 3600", "grace-period = \"1h\""),
    )
    .unwrap();
    let line = good
        .lines()
        .position(|l| l.starts_with("grace-period"))
        .unwrap()
        + 1;
    let out = check_config(&[bad.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!(
        "config file {}, line {line}, column 16: key `grace-period`",
        bad.display()
    );
    assert!(text(&out).contains(&expected), "{}", text(&out));
    let out = check_config(&[bad.as_os_str(), "--json".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert!(
        json["errors"][0].as_str().unwrap().contains(&expected),
        "{json}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check-config` says what the fast path will leave to the controller: a class on a relay
/// value longer than it looks up makes it pass that subnet's requests (a note, exit 0).
#[test]
fn check_config_notes_a_relay_class_the_fast_path_cannot_follow() {
    let dir = temp("check-notes");
    let long = vec!["ab"; 70].join(":");
    let file = dir.join("classes.toml");
    std::fs::write(
        &file,
        format!(
            "[[client-classes]]\nname = \"business\"\n\
             relay-remote-id = {{ enterprise = 3561, id = \"{long}\" }}\n\
             [[client-classes.option]]\nname = \"sntp-servers\"\nvalue = [\"2001:db8::1\"]\n\
             [[subnet]]\nprefix = \"2001:db8:1::/64\"\ninterface = \"eth1\"\n"
        ),
    )
    .unwrap();
    let out = check_config(&[file.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("note: the fast path passes every request but a Confirm of 2001:db8:1::/64"),
        "{}",
        text(&out)
    );
    let out = check_config(&[file.as_os_str(), "--json".as_ref()]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert!(
        json["notes"][0].as_str().unwrap().contains("64 bytes"),
        "{json}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Against the state directory's record of subnet ids, `check-config` refuses an `id` that
/// would renumber a prefix's leases, and gives a subnet without `id` its recorded one.
#[test]
fn check_config_refuses_an_id_that_would_renumber_leases() {
    let dir = temp("ids");
    std::fs::write(
        dir.join("subnet-ids"),
        "1 2001:db8:9::/64\n2 2001:db8:1::/64\n",
    )
    .unwrap();
    let config = dir.join("server.toml");
    let subnet = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    std::fs::write(&config, subnet).unwrap();
    let out = check_config(&[config.as_os_str(), "--state-dir".as_ref(), dir.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ids 2=2001:db8:1::/64"),
        "{}",
        text(&out)
    );
    std::fs::write(&config, format!("{subnet}id = 1\n")).unwrap();
    let out = check_config(&[config.as_os_str(), "--state-dir".as_ref(), dir.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("key `subnet[0].id`: id 1 would renumber the leases of 2001:db8:1::/64, granted under id 2"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
