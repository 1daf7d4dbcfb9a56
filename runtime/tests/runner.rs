//! Both runners run a workload over a plain folder with no container monitor, record or store:
//! the seam `serve` and the containerd shim build on. Runs as root (namespaces, cgroups).
//!
//! A custom main, not libtest's: the native runner forks the container's init straight from
//! this process only while it is single-threaded (see `container::spawn`), as a monitor is.
//! When it cannot fork, it execs its own binary as `__init`: this binary then plays berth's
//! part (see the top of `main`).

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::backend::Backend;
use berth_runtime::sandbox::linux::runner::NativeRunner;
use berth_runtime::sandbox::wasi::runner::WasiRunner;
use berth_runtime::workload::{MountKind, MountSpec, Runner, Workload, WorkloadSpec};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__init") {
        let fd = |i: usize| args.get(i).and_then(|a| a.parse().ok());
        berth_runtime::sandbox::linux::init::main(
            Path::new(&args[2]),
            fd(3).expect("status fd"),
            fd(4).expect("monitor pid"),
            fd(5),
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let probe = build_probe(tmp.path());
    native_workload_runs_and_reports_its_code(tmp.path());
    wasi_workload_runs_in_process(tmp.path(), &probe);
    wasi_workload_runs_in_namespaces(tmp.path(), &probe);
    start_failures_have_dockers_codes(tmp.path());
    println!("runner: 4 tests passed");
}

/// `tests/guests/probe.rs` for wasm32-wasip1.
fn build_probe(tmp: &Path) -> PathBuf {
    let out = tmp.join("probe.wasm");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/guests/probe.rs");
    let status = Command::new("rustc")
        .args([
            "--edition",
            "2021",
            "--target",
            "wasm32-wasip1",
            "-C",
            "opt-level=1",
        ])
        .args(["-C", "debuginfo=0", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run rustc");
    assert!(
        status.success(),
        "building the probe failed: run the tests through tests/run.sh, which adds the target"
    );
    out
}

/// A folder with busybox as its only program, and a host folder mounted at /out.
fn busybox_rootfs(tmp: &Path, name: &str) -> (PathBuf, PathBuf) {
    let root = tmp.join(name);
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox-static is installed (tests/run.sh installs it)");
    let out = tmp.join(format!("{name}-out"));
    std::fs::create_dir_all(&out).unwrap();
    (root, out)
}

fn spec(args: &[&str], backend: Backend, out: &Path) -> WorkloadSpec {
    WorkloadSpec {
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: "/".into(),
        mounts: vec![MountSpec {
            kind: MountKind::Bind,
            source: out.to_path_buf(),
            destination: "/out".into(),
            read_only: false,
            volume: None,
            populate: false,
        }],
        backend,
        ..WorkloadSpec::default()
    }
}

fn native_runner(tmp: &Path) -> NativeRunner {
    let scratch = tmp.join("scratch");
    let run_root = tmp.join("run");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::create_dir_all(&run_root).unwrap();
    NativeRunner::new(&scratch, &run_root)
}

fn id(name: &str) -> String {
    format!("berth-runner-test-{name}-{}", std::process::id())
}

fn native_workload_runs_and_reports_its_code(tmp: &Path) {
    let (root, out) = busybox_rootfs(tmp, "native");
    let spec = spec(
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "echo \"pid $$ in $(/bin/busybox hostname)\" > /out/said; /bin/busybox touch /mine; exit 3",
        ],
        Backend::Native,
        &out,
    );
    let id = id("native");
    let code = native_runner(tmp).run(&Workload {
        id: &id,
        spec: &spec,
        rootfs: &root,
    });
    assert_eq!(code, Ok(3));
    // PID 1 of its own pid namespace; its writes to `/` went to the run's writable layer.
    let said = std::fs::read_to_string(out.join("said")).unwrap();
    assert!(said.starts_with("pid 1 in "), "{said}");
    assert!(!root.join("mine").exists());
    assert!(
        !tmp.join("scratch").join(&id).exists(),
        "the run's scratch folder is removed"
    );
}

fn wasi_workload_runs_in_process(tmp: &Path, probe: &Path) {
    let root = tmp.join("wasi");
    let out = tmp.join("wasi-out");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(probe, root.join("probe.wasm")).unwrap();
    let runner = WasiRunner::new(None).unwrap();
    assert_eq!(runner.backend(), Backend::Wasi);
    let write = spec(
        &["/probe.wasm", "write", "/out/said", "from the guest"],
        Backend::Wasi,
        &out,
    );
    let run = |spec: &WorkloadSpec| {
        runner.run(&Workload {
            id: "wasi",
            spec,
            rootfs: &root,
        })
    };
    assert_eq!(run(&write), Ok(0));
    assert_eq!(
        std::fs::read_to_string(out.join("said")).unwrap(),
        "from the guest"
    );
    assert_eq!(
        run(&spec(&["/probe.wasm", "exit", "7"], Backend::Wasi, &out)),
        Ok(7)
    );
}

fn wasi_workload_runs_in_namespaces(tmp: &Path, probe: &Path) {
    let root = tmp.join("wasi-ns");
    let out = tmp.join("wasi-ns-out");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::copy(probe, root.join("probe.wasm")).unwrap();
    let spec = spec(
        &["/probe.wasm", "write", "/out/said", "guest in a container"],
        Backend::Wasi,
        &out,
    );
    let id = id("wasi");
    let code = native_runner(tmp).run(&Workload {
        id: &id,
        spec: &spec,
        rootfs: &root,
    });
    assert_eq!(code, Ok(0));
    assert_eq!(
        std::fs::read_to_string(out.join("said")).unwrap(),
        "guest in a container"
    );
}

fn start_failures_have_dockers_codes(tmp: &Path) {
    let (root, out) = busybox_rootfs(tmp, "failures");
    let missing = spec(&["/bin/nope"], Backend::Native, &out);
    let id = id("missing");
    let e = native_runner(tmp)
        .run(&Workload {
            id: &id,
            spec: &missing,
            rootfs: &root,
        })
        .unwrap_err();
    assert_eq!(e.code(), 127, "{e}");
    assert!(e.message.contains("/bin/nope"), "{e}");
    // A native program given to the WASI runner cannot run there.
    let native = spec(&["/bin/busybox", "true"], Backend::Wasi, &out);
    let e = WasiRunner::new(None)
        .unwrap()
        .run(&Workload {
            id: "not-wasm",
            spec: &native,
            rootfs: &root,
        })
        .unwrap_err();
    assert_eq!(e.code(), 126, "{e}");
    assert!(e.message.contains("not a WebAssembly module"), "{e}");
}
