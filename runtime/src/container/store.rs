//! Containers in the store: `containers/<id>/state.json` each, created with unique names
//! under a lock, found by name, id or unique id prefix. What a container needs only while the
//! machine is up (its locks, its `/etc` files, its rootfs mount point) is in its run folder,
//! `<run root>/<id>` (see [`crate::store::runroot`]).
//!
//! A state file is a log: one JSON record per line, the last complete one current. A change
//! is appended under the container's lock, which costs the disk no new inode and no rename
//! (on ext4, a rename over a file also writes the new one out at once); the file is rewritten
//! whole, atomically, once it has grown past [`REWRITE_AT`]. A reader takes the last line that
//! parses: an append caught half-written, or cut short by a power cut, leaves the record
//! before it. A file of one pretty-printed record (written before the log) reads too.

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::state::{Container, Status, process_alive};
use crate::store::{IoContext, Store, StoreError, lock, remove_tree, runroot};

/// What can go wrong with containers.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container matches.
    #[error("no such container: {0} (`berth ps -a` lists them)")]
    NotFound(String),
    /// A prefix matches several.
    #[error("container id prefix {0:?} matches several containers; give more characters")]
    Ambiguous(String),
    /// The name is taken.
    #[error(
        "the container name {name:?} is already in use by container {id}: remove that container (`berth rm {name}`) or choose another name"
    )]
    NameInUse {
        /// The name.
        name: String,
        /// The short id of the container using it.
        id: String,
    },
    /// The name is malformed.
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    /// Its state file is unreadable.
    #[error(
        "container {id} has a corrupt state file: {reason} (remove it with `berth rm -f {id}`)"
    )]
    Corrupt {
        /// The id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many container folders made ahead wait at most (see [`make_spare_folder`]).
const SPARE_FOLDERS: usize = 1;

/// Makes a container folder ahead in `containers` (the store's `containers/`), unless one
/// waits already: `.spare-*`, with the empty writable layer's `upper` and `work` and an empty
/// log, so that the next new container makes none of them. A `--rm` container's init calls
/// this at its end, as background work: on the disk a store is on, a new inode costs a start
/// more than anything else it does (ext4 without a journal skips, for each, every inode freed
/// in the last half minute). Listings skip these folders (they have no state); a new container
/// takes one by renaming it to its id, which only one can.
pub fn make_spare_folder(containers: &std::path::Path) -> std::io::Result<()> {
    let mut waiting = 0;
    for e in fs::read_dir(containers)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".spare-") {
            waiting += 1;
        } else if name.starts_with(".making-")
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 60))
        {
            // What a maker killed half-way left (a minute is far longer than making one takes).
            let _ = remove_tree(&e.path());
        }
    }
    if waiting >= SPARE_FOLDERS {
        return Ok(());
    }
    let n: u64 = rand::random();
    // Made under a temporary name, then renamed: a folder named `.spare-*` is complete.
    let tmp = containers.join(format!(".making-{n:016x}"));
    let made = (|| {
        crate::store::make_dir(&tmp, 0o700)?;
        crate::store::make_dir(&tmp.join("upper"), 0o755)?;
        crate::store::make_dir(&tmp.join("work"), 0o700)?;
        fs::File::create(tmp.join("log.json"))?;
        fs::rename(&tmp, containers.join(format!(".spare-{n:016x}")))
    })();
    if made.is_err() {
        let _ = remove_tree(&tmp);
    }
    made
}

/// Removes the container folders made ahead in `containers`, and half-made ones
/// (`berth system prune`). Each is renamed away first, as a new container takes one by rename:
/// a folder is removed only if no container took it.
pub fn remove_spare_folders(containers: &std::path::Path) {
    let Ok(entries) = fs::read_dir(containers) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".spare-") || name.starts_with(".making-") {
            let n: u64 = rand::random();
            let away = containers.join(format!(".removing-{n:016x}"));
            if fs::rename(e.path(), &away).is_ok() {
                let _ = remove_tree(&away);
            }
        } else if name.starts_with(".removing-") {
            let _ = remove_tree(&e.path());
        }
    }
}

/// Takes a container folder made ahead in `containers` as `to`; whether there was one.
fn take_spare_folder(containers: &std::path::Path, to: &std::path::Path) -> bool {
    let Ok(entries) = fs::read_dir(containers) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with(".spare-") && fs::rename(e.path(), to).is_ok()
    })
}

