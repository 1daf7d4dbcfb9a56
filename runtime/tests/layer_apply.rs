//! Layers at the library level: `layer::create` then `layer::apply` keeps everything a rootfs
//! needs (modes with setuid, mtimes, owners, symlinks verbatim, hardlinks, xattrs, empty
//! folders, long names); whiteouts in both modes; `create` is deterministic and clamps mtimes;
//! devices are refused unless allowed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_runtime::image::layer::{self, ApplyOptions, CreateOptions, LayerError, WhiteoutMode};
use cap_std::fs::Dir;
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, XattrFlags};
use tar::EntryType;

// ---------------------------------------------------------------------------------------------
// Helpers

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn open(p: &Path) -> Dir {
    Dir::open_ambient_dir(p, cap_std::ambient_authority()).expect("open folder")
}

fn create(dir: &Path, opts: &CreateOptions) -> Vec<u8> {
    let mut out = Vec::new();
    layer::create(&open(dir), &mut out, opts).expect("create layer");
    out
}

fn apply(tar: &[u8], target: &Path, opts: &ApplyOptions) -> Result<(), LayerError> {
    layer::apply(tar, &open(target), opts).map(|_| ())
}

fn remove_mode() -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::Remove,
        ..ApplyOptions::default()
    }
}

fn overlay_mode() -> ApplyOptions {
    ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..ApplyOptions::default()
    }
}

