//! Logical lines to typed [`Instruction`]s.

use std::time::Duration;

use super::args::{self, Json, Word};
use super::document::Dockerfile;
use super::duration;
use super::error::ParseError;
use super::flags::{Flags, Kind, Spec};
use super::heredoc;
use super::instruction::{
    ArgDecl, Command, CopySource, CopySpec, Healthcheck, HealthcheckOptions, Instruction,
    InstructionKind, KEYWORDS, NetworkMode, SecurityMode,
};
use super::lexer::{Lexer, LogicalLine};
use super::mount;
use super::suggest;

/// The largest Dockerfile berth reads: 4 MiB.
///
/// Real Dockerfiles are kilobytes; data belongs in the context. Past this, a file of metadata
/// lines is only a way to make a build slow and its image config huge.
pub const MAX_DOCKERFILE_SIZE: usize = 4 << 20;

/// Parses a whole Dockerfile.
///
/// Fails on the first syntax error; the error carries the line and column. Only `ARG` may
/// come before the first `FROM`, and a file without instructions is an error, as is one over
/// [`MAX_DOCKERFILE_SIZE`].
pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    if source.len() > MAX_DOCKERFILE_SIZE {
        return Err(ParseError::new(1, 1, too_large(source.len())));
    }
    let mut lexer = Lexer::new(source);
    let mut instructions: Vec<Instruction> = Vec::new();
    let mut seen_from = false;
    while let Some(line) = lexer.next_line()? {
        let mut parser = LineParser {
            line: &line,
            escape: lexer.directives().escape,
            heredoc_offsets: Vec::new(),
        };
        let mut instruction = parser.instruction(0)?;
        let offsets = parser.heredoc_offsets;
        for (heredoc, offset) in instruction.kind.heredocs_mut().into_iter().zip(offsets) {
            let Some(content) = lexer.heredoc(&heredoc.name, heredoc.chomp) else {
                return Err(line.error(offset, format!("unterminated heredoc {:?}", heredoc.name)));
            };
            heredoc.content = if heredoc.chomp {
                heredoc::chomp(&content)
            } else {
                content
            };
        }
        instruction.end_line = lexer.line_number().max(line.end_line);
        if let InstructionKind::Onbuild(inner) = &mut instruction.kind {
            inner.end_line = instruction.end_line;
        }
        seen_from |= matches!(instruction.kind, InstructionKind::From { .. });
        if !seen_from && !matches!(instruction.kind, InstructionKind::Arg(_)) {
            return Err(line.error(
                0,
                format!(
                    "{} before the first FROM: only ARG may come before FROM",
                    instruction.kind.keyword()
                ),
            ));
        }
        instructions.push(instruction);
    }
    if instructions.is_empty() {
        return Err(ParseError::new(
            lexer.line_count().max(1),
            1,
            "file with no instructions",
        ));
    }
    Ok(Dockerfile {
        directives: lexer.directives().clone(),
        instructions,
    })
}

/// What is wrong with a Dockerfile of `size` bytes, and what to do.
pub fn too_large(size: usize) -> String {
    format!(
        "the Dockerfile is {size} bytes, over berth's limit of {MAX_DOCKERFILE_SIZE} bytes (4 MiB): keep data out of it (COPY files from the context instead)"
    )
}

/// An instruction's text cut into keyword, flags and arguments.
struct Parts<'t> {
    /// Uppercased keyword.
    keyword: String,
    keyword_offset: usize,
    flags: Vec<Word>,
    /// Arguments, trimmed.
    args: &'t str,
    args_offset: usize,
}

/// Parses the instruction(s) of one logical line.
struct LineParser<'l> {
    line: &'l LogicalLine,
    escape: char,
    /// Offsets of heredoc markers, in the order of [`InstructionKind::heredocs_mut`].
    heredoc_offsets: Vec<usize>,
}

const NO_FLAGS: &[Spec] = &[];

