// How the XDP object is built, shared by the build scripts that embed it (`include!`d by
// dhcp-user/build.rs for the controller's object and tests/bench/build.rs for the benchmark's
// build with the `bench` feature, and by xtask, which builds the baseline object of `cargo xtask
// bench` with the same command). Not a build script of this crate: the name keeps cargo from
// running it as one.
//
// The eBPF crate needs Debian's rustc-web toolchain (prebuilt `core` for the BPF target) and
// `bpf-linker`; `cargo xtask build` installs both. It is built in its own target directory
// (under `dhcp-ebpf/target`), always with the release profile: the verifier wants optimised code.
//
// Without that toolchain (`cargo check`, rust-analyzer, a contributor's laptop) an empty stub
// stands in for the object, with a warning: everything builds, and the binary refuses to start
// the fast path, saying why (`FastPathError::StubObject`).

/// Debian's cargo and rustc for the BPF target (packages cargo-web and rustc-web).
const EBPF_CARGO: &str = "/usr/bin/cargo";
const EBPF_RUSTC: &str = "/usr/bin/rustc";

/// The sources the object is built from, relative to the workspace root (for rerun-if-changed).
const EBPF_SOURCES: [&str; 4] = [
    "dhcp-ebpf/src",
    "dhcp-ebpf/Cargo.toml",
    "dhcp-common/src",
    "dhcp-common/Cargo.toml",
];

/// Builds `dhcp-ebpf` (under workspace `root`) with `features` into `dhcp-ebpf/<target_dir>` and
/// returns the object's path, or the path of an empty stub when the toolchain is missing.
/// `env_override` names an environment variable through which an operator or packager may hand
/// in a prebuilt object instead.
fn build_ebpf_object(
    root: &std::path::Path,
    features: &str,
    target_dir: &str,
    env_override: &str,
) -> std::path::PathBuf {
    use std::{env, path::PathBuf};

    for watched in EBPF_SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed={env_override}");
    if let Some(path) = env::var_os(env_override) {
        return PathBuf::from(path);
    }
    let missing = [EBPF_CARGO, EBPF_RUSTC]
        .iter()
        .any(|path| !std::path::Path::new(path).exists());
    let linker = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join("bpf-linker"))
            .find(|path| path.is_file())
    });
    if missing || linker.is_none() {
        println!(
            "cargo:warning=the eBPF toolchain is missing (Debian's rustc-web/cargo-web and \
             bpf-linker): built with a stub instead of the XDP program, so the fast path cannot \
             start; `cargo xtask build` installs the toolchain"
        );
        let stub = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("dhcp-ebpf.stub");
        std::fs::write(&stub, b"").expect("writing the stub eBPF object");
        return stub;
    }
    let ebpf_dir = root.join("dhcp-ebpf");
    let target_dir = ebpf_dir.join(target_dir);
    let mut cmd = ebpf_build_command(&ebpf_dir, &target_dir, features);
    let status = cmd
        .status()
        .expect("running Debian's cargo for the eBPF crate");
    if !status.success() {
        panic!("building dhcp-ebpf for bpfel-unknown-none failed (see the errors above)");
    }
    ebpf_object_path(&target_dir)
}

/// Where `ebpf_build_command` leaves the object under `target_dir`.
pub(crate) fn ebpf_object_path(target_dir: &std::path::Path) -> std::path::PathBuf {
    target_dir.join("bpfel-unknown-none/release/dhcp-ebpf")
}

/// The command that builds the `dhcp-ebpf` crate at `ebpf_dir` with `features` into
/// `target_dir`: Debian's cargo and rustc, none of the outer cargo's settings, the flags the
/// object needs. `cargo xtask bench` builds the baseline object (an older revision's sources)
/// with it too, so that old and new differ in their code only.
pub(crate) fn ebpf_build_command(
    ebpf_dir: &std::path::Path,
    target_dir: &std::path::Path,
    features: &str,
) -> std::process::Command {
    use std::{env, process::Command};

    let mut cmd = Command::new(EBPF_CARGO);
    // The outer cargo's settings (rustup toolchain, host rustflags, jobserver) must not leak in.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || matches!(
                key.as_str(),
                "RUSTC"
                    | "RUSTC_WRAPPER"
                    | "RUSTC_WORKSPACE_WRAPPER"
                    | "RUSTFLAGS"
                    | "RUSTDOC"
                    | "RUSTUP_TOOLCHAIN"
            )
        {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(ebpf_dir)
        .env("RUSTC", EBPF_RUSTC)
        // aya-ebpf gates `asm_experimental_arch`; rustc-web is a stable compiler.
        .env("RUSTC_BOOTSTRAP", "1")
        // Misaligned loads/stores let the program move 8 bytes at a time (x86 and arm64 handle
        // them; the verifier allows them on map values, where all of its byte work happens).
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf\x1f-Clink-arg=--cpu-features=+allows-misaligned-mem-access",
        )
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--release", "--target", "bpfel-unknown-none", "--quiet"]);
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    cmd
}
