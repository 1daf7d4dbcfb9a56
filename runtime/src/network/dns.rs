//! A user-defined network's DNS server: containers on the network find each other by name,
//! short id and `--network-alias`; other names go on to the asking container's `--dns`
//! servers, else the host's resolvers (none on an `--internal` network).
//!
//! One server per network (`berth __dns NAME`, a process of its own as podman's
//! aardvark-dns, since berth has no daemon), listening on the network's gateway address,
//! port 53, over UDP and TCP. The first container start on the network starts it; it ends by
//! itself once the network has no containers left, or at `network rm`. Its names come from
//! the network's leases (see `network::ipam`), read again whenever that folder changes.
//!
//! Every message is parsed and written by hickory-proto; what cannot be parsed is dropped,
//! forwarded queries are bounded in number and time (sent over UDP, and again over TCP for a
//! TCP client whose answer UDP cut short), and a TCP client gets one message of at most 64 KiB
//! per read deadline.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead as _, Read as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, UdpSocket};

use super::bridge::{self, Network, NetworkError};
use crate::store::Store;

/// How long a forwarded query waits for each upstream server.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Forwarded queries in flight at once; more are answered SERVFAIL.
const MAX_FORWARDS: usize = 256;
/// TCP clients at once; more wait for the kernel's backlog.
const MAX_TCP_CLIENTS: usize = 64;
/// How long a TCP client may take to send a message, or to read its answer.
const TCP_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server looks whether its network still has containers.
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// The TTL of the network's own names: short, containers come and go.
const TTL: u32 = 5;
/// How long the names read are used before they are read again (sooner when a lease changes).
const RECORDS_FOR: Duration = Duration::from_secs(1);

/// Whether containers on `network` get its DNS server (Docker's default bridge has none).
pub fn serves(network: &Network) -> bool {
    network.name != bridge::DEFAULT
}

fn lock_path(store: &Store, name: &str) -> PathBuf {
    bridge::network_dir(store, name).join("dns.lock")
}

fn pid_path(store: &Store, name: &str) -> PathBuf {
    bridge::network_dir(store, name).join("dns.pid")
}

/// Whether a server holds `network`'s lock now.
fn running(store: &Store, name: &str) -> bool {
    fs::File::open(lock_path(store, name))
        .is_ok_and(|f| matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)))
}

/// Starts `network`'s DNS server unless it runs, and waits until it answers.
pub fn ensure_running(store: &Store, network: &Network) -> Result<(), NetworkError> {
    if running(store, &network.name) {
        return Ok(());
    }
    let io_err = |what: &str| {
        let what = format!("{what} the DNS server of network {}", network.name);
        move |source| NetworkError::Io { what, source }
    };
    let log = fs::File::create(bridge::network_dir(store, &network.name).join("dns.log"))
        .map_err(io_err("opening the log of"))?;
    // Sealed, as every berth process a start makes: kept open until the exec.
    let exe = crate::sandbox::linux::exe_seal::SealedExe::of_self(store.run_root())
        .map_err(io_err("sealing berth's binary for"))?;
    let mut cmd = exe.command();
    use std::os::unix::process::CommandExt as _;
    let mut child = cmd
        .arg("--root")
        .arg(store.root())
        .arg("__dns")
        .arg(&network.name)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        // Its own session: a container's terminal or monitor ending does not end it.
        .process_group(0)
        .spawn()
        .map_err(io_err("starting"))?;
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    io::BufReader::new(out)
        .read_line(&mut line)
        .map_err(io_err("waiting for"))?;
    if line.trim_end() == "ready" {
        // Reaped by whoever outlives it: it runs on after this process.
        std::mem::forget(child);
        return Ok(());
    }
    let _ = child.wait();
    let mut log = String::new();
    let _ = fs::File::open(bridge::network_dir(store, &network.name).join("dns.log"))
        .and_then(|mut f| f.read_to_string(&mut log));
    Err(NetworkError::Io {
        what: format!("starting the DNS server of network {}", network.name),
        source: io::Error::other(log.trim().to_string()),
    })
}

