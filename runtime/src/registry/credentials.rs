//! Logins kept as Docker keeps them: `config.json` in `$DOCKER_CONFIG` or `~/.docker`, with
//! `auths.<server>.auth` the base64 of `user:password`, or in the credential helper the file
//! names (`credHelpers.<server>`, else `credsStore`; see `credential_helper.rs`). berth reads
//! what `docker login` wrote and writes what docker reads; every other field of the file is
//! kept as it was. The file is written atomically with mode 0600.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::auth::Login;
use super::credential_helper::Helper;
use super::{RegistryError, Result};

/// The key Docker uses for Docker Hub in `auths`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The Docker config folder: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker")
}

/// The `auths` key for a registry, as Docker writes it.
pub fn server_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// Docker's config.json, as read.
#[derive(Debug, Clone)]
pub struct Credentials {
    path: PathBuf,
    doc: Map<String, Value>,
}

fn config_err(context: String, cause: impl std::fmt::Display) -> RegistryError {
    RegistryError::Config {
        context,
        cause: cause.to_string(),
    }
}

/// `https://host/v1/` and `host` name the same server in `auths`.
fn normalize_key(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

impl Credentials {
    /// Reads `config.json` from `dir` (a missing file is an empty one).
    pub fn load(dir: &Path) -> Result<Credentials> {
        let path = dir.join("config.json");
        let doc = match fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                config_err(
                    format!("reading {}", path.display()),
                    format!("{e} (fix or remove the file)"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(config_err(format!("reading {}", path.display()), e)),
        };
        Ok(Credentials { path, doc })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    /// The login stored in the file for a registry, if any.
    pub fn get(&self, registry: &str) -> Option<Login> {
        let want = server_key(registry);
        let auths = self.auths()?;
        let entry = auths.get(&want).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| normalize_key(k) == normalize_key(&want))
                .map(|(_, v)| v)
        })?;
        if let Some(auth) = entry.get("auth").and_then(Value::as_str)
            && !auth.is_empty()
        {
            let decoded = STANDARD.decode(auth.trim()).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (username, password) = decoded.split_once(':')?;
            return Some(Login {
                username: username.to_string(),
                password: password.to_string(),
            });
        }
        let username = entry.get("username").and_then(Value::as_str)?;
        let password = entry.get("password").and_then(Value::as_str)?;
        Some(Login {
            username: username.into(),
            password: password.into(),
        })
    }

    /// The credential helper that keeps this registry's login, as Docker picks it:
    /// `credHelpers.<server>`, else `credsStore`.
    pub fn helper(&self, registry: &str) -> Option<Helper> {
        let key = server_key(registry);
        let per_registry = self
            .doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| {
                h.get(&key).or_else(|| {
                    h.iter()
                        .find(|(k, _)| normalize_key(k) == normalize_key(&key))
                        .map(|(_, v)| v)
                })
            });
        per_registry
            .or_else(|| self.doc.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(Helper::new)
    }

    /// The login for a registry: from its credential helper when the file names one, else
    /// from the file.
    pub fn login(&self, registry: &str) -> Result<Option<Login>> {
        match self.helper(registry) {
            Some(helper) => helper.get(&server_key(registry)),
            None => Ok(self.get(registry)),
        }
    }

    /// Stores a login for a registry: in its credential helper when the file names one (the
    /// file then lists the server with no secret, as Docker's does), else in the file. The
    /// file still has to be saved.
    pub fn store(&mut self, registry: &str, login: &Login) -> Result<()> {
        match self.helper(registry) {
            Some(helper) => {
                helper.store(&server_key(registry), login)?;
                self.set_entry(registry, serde_json::json!({}));
            }
            None => self.set(registry, login),
        }
        Ok(())
    }

    /// Forgets a registry's login, in its credential helper too; returns whether the file
    /// listed one. The file still has to be saved.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        if let Some(helper) = self.helper(registry) {
            helper.erase(&server_key(registry))?;
        }
        Ok(self.remove(registry))
    }

    /// Stores a login for a registry in the file.
    pub fn set(&mut self, registry: &str, login: &Login) {
        let auth = STANDARD.encode(format!("{}:{}", login.username, login.password));
        self.set_entry(registry, serde_json::json!({ "auth": auth }));
    }

    fn set_entry(&mut self, registry: &str, entry: Value) {
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        auths
            .as_object_mut()
            .expect("made an object")
            .insert(server_key(registry), entry);
    }

    /// Forgets a registry's login in the file; returns whether there was one.
    pub fn remove(&mut self, registry: &str) -> bool {
        let want = server_key(registry);
        let Some(auths) = self.doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return false;
        };
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != normalize_key(&want));
        auths.len() != before
    }

    /// Writes the file atomically (temp file, fsync, rename) with mode 0600.
    pub fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let ctx = |what: &str| format!("{what} {}", self.path.display());
        fs::create_dir_all(dir).map_err(|e| config_err(ctx("creating the folder of"), e))?;
        let mut bytes =
            serde_json::to_vec_pretty(&Value::Object(self.doc.clone())).expect("json serializes");
        bytes.push(b'\n');
        let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(fs::Permissions::from_mode(0o600))?;
            }
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            crate::store::atomic::rename_durable(&tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(config_err(ctx("writing"), e));
        }
        Ok(())
    }
}

/// The login berth has for `registry`, if any: from `config.json` in the Docker config folder,
/// or the credential helper it names. An unreadable file or a failing helper is a warning, not
/// an error: the registry may not need a login.
pub fn login_for(docker_config: &Path, registry: &str) -> Option<Login> {
    let creds = match Credentials::load(docker_config) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{e}; going on without credentials");
            return None;
        }
    };
    match creds.login(registry) {
        Ok(login) => login,
        Err(e) => {
            tracing::warn!("{e}; going on without credentials");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut c = Credentials::load(dir.path()).unwrap();
        assert_eq!(c.get("docker.io").unwrap().username, "u");
        assert!(c.get("localhost:5000").is_none());
        c.set(
            "localhost:5000",
            &Login {
                username: "a".into(),
                password: "b:c".into(),
            },
        );
        c.save().unwrap();
        let c = Credentials::load(dir.path()).unwrap();
        assert_eq!(c.get("localhost:5000").unwrap().password, "b:c");
        assert_eq!(c.doc.get("psFormat").unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("config.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn remove_matches_url_keys() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"https://reg.example.com/v1/":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let mut c = Credentials::load(dir.path()).unwrap();
        assert!(c.get("reg.example.com").is_some());
        assert!(c.remove("reg.example.com"));
        assert!(!c.remove("reg.example.com"));
    }
}
