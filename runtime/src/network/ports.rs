//! Docker's `-p` / `--publish` and `-P` / `--publish-all` port syntax, and the `PORTS` column of
//! `docker ps`.
//!
//! A spec is `[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, where either port may be a range
//! `START-END` and an IPv6 address is written in brackets (`[::1]:8000:80`). A missing or zero
//! host port means "pick a free one when the container starts".

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// The form every `-p` error shows, so the user can fix the value in place.
const FORM: &str = "the form is [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], e.g. -p 8000:80, \
                    -p 127.0.0.1:8000:80/udp or -p 8000-8002:80-82";

/// A transport protocol a port is published for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP, the default when a spec names none.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// The lowercase name Docker uses: `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port: traffic to `host_ip:host_port` goes to `container_port` in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address to listen on; `0.0.0.0` (every IPv4 address) unless the spec names one.
    pub host_ip: IpAddr,
    /// The host port; 0 until the proxy has picked a free one.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// The protocol, TCP unless the spec says `/udp`.
    pub protocol: Protocol,
}

/// Why a `-p` or `-P` value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    /// The spec is empty or ends in `:` or `/`.
    #[error("invalid -p value {spec:?}: no container port given; {FORM}")]
    MissingContainerPort {
        /// The whole spec as given.
        spec: String,
    },
    /// A port or range is not a number in range.
    #[error(
        "invalid -p value {spec:?}: {role} port {value:?} is not a port number{zero} or a range \
         START-END; {FORM}",
        zero = if *role == "container" { " from 1 to 65535" } else { " from 0 to 65535" }
    )]
    InvalidPort {
        /// The whole spec as given.
        spec: String,
        /// `host` or `container`.
        role: &'static str,
        /// The offending part.
        value: String,
    },
    /// The part before the host port is not an IP address.
    #[error(
        "invalid -p value {spec:?}: {ip:?} is not an IP address; write IPv4 as \
         -p 127.0.0.1:8000:80 and IPv6 in brackets, -p [::1]:8000:80"
    )]
    InvalidIp {
        /// The whole spec as given.
        spec: String,
        /// The offending part.
        ip: String,
    },
    /// The protocol is neither `tcp` nor `udp`.
    #[error(
        "invalid -p value {spec:?}: protocol {proto:?} is not supported; use /tcp or /udp, \
         e.g. -p 53:53/udp"
    )]
    UnsupportedProtocol {
        /// The whole spec as given.
        spec: String,
        /// The offending protocol.
        proto: String,
    },
    /// A host range was given for a single container port.
    #[error(
        "invalid -p value {spec:?}: berth cannot pick a host port from the range {host} yet; \
         give one host port, e.g. -p {example}"
    )]
    HostRangeForOnePort {
        /// The whole spec as given.
        spec: String,
        /// The host range as written.
        host: String,
        /// The spec with the range's first port, to copy.
        example: String,
    },
    /// Host and container ranges have different lengths.
    #[error(
        "invalid -p value {spec:?}: host range {host} has {host_len} port{} but container range \
         {container} has {container_len}; give ranges of the same length, e.g. -p 8000-8002:80-82",
        if *host_len == 1 { "" } else { "s" }
    )]
    RangeMismatch {
        /// The whole spec as given.
        spec: String,
        /// The host range as written.
        host: String,
        /// How many ports it holds.
        host_len: u32,
        /// The container range as written.
        container: String,
        /// How many ports it holds.
        container_len: u32,
    },
    /// An image's `ExposedPorts` key is malformed.
    #[error(
        "the image exposes {key:?}, which is not PORT[/tcp|udp] or START-END[/tcp|udp]; publish \
         the ports you need with -p instead of -P"
    )]
    InvalidExposed {
        /// The offending key.
        key: String,
    },
}