/// Stops `network`'s DNS server (at `network rm`).
pub fn stop(store: &Store, name: &str) {
    if !running(store, name) {
        return;
    }
    if let Some(pid) = fs::read_to_string(pid_path(store, name))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// The network's names and each container's own upstream servers.
#[derive(Debug)]
struct Records {
    /// Lowercase name → addresses.
    names: HashMap<String, Vec<Ipv4Addr>>,
    /// A container's address → its `--dns` servers.
    upstreams: HashMap<Ipv4Addr, Vec<IpAddr>>,
    /// The leases folder's modification time these were read at.
    read_at: Option<SystemTime>,
    /// When they were read: containers start and stop without a lease changing.
    read_when: std::time::Instant,
}

impl Records {
    fn read(store: &Store, network: &Network) -> Records {
        let dir = bridge::leases_dir(store, &network.name);
        let read_at = fs::metadata(&dir).and_then(|m| m.modified()).ok();
        let mut r = Records {
            names: HashMap::new(),
            upstreams: HashMap::new(),
            read_at,
            read_when: std::time::Instant::now(),
        };
        for (ip, id) in super::ipam::leases(&dir) {
            let Ok(c) = store.load_container(&id) else {
                continue;
            };
            let dns: Vec<IpAddr> = c.spec.dns.iter().filter_map(|d| d.parse().ok()).collect();
            r.upstreams.insert(ip, dns);
            // As Docker's, no names of stopped containers (one starting, its workload perhaps
            // asking already, is not yet recorded as running).
            use crate::container::state::Status;
            if matches!(c.state.status, Status::Exited | Status::Removing) {
                continue;
            }
            let aliases = c
                .endpoints
                .iter()
                .find(|e| e.network_id == network.id)
                .map(|e| e.aliases.clone())
                .unwrap_or_default();
            let names = [c.name.clone(), c.short_id().to_string()]
                .into_iter()
                .chain(aliases);
            for name in names {
                r.names.entry(name.to_lowercase()).or_default().push(ip);
            }
        }
        r
    }

    fn stale(&self, store: &Store, network: &Network) -> bool {
        if self.read_when.elapsed() >= RECORDS_FOR {
            return true;
        }
        let now = fs::metadata(bridge::leases_dir(store, &network.name))
            .and_then(|m| m.modified())
            .ok();
        now != self.read_at
    }
}

/// The host's resolvers (all of them: this server runs in the host's namespace).
fn host_resolvers() -> Vec<IpAddr> {
    fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect()
}

/// What a query gets: an answer made here, or the servers to forward it to.
enum Reply {
    Local(Vec<u8>),
    Forward(Vec<IpAddr>),
    Drop,
}

/// The server of one network.
struct Server {
    store: Store,
    network: Network,
    records: Mutex<Arc<Records>>,
    forwards: tokio::sync::Semaphore,
    host_resolvers: Vec<IpAddr>,
    /// Sources found to be the host's own addresses, or not.
    host_addresses: Mutex<HashMap<Ipv4Addr, bool>>,
}

impl Server {
    fn records(&self) -> Arc<Records> {
        let mut r = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if r.stale(&self.store, &self.network) {
            *r = Arc::new(Records::read(&self.store, &self.network));
        }
        r.clone()
    }

    /// Whether `ip` is one of the host's own addresses (the host's queries come from whichever
    /// the kernel picks): one that a socket can bind. Remembered, a bounded number of them.
    fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        let mut known = self
            .host_addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(&yes) = known.get(&ip) {
            return yes;
        }
        if known.len() >= 1024 {
            known.clear();
        }
        let yes = std::net::UdpSocket::bind((ip, 0)).is_ok();
        known.insert(ip, yes);
        yes
    }

    /// Answers `query` from `from` with the network's names, or says where it goes.
    fn reply(&self, query: &[u8], from: IpAddr) -> Reply {
        let Ok(msg) = Message::from_vec(query) else {
            return Reply::Drop;
        };
        if msg.metadata.message_type != MessageType::Query {
            return Reply::Drop;
        }
        let id = msg.metadata.id;
        let refuse = |code| {
            let mut m = Message::error_msg(id, msg.metadata.op_code, code);
            m.metadata.recursion_desired = msg.metadata.recursion_desired;
            m.add_queries(msg.queries.iter().cloned());
            Reply::Local(m.to_vec().unwrap_or_default())
        };
        // Only this network's containers and the host: a container of another network
        // reaches this address through the host, and must not learn the names here.
        let member = match from {
            IpAddr::V4(v4) => self.network.subnet.contains(&v4) || self.is_host_address(v4),
            IpAddr::V6(_) => false,
        };
        if !member {
            return refuse(ResponseCode::Refused);
        }
        if msg.metadata.op_code != OpCode::Query || msg.queries.len() != 1 {
            return refuse(ResponseCode::NotImp);
        }
        let q = &msg.queries[0];
        let name = q.name().to_ascii().trim_end_matches('.').to_lowercase();
        let records = self.records();
        if let Some(ips) = records.names.get(&name) {
            let mut m = Message::response(id, OpCode::Query);
            m.metadata.authoritative = true;
            m.metadata.recursion_desired = msg.metadata.recursion_desired;
            m.metadata.recursion_available = true;
            m.add_query(q.clone());
            if q.query_type() == RecordType::A {
                for ip in ips {
                    m.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(*ip))));
                }
            }
            return Reply::Local(m.to_vec().unwrap_or_default());
        }
        if self.network.internal {
            return refuse(ResponseCode::Refused);
        }
        let own = match from {
            IpAddr::V4(v4) => records.upstreams.get(&v4).cloned().unwrap_or_default(),
            IpAddr::V6(_) => Vec::new(),
        };
        let upstreams: Vec<IpAddr> = if own.is_empty() {
            self.host_resolvers.clone()
        } else {
            own
        }
        .into_iter()
        // Never itself: a container's `--dns` may name its gateway.
        .filter(|ip| *ip != IpAddr::V4(self.network.gateway))
        .collect();
        if upstreams.is_empty() {
            return refuse(ResponseCode::ServFail);
        }
        Reply::Forward(upstreams)
    }

    /// The answer to `query` from `from`: made here or forwarded; None to drop it.
    async fn answer(&self, query: &[u8], from: IpAddr, over_tcp: bool) -> Option<Vec<u8>> {
        match self.reply(query, from) {
            Reply::Local(m) => Some(m),
            Reply::Drop => None,
            Reply::Forward(upstreams) => {
                let servfail = || {
                    let m = Message::from_vec(query).ok()?;
                    let mut e =
                        Message::error_msg(m.metadata.id, OpCode::Query, ResponseCode::ServFail);
                    e.add_queries(m.queries);
                    e.to_vec().ok()
                };
                let Ok(_permit) = self.forwards.try_acquire() else {
                    return servfail();
                };
                for up in upstreams {
                    match forward(query, up).await {
                        // Cut short for UDP: a TCP client, which cannot ask again over
                        // UDP's limits, gets the whole answer over TCP.
                        Ok(Some(a)) if over_tcp && truncated(&a) => {
                            if let Ok(Some(whole)) = forward_tcp(query, up).await {
                                return Some(whole);
                            }
                            return Some(a);
                        }
                        Ok(Some(a)) => return Some(a),
                        _ => {}
                    }
                }
                servfail()
            }
        }
    }
}

