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

    /// For each `k` in `0..=text.len()`, whether `text[..k]` matches the whole pattern.
    ///
    /// Simulates the pattern as an NFA over token positions: O(text × pattern).
    fn prefix_matches<'c>(
        &self,
        text: impl Iterator<Item = &'c char>,
        tokens: &[Token],
    ) -> Vec<bool> {
        let close = |states: &mut Vec<bool>| {
            for p in 0..tokens.len() {
                if states[p] && tokens[p] == Token::AnyRun {
                    states[p + 1] = true;
                }
            }
        };
        let mut states = vec![false; tokens.len() + 1];
        states[0] = true;
        close(&mut states);
        let mut ends = vec![states[tokens.len()]];
        for &c in text {
            let mut next = vec![false; tokens.len() + 1];
            for (p, token) in tokens.iter().enumerate() {
                if !states[p] {
                    continue;
                }
                match token {
                    Token::AnyRun => next[p] = true,
                    Token::AnyChar => next[p + 1] = true,
                    Token::Literal(l) if *l == c => next[p + 1] = true,
                    Token::Literal(_) => {}
                }
            }
            close(&mut next);
            states = next;
            ends.push(states[tokens.len()]);
            if !states.contains(&true) {
                break;
            }
        }
        ends
    }

    /// `value` without its shortest (or, if `longest`, longest) matching prefix.
    pub(crate) fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let ends = self.prefix_matches(chars.iter(), &self.tokens);
        let mut matching = ends.iter().enumerate().filter(|(_, m)| **m).map(|(k, _)| k);
        let cut = if longest {
            matching.next_back()
        } else {
            matching.next()
        };
        match cut {
            Some(k) => chars[k..].iter().collect(),
            None => value.to_string(),
        }
    }

    /// `value` without its shortest (or, if `longest`, longest) matching suffix.
    pub(crate) fn trim_suffix(&self, value: &str, longest: bool) -> String {
        // A suffix matches the pattern exactly when its reverse matches the reversed pattern.
        let chars: Vec<char> = value.chars().collect();
        let reversed: Vec<Token> = self.tokens.iter().rev().copied().collect();
        let ends = self.prefix_matches(chars.iter().rev(), &reversed);
        let mut matching = ends.iter().enumerate().filter(|(_, m)| **m).map(|(k, _)| k);
        let cut = if longest {
            matching.next_back()
        } else {
            matching.next()
        };
        match cut {
            Some(k) => chars[..chars.len() - k].iter().collect(),
            None => value.to_string(),
        }
    }

    /// `value` with the leftmost-longest match (or every match, if `all`) replaced.
    pub(crate) fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut last_end: Option<usize> = None;
        while i <= chars.len() {
            let found = self
                .prefix_matches(chars[i..].iter(), &self.tokens)
                .iter()
                .rposition(|m| *m)
                .map(|len| i + len);
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
        let p = Pattern::new("a*b?").unwrap();
        assert_eq!(p.trim_suffix("xxab1ab2", false), "xxab1");
        assert_eq!(p.trim_suffix("xxab1ab2", true), "xx");
        assert_eq!(Pattern::new("").unwrap().replace("ab", "-", true), "-a-b-");
        assert_eq!(Pattern::new("*").unwrap().replace("abc", "X", true), "X");
        let long = "p:".repeat(5000);
        assert_eq!(Pattern::new("*:").unwrap().trim_prefix(&long, true), "");
    }
}
