//! Word expansion: BuildKit's shell lexer (`ProcessWord`/`ProcessWords`).
//!
//! Handles `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?msg}`, `${V?msg}`,
//! `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`, single and double quotes
//! (removed from the result), and the escape character. Unset variables expand to nothing.
//! No command substitution, globbing or arithmetic: this is substitution, not a shell.
//!
//! Hostile input stays bounded: substitution adds at most [`MAX_GROWTH`] to a word (a doubling
//! `ARG` chain would otherwise take the host's memory), `${...}` nests at most [`MAX_NESTING`]
//! deep (each level is a recursion), and a pattern operation does at most [`MAX_PATTERN_WORK`]
//! steps. Each limit is an error, never a crash.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use super::error::ExpandError;
use super::pattern::Pattern;

/// How much longer than the word as written its expansion may be: 1 MiB.
///
/// BuildKit has no such bound; a Dockerfile of 30 `ARG A{i}=${A{i-1}}${A{i-1}}` lines would
/// ask for gigabytes. Real values (paths, versions, flags) are far below it.
pub const MAX_GROWTH: usize = 1 << 20;

/// How deeply `${...}` may nest (`${A:-${B:-${C}}}` is 3): each level recurses in the lexer.
pub const MAX_NESTING: usize = 100;

/// The most steps one pattern operation (`${V#p}`, `${V%p}`, `${V/p/r}`) may take: the value's
/// length times the pattern's, about 134 million.
pub const MAX_PATTERN_WORK: usize = 1 << 27;

/// Where variable values come from during substitution.
pub trait Env {
    /// The value of `name`, or `None` if it is unset (an empty value is set).
    fn get(&self, name: &str) -> Option<String>;
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Expands `word` into a single string: variables substituted, quotes removed, escapes applied.
///
/// `escape` is the Dockerfile's escape character (`\` or `` ` ``).
pub fn expand_word<E: Env + ?Sized>(
    word: &str,
    env: &E,
    escape: char,
) -> Result<String, ExpandError> {
    Lexer::new(escape).process(word, env).map(|(text, _)| text)
}

/// Expands `word` and splits the result on unquoted whitespace, as BuildKit does for `EXPOSE`.
///
/// Whitespace coming from a variable's value splits too; quoted whitespace does not.
pub fn expand_words<E: Env + ?Sized>(
    word: &str,
    env: &E,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(escape)
        .process(word, env)
        .map(|(_, words)| words)
}

/// Expands heredoc content whose delimiter was not quoted (`COPY <<EOF`).
///
/// As in BuildKit, quotes are literal and the escape character is always `\`.
pub fn expand_heredoc<E: Env + ?Sized>(content: &str, env: &E) -> Result<String, ExpandError> {
    let lexer = Lexer {
        skip_quotes: true,
        ..Lexer::new('\\')
    };
    lexer.process(content, env).map(|(text, _)| text)
}

/// Options of one run of the lexer; mirrors BuildKit's `Lex` fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lexer {
    pub(crate) escape: char,
    /// Keep quote characters in the output.
    pub(crate) raw_quotes: bool,
    /// Keep escape characters in the output.
    pub(crate) raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub(crate) skip_quotes: bool,
    /// Leave references to unset variables as written.
    pub(crate) skip_unset: bool,
}

impl Lexer {
    pub(crate) fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_quotes: false,
            skip_unset: false,
        }
    }

    /// The expanded word and its split into words.
    pub(crate) fn process<E: Env + ?Sized>(
        &self,
        word: &str,
        env: &E,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut scanner = Scanner {
            chars: word.chars().collect(),
            pos: 0,
            env,
            lexer: *self,
            depth: 0,
            max_len: word.len().saturating_add(MAX_GROWTH),
        };
        scanner
            .process_stop_on(None, self.raw_escapes)
            .map_err(|message| ExpandError::new(word, message))
    }
}

/// Accumulates the split-into-words view of the output.
#[derive(Default)]
struct Words {
    current: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.current.is_empty() {
                self.words.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.current.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.words.push(self.current);
        }
        self.words
    }
}

struct Scanner<'e, E: ?Sized> {
    chars: Vec<char>,
    pos: usize,
    env: &'e E,
    lexer: Lexer,
    /// How many `${` are open around the current position.
    depth: usize,
    /// The longest any piece of the result may grow (bytes).
    max_len: usize,
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

/// The error for a result over `max_len` bytes.
fn too_long(max_len: usize) -> String {
    format!(
        "the substituted value would be over {max_len} bytes (1 MiB more than the word as written, berth's limit): build large values in a RUN step or COPY them from a file"
    )
}

