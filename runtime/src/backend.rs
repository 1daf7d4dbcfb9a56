//! Which backend runs a workload: a native process in namespaces, or a WASI guest in wasmtime.
//!
//! The choice, as the design orders it, made once when a container is created ([`decide`]):
//! `--runtime` when given; else the image's platform (os `wasip1`/`wasip2`/`wasi` or arch
//! `wasm`); else the program's own magic bytes, read from the image's layers (`\0asm` is
//! WASI, ELF or `#!` native); else the annotations other wasm tooling sets
//! (`run.oci.handler=wasm`, `module.wasm.image/variant=compat`); else native.

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

/// What is known about a workload when its backend is chosen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// `--runtime`, when given.
    pub forced: Option<Backend>,
    /// The entrypoint's first bytes, read from the image's layers (or the volume it is on)
    /// before the container exists; `None` when it is not found there.
    pub program_header: Option<&'a [u8]>,
}

/// What a program's first bytes say: `\0asm` is WASI; ELF or `#!` is native.
fn header_backend(header: &[u8]) -> Option<Backend> {
    if crate::sandbox::wasi::is_wasm(header) {
        Some(Backend::Wasi)
    } else if header.starts_with(b"\x7fELF") || header.starts_with(b"#!") {
        Some(Backend::Native)
    } else {
        None
    }
}

/// What an image says about its backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageHints {
    /// Its platform's os and architecture, as `os/arch`.
    pub platform: String,
    /// The platform is WebAssembly's (os `wasip1`/`wasip2`/`wasi`, or arch `wasm`), or its
    /// layers are wasm layers.
    pub wasm_platform: bool,
    /// Its manifest's annotations or its config's labels mark it as wasm.
    pub wasm_annotation: bool,
}

impl ImageHints {
    /// The hints of an image config (its platform and labels), as a build's stage has it.
    pub fn of_config(config: &crate::image::ImageConfig) -> ImageHints {
        let labels = config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        ImageHints {
            platform: format!("{}/{}", config.os, config.architecture),
            wasm_platform: is_wasm_platform(&config.os, &config.architecture),
            wasm_annotation: has_wasm_annotation(
                labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        }
    }

    /// Whether the program's first bytes can change [`decide`]'s answer (no `--runtime`, no
    /// wasm platform): only then are they worth reading.
    pub fn needs_program_header(&self, forced: Option<Backend>) -> bool {
        forced.is_none() && !self.wasm_platform
    }

    /// The hints of a stored image: its config's, its layers' media types and its manifest's
    /// annotations.
    pub fn of_image(image: &Image) -> ImageHints {
        let mut hints = ImageHints::of_config(&image.config);
        let annotations = image.manifest.annotations().clone().unwrap_or_default();
        hints.wasm_platform |= image.has_wasm_layer();
        hints.wasm_annotation |=
            has_wasm_annotation(annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        hints
    }
}

/// Chooses the backend of a workload of an image (named `image_name` by the user, with
/// `hints`): this is the one place it is decided, and everything else reads the result
/// (`WorkloadSpec::backend`).
///
/// In the design's order: `--runtime`; else the image's platform; else the program's magic
/// bytes; else the annotations; else native. An image whose platform is wasm asked to run
/// with `--runtime native` is refused here. A program whose bytes contradict `--runtime` is
/// refused by [`check_program`] when the container starts, where it is first certain.
pub fn decide(
    image_name: &str,
    hints: &ImageHints,
    evidence: Evidence<'_>,
) -> Result<Backend, String> {
    match evidence.forced {
        Some(Backend::Native) if hints.wasm_platform => Err(format!(
            "image {image_name} is a WebAssembly image (platform {}), so it cannot run with --runtime native: drop --runtime or use --runtime wasi",
            hints.platform
        )),
        Some(b) => Ok(b),
        None if hints.wasm_platform => Ok(Backend::Wasi),
        None => Ok(evidence.program_header.and_then(header_backend).unwrap_or(
            if hints.wasm_annotation {
                Backend::Wasi
            } else {
                Backend::Native
            },
        )),
    }
}

/// The first bytes of the program `spec` runs, when they can be read before its container
/// exists: from the image's layer snapshots `top_first` (the topmost first), or from the host
/// folder of a bind mount or volume over it. `None` when it is not found there (the container's
/// PID 1 then reads it).
#[cfg(target_os = "linux")]
pub fn program_header(
    top_first: &[std::path::PathBuf],
    spec: &crate::workload::WorkloadSpec,
) -> Option<Vec<u8>> {
    let name = spec.args.first()?;
    let candidates: Vec<String> = if name.starts_with('/') {
        vec![name.clone()]
    } else if name.contains('/') {
        vec![format!("{}/{name}", spec.cwd.trim_end_matches('/'))]
    } else {
        let path = spec
            .env_var("PATH")
            .unwrap_or(crate::workload::DEFAULT_PATH);
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
            .collect()
    };
    for path in &candidates {
        // A mount over the path hides the image's file there.
        if let Some((source, rest)) = mounted_source(&spec.mounts, path) {
            if let Some(h) = read_in(&source, &rest) {
                return Some(h);
            }
            continue;
        }
        if let Some((_, file)) = crate::image::snapshot::find_in_layers(top_first, path) {
            return crate::sandbox::wasi::file_header(&file);
        }
    }
    None
}

/// The first bytes of the regular file `rest` under the folder `root`, opened through a handle
/// on it (no symlink in a volume the container writes leads elsewhere), without blocking (a
/// FIFO put there answers nothing).
#[cfg(target_os = "linux")]
fn read_in(root: &std::path::Path, rest: &str) -> Option<Vec<u8>> {
    use cap_std::fs::OpenOptionsExt;
    let dir = cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority()).ok()?;
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true).custom_flags(nix::libc::O_NONBLOCK);
    let mut file = dir.open_with(rest, &options).ok()?.into_std();
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    crate::sandbox::wasi::read_header(&mut file).ok()
}

