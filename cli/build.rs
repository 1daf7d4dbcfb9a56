//! Links `berth` as a position-dependent executable on Linux. Each container start runs the
//! binary twice (the command, then `__init`), and a position-independent one spends about a
//! millisecond of each start applying its 50,000 relocations (page faults on every page they
//! touch); a fixed address has none. Shared libraries are still placed at random, and
//! berth's own code is no secret: it is published.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
