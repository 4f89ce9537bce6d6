//! Builds the benchmark's build of the XDP program (`dhcp-ebpf` with feature `bench`: the fast
//! path plus the reference programs, putting each request back after answering) into
//! dhcp-ebpf/target/bench, and hands its path to the crate, which embeds it. The controller's
//! object (dhcp-user/build.rs) never has these. Shared logic: dhcp-ebpf/object_build.rs.

include!("../../dhcp-ebpf/object_build.rs");

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .and_then(|tests| tests.parent())
        .unwrap();
    let object = build_ebpf_object(root, "bench", "target/bench", "DHCP_EBPF_BENCH_OBJECT");
    println!(
        "cargo:rustc-env=DHCP_EBPF_BENCH_OBJECT={}",
        object.display()
    );
}