/// Without Linux, layer snapshots are not searched: the image's hints decide.
#[cfg(not(target_os = "linux"))]
pub fn program_header(
    _top_first: &[std::path::PathBuf],
    _spec: &crate::workload::WorkloadSpec,
) -> Option<Vec<u8>> {
    None
}

/// The host path that `path` in the container is, when a bind mount or volume covers it (the
/// deepest one).
#[cfg(target_os = "linux")]
fn mounted_source(
    mounts: &[crate::workload::MountSpec],
    path: &str,
) -> Option<(std::path::PathBuf, String)> {
    let (source, rest) = mounts
        .iter()
        .filter(|m| m.kind != crate::workload::MountKind::Tmpfs)
        .filter_map(|m| {
            let dest = m.destination.trim_end_matches('/');
            let rest = path.strip_prefix(dest)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((dest.len(), (m, rest)))
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, found)| found)?;
    match rest.trim_start_matches('/') {
        // A file mounted at the path itself: its folder, and its name.
        "" => Some((
            source.source.parent()?.to_path_buf(),
            source.source.file_name()?.to_str()?.to_string(),
        )),
        rest => Some((source.source.clone(), rest.to_string())),
    }
}

/// Checks the program a container's PID 1 (or `exec`) found against the backend decided for
/// it, by its first bytes: gives the kind of wasm when it runs as a WASI guest. A program
/// that `--runtime` cannot run is refused with the way out (126); without `--runtime`, a
/// native container still runs a WebAssembly program as a guest (one that `exec` runs, or one
/// the image's layers did not show when the backend was decided).
pub fn check_program(
    spec: &crate::workload::WorkloadSpec,
    header: &[u8],
) -> Result<Option<crate::sandbox::wasi::WasmKind>, crate::workload::StartError> {
    use crate::workload::StartError;
    let name = spec.args.first().map(String::as_str).unwrap_or_default();
    let kind = crate::sandbox::wasi::WasmKind::detect(header);
    match (spec.backend, kind) {
        (Backend::Native, Some(_)) if spec.backend_forced => Err(StartError::cannot_run(format!(
            "exec: \"{name}\": it is a WebAssembly module, which --runtime native cannot run: use --runtime wasi or drop --runtime"
        ))),
        (Backend::Wasi, None) => Err(StartError::cannot_run(format!(
            "exec: \"{name}\": not a WebAssembly module (it does not start with \\0asm), and this container runs on the wasi runtime, which runs only WebAssembly programs{}",
            if spec.backend_forced {
                ": drop --runtime wasi to run it natively"
            } else {
                ""
            }
        ))),
        (_, kind) => Ok(kind),
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
