//! The TCP side of the port proxy: one thread per published port runs an event loop (a
//! single-threaded tokio runtime) that accepts clients and relays each one as a task, so
//! thousands of connections cost no threads, and an idle one no buffer.
//!
//! Connections beyond the fd budget are refused at accept (reset at once) instead of
//! exhausting the monitor's descriptors: the monitor holds the container, and must never fail
//! because of what clients do.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use socket2::{SockRef, Socket};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

use super::{BUF_SIZE, CONNECT_TIMEOUT, Shared};

/// How long the accept loop pauses after an error that is not the client's (out of memory or
/// descriptors): the pending connection keeps the listener readable.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Accepts on one listener until the proxy stops; every connection's task (and so its
/// sockets) ends with it. Runs on a thread that has joined the container's network namespace,
/// where the sockets it opens towards the container must live.
pub(super) fn serve(listener: Socket, port: u16, shared: &Arc<Shared>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build();
    match runtime {
        // Dropping the runtime drops every relay task still running, closing its sockets.
        Ok(runtime) => runtime.block_on(accept_loop(listener, port, shared)),
        Err(e) => {
            tracing::warn!(error = %e, port, "port proxy: cannot start; not serving this port")
        }
    }
}

async fn accept_loop(listener: Socket, port: u16, shared: &Arc<Shared>) {
    let listener = match tokio::net::TcpListener::from_std(listener.into()) {
        Ok(l) => l,
        Err(e) => return tracing::warn!(error = %e, port, "port proxy: cannot serve this port"),
    };
    // SAFETY: the eventfd belongs to `shared`, which this function borrows for the whole life
    // of `stop`, so the descriptor stays open and the same.
    let stop =
        match unsafe { AsyncFd::register_with_interest(shared.stop.as_fd(), Interest::READABLE) } {
            Ok(s) => s,
            Err(e) => {
                let e = io::Error::from(e);
                return tracing::warn!(error = %e, port, "port proxy: cannot serve this port");
            }
        };
    loop {
        tokio::select! {
            _ = stop.readable() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => admit(client, port, shared),
                Err(e) if is_transient_accept_error(&e) => {}
                Err(e) => {
                    tracing::warn!(error = %e, port, "port proxy: cannot accept a connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            },
        }
    }
}

/// Errors that concern only the connection being accepted.
fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
    ) || e.raw_os_error() == Some(libc::EPROTO)
}

/// Relays `client` in a task of its own, or refuses it when the proxy is at its budget.
fn admit(client: TcpStream, port: u16, shared: &Arc<Shared>) {
    let Some(slot) = Slot::take(shared) else {
        if !shared.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                port,
                budget = shared.budget,
                "port proxy: too many open connections; refusing new ones until some close"
            );
        }
        // A reset, so the client learns at once that it was refused.
        let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
        return;
    };
    shared.refusing.store(false, Ordering::Relaxed);
    tokio::spawn(async move {
        let _slot = slot;
        relay(client, port).await;
    });
}

/// One connection counted against the budget while it lives.
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let taken = shared
            .live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < shared.budget).then_some(n + 1)
            });
        taken.is_ok().then(|| Slot(shared.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connects to the container's port and copies bytes both ways until both directions end.
/// A direction that ends cleanly half-closes the other side and the other direction goes on
/// (half-closed protocols work); one that fails ends both.
async fn relay(client: TcpStream, port: u16) {
    let Some(inner) = connect_inside(port).await else {
        return;
    };
    let up = pump(&client, &inner);
    let down = pump(&inner, &client);
    tokio::pin!(up, down);
    tokio::select! {
        r = &mut up => if r.is_ok() { let _ = down.await; },
        r = &mut down => if r.is_ok() { let _ = up.await; },
    }
}

/// Connects to `port` on the container's loopback: 127.0.0.1, then ::1 for servers that only
/// listen on IPv6. None (logged) when nothing answers: the client sees its connection closed,
/// as with Docker.
async fn connect_inside(port: u16) -> Option<TcpStream> {
    let targets = [
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
    ];
    let mut first_error = None;
    for target in targets {
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(inner)) => return Some(inner),
            Ok(Err(e)) => e,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "the container did not accept"),
        };
        let refused = error.kind() == io::ErrorKind::ConnectionRefused;
        first_error.get_or_insert(error);
        if !refused {
            break;
        }
    }
    if let Some(e) = first_error {
        // Usually the server in the container is not listening (yet).
        tracing::debug!(error = %e, port, "port proxy: cannot connect inside the container");
    }
    None
}

/// Copies `from` to `to` until `from` finishes sending, then shuts down `to`'s write half so
/// the other end sees the same end of stream. The buffer is made when the first bytes come,
/// so an idle connection holds none.
async fn pump(from: &TcpStream, to: &TcpStream) -> io::Result<()> {
    let mut buf: Option<Box<[u8]>> = None;
    loop {
        from.readable().await?;
        let buf = buf.get_or_insert_with(|| vec![0; BUF_SIZE].into_boxed_slice());
        let n = match from.try_read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        let mut sent = 0;
        while sent < n {
            to.writable().await?;
            match to.try_write(&buf[sent..n]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
    SockRef::from(to).shutdown(Shutdown::Write)
}
