//! Parser directives: `# syntax=`, `# escape=` and `# check=` at the very top of a Dockerfile.

use std::collections::HashSet;

/// The parser directives of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` frontend image reference, as written.
    pub syntax: Option<String>,
    /// The escape character: `\` by default, or `` ` `` via `# escape=`.
    pub escape: char,
    /// `# check=` build check configuration, as written.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// Recognizes directives until the first line that is not one.
#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    pub(crate) directives: Directives,
    done: bool,
    seen: HashSet<String>,
}

impl DirectiveParser {
    /// Looks at one physical line (without its newline); `Err` carries the message.
    ///
    /// Directives count only before the first comment, blank line or instruction: any line
    /// that is not a directive ends the search, so a later `# escape=` is just a comment.
    pub(crate) fn line(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        let value = value.to_string();
        match key.as_str() {
            "syntax" => self.directives.syntax = Some(value),
            "check" => self.directives.check = Some(value),
            _ => {
                self.directives.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(format!(
                            "invalid escape token '{value}' does not match ` or \\"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `#\s*key\s*=\s*value\s*` with key `[a-zA-Z][a-zA-Z0-9]*` and a non-empty value.
fn directive(line: &str) -> Option<(&str, &str)> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r');
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = rest.split_at(key_len);
    let value = rest
        .trim_start_matches(is_space)
        .strip_prefix('=')?
        .trim_matches(is_space);
    (!value.is_empty()).then_some((key, value))
}

#[cfg(test)]
mod tests {
    use super::directive;

    #[test]
    fn recognizes_directive_lines() {
        assert_eq!(directive("# syntax=a/b"), Some(("syntax", "a/b")));
        assert_eq!(directive("#ESCAPE = ` "), Some(("ESCAPE", "`")));
        assert_eq!(directive("# escape ="), None);
        assert_eq!(directive("# just a comment"), None);
        assert_eq!(directive("RUN x"), None);
    }
}
