//! Which backend runs a workload: a native process in namespaces, or a WASI guest in wasmtime.
//!
//! The choice, as the design orders it: `--runtime` when given; else the image's platform
//! (os `wasip1`/`wasip2`/`wasi` or arch `wasm`); else the annotations other wasm tooling sets
//! (`run.oci.handler=wasm`, `module.wasm.image/variant=compat`); else the program's own magic
//! bytes, which the container's init reads once the rootfs is built (`\0asm` is WASI).

use serde::{Deserialize, Serialize};

use crate::image::Image;

/// A runtime backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A Linux process in namespaces.
    #[default]
    Native,
    /// A WebAssembly module or component in wasmtime.
    Wasi,
}

impl Backend {
    /// Its name, as `--runtime` takes it and `inspect` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Wasi => "wasi",
        }
    }

    /// Parses `--runtime`.
    pub fn parse(s: &str) -> Result<Backend, String> {
        match s {
            "native" | "runc" | "io.containerd.runc.v2" => Ok(Backend::Native),
            "wasi" | "wasm" | "wasmtime" | "io.containerd.wasmtime.v1" => Ok(Backend::Wasi),
            other => Err(format!(
                "unknown runtime {other:?}: use --runtime native or --runtime wasi"
            )),
        }
    }

    /// Whether this build of berth can run it (the native backend needs Linux).
    pub fn available(self) -> bool {
        match self {
            Backend::Native => cfg!(target_os = "linux"),
            Backend::Wasi => true,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an image platform (`os`, `architecture`) is WebAssembly's.
pub fn is_wasm_platform(os: &str, arch: &str) -> bool {
    matches!(os, "wasip1" | "wasip2" | "wasi") || arch == "wasm"
}

/// Whether manifest annotations or config labels mark an image as wasm, as runwasi and crun
/// read them.
pub fn has_wasm_annotation<'a>(mut entries: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    entries.any(|(k, v)| {
        (k == "run.oci.handler" && v == "wasm")
            || (k == "module.wasm.image/variant" && v == "compat")
    })
}

/// What the image says about its backend: `Some(Wasi)` for a wasm platform or annotation,
/// `None` when only the program itself can tell.
pub fn image_backend(image: &Image) -> Option<Backend> {
    let cfg = &image.config;
    let annotations = image.manifest.annotations().clone().unwrap_or_default();
    let labels = cfg
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let wasm_layer = image.has_wasm_layer();
    if wasm_layer
        || is_wasm_platform(&cfg.os, &cfg.architecture)
        || has_wasm_annotation(annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        || has_wasm_annotation(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        Some(Backend::Wasi)
    } else {
        None
    }
}

/// Chooses the backend for a container of `image`, with `--runtime` as `forced`. An image
/// marked wasm asked to run natively is refused here; the reverse (a native program asked to
/// run as WASI) is refused by the init, which is where the program is first readable.
pub fn select(image: &Image, image_name: &str, forced: Option<Backend>) -> Result<Backend, String> {
    let from_image = image_backend(image);
    match (forced, from_image) {
        (Some(Backend::Native), Some(Backend::Wasi)) => Err(format!(
            "image {image_name} is a WebAssembly image (platform {}/{}), so it cannot run with --runtime native: drop --runtime or use --runtime wasi",
            image.config.os, image.config.architecture
        )),
        (Some(b), _) => Ok(b),
        (None, Some(b)) => Ok(b),
        (None, None) => Ok(Backend::Native),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_runtime_names() {
        assert_eq!(Backend::parse("wasi"), Ok(Backend::Wasi));
        assert_eq!(Backend::parse("native"), Ok(Backend::Native));
        assert!(
            Backend::parse("kata")
                .unwrap_err()
                .contains("--runtime native")
        );
    }

    #[test]
    fn wasm_platforms_and_annotations() {
        assert!(is_wasm_platform("wasip1", "wasm"));
        assert!(is_wasm_platform("wasi", "wasm"));
        assert!(is_wasm_platform("linux", "wasm"));
        assert!(!is_wasm_platform("linux", "amd64"));
        assert!(has_wasm_annotation(
            [("run.oci.handler", "wasm")].into_iter()
        ));
        assert!(has_wasm_annotation(
            [("module.wasm.image/variant", "compat")].into_iter()
        ));
        assert!(!has_wasm_annotation(
            [("run.oci.handler", "crun")].into_iter()
        ));
    }
}
