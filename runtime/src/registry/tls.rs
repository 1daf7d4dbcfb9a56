//! TLS for registries: rustls with the system's roots (Debian's
//! `/etc/ssl/certs/ca-certificates.crt`, else Mozilla's bundled ones) plus, as Docker does,
//! every `*.crt` in a `certs.d/HOST:PORT/` folder.

use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use super::RegistryOptions;

/// Where the system keeps its CA bundle, by distribution.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn pem_certs(path: &Path) -> Vec<Certificate<'static>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    ureq::tls::parse_pem(&bytes)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c.to_owned()),
            _ => None,
        })
        .collect()
}

/// The `*.crt` files of the `certs.d` folders for `host`.
pub fn registry_cas(opts: &RegistryOptions, host: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in &opts.certs_dirs {
        let Ok(entries) = std::fs::read_dir(dir.join(host)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "crt"))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// The TLS settings for `host`: unverified for an insecure registry, else the system roots
/// plus the registry's own CAs.
pub fn config_for(opts: &RegistryOptions, host: &str, insecure: bool) -> TlsConfig {
    if insecure {
        return TlsConfig::builder().disable_verification(true).build();
    }
    let extra: Vec<Certificate<'static>> = registry_cas(opts, host)
        .iter()
        .flat_map(|p| pem_certs(p))
        .collect();
    let system = SYSTEM_BUNDLES
        .iter()
        .map(|p| pem_certs(Path::new(p)))
        .find(|c| !c.is_empty());
    let roots = match (system, extra.is_empty()) {
        (None, true) => RootCerts::WebPki,
        (system, _) => RootCerts::from(system.unwrap_or_default().into_iter().chain(extra)),
    };
    TlsConfig::builder().root_certs(roots).build()
}
