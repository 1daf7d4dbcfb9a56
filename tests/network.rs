//! Bridge networks, driven through the real binary: a container's address, route, /etc files
//! and `inspect`; outbound NAT to a server in a network namespace this test makes (on a subnet
//! of its own, routed from the host, so the server seeing the host's address proves the
//! masquerade); published ports into a bridge container; 20 starts at once with distinct
//! addresses; nothing left after `rm` and `system prune`; `--network none` still isolated.
//! Every address reached is on this machine.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Berth, eventually, sh};

fn setup() -> Berth {
    let b = Berth::new();
    b.import_busybox("busybox");
    b
}

fn inspect(b: &Berth, name: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(&b.ok(&["inspect", name])).unwrap()[0].clone()
}

fn links() -> String {
    sh("ip -o link show")
}

/// The Linux bridge of network `name`.
fn bridge_of(b: &Berth, name: &str) -> String {
    let net =
        std::fs::read_to_string(b.root().join(format!("networks/{name}/network.json"))).unwrap();
    let net: serde_json::Value = serde_json::from_str(&net).unwrap();
    net["bridge"].as_str().unwrap().to_string()
}

/// How many veths are on `bridge`.
fn ports_of(bridge: &str) -> usize {
    sh(&format!("ip -o link show master {bridge}"))
        .lines()
        .count()
}

#[test]
fn a_bridge_container_has_an_address_a_route_and_its_etc_files() {
    let b = setup();
    let out = b.ok(&[
        "run",
        "--network",
        "bridge",
        "--name",
        "web",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.test",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip route; cat /etc/hosts /etc/resolv.conf",
    ]);
    let c = inspect(&b, "web");
    let ns = &c["NetworkSettings"];
    let ip = ns["IPAddress"].as_str().unwrap().to_string();
    let gw = ns["Gateway"].as_str().unwrap().to_string();
    assert!(!ip.is_empty() && !gw.is_empty(), "{ns}");
    assert_eq!(ns["Networks"]["bridge"]["IPAddress"], ip.as_str(), "{ns}");
    assert!(
        ns["MacAddress"].as_str().unwrap().starts_with("02:42:"),
        "{ns}"
    );
    assert_eq!(c["HostConfig"]["NetworkMode"], "bridge");
    assert!(out.contains(&format!("inet {ip}/")), "{out}");
    assert!(out.contains(&format!("default via {gw} dev eth0")), "{out}");
    assert!(
        out.contains(&format!("{ip}\t")),
        "its own address in /etc/hosts: {out}"
    );
    assert!(out.contains("nameserver 192.0.2.53\n"), "{out}");
    assert!(out.contains("search example.test\n"), "{out}");
    // The address is kept across a restart, and given back at `rm`.
    b.ok(&["start", "-a", "web"]);
    assert_eq!(
        inspect(&b, "web")["NetworkSettings"]["IPAddress"],
        ip.as_str()
    );
    let leases = b.root().join("networks/bridge/leases");
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 1);
    let bridge = bridge_of(&b, "bridge");
    assert!(
        eventually(|| ports_of(&bridge) == 0),
        "stopped: no veth on {bridge}"
    );
    // A monitor killed with kill -9 leaves no veth, and the next start gets the address back.
    let lived = b
        .ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let lived_ip = inspect(&b, &lived)["NetworkSettings"]["IPAddress"].clone();
    assert_eq!(ports_of(&bridge), 1);
    let state = b.root().join(format!("containers/{lived}/state.json"));
    // The state file is a log of records: the last one holds.
    let state = std::fs::read_to_string(state).unwrap();
    let state: serde_json::Value = state
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap();
    let monitor = state["state"]["monitor_pid"].as_i64().unwrap();
    sh(&format!("kill -9 {monitor}"));
    assert!(
        eventually(|| ports_of(&bridge) == 0),
        "the veth went with the killed monitor"
    );
    b.ok(&["start", &lived]);
    assert_eq!(
        inspect(&b, &lived)["NetworkSettings"]["IPAddress"],
        lived_ip
    );
    b.ok(&["rm", "-f", &lived]);
    b.ok(&["rm", "web"]);
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 0);
    // --network none: loopback alone.
    let none = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "ip -o link",
    ]);
    assert!(!none.contains("eth0") && none.contains("lo"), "{none}");
    let (code, err) = b.fail(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("network nosuchnet not found: make it with `berth network create nosuchnet`"),
        "{err}"
    );
    // `system prune` takes the unused bridge and the store's firewall table down.
    assert!(links().contains(&format!(" {bridge}:")), "{}", links());
    b.ok(&["system", "prune", "-f"]);
    assert!(!links().contains(&format!(" {bridge}:")), "{}", links());
}

