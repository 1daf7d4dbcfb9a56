//! End-to-end: image commands on a busybox image made with `berth import`, checked against
//! skopeo and umoci reading what berth wrote.

mod common;

use common::{Berth, busybox_rootfs, require, sh, tree};

#[test]
fn import_images_tag_inspect_history() {
    let b = Berth::new();
    let id = b.import_busybox("busybox");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let table = b.ok(&["images"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("busybox ") && row.contains("latest") && row.contains(&id[7..19]),
        "{table}"
    );

    b.ok(&["tag", "busybox", "localhost:5000/tools/bb:1.0"]);
    let q = b.ok(&["images", "-q"]);
    assert_eq!(q.trim(), &id[7..19], "one image, listed once: {q}");
    let json = b.ok(&["images", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .any(|r| r["Repository"] == "localhost:5000/tools/bb" && r["Tag"] == "1.0")
    );
    assert_eq!(
        b.ok(&["images", "localhost:5000/tools/bb"]).lines().count(),
        2
    );
    assert_eq!(
        b.ok(&["images", "--filter", "reference=busy*"])
            .lines()
            .count(),
        2
    );

    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "busybox"])).unwrap();
    let img = &inspect[0];
    assert_eq!(img["Id"], id);
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        img["Manifest"]["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let tags: Vec<&str> = img["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tags, ["busybox:latest", "localhost:5000/tools/bb:1.0"]);
    // By id prefix, and by the full id.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", &id[7..13]])).unwrap()[0]["Id"],
        id
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", &id])).unwrap()[0]["Id"],
        id
    );

    let history = b.ok(&["history", "busybox"]);
    assert!(history.starts_with("IMAGE"), "{history}");
    assert!(history.contains("Imported from"), "{history}");
    assert!(history.contains(&id[7..19]), "{history}");
}

#[test]
fn import_from_tarball_stdin_and_changes() {
    let b = Berth::new();
    let rootfs = busybox_rootfs(&b.path("rootfs"));
    let tarball = b.path("rootfs.tar.gz");
    sh(&format!(
        "tar -C {} -czf {} .",
        rootfs.display(),
        tarball.display()
    ));
    let from_file = b.ok(&[
        "import",
        "-c",
        "ENV A=1 B=two",
        "-c",
        "WORKDIR /srv",
        "-c",
        "EXPOSE 8080",
        "-c",
        "ENTRYPOINT [\"/bin/echo\"]",
        "-m",
        "my base",
        tarball.to_str().unwrap(),
        "base:gz",
    ]);
    let cfg: serde_json::Value = serde_json::from_str(&b.ok(&["inspect", "base:gz"])).unwrap();
    let c = &cfg[0]["Config"];
    assert_eq!(c["Env"], serde_json::json!(["A=1", "B=two"]));
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert_eq!(cfg[0]["History"][0]["comment"], "my base");

    // Standard input, and a plain folder: the same files give the same layer.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gunzip -c {} | BERTH_ROOT={} {} import - base:stdin",
            tarball.display(),
            b.root().display(),
            env!("CARGO_BIN_EXE_berth")
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_dir = b.ok(&["import", rootfs.to_str().unwrap(), "base:dir"]);
    let layer = |name: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", name])).unwrap()[0]["RootFS"]["Layers"][0].clone()
    };
    assert_eq!(
        layer("base:gz"),
        layer("base:stdin"),
        "tarball and stdin give the same layer"
    );
    assert_eq!(
        layer("base:gz"),
        layer("base:dir"),
        "tarball and folder give the same layer"
    );
    assert_ne!(from_file, from_dir, "configs differ (changes, comment)");
}