/// The size past which a state file is rewritten with its current record alone instead of
/// growing (a container restarted in a loop appends a record or two per start).
const REWRITE_AT: usize = 64 * 1024;

/// One record of a state file: the container on one line.
fn record(c: &Container) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(c).expect("a container serializes");
    bytes.push(b'\n');
    bytes
}

/// The image id a state file records (see the module's doc), read without the rest of the
/// record: a record another version of berth wrote, which does not parse as a [`Container`]
/// here, still names the image it keeps from removal.
pub(crate) fn state_image_id(bytes: &[u8]) -> Option<String> {
    let image_id = |v: serde_json::Value| v.get("image_id")?.as_str().map(str::to_string);
    bytes
        .split(|&b| b == b'\n')
        .rev()
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .find_map(image_id)
        .or_else(|| image_id(serde_json::from_slice(bytes).ok()?))
}

/// The current record of a state file: its last line that parses (see the module's doc).
pub(crate) fn parse_state(bytes: &[u8]) -> Result<Container, serde_json::Error> {
    let last = bytes
        .split(|&b| b == b'\n')
        .rev()
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .find_map(|line| serde_json::from_slice(line).ok());
    match last {
        Some(c) => Ok(c),
        // One record over several lines (the format before the log), or nothing that parses:
        // the error says what is wrong with the whole.
        None => serde_json::from_slice(bytes),
    }
}

/// What is left of a container whose state file no longer parses (cut short, overwritten,
/// emptied): Docker's "dead" container. Enough to list it, keep its name taken and remove it
/// (`rm -f`), from its folder, its run folder and its cgroup.
#[derive(Debug, Clone, PartialEq)]
pub struct Remains {
    /// The container's id (its folder's name).
    pub id: String,
    /// Its name: from its folder's `user.berth.name` attribute, else what of its record is left.
    pub name: Option<String>,
    /// Its image as the user named it, if what is left of its record says.
    pub image: Option<String>,
    /// When it was made, if what is left of its record says; else when its folder last changed.
    pub created: DateTime<Utc>,
    /// Why its state file cannot be read.
    pub reason: String,
}

impl Remains {
    /// The 12-character id Docker shows.
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// The extended attribute of a container's folder that holds its name, so that a damaged
/// state file does not take the name with it.
#[cfg(target_os = "linux")]
const NAME_XATTR: &str = "user.berth.name";

/// Records `name` on the container folder `dir` (best effort: a file system without user
/// extended attributes keeps the name in the state file only).
fn remember_name(dir: &std::path::Path, name: &str) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::setxattr(
            dir,
            NAME_XATTR,
            name.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (dir, name);
}

/// The name recorded on the container folder `dir`, if any.
fn remembered_name(dir: &std::path::Path) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let mut buf = [0u8; 256];
        let n = rustix::fs::getxattr(dir, NAME_XATTR, &mut buf).ok()?;
        String::from_utf8(buf[..n].to_vec())
            .ok()
            .filter(|n| valid_name(n))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// The fields of a record that can be read back from what is left of it: a record cut
/// short still starts `{"id":…,"name":…,"image":…`.
#[derive(Default)]
struct Salvage {
    name: Option<String>,
    image: Option<String>,
    created: Option<DateTime<Utc>>,
}

/// Reads the leading fields of one record into a [`Salvage`], keeping each as it comes: the
/// error that ends a damaged record loses none of those read before it.
struct SalvageSeed<'a>(&'a mut Salvage);

impl<'de> serde::de::DeserializeSeed<'de> for SalvageSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for SalvageSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a container record")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => self.0.name = Some(map.next_value()?),
                "image" => self.0.image = Some(map.next_value()?),
                "created" => self.0.created = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// What can be read of the records of a damaged state file, newest record first.
fn salvage(bytes: &[u8]) -> Salvage {
    use serde::de::DeserializeSeed;
    let mut out = Salvage::default();
    for line in bytes.split(|&b| b == b'\n').rev() {
        let mut found = Salvage::default();
        let mut de = serde_json::Deserializer::from_slice(line);
        let _ = SalvageSeed(&mut found).deserialize(&mut de);
        out.name = out.name.or(found.name.filter(|n| valid_name(n)));
        out.image = out.image.or(found.image);
        out.created = out.created.or(found.created);
    }
    out
}

