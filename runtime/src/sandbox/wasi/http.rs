//! A wasi:http component (the `wasi:http/proxy` world) has no `wasi:cli/run` to call: it
//! answers requests. A container whose program is one serves it on [`listen_address`] inside
//! the container, as runwasi's wasmtime shim does, so `berth run -p 8080:8080 IMAGE` and a
//! Kubernetes pod of the shim both answer HTTP. The runtime holds no HTTP server (berth-serve,
//! which depends on the runtime, does): a binary that can serve registers its server with
//! [`register_server`] before it runs a container's init.

use std::net::SocketAddr;
use std::sync::OnceLock;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::guest::GuestSpec;

/// The environment variable that sets where a wasi:http component is served.
pub const LISTEN_ENV: &str = "BERTH_HTTP_LISTEN";

/// Where a wasi:http component is served without [`LISTEN_ENV`]: every address of the
/// container's network namespace, port 8080 (as `wasmtime serve` and runwasi do).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";

/// Serves `component` at an address until the process ends; an error says why it could not.
pub type Server = fn(&Engine, &Component, &GuestSpec, SocketAddr) -> Result<(), String>;

static SERVER: OnceLock<Server> = OnceLock::new();

/// Makes `server` the one that serves wasi:http components in this process.
pub fn register_server(server: Server) {
    let _ = SERVER.set(server);
}

/// Whether `component` exports `wasi:http/incoming-handler`, from its type alone.
pub fn is_http_handler(engine: &Engine, component: &Component) -> bool {
    exports(engine, component, "wasi:http/incoming-handler@")
}

/// Whether `component` is a command (it exports `wasi:cli/run`).
fn is_command(engine: &Engine, component: &Component) -> bool {
    exports(engine, component, "wasi:cli/run@")
}

fn exports(engine: &Engine, component: &Component, prefix: &str) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with(prefix))
}

/// Whether `component` is served rather than run: a wasi:http handler that is no command.
pub fn is_served(engine: &Engine, component: &Component) -> bool {
    !is_command(engine, component) && is_http_handler(engine, component)
}

/// The address in `env` (`KEY=VALUE` entries, the last one winning), else [`DEFAULT_LISTEN`].
pub fn listen_address(env: &[String]) -> Result<SocketAddr, String> {
    let given = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix(LISTEN_ENV)?.strip_prefix('='));
    let addr = given.unwrap_or(DEFAULT_LISTEN);
    addr.parse().map_err(|e| {
        format!("{LISTEN_ENV}={addr:?}: {e}: give an address and port, e.g. {DEFAULT_LISTEN}")
    })
}

/// Serves `component` with the registered server at the address `spec`'s environment gives;
/// returns only when it could not.
pub(super) fn serve(
    engine: &Engine,
    component: &Component,
    spec: &GuestSpec,
) -> Result<(), String> {
    let Some(server) = SERVER.get() else {
        return Err(format!(
            "{} is a wasi:http component (it exports wasi:http/incoming-handler, not wasi:cli/run): serve it with `berth serve IMAGE`",
            spec.name
        ));
    };
    let addr = listen_address(&spec.env)?;
    server(engine, component, spec, addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_comes_from_the_environment_or_the_default() {
        assert_eq!(listen_address(&[]).unwrap().to_string(), DEFAULT_LISTEN);
        let env = vec![
            "BERTH_HTTP_LISTEN=127.0.0.1:1".to_string(),
            "BERTH_HTTP_LISTENER=x".to_string(),
            "BERTH_HTTP_LISTEN=[::]:9000".to_string(),
        ];
        assert_eq!(listen_address(&env).unwrap().to_string(), "[::]:9000");
        let bad = listen_address(&["BERTH_HTTP_LISTEN=8080".to_string()]).unwrap_err();
        assert!(
            bad.contains("BERTH_HTTP_LISTEN=\"8080\"") && bad.contains("e.g. 0.0.0.0:8080"),
            "{bad}"
        );
    }
}
