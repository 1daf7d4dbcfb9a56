//! The aarch64 Linux build of berth (cross-compiled by tests/run.sh with Debian's
//! gcc-aarch64-linux-gnu) run under qemu-aarch64-static: it loads a WASI image that the x86_64
//! berth built and runs it with `--isolation wasi`, the path that needs no namespaces. Only
//! this runs emulated: qemu-user refuses the namespace clones and seccomp filters of berth's
//! sandbox, and what the emulated run proves that the native tests do not is the aarch64
//! binary itself (its engine compiling wasm for aarch64, its store code, its choice of a
//! platform from an image index), not the sandbox.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::registry::{Registry, put_blob};
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

/// An image of `os`/`arch` in the layout, over `layer`: its manifest's descriptor, with the
/// platform an index gives it.
fn put_image(layout: &Path, layer: &[u8], os: &str, arch: &str) -> serde_json::Value {
    let layer_desc = put_blob(layout, "application/vnd.oci.image.layer.v1.tar", layer);
    let config = serde_json::json!({
        "architecture": arch, "os": os,
        "config": {"Cmd": ["/which"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}
    });
    let config_desc = put_blob(
        layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc, "layers": [layer_desc]
    });
    let mut d = put_blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    d["platform"] = serde_json::json!({"os": os, "architecture": arch});
    d
}

#[test]
fn the_aarch64_build_pulls_the_arm64_image_of_an_index_else_the_wasi_one() {
    require("skopeo");
    let reg = Registry::start();
    let b = Berth::new();
    let layout = b.path("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    tar.append_data(&mut h, "which", &b"any"[..]).unwrap();
    let layer = tar.into_inner().unwrap();
    let amd64 = put_image(&layout, &layer, "linux", "amd64");
    let arm64 = put_image(&layout, &layer, "linux", "arm64");
    let wasm = put_image(&layout, &layer, "wasip1", "wasm");
    let index = |manifests: Vec<&serde_json::Value>, name: &str| {
        let mut d = put_blob(
            &layout,
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests
            }))
            .unwrap(),
        );
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        d
    };
    let all = index(vec![&amd64, &arm64, &wasm], "all");
    let no_arm = index(vec![&amd64, &wasm], "no-arm");
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [all, no_arm]}))
            .unwrap(),
    )
    .unwrap();
    for tag in ["all", "no-arm"] {
        sh(&format!(
            "skopeo copy -q --all --dest-tls-verify=false oci:{}:{tag} docker://{}/{tag}:1",
            layout.display(),
            reg.host()
        ));
    }

    let root = b.path("aarch64-root");
    let platform = |image: &str| {
        ok(&root, &["pull", "-q", image]);
        let inspected: serde_json::Value =
            serde_json::from_str(&ok(&root, &["inspect", image])).unwrap();
        format!(
            "{}/{}",
            inspected[0]["Os"].as_str().unwrap(),
            inspected[0]["Architecture"].as_str().unwrap()
        )
    };
    // The host's platform first; without it, WASI, never another machine's.
    assert_eq!(platform(&format!("{}/all:1", reg.host())), "linux/arm64");
    assert_eq!(platform(&format!("{}/no-arm:1", reg.host())), "wasip1/wasm");
    // The x86_64 berth takes the amd64 one of the same index.
    b.ok(&["pull", "-q", &format!("{}/all:1", reg.host())]);
    let inspected: serde_json::Value =
        serde_json::from_str(&b.ok(&["inspect", &format!("{}/all:1", reg.host())])).unwrap();
    assert_eq!(inspected[0]["Architecture"], "amd64");
}
