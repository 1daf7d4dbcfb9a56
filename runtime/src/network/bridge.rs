//! Bridge networks: their definitions in the store, the host's side of them (a Linux bridge
//! with the gateway address, forwarding, the firewall), and a container's endpoint on one.
//!
//! A network is a file, `networks/<name>/network.json`, and its leases (`network::ipam`) sit
//! beside it. The host's side is made on a container's start when the bridge is missing (the
//! first start, and the first after a reboot) under the networks' lock; every start after
//! that only looks the bridge up.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::netlink::Netlink;
use crate::store::Store;

/// The default network's name, as Docker's.
pub const DEFAULT: &str = "bridge";
/// The default network's Linux bridge (of the default store; see [`store_suffix`]).
const DEFAULT_BRIDGE: &str = "berth0";
/// What every bridge berth makes starts with (the firewall matches on it).
pub const BRIDGE_PREFIX: &str = "berth";

/// A failure of a network operation.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No network of that name.
    #[error(
        "network {0} not found: make it with `berth network create {0}`, or use bridge, none or host"
    )]
    NotFound(String),
    /// A network of that name exists.
    #[error("network with name {0:?} already exists")]
    Exists(String),
    /// Containers are on it (their names).
    #[error(
        "network {network} is in use by container(s) {containers}: remove them or disconnect them first"
    )]
    InUse {
        /// The network.
        network: String,
        /// Its containers' names, comma-separated.
        containers: String,
    },
    /// A bad request: a subnet, a gateway, a name.
    #[error("{0}")]
    Invalid(String),
    /// The kernel or the filesystem refused.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The firewall could not be set.
    #[error("{0}")]
    Firewall(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetworkError {
    let what = what.into();
    move |source| NetworkError::Io { what, source }
}

/// A bridge network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// 64 hex characters.
    pub id: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// The bridge's address, the containers' default route.
    pub gateway: Ipv4Addr,
    /// The Linux bridge.
    pub bridge: String,
    /// No route out (`--internal`).
    #[serde(default)]
    pub internal: bool,
    /// When it was made.
    pub created: DateTime<Utc>,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// `--subnet`, else the first free one.
    pub subnet: Option<Ipv4Net>,
    /// `--gateway`, else the subnet's first address.
    pub gateway: Option<Ipv4Addr>,
    /// `--internal`.
    pub internal: bool,
}

pub use crate::workload::Endpoint;

/// Where networks live in the store.
pub fn networks_dir(store: &Store) -> PathBuf {
    store.root().join("networks")
}

/// Network `name`'s folder.
pub fn network_dir(store: &Store, name: &str) -> PathBuf {
    networks_dir(store).join(name)
}

/// The leases folder of network `name`.
pub fn leases_dir(store: &Store, name: &str) -> PathBuf {
    network_dir(store, name).join("leases")
}

/// What tells this store's kernel objects from another store's on the same host (bridges
/// and nftables tables are the host's, stores are not): nothing for the default store, else
/// a hash of its root.
pub fn store_suffix(store: &Store) -> Option<String> {
    use sha2::Digest;
    let root = store.root();
    if root == Store::default_root() {
        return None;
    }
    let hash = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    Some(hex::encode(&hash[..4]))
}

/// The host-wide lock around choosing a subnet and making its bridge: stores share the host's
/// routes.
fn host_lock() -> Result<crate::store::LockGuard, NetworkError> {
    let path = Path::new("/run/lock/berth-networks.lock");
    let dir = path.parent().expect("a parent");
    crate::store::make_dir(dir, 0o755).map_err(io_err(format!("creating {}", dir.display())))?;
    crate::store::lock::exclusive(path).map_err(io_err("locking the host's networks"))
}

fn lock(store: &Store) -> Result<crate::store::LockGuard, NetworkError> {
    let dir = networks_dir(store);
    crate::store::make_dir(&dir, 0o700).map_err(io_err(format!("creating {}", dir.display())))?;
    crate::store::lock::exclusive(&dir.join(".lock")).map_err(io_err("locking the networks"))
}

