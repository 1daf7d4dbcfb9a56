//! A userspace proxy for published ports, connecting into a container's network namespace.
//!
//! The monitor process stays in the host's namespaces, so the host-side listeners it binds are
//! host sockets. Each serving thread then joins the container's network namespace with
//! `setns` (which moves only the calling thread), so every socket it, or a thread it spawns,
//! creates afterwards lives in the container: the proxy reaches a server there on
//! `127.0.0.1:CONTAINER_PORT`, where one bound to `0.0.0.0` or `127.0.0.1` listens. No veth,
//! bridge or iptables rule is needed.
//!
//! TCP (see [`tcp`]): one thread per listener runs an event loop that relays every connection
//! as a task, within a budget of file descriptors. When one side finishes sending, the other
//! side's write half is shut down, so half-closed protocols work. UDP: one thread per host socket keeps a flow (a connected socket inside the
//! container) per client address and forgets flows idle for 30 s.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::thread::LinkNameSpaceType;
use socket2::{Domain, Socket, Type};

use super::ports::{PortMapping, Protocol, format_mapping};

mod tcp;

/// How long a UDP flow lives without traffic either way (Docker's proxy uses 90 s; DNS-style
/// request/response traffic needs far less, and every flow holds a socket). Tests shorten it
/// to watch flows expire.
const UDP_IDLE: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(30)
};
/// Flows per UDP mapping before the least recently used one is dropped, to bound the fds one
/// port can hold.
const UDP_MAX_FLOWS: usize = 1024;
/// Longest a connection waits for the container to accept; a server that is up answers in
/// microseconds, one that is not refuses at once, so this only bounds a full backlog.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors the monitor keeps for everything but TCP connections (its own files, the
/// container's pipes, the listeners).
const FD_RESERVE: u64 = 128;
/// Pending connections the kernel queues per listener (capped by net.core.somaxconn).
const BACKLOG: i32 = 1024;
/// Bytes copied per read; the largest UDP datagram fits.
const BUF_SIZE: usize = 64 * 1024;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Two mappings ask for the same host address, port and protocol.
    #[error(
        "publishing {}: this host port is published twice; give each -p its own host port",
        host_addr(mapping)
    )]
    Duplicate {
        /// The second mapping for the address.
        mapping: PortMapping,
    },
    /// Something on the host already holds the port.
    #[error(
        "publishing {}: port {} is already in use on the host; pick another host port with -p {}",
        host_addr(mapping),
        mapping.host_port,
        other_port_hint(mapping)
    )]
    PortInUse {
        /// The mapping that could not be bound.
        mapping: PortMapping,
    },
    /// The host IP is not one of this host's addresses.
    #[error(
        "publishing {}: {} is not an address of this host; publish on 0.0.0.0 or on one of the \
         addresses `ip addr` lists",
        host_addr(mapping),
        mapping.host_ip
    )]
    AddressNotAvailable {
        /// The mapping that could not be bound.
        mapping: PortMapping,
    },
    /// The port is privileged and berth is not.
    #[error(
        "publishing {}: ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a host port \
         of 1024 or more with -p {}",
        host_addr(mapping),
        other_port_hint(mapping)
    )]
    PermissionDenied {
        /// The mapping that could not be bound.
        mapping: PortMapping,
    },
    /// Any other failure to listen on the host.
    #[error(
        "publishing {}: cannot listen on the host: {source}",
        host_addr(mapping)
    )]
    Bind {
        /// The mapping that could not be bound.
        mapping: PortMapping,
        /// The OS error.
        source: io::Error,
    },
    /// The namespace file cannot be opened.
    #[error(
        "publishing ports: cannot open the container's network namespace {}: {source}; {}",
        path.display(),
        if source.kind() == io::ErrorKind::NotFound {
            "the container must be running (/proc/PID/ns/net exists only while PID does)"
        } else {
            "berth needs root (CAP_SYS_PTRACE) to open another process's namespace"
        }
    )]
    OpenNetns {
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// `setns` into the namespace failed.
    #[error(
        "publishing ports: cannot enter the container's network namespace {}: {source}; the \
         path must be a network namespace (/proc/PID/ns/net or a bind mount of one) and berth \
         needs CAP_SYS_ADMIN",
        path.display()
    )]
    JoinNetns {
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A thread or the stop signal could not be created.
    #[error(
        "publishing ports: cannot start the proxy: {0}; the system is out of threads, memory \
         or file descriptors (check ulimit -u and ulimit -n)"
    )]
    Resources(#[source] io::Error),
}

