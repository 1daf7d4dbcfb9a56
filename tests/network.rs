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
    let id = c["Id"].as_str().unwrap().to_string();
    b.ok(&["rm", "web"]);
    assert_eq!(std::fs::read_dir(&leases).unwrap().count(), 0);
    let veth = format!("veth{}", &id[..11]);
    assert!(
        eventually(|| !links().contains(&veth)),
        "the veth went with the container"
    );
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
    assert!(err.contains("network \"nosuchnet\" not found"), "{err}");
    // `system prune` takes the unused bridge and the store's firewall table down.
    let bridge = std::fs::read_to_string(b.root().join("networks/bridge/network.json")).unwrap();
    let bridge: serde_json::Value = serde_json::from_str(&bridge).unwrap();
    let bridge = bridge["bridge"].as_str().unwrap().to_string();
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
    let log = out.log();
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
    for id in &ids {
        let veth = format!("veth{}", &id[..11]);
        assert!(eventually(|| !links().contains(&veth)), "{veth} left");
    }
}
