//! Instruction flags (`--name=value`, `--bool`), checked against what each instruction accepts.

use std::collections::HashMap;

use super::args::Word;
use super::error::ParseError;
use super::lexer::LogicalLine;
use super::suggest;

/// What values a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--name`, `--name=true|false`.
    Bool,
    /// `--name=value`, at most once.
    String,
    /// `--name=value`, repeatable.
    Strings,
}

/// A flag an instruction accepts.
pub(crate) type Spec = (&'static str, Kind);

/// The flags given to one instruction.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    values: HashMap<&'static str, Vec<(String, usize)>>,
}

impl Flags {
    /// Checks `words` against `specs`: unknown, duplicate and malformed flags are errors.
    pub(crate) fn parse(
        words: &[Word],
        specs: &[Spec],
        line: &LogicalLine,
    ) -> Result<Flags, ParseError> {
        let mut flags = Flags::default();
        for word in words {
            let err = |message: String| line.error(word.offset, message);
            let body = word.text.strip_prefix("--").unwrap_or(&word.text);
            let (name, value) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let Some(&(spec_name, kind)) = specs.iter().find(|(n, _)| *n == name) else {
                let names: Vec<&str> = specs.iter().map(|(n, _)| *n).collect();
                return Err(err(suggest::with_hint(
                    format!("unknown flag: {name}"),
                    name,
                    &names,
                )));
            };
            let seen = flags.values.entry(spec_name).or_default();
            if kind != Kind::Strings && !seen.is_empty() {
                return Err(err(format!("duplicate flag specified: {name}")));
            }
            let value = match (kind, value) {
                (Kind::Bool, None) => "true".to_string(),
                (Kind::Bool, Some(v)) if v.eq_ignore_ascii_case("true") => "true".to_string(),
                (Kind::Bool, Some(v)) if v.eq_ignore_ascii_case("false") => "false".to_string(),
                (_, None) | (Kind::Bool, Some("")) => {
                    return Err(err(format!("missing a value on flag: {name}")));
                }
                (Kind::Bool, Some(v)) => {
                    return Err(err(format!(
                        "expecting boolean value for flag {name}, not: {v}"
                    )));
                }
                (_, Some(v)) => v.to_string(),
            };
            seen.push((value, word.offset));
        }
        Ok(flags)
    }

    /// A string flag's value.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name)?.first().map(|(v, _)| v.clone())
    }

    /// A string flag's value and its offset.
    pub(crate) fn string_at(&self, name: &str) -> Option<(String, usize)> {
        self.values.get(name)?.first().cloned()
    }

    /// A boolean flag's value, if given.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }

    /// Every value of a repeatable flag, with offsets.
    pub(crate) fn strings(&self, name: &str) -> Vec<(String, usize)> {
        self.values.get(name).cloned().unwrap_or_default()
    }
}
