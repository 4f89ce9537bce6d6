//! Builds the XDP program (`dhcp-ebpf`) for bpfel-unknown-none and hands its path to the crate,
//! which embeds it, so `dhcp-user` is one self-contained binary.
//!
//! The eBPF crate needs Debian's rustc-web toolchain (prebuilt `core` for the BPF target) and
//! `bpf-linker`; `cargo xtask build` installs both. It is built in its own target directory
//! (`dhcp-ebpf/target`), always with the release profile: the verifier wants optimised code.
//!
//! Without that toolchain (`cargo check`, rust-analyzer, a contributor's laptop) an empty stub
//! stands in for the object, with a warning: everything builds, and the binary refuses to start
//! the fast path, saying why (`FastPathError::StubObject`).
use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const EBPF_CARGO: &str = "/usr/bin/cargo";
const EBPF_RUSTC: &str = "/usr/bin/rustc";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    let ebpf_dir = root.join("dhcp-ebpf");
    for watched in [
        "dhcp-ebpf/src",
        "dhcp-ebpf/Cargo.toml",
        "dhcp-common/src",
        "dhcp-common/Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=DHCP_EBPF_OBJECT");

    // An operator (or a packager) may hand in a prebuilt object instead.
    let object = match env::var_os("DHCP_EBPF_OBJECT") {
        Some(path) => PathBuf::from(path),
        None => build_ebpf(&ebpf_dir),
    };
    println!("cargo:rustc-env=DHCP_EBPF_OBJECT={}", object.display());
}

fn build_ebpf(ebpf_dir: &Path) -> PathBuf {
    let missing: Vec<&str> = [(EBPF_CARGO, "cargo-web"), (EBPF_RUSTC, "rustc-web")]
        .into_iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, pkg)| pkg)
        .collect();
    if !missing.is_empty() || which("bpf-linker").is_none() {
        println!(
            "cargo:warning=the eBPF toolchain is missing (Debian's rustc-web/cargo-web and \
             bpf-linker): built with a stub instead of the XDP program, so the fast path cannot \
             start; `cargo xtask build` installs the toolchain"
        );
        let stub = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("dhcp-ebpf.stub");
        std::fs::write(&stub, b"").expect("writing the stub eBPF object");
        return stub;
    }
    let target_dir = ebpf_dir.join("target");
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
        // Misaligned loads/stores let the program move 8 bytes at a time (x86 and arm64 handle them;
        // the verifier allows them on map values, where all of its byte work happens).
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf\x1f-Clink-arg=--cpu-features=+allows-misaligned-mem-access",
        )
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["build", "--release", "--target", "bpfel-unknown-none", "--quiet"]);
    let status = cmd
        .status()
        .expect("running Debian's cargo for the eBPF crate");
    if !status.success() {
        panic!("building dhcp-ebpf for bpfel-unknown-none failed (see the errors above)");
    }
    target_dir.join("bpfel-unknown-none/release/dhcp-ebpf")
}

fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