/// A network namespace with a server on 198.19.77.2, linked to the host by a veth whose host
/// end is 198.19.77.1; removed on drop.
struct Outside {
    ns: String,
    server: std::process::Child,
}

impl Outside {
    fn start() -> Outside {
        let ns = format!("berth-test-out-{}", std::process::id());
        let host_end = format!("bto{}", std::process::id() % 100_000);
        sh(&format!(
            "ip netns add {ns} && ip link add {host_end} type veth peer name eth0 netns {ns} && \
             ip addr add 198.19.77.1/30 dev {host_end} && ip link set {host_end} up && \
             ip -n {ns} addr add 198.19.77.2/30 dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} link set lo up"
        ));
        // Logs each client's address on stderr, as http.server does.
        let server = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-m", "http.server", "9000"])
            .args(["--bind", "198.19.77.2"])
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Outside { ns, server }
    }

    fn log(mut self) -> String {
        let _ = self.server.kill();
        let mut err = String::new();
        use std::io::Read;
        self.server
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn outbound_traffic_is_masqueraded_to_the_hosts_address() {
    let b = setup();
    let out = Outside::start();
    let mut reached = false;
    for _ in 0..50 {
        let o = b.output(&[
            "run",
            "--rm",
            "--network",
            "bridge",
            "busybox",
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 198.19.77.2 9000 | grep -q '200 OK'",
        ]);
        if o.status.success() {
            reached = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // An --internal network has no route out.
    b.ok(&["network", "create", "--internal", "sealed"]);
    let sealed = b.output(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        "busybox",
        "sh",
        "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 198.19.77.2 9000",
    ]);
    let log = out.log();
    assert!(
        !sealed.status.success() || sealed.stdout.is_empty(),
        "an --internal container reached the outside: {}",
        String::from_utf8_lossy(&sealed.stdout)
    );
    assert!(reached, "the container reached the outside server: {log}");
    assert!(
        log.contains("198.19.77.1 - -"),
        "the server saw the host's address: {log}"
    );
    assert!(!log.contains("172."), "no container address got out: {log}");
}

#[test]
fn published_ports_reach_a_bridge_container() {
    let b = setup();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--network",
            "bridge",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sh",
            "-c",
            "httpd -f -p 80 -h /etc",
        ])
        .trim()
        .to_string();
    let ports = inspect(&b, &id)["NetworkSettings"]["Ports"].to_string();
    let port: u16 = ports
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split("->").next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a bound port in {ports}"));
    let got = eventually(|| {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .and_then(|mut s| {
                use std::io::{Read, Write};
                s.write_all(b"GET /hostname HTTP/1.0\r\n\r\n")?;
                let mut r = String::new();
                s.read_to_string(&mut r)?;
                Ok(r.contains("200"))
            })
            .unwrap_or(false)
    });
    assert!(got, "GET through the published port");
    b.ok(&["rm", "-f", &id]);
}

#[test]
fn twenty_containers_started_at_once_get_distinct_addresses() {
    let b = setup();
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let mut cmd = b.cmd(&[
                "run",
                "-d",
                "--network",
                "bridge",
                "busybox",
                "sleep",
                "1000",
            ]);
            std::thread::spawn(move || common::succeed(&mut cmd).trim().to_string())
        })
        .collect();
    let ids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut ips: Vec<String> = ids
        .iter()
        .map(|id| {
            b.ok(&[
                "exec",
                id,
                "sh",
                "-c",
                "ip -o -4 addr show eth0 | awk '{print $4}'",
            ])
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "{ips:?}");
    // Containers on one bridge reach each other.
    let first = ips[0].split('/').next().unwrap().to_string();
    let ping = format!("ping -c 1 -W 1 {first}");
    // A few tries, a second each at most: a bounded wait, should the bridge drop them.
    assert!(
        (0..10).any(|_| b
            .output(&["exec", &ids[1], "sh", "-c", &ping])
            .status
            .success()),
        "{ping} from another container"
    );
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    b.ok(&rm);
    let leases = b.root().join("networks/bridge/leases");
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 0);
    let bridge = bridge_of(&b, "bridge");
    assert!(
        eventually(|| ports_of(&bridge) == 0),
        "veths left on {bridge}"
    );
}