/// Network names as Docker takes them.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The network `name`; the default network is made on first use.
pub fn load(store: &Store, name: &str) -> Result<Network, NetworkError> {
    if let Some(n) = read(store, name)? {
        return Ok(n);
    }
    if name == DEFAULT {
        let _lock = lock(store)?;
        if let Some(n) = read(store, name)? {
            return Ok(n);
        }
        let bridge = match store_suffix(store) {
            None => DEFAULT_BRIDGE.to_string(),
            Some(s) => format!("{BRIDGE_PREFIX}{s}"),
        };
        return make(store, DEFAULT, bridge, &NetworkOptions::default());
    }
    Err(NetworkError::NotFound(name.into()))
}

fn read(store: &Store, name: &str) -> Result<Option<Network>, NetworkError> {
    if !valid_name(name) {
        return Err(NetworkError::NotFound(name.into()));
    }
    let path = network_dir(store, name).join("network.json");
    match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            NetworkError::Invalid(format!(
                "{} is damaged ({e}): remove {} (the default network is made again at the next start)",
                path.display(),
                network_dir(store, name).display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(format!("reading {}", path.display()))(e)),
    }
}

/// Every network, the default one first.
pub fn list(store: &Store) -> Result<Vec<Network>, NetworkError> {
    let mut all = vec![load(store, DEFAULT)?];
    let Ok(entries) = fs::read_dir(networks_dir(store)) else {
        return Ok(all);
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != DEFAULT && valid_name(n))
        .collect();
    names.sort();
    for name in names {
        if let Some(n) = read(store, &name)? {
            all.push(n);
        }
    }
    Ok(all)
}

/// Makes the user-defined network `name` (its host side is made at its first container).
pub fn create(store: &Store, name: &str, opts: &NetworkOptions) -> Result<Network, NetworkError> {
    if !valid_name(name) || ["host", "none", "default"].contains(&name) {
        return Err(NetworkError::Invalid(format!(
            "invalid network name {name:?}: letters, digits, '_', '.' and '-', starting with a letter or digit, not host, none or default"
        )));
    }
    load(store, DEFAULT)?;
    let _lock = lock(store)?;
    if read(store, name)?.is_some() {
        return Err(NetworkError::Exists(name.into()));
    }
    let id = random_id();
    let bridge = format!("{BRIDGE_PREFIX}-{}", &id[..9]);
    make(store, name, bridge, opts)
}

fn random_id() -> String {
    (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect()
}

/// Writes a new network's definition (the caller holds the lock).
fn make(
    store: &Store,
    name: &str,
    bridge: String,
    opts: &NetworkOptions,
) -> Result<Network, NetworkError> {
    let _host = host_lock()?;
    let others = list_unlocked(store);
    let subnet = match opts.subnet {
        Some(s) => {
            let s = s.trunc();
            if s.prefix_len() > 30 {
                return Err(NetworkError::Invalid(format!(
                    "--subnet {s} is too small: a network needs a /30 or larger"
                )));
            }
            if let Some(o) = others.iter().find(|o| overlaps(o.subnet, s)) {
                return Err(NetworkError::Invalid(format!(
                    "--subnet {s} overlaps network {:?} ({})",
                    o.name, o.subnet
                )));
            }
            s
        }
        None => free_subnet(&others)?,
    };
    let gateway = match opts.gateway {
        Some(g) if !subnet.contains(&g) || g == subnet.network() || g == subnet.broadcast() => {
            return Err(NetworkError::Invalid(format!(
                "--gateway {g} is not a host address of {subnet}"
            )));
        }
        Some(g) => g,
        None => subnet.hosts().next().unwrap_or(subnet.network()),
    };
    let network = Network {
        name: name.into(),
        id: random_id(),
        subnet,
        gateway,
        bridge,
        internal: opts.internal,
        created: Utc::now(),
    };
    let dir = network_dir(store, name);
    crate::store::make_dir(&dir, 0o700).map_err(io_err(format!("creating {}", dir.display())))?;
    let bytes = serde_json::to_vec_pretty(&network).expect("a network serializes");
    store
        .write_file(&dir.join("network.json"), &bytes)
        .map_err(|e| NetworkError::Io {
            what: format!("writing {}", dir.display()),
            source: io::Error::other(e.to_string()),
        })?;
    // Its host side now, under the host's lock: its bridge's route is what the next store's
    // choice of a subnet sees. A network whose host side cannot be made is not kept.
    if let Err(e) = set_up_host_side(store, &network) {
        let _ = crate::store::remove_tree(&dir);
        return Err(e);
    }
    Ok(network)
}

/// Makes `network`'s bridge with the gateway address, up (an existing one is kept).
fn make_bridge(network: &Network) -> Result<u32, NetworkError> {
    let mut nl = Netlink::open().map_err(io_err("opening a netlink socket"))?;
    let what = |s: &str| format!("{s} bridge {}", network.bridge);
    if super::netlink::link_index(&network.bridge)
        .map_err(io_err(what("looking up")))?
        .is_none()
    {
        match nl.add_bridge(&network.bridge) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                return Err(io_err(what("creating"))(e));
            }
            _ => {}
        }
    }
    let index = super::netlink::link_index(&network.bridge)
        .map_err(io_err(what("looking up")))?
        .ok_or_else(|| io_err(what("creating"))(io::Error::other("it vanished")))?;
    nl.add_address(index, network.gateway, network.subnet.prefix_len())
        .map_err(io_err(what("addressing")))?;
    nl.set_up(index).map_err(io_err(what("bringing up")))?;
    Ok(index)
}

