//! Link options for the two binaries (the library is untouched): `daemonic-keeper`'s segment
//! alignment, and the order of `daemonic`'s functions on the path of a start.

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
    order_start_path();
    println!("cargo::rerun-if-changed=build.rs");
}

/// Places the functions that run on the path of a `daemonic start` first and together in the
/// `daemonic` binary (`bench/start-order.sym`, made by `bench/order.sh`): each 64 KiB window of
/// code the launcher and then the keeper touch first costs a page fault, and spread over the
/// whole text a start touched twice as many. Only where the linker is known to be lld (rustc
/// 1.90 and later link x86_64 Linux GNU with its own lld unless told otherwise): GNU ld does not
/// take the option. Names the linker does not find (after a toolchain update) are skipped.
fn order_start_path() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    println!("cargo::rerun-if-changed=bench/start-order.sym");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let target = (
        var("CARGO_CFG_TARGET_ARCH"),
        var("CARGO_CFG_TARGET_OS"),
        var("CARGO_CFG_TARGET_ENV"),
    );
    if target != ("x86_64".into(), "linux".into(), "gnu".into()) {
        return;
    }
    // A linker chosen by the user (a `linker` setting, `-C linker`, linker features) may not be
    // lld.
    if std::env::var_os("RUSTC_LINKER").is_some() || var("CARGO_ENCODED_RUSTFLAGS").contains("link")
    {
        return;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let minor = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let release = text.lines().find_map(|l| l.strip_prefix("release: "))?;
            release.split('.').nth(1)?.parse::<u32>().ok()
        });
    let file = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("bench/start-order.sym");
    if minor.is_some_and(|m| m >= 90) && file.is_file() {
        println!(
            "cargo::rustc-link-arg-bin=daemonic=-Wl,--symbol-ordering-file={}",
            file.display()
        );
        println!("cargo::rustc-link-arg-bin=daemonic=-Wl,--no-warn-symbol-ordering");
    }
}
