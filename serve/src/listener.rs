//! Listening sockets for the server and its metrics.

use std::net::SocketAddr;

/// The accept queue asked for. Linux caps it at `net.core.somaxconn`; std's 128 drops the
/// SYNs of a burst of clients, which then retry only after a second.
const BACKLOG: i32 = 4096;

/// A non-blocking listener at `addr`, reusing the address as std's does.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
