//! Shell wildcard patterns for `${VAR#pattern}`, `${VAR%pattern}` and `${VAR/pattern/replacement}`.
//!
//! Like BuildKit: `*` matches any run of characters, `?` one character, no bracket expressions;
//! `\` escapes `*`, `?` and `\`, and is dropped before `}` and `/` (which it protects inside `${}`).

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyRun,
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `source`, rejecting escapes of ordinary characters as BuildKit does.
    pub(crate) fn new(source: &str) -> Result<Pattern, String> {
        let mut tokens = Vec::new();
        let mut chars = source.chars().peekable();
        while let Some(ch) = chars.next() {
            match ch {
                '*' => tokens.push(Token::AnyRun),
                '?' => tokens.push(Token::AnyChar),
                '\\' => match chars.peek().copied() {
                    // The escape only protected the delimiter from the `${}` scanner.
                    Some('}' | '/') => {}
                    Some(next @ ('*' | '?' | '\\')) => {
                        chars.next();
                        tokens.push(Token::Literal(next));
                    }
                    Some(other) => return Err(format!("invalid escape '\\{other}'")),
                    None => return Err("invalid escape at end of pattern".to_string()),
                },
                other => tokens.push(Token::Literal(other)),
            }
        }
        Ok(Pattern { tokens })
    }

    /// Whether the whole of `text` matches.
    fn matches(&self, text: &[char]) -> bool {
        // Iterative wildcard matching: remember the last `*` and retry it one character longer.
        let (mut t, mut p) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.tokens.get(p) {
                Some(Token::AnyChar) => {
                    t += 1;
                    p += 1;
                }
                Some(Token::Literal(c)) if *c == text[t] => {
                    t += 1;
                    p += 1;
                }
                Some(Token::AnyRun) => {
                    star = Some((p, t));
                    p += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.tokens[p..].iter().all(|tok| *tok == Token::AnyRun)
    }

    /// `value` without its shortest (or, if `longest`, longest) matching prefix.
    pub(crate) fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let ends: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new((0..=chars.len()).rev())
        } else {
            Box::new(0..=chars.len())
        };
        for end in ends {
            if self.matches(&chars[..end]) {
                return chars[end..].iter().collect();
            }
        }
        value.to_string()
    }

    /// `value` without its shortest (or, if `longest`, longest) matching suffix.
    pub(crate) fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let starts: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new(0..=chars.len())
        } else {
            Box::new((0..=chars.len()).rev())
        };
        for start in starts {
            if self.matches(&chars[start..]) {
                return chars[..start].iter().collect();
            }
        }
        value.to_string()
    }

    /// `value` with the leftmost-longest match (or every match, if `all`) replaced.
    pub(crate) fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut last_end: Option<usize> = None;
        while i <= chars.len() {
            let found = (i..=chars.len())
                .rev()
                .find(|&end| self.matches(&chars[i..end]));
            match found {
                // As in Go's regexp, an empty match right after the previous match is skipped.
                Some(end) if !(end == i && last_end == Some(i)) => {
                    out.push_str(replacement);
                    last_end = Some(end);
                    if end == i {
                        if let Some(c) = chars.get(i) {
                            out.push(*c);
                        }
                        i += 1;
                    } else {
                        i = end;
                    }
                    if !all {
                        out.extend(chars.get(i..).unwrap_or_default());
                        return out;
                    }
                }
                _ => {
                    if let Some(c) = chars.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn trims_and_replaces() {
        let p = Pattern::new("*.").unwrap();
        assert_eq!(p.trim_prefix("a.b.c", false), "b.c");
        assert_eq!(p.trim_prefix("a.b.c", true), "c");
        let p = Pattern::new(".*").unwrap();
        assert_eq!(p.trim_suffix("a.b.c", false), "a.b");
        assert_eq!(p.trim_suffix("a.b.c", true), "a");
        let p = Pattern::new("o").unwrap();
        assert_eq!(p.replace("foo", "0", false), "f0o");
        assert_eq!(p.replace("foo", "0", true), "f00");
        assert!(Pattern::new("\\a").is_err());
        assert_eq!(Pattern::new("\\*").unwrap().trim_prefix("*x", false), "x");
    }
}
