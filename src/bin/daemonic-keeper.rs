//! `daemonic-keeper`: the small image a keeper re-executes into once its program runs, so that
//! a service's resident keeper carries neither the command line's parser nor its heap. It is
//! started by `daemonic start` and `daemonic run`, never by hand.

fn main() -> std::process::ExitCode {
    daemonic::keeper_entry().unwrap_or_else(|| {
        eprintln!("daemonic-keeper: started by `daemonic start` and `daemonic run`, not by hand");
        std::process::ExitCode::from(2)
    })
}
