//! The `dhcp-user` binary's command line, run as a process. (Having an integration test here
//! also makes `cargo test --workspace` build the binary that tests/tests/server_*.rs run.)

use std::process::Command;

fn dhcp_user() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dhcp-user"))
}

#[test]
fn help_lists_every_command() {
    let out = dhcp_user().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["serve", "bindings", "stats", "clear", "leasequery"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}

#[test]
fn serve_reports_config_errors_with_file_line_and_key() {
    let dir = std::env::temp_dir().join(format!("dhcp-user-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "interfaces = [\"lo\"]\n[[subnet]]\nprefix = \"2001:db8:1::/64\"\npools = [{ low = \"2001:db8:1::10\", high = \"2001:db8:1::1\" }]\n",
    )
    .unwrap();
    let out = dhcp_user()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("bad.toml"), "{text}");
    assert!(text.contains("line 4"), "{text}");
    assert!(text.contains("subnet[0].pools[0].low"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn queries_without_a_server_say_where_they_looked() {
    let out = dhcp_user()
        .args(["bindings", "--state-dir", "/nonexistent/dhcp-user-state"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("/nonexistent/dhcp-user-state/control.sock"),
        "{text}"
    );
}
