//! `daemonic-keeper`: the small image a keeper re-executes into once its program runs, so that
//! a service's resident keeper carries neither the command line's parser nor its heap. It is
//! started by `daemonic start` and `daemonic run`, never by hand.
//!
//! On glibc Linux it has no Rust `main` (see `entry.rs`): the standard runtime's start-up (a
//! signal stack, a stdio read of `/proc/self/maps`) would stay resident for the service's whole
//! life, and the keeper needs none of it.
#![cfg_attr(all(target_os = "linux", target_env = "gnu"), no_main)]

#[path = "../entry.rs"]
mod entry;

entry::entry_point!(run);

fn run() -> u8 {
    daemonic::keeper_entry().unwrap_or_else(|| {
        eprintln!("daemonic-keeper: started by `daemonic start` and `daemonic run`, not by hand");
        2
    })
}