fn list_unlocked(store: &Store) -> Vec<Network> {
    let Ok(entries) = fs::read_dir(networks_dir(store)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| read(store, e.file_name().to_str()?).ok().flatten())
        .collect()
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet of Docker's pools (172.17–31.0.0/16, then 192.168.x.0/20, then
/// 10.89–254.0.0/16; never podman's 10.88.0.0/16) that no route of the host and no other
/// network overlaps.
fn free_subnet(others: &[Network]) -> Result<Ipv4Net, NetworkError> {
    let routed = host_routes();
    let candidates = (17..=31)
        .map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16))
        .chain((0..16).map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20)))
        .chain((89..=254).map(|b| Ipv4Net::new(Ipv4Addr::new(10, b, 0, 0), 16)))
        .flatten();
    for c in candidates {
        let taken =
            routed.iter().any(|r| overlaps(*r, c)) || others.iter().any(|o| overlaps(o.subnet, c));
        if !taken {
            return Ok(c);
        }
    }
    Err(NetworkError::Invalid(
        "no free subnet left in the default pools: give one with --subnet".into(),
    ))
}

/// The host's routed IPv4 subnets (`/proc/net/route`), the default route aside.
fn host_routes() -> Vec<Ipv4Net> {
    let Ok(table) = fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel writes them in its byte order (little-endian here).
            let dest = Ipv4Addr::from(u32::from_be(dest.to_le()));
            let prefix = u32::from_be(mask.to_le()).leading_ones() as u8;
            (prefix > 0).then(|| Ipv4Net::new(dest, prefix).ok())?
        })
        .collect()
}

/// Removes network `name`: refused while containers are on it (named in the error).
pub fn remove(store: &Store, name: &str) -> Result<(), NetworkError> {
    if name == DEFAULT {
        return Err(NetworkError::Invalid(
            "bridge is a pre-defined network and cannot be removed".into(),
        ));
    }
    let _lock = lock(store)?;
    let network = read(store, name)?.ok_or_else(|| NetworkError::NotFound(name.into()))?;
    let exists = |id: &str| store.container_dir(id).join("state.json").exists();
    let dir = leases_dir(store, name);
    super::ipam::reclaim(&dir, &exists);
    let users: Vec<String> = super::ipam::leases(&dir)
        .into_iter()
        .map(|(_, id)| {
            store
                .load_container(&id)
                .map(|c| c.name)
                .unwrap_or_else(|_| id[..12.min(id.len())].to_string())
        })
        .collect();
    if !users.is_empty() {
        return Err(NetworkError::InUse {
            network: name.into(),
            containers: users.join(", "),
        });
    }
    if let Ok(mut nl) = Netlink::open() {
        nl.delete_link(&network.bridge)
            .map_err(io_err(format!("removing bridge {}", network.bridge)))?;
    }
    let rest: Vec<Network> = list_unlocked(store)
        .into_iter()
        .filter(|n| n.name != name)
        .collect();
    // Only when berth's table exists (a host where no container ever joined has none).
    let table = table_name(store);
    if super::firewall::present(&table) {
        super::firewall::apply(&table, &rest)?;
    }
    super::dns::stop(store, name);
    crate::store::remove_tree(&network_dir(store, name))
        .map_err(io_err(format!("removing network {name}")))
}

