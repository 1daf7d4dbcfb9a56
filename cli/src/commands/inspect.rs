//! `berth inspect`: an image's config and manifest as JSON.

use std::process::ExitCode;

use anyhow::Result;
use berth_runtime::image::Image;
use clap::Args;
use serde_json::{Value, json};

use crate::app::GlobalOptions;

/// Arguments of `berth inspect`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth inspect busybox\n  berth inspect busybox | jq '.[0].Config.Cmd'"
)]
pub struct InspectArgs {
    /// Images: names or ids
    #[arg(required = true, value_name = "NAME|ID")]
    pub targets: Vec<String>,
    /// Output format (only json)
    #[arg(short, long, default_value = "json", value_parser = ["json"])]
    pub format: String,
}

/// The JSON Docker users know from `docker image inspect`, plus the manifest.
pub fn image_json(image: &Image) -> Result<Value> {
    let config = serde_json::to_value(&image.config)?;
    let repo_digests: Vec<String> = image
        .names
        .iter()
        .map(|n| format!("{}@{}", n.familiar_name(), image.digest))
        .collect();
    Ok(json!({
        "Id": image.id.to_string(),
        "RepoTags": image.names.iter().map(|n| n.familiar()).collect::<Vec<_>>(),
        "RepoDigests": repo_digests,
        "Created": image.config.created,
        "Author": image.config.author.clone().unwrap_or_default(),
        "Architecture": image.config.architecture,
        "Os": image.config.os,
        "Variant": image.config.variant,
        "Size": image.size(),
        "Config": config.get("config").cloned().unwrap_or(Value::Null),
        "RootFS": {
            "Type": "layers",
            "Layers": image.config.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "History": config.get("history").cloned().unwrap_or(json!([])),
        "Descriptor": {
            "mediaType": image.manifest.media_type().as_ref().map(|m| m.to_string()),
            "digest": image.digest.to_string(),
        },
        "Manifest": serde_json::to_value(&image.manifest)?,
    }))
}

/// The JSON Docker users know from `docker container inspect`.
pub fn container_json(
    store: &berth_runtime::Store,
    c: &berth_runtime::container::Container,
) -> Value {
    use berth_runtime::container::Status;
    let st = &c.state;
    let fmt_time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
    };
    json!({
        "Id": c.id,
        "Name": format!("/{}", c.name),
        "Created": c.created.to_rfc3339(),
        "Path": c.spec.args.first(),
        "Args": c.spec.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": if c.is_paused() { "paused".to_string() } else { st.status.to_string() },
            "Running": st.status == Status::Running,
            "Paused": c.is_paused(),
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": st.pid.unwrap_or(0),
            "ExitCode": st.exit_code.unwrap_or(0),
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": fmt_time(st.started_at),
            "FinishedAt": fmt_time(st.finished_at),
        },
        "Image": c.image_id.to_string(),
        "RestartCount": st.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "LogPath": store.container_dir(&c.id).join(berth_runtime::container::log::FILE_NAME),
        "HostnamePath": store.container_run_dir(&c.id).join("hostname"),
        "HostsPath": store.container_run_dir(&c.id).join("hosts"),
        "ResolvConfPath": store.container_run_dir(&c.id).join("resolv.conf"),
        "Config": {
            "Hostname": c.spec.hostname,
            "User": c.spec.user,
            "Env": c.spec.env,
            "Cmd": c.spec.args,
            "Image": c.image,
            "WorkingDir": c.spec.cwd,
            "Labels": c.labels,
            "Tty": c.spec.tty,
            "OpenStdin": c.spec.stdin,
            "StopSignal": c.stop_signal,
            "StopTimeout": c.stop_timeout,
        },
        "HostConfig": {
            "Runtime": c.spec.backend.as_str(),
            "NetworkMode": match c.spec.network {
                berth_runtime::workload::NetworkMode::Private => "default",
                berth_runtime::workload::NetworkMode::Bridge => c.spec.bridge.network.as_str(),
                berth_runtime::workload::NetworkMode::None => "none",
                berth_runtime::workload::NetworkMode::Host => "host",
            },
            "PortBindings": c.publish,
            "AutoRemove": c.auto_remove,
            "Privileged": c.spec.security.privileged,
            "CapAdd": c.spec.security.cap_add,
            "CapDrop": c.spec.security.cap_drop,
            "ReadonlyRootfs": c.spec.read_only,
            "Memory": c.spec.limits.memory.unwrap_or(0),
            "NanoCpus": c.spec.limits.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
            "PidsLimit": c.spec.limits.pids,
            "MemorySwap": c.spec.limits.memory_swap.unwrap_or(0),
            "CpuShares": c.spec.limits.cpu_shares.unwrap_or(0),
            "CpusetCpus": c.spec.limits.cpuset_cpus.as_deref().unwrap_or(""),
            "BlkioWeight": c.spec.limits.blkio_weight.unwrap_or(0),
            "BlkioDeviceReadBps": device_rates(&c.spec.limits.device_read_bps),
            "BlkioDeviceWriteBps": device_rates(&c.spec.limits.device_write_bps),
            "Init": c.spec.init,
            "LogConfig": {
                "Type": c.log_config.driver.as_str(),
                "Config": c.log_config.options(),
            },
        },
        "Mounts": c.spec.mounts.iter().map(|m| json!({
            "Type": m.kind,
            "Name": m.volume,
            "Source": m.source,
            "Destination": m.destination,
            "RW": !m.read_only,
        })).collect::<Vec<_>>(),
        "NetworkSettings": network_settings(c),
    })
}