/// Sets a path's mtime (and atime) without following a symlink.
fn set_mtime(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let ts = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, p, &ts, AtFlags::SYMLINK_NOFOLLOW).expect("set mtime");
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn lgetxattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(p, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Whether this filesystem takes `user.*` xattrs (tmpfs before 6.6 and some overlays don't).
fn user_xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").unwrap();
    let ok = rustix::fs::setxattr(&probe, "user.berth.probe", b"1", XattrFlags::empty()).is_ok();
    fs::remove_file(&probe).unwrap();
    ok
}

/// A GNU header for `name` written verbatim (no check for `..` or a leading `/`).
fn header(kind: EntryType, name: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        assert!(name.len() <= gnu.name.len());
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h.set_cksum();
    h
}

/// A tarball built entry by entry, names verbatim.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn raw(mut self, mut h: tar::Header, data: &[u8]) -> Tar {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn file(self, name: &str, data: &[u8]) -> Tar {
        let h = header(EntryType::Regular, name, data.len() as u64);
        self.raw(h, data)
    }
    fn dir(self, name: &str) -> Tar {
        let h = header(EntryType::Directory, name, 0);
        self.raw(h, &[])
    }
    fn link(self, kind: EntryType, name: &str, target: &str) -> Tar {
        let mut h = header(kind, name, 0);
        h.set_link_name_literal(target).unwrap();
        self.raw(h, &[])
    }
    fn pax(mut self, records: &[(&str, &[u8])]) -> Tar {
        self.0
            .append_pax_extensions(records.iter().copied())
            .unwrap();
        self
    }
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// What a tree holds, per relative path: type, mode, owner, mtime, content or link target,
/// and the `user.*` xattrs tested here. Folders' own mtimes included.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("symlink -> {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                format!("file {:?}", String::from_utf8_lossy(&fs::read(&p).unwrap()))
            } else if ft.is_dir() {
                "dir".to_string()
            } else {
                format!("special {:o} rdev {}", m.mode() & 0o170000, m.rdev())
            };
            let xattr =
                lgetxattr(&p, "user.berth.test").map(|v| String::from_utf8_lossy(&v).into_owned());
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                format!(
                    "{what} mode {:o} uid {} gid {} mtime {} xattr {xattr:?}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid(),
                    m.mtime()
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The entries of a tar: (path, type, mtime, link target, size).
fn entries(tar: &[u8]) -> Vec<(String, EntryType, u64, Option<String>, u64)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.entry_type(),
                h.mtime().unwrap(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned()),
                h.size().unwrap(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A rootfs with everything a layer must keep

const LONG_COMPONENT: usize = 200;

fn long_name() -> String {
    format!("long/{}", "n".repeat(LONG_COMPONENT))
}

/// A path longer than 255 bytes, in folders of 100-byte names.
fn deep_path() -> String {
    format!(
        "deep/{}/{}/{}/{}",
        "a".repeat(100),
        "b".repeat(100),
        "c".repeat(100),
        "f".repeat(60)
    )
}

/// Fills `root` with a small rootfs. `reverse` creates things in another order (the layer
/// must not depend on it). Returns whether `user.*` xattrs were set.
fn make_rootfs(root: &Path, reverse: bool) -> bool {
    let mut steps: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| {
            fs::create_dir_all(root.join("bin")).unwrap();
            fs::write(root.join("bin/su"), b"setuid binary").unwrap();
            fs::write(root.join("bin/wall"), b"setgid binary").unwrap();
            fs::write(root.join("bin/a"), b"three names, one inode").unwrap();
            fs::hard_link(root.join("bin/a"), root.join("bin/b")).unwrap();
        }),
        Box::new(|| {
            fs::create_dir_all(root.join("etc")).unwrap();
            fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
            std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime"))
                .unwrap();
            std::os::unix::fs::symlink("../bin/su", root.join("etc/rel")).unwrap();
            std::os::unix::fs::symlink("/no/such/target", root.join("etc/dangling")).unwrap();
        }),
        Box::new(|| {
            fs::create_dir_all(root.join("tmp")).unwrap();
            fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
            fs::create_dir_all(root.join("run")).unwrap();
            rustix::fs::mknodat(
                CWD,
                root.join("run/fifo"),
                FileType::Fifo,
                Mode::from_raw_mode(0o620),
                0,
            )
            .unwrap();
        }),
        Box::new(|| {
            let long = root.join(long_name());
            fs::create_dir_all(long.parent().unwrap()).unwrap();
            fs::write(&long, b"a 200-byte name").unwrap();
            let deep = root.join(deep_path());
            fs::create_dir_all(deep.parent().unwrap()).unwrap();
            fs::write(&deep, b"a path over 255 bytes").unwrap();
            fs::write(root.join("x".repeat(255)), b"NAME_MAX").unwrap();
        }),
    ];
    if reverse {
        steps.reverse();
    }
    for s in &steps {
        s();
    }
    fs::hard_link(root.join("bin/a"), root.join("etc/c")).unwrap();

    if is_root() {
        // Owner first: chown clears setuid.
        std::os::unix::fs::lchown(root.join("etc/passwd"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("bin/su"), Some(0), Some(42)).unwrap();
        std::os::unix::fs::lchown(root.join("etc/rel"), Some(7), Some(8)).unwrap();
    }
    chmod(&root.join("bin/su"), 0o4755);
    chmod(&root.join("bin/wall"), 0o2711);
    chmod(&root.join("bin/a"), 0o700);
    chmod(&root.join("etc/passwd"), 0o644);
    chmod(&root.join("tmp"), 0o1777);
    chmod(&root.join("empty"), 0o750);

    let xattrs = user_xattrs_supported(root);
    if xattrs {
        for p in ["etc/passwd", "bin"] {
            rustix::fs::setxattr(
                root.join(p),
                "user.berth.test",
                format!("value of {p}").as_bytes(),
                XattrFlags::empty(),
            )
            .unwrap();
        }
    } else {
        eprintln!(
            "note: this filesystem refuses user.* xattrs; the xattr round trip is not checked"
        );
    }

    // Times last, children before their folders; every path its own.
    let mut all = Vec::new();
    fn collect(d: &Path, out: &mut Vec<PathBuf>) {
        let mut v: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        for p in v {
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                collect(&p, out);
            }
            out.push(p);
        }
    }
    collect(root, &mut all);
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_000_000_000 + 1000 * i as i64);
    }
    xattrs
}

