//! End-to-end: a corpus of hostile layer tarballs, made here byte by byte, fed to the real
//! binary through `berth import` and `berth load`.
//!
//! For every hostile layer the command must fail with an error that names the entry and says
//! why, nothing may appear or change outside the berth root (each test has a sentinel folder,
//! `outside/`, beside the root, that hostile links point at by absolute and by relative path,
//! holding a `victim` file), and the store must be left as it was: no image, nothing in
//! `tmp/` or `snapshots/` (nor in `blobs/` for import).
//!
//! The `tar` crate refuses to write `..` or absolute names, so names are written straight into
//! the header's name field and link targets with `set_link_name_literal`.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::Berth;
use tar::EntryType;

/// What the sentinel victim holds; it must still hold it after every case.
const ORIGINAL: &[u8] = b"original content\n";

// ---------------------------------------------------------------------------------------------
// Building tarballs

/// A GNU header for `name` written verbatim (no check for `..` or a leading `/`).
fn header(kind: EntryType, name: &[u8], size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().expect("a GNU header");
        assert!(
            name.len() <= gnu.name.len(),
            "name too long for the header field: use a long name entry"
        );
        gnu.name[..name.len()].copy_from_slice(name);
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h.set_cksum();
    h
}

/// A layer tarball built entry by entry.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Layer {
        Layer(tar::Builder::new(Vec::new()))
    }

    /// Appends a prepared header (its checksum is recomputed) and its data.
    fn raw(mut self, mut h: tar::Header, data: &[u8]) -> Layer {
        h.set_cksum();
        self.0.append(&h, data).expect("append to the tarball");
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Layer {
        let h = header(EntryType::Regular, name.as_bytes(), data.len() as u64);
        self.raw(h, data)
    }

    fn dir(self, name: &str) -> Layer {
        let h = header(EntryType::Directory, name.as_bytes(), 0);
        self.raw(h, &[])
    }

    fn link(self, kind: EntryType, name: &str, target: &str) -> Layer {
        let mut h = header(kind, name.as_bytes(), 0);
        h.set_link_name_literal(target.as_bytes())
            .expect("link name fits");
        self.raw(h, &[])
    }

    fn symlink(self, name: &str, target: &str) -> Layer {
        self.link(EntryType::Symlink, name, target)
    }

    fn hardlink(self, name: &str, target: &str) -> Layer {
        self.link(EntryType::Link, name, target)
    }

    /// A GNU long name (`././@LongLink`, type `L`) for the next entry.
    fn gnu_long(self, kind: EntryType, bytes: &[u8]) -> Layer {
        let mut data = bytes.to_vec();
        data.push(0);
        let h = header(kind, b"././@LongLink", data.len() as u64);
        self.raw(h, &data)
    }

    /// The tarball, with its two zero blocks at the end.
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("finish the tarball")
    }
}

// ---------------------------------------------------------------------------------------------
// The test bed

/// A fresh berth root beside a sentinel folder `outside/` holding `victim`.
struct Bed {
    b: Berth,
}

impl Bed {
    fn new() -> Bed {
        let b = Berth::new();
        std::fs::create_dir_all(b.path("in")).unwrap();
        std::fs::create_dir_all(b.path("outside")).unwrap();
        std::fs::write(b.path("outside/victim"), ORIGINAL).unwrap();
        let bed = Bed { b };
        assert!(
            bed.outside_abs().len() < 90,
            "the scratch folder's path is too long for a tar link name: {}",
            bed.outside_abs()
        );
        bed
    }

    /// The sentinel folder, absolute.
    fn outside_abs(&self) -> String {
        self.b
            .path("outside")
            .to_str()
            .expect("utf-8 temp path")
            .to_string()
    }