/// The upstream's answer to `query`: every A query gets 192.0.2.77, except that over UDP a
/// name starting with `big.` gets an empty answer cut short (TC), to be asked over TCP.
fn upstream_answer(query: &[u8], udp: bool) -> Option<Vec<u8>> {
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::{RData, Record, RecordType, rdata::A};
    let q = Message::from_vec(query).ok()?;
    let mut a = Message::response(q.metadata.id, OpCode::Query);
    a.metadata.recursion_available = true;
    a.add_queries(q.queries.clone());
    let big = q
        .queries
        .iter()
        .any(|q| q.name().to_ascii().starts_with("big."));
    if udp && big {
        a.metadata.truncation = true;
    } else {
        for query in q.queries.iter().filter(|q| q.query_type() == RecordType::A) {
            let ip = std::net::Ipv4Addr::new(192, 0, 2, 77);
            a.add_answer(Record::from_rdata(
                query.name().clone(),
                60,
                RData::A(A(ip)),
            ));
        }
    }
    a.to_vec().ok()
}

/// A DNS server on 127.0.88.53:53 (host side), over UDP and TCP (see [`upstream_answer`]);
/// the upstream a container's `--dns` names. Stops with the test process.
fn start_upstream() {
    let sock = std::net::UdpSocket::bind("127.0.88.53:53").expect("binding 127.0.88.53:53");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if let Some(a) = upstream_answer(&buf[..n], true) {
                let _ = sock.send_to(&a, from);
            }
        }
    });
    let listener =
        std::net::TcpListener::bind("127.0.88.53:53").expect("binding 127.0.88.53:53/tcp");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut conn in listener.incoming().flatten() {
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut q).is_err() {
                continue;
            }
            if let Some(a) = upstream_answer(&q, false) {
                let _ = conn.write_all(&(a.len() as u16).to_be_bytes());
                let _ = conn.write_all(&a);
            }
        }
    });
}

