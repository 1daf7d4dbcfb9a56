//! A route's function: its image loaded once (rootfs, program compiled or taken from the
//! compile cache, executor chosen, environment and volumes set), ready for requests. A tag
//! that moves is loaded again by [`crate::reload`]; requests in flight keep the function they
//! started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_runtime::container::create::{VolumeSource, parse_volume_flag};
use berth_runtime::digest::Digest;
use berth_runtime::image::Image;
use berth_runtime::sandbox::wasi::cache::{CacheLocation, Outcome};
use berth_runtime::sandbox::wasi::{GuestSpec, ModuleCache, Preopen, Program, WasmKind};
use berth_runtime::store::Store;
use berth_runtime::workload::DEFAULT_PATH;
use cap_std::fs::Dir;
use wasmtime::Engine;

use crate::config::{ExecutorKind, RouteConfig};
use crate::executor::GuestSetup;
#[cfg(target_os = "linux")]
use crate::executor::container::{self, ContainerFunction};
use crate::executor::wagi::{self, WagiFunction};
use crate::executor::wasi_http::{self, WasiHttpFunction};
use crate::guest_output::GuestOutput;
use crate::metrics::Metrics;

/// Why a route's image cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: image {image}: {message}")]
pub struct LoadError {
    /// The route, and where it was defined.
    pub origin: String,
    /// The image as named.
    pub image: String,
    /// What is wrong, and what to do.
    pub message: String,
}

/// How a route answers.
pub enum Executor {
    /// A wasi:http component.
    WasiHttp(WasiHttpFunction),
    /// A WAGI module.
    Wagi(WagiFunction),
    /// A native image's containers.
    #[cfg(target_os = "linux")]
    Container(ContainerFunction),
}

/// A loaded function.
pub struct Function {
    /// The id of the image it came from (none for a component served by its own container).
    pub image_id: Option<Digest>,
    /// Which executor runs it.
    pub kind: ExecutorKind,
    /// Whether its program came from the compile cache (else it was compiled now).
    pub cached: bool,
    /// The executor.
    pub executor: Executor,
    /// The guest's `/`, removed with the function when it was merged for it (none for
    /// containers, which have their own).
    pub(crate) _rootfs: Option<Rootfs>,
}

/// The folder a function's guest sees as `/`.
pub(crate) enum Rootfs {
    /// A one-layer image's snapshot, which never changes.
    Snapshot(PathBuf),
    /// Several layers merged into a folder of the server's own.
    Merged(PathBuf),
}

impl Rootfs {
    fn path(&self) -> &Path {
        match self {
            Rootfs::Snapshot(p) | Rootfs::Merged(p) => p,
        }
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if let Rootfs::Merged(p) = self {
            let _ = berth_runtime::store::remove_tree(p);
        }
    }
}

/// Loads routes' images into functions: one engine and compile cache for the whole server.
pub struct Loader {
    store: Arc<Store>,
    engine: Engine,
    cache: Option<ModuleCache>,
    max_body: u64,
    allow_outbound: bool,
    #[cfg(target_os = "linux")]
    containers: Option<container::Context>,
    metrics: Option<Arc<Metrics>>,
}

impl Loader {
    /// A loader for `store`'s images, compiling for `engine`; functions may send HTTP
    /// requests out when `allow_outbound`.
    pub fn new(store: Arc<Store>, engine: Engine, max_body: u64, allow_outbound: bool) -> Loader {
        let cache = CacheLocation::of_store(&store).open();
        Loader {
            store,
            engine,
            cache,
            max_body,
            allow_outbound,
            #[cfg(target_os = "linux")]
            containers: None,
            metrics: None,
        }
    }

    /// Lets routes be served by containers, made with `context`.
    #[cfg(target_os = "linux")]
    pub fn with_containers(mut self, context: container::Context) -> Loader {
        self.containers = Some(context);
        self
    }

