//! Link options for the `daemonic-keeper` image alone (the library and `daemonic` are untouched).

fn main() {
    // The resident keeper's memory is a measured goal. Its code pages are shared between the
    // keepers of many services, but only page for page: the kernel maps a 64 KiB window around
    // each page fault ("fault-around"), aligned in *virtual* addresses, so with a load address
    // randomised in 4 KiB steps every keeper maps a different set of neighbouring pages, and
    // those show up as private in each one (up to 64 KiB of a second keeper's USS). Aligning the
    // segments to 64 KiB makes the kernel (Linux 5.10 and later) place the image on a 64 KiB
    // boundary: every keeper maps the same windows, and they stay shared. The image is still
    // position-independent and randomised, in 64 KiB steps.
    // ELF targets whose linkers (GNU ld, lld) take these `-z` options; not Solaris' ld or Apple's.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = [
        "linux",
        "android",
        "freebsd",
        "netbsd",
        "openbsd",
        "dragonfly",
    ];
    if elf.contains(&os.as_str()) {
        println!("cargo::rustc-link-arg-bin=daemonic-keeper=-Wl,-z,max-page-size=65536");
        println!("cargo::rustc-link-arg-bin=daemonic-keeper=-Wl,-z,separate-loadable-segments");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