/// This store's nftables table.
fn table_name(store: &Store) -> String {
    match store_suffix(store) {
        None => "berth".into(),
        Some(s) => format!("berth-{s}"),
    }
}

/// Takes down the host's side of every network of this store that no container holds an
/// address on (their bridges, and the store's firewall table when no bridge is left); made
/// again at the next start. `berth system prune` and `network prune`.
pub fn tear_down_unused(store: &Store) -> Result<(), NetworkError> {
    let _lock = lock(store)?;
    reclaim_all(store);
    let all = list_unlocked(store);
    let mut kept = Vec::new();
    for n in all {
        if super::ipam::leases(&leases_dir(store, &n.name)).is_empty() {
            if let Ok(mut nl) = Netlink::open() {
                nl.delete_link(&n.bridge)
                    .map_err(io_err(format!("removing bridge {}", n.bridge)))?;
            }
        } else {
            kept.push(n);
        }
    }
    let table = table_name(store);
    if super::firewall::present(&table) {
        if kept.is_empty() {
            super::firewall::remove(&table)?;
        } else {
            super::firewall::apply(&table, &kept)?;
        }
    }
    Ok(())
}

/// Makes the host's side of `network` when its bridge is missing: the bridge with the
/// gateway address, up; IPv4 forwarding; the firewall for every network. Returns the
/// bridge's index.
pub fn ensure_host_side(store: &Store, network: &Network) -> Result<u32, NetworkError> {
    if let Some(i) = super::netlink::link_index(&network.bridge)
        .map_err(io_err(format!("looking up bridge {}", network.bridge)))?
    {
        return Ok(i);
    }
    let _lock = lock(store)?;
    set_up_host_side(store, network)
}

/// Makes the host's side of `network` (the caller holds the store's networks lock): IPv4
/// forwarding and the store's firewall first, the bridge last, so a bridge that exists says
/// the rest was made (the fast path of [`ensure_host_side`]).
fn set_up_host_side(store: &Store, network: &Network) -> Result<u32, NetworkError> {
    if !super::firewall::available() {
        return Err(NetworkError::Firewall(
            "the bridge network needs nftables' `nft` command for its NAT rules: install it (Debian: apt-get install nftables), or run with --network private, none or host".into(),
        ));
    }
    fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(io_err(
        "enabling IPv4 forwarding (/proc/sys/net/ipv4/ip_forward)",
    ))?;
    let mut networks = list_unlocked(store);
    if !networks.iter().any(|n| n.name == network.name) {
        networks.push(network.clone());
    }
    super::firewall::apply(&table_name(store), &networks)?;
    make_bridge(network)
}

/// Gives container `id` its endpoint on `network` as `interface` (the address it had, or a
/// new lease; `wanted` is `--ip`).
pub fn endpoint(
    store: &Store,
    network: &Network,
    id: &str,
    wanted: Option<Ipv4Addr>,
    interface: &str,
    aliases: &[String],
) -> Result<Endpoint, NetworkError> {
    let exists = |c: &str| store.container_dir(c).join("state.json").exists();
    let ip = super::ipam::lease(
        &leases_dir(store, &network.name),
        network.subnet,
        network.gateway,
        id,
        wanted,
        &exists,
    )
    .map_err(|e| match e.kind() {
        io::ErrorKind::InvalidInput | io::ErrorKind::AddrInUse => {
            NetworkError::Invalid(format!("--ip: {e}"))
        }
        _ => io_err(format!("taking an address on network {}", network.name))(e),
    })?;
    Ok(Endpoint {
        network: network.name.clone(),
        network_id: network.id.clone(),
        ip,
        prefix: network.subnet.prefix_len(),
        gateway: network.gateway,
        mac: Endpoint::mac_text(ip),
        bridge: network.bridge.clone(),
        interface: interface.into(),
        aliases: aliases.to_vec(),
    })
}

