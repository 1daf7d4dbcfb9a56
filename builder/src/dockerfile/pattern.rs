//! Shell wildcard patterns for `${VAR#pattern}`, `${VAR%pattern}` and `${VAR/pattern/replacement}`.
//!
//! Like BuildKit: `*` matches any run of characters, `?` one character, no bracket expressions;
//! `\` escapes `*`, `?` and `\`, and is dropped before `}` and `/` (which it protects inside `${}`).

use super::expand::MAX_PATTERN_WORK;

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
    /// Simulates the pattern as an NFA over token positions: O(text × pattern), stopping once
    /// no state is alive (callers check [`Pattern::check_work`] first).
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

    /// Refuses a prefix or suffix match on `text_len` characters that could take over
    /// [`MAX_PATTERN_WORK`] steps: with a `*` the simulation runs through the whole text,
    /// without one it stops after as many characters as the pattern has.
    fn check_work(&self, text_len: usize) -> Result<(), String> {
        let width = self.tokens.len() + 1;
        let chars = if self.tokens.contains(&Token::AnyRun) {
            text_len
        } else {
            text_len.min(width)
        };
        if (chars + 1).saturating_mul(width) > MAX_PATTERN_WORK {
            return Err(self.too_costly());
        }
        Ok(())
    }

    fn too_costly(&self) -> String {
        format!(
            "matching a {}-character pattern could take over {MAX_PATTERN_WORK} steps on this value (berth's limit): use a shorter pattern or value",
            self.tokens.len()
        )
    }

    /// `value` without its shortest (or, if `longest`, longest) matching prefix.
    pub(crate) fn trim_prefix(&self, value: &str, longest: bool) -> Result<String, String> {
        let chars: Vec<char> = value.chars().collect();
        self.check_work(chars.len())?;
        let ends = self.prefix_matches(chars.iter(), &self.tokens);
        let mut matching = ends.iter().enumerate().filter(|(_, m)| **m).map(|(k, _)| k);
        let cut = if longest {
            matching.next_back()
        } else {
            matching.next()
        };
        Ok(match cut {
            Some(k) => chars[k..].iter().collect(),
            None => value.to_string(),
        })
    }

    /// `value` without its shortest (or, if `longest`, longest) matching suffix.
    pub(crate) fn trim_suffix(&self, value: &str, longest: bool) -> Result<String, String> {
        // A suffix matches the pattern exactly when its reverse matches the reversed pattern.
        let chars: Vec<char> = value.chars().collect();
        self.check_work(chars.len())?;
        let reversed: Vec<Token> = self.tokens.iter().rev().copied().collect();
        let ends = self.prefix_matches(chars.iter().rev(), &reversed);
        let mut matching = ends.iter().enumerate().filter(|(_, m)| **m).map(|(k, _)| k);
        let cut = if longest {
            matching.next_back()
        } else {
            matching.next()
        };
        Ok(match cut {
            Some(k) => chars[..chars.len() - k].iter().collect(),
            None => value.to_string(),
        })
    }

    /// For each start `i` in `0..=chars.len()`, the end of the longest match starting there.
    ///
    /// One backward pass over the text keeps, per pattern position, the farthest end a match
    /// of the rest of the pattern reaches from here: O(text × pattern) for every start at once
    /// (trying each start on its own was quadratic in the text).
    fn longest_matches(&self, chars: &[char]) -> Result<Vec<Option<usize>>, String> {
        let m = self.tokens.len();
        if (chars.len() + 1).saturating_mul(m + 1) > MAX_PATTERN_WORK {
            return Err(self.too_costly());
        }
        let mut longest = vec![None; chars.len() + 1];
        // `after[p]`: the farthest end for `tokens[p..]` from the next position.
        let mut after: Vec<Option<usize>> = vec![None; m + 1];
        let mut here: Vec<Option<usize>> = vec![None; m + 1];
        for i in (0..=chars.len()).rev() {
            here[m] = Some(i);
            for p in (0..m).rev() {
                here[p] = match self.tokens[p] {
                    Token::AnyRun => here[p + 1].max(after[p]),
                    Token::AnyChar if i < chars.len() => after[p + 1],
                    Token::Literal(l) if chars.get(i) == Some(&l) => after[p + 1],
                    Token::AnyChar | Token::Literal(_) => None,
                };
            }
            longest[i] = here[0];
            std::mem::swap(&mut after, &mut here);
        }
        Ok(longest)
    }

    /// `value` with the leftmost-longest match (or every match, if `all`) replaced; fails if
    /// the result would be over `max_len` bytes.
    pub(crate) fn replace(
        &self,
        value: &str,
        replacement: &str,
        all: bool,
        max_len: usize,
    ) -> Result<String, Failure> {
        let chars: Vec<char> = value.chars().collect();
        let longest = self.longest_matches(&chars).map_err(Failure::TooCostly)?;
        let mut out = String::new();
        let mut i = 0;
        let mut last_end: Option<usize> = None;
        while i <= chars.len() {
            match longest[i] {
                // As in Go's regexp, an empty match right after the previous match is skipped.
                Some(end) if !(end == i && last_end == Some(i)) => {
                    if out.len().saturating_add(replacement.len()) > max_len {
                        return Err(Failure::TooLong);
                    }
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
                        return Ok(out);
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
        Ok(out)
    }
}

/// Why [`Pattern::replace`] gave up.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The result would be too long.
    TooLong,
    /// Matching would take too many steps (the message says so).
    TooCostly(String),
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn trims_and_replaces() {
        let p = Pattern::new("*.").unwrap();
        assert_eq!(p.trim_prefix("a.b.c", false).unwrap(), "b.c");
        assert_eq!(p.trim_prefix("a.b.c", true).unwrap(), "c");
        let p = Pattern::new(".*").unwrap();
        assert_eq!(p.trim_suffix("a.b.c", false).unwrap(), "a.b");
        assert_eq!(p.trim_suffix("a.b.c", true).unwrap(), "a");
        let replace =
            |p: &Pattern, v: &str, r: &str, all: bool| p.replace(v, r, all, usize::MAX).unwrap();
        let p = Pattern::new("o").unwrap();
        assert_eq!(replace(&p, "foo", "0", false), "f0o");
        assert_eq!(replace(&p, "foo", "0", true), "f00");
        assert!(Pattern::new("\\a").is_err());
        let p = Pattern::new("\\*").unwrap();
        assert_eq!(p.trim_prefix("*x", false).unwrap(), "x");
        let p = Pattern::new("a*b?").unwrap();
        assert_eq!(p.trim_suffix("xxab1ab2", false).unwrap(), "xxab1");
        assert_eq!(p.trim_suffix("xxab1ab2", true).unwrap(), "xx");
        assert_eq!(
            replace(&Pattern::new("").unwrap(), "ab", "-", true),
            "-a-b-"
        );
        assert_eq!(replace(&Pattern::new("*").unwrap(), "abc", "X", true), "X");
        let long = "p:".repeat(5000);
        let p = Pattern::new("*:").unwrap();
        assert_eq!(p.trim_prefix(&long, true).unwrap(), "");
    }

    /// The replacement as first written: the longest match tried from each start on its own.
    fn replace_by_each_start(p: &Pattern, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut last_end: Option<usize> = None;
        while i <= chars.len() {
            let found = p
                .prefix_matches(chars[i..].iter(), &p.tokens)
                .iter()
                .rposition(|m| *m)
                .map(|len| i + len);
            match found {
                Some(end) if !(end == i && last_end == Some(i)) => {
                    out.push_str(replacement);
                    last_end = Some(end);
                    if end == i {
                        out.extend(chars.get(i));
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
                    out.extend(chars.get(i));
                    i += 1;
                }
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        #[test]
        fn replace_agrees_with_trying_each_start(
            pattern in "[ab*?]{0,6}",
            value in "[abc]{0,12}",
            all in proptest::prelude::any::<bool>(),
        ) {
            let p = Pattern::new(&pattern).unwrap();
            let fast = p.replace(&value, "-", all, usize::MAX).unwrap();
            proptest::prop_assert_eq!(fast, replace_by_each_start(&p, &value, "-", all));
        }
    }

    #[test]
    fn costly_or_huge_results_are_errors() {
        let value = "a".repeat(1 << 20);
        let p = Pattern::new("a").unwrap();
        assert!(matches!(
            p.replace(&value, &value, true, 1 << 21),
            Err(super::Failure::TooLong)
        ));
        let p = Pattern::new(&"*a".repeat(200)).unwrap();
        assert!(matches!(
            p.replace(&value, "", true, usize::MAX),
            Err(super::Failure::TooCostly(_))
        ));
        assert!(p.trim_prefix(&value, true).is_err());
        assert!(p.trim_suffix(&value, false).is_err());
        // Without a `*` the match stops early: only a pattern as long as the limit is refused.
        let literal = Pattern::new(&"a".repeat(200)).unwrap();
        assert_eq!(
            literal.trim_prefix(&value, false).unwrap().len(),
            value.len() - 200
        );
        let long = Pattern::new(&"a".repeat(20_000)).unwrap();
        assert!(long.trim_suffix(&value, false).is_err());
    }
}
