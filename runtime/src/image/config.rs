//! The image configuration: the OCI image config with Docker's extensions (Healthcheck,
//! OnBuild, Shell, StopTimeout).
//!
//! berth keeps its own type rather than oci-spec's because that one drops Docker's fields and
//! serializes labels from a HashMap, whose order changes between runs: the same build would
//! then give a different config digest. Here every map is ordered and unknown fields survive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;

/// The media type of an OCI image config.
pub const MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// An image config blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was made, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture (GOARCH names: amd64, arm64, wasm).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (GOOS names: linux; wasip1, wasip2 for WASI).
    #[serde(default)]
    pub os: String,
    /// The architecture variant, e.g. v8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// How a container of this image runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// The layers' uncompressed digests, bottom first.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per instruction that made the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields berth does not interpret, kept as they came.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The `rootfs` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: Vec::new(),
        }
    }
}

/// The execution parameters of an image (`config` in the JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user[:group]` to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `PORT/PROTO` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `K=V` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// The entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default command (or arguments to the entrypoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Paths that get a volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The signal that stops a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Docker: seconds to wait after the stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// Docker: whether the command line is already escaped (Windows images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Docker: the health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Docker: ONBUILD triggers, run by builds that start FROM this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Docker: the shell for shell-form commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Fields berth does not interpret.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Docker's health check settings; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time one check may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Grace time after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// One history entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// When, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, as Docker shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A free comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The run config, created empty if absent.
    pub fn run_config_mut(&mut self) -> &mut RunConfig {
        self.config.get_or_insert_with(RunConfig::default)
    }

    /// Serializes canonically (fields in a fixed order, maps sorted).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an image config serializes")
    }

    /// The platform as `os/arch[/variant]`.
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// The host's platform in GOOS/GOARCH names.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    ("linux", arch)
}

/// Parses a platform a build may target (`--platform`, `FROM --platform=`): the host's linux
/// platform, or WebAssembly's (`wasi/wasm`, `wasip1/wasm`, `wasip2/wasm`). Gives (os, arch).
pub fn parse_build_platform(s: &str) -> Result<(String, String), String> {
    let (host_os, host_arch) = host_platform();
    let mut parts = s.splitn(3, '/');
    let os = parts.next().unwrap_or_default();
    let arch = parts.next().unwrap_or_default();
    match (os, arch) {
        ("wasi" | "wasip1" | "wasip2", "wasm" | "") | ("wasm", "") => {
            let os = if os == "wasm" { "wasi" } else { os };
            Ok((os.to_string(), "wasm".into()))
        }
        (o, a) if o == host_os && (a.is_empty() || a == host_arch) => {
            Ok((host_os.into(), host_arch.into()))
        }
        _ => Err(format!(
            "platform {s} cannot be built here: use {host_os}/{host_arch} (this host) or wasi/wasm"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_round_trips_with_extensions() {
        let json = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"OnBuild":null,"Labels":{"b":"2","a":"1"},"Image":"sha256:x"},"rootfs":{"type":"layers","diff_ids":[]},"container":"abc","docker_version":"24"}"#;
        let c: ImageConfig = serde_json::from_str(json).unwrap();
        assert_eq!(
            c.config
                .as_ref()
                .unwrap()
                .healthcheck
                .as_ref()
                .unwrap()
                .interval,
            Some(1_000_000_000)
        );
        assert!(c.extra.contains_key("docker_version"));
        assert!(c.config.as_ref().unwrap().extra.contains_key("Image"));
        let out = String::from_utf8(c.to_bytes()).unwrap();
        assert!(out.contains(r#""Labels":{"a":"1","b":"2"}"#), "{out}");
        assert_eq!(c.to_bytes(), c.clone().to_bytes());
    }

    #[test]
    fn build_platforms() {
        let (os, arch) = host_platform();
        let host = (os.to_string(), arch.to_string());
        assert_eq!(
            parse_build_platform(&format!("{os}/{arch}")),
            Ok(host.clone())
        );
        assert_eq!(parse_build_platform("linux"), Ok(host));
        assert_eq!(
            parse_build_platform("wasi/wasm"),
            Ok(("wasi".into(), "wasm".into()))
        );
        assert_eq!(
            parse_build_platform("wasip2/wasm"),
            Ok(("wasip2".into(), "wasm".into()))
        );
        assert!(
            parse_build_platform("linux/s390x")
                .unwrap_err()
                .contains("wasi/wasm")
        );
    }
}