/// Parses one `-p` value into one mapping per port (a range yields several).
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, PortError> {
    let (ip_part, host_part, container_part) = split_parts(spec);
    let (container_part, proto) = match container_part.split_once('/') {
        Some((port, proto)) => (port, Some(proto)),
        None => (container_part, None),
    };
    if container_part.is_empty() {
        return Err(PortError::MissingContainerPort { spec: spec.into() });
    }
    let protocol = match proto {
        None => Protocol::Tcp,
        Some(p) => parse_protocol(p).ok_or_else(|| PortError::UnsupportedProtocol {
            spec: spec.into(),
            proto: p.into(),
        })?,
    };
    let host_ip = match ip_part {
        // Docker reads ":8000:80" as no IP too.
        None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(ip) => parse_ip(ip).ok_or_else(|| PortError::InvalidIp {
            spec: spec.into(),
            ip: ip.into(),
        })?,
    };
    let invalid = |role, value: &str| PortError::InvalidPort {
        spec: spec.into(),
        role,
        value: value.into(),
    };
    let (c_start, c_end) =
        parse_range(container_part).ok_or_else(|| invalid("container", container_part))?;
    if c_start == 0 {
        return Err(invalid("container", container_part));
    }
    let host = match host_part {
        // "127.0.0.1::80" and "80" leave the host port to the proxy, like "0:80".
        None | Some("") => None,
        Some(h) => Some(parse_range(h).ok_or_else(|| invalid("host", h))?),
    };
    let container_len = u32::from(c_end - c_start) + 1;
    if let Some((h_start, h_end)) = host {
        let host_len = u32::from(h_end - h_start) + 1;
        // Docker also accepts a host range for a single container port and picks one free
        // port from it; PortMapping holds one host port, so berth asks for one.
        if container_len == 1 && host_len > 1 {
            let h = host_part.unwrap_or_default();
            return Err(PortError::HostRangeForOnePort {
                spec: spec.into(),
                host: h.into(),
                example: spec.replacen(h, &h_start.to_string(), 1),
            });
        }
        if host_len != container_len {
            return Err(PortError::RangeMismatch {
                spec: spec.into(),
                host: host_part.unwrap_or_default().into(),
                host_len,
                container: container_part.into(),
                container_len,
            });
        }
    }
    Ok((0..=c_end - c_start)
        .map(|offset| PortMapping {
            host_ip,
            // The lengths match, so the host range holds start + offset too.
            host_port: host.map_or(0, |(h_start, _)| h_start + offset),
            container_port: c_start + offset,
            protocol,
        })
        .collect())
}

/// Maps every exposed port of an image (`ExposedPorts` keys such as `80/tcp`) to a free host
/// port on every IPv4 address, as `-P` does.
pub fn publish_all(exposed: &[String]) -> Result<Vec<PortMapping>, PortError> {
    let mut out: Vec<PortMapping> = Vec::new();
    for key in exposed {
        let invalid = || PortError::InvalidExposed { key: key.clone() };
        let (ports, protocol) = match key.split_once('/') {
            Some((ports, proto)) => (ports, parse_protocol(proto).ok_or_else(invalid)?),
            None => (key.as_str(), Protocol::Tcp),
        };
        let (start, end) = parse_range(ports).ok_or_else(invalid)?;
        if start == 0 {
            return Err(invalid());
        }
        for container_port in start..=end {
            let mapping = PortMapping {
                host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                host_port: 0,
                container_port,
                protocol,
            };
            // "80" and "80/tcp" are the same port; publish it once.
            if !out.contains(&mapping) {
                out.push(mapping);
            }
        }
    }
    Ok(out)
}

/// Renders a mapping as `docker ps` shows it in PORTS: `0.0.0.0:8000->80/tcp`,
/// `[::]:8000->80/tcp`, or just `80/tcp` while no host port is bound.
pub fn format_mapping(m: &PortMapping) -> String {
    if m.host_port == 0 {
        return format!("{}/{}", m.container_port, m.protocol);
    }
    let host = std::net::SocketAddr::new(m.host_ip, m.host_port);
    format!("{host}->{}/{}", m.container_port, m.protocol)
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_mapping(self))
    }
}

/// Splits a spec into (ip, host port, container port[/proto]) the way Docker does: the last two
/// `:`-separated fields are the ports and everything before them is the IP, so both
/// `[::1]:8000:80` and an unbracketed `::1:8000:80` work.
fn split_parts(spec: &str) -> (Option<&str>, Option<&str>, &str) {
    let Some((rest, container)) = spec.rsplit_once(':') else {
        return (None, None, spec);
    };
    match rest.rsplit_once(':') {
        Some((ip, host)) => (Some(ip), Some(host), container),
        None => (None, Some(rest), container),
    }
}

