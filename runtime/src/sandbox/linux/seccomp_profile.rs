//! A runtime spec's own seccomp profile (`linux.seccomp` in a bundle's `config.json`: what
//! containerd's `--seccomp`, a Kubernetes `RuntimeDefault` or `Localhost` profile give a shim)
//! compiled into a [`Filter`], as runc compiles it through libseccomp.
//!
//! One BPF program cannot hold several actions in seccompiler, so the profile becomes several,
//! and the kernel answers a syscall with the most restrictive of their answers: one program
//! for the default action (a syscall some rule names, with its arguments, is allowed there; any
//! other gets the default), and one for each other action (a syscall its rules name gets it;
//! any other is allowed). A syscall named by an `ALLOW` rule is so allowed; one named by an
//! `ERRNO(38)` rule gets ENOSYS, as glibc's clone3 fallback needs. Syscall names this
//! architecture does not have are skipped, as libseccomp skips them.

use std::collections::BTreeMap;
use std::str::FromStr;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator, LinuxSyscall};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::seccomp::{Filter, SeccompError};

/// What a rule or the default does, as seccompiler says it.
fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: u32,
) -> Result<SeccompAction, SeccompError> {
    let errno = errno.unwrap_or(default_errno);
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Compile(
                "the profile's SCMP_ACT_NOTIFY needs a seccomp agent, which berth does not run: use another action".into(),
            ));
        }
    })
}

/// The rules of one syscall entry, any of which matches: its argument comparisons, all of which
/// must hold (`None`: it has none, and matches whatever the arguments). Comparisons of one
/// argument more than once are each a rule of their own, as runc makes them (libseccomp
/// cannot AND them).
fn rules(entry: &LinuxSyscall) -> Result<Vec<Option<SeccompRule>>, SeccompError> {
    let bad = |e: seccompiler::BackendError| SeccompError::Compile(e.to_string());
    let mut conditions = Vec::new();
    for arg in entry.args().iter().flatten() {
        let index = u8::try_from(arg.index())
            .ok()
            .filter(|i| *i < 6)
            .ok_or_else(|| {
                SeccompError::Compile(format!(
                    "argument index {} of {:?}: a syscall has arguments 0 to 5",
                    arg.index(),
                    entry.names()
                ))
            })?;
        let (op, value) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
            LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
            LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
            LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
            LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
            LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
            // (arg & value) == valueTwo
            LinuxSeccompOperator::ScmpCmpMaskedEq => (
                SeccompCmpOp::MaskedEq(arg.value()),
                arg.value_two().unwrap_or(0),
            ),
        };
        conditions
            .push(SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(bad)?);
    }
    if conditions.is_empty() {
        return Ok(vec![None]);
    }
    let indexes: Vec<usize> = entry.args().iter().flatten().map(|a| a.index()).collect();
    let repeated = indexes
        .iter()
        .enumerate()
        .any(|(i, x)| indexes[..i].contains(x));
    if repeated {
        conditions
            .into_iter()
            .map(|c| SeccompRule::new(vec![c]).map(Some).map_err(bad))
            .collect()
    } else {
        Ok(vec![Some(SeccompRule::new(conditions).map_err(bad)?)])
    }
}

/// Syscalls and when they match: `None`, whatever the arguments; else when one rule holds.
#[derive(Default)]
struct Matches(BTreeMap<i64, Option<Vec<SeccompRule>>>);

impl Matches {
    fn add(&mut self, nr: i64, rule: &Option<SeccompRule>) {
        let entry = self.0.entry(nr).or_insert_with(|| Some(Vec::new()));
        match (entry.as_mut(), rule) {
            (Some(rules), Some(r)) => rules.push(r.clone()),
            // Unconditional: it matches whatever other rules say.
            (Some(_), None) => *entry = None,
            (None, _) => {}
        }
    }

    /// As seccompiler takes them: no rule means a match whatever the arguments.
    fn into_rules(self) -> BTreeMap<i64, Vec<SeccompRule>> {
        self.0
            .into_iter()
            .map(|(nr, rules)| (nr, rules.unwrap_or_default()))
            .collect()
    }
}

/// This architecture's number of syscall `name`, if it has one.
fn number(name: &str) -> Option<i64> {
    syscalls::Sysno::from_str(name).ok().map(|s| s.id() as i64)
}