    /// The sentinel folder as seen from a folder extracted in `ROOT/tmp/NAME`: exactly
    /// three levels up.
    fn outside_rel(&self) -> &'static str {
        "../../../outside"
    }

    /// The sentinel folder by a relative path that climbs far above `/` first, then down.
    fn outside_deep_rel(&self) -> String {
        format!(
            "{}{}",
            "../".repeat(12),
            self.outside_abs().trim_start_matches('/')
        )
    }

    /// Writes a tarball into the scratch space and returns its path.
    fn input(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.b.path("in").join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `berth import` of `bytes` must fail, naming `entry` (as the error prints it, quoted) and
    /// giving `why`, with everything outside and in the store untouched. Returns stderr.
    fn import_refused(&self, bytes: &[u8], entry: &str, why: &str) -> String {
        let stderr = self.import_fails(bytes);
        assert!(
            stderr.contains(&format!("{entry:?}"))
                && stderr.contains("refused")
                && stderr.contains(why),
            "stderr should name {entry:?} as refused because {why:?}:\n{stderr}"
        );
        stderr
    }

    /// `berth import` of `bytes` must fail (whatever the reason), touching nothing.
    fn import_fails(&self, bytes: &[u8]) -> String {
        let file = self.input("layer.tar", bytes);
        let (code, stderr) = self
            .b
            .fail(&["import", file.to_str().unwrap(), "hostile:1"]);
        assert!(
            code > 0,
            "exit code {code} (killed by a signal?):\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "berth panicked:\n{stderr}");
        self.assert_outside_untouched();
        self.assert_store_empty(true);
        stderr
    }

    /// `berth import` of `bytes` must succeed; returns the one snapshot folder.
    fn import_ok(&self, bytes: &[u8]) -> PathBuf {
        let file = self.input("layer.tar", bytes);
        let id = self.b.ok(&["import", file.to_str().unwrap(), "fine:1"]);
        assert!(id.trim().starts_with("sha256:"), "{id}");
        self.assert_outside_untouched();
        let snaps = list(&self.b.root().join("snapshots"));
        assert_eq!(snaps.len(), 1, "one snapshot: {snaps:?}");
        assert!(
            list(&self.b.root().join("tmp")).is_empty(),
            "tmp/ is left empty"
        );
        self.b.root().join("snapshots").join(&snaps[0])
    }

    /// The sentinel holds only `victim`, unchanged and with one link, and nothing new
    /// appeared beside the root.
    fn assert_outside_untouched(&self) {
        assert_eq!(
            list(&self.b.path("outside")),
            ["victim"],
            "nothing appears in the sentinel folder"
        );
        let victim = self.b.path("outside/victim");
        let meta = std::fs::symlink_metadata(&victim).expect("the victim is still there");
        assert!(meta.is_file(), "the victim is still a plain file");
        assert_eq!(meta.nlink(), 1, "no hardlink to the victim survives");
        assert_eq!(
            meta.mode() & 0o7777,
            0o644,
            "the victim's mode is unchanged"
        );
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            ORIGINAL,
            "the victim's content is unchanged"
        );
        assert_eq!(
            list(self.b.dir.path()),
            ["in", "outside", "root"],
            "nothing new beside the root"
        );
    }

    /// Nothing was left in the store: checked on disk *before* running berth again, as any
    /// berth command cleans `tmp/` when it finds the store idle.
    fn assert_store_empty(&self, check_blobs: bool) {
        let root = self.b.root();
        assert_eq!(
            list(&root.join("tmp")),
            Vec::<String>::new(),
            "tmp/ is empty"
        );
        assert_eq!(
            list(&root.join("snapshots")),
            Vec::<String>::new(),
            "no snapshot is left"
        );
        if check_blobs {
            assert_eq!(
                list(&root.join("blobs/sha256")),
                Vec::<String>::new(),
                "no blob is stored"
            );
        }
        assert_eq!(self.b.ok(&["images", "-q"]), "", "no image is listed");
        assert_eq!(
            list(&root.join("tmp")),
            Vec::<String>::new(),
            "tmp/ is still empty"
        );
    }
}

