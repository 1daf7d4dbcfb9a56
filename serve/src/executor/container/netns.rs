//! Connections into a container's network namespace: the socket is made inside it (by a
//! thread that enters namespaces and does nothing else), then connected to the app's port on
//! the container's own loopback. So every network mode works alike (`bridge`, `none`,
//! `private`, `host`), nothing is published on the host, and the path is the shortest there
//! is: no veth, bridge or firewall rule between the proxy and the app.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, mpsc};

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// A container's network namespace, held open while the container runs.
#[derive(Debug, Clone)]
pub struct Netns(Arc<OwnedFd>);

impl Netns {
    /// The network namespace of process `pid`.
    pub fn of_process(pid: i32) -> io::Result<Netns> {
        let f = File::open(format!("/proc/{pid}/ns/net"))?;
        Ok(Netns(Arc::new(f.into())))
    }
}

/// A socket to be made in a namespace, and where the answer goes.
struct Job {
    netns: Netns,
    reply: tokio::sync::oneshot::Sender<io::Result<OwnedFd>>,
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
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            for job in rx {
                let made = move_into_link_name_space(
                    job.netns.0.as_fd(),
                    Some(LinkNameSpaceType::Network),
                )
                .and_then(|()| {
                    rustix::net::socket_with(
                        AddressFamily::INET,
                        SocketType::STREAM,
                        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                        None,
                    )
                })
                .map_err(io::Error::from);
                let _ = job.reply.send(made);
            }
        })?;
    *m = Some(tx.clone());
    Ok(tx)
}

/// Connects to `port` on the loopback of the namespace `netns`.
pub async fn connect(netns: &Netns, port: u16) -> io::Result<tokio::net::TcpStream> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    maker()?
        .send(Job {
            netns: netns.clone(),
            reply,
        })
        .map_err(|_| io::Error::other("the namespace thread has ended"))?;
    let fd = answer
        .await
        .map_err(|_| io::Error::other("the namespace thread has ended"))??;
    let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    let stream = socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