/// `0.0.0.0:8000`, `[::1]:8000` or `0.0.0.0:53/udp`, for messages.
fn host_addr(m: &PortMapping) -> String {
    let addr = SocketAddr::new(m.host_ip, m.host_port);
    match m.protocol {
        Protocol::Tcp => addr.to_string(),
        Protocol::Udp => format!("{addr}/udp"),
    }
}

/// The `-p` value to retry with: `OTHER:80`, `127.0.0.1:OTHER:80` or `OTHER:53/udp`.
fn other_port_hint(m: &PortMapping) -> String {
    let ip = match m.host_ip {
        IpAddr::V4(ip) if ip.is_unspecified() => String::new(),
        IpAddr::V4(ip) => format!("{ip}:"),
        IpAddr::V6(ip) => format!("[{ip}]:"),
    };
    let proto = match m.protocol {
        Protocol::Tcp => "",
        Protocol::Udp => "/udp",
    };
    format!("{ip}OTHER:{}{proto}", m.container_port)
}

/// Published ports being served; dropping it (or [`Proxy::stop`]) closes everything.
pub struct Proxy {
    /// The mappings with their actual host ports.
    bound: Vec<PortMapping>,
    /// What serving threads and connections share.
    shared: Arc<Shared>,
    /// One thread per host listener or UDP socket.
    servers: Vec<JoinHandle<()>>,
}

/// State shared by a proxy's threads.
struct Shared {
    /// An eventfd that becomes readable, for good, when the proxy stops; every serving thread
    /// polls it next to its socket, so no blocking accept or recv outlives the proxy.
    stop: OwnedFd,
    /// TCP connections open across all TCP mappings.
    live: AtomicUsize,
    /// How many TCP connections may be open at once: each holds two descriptors.
    budget: usize,
    /// Whether connections are being refused (so the warning is logged once per episode).
    refusing: AtomicBool,
    /// UDP flows open across all UDP mappings, so leaks show.
    udp_flows: AtomicUsize,
}

impl Shared {
    fn signal_stop(&self) {
        // Errors are impossible here short of a bad fd: an eventfd counter cannot overflow
        // from a handful of writes.
        let _ = rustix::io::write(&self.stop, &1u64.to_ne_bytes());
    }
}

/// A bound host-side socket, not yet served.
enum Listener {
    Tcp(Socket),
    Udp(UdpSocket),
}

impl Proxy {
    /// Binds every host-side listener now (so a port in use is reported before the container
    /// starts, and host port 0 is resolved), then serves in background threads.
    ///
    /// `netns` is the container's network namespace: `/proc/PID/ns/net` or a bind mount of
    /// it. On error nothing is left listening and no thread is left running.
    pub fn start(netns: &Path, mappings: &[PortMapping]) -> Result<Proxy, ProxyError> {
        Proxy::bind(mappings)?.serve(netns)
    }

    /// Binds every host-side socket, without serving yet: a monitor does this before the
    /// container starts, so a port in use stops it before its workload ever runs.
    pub fn bind(mappings: &[PortMapping]) -> Result<BoundPorts, ProxyError> {
        for (i, m) in mappings.iter().enumerate() {
            let same = |o: &PortMapping| {
                o.host_ip == m.host_ip && o.host_port == m.host_port && o.protocol == m.protocol
            };
            if m.host_port != 0 && mappings[..i].iter().any(same) {
                return Err(ProxyError::Duplicate { mapping: *m });
            }
        }
        // Bind everything before serving anything, so an error leaves nothing behind: the
        // sockets close as `listeners` drops.
        let mut bound = Vec::with_capacity(mappings.len());
        let mut listeners = Vec::with_capacity(mappings.len());
        for m in mappings {
            let (listener, port) = bind(m)?;
            bound.push(PortMapping {
                host_port: port,
                ..*m
            });
            listeners.push(listener);
        }
        Ok(BoundPorts { bound, listeners })
    }
}