/// Parses a host IP, with or without IPv6 brackets.
fn parse_ip(ip: &str) -> Option<IpAddr> {
    let bare = match ip.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None => ip,
    };
    bare.parse().ok()
}

/// `tcp` or `udp`, in any case (Docker lowercases before checking).
fn parse_protocol(proto: &str) -> Option<Protocol> {
    if proto.eq_ignore_ascii_case("tcp") {
        Some(Protocol::Tcp)
    } else if proto.eq_ignore_ascii_case("udp") {
        Some(Protocol::Udp)
    } else {
        None
    }
}

/// Parses `PORT` or `START-END` (START <= END); None when malformed.
fn parse_range(s: &str) -> Option<(u16, u16)> {
    let port = |p: &str| -> Option<u16> {
        // u16::from_str accepts a leading '+', which no port spec means.
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    match s.split_once('-') {
        None => port(s).map(|p| (p, p)),
        Some((start, end)) => {
            let (start, end) = (port(start)?, port(end)?);
            (start <= end).then_some((start, end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn m(host_ip: IpAddr, host_port: u16, container_port: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        }
    }

    #[test]
    fn parses_every_docker_form() {
        use Protocol::{Tcp, Udp};
        let table: Vec<(&str, Vec<PortMapping>)> = vec![
            ("8000", vec![m(ANY, 0, 8000, Tcp)]),
            ("8000:80", vec![m(ANY, 8000, 80, Tcp)]),
            ("0:80", vec![m(ANY, 0, 80, Tcp)]),
            (":8000:80", vec![m(ANY, 8000, 80, Tcp)]),
            ("127.0.0.1:8000:80", vec![m(LOCAL, 8000, 80, Tcp)]),
            ("127.0.0.1::80", vec![m(LOCAL, 0, 80, Tcp)]),
            (
                "[::1]:8000:80",
                vec![m(Ipv6Addr::LOCALHOST.into(), 8000, 80, Tcp)],
            ),
            (
                "[::]:8000:80",
                vec![m(Ipv6Addr::UNSPECIFIED.into(), 8000, 80, Tcp)],
            ),
            (
                "::1:8000:80",
                vec![m(Ipv6Addr::LOCALHOST.into(), 8000, 80, Tcp)],
            ),
            (
                "[::1]::80/udp",
                vec![m(Ipv6Addr::LOCALHOST.into(), 0, 80, Udp)],
            ),
            ("8000:80/udp", vec![m(ANY, 8000, 80, Udp)]),
            ("8000:80/tcp", vec![m(ANY, 8000, 80, Tcp)]),
            ("8000:80/UDP", vec![m(ANY, 8000, 80, Udp)]),
            ("53/udp", vec![m(ANY, 0, 53, Udp)]),
            (
                "8000-8002:80-82",
                vec![
                    m(ANY, 8000, 80, Tcp),
                    m(ANY, 8001, 81, Tcp),
                    m(ANY, 8002, 82, Tcp),
                ],
            ),
            (
                "8000-8002",
                vec![
                    m(ANY, 0, 8000, Tcp),
                    m(ANY, 0, 8001, Tcp),
                    m(ANY, 0, 8002, Tcp),
                ],
            ),
            (
                "127.0.0.1:9000-9001:90-91/udp",
                vec![m(LOCAL, 9000, 90, Udp), m(LOCAL, 9001, 91, Udp)],
            ),
            (
                "127.0.0.1::90-91",
                vec![m(LOCAL, 0, 90, Tcp), m(LOCAL, 0, 91, Tcp)],
            ),
            ("8000-8000:80-80", vec![m(ANY, 8000, 80, Tcp)]),
            ("65535:65535", vec![m(ANY, 65535, 65535, Tcp)]),
        ];
        for (spec, want) in table {
            assert_eq!(parse_publish(spec), Ok(want), "spec {spec:?}");
        }
    }

    #[test]
    fn rejects_every_malformed_form() {
        let table: &[(&str, &str)] = &[
            ("", "no container port given"),
            ("8000:", "no container port given"),
            ("127.0.0.1:8000:", "no container port given"),
            ("/udp", "no container port given"),
            ("8000:80/", "protocol \"\" is not supported"),
            ("8000:80/sctp", "protocol \"sctp\" is not supported"),
            ("8000:80/tcp/udp", "protocol \"tcp/udp\" is not supported"),
            (
                "http",
                "container port \"http\" is not a port number from 1 to 65535",
            ),
            ("8000:0", "container port \"0\""),
            ("8000:65536", "container port \"65536\""),
            ("8000:-80", "container port \"-80\""),
            ("8000:+80", "container port \"+80\""),
            ("8000: 80", "container port \" 80\""),
            ("8000:82-80", "container port \"82-80\""),
            ("8000:80-", "container port \"80-\""),
            ("0-2", "container port \"0-2\""),
            (
                "x:80",
                "host port \"x\" is not a port number from 0 to 65535",
            ),
            ("70000:80", "host port \"70000\""),
            ("8002-8000:80-82", "host port \"8002-8000\""),
            ("localhost:8000:80", "\"localhost\" is not an IP address"),
            ("300.1.1.1:8000:80", "\"300.1.1.1\" is not an IP address"),
            ("[::1:8000:80", "\"[::1\" is not an IP address"),
            ("[127.0.0.1]x:8000:80", "is not an IP address"),
            (
                "8000-8001:80-82",
                "host range 8000-8001 has 2 ports but container range 80-82 has 3",
            ),
            (
                "8000-8010:80",
                "cannot pick a host port from the range 8000-8010 yet; give one host port, \
                 e.g. -p 8000:80",
            ),
            (
                "127.0.0.1:8000-8010:80/udp",
                "e.g. -p 127.0.0.1:8000:80/udp",
            ),
            (
                "8000:80-81",
                "host range 8000 has 1 port but container range 80-81 has 2",
            ),
        ];
        for (spec, want) in table {
            let err = parse_publish(spec).expect_err(spec).to_string();
            assert!(err.contains(want), "spec {spec:?}: {err:?} lacks {want:?}");
            assert!(
                err.contains(&format!("{spec:?}")),
                "spec {spec:?}: {err:?} does not name it"
            );
            let advice = err.rsplit_once("; ").expect("an error says what to do").1;
            assert!(
                advice.contains("-p "),
                "spec {spec:?}: {err:?} shows no example"
            );
            assert!(!err.ends_with('.'), "{err:?}");
        }
    }

    #[test]
    fn publish_all_maps_each_exposed_port_to_a_free_host_port() {
        let exposed: Vec<String> = ["80/tcp", "53/udp", "8000-8001/tcp", "9000", "80"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            publish_all(&exposed).unwrap(),
            vec![
                m(ANY, 0, 80, Protocol::Tcp),
                m(ANY, 0, 53, Protocol::Udp),
                m(ANY, 0, 8000, Protocol::Tcp),
                m(ANY, 0, 8001, Protocol::Tcp),
                m(ANY, 0, 9000, Protocol::Tcp),
            ]
        );
        assert_eq!(publish_all(&[]).unwrap(), vec![]);
        for bad in ["80/sctp", "http/tcp", "0/tcp", "", "90-80/tcp"] {
            let err = publish_all(&[bad.to_string()]).expect_err(bad).to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("with -p"),
                "{err}"
            );
        }
    }

    #[test]
    fn formats_like_docker_ps() {
        assert_eq!(
            format_mapping(&m(ANY, 8000, 80, Protocol::Tcp)),
            "0.0.0.0:8000->80/tcp"
        );
        assert_eq!(
            format_mapping(&m(LOCAL, 53, 53, Protocol::Udp)),
            "127.0.0.1:53->53/udp"
        );
        let v6 = m(Ipv6Addr::UNSPECIFIED.into(), 8000, 80, Protocol::Tcp);
        assert_eq!(format_mapping(&v6), "[::]:8000->80/tcp");
        assert_eq!(format_mapping(&m(ANY, 0, 80, Protocol::Tcp)), "80/tcp");
        assert_eq!(v6.to_string(), "[::]:8000->80/tcp");
    }

    #[test]
    fn round_trips_through_the_state_file() {
        let all = parse_publish("[::1]:8000:80/udp").unwrap();
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(
            json,
            r#"[{"host_ip":"::1","host_port":8000,"container_port":80,"protocol":"udp"}]"#
        );
        let back: Vec<PortMapping> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, all);
    }
}