/// Whether an answer has its TC (truncated) bit.
fn truncated(answer: &[u8]) -> bool {
    answer.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// Sends `query` to `upstream` port 53 over TCP; its answer, or None when none came in time.
async fn forward_tcp(query: &[u8], upstream: IpAddr) -> io::Result<Option<Vec<u8>>> {
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect((upstream, 53)).await?;
        let len = u16::try_from(query.len()).map_err(io::Error::other)?;
        conn.write_u16(len).await?;
        conn.write_all(query).await?;
        let n = conn.read_u16().await? as usize;
        let mut answer = vec![0u8; n];
        conn.read_exact(&mut answer).await?;
        io::Result::Ok(answer)
    };
    match tokio::time::timeout(UPSTREAM_TIMEOUT, exchange).await {
        Ok(Ok(a)) if a.len() >= 2 && a[..2] == query[..2] => Ok(Some(a)),
        Ok(Ok(_)) | Err(_) => Ok(None),
        Ok(Err(e)) => Err(e),
    }
}

/// Sends `query` to `upstream` port 53 over UDP; its answer when one with the query's id comes.
async fn forward(query: &[u8], upstream: IpAddr) -> io::Result<Option<Vec<u8>>> {
    let bind: SocketAddr = match upstream {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect((upstream, 53)).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(None),
        };
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            return Ok(Some(buf[..n].to_vec()));
        }
    }
}