/// Host-side sockets bound for published ports and not yet served; dropping it closes them.
pub struct BoundPorts {
    bound: Vec<PortMapping>,
    listeners: Vec<Listener>,
}

impl BoundPorts {
    /// The mappings with their actual host ports.
    pub fn bound(&self) -> &[PortMapping] {
        &self.bound
    }

    /// Serves the bound sockets, connecting into the network namespace `netns`.
    pub fn serve(self, netns: &Path) -> Result<Proxy, ProxyError> {
        let udp = self
            .bound
            .iter()
            .filter(|m| m.protocol == Protocol::Udp)
            .count();
        self.serve_within(netns, tcp_budget(udp))
    }

    /// [`BoundPorts::serve`] with at most `budget` TCP connections open at once.
    fn serve_within(self, netns: &Path, budget: usize) -> Result<Proxy, ProxyError> {
        let BoundPorts { bound, listeners } = self;
        let stop = rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| ProxyError::Resources(e.into()))?;
        let shared = Arc::new(Shared {
            stop,
            live: AtomicUsize::new(0),
            budget,
            refusing: AtomicBool::new(false),
            udp_flows: AtomicUsize::new(0),
        });
        let mut proxy = Proxy {
            servers: Vec::with_capacity(bound.len()),
            bound,
            shared,
        };
        if proxy.bound.is_empty() {
            return Ok(proxy);
        }
        let ns = File::open(netns).map_err(|source| ProxyError::OpenNetns {
            path: netns.to_owned(),
            source,
        })?;
        let ns = Arc::new(OwnedFd::from(ns));

        // On any error below, dropping `proxy` stops and joins the threads already started.
        let (ready_tx, ready_rx) = mpsc::channel();
        for (listener, m) in listeners.into_iter().zip(&proxy.bound) {
            let (ns, shared, ready) = (ns.clone(), proxy.shared.clone(), ready_tx.clone());
            let port = m.container_port;
            let name = format!("proxy-{}-{}", m.protocol, m.host_port);
            let server = thread::Builder::new().name(name).spawn(move || {
                let joined = rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(LinkNameSpaceType::Network),
                );
                drop(ns);
                let ok = joined.is_ok();
                let _ = ready.send(joined);
                // serve reads until every sender is gone.
                drop(ready);
                if ok {
                    match listener {
                        Listener::Tcp(l) => tcp::serve(l, port, &shared),
                        Listener::Udp(s) => serve_udp(&s, port, &shared),
                    }
                }
            });
            proxy.servers.push(server.map_err(ProxyError::Resources)?);
        }
        drop(ready_tx);
        for joined in ready_rx.iter() {
            joined.map_err(|e| ProxyError::JoinNetns {
                path: netns.to_owned(),
                source: e.into(),
            })?;
        }
        Ok(proxy)
    }
}

impl Proxy {
    /// The mappings being served, with the host ports actually bound.
    pub fn bound(&self) -> Vec<PortMapping> {
        self.bound.clone()
    }

    /// Closes the listeners and drops open connections (the container behind them is going
    /// away), waiting briefly for their threads to end.
    pub fn stop(self) {
        drop(self);
    }

    /// TCP connections open; for tests that check nothing leaks.
    #[cfg(test)]
    fn live_connections(&self) -> usize {
        self.shared.live.load(Ordering::Acquire)
    }

    /// UDP flows open (as of each UDP thread's last wakeup); for tests.
    #[cfg(test)]
    fn udp_flows(&self) -> usize {
        self.shared.udp_flows.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.signal_stop();
        // A TCP server's thread ends after its event loop has dropped every connection.
        for server in self.servers.drain(..) {
            let _ = server.join();
        }
    }
}

