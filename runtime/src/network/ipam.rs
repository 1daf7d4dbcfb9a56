//! Addresses of a bridge network, kept in the store: a lease is a file named for its address
//! in the network's `leases/` folder, holding the id of the container it belongs to.
//!
//! The rule: a lease is taken by creating its file with `O_EXCL`, which one process alone can
//! do, so two containers starting at once never get the same address, without a lock. A lease
//! is given back when its container is removed; one whose container no longer exists (a
//! removal that was killed half-way) is reclaimed when the network runs out of addresses and
//! by `berth system prune`.

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

/// Takes the first free address of `subnet` (neither the network's address, its broadcast
/// address nor `gateway`) for container `id`; `wanted` asks for one address in particular
/// (`--ip`). Reclaims stale leases (see the module's doc) once when the subnet is full.
pub fn lease(
    dir: &Path,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    id: &str,
    wanted: Option<Ipv4Addr>,
    exists: &dyn Fn(&str) -> bool,
) -> io::Result<Ipv4Addr> {
    crate::store::make_dir(dir, 0o700)?;
    if let Some(ip) = wanted {
        if !subnet.contains(&ip)
            || ip == gateway
            || ip == subnet.network()
            || ip == subnet.broadcast()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{ip} is not a free host address of {subnet} (gateway {gateway})"),
            ));
        }
        return match take(dir, ip, id) {
            Ok(true) => Ok(ip),
            Ok(false) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{ip} is in use by container {}",
                    holder(dir, ip).unwrap_or_default()
                ),
            )),
            Err(e) => Err(e),
        };
    }
    for attempt in 0..2 {
        for ip in subnet.hosts() {
            if ip == gateway {
                continue;
            }
            if take(dir, ip, id)? {
                return Ok(ip);
            }
        }
        if attempt == 0 && reclaim(dir, exists) == 0 {
            break;
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no free address left in {subnet}: remove containers, or use another network"),
    ))
}

/// Creates the lease file of `ip` for `id`; false when another holds it.
fn take(dir: &Path, ip: Ipv4Addr, id: &str) -> io::Result<bool> {
    let path = dir.join(ip.to_string());
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(id.as_bytes())?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // A lease of this very container (an earlier start): it keeps its address.
            Ok(holder(dir, ip).as_deref() == Some(id))
        }
        Err(e) => Err(e),
    }
}

/// The container holding `ip`.
pub fn holder(dir: &Path, ip: Ipv4Addr) -> Option<String> {
    fs::read_to_string(dir.join(ip.to_string())).ok()
}

/// Gives back `ip` if `id` holds it.
pub fn release(dir: &Path, ip: Ipv4Addr, id: &str) {
    if holder(dir, ip).as_deref() == Some(id) {
        let _ = fs::remove_file(dir.join(ip.to_string()));
    }
}

/// Every lease: address and container id.
pub fn leases(dir: &Path) -> Vec<(Ipv4Addr, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let ip = e.file_name().to_str()?.parse().ok()?;
            Some((ip, fs::read_to_string(e.path()).ok()?))
        })
        .collect()
}

/// Removes the leases whose container does not exist; how many.
pub fn reclaim(dir: &Path, exists: &dyn Fn(&str) -> bool) -> usize {
    let mut n = 0;
    for (ip, id) in leases(dir) {
        // Taken this moment, its id not yet written (one left empty by a crash goes later).
        let fresh = || {
            fs::metadata(dir.join(ip.to_string()))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 60))
        };
        if id.is_empty() && fresh() {
            continue;
        }
        if !exists(&id) {
            release(dir, ip, &id);
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_kept_and_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let net: Ipv4Net = "10.99.0.0/29".parse().unwrap();
        let gw: Ipv4Addr = "10.99.0.1".parse().unwrap();
        let all = |_: &str| true;
        let a = lease(dir.path(), net, gw, "a", None, &all).unwrap();
        let b = lease(dir.path(), net, gw, "b", None, &all).unwrap();
        assert_eq!(a, "10.99.0.2".parse::<Ipv4Addr>().unwrap());
        assert_ne!(a, b);
        // A second start of the same container keeps its address.
        assert_eq!(lease(dir.path(), net, gw, "a", None, &all).unwrap(), a);
        for id in ["c", "d", "e"] {
            lease(dir.path(), net, gw, id, None, &all).unwrap();
        }
        let full = lease(dir.path(), net, gw, "f", None, &all).unwrap_err();
        assert!(full.to_string().contains("no free address"), "{full}");
        // "b" was removed without giving its address back: reclaimed when the subnet is full.
        let only_b_gone = |id: &str| id != "b";
        assert_eq!(
            lease(dir.path(), net, gw, "f", None, &only_b_gone).unwrap(),
            b
        );
        let taken = lease(dir.path(), net, gw, "g", Some(a), &all).unwrap_err();
        assert!(
            taken.to_string().contains("in use by container a"),
            "{taken}"
        );
        assert!(lease(dir.path(), net, gw, "g", Some(gw), &all).is_err());
    }
}
