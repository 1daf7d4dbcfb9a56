//! Where blobs came from and went to: `registry-sources.json` under the store root maps a
//! blob digest to the `registry/repository` names known to hold it, so a push to another
//! repository of the same registry can mount the blob instead of uploading it.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::store::{IoContext, Store, lock};

use super::Result;

const FILE: &str = "registry-sources.json";
/// Repositories remembered per blob; the oldest are forgotten first.
const MAX_PER_BLOB: usize = 8;

type Map = BTreeMap<String, Vec<String>>;

fn read(store: &Store) -> Map {
    std::fs::read(store.root().join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The repositories (`registry/repository`) known to hold `digest`.
pub fn holders(store: &Store, digest: &Digest) -> Vec<String> {
    read(store).remove(&digest.to_string()).unwrap_or_default()
}

/// Records that `name` (`registry/repository`) holds each of `digests`.
pub fn record(store: &Store, name: &str, digests: &[Digest]) -> Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    let lock_path = store.root().join("locks/sources.lock");
    let _g = lock::exclusive(&lock_path).ctx(|| format!("locking {}", lock_path.display()))?;
    let mut map = read(store);
    // Blobs no longer in the store are forgotten.
    map.retain(|d, _| d.parse::<Digest>().is_ok_and(|d| store.has_blob(&d)));
    for d in digests {
        let list = map.entry(d.to_string()).or_default();
        list.retain(|n| n != name);
        list.push(name.to_string());
        if list.len() > MAX_PER_BLOB {
            list.remove(0);
        }
    }
    let bytes = serde_json::to_vec(&map).expect("json serializes");
    store.write_file(&store.root().join(FILE), &bytes)?;
    Ok(())
}
