//! Applying metadata instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME,
//! WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL, MAINTAINER) to an image config, as BuildKit's
//! dispatchers do. Used by `berth import --change` and by the build executor.

use std::collections::{BTreeMap, HashMap};

use berth_runtime::image::config::{HealthConfig, ImageConfig};

use crate::dockerfile::{self, Command, Healthcheck, Instruction, InstructionKind};

/// Docker's default shell for shell-form commands.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Why an instruction could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The text did not parse as an instruction.
    #[error(transparent)]
    Parse(#[from] dockerfile::ParseError),
    /// Substitution failed (`${V:?message}`).
    #[error(transparent)]
    Expand(#[from] dockerfile::ExpandError),
    /// The instruction changes files, not the config.
    #[error(
        "{0} cannot be applied as a config change (allowed: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL, HEALTHCHECK, SHELL, MAINTAINER)"
    )]
    NotAChange(String),
    /// A value is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// A config's environment as a map (for substitution) and where each variable's entry sits in
/// the config's `Env` list, so ENV replaces it in place without scanning the list: a build
/// keeps one beside its config, so a thousand ENV lines cost a thousand small steps.
#[derive(Debug, Clone, Default)]
pub struct EnvIndex {
    /// Name to value; the last entry of a name wins, as a process sees its environment.
    values: BTreeMap<String, String>,
    /// Name to the index of its first entry in the list, the one ENV replaces.
    slots: HashMap<String, usize>,
}

impl EnvIndex {
    /// The index of `config`'s environment.
    pub fn of(config: &ImageConfig) -> EnvIndex {
        let mut index = EnvIndex::default();
        let list = config.config.as_ref().and_then(|c| c.env.as_ref());
        for (slot, entry) in list.into_iter().flatten().enumerate() {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            index.slots.entry(name.to_string()).or_insert(slot);
            index.values.insert(name.to_string(), value.to_string());
        }
        index
    }

    /// The variables and their values.
    pub fn values(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    /// Sets `name` to `value` in `config` (replacing its entry, else adding one) and here.
    fn set(&mut self, config: &mut ImageConfig, name: &str, value: &str) {
        let list = config.run_config_mut().env.get_or_insert_with(Vec::new);
        let entry = format!("{name}={value}");
        match self.slots.get(name) {
            Some(&slot) if slot < list.len() => list[slot] = entry,
            _ => {
                self.slots.insert(name.to_string(), list.len());
                list.push(entry);
            }
        }
        self.values.insert(name.to_string(), value.to_string());
    }
}

/// An image config being edited instruction by instruction.
#[derive(Debug)]
pub struct ConfigEditor<'a> {
    config: &'a mut ImageConfig,
    /// Whether CMD was set since editing began: ENTRYPOINT resets an inherited CMD only.
    cmd_set: bool,
}

impl<'a> ConfigEditor<'a> {
    /// Starts editing `config`.
    pub fn new(config: &'a mut ImageConfig) -> Self {
        ConfigEditor {
            config,
            cmd_set: false,
        }
    }

