//! Builds the XDP program (`dhcp-ebpf`, without the benchmark's feature) for bpfel-unknown-none
//! and hands its path to the crate, which embeds it, so `dhcp-user` is one self-contained
//! binary. How the object is built (and the stub without the toolchain) is
//! dhcp-ebpf/object_build.rs, shared with the benchmark's build script.

include!("../dhcp-ebpf/object_build.rs");

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    // An operator (or a packager) may hand in a prebuilt object instead (DHCP_EBPF_OBJECT).
    let object = build_ebpf_object(root, "", "target", "DHCP_EBPF_OBJECT");
    println!("cargo:rustc-env=DHCP_EBPF_OBJECT={}", object.display());
}
