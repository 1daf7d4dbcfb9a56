//! The aarch64 Linux build of berth (cross-compiled by tests/run.sh with Debian's
//! gcc-aarch64-linux-gnu) run under qemu-aarch64-static: it loads a WASI image that the x86_64
//! berth built and runs it with `--isolation wasi`, the path that needs no namespaces. Only
//! this runs emulated: qemu-user refuses the namespace clones and seccomp filters of berth's
//! sandbox, and what the emulated run proves that the native tests do not is the aarch64
//! binary itself (its engine compiling wasm for aarch64, its store code), not the sandbox.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// The aarch64 berth, built where tests/run.sh builds it.
fn aarch64_berth() -> PathBuf {
    let target = Path::new(env!("CARGO_BIN_EXE_berth"))
        .parent()
        .and_then(Path::parent)
        .expect("the target folder");
    let p = target.join("aarch64-unknown-linux-gnu/wine/berth");
    assert!(
        p.exists(),
        "{} is missing: build it as tests/run.sh does (cargo build --profile wine --target aarch64-unknown-linux-gnu -p berth-cli)",
        p.display()
    );
    p
}

/// `berth ARGS` of the aarch64 build under qemu, with the store `root`.
fn emulated(root: &Path, args: &[&str]) -> Output {
    require("qemu-aarch64-static");
    Command::new("qemu-aarch64-static")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(aarch64_berth())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run qemu-aarch64-static")
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = emulated(root, args);
    assert!(
        out.status.success(),
        "aarch64 berth {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_aarch64_build_runs_a_wasi_image_that_x86_64_built() {
    let b = Berth::new();
    let ctx = b.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(probe("wasm32-wasip1"), ctx.join("probe.wasm")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY probe.wasm /probe.wasm\nRUN [\"/probe.wasm\", \"write\", \"/made.txt\", \"by a wasm RUN\"]\nENTRYPOINT [\"/probe.wasm\"]\n",
    )
    .unwrap();
    let id = b.ok(&["build", "-q", "-t", "probe", ctx.to_str().unwrap()]);
    let archive = b.path("probe.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "probe"]);

    let root = b.path("aarch64-root");
    ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    // The same image, by the same id, on both.
    let ids = ok(&root, &["images", "-q", "--no-trunc"]);
    assert_eq!(ids.trim(), id.trim(), "{ids}");
    // `run --rm --isolation wasi probe ARGS`, the path that needs no namespaces.
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--isolation", "wasi", "probe"];
        all.extend_from_slice(args);
        emulated(&root, &all)
    };
    let text = |o: Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        text(run(&["args", "on aarch64"])),
        "/probe.wasm\nargs\non aarch64\n"
    );
    // The layer the x86_64 build's wasm RUN made, and the guest's own exit code.
    assert_eq!(text(run(&["cat", "/made.txt"])), "by a wasm RUN");
    let out = run(&["exit", "7"]);
    assert_eq!(out.status.code(), Some(7));
    // Without --isolation wasi the sandbox needs namespaces, which qemu-user refuses: berth
    // says it could not start (125), never runs the guest outside it.
    let out = emulated(&root, &["run", "--rm", "probe", "args"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