/// A query for `name` sent to `server` over UDP: the addresses of its answer, or None when no
/// answer came within a second.
fn query(server: &str, name: &str) -> Option<Vec<std::net::Ipv4Addr>> {
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    sock.send_to(&m.to_vec().unwrap(), (server, 53)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    let a = Message::from_vec(&buf[..n]).ok()?;
    Some(
        a.answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect(),
    )
}

#[test]
fn containers_on_a_user_network_find_each_other_by_name_and_no_other_network_reaches_them() {
    let b = setup();
    b.ok(&["network", "create", "app"]);
    b.ok(&["network", "create", "--subnet", "10.251.0.0/24", "other"]);
    let (code, err) = b.fail(&["network", "create", "app"]);
    assert!(code != 0 && err.contains("already exists"), "{err}");
    let (_, err) = b.fail(&["network", "create", "--subnet", "10.251.0.0/25", "clash"]);
    assert!(err.contains("overlaps network \"other\""), "{err}");
    // Bad requests name the problem and make nothing.
    for (args, says) in [
        (
            &["network", "create", "../evil"][..],
            "invalid network name",
        ),
        (&["network", "create", "none"][..], "invalid network name"),
        (
            &["network", "create", "--subnet", "10.252.0.0/31", "tiny"][..],
            "too small",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "10.252.0.0/24",
                "--gateway",
                "10.9.0.1",
                "gw",
            ][..],
            "not a host address",
        ),
        (
            &["network", "create", "-d", "overlay", "ov"][..],
            "not supported",
        ),
        (
            &["network", "connect", "app", "nosuchcontainer"][..],
            "nosuchcontainer",
        ),
        (&["network", "rm", "nosuchnet"][..], "not found"),
        (
            &[
                "run",
                "--rm",
                "--network",
                "app",
                "--ip",
                "10.1.2.3",
                "busybox",
                "true",
            ][..],
            "not a host address of network app",
        ),
    ] {
        let (code, err) = b.fail(args);
        assert!(code != 0 && err.contains(says), "{args:?}: {err}");
    }
    assert!(!b.root().join("evil").exists() && !b.root().join("networks/tiny").exists());
    let ls = b.ok(&["network", "ls"]);
    for n in ["bridge", "app", "other", "host", "none"] {
        assert!(ls.contains(&format!(" {n} ")), "{ls}");
    }
    b.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        "app",
        "--network-alias",
        "database",
        "busybox",
        "sleep",
        "1000",
    ]);
    let db_ip = inspect(&b, "db")["NetworkSettings"]["Networks"]["app"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // By name, by alias, and the traffic itself; resolv.conf names the network's server.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup db; nslookup database; ping -c 1 -W 2 db",
    ]);
    assert!(out.matches(&db_ip).count() >= 3, "db at {db_ip}: {out}");
    assert!(out.contains("1 packets received"), "{out}");
    // The inspect of the network lists it; its removal is refused while db is on it.
    let net: serde_json::Value =
        serde_json::from_str(&b.ok(&["network", "inspect", "app"])).unwrap();
    assert_eq!(net[0]["Containers"].as_object().unwrap().len(), 1, "{net}");
    let (_, err) = b.fail(&["network", "rm", "app"]);
    assert!(err.contains("in use by container(s) db"), "{err}");
    // Another network neither resolves nor reaches it.
    let across = b.output(&[
        "run",
        "--rm",
        "--network",
        "other",
        "busybox",
        "sh",
        "-c",
        &format!("nslookup db; ping -c 1 -W 1 {db_ip}"),
    ]);
    let across_out = String::from_utf8_lossy(&across.stdout);
    assert!(!across.status.success(), "{across_out}");
    assert!(
        !across_out.contains(&db_ip.to_string()) || across_out.contains("0 packets received"),
        "{across_out}"
    );
    // Nor does it get answers from app's DNS server, which it reaches through the host.
    let app_gw = inspect(&b, "db")["NetworkSettings"]["Networks"]["app"]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let asked = b.output(&[
        "run",
        "--rm",
        "--network",
        "other",
        "busybox",
        "sh",
        "-c",
        &format!("nslookup db {app_gw}"),
    ]);
    let asked_out = String::from_utf8_lossy(&asked.stdout);
    assert!(!asked_out.contains(&db_ip), "{asked_out}");
    // `network connect` puts a running container on a second network, `disconnect` takes it off.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "other",
        "busybox",
        "sleep",
        "1000",
    ]);
    // `network prune` takes the unused ones only.
    b.ok(&["network", "create", "unused"]);
    let pruned = b.ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("unused") && !pruned.contains("app") && !pruned.contains("other"),
        "{pruned}"
    );
    let ping_db = format!("ping -c 1 -W 2 {db_ip}");
    assert!(
        !b.output(&["exec", "x", "sh", "-c", &ping_db])
            .status
            .success()
    );
    b.ok(&["network", "connect", "--alias", "ex", "app", "x"]);
    let eth1 = b.ok(&["exec", "x", "sh", "-c", "ip -o -4 addr show eth1"]);
    assert!(eth1.contains("inet "), "{eth1}");
    assert!(
        b.output(&["exec", "x", "sh", "-c", &ping_db])
            .status
            .success()
    );
    let gw = inspect(&b, "db")["NetworkSettings"]["Networks"]["app"]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        query(&gw, "ex").is_some_and(|a| !a.is_empty()),
        "x's alias resolves"
    );
    let (_, err) = b.fail(&["network", "connect", "app", "x"]);
    assert!(err.contains("already exists in network app"), "{err}");
    b.ok(&["network", "disconnect", "app", "x"]);
    assert!(
        !b.output(&["exec", "x", "sh", "-c", &ping_db])
            .status
            .success()
    );
    assert_eq!(
        query(&gw, "ex"),
        Some(vec![]),
        "the alias went with the endpoint"
    );
    // Taken off its first network, a container keeps the others: at its next start the next
    // is eth0, with the default route.
    b.ok(&["network", "connect", "app", "x"]);
    b.ok(&["network", "disconnect", "other", "x"]);
    b.ok(&["restart", "-t", "0", "x"]);
    let route = b.ok(&["exec", "x", "sh", "-c", "ip route"]);
    assert!(
        route.contains(&format!("default via {app_gw} dev eth0")),
        "{route}"
    );
    assert!(query(&gw, "x").is_some_and(|a| a.len() == 1));
    // A stopped container's name no longer resolves, as on Docker.
    b.ok(&["kill", "x"]);
    assert!(
        eventually(|| query(&gw, "x") == Some(vec![])),
        "a stopped container resolved"
    );
    // Everything goes: containers, then networks, their bridges and the DNS server.
    let app_bridge = bridge_of(&b, "app");
    b.ok(&["rm", "-f", "db", "x"]);
    b.ok(&["network", "rm", "app", "other"]);
    assert!(!links().contains(&format!(" {app_bridge}:")), "{}", links());
    let dns_gone = eventually(|| query(&gw, "db").is_none());
    assert!(dns_gone, "the DNS server of app ended");
    let (_, err) = b.fail(&["network", "rm", "bridge"]);
    assert!(err.contains("pre-defined"), "{err}");
}

