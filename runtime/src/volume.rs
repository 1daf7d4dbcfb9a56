//! Named volumes: folders under `volumes/<name>/_data` that outlive containers. A new volume
//! mounted over a path the image fills starts with the image's content there, as Docker's do.

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{IoContext, Store, StoreError, remove_tree};

/// A volume's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Where its data lives on the host.
    pub mountpoint: PathBuf,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// Made for one container (`-v /path`); removed with it by `rm -v`.
    pub anonymous: bool,
}

/// What can go wrong with volumes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No such volume.
    #[error("no such volume: {0} (`berth volume ls` lists them)")]
    NotFound(String),
    /// A container uses it.
    #[error("volume {name} is in use by container {container}: remove the container first")]
    InUse {
        /// The volume.
        name: String,
        /// A container using it.
        container: String,
    },
    /// Bad name.
    #[error("invalid volume name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    BadName(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    fn volumes_dir(&self) -> PathBuf {
        self.root().join("volumes")
    }

    /// Creates a volume if it does not exist; returns it.
    pub fn create_volume(&self, name: &str, anonymous: bool) -> Result<Volume, VolumeError> {
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(VolumeError::BadName(name.to_string()));
        }
        if let Ok(v) = self.volume(name) {
            return Ok(v);
        }
        let dir = self.volumes_dir().join(name);
        let data = dir.join("_data");
        fs::create_dir_all(&data).ctx(|| format!("creating {}", data.display()))?;
        let v = Volume {
            name: name.to_string(),
            mountpoint: data,
            created: Utc::now(),
            anonymous,
        };
        self.write_file(
            &dir.join("volume.json"),
            &serde_json::to_vec(&v).expect("serializes"),
        )?;
        Ok(v)
    }

    /// A volume by name.
    pub fn volume(&self, name: &str) -> Result<Volume, VolumeError> {
        let path = self.volumes_dir().join(name).join("volume.json");
        let bytes = fs::read(&path).map_err(|_| VolumeError::NotFound(name.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            VolumeError::Store(StoreError::Corrupt {
                what: path.display().to_string(),
                reason: e.to_string(),
            })
        })
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<Volume>, VolumeError> {
        let Ok(rd) = fs::read_dir(self.volumes_dir()) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<Volume> = rd
            .flatten()
            .filter_map(|e| self.volume(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Containers whose mounts name the volume.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.containers()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| {
                c.spec
                    .mounts
                    .iter()
                    .any(|m| m.volume.as_deref() == Some(name))
            })
            .map(|c| c.short_id().to_string())
            .collect()
    }

    /// Removes a volume and its data; refused while a container uses it unless `force`.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        self.volume(name)?;
        if let Some(user) = self.volume_users(name).into_iter().next()
            && !force
        {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                container: user,
            });
        }
        let dir = self.volumes_dir().join(name);
        let tmp = self.temp_path("volume");
        fs::rename(&dir, &tmp).ctx(|| format!("removing volume {name}"))?;
        remove_tree(&tmp).ctx(|| format!("removing volume {name}"))?;
        Ok(())
    }
}
