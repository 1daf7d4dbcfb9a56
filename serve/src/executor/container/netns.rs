//! Connections into a container's network namespace: the socket is made inside it (by a
//! thread that enters namespaces and does nothing else), then connected to the app's port on
//! the container's own loopback. So every network mode works alike (`bridge`, `none`,
//! `private`, `host`), nothing is published on the host, and the path is the shortest there
//! is: no veth, bridge or firewall rule between the proxy and the app.
//!
//! A request should not wait for that thread: each namespace keeps a few sockets made ahead,
//! and taking one asks the thread for more.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak, mpsc};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Sockets kept made ahead per namespace.
const AHEAD: usize = 16;

/// A container's network namespace, held open while the container runs, with sockets made in
/// it ahead of need.
#[derive(Debug, Clone)]
pub struct Netns {
    fd: Arc<OwnedFd>,
    ahead: Arc<Mutex<Vec<OwnedFd>>>,
}

impl Netns {
    /// The network namespace of process `pid`.
    pub fn of_process(pid: i32) -> io::Result<Netns> {
        let f = File::open(format!("/proc/{pid}/ns/net"))?;
        Ok(Netns {
            fd: Arc::new(f.into()),
            ahead: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// A socket made ahead, if one is left, and how many are left after it.
    fn take_ahead(&self) -> Option<(OwnedFd, usize)> {
        let mut ahead = self.ahead.lock().unwrap_or_else(|e| e.into_inner());
        let fd = ahead.pop()?;
        Some((fd, ahead.len()))
    }
}

/// What the namespace thread is asked.
enum Job {
    /// One socket, now.
    One {
        netns: Netns,
        reply: tokio::sync::oneshot::Sender<io::Result<OwnedFd>>,
    },
    /// Sockets made ahead, up to [`AHEAD`].
    Fill(Netns),
}

/// The one thread of the process that makes sockets inside namespaces. It moves between
/// namespaces freely: no other work runs on it, so nothing else ever finds itself in a
/// container's namespace.
fn maker() -> io::Result<mpsc::Sender<Job>> {
    static MAKER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);
    let mut m = MAKER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = m.as_ref() {
        return Ok(tx.clone());
    }
    let (tx, rx) = mpsc::channel::<Job>();
    // Where the thread goes back to once it has nothing to do: a thread left in a stopped
    // container's namespace would keep that namespace (and its veth, its address) alive.
    let home: OwnedFd = File::open("/proc/thread-self/ns/net")?.into();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            // The namespace the thread is in, so it enters each only when it changes.
            let mut current: Weak<OwnedFd> = Weak::new();
            while let Ok(job) = rx.recv() {
                handle(job, &mut current);
                while let Ok(job) = rx.try_recv() {
                    handle(job, &mut current);
                }
                // Nothing more to do: home, so no container's namespace is held.
                let _ = move_into_link_name_space(home.as_fd(), Some(LinkNameSpaceType::Network));
                current = Weak::new();
            }
        })?;
    *m = Some(tx.clone());
    Ok(tx)
}

/// Does one job on the namespace thread, which is in the namespace `current` (if any).
fn handle(job: Job, current: &mut Weak<OwnedFd>) {
    match job {
        Job::One { netns, reply } => {
            let _ = reply.send(make(&netns, current));
        }
        Job::Fill(netns) => {
            while netns.ahead.lock().unwrap_or_else(|e| e.into_inner()).len() < AHEAD {
                match make(&netns, current) {
                    Ok(fd) => netns
                        .ahead
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(fd),
                    Err(_) => break,
                }
            }
        }
    }
}

/// A socket made in `netns`, entering it unless the thread is in it (`current`).
fn make(netns: &Netns, current: &mut Weak<OwnedFd>) -> io::Result<OwnedFd> {
    if !Weak::ptr_eq(current, &Arc::downgrade(&netns.fd)) {
        *current = Weak::new();
        move_into_link_name_space(netns.fd.as_fd(), Some(LinkNameSpaceType::Network))?;
        *current = Arc::downgrade(&netns.fd);
    }
    Ok(rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?)
}

/// A socket of the namespace: one made ahead, else one made now; either way more are made.
async fn socket(netns: &Netns) -> io::Result<OwnedFd> {
    let maker = maker()?;
    let ended = || io::Error::other("the namespace thread has ended");
    if let Some((fd, left)) = netns.take_ahead() {
        // Refilled in batches: the thread enters the namespace once per batch.
        if left == AHEAD / 2 {
            let _ = maker.send(Job::Fill(netns.clone()));
        }
        return Ok(fd);
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    maker
        .send(Job::One {
            netns: netns.clone(),
            reply,
        })
        .map_err(|_| ended())?;
    let _ = maker.send(Job::Fill(netns.clone()));
    answer.await.map_err(|_| ended())?
}

/// Connects to `port` on the loopback of the namespace `netns`.
pub async fn connect(netns: &Netns, port: u16) -> io::Result<tokio::net::TcpStream> {
    let fd = socket(netns).await?;
    let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    let stream = socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
