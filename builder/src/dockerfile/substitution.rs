//! Which instruction fields take variable substitution, and applying it.
//!
//! Mirrors BuildKit: `FROM` image and `--platform`; `ENV`/`LABEL` keys and values; `ARG`
//! names and defaults; `ADD`/`COPY` sources, destination, `--chown`, `--chmod` (and ADD's
//! `--checksum`), plus the content of unquoted heredoc sources; `EXPOSE` (which may split
//! into several ports); `STOPSIGNAL`, `USER`, `VOLUME`, `WORKDIR`; and `RUN --mount` option
//! values. Never `COPY --from` ("COPY --from takes no variables"), nor the bodies of `RUN`,
//! `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK`, `ONBUILD` or `MAINTAINER`: those go to a
//! shell or are stored as written.
//!
//! Which variables are in scope is the caller's business: BuildKit expands `FROM` with the
//! ARGs declared before the first `FROM` only, and other instructions with the stage's ARGs
//! and ENV.

use super::error::ExpandError;
use super::expand::{Env, expand_heredoc, expand_word, expand_words};
use super::instruction::{ArgDecl, CopySource, CopySpec, Instruction, InstructionKind, Mount};

impl Instruction {
    /// A copy with variables substituted in the fields BuildKit expands.
    ///
    /// Every field sees `env` as it was before this instruction: within one line
    /// `ENV a=bye b=$a` gives `b` the *old* value of `a`. The builder applies the
    /// instruction's own effects (new ENV and ARG values) afterwards.
    pub fn expand<E: Env + ?Sized>(
        &self,
        env: &E,
        escape: char,
    ) -> Result<Instruction, ExpandError> {
        Ok(Instruction {
            line: self.line,
            end_line: self.end_line,
            original: self.original.clone(),
            kind: self.kind.expand(env, escape)?,
        })
    }
}

impl InstructionKind {
    /// Whether the instruction takes any variable substitution (for `RUN`, only its mounts).
    pub fn allows_expansion(&self) -> bool {
        matches!(
            self,
            InstructionKind::From { .. }
                | InstructionKind::Run { .. }
                | InstructionKind::Env(_)
                | InstructionKind::Label(_)
                | InstructionKind::Arg(_)
                | InstructionKind::Add(_)
                | InstructionKind::Copy(_)
                | InstructionKind::Expose(_)
                | InstructionKind::Stopsignal(_)
                | InstructionKind::User(_)
                | InstructionKind::Volume(_)
                | InstructionKind::Workdir(_)
        )
    }

    /// A copy with variables substituted; see [`Instruction::expand`].
    pub fn expand<E: Env + ?Sized>(
        &self,
        env: &E,
        escape: char,
    ) -> Result<InstructionKind, ExpandError> {
        let word = |w: &String| expand_word(w, env, escape);
        let opt = |w: &Option<String>| w.as_ref().map(word).transpose();
        let pairs = |pairs: &[(String, String)]| -> Result<Vec<(String, String)>, ExpandError> {
            pairs
                .iter()
                .map(|(k, v)| Ok((word(k)?, word(v)?)))
                .collect()
        };
        let list = |items: &[String]| -> Result<Vec<String>, ExpandError> {
            items.iter().map(word).collect()
        };
        let copy = |spec: &CopySpec| -> Result<CopySpec, ExpandError> {
            let sources = spec
                .sources
                .iter()
                .map(|source| match source {
                    CopySource::Path(path) => Ok(CopySource::Path(word(path)?)),
                    CopySource::Heredoc(heredoc) if heredoc.expand => {
                        let mut heredoc = heredoc.clone();
                        heredoc.content = expand_heredoc(&heredoc.content, env)?;
                        Ok(CopySource::Heredoc(heredoc))
                    }
                    CopySource::Heredoc(_) => Ok(source.clone()),
                })
                .collect::<Result<_, ExpandError>>()?;
            Ok(CopySpec {
                sources,
                dest: word(&spec.dest)?,
                chown: opt(&spec.chown)?,
                chmod: opt(&spec.chmod)?,
                checksum: opt(&spec.checksum)?,
                ..spec.clone()
            })
        };
        Ok(match self {
            InstructionKind::From {
                image,
                name,
                platform,
            } => InstructionKind::From {
                image: word(image)?,
                name: name.clone(),
                platform: opt(platform)?,
            },
            InstructionKind::Run {
                mounts,
                network,
                security,
                command,
                heredocs,
            } => InstructionKind::Run {
                mounts: mounts
                    .iter()
                    .map(|m| expand_mount(m, env, escape))
                    .collect::<Result<_, _>>()?,
                network: *network,
                security: *security,
                command: command.clone(),
                heredocs: heredocs.clone(),
            },
            InstructionKind::Env(env_pairs) => InstructionKind::Env(pairs(env_pairs)?),
            InstructionKind::Label(labels) => InstructionKind::Label(pairs(labels)?),
            InstructionKind::Arg(decls) => InstructionKind::Arg(
                decls
                    .iter()
                    .map(|d| {
                        Ok(ArgDecl {
                            name: word(&d.name)?,
                            default: opt(&d.default)?,
                        })
                    })
                    .collect::<Result<_, ExpandError>>()?,
            ),
            InstructionKind::Add(spec) => InstructionKind::Add(copy(spec)?),
            InstructionKind::Copy(spec) => InstructionKind::Copy(copy(spec)?),
            InstructionKind::Expose(ports) => {
                let mut expanded = Vec::new();
                for port in ports {
                    expanded.extend(expand_words(port, env, escape)?);
                }
                InstructionKind::Expose(expanded)
            }
            InstructionKind::Stopsignal(signal) => InstructionKind::Stopsignal(word(signal)?),
            InstructionKind::User(user) => InstructionKind::User(word(user)?),
            InstructionKind::Volume(volumes) => InstructionKind::Volume(list(volumes)?),
            InstructionKind::Workdir(dir) => InstructionKind::Workdir(word(dir)?),
            other => other.clone(),
        })
    }
}

fn expand_mount<E: Env + ?Sized>(
    mount: &Mount,
    env: &E,
    escape: char,
) -> Result<Mount, ExpandError> {
    let opt = |w: &Option<String>| w.as_ref().map(|w| expand_word(w, env, escape)).transpose();
    let expanded = Mount {
        target: opt(&mount.target)?,
        source: opt(&mount.source)?,
        from: opt(&mount.from)?,
        id: opt(&mount.id)?,
        sharing: opt(&mount.sharing)?,
        mode: opt(&mount.mode)?,
        uid: opt(&mount.uid)?,
        gid: opt(&mount.gid)?,
        size: opt(&mount.size)?,
        env: opt(&mount.env)?,
        ..mount.clone()
    };
    expanded
        .validate(false)
        .map_err(|message| ExpandError::new(format!("type={}", mount.kind.as_str()), message))?;
    Ok(expanded)
}