#[test]
fn save_is_read_by_skopeo_and_umoci_and_loads_back() {
    require("skopeo");
    require("umoci");
    let b = Berth::new();
    let id = b.import_busybox("busybox");
    let archive = b.path("busybox.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);

    // skopeo reads the archive and the store itself.
    let inspect = sh(&format!("skopeo inspect oci-archive:{}", archive.display()));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let manifest_digest = v["Digest"].as_str().unwrap().to_string();
    let store = sh(&format!(
        "skopeo inspect oci:{}:docker.io/library/busybox:latest",
        b.root().display()
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&store).unwrap()["Digest"],
        manifest_digest
    );

    // umoci unpacks the same files the image was made of.
    let layout = b.path("layout");
    std::fs::create_dir(&layout).unwrap();
    sh(&format!(
        "tar -C {} -xf {}",
        layout.display(),
        archive.display()
    ));
    let bundle = b.path("bundle");
    sh(&format!(
        "umoci unpack --image {}:latest {}",
        layout.display(),
        bundle.display()
    ));
    let unpacked = tree(&bundle.join("rootfs"));
    let original = tree(&b.path("busybox-rootfs"));
    assert_eq!(
        unpacked, original,
        "umoci's rootfs has exactly the imported files"
    );
    let busybox = std::fs::read(bundle.join("rootfs/bin/busybox")).unwrap();
    assert_eq!(
        busybox,
        std::fs::read(b.path("busybox-rootfs/bin/busybox")).unwrap()
    );

    // load into a fresh store gives the same digests back.
    let b2 = Berth::new();
    let out = b2.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
    let i2: serde_json::Value = serde_json::from_str(&b2.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(i2[0]["Id"], id);
    assert_eq!(i2[0]["Descriptor"]["digest"], manifest_digest);

    // An archive skopeo made loads to the same image too.
    let sk = b.path("skopeo.tar");
    sh(&format!(
        "skopeo copy oci-archive:{} oci-archive:{}:busybox:latest",
        archive.display(),
        sk.display()
    ));
    let b3 = Berth::new();
    let out = b3.ok(&["load", "-i", sk.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
    let i3: serde_json::Value = serde_json::from_str(&b3.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(i3[0]["Descriptor"]["digest"], manifest_digest);
    assert_eq!(i3[0]["Id"], id);

    // A docker-archive (skopeo's docker-archive transport) loads too, with the same image id.
    let da = b.path("docker.tar");
    sh(&format!(
        "skopeo copy oci-archive:{} docker-archive:{}:busybox:latest",
        archive.display(),
        da.display()
    ));
    let b4 = Berth::new();
    let out = b4.ok(&["load", "-i", da.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: busybox:latest");
    let i4: serde_json::Value = serde_json::from_str(&b4.ok(&["inspect", "busybox"])).unwrap();
    assert_eq!(
        i4[0]["Id"], id,
        "docker-archive keeps the config, so the image id"
    );
}

#[test]
fn rmi_untags_then_deletes_and_collects_garbage() {
    let b = Berth::new();
    let id = b.import_busybox("busybox");
    b.ok(&["tag", "busybox", "other:1"]);
    let blobs = || {
        std::fs::read_dir(b.root().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let snapshots = || {
        std::fs::read_dir(b.root().join("snapshots"))
            .unwrap()
            .count()
    };
    assert_eq!(blobs(), 3, "manifest, config, layer");
    assert_eq!(snapshots(), 1);

    // An id with two names needs -f.
    let (code, err) = b.fail(&["rmi", &id[7..19]]);
    assert_eq!(code, 1);
    assert!(
        err.contains("must be forced") && err.contains("-f"),
        "{err}"
    );

    // A second image sharing the layer: removing one keeps the shared layer.
    let rootfs = b.path("busybox-rootfs");
    let other = b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/true\"]",
        rootfs.to_str().unwrap(),
        "sibling",
    ]);
    assert_ne!(other.trim(), id);
    assert_eq!(blobs(), 5, "the layer is shared");

    assert_eq!(b.ok(&["rmi", "other:1"]).trim(), "Untagged: other:1");
    assert_eq!(blobs(), 5, "untagging frees nothing");
    let out = b.ok(&["rmi", "busybox"]);
    assert!(
        out.contains("Untagged: busybox:latest") && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    assert_eq!(blobs(), 3, "the shared layer stays for sibling");
    assert_eq!(snapshots(), 1);
    b.ok(&["rmi", "sibling"]);
    assert_eq!(blobs(), 0);
    assert_eq!(snapshots(), 0);
    assert_eq!(b.ok(&["images", "-q"]), "");
}

#[test]
fn retagging_leaves_a_dangling_image() {
    let b = Berth::new();
    let first = b.import_busybox("app");
    let rootfs = b.path("busybox-rootfs");
    b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/true\"]",
        rootfs.to_str().unwrap(),
        "app",
    ]);
    let table = b.ok(&["images"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("<none>") && l.contains(&first[7..19])),
        "{table}"
    );
    assert_eq!(
        b.ok(&["images", "-q", "--filter", "dangling=true"]).trim(),
        &first[7..19]
    );
    b.ok(&["rmi", &first[7..19]]);
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 1);
}

#[test]
fn bad_input_gets_clear_errors_and_changes_nothing() {
    let b = Berth::new();
    b.import_busybox("busybox");
    let before = tree(&b.root());

    let (code, err) = b.fail(&["inspect", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such image: nosuch"), "{err}");
    let (_, err) = b.fail(&["rmi", "nosuch:tag"]);
    assert!(err.contains("no such image"), "{err}");
    let (_, err) = b.fail(&["tag", "busybox", "Bad:Name"]);
    assert!(err.contains("lowercase"), "{err}");
    let (code, err) = b.fail(&["images", "--bogus"]);
    assert_eq!(code, 125, "a wrong flag exits 125 as Docker's does");
    assert!(err.contains("--bogus"), "{err}");
    let (_, err) = b.fail(&["import", "/nonexistent/rootfs.tar", "x"]);
    assert!(err.contains("/nonexistent/rootfs.tar"), "{err}");
    let (_, err) = b.fail(&[
        "import",
        "-c",
        "RUN true",
        b.path("busybox-rootfs").to_str().unwrap(),
        "x",
    ]);
    assert!(err.contains("RUN cannot be applied"), "{err}");
    let (_, err) = b.fail(&[
        "import",
        "-c",
        "FROB x",
        b.path("busybox-rootfs").to_str().unwrap(),
        "x",
    ]);
    assert!(
        err.contains("--change") && err.to_lowercase().contains("unknown instruction"),
        "{err}"
    );

    // A corrupt archive: not a tar, and a tar whose blob does not match its name.
    let junk = b.path("junk.tar");
    std::fs::write(&junk, b"this is not an archive").unwrap();
    let (_, err) = b.fail(&["load", "-i", junk.to_str().unwrap()]);
    assert!(err.contains("archive"), "{err}");
    let archive = b.path("good.tar");
    b.ok(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    let tampered = b.path("tampered");
    std::fs::create_dir(&tampered).unwrap();
    sh(&format!(
        "tar -C {} -xf {}",
        tampered.display(),
        archive.display()
    ));
    let layer = sh(&format!(
        "ls -S {}/blobs/sha256 | head -1",
        tampered.display()
    ));
    sh(&format!(
        "printf x >> {}/blobs/sha256/{}",
        tampered.display(),
        layer.trim()
    ));
    let bad = b.path("bad.tar");
    sh(&format!(
        "tar -C {} -cf {} .",
        tampered.display(),
        bad.display()
    ));
    let b2 = Berth::new();
    let (_, err) = b2.fail(&["load", "-i", bad.to_str().unwrap()]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert_eq!(b2.ok(&["images", "-q"]), "", "nothing half-loaded is named");
    assert_eq!(
        std::fs::read_dir(b2.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "and no blob is left behind"
    );

    // Writing an archive to a path that cannot be written leaves nothing behind.
    let (_, err) = b.fail(&["save", "-o", "/nonexistent/dir/out.tar", "busybox"]);
    assert!(err.contains("/nonexistent/dir"), "{err}");

    assert_eq!(
        tree(&b.root()),
        before,
        "failed commands left the store as it was"
    );
}

#[test]
fn import_zstd_and_plain_tarballs() {
    require("zstd");
    let b = Berth::new();
    let rootfs = busybox_rootfs(&b.path("rootfs"));
    let plain = b.path("rootfs.tar");
    let zst = b.path("rootfs.tar.zst");
    sh(&format!(
        "tar -C {} -cf {} .",
        rootfs.display(),
        plain.display()
    ));
    sh(&format!(
        "zstd -q -f {} -o {}",
        plain.display(),
        zst.display()
    ));
    let layer = |name: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", name])).unwrap()[0]["RootFS"]["Layers"][0].clone()
    };
    b.ok(&["import", plain.to_str().unwrap(), "plain"]);
    b.ok(&["import", zst.to_str().unwrap(), "zst"]);
    assert_eq!(
        layer("plain"),
        layer("zst"),
        "the same files whatever the compression"
    );
}

#[test]
fn system_prune_removes_what_nothing_uses() {
    let b = Berth::new();
    let id = b.import_busybox("busybox");
    let rootfs = b.path("busybox-rootfs");
    b.ok(&["import", rootfs.to_str().unwrap(), "app"]);
    b.ok(&[
        "import",
        "-c",
        "CMD [\"true\"]",
        rootfs.to_str().unwrap(),
        "app",
    ]);
    b.ok(&[
        "create", "--name", "stopped", "-v", "/anon", "busybox", "true",
    ]);
    let out = b.ok(&["system", "prune", "-f", "--volumes"]);
    assert!(
        out.contains("Deleted Containers:")
            && out.contains("Deleted Volumes:")
            && out.contains("Deleted Images:"),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    // Named images stay without -a; with -a every unused one goes.
    assert_eq!(b.ok(&["images", "-q"]).lines().count(), 2);
    assert!(b.ok(&["images", "-q"]).contains(&id[7..19]));
    b.ok(&["system", "prune", "-a", "-f"]);
    assert_eq!(b.ok(&["images", "-q"]), "");
    assert_eq!(
        std::fs::read_dir(b.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}