#[test]
fn a_user_networks_dns_forwards_to_the_containers_upstream_and_survives_hostile_clients() {
    let b = setup();
    start_upstream();
    b.ok(&["network", "create", "fwd"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "fwd",
        "busybox",
        "sleep",
        "1000",
    ]);
    let ns = &inspect(&b, "peer")["NetworkSettings"]["Networks"]["fwd"];
    let (gw, peer_ip) = (
        ns["Gateway"].as_str().unwrap().to_string(),
        ns["IPAddress"].as_str().unwrap().to_string(),
    );
    // A name of no container goes to the container's --dns server.
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "fwd",
        "--dns",
        "127.0.88.53",
        "busybox",
        "sh",
        "-c",
        "nslookup outside.example",
    ]);
    assert!(
        out.contains("192.0.2.77"),
        "forwarded to the --dns upstream: {out}"
    );
    // Over TCP, an answer the upstream cut short over UDP is asked for again over TCP: a
    // query for big.example (A), written by hand, through nc; the answer's address in hex.
    let big = format!(
        "printf '\\000\\035\\022\\064\\001\\000\\000\\001\\000\\000\\000\\000\\000\\000\\003big\\007example\\000\\000\\001\\000\\001' | nc -w 3 {gw} 53 | od -An -tx1"
    );
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "fwd",
        "--dns",
        "127.0.88.53",
        "busybox",
        "sh",
        "-c",
        &big,
    ]);
    let hex: String = out.split_whitespace().collect();
    assert!(hex.contains("c000024d"), "the whole answer over TCP: {out}");
    // Hostile clients: garbage, a truncated header, a response, a flood, and more idle TCP
    // clients than the server takes at once; it still answers.
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let mut junk: Vec<Vec<u8>> = vec![vec![], vec![0xff; 3], vec![0; 12], vec![0xaa; 4000]];
    junk.push({
        let mut r = vec![0x12, 0x34, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        r.extend([3, b'a', b'b', b'c', 0, 0, 1, 0, 1]);
        r
    });
    // A name with a label pointer that loops on itself.
    junk.push(vec![
        0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
    ]);
    for j in &junk {
        sock.send_to(j, (gw.as_str(), 53)).unwrap();
    }
    for _ in 0..1000 {
        let _ = sock.send_to(&[0u8; 12], (gw.as_str(), 53));
    }
    let idle: Vec<_> = (0..80)
        .filter_map(|_| std::net::TcpStream::connect((gw.as_str(), 53)).ok())
        .collect();
    // A datagram of the flood's may still fill the socket's buffer: asked again, as resolvers
    // do, it answers.
    let want = Some(vec![peer_ip.parse().unwrap()]);
    let answered = eventually(|| query(&gw, "peer") == want);
    drop(idle);
    assert!(answered, "the server still answers");
    b.ok(&["rm", "-f", "peer"]);
    b.ok(&["network", "rm", "fwd"]);
}

#[test]
fn a_user_namespace_container_joins_the_bridge() {
    let b = setup();
    b.ok(&["network", "create", "mapped"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "mapped",
        "busybox",
        "sleep",
        "1000",
    ]);
    // By name and by address, from a container whose root is an unprivileged host id.
    let out = b.ok(&[
        "run",
        "--rm",
        "--userns",
        "private",
        "--network",
        "mapped",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0 && ip route && ping -c 1 -W 2 peer",
    ]);
    assert!(
        out.contains("inet ") && out.contains("default via"),
        "{out}"
    );
    assert!(out.contains("1 packets received"), "{out}");
    b.ok(&["rm", "-f", "peer"]);
    b.ok(&["network", "rm", "mapped"]);
}

#[test]
fn a_build_with_network_default_runs_its_steps_on_the_bridge() {
    let b = setup();
    let ctx = b.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN ip -o -4 addr show eth0 > /eth0 && ip route > /route\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "--network",
        "default",
        "-t",
        "bridged",
        ctx.to_str().unwrap(),
    ]);
    let out = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "bridged",
        "cat",
        "/eth0",
        "/route",
    ]);
    assert!(
        out.contains("inet ") && out.contains("default via"),
        "{out}"
    );
    // Its address went back with the step's container.
    let leases = b.root().join("networks/bridge/leases");
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 0);
    let (_, err) = b.fail(&["build", "--network", "bogus", ctx.to_str().unwrap()]);
    assert!(err.contains("use host, default or none"), "{err}");
}