    /// Counts routes' cold starts, instances and queues in `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Loader {
        self.metrics = metrics;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The function of `route`, from `image`.
    pub fn load(&self, route: &RouteConfig, image: &Image) -> Result<Function, LoadError> {
        let fail = |message: String| LoadError {
            origin: route.origin.clone(),
            image: route.image.clone(),
            message,
        };
        if served_as_container(route, image) {
            return self.load_container(route, image).map_err(fail);
        }
        let rootfs = self.rootfs(image).map_err(fail)?;
        let run = image.config.config.clone().unwrap_or_default();
        let args: Vec<String> = run
            .entrypoint
            .clone()
            .unwrap_or_default()
            .into_iter()
            .chain(run.cmd.clone().unwrap_or_default())
            .collect();
        let Some(program) = args.first().cloned() else {
            return Err(fail(
                "it has no ENTRYPOINT or CMD: the function's program must be its entrypoint".into(),
            ));
        };
        let env = merged_env(run.env.as_deref().unwrap_or_default(), &route.env);
        let bytes = read_program(rootfs.path(), &program, &env).map_err(fail)?;
        if WasmKind::detect(&bytes).is_none() {
            return Err(fail(format!(
                "its program {program} is not WebAssembly, and the image exposes no single port: serve a native image as a container with executor = {{ type = \"container\", port = N }} (or --container-port N)"
            )));
        }
        let (compiled, cached) = self.compile(&bytes, &program).map_err(fail)?;
        let kind = self.executor_kind(route, &compiled).map_err(fail)?;
        let spec = GuestSpec {
            name: program.clone(),
            // WAGI gives each request its own argv.
            args: if kind == ExecutorKind::WasiHttp {
                args
            } else {
                Vec::new()
            },
            env,
            cwd: run
                .working_dir
                .clone()
                .filter(|w| w.starts_with('/'))
                .unwrap_or_else(|| "/".into()),
            preopens: self.preopens(route, rootfs.path()).map_err(fail)?,
            memory: None,
            network: false,
        };
        let guest = Arc::new(GuestSetup {
            spec,
            limits: route.limits,
            output: GuestOutput::new(&route.route.to_string(), "out"),
        });
        let executor = match (kind, compiled) {
            (ExecutorKind::WasiHttp, Program::Component(c)) => {
                let pre = wasi_http::link(&self.engine, &c).map_err(fail)?;
                Executor::WasiHttp(WasiHttpFunction::new(
                    self.engine.clone(),
                    pre,
                    guest,
                    self.allow_outbound,
                ))
            }
            (ExecutorKind::Wagi, Program::Module(m)) => {
                let pre = wagi::link(&self.engine, &m).map_err(fail)?;
                let max = usize::try_from(self.max_body).unwrap_or(usize::MAX);
                Executor::Wagi(WagiFunction::new(self.engine.clone(), pre, guest, max))
            }
            _ => unreachable!("executor_kind matched the program's kind"),
        };
        Ok(Function {
            image_id: Some(image.id.clone()),
            kind,
            cached,
            executor,
            _rootfs: Some(rootfs),
        })
    }

    /// The container function of `route`: its containers made, none started.
    #[cfg(target_os = "linux")]
    fn load_container(&self, route: &RouteConfig, image: &Image) -> Result<Function, String> {
        let Some(context) = &self.containers else {
            return Err("this server does not run containers".into());
        };
        let metrics = self
            .metrics
            .as_ref()
            .map(|m| m.route(&route.route.to_string()));
        let f = ContainerFunction::create(&self.store, route, image, context, metrics)?;
        Ok(Function {
            image_id: Some(image.id.clone()),
            kind: ExecutorKind::Container,
            cached: false,
            executor: Executor::Container(f),
            _rootfs: None,
        })
    }

    /// Without Linux there are no native containers.
    #[cfg(not(target_os = "linux"))]
    fn load_container(&self, _route: &RouteConfig, _image: &Image) -> Result<Function, String> {
        Err("the container executor runs native images, which need Linux".into())
    }

    /// The image's files as one folder: a lone layer's snapshot as it is, else its layers
    /// merged into a folder of this server's.
    fn rootfs(&self, image: &Image) -> Result<Rootfs, String> {
        let layers = image.layers().map_err(|e| e.to_string())?;
        let mut snapshots = Vec::new();
        for l in &layers {
            snapshots.push(self.store.ensure_snapshot(l).map_err(|e| e.to_string())?);
        }
        match snapshots.as_slice() {
            [] => Err("it has no layers, so no program to serve".into()),
            [one] => Ok(Rootfs::Snapshot(one.clone())),
            _ => {
                let dest = self.store.temp_path("serve-rootfs");
                let merged = Rootfs::Merged(dest.clone());
                self.store
                    .merge_layers(&layers, &dest)
                    .map_err(|e| format!("merging its layers: {e}"))?;
                Ok(merged)
            }
        }
    }

    /// The compiled program, from the compile cache when it is there; tells whether it was.
    fn compile(&self, bytes: &[u8], name: &str) -> Result<(Program, bool), String> {
        match &self.cache {
            Some(c) => c
                .load(&self.engine, bytes, name)
                .map(|(p, o)| (p, o == Outcome::Hit)),
            None => berth_runtime::sandbox::wasi::engine::compile(&self.engine, bytes, name)
                .map(|p| (p, false)),
        }
        .map_err(|e| e.to_string())
    }

