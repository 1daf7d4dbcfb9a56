//! The firewall of the bridge networks: one nftables table of a store's own (`ip berth` for
//! the default store, `ip berth-HASH` for another; see `bridge::store_suffix`),
//! rewritten whole from the networks' definitions whenever one is made or removed, in one
//! atomic `nft` batch (so it is never half there, and removing berth's rules is deleting
//! the table).
//!
//! What it holds, per network (bridge B, subnet S):
//! - NAT out: packets from S leaving through another interface than B are masqueraded
//!   (not for an internal network);
//! - forwarding: B to B is accepted; B to any other of berth's bridges (this store's or
//!   another's) is dropped, so networks do not reach each other; an internal network's traffic is dropped in and
//!   out; otherwise B's traffic out, and what answers it, is accepted.

use serde_json::{Value, json};

use super::bridge::{BRIDGE_PREFIX, Network, NetworkError};

fn rule(table: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "ip", "table": table, "chain": chain, "expr": expr}}})
}

fn iif(op: &str, name: &str) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": "iifname"}}, "right": name}})
}

fn oif(op: &str, name: &str) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": "oifname"}}, "right": name}})
}

/// The whole table for `networks`, as nft's JSON commands.
fn ruleset(table: &str, networks: &[Network]) -> Value {
    let rule = |chain: &str, expr: Vec<Value>| rule(table, chain, expr);
    let any_bridge = format!("{BRIDGE_PREFIX}*");
    let mut cmds = vec![
        // `add` then `delete`: deleting a table that is not there would fail the batch.
        json!({"add": {"table": {"family": "ip", "name": table}}}),
        json!({"delete": {"table": {"family": "ip", "name": table}}}),
        json!({"add": {"table": {"family": "ip", "name": table}}}),
        json!({"add": {"chain": {"family": "ip", "table": table, "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
        json!({"add": {"chain": {"family": "ip", "table": table, "name": "forward",
            "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}),
    ];
    // Per bridge, never one rule for all: another store's table holds no accept for this
    // store's bridges, and a drop in any table is final.
    for n in networks {
        cmds.push(rule(
            "forward",
            vec![
                iif("==", &n.bridge),
                oif("==", &n.bridge),
                json!({"accept": null}),
            ],
        ));
        cmds.push(rule(
            "forward",
            vec![
                iif("==", &n.bridge),
                oif("==", &any_bridge),
                json!({"drop": null}),
            ],
        ));
    }
    for n in networks {
        if n.internal {
            cmds.push(rule(
                "forward",
                vec![iif("==", &n.bridge), json!({"drop": null})],
            ));
            cmds.push(rule(
                "forward",
                vec![oif("==", &n.bridge), json!({"drop": null})],
            ));
            continue;
        }
        let saddr = json!({"match": {"op": "==",
            "left": {"payload": {"protocol": "ip", "field": "saddr"}},
            "right": {"prefix": {"addr": n.subnet.network().to_string(), "len": n.subnet.prefix_len()}}}});
        cmds.push(rule(
            "postrouting",
            vec![saddr, oif("!=", &n.bridge), json!({"masquerade": null})],
        ));
        cmds.push(rule(
            "forward",
            vec![iif("==", &n.bridge), json!({"accept": null})],
        ));
        let answers = json!({"match": {"op": "in", "left": {"ct": {"key": "state"}},
            "right": ["established", "related"]}});
        cmds.push(rule(
            "forward",
            vec![oif("==", &n.bridge), answers, json!({"accept": null})],
        ));
    }
    json!({ "nftables": cmds })
}

/// Writes the table `table` for `networks`.
pub fn apply(table: &str, networks: &[Network]) -> Result<(), NetworkError> {
    let parsed: nftables::schema::Nftables = serde_json::from_value(ruleset(table, networks))
        .map_err(|e| NetworkError::Firewall(format!("building the nftables rules: {e}")))?;
    run(&parsed).map_err(|e| NetworkError::Firewall(format!("setting nftables table {table}: {e}")))
}

/// Removes the table `table`.
pub fn remove(table: &str) -> Result<(), NetworkError> {
    let cmds = json!({"nftables": [
        {"add": {"table": {"family": "ip", "name": table}}},
        {"delete": {"table": {"family": "ip", "name": table}}},
    ]});
    let parsed: nftables::schema::Nftables = serde_json::from_value(cmds)
        .map_err(|e| NetworkError::Firewall(format!("building the nftables rules: {e}")))?;
    run(&parsed)
        .map_err(|e| NetworkError::Firewall(format!("removing nftables table {table}: {e}")))
}

/// The `nft` command, where Debian and others put it (a root shell's PATH may lack sbin).
fn nft() -> Option<std::path::PathBuf> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// Whether this host has `nft`.
pub fn available() -> bool {
    nft().is_some()
}

fn run(batch: &nftables::schema::Nftables) -> Result<(), String> {
    let nft = nft().ok_or("the nft command is missing (Debian: apt-get install nftables)")?;
    nftables::helper::apply_ruleset_with_args(batch, Some(&nft), nftables::helper::DEFAULT_ARGS)
        .map_err(|e| e.to_string())
}

/// Whether the table `table` is in the kernel (false without `nft`).
pub fn present(table: &str) -> bool {
    let Some(nft) = nft() else {
        return false;
    };
    std::process::Command::new(nft)
        .args(["list", "table", "ip", table])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_parses_as_nftables_json() {
        let n = Network {
            name: "bridge".into(),
            id: "0".repeat(64),
            subnet: "172.17.0.0/16".parse().unwrap(),
            gateway: "172.17.0.1".parse().unwrap(),
            bridge: "berth0".into(),
            internal: false,
            created: chrono::Utc::now(),
        };
        let internal = Network {
            name: "quiet".into(),
            bridge: "berth-123456789".into(),
            subnet: "172.18.0.0/16".parse().unwrap(),
            internal: true,
            ..n.clone()
        };
        let parsed: nftables::schema::Nftables =
            serde_json::from_value(ruleset("berth", &[n, internal])).unwrap();
        let text = serde_json::to_string(&parsed).unwrap();
        assert!(
            text.contains("masquerade") && text.contains("berth-123456789"),
            "{text}"
        );
    }
}