#[test]
fn create_then_apply_round_trips_everything() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    fs::create_dir(&src).unwrap();
    fs::create_dir(&dst).unwrap();
    let xattrs = make_rootfs(&src, false);

    let tar = create(&src, &CreateOptions::default());
    apply(&tar, &dst, &remove_mode()).expect("apply");

    let (before, after) = (snapshot(&src), snapshot(&dst));
    assert_eq!(before.len(), after.len(), "same number of paths");
    for (path, want) in &before {
        assert_eq!(after.get(path), Some(want), "{}", path.display());
    }

    // The details the table above covers, spelled out.
    let mode = |p: &str| fs::symlink_metadata(dst.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/su"), 0o4755, "setuid kept");
    assert_eq!(mode("bin/wall"), 0o2711, "setgid kept");
    assert_eq!(mode("tmp"), 0o1777, "sticky kept");
    assert_eq!(
        fs::read_link(dst.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
    assert_eq!(
        fs::read_link(dst.join("etc/dangling")).unwrap(),
        Path::new("/no/such/target")
    );
    let ino = |p: &str| fs::metadata(dst.join(p)).unwrap().ino();
    assert_eq!(ino("bin/a"), ino("bin/b"), "hardlinks share an inode");
    assert_eq!(ino("bin/a"), ino("etc/c"), "hardlinks share an inode");
    assert_eq!(fs::metadata(dst.join("bin/a")).unwrap().nlink(), 3);
    assert!(
        fs::read_dir(dst.join("empty/nested-empty"))
            .unwrap()
            .next()
            .is_none(),
        "empty folders kept"
    );
    assert_eq!(
        fs::read(dst.join(deep_path())).unwrap(),
        b"a path over 255 bytes"
    );
    assert_eq!(fs::read(dst.join(long_name())).unwrap(), b"a 200-byte name");
    assert!(deep_path().len() > 255 && long_name().len() > 100);
    let fifo = fs::symlink_metadata(dst.join("run/fifo")).unwrap();
    assert_eq!(fifo.mode() & 0o170000, 0o010000, "fifo kept");
    if xattrs {
        assert_eq!(
            lgetxattr(&dst.join("etc/passwd"), "user.berth.test").unwrap(),
            b"value of etc/passwd"
        );
        assert_eq!(
            lgetxattr(&dst.join("bin"), "user.berth.test").unwrap(),
            b"value of bin"
        );
    }
    if is_root() {
        let m = fs::symlink_metadata(dst.join("etc/passwd")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678), "owner kept");
        let m = fs::symlink_metadata(dst.join("etc/rel")).unwrap();
        assert_eq!((m.uid(), m.gid()), (7, 8), "a symlink's own owner kept");
    } else {
        eprintln!("note: not root, owners are not checked");
    }

    // The tar itself: long names survive as names, hardlinks as links to the first path.
    let es = entries(&tar);
    assert!(es.iter().any(|e| e.0 == deep_path()));
    assert!(
        es.iter()
            .any(|e| e.0 == "bin/b" && e.1 == EntryType::Link && e.3.as_deref() == Some("bin/a"))
    );
    assert!(
        es.iter()
            .any(|e| e.0 == "etc/c" && e.1 == EntryType::Link && e.3.as_deref() == Some("bin/a"))
    );

    // And the applied tree makes the very same layer.
    assert!(
        create(&dst, &CreateOptions::default()) == tar,
        "create(apply(create(x))) == create(x)"
    );
}

#[test]
fn create_is_deterministic() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    make_rootfs(&a, false);
    make_rootfs(&b, true);
    let first = create(&a, &CreateOptions::default());
    assert!(
        create(&a, &CreateOptions::default()) == first,
        "same folder twice, same bytes"
    );
    assert!(
        create(&b, &CreateOptions::default()) == first,
        "the same content made in another order, same bytes"
    );
    let names: Vec<String> = entries(&first).into_iter().map(|e| e.0).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted by name");
}

