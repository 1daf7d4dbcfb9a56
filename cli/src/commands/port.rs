//! `berth port`: a container's published ports, as Docker prints them.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::app::GlobalOptions;

/// Arguments of `berth port`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth port web\n  berth port web 80/tcp")]
pub struct PortArgs {
    /// The container: a name or an id
    pub container: String,
    /// Only this container port: PORT or PORT/PROTO (tcp unless given)
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

/// One bound mapping of a running container: its `PORT/PROTO` and host `ADDR:PORT`.
fn mappings(ports: &[String]) -> Vec<(&str, &str)> {
    // Recorded as `docker ps` shows them: `0.0.0.0:8080->80/tcp`, `[::]:8080->80/tcp`.
    ports
        .iter()
        .filter_map(|p| p.split_once("->"))
        .map(|(host, inside)| (inside, host))
        .collect()
}

/// Prints the container's mappings (`80/tcp -> 0.0.0.0:8080`), or for one port its host
/// addresses; a port with none is an error, as Docker's.
pub fn run(g: &GlobalOptions, a: PortArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let c = store.find_container(&a.container)?;
    let all = mappings(&c.ports);
    let Some(port) = &a.port else {
        for (inside, host) in all {
            println!("{inside} -> {host}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let wanted = match port.split_once('/') {
        Some((n, proto)) => format!("{}/{}", n, proto.to_ascii_lowercase()),
        None => format!("{port}/tcp"),
    };
    let (number, _) = wanted.split_once('/').expect("has a slash");
    if number.parse::<u16>().map_or(true, |n| n == 0) {
        bail!("invalid port {port:?}: give PORT or PORT/PROTO, e.g. 80 or 53/udp");
    }
    let hosts: Vec<&str> = all
        .iter()
        .filter(|(inside, _)| *inside == wanted)
        .map(|(_, host)| *host)
        .collect();
    if hosts.is_empty() {
        bail!("no public port {wanted} published for {}", c.name);
    }
    for h in hosts {
        println!("{h}");
    }
    Ok(ExitCode::SUCCESS)
}