/// The names in a folder, sorted (empty if it does not exist).
fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn is_root() -> bool {
    // The harness has no libc binding; the uid of /proc/self is this process's euid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Names that climb out

#[test]
fn dotdot_names_are_refused() {
    for name in [
        "../escape",
        "a/../../escape",
        "./../escape",
        "a/b/../../../escape",
        "../../../outside/victim",
        "../../../outside/pwned",
    ] {
        let bed = Bed::new();
        let tar = Layer::new()
            .file("ok", b"fine")
            .file(name, b"pwned")
            .finish();
        bed.import_refused(&tar, name, "climbs out of the layer");
        assert!(!bed.b.root().join("tmp/escape").exists() && !bed.b.root().join("escape").exists());
    }
}

#[test]
fn dotdot_in_a_directory_entry_is_refused() {
    let bed = Bed::new();
    let tar = Layer::new().dir("../../../outside/newdir/").finish();
    bed.import_refused(&tar, "../../../outside/newdir/", "climbs out of the layer");
}

#[test]
fn absolute_names_land_inside() {
    let bed = Bed::new();
    // Also an absolute name that is the sentinel's own host path: it must land inside too.
    let host_path = format!("{}/pwned", bed.outside_abs());
    let tar = Layer::new()
        .file("/abs/file", b"inside")
        .file(&host_path, b"inside too")
        .finish();
    let snap = bed.import_ok(&tar);
    assert_eq!(std::fs::read(snap.join("abs/file")).unwrap(), b"inside");
    assert_eq!(
        std::fs::read(snap.join(host_path.trim_start_matches('/'))).unwrap(),
        b"inside too",
        "an absolute name is taken relative to the layer's root"
    );
}

// ---------------------------------------------------------------------------------------------
// Symlinks that point out, then writes through them

#[test]
fn write_through_absolute_symlink_is_refused() {
    for leaf in ["pwned", "victim"] {
        let bed = Bed::new();
        let name = format!("link/{leaf}");
        let tar = Layer::new()
            .symlink("link", &bed.outside_abs())
            .file(&name, b"pwned")
            .finish();
        bed.import_refused(&tar, &name, "outside the layer through a symlink");
    }
}

#[test]
fn write_through_relative_symlink_is_refused() {
    let bed = Bed::new();
    for (i, target) in [
        bed.outside_rel().to_string(),
        bed.outside_deep_rel(),
        "../../../../../../outside-rel".into(),
    ]
    .into_iter()
    .enumerate()
    {
        for leaf in ["pwned", "victim"] {
            let name = format!("link{i}/{leaf}");
            let tar = Layer::new()
                .symlink(&format!("link{i}"), &target)
                .file(&name, b"pwned")
                .finish();
            bed.import_refused(&tar, &name, "outside the layer through a symlink");
        }
    }
    assert!(!Path::new("/outside-rel").exists());
}

#[test]
fn symlink_chain_out_is_refused() {
    // An inner symlink that looks harmless, pointing at one that points out.
    let bed = Bed::new();
    let tar = Layer::new()
        .symlink("out", bed.outside_rel())
        .symlink("inner", "out")
        .file("inner/pwned", b"pwned")
        .finish();
    bed.import_refused(&tar, "inner/pwned", "outside the layer through a symlink");
}

#[test]
fn directory_through_symlink_to_outside_is_refused() {
    let bed = Bed::new();
    let tar = Layer::new()
        .symlink("dlink", &bed.outside_abs())
        .dir("dlink/newdir/")
        .finish();
    bed.import_refused(&tar, "dlink/newdir/", "outside the layer through a symlink");
    let tar = Layer::new()
        .symlink("dlink", bed.outside_rel())
        .dir("dlink/a/b/c/")
        .finish();
    bed.import_refused(&tar, "dlink/a/b/c/", "outside the layer through a symlink");
    // A symlink, fifo or hardlink made through it.
    let tar = Layer::new()
        .symlink("dlink", &bed.outside_abs())
        .symlink("dlink/evil", "/etc/passwd")
        .finish();
    bed.import_refused(&tar, "dlink/evil", "outside the layer through a symlink");
    let h = header(EntryType::Fifo, b"dlink/fifo", 0);
    let tar = Layer::new()
        .symlink("dlink", &bed.outside_abs())
        .raw(h, &[])
        .finish();
    bed.import_refused(&tar, "dlink/fifo", "outside the layer through a symlink");
    let tar = Layer::new()
        .file("f", b"x")
        .symlink("dlink", &bed.outside_abs())
        .hardlink("dlink/h", "f")
        .finish();
    bed.import_refused(&tar, "dlink/h", "outside the layer through a symlink");
}

#[test]
fn symlink_loop_is_refused() {
    let bed = Bed::new();
    let tar = Layer::new()
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .file("loop1/pwned", b"pwned")
        .finish();
    bed.import_refused(&tar, "loop1/pwned", "symlink loop");
    let tar = Layer::new().symlink("self", "self").dir("self/d/").finish();
    bed.import_refused(&tar, "self/d/", "symlink loop");
}

#[test]
fn absolute_symlink_not_followed_is_kept_verbatim() {
    let bed = Bed::new();
    let abs = bed.outside_abs();
    let tar = Layer::new()
        .symlink("abs", &abs)
        .symlink("etc-passwd", "/etc/passwd")
        .symlink("rel-out", "../../../../../../outside-rel")
        .symlink("dangling", "/no/such/thing")
        .finish();
    let snap = bed.import_ok(&tar);
    for (name, target) in [
        ("abs", abs.as_str()),
        ("etc-passwd", "/etc/passwd"),
        ("rel-out", "../../../../../../outside-rel"),
        ("dangling", "/no/such/thing"),
    ] {
        let p = snap.join(name);
        assert!(
            std::fs::symlink_metadata(&p)
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name} is a symlink"
        );
        assert_eq!(
            std::fs::read_link(&p).unwrap(),
            Path::new(target),
            "{name} keeps its target verbatim"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hardlinks

#[test]
fn hardlink_out_of_the_layer_is_refused() {
    let bed = Bed::new();
    let passwd_links = std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
    let tar = Layer::new().hardlink("h", "../../etc/passwd").finish();
    bed.import_refused(&tar, "h", "hardlink target climbs out");
    let tar = Layer::new().hardlink("h", "/etc/passwd").finish();
    bed.import_refused(&tar, "h", "is not in this layer");
    let victim = format!("{}/victim", bed.outside_abs());
    let tar = Layer::new().hardlink("h", &victim).finish();
    bed.import_refused(&tar, "h", "is not in this layer");
    let tar = Layer::new()
        .hardlink("h", "../../../outside/victim")
        .finish();
    bed.import_refused(&tar, "h", "hardlink target climbs out");
    assert_eq!(
        std::fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
        passwd_links
    );
}

#[test]
fn hardlink_through_symlink_to_outside_is_refused() {
    let bed = Bed::new();
    let tar = Layer::new()
        .symlink("dlink", &bed.outside_abs())
        .hardlink("h", "dlink/victim")
        .finish();
    bed.import_refused(&tar, "h", "outside the layer through a symlink");
    let tar = Layer::new()
        .symlink("dlink", bed.outside_rel())
        .hardlink("h", "dlink/victim")
        .finish();
    bed.import_refused(&tar, "h", "outside the layer through a symlink");
}

#[test]
fn hardlink_to_symlink_pointing_out_never_writes_through() {
    // A hardlink to a symlink links the symlink itself (linkat never follows): the new name
    // is one more symlink, and a file written later at that name replaces it. Not refused,
    // since nothing leaves the layer; the victim must be untouched.
    let bed = Bed::new();
    let victim = format!("{}/victim", bed.outside_abs());
    let tar = Layer::new()
        .symlink("s", &victim)
        .hardlink("h", "s")
        .file("h", b"pwned")
        .file("s", b"pwned too")
        .finish();
    let snap = bed.import_ok(&tar);
    assert_eq!(std::fs::read(snap.join("h")).unwrap(), b"pwned");
    assert_eq!(std::fs::read(snap.join("s")).unwrap(), b"pwned too");

    // Kept as links, they stay links to the same verbatim target.
    let bed = Bed::new();
    let tar = Layer::new()
        .symlink("s", &victim)
        .hardlink("h", "s")
        .finish();
    let snap = bed.import_ok(&tar);
    assert_eq!(
        std::fs::read_link(snap.join("h")).unwrap(),
        Path::new(&victim)
    );

    // Writing *below* the hardlinked symlink (to a folder outside) is refused.
    let bed = Bed::new();
    let tar = Layer::new()
        .symlink("s", &bed.outside_abs())
        .hardlink("h", "s")
        .file("h/victim", b"pwned")
        .finish();
    bed.import_refused(&tar, "h/victim", "outside the layer through a symlink");
}

// ---------------------------------------------------------------------------------------------
// Malformed archives

#[test]
fn names_longer_than_path_max_are_refused() {
    let bed = Bed::new();
    let long = format!("{}/file", "d".repeat(5000));
    let shown = &long[..50];

    // PAX `path`.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("path", long.as_bytes())])
        .unwrap();
    let h = header(EntryType::Regular, b"short", 1);
    b.append(&h, &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let err = bed.import_fails(&tar);
    assert!(
        err.contains(shown) && err.contains("refused") && err.contains("5005 bytes long"),
        "{err}"
    );

    // GNU long name.
    let tar = Layer::new()
        .gnu_long(EntryType::GNULongName, long.as_bytes())
        .raw(header(EntryType::Regular, b"short", 1), b"x")
        .finish();
    let err = bed.import_fails(&tar);
    assert!(
        err.contains(shown) && err.contains("refused") && err.contains("5005 bytes long"),
        "{err}"
    );

    // GNU long link target on a symlink.
    let mut h = header(EntryType::Symlink, b"longlink", 0);
    h.set_link_name_literal(b"placeholder").unwrap();
    let tar = Layer::new()
        .gnu_long(EntryType::GNULongLink, long.as_bytes())
        .raw(h, &[])
        .finish();
    bed.import_refused(&tar, "longlink", "link target is too long");
}

#[test]
fn truncated_entry_claiming_a_huge_size_fails() {
    let bed = Bed::new();
    // A regular file claiming 1 TiB with only 1000 bytes behind it and no end of archive.
    let mut tar = Layer::new().file("ok", b"fine").finish();
    tar.truncate(tar.len() - 1024);
    tar.extend_from_slice(header(EntryType::Regular, b"big", 1 << 40).as_bytes());
    tar.extend_from_slice(&[b'A'; 1000]);
    let err = bed.import_fails(&tar);
    assert!(
        err.contains("reading layer archive") && err.contains("EOF"),
        "{err}"
    );

    // The same, as the last thing in a gzip stream.
    let err = bed.import_fails(&gzip(&tar));
    assert!(err.contains("reading layer archive"), "{err}");

    // A GNU long name claiming 1 TiB, truncated.
    let mut tar = Vec::new();
    tar.extend_from_slice(header(EntryType::GNULongName, b"././@LongLink", 1 << 40).as_bytes());
    tar.extend_from_slice(&[b'n'; 4096]);
    let err = bed.import_fails(&tar);
    assert!(
        err.contains("reading layer archive") && err.contains("EOF"),
        "{err}"
    );

    // A size so large the next header's offset overflows.
    let mut h = header(EntryType::Regular, b"huge", 0);
    h.set_size(u64::MAX);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.extend_from_slice(&[0; 1024]);
    let err = bed.import_fails(&tar);
    assert!(err.contains("reading layer archive"), "{err}");
}

/// gzip-compresses `bytes`.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Deterministic noise (xorshift), never starting with a gzip or zstd magic.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    out[0] = b'Z';
    out
}

#[test]
fn not_a_tar_and_corrupt_gzip_fail() {
    let bed = Bed::new();
    // The tar crate's wording varies with the bytes (a bad checksum, a field that is not
    // octal): what matters is that the archive is reported as unreadable.
    let err = bed.import_fails(&noise(8192));
    assert!(err.contains("reading layer archive"), "{err}");

    // A short file: not even one header.
    let err = bed.import_fails(b"hello, not a tarball");
    assert!(err.contains("reading layer archive"), "{err}");

    let good = gzip(
        &Layer::new()
            .file("a", &[b'a'; 10_000])
            .file("b", b"b")
            .finish(),
    );

    // A gzip header followed by noise.
    let mut bad = good[..10].to_vec();
    bad.extend_from_slice(&noise(4096));
    let err = bed.import_fails(&bad);
    assert!(
        err.contains("reading layer archive") || err.contains("reading the tarball"),
        "{err}"
    );

    // Corrupt deflate data in the middle.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 16] {
        *b ^= 0x5a;
    }
    let err = bed.import_fails(&bad);
    assert!(
        err.contains("reading layer archive") || err.contains("reading the tarball"),
        "{err}"
    );

    // Intact data, wrong CRC in the trailer: caught because the whole stream is read.
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xff;
    let err = bed.import_fails(&bad);
    assert!(err.contains("reading layer archive"), "{err}");

    // Cut short.
    let err = bed.import_fails(&good[..good.len() / 2]);
    assert!(err.contains("reading layer archive"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Devices and whiteouts

#[test]
fn device_nodes_are_refused_without_root() {
    // Devices are allowed when berth runs as root (as Docker does: a rootfs needs /dev/null
    // and friends), so this case only means something for an unprivileged process. The
    // refusal itself is also covered, as root, by runtime/tests/layer_apply.rs.
    if is_root() {
        eprintln!(
            "device_nodes_are_refused_without_root: skipped, running as root (devices are allowed for root)"
        );
        return;
    }
    let bed = Bed::new();
    for kind in [EntryType::Char, EntryType::Block] {
        let mut h = header(kind, b"dev/mem", 0);
        h.set_device_major(1).unwrap();
        h.set_device_minor(1).unwrap();
        let tar = Layer::new().dir("dev/").raw(h, &[]).finish();
        bed.import_refused(&tar, "dev/mem", "device nodes are not allowed");
    }
}

#[test]
fn whiteouts_naming_the_parent_are_refused() {
    let bed = Bed::new();
    for name in [".wh...", ".wh..", ".wh.", "sub/.wh...", "sub/.wh.."] {
        let tar = Layer::new()
            .dir("sub/")
            .file("sub/keep", b"k")
            .file(name, b"")
            .finish();
        bed.import_refused(&tar, name, "whiteout with no valid name");
    }
}

#[test]
fn whiteouts_through_symlinks_are_refused() {
    let bed = Bed::new();
    for target in [bed.outside_abs(), bed.outside_rel().to_string()] {
        // Would delete the victim.
        let tar = Layer::new()
            .symlink("dlink", &target)
            .file("dlink/.wh.victim", b"")
            .finish();
        bed.import_refused(
            &tar,
            "dlink/.wh.victim",
            "outside the layer through a symlink",
        );
        // Would mark the sentinel folder opaque.
        let tar = Layer::new()
            .symlink("dlink", &target)
            .file("dlink/.wh..wh..opq", b"")
            .finish();
        bed.import_refused(
            &tar,
            "dlink/.wh..wh..opq",
            "outside the layer through a symlink",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// berth load

/// A docker-archive (`docker save` layout) holding one image whose single layer is `layer`.
fn docker_archive(bed: &Bed, layer: &[u8]) -> Vec<u8> {
    let layer_path = bed.input("layer-for-load.tar", layer);
    let sum = common::sh(&format!("sha256sum {}", layer_path.display()));
    let diff_id = format!("sha256:{}", sum.split_whitespace().next().unwrap());
    std::fs::remove_file(&layer_path).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let manifest = serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["hostile:load"],
        "Layers": ["abc/layer.tar"],
    }]);
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in [
        ("config.json", serde_json::to_vec(&config).unwrap()),
        ("abc/layer.tar", layer.to_vec()),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn load_refuses_hostile_layers() {
    let bed = Bed::new();
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            Layer::new()
                .symlink("link", &bed.outside_abs())
                .file("link/victim", b"pwned")
                .finish(),
            "link/victim",
            "outside the layer through a symlink",
        ),
        (
            Layer::new()
                .symlink("link", bed.outside_rel())
                .file("link/pwned", b"pwned")
                .finish(),
            "link/pwned",
            "outside the layer through a symlink",
        ),
        (
            Layer::new()
                .file("../../../outside/pwned", b"pwned")
                .finish(),
            "../../../outside/pwned",
            "climbs out",
        ),
        (
            Layer::new()
                .symlink("dlink", &bed.outside_abs())
                .hardlink("h", "dlink/victim")
                .finish(),
            "h",
            "outside the layer through a symlink",
        ),
        (
            Layer::new()
                .symlink("dlink", bed.outside_rel())
                .file("dlink/.wh.victim", b"")
                .finish(),
            "dlink/.wh.victim",
            "outside the layer through a symlink",
        ),
    ];
    for (i, (layer, entry, why)) in cases.into_iter().enumerate() {
        // Every other one gzip-compressed, as `docker save` layers may be.
        let layer = if i % 2 == 1 { gzip(&layer) } else { layer };
        let archive = bed.input("image.tar", &docker_archive(&bed, &layer));
        let (code, stderr) = bed.b.fail(&["load", "-i", archive.to_str().unwrap()]);
        assert!(code > 0, "exit code {code}:\n{stderr}");
        assert!(
            stderr.contains(&format!("{entry:?}"))
                && stderr.contains("refused")
                && stderr.contains(why),
            "stderr should name {entry:?} as refused because {why:?}:\n{stderr}"
        );
        bed.assert_outside_untouched();
        // The archive's blobs are stored before its layers are unpacked, so unreferenced
        // blobs may remain (for `berth system prune`); no snapshot, no image, no name.
        bed.assert_store_empty(false);
        assert!(
            !bed.b.output(&["inspect", "hostile:load"]).status.success(),
            "no image named"
        );
    }
}

#[test]
fn load_accepts_the_same_archive_with_a_harmless_layer() {
    // The control: the archive format itself is fine, so the refusals above are the layers'.
    let bed = Bed::new();
    let layer = Layer::new()
        .symlink("link", &bed.outside_abs())
        .file("file", b"fine")
        .finish();
    let archive = bed.input("image.tar", &docker_archive(&bed, &layer));
    let out = bed.b.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains("hostile:load"), "{out}");
    bed.assert_outside_untouched();
    assert_eq!(bed.b.ok(&["images", "-q"]).lines().count(), 1);
}
