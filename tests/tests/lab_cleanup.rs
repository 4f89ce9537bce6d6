//! The lab leaves nothing behind: not after a normal drop, not after a panic, not after its
//! process was killed (the next lab sweeps it), and not after SIGTERM with signal teardown.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use dhcp_lab::{self as lab, Lab};
use tests::{netns_exists, root_links};

/// Set in a re-executed copy of this test binary: what `lab_child_process` should do.
const CHILD_ROLE: &str = "DHCP_LAB_CHILD_ROLE";

#[test]
fn drop_removes_namespaces_and_links() {
    let lab = Lab::new();
    let server = lab.namespace("srv").unwrap();
    let client = lab.namespace("cli").unwrap();
    let link = lab
        .link(&server, Some("2001:db8:1::1/64"), &client, None)
        .unwrap();
    let names = [server.name().to_string(), client.name().to_string()];
    let ifnames = [link.a.ifname.clone(), link.b.ifname.clone()];
    assert!(names.iter().all(|n| netns_exists(n)));
    // Veth ends are created inside their namespaces, never in ours.
    assert!(ifnames.iter().all(|i| !root_links().contains(i)));

    drop(link);
    let gone = server.exec("ip", ["-o", "link", "show"]).unwrap();
    assert!(!gone.contains(&ifnames[0]), "{gone}");
    drop(server);
    drop(client);
    assert!(names.iter().all(|n| !netns_exists(n)));
    assert!(ifnames.iter().all(|i| !root_links().contains(i)));
}

#[test]
fn a_panic_inside_a_test_still_cleans_up() {
    let mut names = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::new();
        let server = lab.namespace("srv").unwrap();
        let client = lab.namespace("cli").unwrap();
        let _link = lab.link(&server, None, &client, None).unwrap();
        names.push(server.name().to_string());
        names.push(client.name().to_string());
        panic!("the test fails here");
    }));
    assert!(outcome.is_err());
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| !netns_exists(n)), "{names:?}");
}

/// Starts this test binary again, running only `lab_child_process` in `role`; returns the child
/// and the namespace name it printed.
fn start_child(role: &str) -> (std::process::Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lab_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, role)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let name = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // The harness prints "test lab_child_process ... " on the same line.
        .find_map(|line| {
            line.split_once("NAMESPACE ")
                .map(|(_, name)| name.trim().to_string())
        })
        .expect("the child prints its namespace");
    (child, name)
}

#[test]
fn namespaces_of_a_killed_process_are_swept() {
    let (mut child, name) = start_child("hold");
    assert!(netns_exists(&name));
    child.kill().unwrap();
    child.wait().unwrap();
    // SIGKILL skips Drop: the namespace is still there until a lab sweeps it.
    assert!(netns_exists(&name));
    let swept = lab::sweep_stale();
    assert!(swept.contains(&name), "{swept:?}");
    assert!(!netns_exists(&name));
}

#[test]
fn sigterm_with_signal_teardown_cleans_up() {
    let (mut child, name) = start_child("signal");
    assert!(netns_exists(&name));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{status}");
    assert!(!netns_exists(&name));
}

/// Not a test on its own: the body of the child processes above (does nothing unless started
/// by them).
#[test]
fn lab_child_process() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    if role == "signal" {
        lab::install_signal_teardown().unwrap();
    }
    let lab = Lab::new();
    let server = lab.namespace("held").unwrap();
    let client = lab.namespace("heldc").unwrap();
    let _link = lab.link(&server, None, &client, None).unwrap();
    println!("NAMESPACE {}", server.name());
    std::thread::sleep(std::time::Duration::from_secs(60));
    panic!("the parent test should have ended this process");
}
