//! End-to-end: the command-line frame: version, info, completion, help with examples,
//! global options.

mod common;

use common::Berth;

#[test]
fn version_and_info() {
    let b = Berth::new();
    assert!(b.ok(&["version"]).contains(env!("CARGO_PKG_VERSION")));
    let v: serde_json::Value =
        serde_json::from_str(&b.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        b.ok(&["--version"]).trim(),
        format!("berth {}", env!("CARGO_PKG_VERSION"))
    );

    b.import_busybox("busybox");
    let info: serde_json::Value =
        serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(info["Root"], b.root().display().to_string());
    assert_eq!(info["Images"], 1);
    assert_eq!(info["Snapshots"], 1);
    assert!(
        info["CgroupVersion"]
            .as_str()
            .unwrap()
            .starts_with(['1', '2']),
        "{info}"
    );
    let text = b.ok(&["info"]);
    assert!(
        text.contains("Cgroup version:") && text.contains("Backends:"),
        "{text}"
    );
}

#[test]
fn root_flag_beats_the_environment() {
    let b = Berth::new();
    let other = b.path("other-root");
    let out = b
        .cmd(&[
            "--root",
            other.to_str().unwrap(),
            "info",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Root"], other.display().to_string());
    assert!(
        other.join("oci-layout").is_file(),
        "the root is an OCI layout"
    );
    assert!(other.join("index.json").is_file());
}

#[test]
fn completions_for_each_shell() {
    let b = Berth::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = b.ok(&["completion", shell]);
        assert!(
            script.contains("berth") && script.contains("images"),
            "{shell}"
        );
    }
    let (code, _) = b.fail(&["completion", "tcsh"]);
    assert_eq!(code, 125);
}

#[test]
fn every_command_has_help_with_an_example() {
    let b = Berth::new();
    let help = b.ok(&["--help"]);
    let commands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 11, "{commands:?}");
    for c in commands {
        let h = b.ok(&[&c, "--help"]);
        assert!(
            h.contains("Examples:\n  berth"),
            "berth {c} --help has no example:\n{h}"
        );
    }
}
