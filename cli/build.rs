//! Links `berth` as a position-dependent executable on Linux. Each container start runs the
//! binary twice (the command, then `__init`), and a position-independent one spends about a
//! millisecond of each start applying its 50,000 relocations (page faults on every page they
//! touch); a fixed address has none. `-z pack-relative-relocs` was tried instead and saves
//! almost nothing (331 page faults at start down to 311, against 111 here). The trade: berth's
//! own code sits at a known address (shared libraries, stack and heap are still placed at
//! random), a defence in depth that Rust's memory safety makes less needed; removing the line
//! below undoes it.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
