//! A `docker-registry serve` (Debian's distribution registry) on a free loopback port, for
//! the tests that push and pull.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::require;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `docker-registry serve` on 127.0.0.1 with its own storage.
pub struct Registry {
    /// Its storage, config and log.
    pub dir: TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The running registry.
    pub child: Arc<Mutex<Option<Child>>>,
}

impl Registry {
    /// `http_extra` goes under `http:` (e.g. `tls:`), `top_extra` at the top (e.g. `auth:`).
    pub fn start_with(http_extra: &str, top_extra: &str) -> Registry {
        require("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{http_extra}{top_extra}",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let r = Registry {
            dir,
            port,
            child: Arc::new(Mutex::new(None)),
        };
        r.restart();
        r
    }

    pub fn start() -> Registry {
        Registry::start_with("", "")
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn restart(&self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        *self.child.lock().unwrap() = Some(child);
        wait_port(self.port);
    }

    pub fn kill(&self) {
        kill_child(&self.child);
    }

    /// The data file of a blob in the registry's storage.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }
}

pub fn kill_child(child: &Mutex<Option<Child>>) {
    if let Some(mut c) = child.lock().unwrap().take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes `bytes` as a blob of the OCI layout at `layout`; gives its descriptor.
pub fn put_blob(layout: &std::path::Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    use sha2::{Digest as _, Sha256};
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
}