#[test]
fn create_clamps_mtimes() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir(d.join("dir")).unwrap();
    fs::write(d.join("dir/new"), b"n").unwrap();
    fs::write(d.join("old"), b"o").unwrap();
    std::os::unix::fs::symlink("old", d.join("link")).unwrap();
    set_mtime(&d.join("dir/new"), 2_000_000_000);
    set_mtime(&d.join("old"), 1_000);
    set_mtime(&d.join("link"), 1_700_000_000);
    set_mtime(&d.join("dir"), 1_600_000_001);

    let unclamped: BTreeMap<String, u64> = entries(&create(d, &CreateOptions::default()))
        .into_iter()
        .map(|e| (e.0, e.2))
        .collect();
    assert_eq!(unclamped["dir/new"], 2_000_000_000);
    assert_eq!(unclamped["old"], 1_000);

    let clamp = 1_600_000_000;
    let opts = CreateOptions {
        clamp_mtime: Some(clamp),
        ..CreateOptions::default()
    };
    let clamped = entries(&create(d, &opts));
    for (name, _, mtime, _, _) in &clamped {
        assert_eq!(*mtime, unclamped[name].min(clamp), "{name}");
    }
    assert_eq!(clamped.len(), 4);
    assert!(
        clamped.iter().any(|e| e.0 == "old" && e.2 == 1_000),
        "earlier mtimes are kept"
    );
}

// ---------------------------------------------------------------------------------------------
// Whiteouts