/// Raises this process' soft limit on open files to its hard limit (the monitor's own: the
/// container got its limits when its init was started) and returns how many TCP connections
/// fit in it, beside `udp_mappings` UDP mappings with their flows.
fn tcp_budget(udp_mappings: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if setrlimit(Resource::Nofile, limit).is_err() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let fds = limit.current.unwrap_or(1 << 20);
    let udp = (udp_mappings * (UDP_MAX_FLOWS + 1)) as u64;
    (fds.saturating_sub(FD_RESERVE + udp) / 2).max(1) as usize
}

/// Binds the host side of one mapping; returns it with the actual host port.
fn bind(m: &PortMapping) -> Result<(Listener, u16), ProxyError> {
    let addr = SocketAddr::new(m.host_ip, m.host_port);
    let classify = |source: io::Error| match source.kind() {
        io::ErrorKind::AddrInUse => ProxyError::PortInUse { mapping: *m },
        io::ErrorKind::AddrNotAvailable => ProxyError::AddressNotAvailable { mapping: *m },
        io::ErrorKind::PermissionDenied => ProxyError::PermissionDenied { mapping: *m },
        _ => ProxyError::Bind {
            mapping: *m,
            source,
        },
    };
    let ty = match m.protocol {
        Protocol::Tcp => Type::STREAM,
        Protocol::Udp => Type::DGRAM,
    };
    let socket = Socket::new(Domain::for_address(addr), ty, None).map_err(classify)?;
    if addr.is_ipv6() {
        // [::] means IPv6 only, as in Docker, so it can sit beside a 0.0.0.0 mapping of the
        // same port instead of taking the IPv4 side too.
        socket.set_only_v6(true).map_err(classify)?;
    }
    if m.protocol == Protocol::Tcp {
        // Lets a restarted container rebind while old connections sit in TIME_WAIT; it does not
        // let two listeners share a port on Linux.
        socket.set_reuse_address(true).map_err(classify)?;
    }
    socket.bind(&addr.into()).map_err(classify)?;
    if m.protocol == Protocol::Tcp {
        socket.listen(BACKLOG).map_err(classify)?;
    }
    // Serving threads poll before every accept or recv, and must never block past a stop.
    socket.set_nonblocking(true).map_err(classify)?;
    let port = socket
        .local_addr()
        .map_err(classify)?
        .as_socket()
        .map_or(m.host_port, |a| a.port());
    let listener = match m.protocol {
        Protocol::Tcp => Listener::Tcp(socket),
        Protocol::Udp => Listener::Udp(socket.into()),
    };
    Ok((listener, port))
}

/// Waits until `fds` has an event or `timeout` passes; false when the stop eventfd (always
/// `fds[0]`) fired or polling failed.
fn wait(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> bool {
    let timeout = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    loop {
        match rustix::event::poll(fds, timeout.as_ref()) {
            Ok(_) => return fds[0].revents().is_empty(),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "port proxy: poll failed; stopping this port");
                return false;
            }
        }
    }
}

/// One UDP client's flow: a socket inside the container connected to the container's port.
struct Flow {
    inner: UdpSocket,
    last_used: Instant,
}

/// Relays datagrams for one UDP mapping until stop.
fn serve_udp(host: &UdpSocket, port: u16, shared: &Shared) {
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; BUF_SIZE];
    let mut counted = 0;
    loop {
        let now = Instant::now();
        flows.retain(|_, f| now.duration_since(f.last_used) < UDP_IDLE);
        count_flows(shared, &mut counted, flows.len());
        let timeout = flows
            .values()
            .map(|f| (f.last_used + UDP_IDLE).saturating_duration_since(now))
            .min();

        let mut fds = Vec::with_capacity(flows.len() + 2);
        fds.push(PollFd::new(&shared.stop, PollFlags::IN));
        fds.push(PollFd::new(host, PollFlags::IN));
        let clients: Vec<SocketAddr> = flows.keys().copied().collect();
        fds.extend(
            clients
                .iter()
                .map(|c| PollFd::new(&flows[c].inner, PollFlags::IN)),
        );
        if !wait(&mut fds, timeout) {
            count_flows(shared, &mut counted, 0);
            return;
        }
        let host_ready = !fds[1].revents().is_empty();
        let ready: Vec<SocketAddr> = clients
            .iter()
            .zip(&fds[2..])
            .filter(|(_, fd)| !fd.revents().is_empty())
            .map(|(c, _)| *c)
            .collect();
        drop(fds);

        if host_ready {
            from_clients(host, port, &mut flows, &mut buf);
        }
        for client in ready {
            if !to_client(host, client, &mut flows, &mut buf) {
                flows.remove(&client);
            }
        }
    }
}

