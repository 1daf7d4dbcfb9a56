//! Physical lines to logical lines: directives, comments, blank lines, line continuations
//! and heredoc bodies.

use super::directives::{DirectiveParser, Directives};
use super::error::ParseError;

/// One instruction's text with continuations joined, and a map back to the source.
#[derive(Debug, Clone)]
pub(crate) struct LogicalLine {
    /// The joined text: escape-newline pairs removed, comment and empty lines in between dropped.
    pub(crate) text: String,
    /// 1-based line where it starts.
    pub(crate) start_line: usize,
    /// 1-based line where it ends (before any heredoc bodies).
    pub(crate) end_line: usize,
    segments: Vec<Segment>,
}

/// A piece of `text` copied from one physical line.
#[derive(Debug, Clone, Copy)]
struct Segment {
    offset: usize,
    line: usize,
    column: usize,
}

impl LogicalLine {
    /// The 1-based source line and column of byte `offset` of `text`.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let Some(segment) = self.segments.iter().rev().find(|s| s.offset <= offset) else {
            return (self.start_line, 1);
        };
        let chars = self
            .text
            .get(segment.offset..offset.min(self.text.len()))
            .map_or(0, |s| s.chars().count());
        (segment.line, segment.column + chars)
    }

    /// A parse error at byte `offset` of `text`.
    pub(crate) fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        let (line, column) = self.position(offset);
        ParseError::new(line, column, message)
    }
}

/// Reads a Dockerfile line by line.
pub(crate) struct Lexer<'a> {
    lines: Vec<&'a str>,
    next: usize,
    directives: DirectiveParser,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(source: &'a str) -> Lexer<'a> {
        Lexer {
            lines: source.split_inclusive('\n').collect(),
            next: 0,
            directives: DirectiveParser::default(),
        }
    }

    /// The directives seen so far.
    pub(crate) fn directives(&self) -> &Directives {
        &self.directives.directives
    }

    /// 1-based number of the last physical line consumed (0 before any).
    pub(crate) fn line_number(&self) -> usize {
        self.next
    }

    /// Number of physical lines in the source.
    pub(crate) fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// The next physical line with its line ending, and its 1-based number.
    fn physical(&mut self) -> Option<(usize, &'a str)> {
        let line = *self.lines.get(self.next)?;
        self.next += 1;
        let line = if self.next == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        Some((self.next, line))
    }

    fn directive(&mut self, number: usize, line: &str) -> Result<(), ParseError> {
        self.directives
            .line(line)
            .map_err(|message| ParseError::new(number, 1, message))
    }

    /// The next logical line, skipping comments and blank lines.
    pub(crate) fn next_line(&mut self) -> Result<Option<LogicalLine>, ParseError> {
        loop {
            let Some((number, raw)) = self.physical() else {
                return Ok(None);
            };
            let content = trim_newline(raw);
            let trimmed = content.trim_start();
            self.directive(number, trimmed)?;
            let escape = self.directives().escape;
            let uncommented = if trimmed.starts_with('#') {
                ""
            } else {
                trimmed
            };
            let (body, mut continues) = trim_continuation(uncommented, escape);
            if !continues && body.is_empty() {
                continue;
            }
            let lead = content.len() - trimmed.len();
            let mut logical = LogicalLine {
                text: body.to_string(),
                start_line: number,
                end_line: number,
                segments: vec![Segment {
                    offset: 0,
                    line: number,
                    column: content[..lead].chars().count() + 1,
                }],
            };
            while continues {
                let Some((number, raw)) = self.physical() else {
                    break;
                };
                logical.end_line = number;
                let content = trim_newline(raw);
                self.directive(number, content)?;
                // Comment and empty lines inside a continued instruction are dropped entirely.
                let trimmed = content.trim_start();
                if trimmed.starts_with('#') || trimmed.is_empty() {
                    continue;
                }
                let (body, more) = trim_continuation(content, escape);
                logical.segments.push(Segment {
                    offset: logical.text.len(),
                    line: number,
                    column: 1,
                });
                logical.text.push_str(body);
                continues = more;
            }
            return Ok(Some(logical));
        }
    }

    /// Reads a heredoc body up to its terminator line; `None` if the file ends first.
    ///
    /// The content is verbatim, line endings included; with `chomp` the terminator may be
    /// indented by tabs.
    pub(crate) fn heredoc(&mut self, name: &str, chomp: bool) -> Option<String> {
        let mut content = String::new();
        while let Some((_, raw)) = self.physical() {
            let candidate = trim_newline(raw);
            let candidate = if chomp {
                candidate.trim_start_matches('\t')
            } else {
                candidate
            };
            if candidate == name {
                return Some(content);
            }
            content.push_str(raw);
        }
        None
    }
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// Strips a trailing escape character (plus spaces and tabs after it) that continues the line.
///
/// As in BuildKit, an escape preceded by another escape (`\\`) does not continue the line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let end = line.trim_end_matches([' ', '\t']);
    match end.strip_suffix(escape) {
        Some(before) if before.is_empty() || !before.ends_with(escape) => (before, true),
        _ => (line, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(source: &str) -> Vec<(String, usize, usize)> {
        let mut lexer = Lexer::new(source);
        let mut out = Vec::new();
        while let Some(l) = lexer.next_line().unwrap() {
            out.push((l.text, l.start_line, l.end_line));
        }
        out
    }

    #[test]
    fn joins_continuations() {
        assert_eq!(
            lines("RUN a \\\n  b \\  \n\n# c\n  c\nRUN d"),
            vec![
                ("RUN a   b   c".to_string(), 1, 5),
                ("RUN d".to_string(), 6, 6)
            ]
        );
        assert_eq!(lines("RUN a\\\\\nRUN b")[0].0, "RUN a\\\\");
    }

    #[test]
    fn maps_positions() {
        let mut lexer = Lexer::new("  RUN a \\\nbé c");
        let line = lexer.next_line().unwrap().unwrap();
        assert_eq!(line.text, "RUN a bé c");
        assert_eq!(line.position(0), (1, 3));
        assert_eq!(line.position(4), (1, 7));
        assert_eq!(line.position(line.text.find('c').unwrap()), (2, 4));
    }
}
