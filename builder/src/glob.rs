//! Docker's path patterns, as `.dockerignore`, `COPY --exclude` and COPY's source globs use
//! them: Go's `filepath.Match` for each path element (`*`, `?`, `[class]` with `^`/`!` negation
//! and ranges, `\` escapes) and `**` as a whole element for any number of elements.
//!
//! Matching takes polynomial time: an element is matched by the usual `*` backtracking (every
//! other token takes exactly one character, so going back to the last `*` is enough), and a
//! path by dynamic programming over (pattern element, path element). The recursive matcher
//! before it was exponential in the number of `*` and `**`: `**/` ten times then `*b` on a
//! 40-level folder ran for minutes.

/// One token of a path element's pattern; every one but [`Token::Star`] takes one character.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters.
    Star,
    /// `?`: any one character.
    AnyChar,
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// A character as written (or escaped with `\`).
    Literal(char),
}

impl Token {
    fn takes(&self, c: char) -> bool {
        match self {
            Token::Star | Token::AnyChar => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            Token::Literal(l) => *l == c,
        }
    }
}

/// A compiled pattern for one path element (Go's `filepath.Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementPattern {
    tokens: Vec<Token>,
}

impl ElementPattern {
    /// Compiles `pattern`; an error says how it is malformed.
    pub fn new(pattern: &str) -> Result<ElementPattern, String> {
        let p: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                '*' => {
                    // Consecutive stars match what one does.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::AnyChar);
                    i += 1;
                }
                '\\' => {
                    let escaped = *p.get(i + 1).ok_or("trailing backslash")?;
                    tokens.push(Token::Literal(escaped));
                    i += 2;
                }
                '[' => {
                    let ((negated, ranges), end) =
                        parse_class(&p, i).ok_or("unterminated character class")?;
                    tokens.push(Token::Class { negated, ranges });
                    i = end;
                }
                c => {
                    tokens.push(Token::Literal(c));
                    i += 1;
                }
            }
        }
        Ok(ElementPattern { tokens })
    }

    /// Whether `name` (one path element) matches, in O(name × pattern) at worst.
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let tokens = &self.tokens;
        let (mut t, mut n) = (0, 0);
        // The token after the last `*` seen, and where in the name that star's run ends now.
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t + 1, n));
                    t += 1;
                    continue;
                }
                Some(token) if token.takes(name[n]) => {
                    t += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
            // A mismatch: the last star takes one more character, or nothing matches.
            let Some((after, run_end)) = star else {
                return false;
            };
            t = after;
            n = run_end + 1;
            star = Some((after, run_end + 1));
        }
        tokens[t..].iter().all(|token| *token == Token::Star)
    }
}

/// Parses `[...]` starting at `start`: (negated, ranges) and the index after `]`.
#[allow(clippy::type_complexity)]
pub(crate) fn parse_class(p: &[char], start: usize) -> Option<((bool, Vec<(char, char)>), usize)> {
    let mut i = start + 1;
    let negated = matches!(p.get(i), Some('^' | '!'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *p.get(i)?;
        if c == ']' && !first {
            return Some(((negated, ranges), i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            c
        };
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            hi = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
        }
        ranges.push((lo, hi));
    }
}

/// One element of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Element {
    /// `**`: any number of path elements, none included.
    AnyPath,
    /// Exactly one path element.
    One(ElementPattern),
}

/// A compiled `/`-separated path pattern, anchored at the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    elements: Vec<Element>,
}

impl PathPattern {
    /// Compiles a cleaned pattern (no empty, `.` or `..` elements).
    pub fn new(cleaned: &str) -> Result<PathPattern, String> {
        let elements = cleaned
            .split('/')
            .map(|e| match e {
                "**" => Ok(Element::AnyPath),
                e => ElementPattern::new(e).map(Element::One),
            })
            .collect::<Result<_, _>>()?;
        Ok(PathPattern { elements })
    }

    /// Whether the pattern matches the path `parts` or one of its parent folders (a pattern
    /// also matches everything under a folder it matches).
    ///
    /// `reach[j]` holds whether the elements so far match `parts[..j]`; each element moves it
    /// on in one pass, so the cost is O(pattern elements × path elements) element matches.
    pub fn matches_or_parent(&self, parts: &[&str]) -> bool {
        let mut reach = vec![false; parts.len() + 1];
        reach[0] = true;
        for element in &self.elements {
            match element {
                Element::AnyPath => {
                    let mut any = false;
                    for r in reach.iter_mut() {
                        any |= *r;
                        *r = any;
                    }
                }
                Element::One(pattern) => {
                    for j in (1..reach.len()).rev() {
                        reach[j] = reach[j - 1] && pattern.matches(parts[j - 1]);
                    }
                    reach[0] = false;
                }
            }
            if !reach.contains(&true) {
                return false;
            }
        }
        reach[1..].contains(&true)
    }
}

/// Go's `filepath.Match` for one path element: whether `name` matches `pattern`; an error
/// means the pattern is malformed.
pub fn match_element(pattern: &str, name: &str) -> Result<bool, String> {
    Ok(ElementPattern::new(pattern)?.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(pattern: &str, p: &str) -> bool {
        let parts: Vec<&str> = p.split('/').collect();
        PathPattern::new(pattern).unwrap().matches_or_parent(&parts)
    }

    #[test]
    fn elements() {
        assert!(match_element("*.txt", "a.txt").unwrap());
        assert!(!match_element("*.txt", "a.txt.bak").unwrap());
        assert!(match_element("a*b*c", "aXbYbZc").unwrap());
        assert!(!match_element("a*b*c", "aXbYbZ").unwrap());
        assert!(match_element("[]a]", "]").unwrap());
        assert!(match_element("[!a]", "b").unwrap());
        assert!(match_element("[a\\-z]", "-").unwrap());
        assert!(match_element("\\[", "[").unwrap());
        assert!(match_element("\\", "").is_err());
        assert!(match_element("[a", "a").is_err());
        assert!(match_element("", "").unwrap());
        assert!(!match_element("", "a").unwrap());
        assert!(match_element("**", "").unwrap());
    }

    #[test]
    fn paths() {
        assert!(path("a/**/b", "a/b"));
        assert!(path("a/**/b", "a/x/y/b/c"));
        assert!(!path("a/**/b", "a/x/y/c"));
        assert!(path("**", "anything/at/all"));
        assert!(path("**/*.go", "x.go"));
        assert!(!path("*.go", "sub/x.go"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let pattern = format!("{}*b", "**/".repeat(60));
        let deep = vec!["a"; 40].join("/");
        assert!(!path(&pattern, &deep));
        assert!(path(&pattern, &format!("{deep}/ab")));
        let stars = format!("{}b", "*a".repeat(30));
        assert!(!match_element(&stars, &"a".repeat(200)).unwrap());
    }
}