/// Moves this thread's share of `Shared::udp_flows` from `counted` to `now`.
fn count_flows(shared: &Shared, counted: &mut usize, now: usize) {
    shared.udp_flows.fetch_add(now, Ordering::Relaxed);
    shared.udp_flows.fetch_sub(*counted, Ordering::Relaxed);
    *counted = now;
}

/// Forwards every datagram waiting on the host socket into the container.
fn from_clients(
    host: &UdpSocket,
    port: u16,
    flows: &mut HashMap<SocketAddr, Flow>,
    buf: &mut [u8],
) {
    loop {
        let (n, client) = match host.recv_from(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // An ICMP error for an earlier reply surfaces once here; it concerns one client.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, port, "port proxy: cannot receive a UDP datagram");
                return;
            }
        };
        if !flows.contains_key(&client) {
            if flows.len() >= UDP_MAX_FLOWS {
                let oldest = flows
                    .iter()
                    .min_by_key(|(_, f)| f.last_used)
                    .map(|(c, _)| *c);
                if let Some(oldest) = oldest {
                    flows.remove(&oldest);
                }
            }
            match open_flow(port) {
                Ok(inner) => {
                    flows.insert(
                        client,
                        Flow {
                            inner,
                            last_used: Instant::now(),
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        port,
                        %client,
                        "port proxy: cannot open a UDP flow; dropping the datagram"
                    );
                    continue;
                }
            }
        }
        let flow = flows.get_mut(&client).expect("flow was just ensured");
        flow.last_used = Instant::now();
        // A refused send means nothing listens in the container (yet); UDP drops it.
        let _ = flow.inner.send(&buf[..n]);
    }
}

/// A socket inside the container (this thread's namespace) connected to the container's port.
fn open_flow(port: u16) -> io::Result<UdpSocket> {
    let inner = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    inner.connect((Ipv4Addr::LOCALHOST, port))?;
    inner.set_nonblocking(true)?;
    Ok(inner)
}