/// Docker's `NetworkSettings`: the published ports, and per network the address, gateway and
/// MAC (the first network's also at the top level, as Docker shows the default bridge's).
fn network_settings(c: &berth_runtime::container::state::Container) -> Value {
    let first = c.endpoints.first();
    let networks: serde_json::Map<String, Value> = c
        .endpoints
        .iter()
        .map(|e| {
            let aliases = if e.network == c.spec.bridge.network {
                c.spec.bridge.aliases.clone()
            } else {
                Vec::new()
            };
            (
                e.network.clone(),
                json!({
                    "NetworkID": e.network_id,
                    "EndpointID": "",
                    "Gateway": e.gateway.to_string(),
                    "IPAddress": e.ip.to_string(),
                    "IPPrefixLen": e.prefix,
                    "MacAddress": e.mac,
                    "Aliases": aliases,
                }),
            )
        })
        .collect();
    json!({
        "Ports": c.ports,
        "IPAddress": first.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": first.map_or(0, |e| e.prefix),
        "Gateway": first.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "MacAddress": first.map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
}

/// What `inspect` knows of a container whose state file is damaged: Docker's "dead" state,
/// with why in `State.Error`.
fn dead_json(store: &berth_runtime::Store, r: &berth_runtime::container::store::Remains) -> Value {
    json!({
        "Id": r.id,
        "Name": r.name.as_ref().map(|n| format!("/{n}")).unwrap_or_default(),
        "Created": r.created.to_rfc3339(),
        "State": {
            "Status": "dead",
            // Its monitor still holds it: its processes run until `rm -f`.
            "Running": store.monitor_holds(&r.id),
            "Dead": true,
            "Error": format!(
                "its state file is corrupt: {}; remove it with `berth rm -f {}`",
                r.reason,
                r.short_id()
            ),
        },
        "Config": { "Image": r.image },
        "LogPath": store.container_dir(&r.id).join(berth_runtime::container::log::FILE_NAME),
    })
}

/// Prints a JSON array with one object per target (a container, else an image); exits 1 if
/// any was not found.
pub fn run(g: &GlobalOptions, a: InspectArgs) -> Result<ExitCode> {
    let store = super::open_store(g)?;
    let mut out = Vec::new();
    let mut failed = false;
    for t in &a.targets {
        if let Ok(c) = store.find_container(t) {
            out.push(container_json(&store, &c));
            continue;
        }
        if let Ok(r) = store.find_remains(t) {
            out.push(dead_json(&store, &r));
            continue;
        }
        match store.find_image(t) {
            Ok(image) => out.push(image_json(&image)?),
            Err(e) => {
                eprintln!("berth: no such object: {t} (neither a container nor an image; {e})");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--device-*-bps` limits as Docker's inspect shows them.
fn device_rates(rates: &[berth_runtime::workload::DeviceRate]) -> Value {
    rates
        .iter()
        .map(|r| json!({ "Path": r.path, "Rate": r.rate }))
        .collect()
}