/// Compiles `profile` for this architecture.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let arch_name = std::env::consts::ARCH;
    let arch = TargetArch::try_from(arch_name)
        .map_err(|_| SeccompError::UnsupportedArch(arch_name.to_string()))?;
    let default_errno = profile.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let default = action(profile.default_action(), None, default_errno)?;
    // Every rule of the profile (for the default's program), and the rules of each action.
    let mut named = Matches::default();
    let mut by_action: Vec<(SeccompAction, Matches)> = Vec::new();
    for entry in profile.syscalls().iter().flatten() {
        let act = action(entry.action(), entry.errno_ret(), libc::EPERM as u32)?;
        // What the default does anyway needs no rule (runc skips them too): as a rule of the
        // default's program it would allow the syscall.
        if act == default {
            continue;
        }
        let rs = rules(entry)?;
        for nr in entry.names().iter().filter_map(|n| number(n)) {
            for r in &rs {
                named.add(nr, r);
            }
            if act == SeccompAction::Allow {
                continue;
            }
            let i = match by_action.iter().position(|(a, _)| *a == act) {
                Some(i) => i,
                None => {
                    by_action.push((act.clone(), Matches::default()));
                    by_action.len() - 1
                }
            };
            for r in &rs {
                by_action[i].1.add(nr, r);
            }
        }
    }
    let program = |rules: Matches, mismatch, on_match| {
        SeccompFilter::new(rules.into_rules(), mismatch, on_match, arch)
            .and_then(BpfProgram::try_from)
            .map_err(|e| SeccompError::Compile(e.to_string()))
    };
    let mut programs = Vec::new();
    if default != SeccompAction::Allow {
        programs.push(program(named, default.clone(), SeccompAction::Allow)?);
    }
    for (act, rules) in by_action {
        programs.push(program(rules, SeccompAction::Allow, act)?);
    }
    if !programs.is_empty()
        && let Some(guard) = super::seccomp::x32_guard(arch)
    {
        programs.push(guard);
    }
    Ok(Filter::of(programs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_allow_list_and_its_exceptions_become_one_program_per_action() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["read","write","no_such_call"],"action":"SCMP_ACT_ALLOW"},
                {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        );
        let f = compile(&p).unwrap();
        assert_eq!(f.programs(), 2 + x32());
        // Allow by default: only the exception's program.
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
        );
        assert_eq!(compile(&p).unwrap().programs(), 1 + x32());
        // A rule that does what the default does adds nothing (it must not allow the call).
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert_eq!(compile(&p).unwrap().programs(), 1 + x32());
        // Nothing refused: no program at all.
        let p = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        assert_eq!(compile(&p).unwrap().programs(), 0);
    }

    /// Runs `sh -c script` under `profile` in a child; its stdout and stderr.
    fn run_under(profile: &LinuxSeccomp, script: &str) -> String {
        use std::os::unix::process::CommandExt;
        let filter = compile(profile).unwrap();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", script]);
        // SAFETY: (test only) prctl and seccomp syscalls, no allocation, no locks.
        unsafe {
            cmd.pre_exec(move || {
                super::super::seccomp::set_no_new_privs()
                    .map_err(|_| std::io::Error::last_os_error())?;
                super::super::seccomp::install(&filter)
                    .map_err(|_| std::io::Error::from_raw_os_error(libc::EPROTO))
            })
        };
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    #[test]
    fn comparisons_of_one_argument_are_alternatives_and_the_filter_holds() {
        let dir = tempfile::tempdir().unwrap();
        // mkdir with mode 0700 or 0750 is refused with EACCES (mode is mkdir's argument 1 and
        // mkdirat's 2); any other mode, and every other call, goes on.
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[
                  {"index":1,"value":448,"op":"SCMP_CMP_EQ"},{"index":1,"value":488,"op":"SCMP_CMP_EQ"}]},
                {"names":["mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[
                  {"index":2,"value":448,"op":"SCMP_CMP_EQ"},{"index":2,"value":488,"op":"SCMP_CMP_EQ"}]},
                {"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let d = dir.path().display();
        let out = run_under(
            &p,
            &format!("mkdir -m 700 {d}/a; mkdir -m 750 {d}/b; mkdir -m 755 {d}/c && echo made-c"),
        );
        assert_eq!(out.matches("Permission denied").count(), 2, "{out}");
        assert!(out.contains("made-c"), "{out}");
    }

    /// The x32 guard's program, on x86_64.
    fn x32() -> usize {
        usize::from(cfg!(target_arch = "x86_64"))
    }

    #[test]
    fn what_berth_cannot_do_is_refused_with_the_reason() {
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("seccomp agent"), "{e}");
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","args":[{"index":9,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("arguments 0 to 5"), "{e}");
    }
}
