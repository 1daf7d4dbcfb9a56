//! `network connect` and `network disconnect`: a container's endpoints after its creation.
//!
//! An endpoint is recorded with the container first (its address leased), so the next start
//! wires it; a running container gets its veth now, made from the host's namespace into the
//! container's by a thread that enters that namespace for the addresses and routes.

use std::fs;
use std::net::Ipv4Addr;

use super::bridge::{self, NetworkError};
use super::netlink::Netlink;
use crate::container::state::Status;
use crate::store::Store;
use crate::workload::{Endpoint, NetworkMode};

/// The first `ethN` that none of `endpoints` uses.
pub fn free_interface(endpoints: &[Endpoint]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|name| !endpoints.iter().any(|e| &e.interface == name))
        .expect("an unused interface name")
}

fn invalid(message: String) -> NetworkError {
    NetworkError::Invalid(message)
}

/// Puts container `id` on `network` (`--ip`, `--alias`): recorded now, wired now when it runs.
pub fn connect(
    store: &Store,
    network: &str,
    id: &str,
    ip: Option<Ipv4Addr>,
    aliases: &[String],
) -> Result<Endpoint, NetworkError> {
    let network = bridge::load(store, network)?;
    let c = store
        .load_container(id)
        .map_err(|e| invalid(e.to_string()))?;
    if matches!(c.spec.network, NetworkMode::Host | NetworkMode::None) {
        return Err(invalid(format!(
            "container {} uses the {} network, which cannot be combined with another",
            c.name,
            if c.spec.network == NetworkMode::Host {
                "host"
            } else {
                "none"
            }
        )));
    }
    if c.spec.network == NetworkMode::Private {
        return Err(invalid(format!(
            "container {} was created with --network private (loopback only): recreate it on a bridge network",
            c.name
        )));
    }
    if c.endpoints.iter().any(|e| e.network_id == network.id) {
        return Err(invalid(format!(
            "endpoint with name {} already exists in network {}",
            c.name, network.name
        )));
    }
    if network.name == bridge::DEFAULT && (ip.is_some() || !aliases.is_empty()) {
        return Err(invalid(
            "--ip and --alias are only for user-defined networks, as on Docker".into(),
        ));
    }
    let interface = free_interface(&c.endpoints);
    let endpoint = bridge::endpoint(store, &network, &c.id, ip, &interface, aliases)?;
    let recorded = endpoint.clone();
    let after = store
        .update_container(&c.id, |c| c.endpoints.push(recorded))
        .map_err(|e| {
            bridge::release(store, &c.id, std::slice::from_ref(&endpoint));
            invalid(e.to_string())
        })?;
    if let Some(pid) = running_pid(&after) {
        let wired = wire_running(store, &network, &after.id, pid, &endpoint);
        if let Err(e) = wired {
            let _ = store.update_container(&c.id, |c| {
                c.endpoints.retain(|x| x.network_id != network.id)
            });
            bridge::release(store, &c.id, std::slice::from_ref(&endpoint));
            return Err(e);
        }
    }
    Ok(endpoint)
}

/// Takes container `id` off `network`: its veth removed when it runs, its address given back.
pub fn disconnect(store: &Store, network: &str, id: &str) -> Result<(), NetworkError> {
    let c = store
        .load_container(id)
        .map_err(|e| invalid(e.to_string()))?;
    let Some(endpoint) = c.endpoints.iter().find(|e| e.network == network).cloned() else {
        return Err(invalid(format!(
            "container {} is not connected to network {network}",
            c.name
        )));
    };
    if running_pid(&c).is_some() {
        let veth = Endpoint::host_veth(&c.id, &endpoint.network_id);
        let mut nl = Netlink::open().map_err(|e| NetworkError::Io {
            what: "opening a netlink socket".into(),
            source: e,
        })?;
        // The pair goes with its host end.
        nl.delete_link(&veth).map_err(|e| NetworkError::Io {
            what: format!("removing veth {veth}"),
            source: e,
        })?;
    }
    store
        .update_container(&c.id, |c| {
            c.endpoints.retain(|x| x.network_id != endpoint.network_id)
        })
        .map_err(|e| invalid(e.to_string()))?;
    bridge::release(store, &c.id, std::slice::from_ref(&endpoint));
    Ok(())
}

fn running_pid(c: &crate::container::state::Container) -> Option<i32> {
    match c.state.status {
        Status::Running => c.state.pid,
        _ => None,
    }
}

/// Wires `endpoint` into the network namespace of the running container's PID 1.
fn wire_running(
    store: &Store,
    network: &bridge::Network,
    id: &str,
    pid: i32,
    endpoint: &Endpoint,
) -> Result<(), NetworkError> {
    let io = |what: String| move |source| NetworkError::Io { what, source };
    let bridge_index = bridge::ensure_host_side(store, network)?;
    let ns = fs::File::open(format!("/proc/{pid}/ns/net")).map_err(io(format!(
        "opening the network namespace of process {pid}"
    )))?;
    let mut host = Netlink::open().map_err(io("opening a netlink socket".into()))?;
    let wiring = bridge::Wiring {
        bridge_index,
        host_veth: Endpoint::host_veth(id, &network.id),
        endpoint: endpoint.clone(),
    };
    // A thread of its own enters the namespace (setns of a network namespace is per thread)
    // and ends there.
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            wiring.wire(&mut host)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the wiring thread panicked")))
    })
    .map_err(io(format!("connecting to network {}", network.name)))
}