impl<'l> LineParser<'l> {
    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        self.line.error(offset, message)
    }

    /// An error about the arguments: at them, or at the keyword if there are none.
    fn args_error(&self, parts: &Parts<'_>, message: impl Into<String>) -> ParseError {
        let offset = if parts.args.is_empty() {
            parts.keyword_offset
        } else {
            parts.args_offset
        };
        self.error(offset, message)
    }

    fn flags(&self, parts: &Parts<'_>, specs: &[Spec]) -> Result<Flags, ParseError> {
        Flags::parse(&parts.flags, specs, self.line)
    }

    /// Parses the instruction starting at byte `start` of the line.
    fn instruction(&mut self, start: usize) -> Result<Instruction, ParseError> {
        let line: &'l LogicalLine = self.line;
        let text = &line.text[start..];
        let body = text.trim();
        let keyword_offset = start + (text.len() - text.trim_start().len());
        let (keyword, rest, rest_start) = args::split_first(body);
        let rest_offset = keyword_offset + rest_start;
        let (flags, args_start) = args::extract_flags(rest, rest_offset);
        let raw_args = &rest[args_start..];
        let args = raw_args.trim();
        let parts = Parts {
            keyword: keyword.to_ascii_uppercase(),
            keyword_offset,
            flags,
            args,
            args_offset: rest_offset + args_start + (raw_args.len() - raw_args.trim_start().len()),
        };
        let kind = match parts.keyword.as_str() {
            "FROM" => self.from(&parts)?,
            "RUN" => self.run(&parts)?,
            "CMD" => {
                self.flags(&parts, NO_FLAGS)?;
                InstructionKind::Cmd(self.command(&parts, parts.args, parts.args_offset)?)
            }
            "ENTRYPOINT" => {
                self.flags(&parts, NO_FLAGS)?;
                InstructionKind::Entrypoint(self.command(&parts, parts.args, parts.args_offset)?)
            }
            "SHELL" => self.shell(&parts)?,
            "LABEL" => InstructionKind::Label(self.name_values(&parts)?),
            "ENV" => InstructionKind::Env(self.name_values(&parts)?),
            "MAINTAINER" => InstructionKind::Maintainer(self.single(&parts)?),
            "USER" => InstructionKind::User(self.single(&parts)?),
            "WORKDIR" => InstructionKind::Workdir(self.single(&parts)?),
            "STOPSIGNAL" => InstructionKind::Stopsignal(self.single(&parts)?),
            "EXPOSE" => {
                self.flags(&parts, NO_FLAGS)?;
                let ports = args::split_whitespace(parts.args, parts.args_offset);
                if ports.is_empty() {
                    return Err(self.args_error(&parts, "EXPOSE requires at least one argument"));
                }
                InstructionKind::Expose(ports.into_iter().map(|w| w.text).collect())
            }
            "VOLUME" => self.volume(&parts)?,
            "COPY" => InstructionKind::Copy(self.copy(&parts, false)?),
            "ADD" => InstructionKind::Add(self.copy(&parts, true)?),
            "ARG" => self.arg(&parts)?,
            "ONBUILD" => self.onbuild(&parts)?,
            "HEALTHCHECK" => self.healthcheck(&parts)?,
            _ => {
                return Err(self.error(
                    keyword_offset,
                    suggest::with_hint(
                        format!("unknown instruction: {keyword}"),
                        keyword,
                        &KEYWORDS,
                    ),
                ));
            }
        };
        Ok(Instruction {
            line: line.start_line,
            end_line: line.end_line,
            original: body.to_string(),
            kind,
        })
    }

    fn from(&self, parts: &Parts<'_>) -> Result<InstructionKind, ParseError> {
        let flags = self.flags(parts, &[("platform", Kind::String)])?;
        let words = args::split_whitespace(parts.args, parts.args_offset);
        let name = match words.as_slice() {
            [_] => None,
            [_, as_, name] if as_.text.eq_ignore_ascii_case("as") => {
                let lower = name.text.to_lowercase();
                let valid = lower.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_lowercase()
                        || (i > 0 && (c.is_ascii_digit() || matches!(c, '-' | '_' | '.')))
                });
                if !valid {
                    return Err(self.error(
                        name.offset,
                        format!(
                            "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                            name.text
                        ),
                    ));
                }
                Some(lower)
            }
            _ => {
                return Err(self.args_error(
                    parts,
                    "FROM requires either one or three arguments: IMAGE [AS name]",
                ));
            }
        };
        Ok(InstructionKind::From {
            image: words[0].text.clone(),
            name,
            platform: flags.string("platform"),
        })
    }

    fn run(&mut self, parts: &Parts<'_>) -> Result<InstructionKind, ParseError> {
        let flags = self.flags(
            parts,
            &[
                ("mount", Kind::Strings),
                ("network", Kind::String),
                ("security", Kind::String),
            ],
        )?;
        let mounts = flags
            .strings("mount")
            .into_iter()
            .map(|(value, offset)| mount::parse(&value).map_err(|m| self.error(offset, m)))
            .collect::<Result<Vec<_>, _>>()?;
        let network = match flags.string_at("network") {
            None => None,
            Some((value, offset)) => Some(match value.as_str() {
                "default" => NetworkMode::Default,
                "none" => NetworkMode::None,
                "host" => NetworkMode::Host,
                _ => {
                    return Err(self.error(offset, format!("unsupported network mode {value:?}")));
                }
            }),
        };
        let security = match flags.string_at("security") {
            None => None,
            Some((value, offset)) => Some(match value.as_str() {
                "insecure" => SecurityMode::Insecure,
                "sandbox" => SecurityMode::Sandbox,
                _ => {
                    return Err(self.error(offset, format!("unsupported security mode {value:?}")));
                }
            }),
        };
        let command = self.command(parts, parts.args, parts.args_offset)?;
        let mut heredocs = Vec::new();
        if matches!(command, Command::Shell(_)) {
            for marker in heredoc::markers_in(parts.args) {
                self.heredoc_offsets.push(parts.args_offset + marker.offset);
                heredocs.push(marker.heredoc);
            }
        }
        Ok(InstructionKind::Run {
            mounts,
            network,
            security,
            command,
            heredocs,
        })
    }

    /// A command in JSON (exec) or shell form; JSON that is not an array of strings is
    /// shell form, unless it is an array holding non-strings.
    fn command(&self, parts: &Parts<'_>, text: &str, offset: usize) -> Result<Command, ParseError> {
        if text.is_empty() {
            return Err(self.args_error(
                parts,
                format!("{} requires at least one argument", parts.keyword),
            ));
        }
        match args::parse_json(text) {
            Json::Strings(argv) => Ok(Command::Exec(argv)),
            Json::NotStrings => Err(self.error(offset, NOT_STRINGS)),
            Json::Text => Ok(Command::Shell(text.to_string())),
        }
    }

    fn shell(&self, parts: &Parts<'_>) -> Result<InstructionKind, ParseError> {
        self.flags(parts, NO_FLAGS)?;
        match args::parse_json(parts.args) {
            Json::Strings(argv) if !argv.is_empty() => Ok(InstructionKind::Shell(argv)),
            Json::NotStrings => Err(self.error(parts.args_offset, NOT_STRINGS)),
            Json::Text if !parts.args.is_empty() => Err(self.error(
                parts.args_offset,
                "SHELL requires the arguments to be in JSON form",
            )),
            _ => Err(self.args_error(parts, "SHELL requires at least one argument")),
        }
    }

    /// `ENV`/`LABEL`: `k=v k2=v2` or legacy `k value with spaces` (BuildKit's parseNameVal).
    fn name_values(&self, parts: &Parts<'_>) -> Result<Vec<(String, String)>, ParseError> {
        self.flags(parts, NO_FLAGS)?;
        let keyword = &parts.keyword;
        let words = args::split_words(parts.args, self.escape);
        let Some(first) = words.first() else {
            return Err(self.args_error(parts, format!("{keyword} requires at least one argument")));
        };
        if !first.contains('=') {
            let (name, value, _) = args::split_first(parts.args);
            if value.is_empty() {
                return Err(self.args_error(
                    parts,
                    format!("{keyword} must have two arguments: {keyword} name value, or {keyword} name=value"),
                ));
            }
            return Ok(vec![(name.to_string(), value.to_string())]);
        }
        words
            .iter()
            .map(|word| match word.split_once('=') {
                Some(("", _)) => {
                    Err(self.args_error(parts, format!("{keyword} names can not be blank")))
                }
                Some((name, value)) => Ok((name.to_string(), value.to_string())),
                None => Err(self.args_error(
                    parts,
                    format!(
                        "syntax error - can't find = in {word:?}: must be of the form name=value"
                    ),
                )),
            })
            .collect()
    }

    /// Instructions taking the rest of the line as one argument.
    fn single(&self, parts: &Parts<'_>) -> Result<String, ParseError> {
        self.flags(parts, NO_FLAGS)?;
        if parts.args.is_empty() {
            return Err(self.args_error(
                parts,
                format!("{} requires exactly one argument", parts.keyword),
            ));
        }
        Ok(parts.args.to_string())
    }

    /// Arguments as a JSON array of strings or whitespace-separated words.
    fn list(&self, parts: &Parts<'_>) -> Result<(Vec<Word>, bool), ParseError> {
        match args::parse_json(parts.args) {
            Json::Strings(items) => Ok((
                items
                    .into_iter()
                    .map(|text| Word {
                        text,
                        offset: parts.args_offset,
                    })
                    .collect(),
                true,
            )),
            Json::NotStrings => Err(self.error(parts.args_offset, NOT_STRINGS)),
            Json::Text => Ok((args::split_whitespace(parts.args, parts.args_offset), false)),
        }
    }

    fn volume(&self, parts: &Parts<'_>) -> Result<InstructionKind, ParseError> {
        self.flags(parts, NO_FLAGS)?;
        let (words, _) = self.list(parts)?;
        if words.is_empty() {
            return Err(self.args_error(parts, "VOLUME requires at least one argument"));
        }
        let mut volumes = Vec::new();
        for word in words {
            let volume = word.text.trim();
            if volume.is_empty() {
                return Err(self.error(word.offset, "VOLUME specified can not be an empty string"));
            }
            volumes.push(volume.to_string());
        }
        Ok(InstructionKind::Volume(volumes))
    }

    fn copy(&mut self, parts: &Parts<'_>, add: bool) -> Result<CopySpec, ParseError> {
        let specs: &[Spec] = if add {
            &[
                ("chown", Kind::String),
                ("chmod", Kind::String),
                ("link", Kind::Bool),
                ("exclude", Kind::Strings),
                ("checksum", Kind::String),
                ("keep-git-dir", Kind::Bool),
                ("unpack", Kind::Bool),
            ]
        } else {
            &[
                ("from", Kind::String),
                ("chown", Kind::String),
                ("chmod", Kind::String),
                ("link", Kind::Bool),
                ("parents", Kind::Bool),
                ("exclude", Kind::Strings),
            ]
        };
        let flags = self.flags(parts, specs)?;
        let (mut words, json) = self.list(parts)?;
        let keyword = &parts.keyword;
        let Some(dest) = words.pop().filter(|_| !words.is_empty()) else {
            return Err(self.args_error(
                parts,
                format!(
                    "{keyword} requires at least two arguments: one or more sources and a destination"
                ),
            ));
        };
        if !json && heredoc::from_word(&dest.text).is_some() {
            return Err(self.error(
                dest.offset,
                format!("{keyword} cannot accept a heredoc as a destination"),
            ));
        }
        let mut sources = Vec::new();
        let mut words = words.into_iter();
        while let Some(mut word) = words.next() {
            // `COPY << EOF /dst`: the delimiter is the next word.
            if !json
                && heredoc::is_bare_marker(&word.text)
                && let Some(next) = words.next()
            {
                word.text = format!("{} {}", word.text, next.text);
            }
            match heredoc::from_word(&word.text).filter(|_| !json) {
                Some(heredoc) => {
                    self.heredoc_offsets.push(word.offset);
                    sources.push(CopySource::Heredoc(heredoc));
                }
                None => sources.push(CopySource::Path(word.text)),
            }
        }
        Ok(CopySpec {
            sources,
            dest: dest.text,
            from: flags.string("from"),
            chown: flags.string("chown"),
            chmod: flags.string("chmod"),
            link: flags.bool("link").unwrap_or(false),
            parents: flags.bool("parents").unwrap_or(false),
            exclude: flags
                .strings("exclude")
                .into_iter()
                .map(|(v, _)| v)
                .collect(),
            checksum: flags.string("checksum"),
            keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
            unpack: flags.bool("unpack"),
        })
    }

    fn arg(&self, parts: &Parts<'_>) -> Result<InstructionKind, ParseError> {
        self.flags(parts, NO_FLAGS)?;
        let words = args::split_words(parts.args, self.escape);
        if words.is_empty() {
            return Err(self.args_error(parts, "ARG requires at least one argument"));
        }
        words
            .into_iter()
            .map(|word| match word.split_once('=') {
                Some(("", _)) => Err(self.args_error(parts, "ARG names can not be blank")),
                Some((name, default)) => Ok(ArgDecl {
                    name: name.to_string(),
                    default: Some(default.to_string()),
                }),
                None => Ok(ArgDecl {
                    name: word,
                    default: None,
                }),
            })
            .collect::<Result<_, _>>()
            .map(InstructionKind::Arg)
    }

    fn onbuild(&mut self, parts: &Parts<'_>) -> Result<InstructionKind, ParseError> {
        self.flags(parts, NO_FLAGS)?;
        if parts.args.is_empty() {
            return Err(self.args_error(parts, "ONBUILD requires at least one argument"));
        }
        let (trigger, _, _) = args::split_first(parts.args);
        let trigger = trigger.to_ascii_uppercase();
        match trigger.as_str() {
            "ONBUILD" => {
                return Err(self.error(
                    parts.args_offset,
                    "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                ));
            }
            "FROM" | "MAINTAINER" => {
                return Err(self.error(
                    parts.args_offset,
                    format!("{trigger} isn't allowed as an ONBUILD trigger"),
                ));
            }
            _ => {}
        }
        let inner = self.instruction(parts.args_offset)?;
        Ok(InstructionKind::Onbuild(Box::new(inner)))
    }

    fn healthcheck(&self, parts: &Parts<'_>) -> Result<InstructionKind, ParseError> {
        let flags = self.flags(
            parts,
            &[
                ("interval", Kind::String),
                ("timeout", Kind::String),
                ("start-period", Kind::String),
                ("start-interval", Kind::String),
                ("retries", Kind::String),
            ],
        )?;
        if parts.args.is_empty() {
            return Err(self.args_error(parts, "HEALTHCHECK requires at least one argument"));
        }
        let (kind, rest, rest_start) = args::split_first(parts.args);
        match kind.to_ascii_uppercase().as_str() {
            // BuildKit ignores options given with NONE; so do we.
            "NONE" if rest.is_empty() => Ok(InstructionKind::Healthcheck(Healthcheck::None)),
            "NONE" => Err(self.error(
                parts.args_offset + rest_start,
                "HEALTHCHECK NONE takes no arguments",
            )),
            "CMD" => {
                if rest.is_empty() {
                    return Err(self.args_error(parts, "missing command after HEALTHCHECK CMD"));
                }
                let command = self.command(parts, rest, parts.args_offset + rest_start)?;
                let options = HealthcheckOptions {
                    interval: self.interval(&flags, "interval")?,
                    timeout: self.interval(&flags, "timeout")?,
                    start_period: self.interval(&flags, "start-period")?,
                    start_interval: self.interval(&flags, "start-interval")?,
                    retries: self.retries(&flags)?,
                };
                Ok(InstructionKind::Healthcheck(Healthcheck::Cmd {
                    command,
                    options,
                }))
            }
            _ => Err(self.error(
                parts.args_offset,
                format!("unknown type {kind:?} in HEALTHCHECK (try CMD)"),
            )),
        }
    }

    /// A HEALTHCHECK duration flag; empty or zero means the default.
    fn interval(&self, flags: &Flags, name: &str) -> Result<Option<Duration>, ParseError> {
        let Some((value, offset)) = flags.string_at(name) else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(None);
        }
        let duration =
            duration::parse(&value).map_err(|e| self.error(offset, format!("--{name}: {e}")))?;
        if duration.is_zero() {
            return Ok(None);
        }
        if duration < Duration::from_millis(1) {
            return Err(self.error(offset, format!("--{name} cannot be less than 1ms")));
        }
        Ok(Some(duration))
    }

    fn retries(&self, flags: &Flags) -> Result<Option<u32>, ParseError> {
        let Some((value, offset)) = flags.string_at("retries") else {
            return Ok(None);
        };
        if value.is_empty() {
            return Ok(None);
        }
        let retries: i32 = value
            .parse()
            .map_err(|_| self.error(offset, format!("invalid value for --retries: {value:?}")))?;
        if retries < 1 {
            return Err(self.error(
                offset,
                format!("--retries must be at least 1 (not {retries})"),
            ));
        }
        Ok(Some(retries.unsigned_abs()))
    }
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";
