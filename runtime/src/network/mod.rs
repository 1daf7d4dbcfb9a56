//! Container networking: a private network namespace with loopback (made ahead where it can
//! be), and published ports served by a userspace proxy that connects into the container's
//! namespace.

pub mod loopback;
pub mod ports;
pub mod proxy;
pub mod spare;
