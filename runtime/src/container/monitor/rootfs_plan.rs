//! The rootfs a container's init builds, as the monitor plans it: the image's layer snapshots
//! under the container's own writable layer, the `/etc` files made for it, and, for a WASI
//! program the container has not changed, its module's digest (so PID 1 maps the compiled
//! artifact without reading the module).

use std::io;
use std::path::{Path, PathBuf};

use super::{MonitorError, start_err};
use crate::backend::Backend;
use crate::container::Container;
use crate::sandbox::linux::rootfs::RootfsPlan;
use crate::store::{IoContext, Store};
use crate::workload::NetworkMode;

/// changed: an absolute path, found in the layer snapshots, with nothing in the writable
/// layer yet (a fresh container) and no mount over it. PID 1 then maps the cached artifact
/// without reading the module; otherwise (None) it reads and hashes the module itself.
pub(super) fn known_wasm_module(
    c: &Container,
    plan: &RootfsPlan,
    cache: &Path,
) -> Option<crate::sandbox::wasi::KnownModule> {
    let path = c.spec.args.first().filter(|p| p.starts_with('/'))?;
    if c.spec.backend != Backend::Wasi {
        return None;
    }
    let under = |dest: &str| {
        let dest = dest.trim_end_matches('/');
        dest.is_empty()
            || path == dest
            || path.strip_prefix(dest).is_some_and(|r| r.starts_with('/'))
    };
    let mounted = ["/proc", "/sys", "/dev"]
        .into_iter()
        .chain(plan.etc_files.iter().map(|(_, d)| d.as_str()))
        .chain(plan.mounts.iter().map(|m| m.destination.as_str()))
        .any(under);
    // Not made yet (a new container) counts as empty.
    let fresh = match std::fs::read_dir(&plan.upperdir) {
        Ok(mut d) => d.next().is_none(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    };
    if mounted || !fresh {
        return None;
    }
    let (layer, file) = crate::image::snapshot::find_in_layers(&plan.lowerdirs, path)?;
    // Its kind is remembered with its digest: nothing of the module is read here.
    let known = crate::sandbox::wasi::ModuleCache::open(cache)
        .and_then(|cache| cache.layer_module(&plan.lowerdirs[layer], path, &file));
    match known {
        Ok(known) => Some(known),
        Err(e) => {
            tracing::debug!("not remembering the digest of {path}: {e}");
            None
        }
    }
}

/// The container's rootfs: its layers' snapshots (top first) under its own upper dir (in the
/// container's folder `dir`), mounted on a folder in its run folder `run`, with its `/etc` files
/// from there too. Nothing is made yet: [`RootfsFiles::make`] does that, while `__init` makes
/// the namespaces.
pub(super) fn rootfs_plan(
    store: &Store,
    c: &Container,
    dir: &Path,
    run: &Path,
) -> Result<(RootfsPlan, RootfsFiles), MonitorError> {
    let mut lowerdirs = Vec::new();
    for diff_id in c.layers.iter().rev() {
        let p = store.snapshot_path(diff_id);
        if !p.is_dir() {
            return Err(start_err(format!(
                "layer {diff_id} of image {} is missing from the store: pull, load or build the image again",
                c.image
            )));
        }
        // overlayfs refuses a lowerdir given twice (ELOOP), and two steps can make the same
        // layer (two RUNs that change nothing). The topmost copy alone gives the same merged
        // view: everything the lower copy provides or removes, the upper one does again.
        if !lowerdirs.contains(&p) {
            lowerdirs.push(p);
        }
    }
    // The mount points of the files bound below, made once per image (not for a build's
    // steps, whose layers are each new), unless its path would push overlayfs' options past
    // the page the kernel takes them in, which a deep image may come near.
    // (lowerdir=…:…, upperdir=<dir>/upper, workdir=<dir>/work, the init layer's path, flags)
    let options_len = lowerdirs
        .iter()
        .map(|p| p.as_os_str().len() + 1)
        .sum::<usize>()
        + 2 * (dir.as_os_str().len() + 16)
        + store.root().as_os_str().len()
        + 100;
    let init_layer = (!c.labels.contains_key(crate::container::BUILD_LABEL) && options_len < 4000)
        .then(|| {
            let native = c.spec.backend != Backend::Wasi;
            crate::image::init_layer::ensure(store.root(), &c.layers, &lowerdirs, native)
        })
        .flatten();
    lowerdirs.splice(0..0, init_layer);
    let mut dirs = Vec::new();
    if lowerdirs.is_empty() {
        lowerdirs.push(dir.join("empty"));
        dirs.push((dir.join("empty"), 0o755));
    }
    let hostname = if c.spec.hostname.is_empty() {
        c.short_id().to_string()
    } else {
        c.spec.hostname.clone()
    };
    let mut hosts = format!(
        "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    );
    // Its own address, as Docker writes it.
    for e in &c.endpoints {
        hosts.push_str(&format!("{}\t{hostname}\n", e.ip));
    }
    for h in &c.spec.extra_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let (hostname_file, hosts_file, resolv_file) = (
        run.join("hostname"),
        run.join("hosts"),
        run.join("resolv.conf"),
    );
    let files = vec![
        (hostname_file.clone(), format!("{hostname}\n")),
        (hosts_file.clone(), hosts),
        (resolv_file.clone(), resolv_conf(c)),
    ];
    let plan = RootfsPlan {
        lowerdirs,
        upperdir: dir.join("upper"),
        workdir: dir.join("work"),
        merged: run.join("merged"),
        etc_files: vec![
            (hostname_file, "/etc/hostname".into()),
            (hosts_file, "/etc/hosts".into()),
            (resolv_file, "/etc/resolv.conf".into()),
        ],
        mounts: c.spec.mounts.clone(),
        read_only: c.spec.read_only,
        privileged: c.spec.security.privileged,
        masked_paths: c.spec.security.masked_paths.clone(),
        readonly_paths: c.spec.security.readonly_paths.clone(),
        own_netns: c.spec.network != NetworkMode::Host,
        userxattr: false,
        wasi_guest: c.spec.backend == Backend::Wasi,
        volatile: c.auto_remove,
        prepared: false,
    };
    dirs.extend([
        (plan.upperdir.clone(), 0o755),
        (plan.workdir.clone(), 0o700),
        (plan.merged.clone(), 0o755),
    ]);
    let files = RootfsFiles {
        dirs,
        files,
        // A volatile overlay marks its work folder, and overlayfs refuses to mount it again:
        // a `--rm` container that outlived its monitor starts with a fresh one.
        fresh_work: c.auto_remove.then(|| plan.workdir.clone()),
    };
    Ok((plan, files))
}

/// What a rootfs plan needs made before PID 1 mounts it.
pub(super) struct RootfsFiles {
    /// Folders and the modes they are made with, which no umask narrows: the upper folder's
    /// mode is the container's `/`, and a `--userns` container's root must reach the mount
    /// point.
    dirs: Vec<(PathBuf, u32)>,
    /// The `/etc` files and their content.
    files: Vec<(PathBuf, String)>,
    /// A work folder to empty first.
    fresh_work: Option<PathBuf>,
}

impl RootfsFiles {
    pub(super) fn make(&self) -> Result<(), MonitorError> {
        if let Some(work) = &self.fresh_work
            && work.join("work/incompat").exists()
        {
            // The mark a `volatile` overlay leaves (and keeps after it is unmounted): overlayfs
            // refuses to mount it again (a `--rm` container started a second time).
            let _ = std::fs::remove_dir_all(work);
        }
        for (d, mode) in &self.dirs {
            // Only in folders that exist: a container removed meanwhile is not made again. One
            // made before (a restart) keeps the mode its container gave it.
            crate::store::make_dir(d, *mode).ctx(|| format!("creating {}", d.display()))?;
        }
        use std::os::unix::fs::PermissionsExt;
        // Written in place: only this container reads them, and only once it runs (which this
        // process, holding its monitor lock, has not let happen yet). Readable by every user of
        // the container, whatever the umask.
        for (path, content) in &self.files {
            std::fs::write(path, content)
                .and_then(|()| {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                })
                .ctx(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

/// The host's resolv.conf; in a namespace of its own, loopback name servers (unreachable
/// there) are dropped.
fn resolv_conf(c: &Container) -> String {
    let spec = &c.spec;
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // On a user-defined network, its DNS server answers (and forwards to --dns), as Docker's
    // embedded one.
    #[cfg(target_os = "linux")]
    if spec.network == NetworkMode::Bridge
        && let Some(e) = c.endpoints.iter().find(|e| e.is_default_route())
        && e.network != crate::network::bridge::DEFAULT
    {
        let search: Vec<String> = if spec.dns_search.is_empty() {
            host.lines()
                .filter_map(|l| l.strip_prefix("search "))
                .flat_map(|l| l.split_whitespace().map(String::from))
                .collect()
        } else {
            spec.dns_search.clone()
        };
        return crate::network::dns::resolv_conf(e.gateway, &search);
    }
    if spec.network == NetworkMode::Host && spec.dns.is_empty() && spec.dns_search.is_empty() {
        return host;
    }
    let mut out = String::new();
    let mut servers = 0;
    for l in host.lines() {
        let mut w = l.split_whitespace();
        match w.next() {
            // The host's loopback resolvers are not the container's; --dns replaces them all.
            Some("nameserver") => {
                let ip = w.next().unwrap_or("");
                let loopback = ip.starts_with("127.") || ip == "::1";
                if spec.dns.is_empty() && (spec.network == NetworkMode::Host || !loopback) {
                    out.push_str(l);
                    out.push('\n');
                    servers += 1;
                }
            }
            Some("search" | "domain") if !spec.dns_search.is_empty() => {}
            _ => {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    for d in &spec.dns {
        out.push_str(&format!("nameserver {d}\n"));
        servers += 1;
    }
    // Docker's fallback when the host has only loopback resolvers, on a network that routes out.
    if servers == 0 && spec.network == NetworkMode::Bridge {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    if !spec.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", spec.dns_search.join(" ")));
    }
    out
}