/// Sends every reply waiting on a flow back to its client; false if the flow is broken.
fn to_client(
    host: &UdpSocket,
    client: SocketAddr,
    flows: &mut HashMap<SocketAddr, Flow>,
    buf: &mut [u8],
) -> bool {
    let Some(flow) = flows.get_mut(&client) else {
        return true;
    };
    loop {
        match flow.inner.recv(buf) {
            Ok(n) => {
                flow.last_used = Instant::now();
                // A full send buffer drops the reply, as the network could.
                let _ = host.send_to(&buf[..n], client);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            // The container's port is closed (ICMP port unreachable); it may open later.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(error = %e, %client, "port proxy: UDP flow failed; dropping it");
                return false;
            }
        }
    }
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ports: Vec<String> = self.bound.iter().map(format_mapping).collect();
        f.debug_struct("Proxy").field("bound", &ports).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Ipv6Addr, Shutdown};
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::sync::Barrier;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A process in its own network namespace (loopback up), killed and reaped on drop, even
    /// when the test fails.
    struct NsChild(Child);

    impl NsChild {
        /// Runs `script` under `sh` in a new network namespace and waits for its first line of
        /// output, which the script prints once its server is listening.
        fn spawn(script: &str, quiet: bool) -> NsChild {
            // unshare without --fork execs sh, which execs the server: one pid throughout.
            let child = Command::new("unshare")
                .args(["--net", "sh", "-c"])
                .arg(format!("ip link set lo up && exec {script}"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(if quiet {
                    Stdio::null()
                } else {
                    Stdio::inherit()
                })
                .spawn()
                .expect("spawning a server under unshare --net");
            let mut child = NsChild(child);
            let mut line = String::new();
            BufReader::new(child.0.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(
                !line.is_empty(),
                "the server in the namespace exited before it was ready"
            );
            child
        }

        fn netns(&self) -> PathBuf {
            PathBuf::from(format!("/proc/{}/ns/net", self.0.id()))
        }
    }

    impl Drop for NsChild {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// A TCP echo server on 127.0.0.1:PORT that echoes until its client's end of stream, then
    /// closes its own side: a half-close must get through the proxy for a client to finish.
    fn tcp_echo(port: u16) -> NsChild {
        NsChild::spawn(
            &format!(
                r#"python3 -c '
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", {port}))
s.listen(256)
print("ready", flush=True)
def serve(c):
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'"#
            ),
            false,
        )
    }

    fn tcp(host_ip: IpAddr, container_port: u16) -> PortMapping {
        PortMapping {
            host_ip,
            host_port: 0,
            container_port,
            protocol: Protocol::Tcp,
        }
    }

    fn host_addr_of(proxy: &Proxy, i: usize) -> SocketAddr {
        let m = proxy.bound()[i];
        assert_ne!(m.host_port, 0, "bound() reports the picked port");
        SocketAddr::new(m.host_ip, m.host_port)
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    /// Sends `data`, half-closes, and returns everything read back until end of stream.
    fn echo_through(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
        let stream = connect(addr);
        let mut back = Vec::new();
        thread::scope(|s| {
            // Write from another thread: the echo comes back while we are still sending.
            s.spawn(|| {
                (&stream).write_all(data).unwrap();
                stream.shutdown(Shutdown::Write).unwrap();
            });
            (&stream).read_to_end(&mut back).unwrap();
        });
        back
    }

    /// Waits until every connection thread has ended.
    fn assert_no_live_connections(proxy: &Proxy) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while proxy.live_connections() > 0 {
            assert!(Instant::now() < deadline, "connections did not end");
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn http_get_through_the_proxy() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.txt"), "hello from the container\n").unwrap();
        // -u: the "Serving HTTP" line (printed after listen) must not sit in a buffer.
        let server = NsChild::spawn(
            &format!(
                "python3 -u -m http.server 8080 --bind 127.0.0.1 --directory {}",
                dir.path().display()
            ),
            true,
        );
        let proxy = Proxy::start(&server.netns(), &[tcp(LOCAL, 8080)]).unwrap();
        let bound = proxy.bound();
        assert_eq!(bound.len(), 1);
        assert_eq!(
            format_mapping(&bound[0]),
            format!("127.0.0.1:{}->8080/tcp", bound[0].host_port)
        );

        let mut stream = connect(host_addr_of(&proxy, 0));
        stream
            .write_all(b"GET /hello.txt HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
        assert!(
            response.ends_with("\r\n\r\nhello from the container\n"),
            "{response}"
        );
        drop(stream);
        assert_no_live_connections(&proxy);
        proxy.stop();
    }

    #[test]
    fn big_transfer_arrives_intact_both_ways_over_ipv4_and_ipv6() {
        let server = tcp_echo(9000);
        let proxy = Proxy::start(
            &server.netns(),
            &[tcp(LOCAL, 9000), tcp(Ipv6Addr::LOCALHOST.into(), 9000)],
        )
        .unwrap();
        // 8 MiB that no shifted copy of itself matches, so a dropped or repeated chunk shows.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let data: Vec<u8> = (0..8 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for i in 0..2 {
            let back = echo_through(host_addr_of(&proxy, i), &data);
            assert_eq!(back.len(), data.len());
            assert!(back == data, "echo differs");
        }
        assert_no_live_connections(&proxy);
    }

    #[test]
    fn fifty_concurrent_connections_all_succeed() {
        let server = tcp_echo(9001);
        let proxy = Proxy::start(&server.netns(), &[tcp(LOCAL, 9001)]).unwrap();
        let addr = host_addr_of(&proxy, 0);
        let all_connected = Barrier::new(50);
        thread::scope(|s| {
            let clients: Vec<_> = (0..50)
                .map(|i| {
                    let all_connected = &all_connected;
                    s.spawn(move || {
                        let mut stream = connect(addr);
                        // Every connection is open before any of them sends.
                        all_connected.wait();
                        let msg = format!("client {i} says hello").repeat(100);
                        stream.write_all(msg.as_bytes()).unwrap();
                        stream.shutdown(Shutdown::Write).unwrap();
                        let mut back = String::new();
                        stream.read_to_string(&mut back).unwrap();
                        assert_eq!(back, msg);
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
        });
        assert_no_live_connections(&proxy);
    }

    #[test]
    fn udp_echo_answers_each_client_through_the_proxy() {
        let server = NsChild::spawn(
            r#"python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5353))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(65535)
    s.sendto(b"echo:" + d, a)
'"#,
            false,
        );
        let mapping = PortMapping {
            protocol: Protocol::Udp,
            ..tcp(LOCAL, 5353)
        };
        let v6 = PortMapping {
            host_ip: Ipv6Addr::LOCALHOST.into(),
            ..mapping
        };
        let proxy = Proxy::start(&server.netns(), &[mapping, v6]).unwrap();
        assert!(format_mapping(&proxy.bound()[0]).ends_with("->5353/udp"));
        for (i, local) in [(0, "127.0.0.1:0"), (0, "127.0.0.1:0"), (1, "[::1]:0")] {
            let client = UdpSocket::bind(local).unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            client.connect(host_addr_of(&proxy, i)).unwrap();
            for n in 0..3 {
                let msg = format!("ping {n} from {}", client.local_addr().unwrap());
                client.send(msg.as_bytes()).unwrap();
                let mut buf = [0u8; 1500];
                let len = client.recv(&mut buf).unwrap();
                assert_eq!(&buf[..len], format!("echo:{msg}").as_bytes());
            }
        }
        // One flow per client, forgotten once idle.
        assert_eq!(proxy.udp_flows(), 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        while proxy.udp_flows() > 0 {
            assert!(Instant::now() < deadline, "idle UDP flows did not expire");
            thread::sleep(Duration::from_millis(50));
        }
        proxy.stop();
    }

    /// Checks that nothing listens on `ip:port` by binding it. Retries briefly: a child that
    /// another test forks in parallel holds copies of this process's sockets until it execs.
    fn assert_nothing_listens(ip: Ipv4Addr, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Err(e) = TcpListener::bind((ip, port)) {
            assert!(
                Instant::now() < deadline,
                "the proxy left {ip}:{port} listening: {e}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_port_in_use_is_a_clear_error_and_nothing_stays_listening() {
        // An address of its own and a fixed port: probing for a free port would open a socket
        // that a child forked by a parallel test could keep open.
        let ip = Ipv4Addr::new(127, 77, 0, 1);
        let free_port = 47_001;
        let taken = TcpListener::bind((ip, 0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let mappings = [
            PortMapping {
                host_port: free_port,
                ..tcp(ip.into(), 80)
            },
            PortMapping {
                host_port: taken_port,
                ..tcp(ip.into(), 80)
            },
        ];
        // Binding fails before the namespace matters; the test's own one will do.
        let err = Proxy::start(Path::new("/proc/self/ns/net"), &mappings).unwrap_err();
        assert!(matches!(err, ProxyError::PortInUse { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "publishing {ip}:{taken_port}: port {taken_port} is already in use on the host; \
                 pick another host port with -p {ip}:OTHER:80"
            )
        );
        // The first mapping's listener was closed again.
        assert_nothing_listens(ip, free_port);

        let udp_taken = UdpSocket::bind((ip, 0)).unwrap();
        let m = PortMapping {
            host_port: udp_taken.local_addr().unwrap().port(),
            protocol: Protocol::Udp,
            ..tcp(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 53)
        };
        let err = Proxy::start(Path::new("/proc/self/ns/net"), &[m]).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "already in use on the host; pick another host port with -p OTHER:53/udp"
            ),
            "{err}"
        );
    }

    #[test]
    fn an_address_the_host_lacks_is_a_clear_error() {
        // TEST-NET-1 is never assigned to a host.
        let m = tcp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80);
        let err = Proxy::start(Path::new("/proc/self/ns/net"), &[m]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "publishing 192.0.2.1:0: 192.0.2.1 is not an address of this host; publish on \
             0.0.0.0 or on one of the addresses `ip addr` lists"
        );
    }

    #[test]
    fn a_port_published_twice_is_an_error() {
        let m = PortMapping {
            host_port: 18080,
            ..tcp(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80)
        };
        let err = Proxy::start(Path::new("/proc/self/ns/net"), &[m, m]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "publishing 0.0.0.0:18080: this host port is published twice; give each -p its own \
             host port"
        );
    }

    #[test]
    fn a_missing_or_wrong_namespace_is_an_error_and_nothing_stays_listening() {
        let (ip, free_port) = (Ipv4Addr::new(127, 77, 0, 2), 47_002);
        let m = [PortMapping {
            host_port: free_port,
            ..tcp(ip.into(), 80)
        }];
        let err = Proxy::start(Path::new("/proc/999999999/ns/net"), &m).unwrap_err();
        assert!(matches!(err, ProxyError::OpenNetns { .. }), "{err:?}");
        assert!(err.to_string().contains("must be running"), "{err}");
        // A namespace file, but not a network one: setns refuses it. (Its own port: binding
        // comes first now, and a child forked by a parallel test may briefly hold the last one.)
        let m2 = [PortMapping {
            host_port: free_port + 1,
            ..tcp(ip.into(), 80)
        }];
        let err = Proxy::start(Path::new("/proc/self/ns/uts"), &m2).unwrap_err();
        assert!(matches!(err, ProxyError::JoinNetns { .. }), "{err:?}");
        assert!(
            err.to_string().contains("must be a network namespace"),
            "{err}"
        );
        assert_nothing_listens(ip, free_port);
        assert_nothing_listens(ip, free_port + 1);
    }

    #[test]
    fn a_container_port_nobody_listens_on_closes_the_client() {
        let server = tcp_echo(9002);
        let proxy = Proxy::start(&server.netns(), &[tcp(LOCAL, 9999)]).unwrap();
        let mut stream = connect(host_addr_of(&proxy, 0));
        let mut buf = [0u8; 16];
        // Closed (end of stream or reset), not left hanging.
        assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)));
        assert_no_live_connections(&proxy);
    }

    #[test]
    fn stop_drops_open_connections_and_frees_the_port() {
        let server = tcp_echo(9003);
        let proxy = Proxy::start(&server.netns(), &[tcp(LOCAL, 9003)]).unwrap();
        let addr = host_addr_of(&proxy, 0);
        let mut idle = connect(addr);
        idle.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        idle.read_exact(&mut buf).unwrap();
        assert_eq!(proxy.live_connections(), 1);
        let shared = proxy.shared.clone();

        proxy.stop();
        assert_eq!(
            shared.live.load(Ordering::Acquire),
            0,
            "stop ends every connection"
        );
        assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
        TcpListener::bind(addr).expect("stop left the listener open");
    }

    #[test]
    fn connections_past_the_budget_are_refused_and_the_rest_still_served() {
        let server = tcp_echo(9004);
        let proxy = Proxy::bind(&[tcp(LOCAL, 9004)])
            .unwrap()
            .serve_within(&server.netns(), 2)
            .unwrap();
        let addr = host_addr_of(&proxy, 0);
        let held: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = connect(addr);
                s.write_all(b"x").unwrap();
                s.read_exact(&mut [0u8; 1]).unwrap();
                s
            })
            .collect();
        assert_eq!(proxy.live_connections(), 2);
        // The third is reset at once, not left hanging.
        let mut third = connect(addr);
        let _ = third.write_all(b"x");
        assert!(matches!(third.read(&mut [0u8; 1]), Ok(0) | Err(_)));
        drop(held);
        assert_no_live_connections(&proxy);
        assert_eq!(echo_through(addr, b"after"), b"after");
    }

    #[test]
    fn no_mappings_needs_no_namespace() {
        let proxy = Proxy::start(Path::new("/nonexistent"), &[]).unwrap();
        assert!(proxy.bound().is_empty());
    }
}