/// The lower layers, already in one folder.
fn make_lower(root: &Path) {
    for d in ["d", "o/sub", "p", "keep"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in [
        "a",
        "b",
        "d/x",
        "d/y",
        "o/old1",
        "o/sub/old2",
        "p/old",
        "keep/k",
    ] {
        fs::write(root.join(f), f.as_bytes()).unwrap();
    }
}

/// A layer deleting `a` and `d/x`, making `o` opaque after writing `o/new` (which must
/// survive), and `p` opaque before writing `p/new` (the order `create` writes).
fn upper_layer() -> Vec<u8> {
    Tar::new()
        .file(".wh.a", b"")
        .file("d/.wh.x", b"")
        .dir("o/")
        .file("o/new", b"new")
        .file("o/.wh..wh..opq", b"")
        .dir("p/")
        .file("p/.wh..wh..opq", b"")
        .file("p/new", b"new")
        .file(".wh.never-existed", b"")
        .file(".wh..wh.plnk", b"")
        .finish()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn remove_mode_whiteouts_delete_lower_content() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    make_lower(root);
    apply(&upper_layer(), root, &remove_mode()).expect("apply");

    assert_eq!(
        names(root),
        ["b", "d", "keep", "o", "p"],
        "a is whited out, no .wh. file is left"
    );
    assert_eq!(names(&root.join("d")), ["y"]);
    assert_eq!(
        names(&root.join("o")),
        ["new"],
        "opaque: lower content gone, this layer's kept"
    );
    assert_eq!(names(&root.join("p")), ["new"]);
    assert_eq!(fs::read(root.join("o/new")).unwrap(), b"new");
    assert_eq!(names(&root.join("keep")), ["k"], "untouched folders stay");
}

#[test]
fn whiteouts_naming_the_parent_or_nothing_are_refused() {
    for name in [".wh..", ".wh...", ".wh.", "d/.wh..."] {
        let t = tempfile::tempdir().unwrap();
        make_lower(t.path());
        let err = apply(
            &Tar::new().file(name, b"").finish(),
            t.path(),
            &remove_mode(),
        )
        .unwrap_err();
        match &err {
            LayerError::Refused { entry, reason } => {
                assert_eq!(entry, name);
                assert!(reason.contains("whiteout"), "{err}");
            }
            other => panic!("{name}: expected a refusal, got {other}"),
        }
        assert_eq!(
            names(t.path()),
            ["a", "b", "d", "keep", "o", "p"],
            "nothing was deleted"
        );
    }
}

#[test]
fn overlay_mode_whiteouts_become_devices_and_opaque_xattrs() {
    if !is_root() {
        eprintln!(
            "overlay_mode_whiteouts_become_devices_and_opaque_xattrs: skipped, needs root (mknod, trusted.* xattrs)"
        );
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let snap = t.path().join("snap");
    fs::create_dir(&snap).unwrap();
    // Also: an image may not forge overlayfs' own xattrs.
    let layer = {
        let mut tar = Tar::new()
            .pax(&[
                ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
                ("SCHILY.xattr.user.berth.test", b"kept"),
            ])
            .dir("forged/")
            .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
            .file("forged/file", b"f")
            .finish();
        // Append the whiteout layer's entries (drop the first tar's end-of-archive blocks).
        tar.truncate(tar.len() - 1024);
        tar.extend_from_slice(&upper_layer());
        tar
    };
    apply(&layer, &snap, &overlay_mode()).expect("apply");

    for wh in ["a", "d/x", "never-existed"] {
        let m = fs::symlink_metadata(snap.join(wh)).unwrap();
        assert_eq!(m.mode() & 0o170000, 0o020000, "{wh} is a character device");
        assert_eq!(m.rdev(), 0, "{wh} is device 0/0");
        // The entry's mtime, not the time of extraction: a layer made back from this
        // snapshot (as `berth import` does) must not depend on when it was unpacked.
        assert_eq!(m.mtime(), 1_600_000_000, "{wh} keeps its entry's mtime");
    }
    for d in ["o", "p"] {
        assert_eq!(
            lgetxattr(&snap.join(d), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{d} is opaque"
        );
    }
    assert_eq!(names(&snap.join("o")), ["new"]);
    assert_eq!(names(&snap.join("p")), ["new"]);
    assert!(
        !names(&snap).iter().any(|n| n.starts_with(".wh.")),
        "no .wh. names on disk"
    );
    assert_eq!(
        lgetxattr(&snap.join("forged"), "trusted.overlay.opaque"),
        None,
        "forged opaque ignored"
    );
    assert_eq!(
        lgetxattr(&snap.join("forged/file"), "trusted.overlay.redirect"),
        None,
        "forged redirect ignored"
    );
    if user_xattrs_supported(t.path()) {
        assert_eq!(
            lgetxattr(&snap.join("forged"), "user.berth.test").as_deref(),
            Some(&b"kept"[..])
        );
    }

    // An upper dir made into a layer: devices and the xattr become OCI whiteouts again.
    let opts = CreateOptions {
        overlay_whiteouts: true,
        ..CreateOptions::default()
    };
    let oci = entries(&create(&snap, &opts));
    let find = |name: &str| oci.iter().find(|e| e.0 == name);
    for wh in [
        ".wh.a",
        "d/.wh.x",
        ".wh.never-existed",
        "o/.wh..wh..opq",
        "p/.wh..wh..opq",
    ] {
        let e = find(wh).unwrap_or_else(|| panic!("{wh} in {oci:?}"));
        assert_eq!((e.1, e.4), (EntryType::Regular, 0), "{wh} is an empty file");
        assert_eq!(e.2, 1_600_000_000, "{wh} keeps the whiteout's mtime");
    }
    assert!(
        find("a").is_none() && find("d/x").is_none(),
        "no device for a whiteout"
    );
    assert!(
        find("forged/.wh..wh..opq").is_none(),
        "a forged xattr did not become opaque"
    );
    assert!(
        !oci.iter().any(|e| e.1 == EntryType::Char),
        "no device entries"
    );
    // The opaque marker follows its folder's own entry, before the folder's content.
    let pos = |name: &str| oci.iter().position(|e| e.0 == name).unwrap();
    assert!(pos("p/") < pos("p/.wh..wh..opq") && pos("p/.wh..wh..opq") < pos("p/new"));

    // Without overlay_whiteouts the device is plain content, and overlayfs xattrs never leak.
    let plain = entries(&create(&snap, &CreateOptions::default()));
    assert!(plain.iter().any(|e| e.0 == "a" && e.1 == EntryType::Char));
    assert!(!plain.iter().any(|e| e.0.contains(".wh.")));
    let plain_tar = create(&snap, &CreateOptions::default());
    let mut a = tar::Archive::new(&plain_tar[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                assert!(
                    !x.unwrap().key().unwrap().contains("trusted.overlay"),
                    "overlay xattrs are not carried"
                );
            }
        }
    }

    // And the OCI layer applied in remove mode onto the lower layers does what the original did.
    let (via_oci, direct) = (t.path().join("via-oci"), t.path().join("direct"));
    for d in [&via_oci, &direct] {
        fs::create_dir(d).unwrap();
        make_lower(d);
    }
    apply(&create(&snap, &opts), &via_oci, &remove_mode()).unwrap();
    apply(&layer, &direct, &remove_mode()).unwrap();
    assert_eq!(
        snapshot(&via_oci).keys().collect::<Vec<_>>(),
        snapshot(&direct).keys().collect::<Vec<_>>()
    );
    assert_eq!(names(&via_oci.join("o")), ["new"]);
    assert!(!via_oci.join("a").exists() && via_oci.join("b").exists());
}

// ---------------------------------------------------------------------------------------------
// Devices, and the escapes, at the library level

#[test]
fn devices_are_refused_unless_allowed() {
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Remove,
        allow_devices: false,
        preserve_owner: false,
    };
    for kind in [EntryType::Char, EntryType::Block] {
        let t = tempfile::tempdir().unwrap();
        let mut h = header(kind, "dev/mem", 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(1).unwrap();
        let tar = Tar::new().dir("dev/").raw(h, &[]).finish();
        match apply(&tar, t.path(), &opts).unwrap_err() {
            LayerError::Refused { entry, reason } => {
                assert_eq!(entry, "dev/mem");
                assert!(reason.contains("device nodes are not allowed"), "{reason}");
            }
            other => panic!("expected a refusal, got {other}"),
        }
        assert!(fs::symlink_metadata(t.path().join("dev/mem")).is_err());
    }
    // A fifo is no device.
    let t = tempfile::tempdir().unwrap();
    apply(
        &Tar::new()
            .raw(header(EntryType::Fifo, "fifo", 0), &[])
            .finish(),
        t.path(),
        &opts,
    )
    .unwrap();
    assert_eq!(
        fs::symlink_metadata(t.path().join("fifo")).unwrap().mode() & 0o170000,
        0o010000
    );

    if is_root() {
        let t = tempfile::tempdir().unwrap();
        let mut h = header(EntryType::Char, "null", 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_mode(0o666);
        let allowed = ApplyOptions {
            allow_devices: true,
            ..opts.clone()
        };
        apply(&Tar::new().raw(h, &[]).finish(), t.path(), &allowed).unwrap();
        let m = fs::symlink_metadata(t.path().join("null")).unwrap();
        assert_eq!(m.mode() & 0o170000, 0o020000);
        assert_eq!(m.rdev(), rustix::fs::makedev(1, 3));
        assert_eq!(m.mode() & 0o7777, 0o666);
    } else {
        eprintln!("note: not root, creating an allowed device is not checked");
    }
}

#[test]
fn escapes_are_refused_naming_the_entry() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();
    let abs = outside.to_str().unwrap().to_string();
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            Tar::new().file("../outside/victim", b"x").finish(),
            "../outside/victim",
            "climbs out",
        ),
        (
            Tar::new().file("a/../../x", b"x").finish(),
            "a/../../x",
            "climbs out",
        ),
        (
            Tar::new()
                .link(EntryType::Symlink, "l", &abs)
                .file("l/victim", b"x")
                .finish(),
            "l/victim",
            "outside the layer through a symlink",
        ),
        (
            Tar::new()
                .link(EntryType::Symlink, "l", "../outside")
                .file("l/new", b"x")
                .finish(),
            "l/new",
            "outside the layer through a symlink",
        ),
        (
            Tar::new()
                .link(EntryType::Symlink, "l", &abs)
                .dir("l/d/")
                .finish(),
            "l/d/",
            "outside the layer through a symlink",
        ),
        (
            Tar::new()
                .link(EntryType::Symlink, "l", "../outside")
                .file("l/.wh.victim", b"")
                .finish(),
            "l/.wh.victim",
            "outside the layer through a symlink",
        ),
        (
            Tar::new()
                .link(EntryType::Symlink, "l", &abs)
                .link(EntryType::Link, "h", "l/victim")
                .finish(),
            "h",
            "outside the layer through a symlink",
        ),
        (
            Tar::new()
                .link(EntryType::Link, "h", "../outside/victim")
                .finish(),
            "h",
            "climbs out",
        ),
        (
            Tar::new()
                .link(EntryType::Link, "h", "/etc/passwd")
                .finish(),
            "h",
            "not in this layer",
        ),
        (
            Tar::new()
                .dir("d/")
                .link(EntryType::Link, "h", "d")
                .finish(),
            "h",
            "hardlinks a folder",
        ),
        (
            Tar::new()
                .link(EntryType::Symlink, "x", "y")
                .link(EntryType::Symlink, "y", "x")
                .file("x/f", b"")
                .finish(),
            "x/f",
            "symlink loop",
        ),
    ];
    for (i, (tar, want_entry, why)) in cases.into_iter().enumerate() {
        let target = t.path().join(format!("t{i}"));
        fs::create_dir(&target).unwrap();
        match apply(&tar, &target, &remove_mode()).unwrap_err() {
            LayerError::Refused { entry, reason } => {
                assert_eq!(entry, want_entry, "case {i}");
                assert!(reason.contains(why), "case {i}: {reason}");
            }
            other => panic!("case {i} ({want_entry}): expected a refusal, got {other}"),
        }
        assert_eq!(names(&outside), ["victim"], "case {i}");
        assert_eq!(
            fs::read(outside.join("victim")).unwrap(),
            b"original",
            "case {i}"
        );
        assert_eq!(
            fs::metadata(outside.join("victim")).unwrap().nlink(),
            1,
            "case {i}"
        );
        assert_eq!(
            fs::metadata(&outside).unwrap().mode() & 0o7777,
            0o755,
            "case {i}"
        );
    }
}

