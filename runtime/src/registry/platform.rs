//! Platforms (`os/arch[/variant]`) and picking one manifest out of an OCI image index or a
//! Docker manifest list: the one asked for with `--platform`, else the host's linux platform,
//! else a WASI one (`wasip1`, `wasip2` or `wasi` on `wasm`) when that is all the index has.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};

use super::{RegistryError, Result};

/// An `os/arch[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// GOOS name: linux, wasip1, …; `wasi` matches every WASI os.
    pub os: String,
    /// GOARCH name: amd64, arm64, wasm, …
    pub arch: String,
    /// The variant (v7, v8), if any.
    pub variant: Option<String>,
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad =
            || format!("invalid platform {s:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64");
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_lowercase(),
                arch: normalize_arch(arch),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_lowercase(),
                    arch: normalize_arch(arch),
                    variant: Some(variant.to_lowercase()),
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_arch(a: &str) -> String {
    match a.to_lowercase().as_str() {
        "x86_64" | "x86-64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        other => other.into(),
    }
}

/// Whether an os name is a WASI one.
pub fn is_wasi_os(os: &str) -> bool {
    matches!(os, "wasi" | "wasip1" | "wasip2")
}

impl Platform {
    /// The host's linux platform.
    pub fn host() -> Platform {
        let (os, arch) = crate::image::config::host_platform();
        Platform {
            os: os.into(),
            arch: arch.into(),
            variant: None,
        }
    }

    /// The WASI platform berth falls back to.
    pub fn wasi() -> Platform {
        Platform {
            os: "wasi".into(),
            arch: "wasm".into(),
            variant: None,
        }
    }

    /// Whether a descriptor's platform is this one.
    pub fn matches(&self, d: &Descriptor) -> bool {
        let Some(p) = d.platform() else {
            return false;
        };
        let os = p.os().to_string();
        let arch = p.architecture().to_string();
        let os_ok = os == self.os || (self.os == "wasi" && is_wasi_os(&os));
        let variant_ok = match (&self.variant, p.variant()) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            // arm64 images often omit v8.
            (Some(want), None) => want == "v8" && arch == "arm64",
        };
        os_ok && arch == self.arch && variant_ok
    }
}

fn describe(d: &Descriptor) -> Option<String> {
    let p = d.platform().as_ref()?;
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        s.push('/');
        s.push_str(v);
    }
    Some(s)
}

/// The manifest of `index` for `wanted`, or by default for the host (then WASI).
pub fn select<'a>(
    index: &'a ImageIndex,
    wanted: Option<&Platform>,
    reference: &str,
) -> Result<&'a Descriptor> {
    let candidates: Vec<Platform> = match wanted {
        Some(p) => vec![p.clone()],
        None => vec![Platform::host(), Platform::wasi()],
    };
    for want in &candidates {
        if let Some(d) = index.manifests().iter().find(|d| want.matches(d)) {
            return Ok(d);
        }
    }
    let offered: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(describe)
        .filter(|s| s != "unknown/unknown")
        .collect();
    Err(RegistryError::NoPlatform {
        reference: reference.to_string(),
        wanted: candidates
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        offered: if offered.is_empty() {
            "no platforms".into()
        } else {
            offered.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[(&str, &str)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = platforms
            .iter()
            .enumerate()
            .map(|(i, (os, arch))| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", i),
                    "size": 1,
                    "platform": {"os": os, "architecture": arch}
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap()
    }

    #[test]
    fn host_first_then_wasi() {
        let (_, arch) = crate::image::config::host_platform();
        let i = index(&[("wasip1", "wasm"), ("linux", arch)]);
        let d = select(&i, None, "x").unwrap();
        assert_eq!(d.platform().as_ref().unwrap().os().to_string(), "linux");
        let i = index(&[("linux", "s390x-not-this"), ("wasip2", "wasm")]);
        let d = select(&i, None, "x").unwrap();
        assert_eq!(d.platform().as_ref().unwrap().os().to_string(), "wasip2");
    }

    #[test]
    fn explicit_platform_and_error() {
        let i = index(&[("linux", "amd64"), ("linux", "arm64")]);
        let want: Platform = "linux/arm64".parse().unwrap();
        let d = select(&i, Some(&want), "x").unwrap();
        assert_eq!(
            d.platform().as_ref().unwrap().architecture().to_string(),
            "arm64"
        );
        let want: Platform = "linux/riscv64".parse().unwrap();
        let e = select(&i, Some(&want), "x").unwrap_err().to_string();
        assert!(e.contains("linux/amd64, linux/arm64"), "{e}");
        assert!("linux".parse::<Platform>().is_err());
        assert_eq!(
            "linux/arm/v7".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
    }
}
