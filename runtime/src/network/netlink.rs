//! The few rtnetlink calls a bridge network makes: bridges, veth pairs, addresses, routes.
//! Synchronous, one request and its acknowledgement at a time, over a socket bound to the
//! network namespace it was opened in: a socket opened before `unshare(CLONE_NEWNET)` keeps
//! talking to the host's namespace afterwards, which is how `__init` wires a container's
//! veth from inside its new namespace.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A route-netlink socket of the namespace it was opened in.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// Sends `message` and waits for its acknowledgement (the kernel's error, if any).
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let mut packet = NetlinkMessage::from(message);
        self.sequence += 1;
        packet.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        packet.header.sequence_number = self.sequence;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let mut reply = vec![0u8; 8192];
        loop {
            let n = self.socket.recv(&mut &mut reply[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let answer = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[offset..n])
                    .map_err(|e| io::Error::other(format!("reading netlink's answer: {e}")))?;
                let len = answer.header.length as usize;
                if answer.header.sequence_number == self.sequence
                    && let NetlinkPayload::Error(e) = answer.payload
                {
                    return match e.code {
                        None => Ok(()),
                        Some(_) => Err(e.to_io()),
                    };
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// Makes the bridge `name`, down.
    pub fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.into()));
        link.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Makes a veth pair: `host` here, enslaved to the bridge `master` and up; its peer `peer`
    /// in the namespace `netns` (an open nsfs file), with the MAC address `mac`.
    pub fn add_veth_into(
        &mut self,
        host: &str,
        master: u32,
        peer: &str,
        netns: BorrowedFd<'_>,
        mac: [u8; 6],
    ) -> io::Result<()> {
        let mut peer_link = LinkMessage::default();
        peer_link
            .attributes
            .push(LinkAttribute::IfName(peer.into()));
        peer_link
            .attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        peer_link
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        let mut link = LinkMessage::default();
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        link.attributes.push(LinkAttribute::IfName(host.into()));
        link.attributes.push(LinkAttribute::Controller(master));
        link.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_link))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Deletes the link `name` of the calling thread's namespace (and a veth's peer with it);
    /// a missing link is no error.
    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let Some(index) = link_index(name)? else {
            return Ok(());
        };
        let mut link = LinkMessage::default();
        link.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(link), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r,
        }
    }

    /// Deletes the link `name` of this socket's namespace when the calling thread is in
    /// another (the name is looked up by the kernel, not by if_nametoindex).
    pub fn delete_link_in_host(&mut self, name: &str) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(RouteNetlinkMessage::DelLink(link), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            r => r,
        }
    }

    /// Brings the link `index` up.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(link), 0)
    }

    /// Gives the link `index` the address `ip/prefix` (an existing one is no error).
    pub fn add_address(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.prefix_len = prefix;
        addr.header.index = index;
        addr.attributes
            .push(AddressAttribute::Local(std::net::IpAddr::V4(ip)));
        addr.attributes
            .push(AddressAttribute::Address(std::net::IpAddr::V4(ip)));
        if prefix < 31 {
            let host_bits = u32::MAX >> prefix;
            let broadcast = Ipv4Addr::from(u32::from(ip) | host_bits);
            addr.attributes.push(AddressAttribute::Broadcast(broadcast));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(addr),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Adds the default route through `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route.header.table = netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN;
        route.header.protocol = RouteProtocol::Boot;
        route.header.scope = RouteScope::Universe;
        route.header.kind = RouteType::Unicast;
        route
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }
}

/// The index of the link `name` in the calling thread's network namespace, if there is one.
pub fn link_index(name: &str) -> io::Result<Option<u32>> {
    match nix::net::if_::if_nametoindex(name) {
        Ok(i) => Ok(Some(i)),
        Err(nix::errno::Errno::ENODEV) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
