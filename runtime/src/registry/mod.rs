//! The registry client: images to and from OCI distribution registries (Docker Hub, GHCR,
//! Harbor, a private `registry:2`), as the distribution spec says.
//!
//! - [`client`]: one registry host: https or (for loopback and insecure registries) plain
//!   HTTP, per-registry CAs, retries with backoff, the registry's error bodies.
//! - [`auth`]: the `WWW-Authenticate` challenge flow, basic and bearer tokens per scope.
//! - [`credentials`]: Docker's `config.json`, so a `docker login` works for berth and back.
//! - [`platform`]: picking a manifest out of an image index or manifest list.
//! - [`pull`] and [`push`]: images in and out of the store; [`sources`] remembers which
//!   repositories hold which blobs, for cross-repository mounts.

pub mod auth;
pub mod client;
pub mod credential_helper;
pub mod credentials;
pub mod platform;
pub mod pull;
pub mod push;
pub mod sources;
pub mod tls;

use std::path::PathBuf;

use crate::digest::Digest;
use crate::image::ImageError;
use crate::store::StoreError;

pub use client::Client;
pub use credentials::Credentials;
pub use platform::Platform;

/// The media type of a Docker v2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How berth talks to registries: which may use plain HTTP or unverified TLS, where CAs are.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`HOST[:PORT]`) where TLS is not verified and plain HTTP is allowed,
    /// as Docker's `insecure-registries`.
    pub insecure: Vec<String>,
    /// Folders holding `HOST[:PORT]/ca.crt` (Docker's `certs.d`), searched in order.
    pub certs_dirs: Vec<PathBuf>,
    /// The Docker config folder holding `config.json` with logins.
    pub docker_config: PathBuf,
}

impl RegistryOptions {
    /// The defaults plus the environment: `BERTH_CERTS_D` (a `certs.d` folder searched
    /// first), `/etc/berth/certs.d`, `/etc/docker/certs.d`; `DOCKER_CONFIG` or `~/.docker`;
    /// insecure registries from `insecure` and from `/etc/berth/config.json`
    /// (`{"insecure-registries": [...]}`, as Docker's daemon.json).
    pub fn from_env(insecure: &[String]) -> RegistryOptions {
        let mut certs_dirs = Vec::new();
        if let Some(d) = std::env::var_os("BERTH_CERTS_D").filter(|d| !d.is_empty()) {
            certs_dirs.push(PathBuf::from(d));
        }
        certs_dirs.push(PathBuf::from("/etc/berth/certs.d"));
        certs_dirs.push(PathBuf::from("/etc/docker/certs.d"));
        let mut insecure = insecure.to_vec();
        if let Ok(bytes) = std::fs::read("/etc/berth/config.json")
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(list) = v.get("insecure-registries").and_then(|l| l.as_array())
        {
            insecure.extend(list.iter().filter_map(|x| x.as_str().map(str::to_string)));
        }
        RegistryOptions {
            insecure,
            certs_dirs,
            docker_config: credentials::config_dir(),
        }
    }

    /// Whether `host` was named insecure.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure.iter().any(|h| {
            let h = h
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/');
            h == host
        })
    }
}

/// What a pull or push reports as it goes, for progress bars or plain lines.
#[derive(Debug, Clone)]
pub enum Event {
    /// Work on a blob started; `size` is its full size.
    Start {
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// What is being done (`Downloading`, `Pushing`).
        action: &'static str,
    },
    /// More bytes of a blob were moved.
    Progress {
        /// The blob.
        digest: Digest,
        /// Bytes done so far, in all.
        done: u64,
    },
    /// A blob is finished; `status` says how (`Pull complete`, `Already exists`, `Pushed`,
    /// `Mounted from library/busybox`, `Layer already exists`).
    Done {
        /// The blob.
        digest: Digest,
        /// How it ended.
        status: String,
    },
}

