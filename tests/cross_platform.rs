//! The cross-platform demo, run as a newcomer runs it (`bash examples/cross-platform/demo.sh`)
//! with the binaries tests/run.sh built: one WASI image built on Linux and pushed to a
//! loopback registry, then pulled and run by berth for x86_64, for aarch64 under qemu-user and
//! for Windows under wine, each printing the same image id and the same output.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

#[test]
fn the_cross_platform_demo_shows_one_image_and_one_output_on_three_platforms() {
    let berth = Path::new(env!("CARGO_BIN_EXE_berth"));
    let target = berth
        .parent()
        .and_then(Path::parent)
        .expect("the target folder");
    let aarch64 = target.join("aarch64-unknown-linux-gnu/wine/berth");
    let exe = target.join("x86_64-pc-windows-gnu/wine/berth.exe");
    for p in [&aarch64, &exe] {
        assert!(
            p.exists(),
            "{} is missing: run the tests through tests/run.sh, which cross-compiles it",
            p.display()
        );
    }
    let out = Command::new("bash")
        .arg(common::repo().join("examples/cross-platform/demo.sh"))
        .env("BERTH", berth)
        .env("BERTH_AARCH64", &aarch64)
        .env("BERTH_EXE", &exe)
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    // The table: three platforms, one image id, and the index the wasm RUN step made.
    for platform in ["linux/amd64", "linux/arm64 (qemu)", "windows/amd64 (wine)"] {
        assert!(stdout.contains(platform), "{stdout}");
    }
    assert!(stdout.contains("the same image"), "{stdout}");
    assert!(stdout.contains("harbour.txt: 27 words"), "{stdout}");
    assert!(stdout.contains("tide.txt: 8 words"), "{stdout}");
}