#[test]
fn truncated_archives_fail() {
    let t = tempfile::tempdir().unwrap();
    let mut tar = Tar::new().file("ok", b"fine").finish();
    tar.truncate(tar.len() - 1024);
    tar.extend_from_slice(header(EntryType::Regular, "big", 1 << 40).as_bytes());
    tar.extend_from_slice(&[0u8; 700]);
    let err = apply(&tar, t.path(), &remove_mode()).unwrap_err();
    assert!(matches!(err, LayerError::Archive(_)), "{err}");

    let mut garbage = vec![0x42u8; 1024];
    garbage[0] = b'x';
    let err = apply(&garbage, t.path(), &remove_mode()).unwrap_err();
    assert!(matches!(err, LayerError::Archive(_)), "{err}");
}

#[test]
fn folder_replaced_by_a_symlink_later_in_the_layer() {
    // Folder times are set after all entries; a folder a later entry replaced by a symlink
    // (absolute, or relative and pointing out) must neither stop the layer nor be followed.
    for target in ["/somewhere/else", "../../../../..", "inside"] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("inside/e/f")).unwrap();
        let tar = Tar::new()
            .dir("d/")
            .dir("d/e/")
            .dir("d/e/f/")
            .file("d/e/f/file", b"x")
            .link(EntryType::Symlink, "d", target)
            .finish();
        apply(&tar, &root, &remove_mode()).unwrap_or_else(|e| panic!("d -> {target}: {e}"));
        assert_eq!(fs::read_link(root.join("d")).unwrap(), Path::new(target));
    }
}

#[test]
fn apply_reads_gzip_and_zstd_through_decompress() {
    let t = tempfile::tempdir().unwrap();
    let tar = Tar::new().dir("d/").file("d/f", b"content").finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::stream::encode_all(&tar[..], 1).unwrap();
    for (i, blob) in [tar.clone(), gz, zst].into_iter().enumerate() {
        let target = t.path().join(i.to_string());
        fs::create_dir(&target).unwrap();
        let mut reader = layer::decompress(&blob[..]).unwrap();
        let mut plain = Vec::new();
        reader.read_to_end(&mut plain).unwrap();
        assert!(plain == tar, "case {i} decompresses to the tar");
        apply(&plain, &target, &remove_mode()).unwrap();
        assert_eq!(fs::read(target.join("d/f")).unwrap(), b"content");
    }
}