impl<E: Env + ?Sized> Scanner<'_, E> {
    /// Appends `value` to `result` unless that makes it longer than the limit.
    fn append(&self, result: &mut String, value: &str) -> Result<(), String> {
        if result.len().saturating_add(value.len()) > self.max_len {
            return Err(too_long(self.max_len));
        }
        result.push_str(value);
        Ok(())
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    /// Processes up to `stop` (consumed) or the end of input.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes_special = !self.lexer.skip_quotes;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    self.append(&mut result, &value)?;
                    words.add_string(&value);
                }
                '\'' if quotes_special => {
                    let value = self.process_single_quote()?;
                    self.append(&mut result, &value)?;
                    words.add_raw_string(&value);
                }
                '"' if quotes_special => {
                    let value = self.process_double_quote(raw_escapes)?;
                    self.append(&mut result, &value)?;
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next();
                    if ch == self.lexer.escape {
                        if raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        // Everything up to the next single quote is literal; it cannot be escaped.
        let mut result = String::new();
        self.next();
        if self.lexer.raw_quotes {
            result.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    );
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self, raw_escapes: bool) -> Result<String, String> {
        // Literal except `$` and the escape character, which only escapes `"`, `$` and itself.
        let mut result = String::new();
        self.next();
        if self.lexer.raw_quotes {
            result.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    self.append(&mut result, &value)?;
                }
                Some(ch) => {
                    self.next();
                    if ch == self.lexer.escape {
                        match self.peek() {
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == ch => {
                                self.next();
                                if raw_escapes {
                                    result.push(ch);
                                }
                                result.push(next);
                            }
                            Some(_) => result.push(ch),
                        }
                    } else {
                        result.push(ch);
                    }
                }
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.env.get(name)
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        if self.depth >= MAX_NESTING {
            return Err(format!(
                "more than {MAX_NESTING} nested ${{...}} substitutions (berth's limit): nest fewer, or set the value in steps with several ARG or ENV lines"
            ));
        }
        self.depth += 1;
        let value = self.process_braced();
        self.depth -= 1;
        value
    }

    /// `${...}` after its `${`.
    fn process_braced(&mut self) -> Result<String, String> {
        match self.peek() {
            None => return Err(MISSING_BRACE.to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(ch) = self.next() else {
            return Err(MISSING_BRACE.to_string());
        };
        match ch {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => self.process_modifier(name, ch),
            '/' => self.process_replace(name),
            other => Err(format!("unsupported modifier ({other}) in substitution")),
        }
    }

    /// `${name:op word}` and `${name op word}`, with `first` being `:` or the operator.
    fn process_modifier(&mut self, name: String, first: char) -> Result<String, String> {
        let null_is_unset = first == ':';
        let op = if null_is_unset {
            self.next().ok_or(MISSING_BRACE)?
        } else {
            first
        };
        let spelled = if null_is_unset {
            format!(":{op}")
        } else {
            op.to_string()
        };
        // Patterns keep their escapes so the pattern compiler can see them.
        let raw_escapes = op == '#' || op == '%';
        if null_is_unset && raw_escapes {
            return Err(format!("unsupported modifier ({spelled}) in substitution"));
        }
        let (word, _) = self
            .process_stop_on(Some('}'), raw_escapes)
            .map_err(|e| self.missing_brace_or(e))?;
        let value = self.lookup(&name);
        if self.lexer.skip_unset && value.is_none() {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        let is_null = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            '-' => Ok(if is_null {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if is_null { String::new() } else { word }),
            '?' => match value {
                None => Err(format!(
                    "{name}: {}",
                    or(word, "is not allowed to be unset")
                )),
                Some(v) if null_is_unset && v.is_empty() => Err(format!(
                    "{name}: {}",
                    or(word, "is not allowed to be empty")
                )),
                Some(v) => Ok(v),
            },
            '#' | '%' => {
                let (longest, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest.to_string()),
                    None => (false, word),
                };
                let compiled = Pattern::new(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                let value = value.unwrap_or_default();
                if op == '#' {
                    compiled.trim_prefix(&value, longest)
                } else {
                    compiled.trim_suffix(&value, longest)
                }
            }
            _ => Err(format!("unsupported modifier ({spelled}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn process_replace(&mut self, name: String) -> Result<String, String> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let (pattern, _) = self.process_stop_on(Some('/'), true).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '/' in ${}".to_string()
            } else {
                e
            }
        })?;
        let (replacement, _) = self
            .process_stop_on(Some('}'), true)
            .map_err(|e| self.missing_brace_or(e))?;
        let Some(value) = self.lookup(&name) else {
            if self.lexer.skip_unset {
                let slashes = if all { "//" } else { "/" };
                return Ok(format!("${{{name}{slashes}{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let compiled = Pattern::new(&pattern)
            .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
        compiled
            .replace(&value, &replacement, all, self.max_len)
            .map_err(|e| match e {
                super::pattern::Failure::TooLong => too_long(self.max_len),
                super::pattern::Failure::TooCostly(message) => message,
            })
    }

    fn missing_brace_or(&self, error: String) -> String {
        if self.peek().is_none() {
            MISSING_BRACE.to_string()
        } else {
            error
        }
    }

    /// A variable name: letters, digits and `_`, or all digits, or one special parameter.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(digit) = self.peek().filter(|c| c.is_numeric()) {
                    self.next();
                    name.push(digit);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

fn or(word: String, default: &str) -> String {
    if word.is_empty() {
        default.to_string()
    } else {
        word
    }
}

/// Words of `line` with quotes, escapes and unset variables kept as written (heredoc detection).
///
/// A line that does not lex (say, an unterminated quote) has no words, as in BuildKit.
pub(crate) fn raw_words(line: &str) -> Vec<String> {
    let lexer = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
        ..Lexer::new('\\')
    };
    lexer
        .process(line, &|_: &str| None)
        .map(|(_, words)| words)
        .unwrap_or_default()
}
