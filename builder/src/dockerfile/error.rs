//! Errors from parsing a Dockerfile and from variable substitution.

use thiserror::Error;

/// A Dockerfile that could not be parsed, located at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// 1-based physical line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub column: usize,
    /// What went wrong, lowercase, without a trailing period.
    pub message: String,
}

impl ParseError {
    /// An error at `line`, `column` with `message`.
    pub fn new(line: usize, column: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// A word whose variable substitution failed, e.g. `${NAME:?must be set}` with `NAME` unset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("failed to process {:?}: {}", shorten(.word, 120), shorten(.message, 400))]
pub struct ExpandError {
    /// The word as written (or the expanded value, for checks done after substitution).
    pub word: String,
    /// Why it failed.
    pub message: String,
}

impl ExpandError {
    /// An error about `word`.
    pub fn new(word: impl Into<String>, message: impl Into<String>) -> Self {
        ExpandError {
            word: word.into(),
            message: message.into(),
        }
    }
}

/// `text` cut to `max_chars` for an error message: a hostile word (or a message quoting a
/// pattern) may be megabytes long.
fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().nth(max_chars).is_none() {
        return text.to_string();
    }
    let head: String = text.chars().take(max_chars - 3).collect();
    format!("{head}...")
}
