//! Property tests of the parsers of what users type: image references, `-p`, `-v`, `--mount`
//! and `--tmpfs`. Each never panics on any input, accepts what is valid, and (where a display
//! form exists) parses its own display back to the same value. Case counts keep the whole
//! file to a few seconds.

use berth_runtime::container::create::{
    VolumeFlag, VolumeSource, clean_destination, parse_mount_flag, parse_tmpfs_flag,
    parse_volume_flag,
};
use berth_runtime::reference::ImageRef;
use berth_runtime::workload::MountKind;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

/// A repository path component: lowercase runs joined by `.`, `_`, `__` or dashes.
fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}(([._]|__|-{1,3})[a-z0-9]{1,6}){0,2}"
}

/// A registry host (with a dot, a port or `localhost`, as Docker tells hosts from paths).
fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}",
        "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,2}:[0-9]{1,5}",
        Just("localhost".to_string()),
    ]
}

fn tag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"
}

fn digest() -> impl Strategy<Value = String> {
    "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}"))
}

/// A valid reference as a user might type it.
fn reference() -> impl Strategy<Value = String> {
    (
        proptest::option::of(domain()),
        proptest::collection::vec(component(), 1..4),
        proptest::option::of(tag()),
        proptest::option::of(digest()),
    )
        .prop_map(|(d, path, t, dg)| {
            // Without a registry, a first component with a dot would be taken for one.
            let mut path = path;
            if d.is_none() {
                path[0] = path[0].replace('.', "-");
            }
            let mut s = d.map(|d| format!("{d}/")).unwrap_or_default();
            s.push_str(&path.join("/"));
            if let Some(t) = t {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(dg) = dg {
                s.push('@');
                s.push_str(&dg);
            }
            s
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn references_never_panic(s in "\\PC{0,80}") {
        let _ = ImageRef::parse(&s);
    }

    #[test]
    fn references_from_the_grammar_parse_and_round_trip(s in reference()) {
        let r = ImageRef::parse(&s).unwrap();
        prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r.clone());
        prop_assert_eq!(ImageRef::parse(&r.familiar()).unwrap(), r.clone());
        // A bare name means its latest tag.
        if !s.contains('@') && !s.rsplit('/').next().unwrap().contains(':') {
            prop_assert_eq!(r.tag(), Some("latest"));
        }
    }

    #[test]
    fn whatever_parses_round_trips(s in "[a-zA-Z0-9._:/@-]{1,60}") {
        if let Ok(r) = ImageRef::parse(&s) {
            prop_assert_eq!(ImageRef::parse(&r.to_string()).unwrap(), r.clone());
            prop_assert_eq!(ImageRef::parse(&r.familiar()).unwrap(), r);
        }
    }

    #[test]
    fn volume_and_mount_flags_never_panic(s in "\\PC{0,60}") {
        let _ = parse_volume_flag(&s);
        let _ = parse_mount_flag(&s);
        let _ = parse_tmpfs_flag(&s);
    }

    #[test]
    fn volume_flags_round_trip(
        src in prop_oneof![
            Just(None),
            "/[a-z0-9_./-]{0,20}".prop_map(Some),
            "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,12}".prop_map(Some),
        ],
        dst in "(/[a-z0-9_.-]{1,8}){1,4}/?",
        opts in proptest::sample::subsequence(vec!["ro", "rw", "nocopy", "z"], 0..=3),
    ) {
        let mut spec = src.clone().map(|s| format!("{s}:")).unwrap_or_default();
        spec.push_str(&dst);
        // An anonymous volume takes no options: `/a:ro` is /a mounted at "ro", as Docker reads it.
        let opts = if src.is_some() { opts } else { Vec::new() };
        if !opts.is_empty() {
            spec.push(':');
            spec.push_str(&opts.join(","));
        }
        match parse_volume_flag(&spec) {
            Ok(v) => {
                prop_assert_eq!(parse_volume_flag(&v.to_string()).unwrap(), v.clone());
                prop_assert_eq!(v.read_only, opts.contains(&"ro"));
                prop_assert_eq!(v.nocopy, opts.contains(&"nocopy"));
                prop_assert!(v.destination.starts_with('/') && v.destination != "/");
                match (&src, &v.source) {
                    (None, VolumeSource::Anonymous) => {}
                    (Some(s), VolumeSource::Host(h)) => prop_assert_eq!(s, h),
                    (Some(s), VolumeSource::Named(n)) => prop_assert_eq!(s, n),
                    other => prop_assert!(false, "{:?}", other),
                }
            }
            // The only refusals of a well-formed spec: a path that cleans to `/`, or a
            // kernel mount point.
            Err(e) => prop_assert!(
                clean_destination("-v", &spec, &dst).is_err(),
                "{spec:?} refused: {e}"
            ),
        }
    }

    #[test]
    fn destinations_clean_to_absolute_paths_outside_the_kernel_mounts(
        dst in "/[a-z./]{0,30}",
    ) {
        if let Ok(clean) = clean_destination("-v", &dst, &dst) {
            prop_assert!(clean.starts_with('/') && clean != "/");
            prop_assert!(!clean.contains("//") && !clean.ends_with('/'));
            prop_assert!(!clean.split('/').any(|p| p == "." || p == ".."));
            if clean == "/proc" || clean.starts_with("/proc/") {
                prop_assert!(["/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
                    "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo",
                    "/proc/net/dev"].contains(&clean.as_str()), "{}", clean);
            }
            prop_assert!(clean != "/sys" && clean != "/dev");
            prop_assert_eq!(clean_destination("-v", &clean, &clean).unwrap(), clean);
        }
    }

    #[test]
    fn mount_flags_round_trip(
        kind in prop_oneof![Just("bind"), Just("volume"), Just("tmpfs")],
        src in "[a-z0-9][a-z0-9_.-]{0,10}",
        target in "(/[a-z0-9_-]{1,8}){1,3}",
        ro in any::<bool>(),
    ) {
        let source = match kind {
            "bind" => Some(format!("/{src}")),
            "volume" => Some(src.clone()),
            _ => None,
        };
        let mut spec = format!("type={kind}");
        if let Some(s) = &source {
            spec.push_str(&format!(",source={s}"));
        }
        spec.push_str(&format!(",target={target}"));
        if ro {
            spec.push_str(",readonly");
        }
        let m = parse_mount_flag(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parse_mount_flag(&m.to_string()).unwrap(), m.clone());
        prop_assert_eq!(m.read_only, ro);
        prop_assert_eq!(&m.target, &target);
        prop_assert_eq!(m.source, source);
        prop_assert_eq!(
            m.kind,
            match kind {
                "bind" => MountKind::Bind,
                "volume" => MountKind::Volume,
                _ => MountKind::Tmpfs,
            }
        );
    }
}

#[test]
fn the_root_and_kernel_mount_points_are_refused_everywhere() {
    for dst in [
        "/",
        "//",
        "/.",
        "/x/..",
        "/proc",
        "/proc/",
        "/./proc",
        "/proc/sys",
        "/sys",
        "/dev",
        "/dev/pts",
    ] {
        assert!(
            parse_volume_flag(&format!("/src:{dst}")).is_err(),
            "-v {dst}"
        );
        assert!(
            parse_mount_flag(&format!("type=bind,source=/src,target={dst}")).is_err(),
            "--mount {dst}"
        );
        assert!(parse_tmpfs_flag(dst).is_err(), "--tmpfs {dst}");
    }
    // lxcfs' files, and what is below /sys and /dev, may be covered.
    for ok in ["/proc/meminfo", "/sys/fs/cgroup", "/dev/shm", "/data/proc"] {
        assert!(parse_volume_flag(&format!("/src:{ok}")).is_ok(), "{ok}");
    }
    assert_eq!(
        parse_volume_flag("/src:/a/./b/../c:ro").unwrap(),
        VolumeFlag {
            source: VolumeSource::Host("/src".into()),
            destination: "/a/c".into(),
            read_only: true,
            nocopy: false,
        }
    );
}

#[cfg(target_os = "linux")]
mod ports {
    use berth_runtime::network::ports::{Protocol, parse_publish};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(super::config())]

        #[test]
        fn publish_specs_never_panic(s in "\\PC{0,40}") {
            let _ = parse_publish(&s);
        }

        #[test]
        fn valid_publish_specs_map_every_port(
            ip in prop_oneof![Just(None), Just(Some("127.0.0.1")), Just(Some("[::1]"))],
            host in 1u16..60000,
            ctr in 1u16..60000,
            len in 0u16..5,
            udp in any::<bool>(),
        ) {
            let range = |start: u16| {
                if len == 0 { start.to_string() } else { format!("{start}-{}", start + len) }
            };
            let mut spec = ip.map(|i| format!("{i}:")).unwrap_or_default();
            spec.push_str(&format!("{}:{}", range(host), range(ctr)));
            if udp {
                spec.push_str("/udp");
            }
            let maps = parse_publish(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(maps.len(), usize::from(len) + 1);
            for (i, m) in maps.iter().enumerate() {
                prop_assert_eq!(m.host_port, host + i as u16);
                prop_assert_eq!(m.container_port, ctr + i as u16);
                prop_assert_eq!(m.protocol, if udp { Protocol::Udp } else { Protocol::Tcp });
            }
        }

        #[test]
        fn out_of_range_ports_are_refused(port in 65536u32..1_000_000) {
            let (host, ctr) = (format!("{port}:80"), format!("80:{port}"));
            prop_assert!(parse_publish(&host).is_err());
            prop_assert!(parse_publish(&ctr).is_err());
            prop_assert!(parse_publish("8000:0").is_err());
        }
    }
}