/// Receives [`Event`]s; called from several threads at once.
pub trait Progress: Sync {
    /// One event.
    fn event(&self, event: Event);
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: Event) {}
}

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry did not answer at all.
    #[error(
        "cannot reach registry {registry}: {cause} (is it running and is the address right? retried with backoff)"
    )]
    Unreachable {
        /// The registry host.
        registry: String,
        /// What the connection said.
        cause: String,
    },
    /// TLS failed: an unknown CA, a wrong name, a server that does not speak TLS.
    #[error(
        "tls with registry {registry} failed: {cause} (put its CA in /etc/berth/certs.d/{registry}/ca.crt, or name it with --insecure-registry if it is yours)"
    )]
    Tls {
        /// The registry host.
        registry: String,
        /// What TLS said.
        cause: String,
    },
    /// The connection broke during a transfer, after the retries.
    #[error("{what}: the connection was cut: {cause} (run the command again: it resumes)")]
    Cut {
        /// What was being moved.
        what: String,
        /// What the connection said.
        cause: String,
    },
    /// The repository does not exist on the registry.
    #[error(
        "repository {repository} not found on registry {registry} (check the name, or `berth login {registry}` if it is private)"
    )]
    UnknownRepository {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
    },
    /// The tag or digest does not exist in the repository.
    #[error("manifest for {reference} not found: no such tag or digest in {repository}")]
    UnknownManifest {
        /// The reference asked for.
        reference: String,
        /// The repository.
        repository: String,
    },
    /// The registry wants credentials berth does not have, or refused the ones it sent.
    #[error(
        "{what}: authentication required by {registry} (run `berth login {registry}`; if you did, the credentials were refused)"
    )]
    Unauthorized {
        /// What was being done.
        what: String,
        /// The registry host.
        registry: String,
    },
    /// The registry knows who berth is but does not allow this.
    #[error(
        "{what}: denied by {registry}: {message} (log in as a user with access to it: `berth login {registry}`)"
    )]
    Denied {
        /// What was being done.
        what: String,
        /// The registry host.
        registry: String,
        /// The registry's message.
        message: String,
    },
    /// `login` with a wrong username or password.
    #[error("login to {registry} failed: wrong username or password")]
    WrongCredentials {
        /// The registry host.
        registry: String,
    },
    /// Content did not hash to the digest it was announced with.
    #[error(
        "{what}: digest mismatch: expected {expected}, got {actual} (the registry served corrupt content; nothing was stored)"
    )]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The announced digest.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// No manifest in an index matches the platform asked for.
    #[error(
        "no image for platform {wanted} in {reference} (it offers {offered}; choose one with --platform)"
    )]
    NoPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// What the index lists.
        offered: String,
    },
    /// Something the registry sent is not what the spec says.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being read.
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// Any other answer.
    #[error("{what}: registry {registry} answered {status}: {message}")]
    Status {
        /// What was being done.
        what: String,
        /// The registry host.
        registry: String,
        /// The HTTP status.
        status: u16,
        /// The registry's message, if any.
        message: String,
    },
    /// Docker's config.json could not be read or written.
    #[error("{context}: {cause}")]
    Config {
        /// What berth was doing.
        context: String,
        /// The underlying error.
        cause: String,
    },
    /// A local I/O failure.
    #[error("{context}: {cause}")]
    Io {
        /// What berth was doing.
        context: String,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The image in the store failed.
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl From<crate::reference::InvalidReference> for RegistryError {
    fn from(e: crate::reference::InvalidReference) -> Self {
        RegistryError::Image(ImageError::Reference(e))
    }
}

/// Shorthand for registry results.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The host berth connects to for a registry named in a reference: Docker Hub's API lives at
/// `registry-1.docker.io`.
pub fn endpoint_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// Whether a registry host is on this machine (`localhost`, 127.0.0.0/8, `::1`), where plain
/// HTTP is allowed as Docker allows it.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') {
                h
            } else {
                host
            }
        }),
    };
    if name == "localhost" {
        return true;
    }
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.3.2.1",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "registry-1.docker.io",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn docker_hub_endpoint() {
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_host("localhost:5000"), "localhost:5000");
    }
}