/// What `__init` needs to put a container on its bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Wiring {
    /// The bridge's index in the host's namespace.
    pub bridge_index: u32,
    /// The host's end of the veth.
    pub host_veth: String,
    /// The container's place on the network.
    pub endpoint: Endpoint,
}

impl Wiring {
    /// Puts the calling thread's network namespace on the bridge: a veth pair whose host end
    /// joins the bridge (made through `host`, a socket of the host's namespace) and whose
    /// other end is the endpoint's interface here, with its address (and the default route
    /// through the gateway, on the first one). A host end that a killed start left is
    /// removed first.
    pub fn wire(&self, host: &mut Netlink) -> io::Result<()> {
        let ns = fs::File::open("/proc/thread-self/ns/net")?;
        let e = &self.endpoint;
        let veth = |h: &mut Netlink| {
            h.add_veth_into(
                &self.host_veth,
                self.bridge_index,
                &e.interface,
                std::os::fd::AsFd::as_fd(&ns),
                e.mac_bytes(),
            )
        };
        match veth(host) {
            Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {
                host.delete_link_in_host(&self.host_veth)?;
                veth(host)
            }
            r => r,
        }
        .map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("creating veth {}: {err}", self.host_veth),
            )
        })?;
        let mut here = Netlink::open()?;
        let link = super::netlink::link_index(&e.interface)?.ok_or_else(|| {
            io::Error::other(format!(
                "{} did not arrive in the container's namespace",
                e.interface
            ))
        })?;
        here.add_address(link, e.ip, e.prefix).map_err(|err| {
            io::Error::new(err.kind(), format!("addressing {}: {err}", e.interface))
        })?;
        here.set_up(link)?;
        if !e.is_default_route() {
            return Ok(());
        }
        here.add_default_route(e.gateway)
            .map_err(|err| io::Error::new(err.kind(), format!("adding the default route: {err}")))
    }
}

/// Gives back the addresses of container `id`'s endpoints.
pub fn release(store: &Store, id: &str, endpoints: &[Endpoint]) {
    for e in endpoints {
        super::ipam::release(&leases_dir(store, &e.network), e.ip, id);
    }
}

/// Reclaims every network's leases whose container is gone; how many.
pub fn reclaim_all(store: &Store) -> usize {
    let exists = |c: &str| store.container_dir(c).join("state.json").exists();
    list_unlocked(store)
        .iter()
        .map(|n| super::ipam::reclaim(&leases_dir(store, &n.name), &exists))
        .sum()
}

/// Whether the store has a networks folder at all (nothing to release otherwise).
pub fn any(store: &Store) -> bool {
    networks_dir(store).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_macs_and_pools() {
        assert!(valid_name("app-net_1.x"));
        assert!(!valid_name("-x") && !valid_name("a/b") && !valid_name(""));
        assert_eq!(
            Endpoint::mac_text(Ipv4Addr::new(172, 17, 0, 2)),
            "02:42:ac:11:00:02"
        );
        let taken = Network {
            name: "a".into(),
            id: "0".repeat(64),
            subnet: "172.17.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(172, 17, 0, 1),
            bridge: "berth0".into(),
            internal: false,
            created: Utc::now(),
        };
        let next = free_subnet(&[taken]).unwrap();
        assert_ne!(next, "172.17.0.0/16".parse::<Ipv4Net>().unwrap());
        assert!(!overlaps(next, "10.88.0.0/16".parse().unwrap()));
        let veth = crate::workload::Endpoint::host_veth(&"ab".repeat(32), &"0".repeat(64));
        assert!(veth.starts_with("veth") && veth.len() == 15, "{veth}");
    }
}
