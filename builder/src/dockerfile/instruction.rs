//! The typed syntax tree: one [`Instruction`] per logical line.
//!
//! Values are kept raw, as written (quotes included); [`Instruction::expand`] performs
//! variable substitution and quote removal on the fields BuildKit expands.

use std::time::Duration;

/// One Dockerfile instruction with its source location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// 1-based line where it ends, continuation lines and heredoc bodies included.
    pub end_line: usize,
    /// The logical source text (continuations joined, trimmed, heredoc bodies excluded),
    /// for build output and cache keys.
    pub original: String,
    /// What the instruction says.
    pub kind: InstructionKind,
}

impl Instruction {
    /// The instruction as it could be written back: [`Instruction::original`] followed by
    /// each heredoc body and terminator.
    ///
    /// This is what BuildKit stores for an `ONBUILD` trigger, and what a cache key needs
    /// (`original` alone leaves heredoc bodies out).
    pub fn with_heredocs(&self) -> String {
        let mut text = self.original.clone();
        for heredoc in self.kind.heredocs() {
            text.push('\n');
            text.push_str(&heredoc.content);
            text.push_str(&heredoc.name);
        }
        text
    }
}

/// The instruction proper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    /// `FROM [--platform=P] IMAGE [AS name]`.
    From {
        /// Base image reference or earlier stage name.
        image: String,
        /// Stage name after `AS`, lowercased.
        name: Option<String>,
        /// `--platform` value.
        platform: Option<String>,
    },
    /// `RUN [--mount=...] [--network=...] [--security=...] command`.
    Run {
        /// `--mount` flags in order.
        mounts: Vec<Mount>,
        /// `--network`.
        network: Option<NetworkMode>,
        /// `--security`.
        security: Option<SecurityMode>,
        /// The command to run.
        command: Command,
        /// Heredocs opened on the command line, in order (shell form only).
        heredocs: Vec<Heredoc>,
    },
    /// `CMD`.
    Cmd(Command),
    /// `ENTRYPOINT`.
    Entrypoint(Command),
    /// `SHELL ["executable", "parameters"]` (JSON form only).
    Shell(Vec<String>),
    /// `LABEL k=v ...` or legacy `LABEL k v`.
    Label(Vec<(String, String)>),
    /// `MAINTAINER name` (deprecated).
    Maintainer(String),
    /// `EXPOSE port[/proto] ...`.
    Expose(Vec<String>),
    /// `ENV k=v ...` or legacy `ENV k v with spaces`.
    Env(Vec<(String, String)>),
    /// `ADD`.
    Add(CopySpec),
    /// `COPY`.
    Copy(CopySpec),
    /// `VOLUME /a /b` or `VOLUME ["/a", "/b"]`.
    Volume(Vec<String>),
    /// `USER user[:group]`.
    User(String),
    /// `WORKDIR path`.
    Workdir(String),
    /// `ARG name[=default] ...`.
    Arg(Vec<ArgDecl>),
    /// `ONBUILD instruction` (any instruction but ONBUILD, FROM and MAINTAINER).
    Onbuild(Box<Instruction>),
    /// `STOPSIGNAL signal`.
    Stopsignal(String),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`.
    Healthcheck(Healthcheck),
}

/// How a command is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// JSON form: argv, run without a shell.
    Exec(Vec<String>),
    /// Shell form: text handed to the shell as is (no escape processing).
    Shell(String),
}

/// A heredoc: `<<EOF` on the instruction line and the lines up to `EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// File descriptor written before `<<` (`3<<EOF`), if any.
    pub fd: Option<u32>,
    /// Whether the content takes variable substitution (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the content and the terminator.
    pub chomp: bool,
    /// The body verbatim, line endings included (leading tabs removed when `chomp`).
    pub content: String,
}

/// Arguments and flags shared by `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopySpec {
    /// Sources in order: paths (raw) or inline heredoc files.
    pub sources: Vec<CopySource>,
    /// Destination path (raw).
    pub dest: String,
    /// `--from` stage, image or context (COPY only; never expanded).
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents` (COPY only).
    pub parents: bool,
    /// `--exclude` patterns (repeatable).
    pub exclude: Vec<String>,
    /// `--checksum` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack` (ADD only); `None` means the default (unpack local archives).
    pub unpack: Option<bool>,
}

