//! End-to-end: concurrent berth processes on one root never corrupt it, and a process killed
//! mid-write leaves the store readable.

mod common;

use std::process::Stdio;

use common::{Berth, busybox_rootfs, require, sh};

/// Every image the store lists has all its blobs, each matching its digest, and skopeo
/// reads each one.
fn assert_consistent(b: &Berth) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.root().join("index.json")).unwrap())
            .expect("index.json parses");
    for d in index["manifests"].as_array().unwrap() {
        let digest = d["digest"].as_str().unwrap();
        let manifest =
            std::fs::read(b.root().join("blobs/sha256").join(&digest[7..])).expect("manifest blob");
        assert_eq!(format!("sha256:{}", sh_sha256(&manifest)), digest);
        let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        for blob in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
            let digest = blob["digest"].as_str().unwrap();
            let bytes = std::fs::read(b.root().join("blobs/sha256").join(&digest[7..]))
                .expect("blob present");
            assert_eq!(
                format!("sha256:{}", sh_sha256(&bytes)),
                digest,
                "blob content matches"
            );
        }
        if let Some(name) = d["annotations"]["org.opencontainers.image.ref.name"].as_str() {
            sh(&format!(
                "skopeo inspect oci:{}:{name} >/dev/null",
                b.root().display()
            ));
        }
    }
    b.ok(&["images"]);
}

fn sh_sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn two_imports_and_an_rmi_at_once() {
    require("skopeo");
    let b = Berth::new();
    let rootfs = busybox_rootfs(&b.path("rootfs"));
    let rootfs = rootfs.to_str().unwrap();
    for round in 0..4 {
        b.ok(&["import", rootfs, &format!("victim:{round}")]);
        let a = b
            .cmd(&[
                "import",
                "-c",
                &format!("ENV ROUND={round}"),
                rootfs,
                &format!("a:{round}"),
            ])
            .spawn()
            .unwrap();
        let c = b
            .cmd(&[
                "import",
                "-c",
                &format!("ENV OTHER={round}"),
                rootfs,
                &format!("c:{round}"),
            ])
            .spawn()
            .unwrap();
        let r = b
            .cmd(&["rmi", &format!("victim:{round}")])
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(a.wait_with_output().unwrap().status.success());
        assert!(c.wait_with_output().unwrap().status.success());
        assert_consistent(&b);
        b.ok(&["inspect", &format!("a:{round}"), &format!("c:{round}")]);
    }
    // The shared layer survived every rmi because other images still use it.
    assert_eq!(
        std::fs::read_dir(b.root().join("snapshots"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn kill_dash_nine_mid_import_leaves_the_store_readable() {
    require("skopeo");
    let b = Berth::new();
    b.import_busybox("keep");
    // A large rootfs so the import is still running when it is killed.
    let big = b.path("big");
    std::fs::create_dir_all(big.join("data")).unwrap();
    sh(&format!(
        "head -c 200000000 /dev/urandom > {}/data/blob",
        big.display()
    ));
    for delay_ms in [20u64, 150, 400] {
        let mut child = b
            .cmd(&["import", big.to_str().unwrap(), "big"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_consistent(&b);
        assert!(b.ok(&["images"]).contains("keep"));
    }
    // The next process finds the leftovers and removes them.
    b.ok(&["images"]);
    assert_eq!(
        std::fs::read_dir(b.root().join("tmp")).unwrap().count(),
        0,
        "leftovers cleaned"
    );
}
