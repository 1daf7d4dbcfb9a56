//! Docker credential helpers: when `config.json` names one (`credsStore`, or `credHelpers` for
//! one registry), Docker keeps logins in it instead of the file, and so does berth. A helper is
//! the program `docker-credential-NAME` on the PATH, run as `get`, `store` or `erase` with the
//! server on stdin and JSON on stdout, as docker-credential-helpers defines.

use std::io::Write;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::auth::Login;
use super::{RegistryError, Result};

/// What `get` prints when the helper has no login for the server.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// A credential helper, by its name in `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    name: String,
}

/// The JSON a helper reads (`store`) and prints (`get`).
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "ServerURL", default)]
    server_url: String,
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

impl Helper {
    /// The helper `docker-credential-NAME`.
    pub fn new(name: &str) -> Helper {
        Helper {
            name: name.to_string(),
        }
    }

    /// The program it runs.
    pub fn program(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    /// The login it keeps for `server`, if any.
    pub fn get(&self, server: &str) -> Result<Option<Login>> {
        let out = match self.run("get", server.as_bytes()) {
            Ok(out) => out,
            Err(HelperFailure::Said(msg)) if msg.contains(NOT_FOUND) => return Ok(None),
            Err(e) => return Err(self.error("get", server, e)),
        };
        let entry: Entry = serde_json::from_slice(&out).map_err(|e| {
            self.error(
                "get",
                server,
                HelperFailure::Said(format!("it printed something other than a login: {e}")),
            )
        })?;
        if entry.secret.is_empty() {
            return Ok(None);
        }
        Ok(Some(Login {
            username: entry.username,
            password: entry.secret,
        }))
    }

    /// Has it keep `login` for `server`.
    pub fn store(&self, server: &str, login: &Login) -> Result<()> {
        let entry = Entry {
            server_url: server.to_string(),
            username: login.username.clone(),
            secret: login.password.clone(),
        };
        let input = serde_json::to_vec(&entry).expect("json serializes");
        self.run("store", &input)
            .map(drop)
            .map_err(|e| self.error("store", server, e))
    }

    /// Has it forget `server`'s login (none kept is no error).
    pub fn erase(&self, server: &str) -> Result<()> {
        match self.run("erase", server.as_bytes()) {
            Ok(_) => Ok(()),
            Err(HelperFailure::Said(msg)) if msg.contains(NOT_FOUND) => Ok(()),
            Err(e) => Err(self.error("erase", server, e)),
        }
    }

    fn run(&self, verb: &str, input: &[u8]) -> std::result::Result<Vec<u8>, HelperFailure> {
        let mut child = Command::new(self.program())
            .arg(verb)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(HelperFailure::Spawn)?;
        // A helper that exits without reading its input is reported by its status below.
        let _ = child.stdin.take().expect("piped").write_all(input);
        let out = child.wait_with_output().map_err(HelperFailure::Spawn)?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        // Helpers print their error on stdout (docker-credential-helpers) or stderr.
        let said = [out.stdout, out.stderr]
            .iter()
            .map(|b| String::from_utf8_lossy(b).trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        Err(HelperFailure::Said(if said.is_empty() {
            format!("it exited with {}", out.status)
        } else {
            said
        }))
    }

    fn error(&self, verb: &str, server: &str, why: HelperFailure) -> RegistryError {
        let cause = match why {
            HelperFailure::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
                "{} is not on the PATH: install it, or remove the helper from config.json to keep logins in the file",
                self.program()
            ),
            HelperFailure::Spawn(e) => e.to_string(),
            HelperFailure::Said(s) => s,
        };
        RegistryError::Config {
            context: format!(
                "the credential helper {} could not {verb} the login for {server}",
                self.program()
            ),
            cause,
        }
    }
}

/// Why a helper run failed.
enum HelperFailure {
    /// It could not be started (or waited for).
    Spawn(std::io::Error),
    /// It failed, saying this.
    Said(String),
}