/// One source of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path, glob or URL (raw).
    Path(String),
    /// An inline file from a heredoc; its name is the heredoc delimiter.
    Heredoc(Heredoc),
}

/// `name[=default]` in an `ARG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    /// Variable name (raw).
    pub name: String,
    /// Default value (raw), if given.
    pub default: Option<String>,
}

/// A `RUN --mount`.
///
/// String values are raw (they may hold variables, expanded by [`Instruction::expand`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=`, bind by default.
    pub kind: MountKind,
    /// `target=`, `dst=`, `destination=`.
    pub target: Option<String>,
    /// `source=`, `src=`.
    pub source: Option<String>,
    /// `from=`: stage, image or context to mount from.
    pub from: Option<String>,
    /// `id=`: cache, secret or ssh id.
    pub id: Option<String>,
    /// `sharing=`: `shared`, `private` or `locked` (cache mounts).
    pub sharing: Option<String>,
    /// `mode=`: octal file mode.
    pub mode: Option<String>,
    /// `uid=`.
    pub uid: Option<String>,
    /// `gid=`.
    pub gid: Option<String>,
    /// `size=` (tmpfs mounts).
    pub size: Option<String>,
    /// `env=`: environment variable to expose a secret as.
    pub env: Option<String>,
    /// `readonly`/`ro` (or not `readwrite`/`rw`); defaults to true except for cache and tmpfs.
    pub readonly: bool,
    /// `required` (secret and ssh mounts).
    pub required: bool,
}

/// The `type=` of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// Bind-mount from the context, a stage or an image.
    Bind,
    /// Persistent cache directory.
    Cache,
    /// Build secret.
    Secret,
    /// SSH agent socket.
    Ssh,
    /// Empty tmpfs.
    Tmpfs,
}

impl MountKind {
    /// The `type=` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// `default`.
    Default,
    /// `none`.
    None,
    /// `host`.
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityMode {
    /// `insecure`.
    Insecure,
    /// `sandbox`.
    Sandbox,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD command`.
    Cmd {
        /// The probe.
        command: Command,
        /// Timing options; `None` means the default.
        options: HealthcheckOptions,
    },
}

/// `HEALTHCHECK` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HealthcheckOptions {
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries` (at least 1).
    pub retries: Option<u32>,
}

impl InstructionKind {
    /// The instruction keyword, uppercase.
    pub fn keyword(&self) -> &'static str {
        match self {
            InstructionKind::From { .. } => "FROM",
            InstructionKind::Run { .. } => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Maintainer(_) => "MAINTAINER",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::User(_) => "USER",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Onbuild(_) => "ONBUILD",
            InstructionKind::Stopsignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
        }
    }

    /// Heredocs of this instruction in source order (looking inside `ONBUILD`).
    pub fn heredocs(&self) -> Vec<&Heredoc> {
        match self {
            InstructionKind::Run { heredocs, .. } => heredocs.iter().collect(),
            InstructionKind::Add(spec) | InstructionKind::Copy(spec) => spec
                .sources
                .iter()
                .filter_map(|s| match s {
                    CopySource::Heredoc(h) => Some(h),
                    CopySource::Path(_) => None,
                })
                .collect(),
            InstructionKind::Onbuild(inner) => inner.kind.heredocs(),
            _ => Vec::new(),
        }
    }

    /// Mutable access to the heredocs, in the order of [`InstructionKind::heredocs`].
    pub(crate) fn heredocs_mut(&mut self) -> Vec<&mut Heredoc> {
        match self {
            InstructionKind::Run { heredocs, .. } => heredocs.iter_mut().collect(),
            InstructionKind::Add(spec) | InstructionKind::Copy(spec) => spec
                .sources
                .iter_mut()
                .filter_map(|s| match s {
                    CopySource::Heredoc(h) => Some(h),
                    CopySource::Path(_) => None,
                })
                .collect(),
            InstructionKind::Onbuild(inner) => inner.kind.heredocs_mut(),
            _ => Vec::new(),
        }
    }
}

/// All instruction keywords, for suggestions.
pub(crate) const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];