    /// The config's environment as a lookup for substitution.
    pub fn env(&self) -> BTreeMap<String, String> {
        EnvIndex::of(self.config).values
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    fn argv(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    /// Parses one instruction (`CMD ["/bin/sh"]`) and applies it, as `docker import --change`.
    pub fn apply_text(&mut self, text: &str) -> Result<(), EditError> {
        // A Dockerfile must start with FROM; the change is its second line.
        let file = dockerfile::parse(&format!("FROM scratch\n{text}")).map_err(|mut e| {
            e.line = e.line.saturating_sub(1).max(1);
            e
        })?;
        for i in file.instructions.iter().skip(1) {
            self.apply(i, '\\', &BTreeMap::new())?;
        }
        Ok(())
    }

    /// Applies a metadata instruction; `args` are build args in scope (the config's ENV wins
    /// over an ARG of the same name).
    pub fn apply(
        &mut self,
        instr: &Instruction,
        escape: char,
        args: &BTreeMap<String, String>,
    ) -> Result<(), EditError> {
        let mut env = EnvIndex::of(self.config);
        let lookup = |k: &str| env.values.get(k).or_else(|| args.get(k)).cloned();
        let instr = instr.expand(&lookup, escape)?;
        self.apply_expanded(&instr, &mut env)
    }

    /// Applies a metadata instruction whose variables are already substituted; `env` is the
    /// index of the config's environment, kept up to date (a build keeps one per stage instead
    /// of rebuilding it for every instruction).
    pub fn apply_expanded(
        &mut self,
        instr: &Instruction,
        env: &mut EnvIndex,
    ) -> Result<(), EditError> {
        match &instr.kind {
            InstructionKind::Cmd(c) => {
                let argv = self.argv(c);
                self.config.run_config_mut().cmd = Some(argv);
                self.cmd_set = true;
            }
            InstructionKind::Entrypoint(c) => {
                let argv = self.argv(c);
                let cmd_set = self.cmd_set;
                let rc = self.config.run_config_mut();
                rc.entrypoint = Some(argv);
                if !cmd_set {
                    rc.cmd = None;
                }
            }
            InstructionKind::Env(pairs) => {
                for (k, v) in pairs {
                    env.set(self.config, k, v);
                }
            }
            InstructionKind::Expose(ports) => self.expose(ports)?,
            InstructionKind::Label(pairs) => {
                let labels = self
                    .config
                    .run_config_mut()
                    .labels
                    .get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs {
                    labels.insert(k.clone(), v.clone());
                }
            }
            InstructionKind::Maintainer(m) => self.config.author = Some(m.clone()),
            InstructionKind::Onbuild(inner) => {
                let text = inner.with_heredocs();
                self.config
                    .run_config_mut()
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(text);
            }
            InstructionKind::User(u) => self.config.run_config_mut().user = Some(u.clone()),
            InstructionKind::Volume(vs) => self.volume(vs)?,
            InstructionKind::Workdir(w) => {
                let rc = self.config.run_config_mut();
                let base = rc.working_dir.clone().unwrap_or_else(|| "/".into());
                rc.working_dir = Some(join_workdir(&base, w));
            }
            InstructionKind::Stopsignal(s) => {
                if !valid_signal(s) {
                    return Err(EditError::Invalid(format!(
                        "STOPSIGNAL {s:?} is not a signal: give a name such as SIGTERM or a number"
                    )));
                }
                self.config.run_config_mut().stop_signal = Some(s.clone());
            }
            InstructionKind::Healthcheck(h) => {
                self.config.run_config_mut().healthcheck = Some(health_config(h));
            }
            InstructionKind::Shell(v) => self.config.run_config_mut().shell = Some(v.clone()),
            other => return Err(EditError::NotAChange(other.keyword().to_string())),
        }
        Ok(())
    }

    /// EXPOSE: every port of every range, all checked before any is added.
    fn expose(&mut self, ports: &[String]) -> Result<(), EditError> {
        let mut keys = Vec::new();
        for p in ports {
            keys.extend(expand_port(p)?);
        }
        let rc = self.config.run_config_mut();
        let exposed = rc.exposed_ports.get_or_insert_with(BTreeMap::new);
        for k in keys {
            exposed.insert(k, serde_json::json!({}));
        }
        Ok(())
    }

    /// VOLUME: each path, in order; an empty one is refused.
    fn volume(&mut self, vs: &[String]) -> Result<(), EditError> {
        let rc = self.config.run_config_mut();
        let vols = rc.volumes.get_or_insert_with(BTreeMap::new);
        for v in vs {
            if v.trim().is_empty() {
                return Err(EditError::Invalid("VOLUME needs a non-empty path".into()));
            }
            vols.insert(v.clone(), serde_json::json!({}));
        }
        Ok(())
    }
}

/// The config's health check for HEALTHCHECK `h` (durations in nanoseconds, as Docker's).
fn health_config(h: &Healthcheck) -> HealthConfig {
    match h {
        Healthcheck::None => HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..HealthConfig::default()
        },
        Healthcheck::Cmd { command, options } => {
            let test = match command {
                Command::Exec(v) => std::iter::once("CMD".to_string())
                    .chain(v.iter().cloned())
                    .collect(),
                Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            };
            let ns = |d: Option<std::time::Duration>| d.map(|d| d.as_nanos() as i64);
            HealthConfig {
                test: Some(test),
                interval: ns(options.interval),
                timeout: ns(options.timeout),
                start_period: ns(options.start_period),
                start_interval: ns(options.start_interval),
                retries: options.retries.map(i64::from),
            }
        }
    }
}

/// `WORKDIR` relative to the previous one, cleaned.
pub fn join_workdir(base: &str, w: &str) -> String {
    let joined = if w.starts_with('/') {
        w.to_string()
    } else {
        format!("{base}/{w}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `8080`, `8080/udp`, `8000-8002/tcp` into `PORT/PROTO` keys.
fn expand_port(spec: &str) -> Result<Vec<String>, EditError> {
    let bad = || {
        EditError::Invalid(format!(
            "EXPOSE {spec:?}: expected PORT[-PORT][/tcp|udp|sctp]"
        ))
    };
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let lo: u16 = lo.parse().map_err(|_| bad())?;
    let hi: u16 = hi.parse().map_err(|_| bad())?;
    if lo > hi {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Whether `s` names a signal (SIGTERM, TERM, 15).
pub fn valid_signal(s: &str) -> bool {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    NAMES.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edited(changes: &[&str]) -> ImageConfig {
        let mut c = ImageConfig::default();
        let mut e = ConfigEditor::new(&mut c);
        for ch in changes {
            e.apply_text(ch).unwrap();
        }
        c
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = edited(&[r#"CMD ["/bin/sh"]"#]);
        assert_eq!(c.config.unwrap().cmd.unwrap(), vec!["/bin/sh"]);
        let c = edited(&["CMD echo hi"]);
        assert_eq!(
            c.config.unwrap().cmd.unwrap(),
            vec!["/bin/sh", "-c", "echo hi"]
        );
        let c = edited(&[r#"SHELL ["/bin/bash", "-ec"]"#, "ENTRYPOINT run"]);
        assert_eq!(
            c.config.unwrap().entrypoint.unwrap(),
            vec!["/bin/bash", "-ec", "run"]
        );
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_only() {
        let mut c = ImageConfig::default();
        c.run_config_mut().cmd = Some(vec!["old".into()]);
        ConfigEditor::new(&mut c)
            .apply_text(r#"ENTRYPOINT ["/e"]"#)
            .unwrap();
        assert_eq!(c.config.as_ref().unwrap().cmd, None);
        let c = edited(&[r#"CMD ["c"]"#, r#"ENTRYPOINT ["/e"]"#]);
        assert_eq!(c.config.unwrap().cmd.unwrap(), vec!["c"]);
    }

    #[test]
    fn env_sees_values_from_before_the_line() {
        let c = edited(&["ENV a=hello", "ENV a=bye b=$a"]);
        let env = c.config.unwrap().env.unwrap();
        assert_eq!(env, vec!["a=bye", "b=hello"]);
    }

    #[test]
    fn workdir_expose_label_volume_stopsignal() {
        let c = edited(&[
            "WORKDIR /app",
            "WORKDIR sub/../src",
            "EXPOSE 80 53/udp 8000-8001",
            "LABEL a=b \"c d\"=e",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
            "USER nobody",
        ]);
        let rc = c.config.unwrap();
        assert_eq!(rc.working_dir.as_deref(), Some("/app/src"));
        let ports: Vec<_> = rc.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        assert_eq!(rc.labels.unwrap().get("c d").map(String::as_str), Some("e"));
        assert!(rc.volumes.unwrap().contains_key("/data"));
        assert_eq!(rc.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(rc.user.as_deref(), Some("nobody"));
    }

    #[test]
    fn refuses_what_is_not_a_change() {
        let mut c = ImageConfig::default();
        let e = ConfigEditor::new(&mut c)
            .apply_text("RUN true")
            .unwrap_err();
        assert!(e.to_string().contains("RUN cannot be applied"), "{e}");
        let e = ConfigEditor::new(&mut c)
            .apply_text("STOPSIGNAL NOPE")
            .unwrap_err();
        assert!(e.to_string().contains("not a signal"), "{e}");
    }
}