/// The one of `damaged` that `input` names (a name, an id or a unique id prefix).
fn find_remains_in(damaged: &[Remains], input: &str) -> Result<Remains, ContainerError> {
    let name = input.trim_start_matches('/');
    if let Some(r) = damaged
        .iter()
        .find(|r| r.id == input || r.name.as_deref() == Some(name))
    {
        return Ok(r.clone());
    }
    let hits: Vec<&Remains> = damaged
        .iter()
        .filter(|r| !input.is_empty() && r.id.starts_with(input))
        .collect();
    match hits.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ContainerError::NotFound(input.to_string())),
        _ => Err(ContainerError::Ambiguous(input.to_string())),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Store {
    /// The folder holding every container's folder.
    pub fn containers_dir(&self) -> PathBuf {
        self.root().join("containers")
    }

    /// A container's folder.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// A container's run folder: its locks, `/etc` files and rootfs mount point.
    pub fn container_run_dir(&self, id: &str) -> PathBuf {
        self.run_root().join(id)
    }

    /// Makes the run folder of an existing container (after a reboot, or the first time).
    pub fn create_container_run_dir(&self, id: &str) -> Result<PathBuf, ContainerError> {
        let dir = self.container_run_dir(id);
        if !self.container_dir(id).join("state.json").exists() {
            return Err(ContainerError::NotFound(id.to_string()));
        }
        runroot::create_private(&dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// Takes the lock that orders changes to a container's state.
    fn lock_container(&self, id: &str) -> Result<lock::LockGuard, ContainerError> {
        let path = self.container_run_dir(id).join("lock");
        match lock::exclusive(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.create_container_run_dir(id)?;
                lock::exclusive(&path)
            }
            held => held,
        }
        .ctx(|| format!("locking {}", path.display()))
        .map_err(ContainerError::from)
    }

    /// Records a new container; its name must be free.
    pub fn create_container(&self, c: &Container) -> Result<(), ContainerError> {
        if !valid_name(&c.name) {
            return Err(ContainerError::BadName(c.name.clone()));
        }
        let _names = self.lock_names()?;
        self.check_name_free(&c.name)?;
        let dir = self.container_dir(&c.id);
        // Its writable layer may hold setuid files: no other host user may reach it (0700, which
        // no umask narrows further).
        #[cfg_attr(not(unix), allow(unused_mut))]
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        if !take_spare_folder(&self.containers_dir(), &dir) {
            builder
                .create(&dir)
                .ctx(|| format!("creating {}", dir.display()))?;
        }
        remember_name(&dir, &c.name);
        let bytes = record(c);
        if c.auto_remove {
            // A `--rm` container is gone when it ends anyway: one lost to a power cut need
            // not cost every start two disk flushes.
            self.write_file_unsynced(&dir.join("state.json"), &bytes)?;
        } else {
            self.write_file(&dir.join("state.json"), &bytes)?;
        }
        Ok(())
    }

    /// Takes the lock under which names are checked and taken.
    fn lock_names(&self) -> Result<lock::LockGuard, ContainerError> {
        let lock_path = self.root().join("locks/names.lock");
        Ok(lock::exclusive(&lock_path).ctx(|| format!("locking {}", lock_path.display()))?)
    }

    /// Fails when a container holds `name`. A container whose state file is damaged keeps its
    /// name until it is removed: its processes may still run.
    fn check_name_free(&self, name: &str) -> Result<(), ContainerError> {
        let (good, damaged) = self.scan();
        let holder = good
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.short_id().to_string())
            .or_else(|| {
                damaged
                    .iter()
                    .find(|r| r.name.as_deref() == Some(name))
                    .map(|r| r.short_id().to_string())
            });
        match holder {
            Some(id) => Err(ContainerError::NameInUse {
                name: name.to_string(),
                id,
            }),
            None => Ok(()),
        }
    }

    /// Gives container `id` the name `name`, which must be valid and free (`berth rename`).
    pub fn rename_container(&self, id: &str, name: &str) -> Result<Container, ContainerError> {
        if !valid_name(name) {
            return Err(ContainerError::BadName(name.to_string()));
        }
        let _names = self.lock_names()?;
        self.check_name_free(name)?;
        let c = self.update_container(id, |c| c.name = name.to_string())?;
        remember_name(&self.container_dir(id), name);
        Ok(c)
    }

    /// Appends a container's new state to its state file, whose bytes are `file` (read under
    /// the container's lock, which the caller holds). Not fsynced: state changes are frequent,
    /// and a power loss at worst loses the latest one, which the monitor check repairs.
    fn save_container(&self, c: &Container, file: &[u8]) -> Result<(), ContainerError> {
        use std::io::Write;
        let path = self.container_dir(&c.id).join("state.json");
        let mut bytes = record(c);
        if file.len() + bytes.len() > REWRITE_AT {
            self.write_file_unsynced(&path, &bytes)?;
            return Ok(());
        }
        if !file.is_empty() && !file.ends_with(b"\n") {
            // A torn last record (a full disk, a crash) must not swallow this one's start.
            bytes.insert(0, b'\n');
        }
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(&bytes))
            .ctx(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Reads one container's state, noticing a monitor that died without recording the end.
    pub fn load_container(&self, id: &str) -> Result<Container, ContainerError> {
        let path = self.container_dir(id).join("state.json");
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ContainerError::NotFound(id.to_string()),
            _ => ContainerError::Store(StoreError::Io {
                context: format!("reading {}", path.display()),
                cause: e,
            }),
        })?;
        let mut c = parse_state(&bytes).map_err(|e| ContainerError::Corrupt {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        if matches!(c.state.status, Status::Running | Status::Restarting)
            && !c
                .state
                .monitor_pid
                .is_some_and(|p| process_alive(p, c.state.monitor_start))
        {
            // The monitor was killed: its container died with it (its init runs with a
            // parent-death signal, or with `--rm` watches the monitor's cleanup pipe), so
            // record it as killed.
            self.update_container(&c.id, |c| {
                if matches!(c.state.status, Status::Running | Status::Restarting)
                    && !c
                        .state
                        .monitor_pid
                        .is_some_and(|p| process_alive(p, c.state.monitor_start))
                {
                    c.state.status = Status::Exited;
                    c.state.exit_code = Some(137);
                    c.state.finished_at = Some(chrono::Utc::now());
                    c.state.error = Some("the container's monitor process was killed".into());
                    c.state.pid = None;
                }
            })?;
            c = self.read_state(id)?.0;
        }
        Ok(c)
    }

    /// A container's state, and the bytes of its state file.
    fn read_state(&self, id: &str) -> Result<(Container, Vec<u8>), ContainerError> {
        let path = self.container_dir(id).join("state.json");
        let bytes = fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
        let c = parse_state(&bytes).map_err(|e| ContainerError::Corrupt {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        Ok((c, bytes))
    }

    /// Changes a container's state under its lock and returns the new state.
    pub fn update_container(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container),
    ) -> Result<Container, ContainerError> {
        let _g = self.lock_container(id)?;
        let (mut c, file) = self.read_state(id)?;
        f(&mut c);
        self.save_container(&c, &file)?;
        Ok(c)
    }

    /// Every container, newest first (not those whose state file is damaged: see
    /// [`Store::damaged_containers`]).
    pub fn containers(&self) -> Result<Vec<Container>, ContainerError> {
        Ok(self.scan().0)
    }

    /// What is left of every container whose state file cannot be read, newest first.
    pub fn damaged_containers(&self) -> Vec<Remains> {
        self.scan().1
    }

    /// Every container, and the remains of those whose state file cannot be read.
    fn scan(&self) -> (Vec<Container>, Vec<Remains>) {
        let (mut out, mut damaged) = (Vec::new(), Vec::new());
        let Ok(entries) = fs::read_dir(self.containers_dir()) else {
            return (out, damaged);
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.len() != 64 || !e.path().join("state.json").exists() {
                continue;
            }
            match self.load_container(&id) {
                Ok(c) => out.push(c),
                Err(ContainerError::NotFound(_)) => {}
                Err(ContainerError::Corrupt { reason, .. }) => {
                    damaged.push(self.remains(&id, reason));
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.created));
        damaged.sort_by_key(|r| std::cmp::Reverse(r.created));
        (out, damaged)
    }

    /// What is left of the container `id`, whose state file cannot be read for `reason`.
    fn remains(&self, id: &str, reason: String) -> Remains {
        let dir = self.container_dir(id);
        let found = salvage(&fs::read(dir.join("state.json")).unwrap_or_default());
        let changed = fs::metadata(&dir)
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        Remains {
            id: id.to_string(),
            name: remembered_name(&dir).or(found.name),
            image: found.image,
            created: found.created.or(changed).unwrap_or_else(Utc::now),
            reason,
        }
    }

    /// Finds a container by name, full id or unique id prefix. One whose state file is
    /// damaged is an error that says how to remove it.
    pub fn find_container(&self, input: &str) -> Result<Container, ContainerError> {
        let (all, damaged) = self.scan();
        let name = input.trim_start_matches('/');
        if let Some(c) = all.iter().find(|c| c.id == input || c.name == name) {
            return Ok(c.clone());
        }
        let hits: Vec<&Container> = all
            .iter()
            .filter(|c| !input.is_empty() && c.id.starts_with(input))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => match find_remains_in(&damaged, input) {
                Ok(r) => Err(ContainerError::Corrupt {
                    id: r.short_id().to_string(),
                    reason: r.reason,
                }),
                Err(e) => Err(e),
            },
            _ => Err(ContainerError::Ambiguous(input.to_string())),
        }
    }

    /// Finds a container whose state file is damaged, by name, full id or unique id prefix.
    pub fn find_remains(&self, input: &str) -> Result<Remains, ContainerError> {
        find_remains_in(&self.damaged_containers(), input)
    }

    /// Whether a monitor process holds the container `id` now (its lock in the run folder).
    pub fn monitor_holds(&self, id: &str) -> bool {
        let path = self.container_run_dir(id).join("monitor.lock");
        fs::File::open(path)
            .is_ok_and(|f| matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)))
    }

    /// Removes a container's folder (its writable layer, log and state) and its run folder.
    pub fn remove_container_files(&self, id: &str) -> Result<(), ContainerError> {
        if let Some(tmp) = self.retire_container_files(id, std::process::id()) {
            remove_tree(&tmp).ctx(|| format!("removing {}", tmp.display()))?;
        }
        Ok(())
    }

    /// Takes a container out of the store: its run folder is removed, and its folder renamed
    /// into `tmp/` in one step (a half-removed container is never listed), named for `owner`,
    /// the process that removes it from there (no cleanup takes it for a leftover while that
    /// process lives). Returns where the folder went, `None` if it was gone already.
    pub fn retire_container_files(&self, id: &str, owner: u32) -> Option<PathBuf> {
        let dir = self.container_dir(id);
        // Its network addresses go back first: a lease whose container is gone is only
        // reclaimed when its network runs out.
        #[cfg(target_os = "linux")]
        if crate::network::bridge::any(self)
            && let Ok(c) = self.load_container(id)
        {
            crate::network::bridge::release(self, id, &c.endpoints);
        }
        let tmp = crate::store::atomic::temp_path_owned(&self.tmp_dir(), "container", owner);
        let moved = fs::rename(&dir, &tmp).is_ok();
        let run = self.container_run_dir(id);
        // The container is gone from the store with the rename: a run folder left behind is
        // for `container prune`, not a failure of the removal.
        if let Err(e) = remove_tree(&run) {
            tracing::warn!("removing {}: {e}", run.display());
        }
        moved.then_some(tmp)
    }

    /// Removes run folders whose container is gone (its store folder was removed by hand, or
    /// a removal was interrupted).
    pub fn remove_stale_run_dirs(&self) {
        let Ok(entries) = fs::read_dir(self.run_root()) else {
            return;
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id.len() == 64
                && !self.container_dir(&id).exists()
                && let Err(err) = remove_tree(&e.path())
            {
                tracing::warn!("removing leftover {}: {err}", e.path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_left_of_a_record_cut_short_is_read_back() {
        let record = br#"{"id":"0123","name":"web","image":"busybox","image_id":"sha256:00","layers":["sha256:01","sha2"#;
        let found = salvage(record);
        assert_eq!(found.name.as_deref(), Some("web"));
        assert_eq!(found.image.as_deref(), Some("busybox"));
        assert!(found.created.is_none());
        // The newest record that says wins; garbage says nothing.
        let file = [
            &br#"{"id":"0123","name":"old","created":"2026-01-02T03:04:05Z"}"#[..],
            b"\n",
            br#"{"id":"0123","name":"new","ima"#,
        ]
        .concat();
        let found = salvage(&file);
        assert_eq!(found.name.as_deref(), Some("new"));
        assert_eq!(
            found.created.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-01-02T03:04:05+00:00")
        );
        let found = salvage(b"\x00\xffgarbage{{");
        assert!(found.name.is_none() && found.image.is_none());
        // A name no container could have is not taken for one.
        assert!(salvage(br#"{"name":"../x"}"#).name.is_none());
    }
}
