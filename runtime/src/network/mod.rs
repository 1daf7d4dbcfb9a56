//! Container networking: a network namespace per container (made ahead where it can be), on a
//! bridge network (`bridge`, with its addresses in `ipam`, its kernel calls in `netlink` and
//! its NAT in `firewall`, `connect` for joining one later and `dns` for its names) or with loopback alone, and published ports served by a userspace
//! proxy that connects into the container's namespace.

pub mod bridge;
pub mod connect;
pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod loopback;
pub mod netlink;
pub mod ports;
pub mod proxy;
pub mod spare;