    /// The executor the route names, checked against the program; else the program's own.
    fn executor_kind(
        &self,
        route: &RouteConfig,
        program: &Program,
    ) -> Result<ExecutorKind, String> {
        let http = match program {
            Program::Component(c) => {
                berth_runtime::sandbox::wasi::http::is_http_handler(&self.engine, c)
            }
            Program::Module(_) => false,
        };
        match (route.executor, program) {
            (None | Some(ExecutorKind::WasiHttp), Program::Component(_)) if http => {
                Ok(ExecutorKind::WasiHttp)
            }
            (None | Some(ExecutorKind::WasiHttp), Program::Component(_)) => Err(
                "its program is a WASI component that does not export wasi:http/incoming-handler (a command, not an HTTP handler): serve a wasi:http proxy component, or a preview-1 module with the wagi executor".into(),
            ),
            (None | Some(ExecutorKind::Wagi), Program::Module(_)) => Ok(ExecutorKind::Wagi),
            (Some(ExecutorKind::WasiHttp), Program::Module(_)) => Err(
                "the wasi-http executor needs a component, and its program is a WASI preview-1 module: use executor = { type = \"wagi\" } (or leave the executor out)".into(),
            ),
            (Some(ExecutorKind::Container), _) => Err(
                "the container executor runs native images, and its program is WebAssembly: use executor = { type = \"wasi-http\" } or \"wagi\" (or leave the executor out)".into(),
            ),
            (Some(ExecutorKind::Wagi), Program::Component(_)) => Err(
                "the wagi executor runs WASI preview-1 modules, and its program is a component: use executor = { type = \"wasi-http\" } (or leave the executor out)".into(),
            ),
        }
    }

    /// `/` (the rootfs, read-only) and the route's volumes.
    fn preopens(&self, route: &RouteConfig, rootfs: &Path) -> Result<Vec<Preopen>, String> {
        let mut preopens = vec![Preopen {
            host: rootfs.to_path_buf(),
            guest: "/".into(),
            read_only: true,
        }];
        for v in &route.volumes {
            let flag = parse_volume_flag(v).map_err(|e| e.to_string())?;
            let host = match &flag.source {
                VolumeSource::Host(p) => {
                    let p = Path::new(p);
                    if !p.is_absolute() {
                        return Err(format!("-v {v}: the host path must be absolute"));
                    }
                    if !p.is_dir() {
                        return Err(format!(
                            "-v {v}: {} is not a folder: a function's volume is a host folder or a named volume",
                            p.display()
                        ));
                    }
                    p.to_path_buf()
                }
                VolumeSource::Named(name) => match self.store.volume(name) {
                    Ok(vol) => vol.mountpoint,
                    Err(_) => {
                        self.store
                            .create_volume(name, false)
                            .map_err(|e| format!("-v {v}: {e}"))?
                            .mountpoint
                    }
                },
                VolumeSource::Anonymous => {
                    return Err(format!(
                        "-v {v}: a function's volume needs a source: HOST_PATH:{0} or NAME:{0}",
                        flag.destination
                    ));
                }
            };
            preopens.push(Preopen {
                host,
                guest: flag.destination.clone(),
                read_only: flag.read_only,
            });
        }
        Ok(preopens)
    }
}

/// Whether `route` is served by containers: when it says so, or when it names no executor
/// and its image is native (not a wasm platform or annotation) and exposes one TCP port.
fn served_as_container(route: &RouteConfig, image: &Image) -> bool {
    match route.executor {
        Some(kind) => kind == ExecutorKind::Container,
        None => {
            let hints = berth_runtime::backend::ImageHints::of_image(image);
            if hints.wasm_platform || hints.wasm_annotation {
                return false;
            }
            exposed_tcp_ports(image).len() == 1
        }
    }
}

/// The TCP ports the image exposes (`EXPOSE 80`, `EXPOSE 80/tcp`).
pub fn exposed_tcp_ports(image: &Image) -> Vec<u16> {
    image
        .config
        .config
        .as_ref()
        .and_then(|c| c.exposed_ports.as_ref())
        .map(|p| {
            p.keys()
                .filter_map(|k| match k.split_once('/') {
                    None => k.parse().ok(),
                    Some((n, "tcp")) => n.parse().ok(),
                    Some(_) => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The image's `KEY=VALUE` entries with the route's over them (a later key replaces).
fn merged_env(image: &[String], route: &[String]) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    for kv in image.iter().chain(route) {
        let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(kv.clone());
    }
    env
}

/// Reads the program `name` from the rootfs, found as execve would (a path, or a name on
/// PATH), never through a symlink out of it.
fn read_program(rootfs: &Path, name: &str, env: &[String]) -> Result<Vec<u8>, String> {
    let root = Dir::open_ambient_dir(rootfs, cap_std::ambient_authority())
        .map_err(|e| format!("opening its files at {}: {e}", rootfs.display()))?;
    let inside = |p: &str| p.trim_start_matches('/').to_string();
    let candidates: Vec<String> = if name.contains('/') {
        vec![inside(name)]
    } else {
        let path = env
            .iter()
            .rev()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| inside(&format!("{}/{name}", d.trim_end_matches('/'))))
            .collect()
    };
    for c in &candidates {
        if root.metadata(c).is_ok_and(|m| m.is_file()) {
            return root
                .read(c)
                .map_err(|e| format!("reading its program {name}: {e}"));
        }
    }
    Err(format!(
        "its program {name} is not in the image: the entrypoint must name a .wasm file of the image"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routes_env_wins_over_the_images() {
        let env = merged_env(
            &["PATH=/bin".into(), "A=1".into()],
            &["A=2".into(), "B=3".into()],
        );
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }
}
