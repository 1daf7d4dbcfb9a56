//! `berth network`: bridge networks, as Docker's (create, ls, inspect, rm, prune, connect,
//! disconnect).

use std::process::ExitCode;

use anyhow::{Result, bail};
use berth_runtime::network::{bridge, connect, ipam};
use berth_runtime::store::Store;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::app::GlobalOptions;
use crate::output::{self, Format};

/// Arguments of `berth network`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth network create app\n  berth run -d --name db --network app IMAGE\n  berth run --rm --network app IMAGE ping -c 1 db\n  berth network ls\n  berth network rm app"
)]
pub struct NetworkArgs {
    /// The network command.
    #[command(subcommand)]
    pub command: NetworkCommand,
}

/// `berth network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// The driver: bridge is the only one
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// The subnet in CIDR form (default: the first free one of Docker's pools)
        #[arg(long, value_name = "CIDR")]
        subnet: Option<ipnet::Ipv4Net>,
        /// The gateway address (default: the subnet's first one)
        #[arg(long, value_name = "IP")]
        gateway: Option<std::net::Ipv4Addr>,
        /// No route out of the network
        #[arg(long)]
        internal: bool,
        /// The name
        name: String,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
        /// Full ids
        #[arg(long)]
        no_trunc: bool,
        /// Output format
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show networks as JSON
    Inspect {
        /// Names or ids
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks (refused while containers are on them)
    #[command(visible_alias = "remove")]
    Rm {
        /// Names or ids
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove the user-defined networks no container is on
    Prune {
        /// Do not ask (berth never asks)
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network
    Connect {
        /// Its address on the network
        #[arg(long, value_name = "IP")]
        ip: Option<std::net::Ipv4Addr>,
        /// A name it is also found by on the network
        #[arg(long, value_name = "ALIAS")]
        alias: Vec<String>,
        /// The network
        network: String,
        /// The container
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Accepted for Docker's sake
        #[arg(short, long)]
        force: bool,
        /// The network
        network: String,
        /// The container
        container: String,
    },
}

/// Runs a network subcommand.
pub fn run(g: &GlobalOptions, a: NetworkArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    match a.command {
        NetworkCommand::Create {
            driver,
            subnet,
            gateway,
            internal,
            name,
        } => {
            if driver != "bridge" {
                bail!("network driver {driver:?} is not supported: berth makes bridge networks");
            }
            let opts = bridge::NetworkOptions {
                subnet,
                gateway,
                internal,
            };
            println!("{}", bridge::create(&store, &name, &opts)?.id);
        }
        NetworkCommand::Ls {
            quiet,
            no_trunc,
            format,
        } => list(&store, quiet, no_trunc, format)?,
        NetworkCommand::Inspect { networks } => {
            let mut out = Vec::new();
            for n in networks {
                out.push(inspect(&store, &find(&store, &n)?));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCommand::Rm { networks } => {
            return Ok(super::report_each(&networks, |n| {
                bridge::remove(&store, &find(&store, n)?.name)?;
                Ok(None)
            }));
        }
        NetworkCommand::Prune { .. } => {
            let mut removed = Vec::new();
            // `remove` reclaims the leases of containers that are gone, and refuses the rest.
            for n in bridge::list(&store)? {
                if n.name == bridge::DEFAULT {
                    continue;
                }
                match bridge::remove(&store, &n.name) {
                    Ok(()) => removed.push(n.name),
                    Err(bridge::NetworkError::InUse { .. }) => {}
                    Err(e) => eprintln!("berth: {e}"),
                }
            }
            if !removed.is_empty() {
                println!("Deleted Networks:");
                removed.iter().for_each(|n| println!("{n}"));
            }
        }
        NetworkCommand::Connect {
            ip,
            alias,
            network,
            container,
        } => {
            let net = find(&store, &network)?;
            let c = store.find_container(&container)?;
            connect::connect(&store, &net.name, &c.id, ip, &alias)?;
        }
        NetworkCommand::Disconnect {
            network, container, ..
        } => {
            let net = find(&store, &network)?;
            let c = store.find_container(&container)?;
            connect::disconnect(&store, &net.name, &c.id)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A network by name, full id or id prefix.
fn find(store: &Store, input: &str) -> Result<bridge::Network> {
    let all = bridge::list(store)?;
    if let Some(n) = all.iter().find(|n| n.name == input) {
        return Ok(n.clone());
    }
    let by_id: Vec<_> = all
        .iter()
        .filter(|n| !input.is_empty() && n.id.starts_with(input))
        .collect();
    match by_id.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(bridge::NetworkError::NotFound(input.into()).into()),
        _ => bail!("network id prefix {input:?} is ambiguous: give more of it, or the name"),
    }
}

fn list(store: &Store, quiet: bool, no_trunc: bool, format: Format) -> Result<()> {
    let networks = bridge::list(store)?;
    let id = |n: &bridge::Network| {
        if no_trunc {
            n.id.clone()
        } else {
            n.id[..12].to_string()
        }
    };
    if quiet {
        networks.iter().for_each(|n| println!("{}", id(n)));
        return Ok(());
    }
    // Docker's host and none beside the bridges; they have no definition of their own.
    let rows: Vec<(String, String, &str)> = networks
        .iter()
        .map(|n| (id(n), n.name.clone(), "bridge"))
        .chain([
            ("host".to_string(), "host".to_string(), "host"),
            ("none".to_string(), "none".to_string(), "null"),
        ])
        .collect();
    if format == Format::Json {
        for (id, name, driver) in &rows {
            output::json_line(
                &json!({"ID": id, "Name": name, "Driver": driver, "Scope": "local"}),
            )?;
        }
        return Ok(());
    }
    output::print_table(
        "NETWORK ID\tNAME\tDRIVER\tSCOPE",
        rows.iter()
            .map(|(id, name, driver)| format!("{id}\t{name}\t{driver}\tlocal")),
    )?;
    Ok(())
}

/// Docker's `network inspect` object.
fn inspect(store: &Store, n: &bridge::Network) -> Value {
    let mut containers = Map::new();
    for (ip, id) in ipam::leases(&bridge::leases_dir(store, &n.name)) {
        let Ok(c) = store.load_container(&id) else {
            continue;
        };
        let Some(e) = c.endpoints.iter().find(|e| e.network_id == n.id) else {
            continue;
        };
        containers.insert(
            id.clone(),
            json!({
                "Name": c.name,
                "MacAddress": e.mac,
                "IPv4Address": format!("{ip}/{}", e.prefix),
                "IPv6Address": "",
            }),
        );
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}],
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "Containers": containers,
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": {},
    })
}