/// Runs network `name`'s DNS server until the network is gone or has no containers; prints
/// `ready` on stdout once it listens (or when another server has it already).
pub fn serve(store: Store, name: &str) -> Result<(), NetworkError> {
    let network = bridge::load(&store, name)?;
    let io_err = |what: String| move |source| NetworkError::Io { what, source };
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(&store, name))
        .map_err(io_err(format!(
            "opening {}",
            lock_path(&store, name).display()
        )))?;
    if lock.try_lock().is_err() {
        println!("ready");
        return Ok(());
    }
    fs::write(pid_path(&store, name), std::process::id().to_string())
        .map_err(io_err("writing the pid file".into()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting the DNS server's runtime".into()))?;
    rt.block_on(async move {
        let addr = SocketAddr::from((network.gateway, 53));
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(io_err(format!("listening on {addr}/udp")))?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(io_err(format!("listening on {addr}/tcp")))?;
        let server = Arc::new(Server {
            records: Mutex::new(Arc::new(Records::read(&store, &network))),
            store,
            network,
            forwards: tokio::sync::Semaphore::new(MAX_FORWARDS),
            host_resolvers: host_resolvers(),
            host_addresses: Mutex::new(HashMap::new()),
        });
        println!("ready");
        let udp = Arc::new(udp);
        tokio::select! {
            r = serve_udp(server.clone(), udp) => r,
            r = serve_tcp(server.clone(), tcp) => r,
            () = until_idle(&server) => Ok(()),
            () = terminated() => Ok(()),
        }
        .map_err(io_err("serving DNS".into()))
    })?;
    drop(lock);
    Ok(())
}

async fn serve_udp(server: Arc<Server>, sock: Arc<UdpSocket>) -> io::Result<()> {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            // An ICMP error of an earlier reply, reported on this socket.
            Err(_) => continue,
        };
        let query = buf[..n].to_vec();
        let (server, sock) = (server.clone(), sock.clone());
        tokio::spawn(async move {
            if let Some(a) = server.answer(&query, from.ip(), false).await {
                let _ = sock.send_to(&a, from).await;
            }
        });
    }
}

async fn serve_tcp(server: Arc<Server>, listener: TcpListener) -> io::Result<()> {
    let clients = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CLIENTS));
    loop {
        let permit = clients.clone().acquire_owned().await.expect("never closed");
        let Ok((mut conn, from)) = listener.accept().await else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let _permit = permit;
            loop {
                let read = async {
                    let len = conn.read_u16().await? as usize;
                    let mut msg = vec![0u8; len];
                    conn.read_exact(&mut msg).await?;
                    io::Result::Ok(msg)
                };
                let Ok(Ok(query)) = tokio::time::timeout(TCP_READ_TIMEOUT, read).await else {
                    return;
                };
                let Some(a) = server.answer(&query, from.ip(), true).await else {
                    return;
                };
                let Ok(len) = u16::try_from(a.len()) else {
                    return;
                };
                // A client that does not read its answer does not keep its place.
                let write = async {
                    conn.write_u16(len).await?;
                    conn.write_all(&a).await
                };
                if !matches!(
                    tokio::time::timeout(TCP_READ_TIMEOUT, write).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
            }
        });
    }
}

/// Resolves once the network is gone or none of its leases belongs to a container.
async fn until_idle(server: &Server) {
    loop {
        tokio::time::sleep(IDLE_CHECK).await;
        let dir = bridge::leases_dir(&server.store, &server.network.name);
        let gone = !bridge::network_dir(&server.store, &server.network.name).exists();
        let exists = |id: &str| server.store.container_dir(id).join("state.json").exists();
        if gone || !super::ipam::leases(&dir).iter().any(|(_, id)| exists(id)) {
            return;
        }
    }
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// The `resolv.conf` of a container whose first network has a DNS server.
pub fn resolv_conf(gateway: Ipv4Addr, search: &[String]) -> String {
    let mut out = format!("nameserver {gateway}\n");
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    out.push_str("options ndots:0\n");
    out
}
