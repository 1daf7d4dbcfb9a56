//! The build context: a folder on the host, filtered by `.dockerignore` with Docker's pattern
//! semantics (Go `filepath.Match` per path element, `**` for any number of elements, anchored
//! at the context root, `!` exceptions, the last matching pattern wins); the patterns
//! themselves are [`crate::glob`]'s.

use std::path::{Component, Path, PathBuf};

use crate::glob::PathPattern;
pub use crate::glob::match_element;

/// Why the context could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context folder or the ignore file could not be read.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        cause: std::io::Error,
    },
    /// A signal stopped the build while it read the context.
    #[error(transparent)]
    Interrupted(#[from] crate::cancel::Interrupted),
    /// A `.dockerignore` pattern is malformed.
    #[error("{file}: invalid pattern {pattern:?}: {message}")]
    Pattern {
        /// The ignore file.
        file: String,
        /// The pattern as written.
        pattern: String,
        /// Why.
        message: String,
    },
}

/// One `.dockerignore` line.
#[derive(Debug, Clone)]
struct Rule {
    /// The cleaned pattern, compiled.
    pattern: PathPattern,
    /// `!pattern`: re-includes what earlier patterns excluded.
    exception: bool,
}

/// Compiled `.dockerignore` rules.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Parses the text of a `.dockerignore` file (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<IgnoreRules, ContextError> {
        let mut rules = Vec::new();
        for line in text.lines() {
            // As Docker's ignorefile reader: comments only at the start of a line.
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
                if pattern.is_empty() {
                    return Err(ContextError::Pattern {
                        file: file.into(),
                        pattern: line.into(),
                        message: "an exception needs a pattern after '!'".into(),
                    });
                }
            }
            let cleaned = clean_pattern(pattern);
            if cleaned.is_empty() {
                continue;
            }
            let pattern = PathPattern::new(&cleaned).map_err(|message| ContextError::Pattern {
                file: file.into(),
                pattern: line.into(),
                message,
            })?;
            rules.push(Rule { pattern, exception });
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether any rule is an exception (then excluded folders must still be walked).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether the context-relative path `rel` (`/`-separated) is excluded. As Docker's
    /// pattern matcher, a pattern also matches everything under a folder it matches.
    pub fn excluded(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        // The last matching rule decides, so look from the end.
        self.rules
            .iter()
            .rev()
            .find(|rule| rule.pattern.matches_or_parent(&parts))
            .is_some_and(|rule| !rule.exception)
    }
}

/// Lexically cleans a pattern as Go's `filepath.Clean`, without a leading `/`.
fn clean_pattern(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.join("/")
}

/// Whether a source word holds glob metacharacters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A build context folder with its ignore rules.
#[derive(Debug, Clone)]
pub struct Context {
    /// The context folder.
    pub root: PathBuf,
    /// The `.dockerignore` rules.
    pub ignore: IgnoreRules,
}

impl Context {
    /// Opens the context at `root`, reading `ignore_file` if given (a `<Dockerfile>.dockerignore`)
    /// else `root/.dockerignore` if present.
    pub fn open(root: &Path, ignore_file: Option<&Path>) -> Result<Context, ContextError> {
        let meta = std::fs::metadata(root).map_err(|cause| ContextError::Io {
            context: format!("reading the build context {}", root.display()),
            cause,
        })?;
        if !meta.is_dir() {
            return Err(ContextError::Io {
                context: format!("the build context {} is not a folder", root.display()),
                cause: std::io::Error::from(std::io::ErrorKind::NotADirectory),
            });
        }
        let default = root.join(".dockerignore");
        let file = ignore_file.map(Path::to_path_buf).unwrap_or(default);
        let ignore = match std::fs::read_to_string(&file) {
            Ok(text) => IgnoreRules::parse(&text, &file.display().to_string())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(cause) => {
                return Err(ContextError::Io {
                    context: format!("reading {}", file.display()),
                    cause,
                });
            }
        };
        Ok(Context {
            root: root.to_path_buf(),
            ignore,
        })
    }

    /// Whether the context-relative path is left out of the context.
    pub fn excluded(&self, rel: &str) -> bool {
        !rel.is_empty() && self.ignore.excluded(rel)
    }

    /// Every path of the context that is not ignored, relative, `/`-separated, sorted.
    /// Excluded folders are still walked when exceptions could re-include something in them.
    pub fn entries(&self) -> Result<Vec<String>, ContextError> {
        let mut out = Vec::new();
        self.walk("", &mut out)?;
        out.sort();
        Ok(out)
    }

    fn walk(&self, rel: &str, out: &mut Vec<String>) -> Result<(), ContextError> {
        let dir = self.root.join(rel);
        let read = std::fs::read_dir(&dir).map_err(|cause| ContextError::Io {
            context: format!("reading {}", dir.display()),
            cause,
        })?;
        for entry in read {
            crate::cancel::check()?;
            let entry = entry.map_err(|cause| ContextError::Io {
                context: format!("reading {}", dir.display()),
                cause,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let excluded = self.excluded(&child);
            if !excluded {
                out.push(child.clone());
            }
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && (!excluded || self.ignore.has_exceptions()) {
                self.walk(&child, out)?;
            }
        }
        Ok(())
    }
}

/// Unpacks a context sent as a tar stream (plain, gzip or zstd; `berth build -`) into the
/// empty folder `dir`, refusing entries that would land outside it.
pub fn unpack_tar(reader: impl std::io::Read, dir: &Path) -> Result<(), ContextError> {
    use berth_runtime::image::layer::{self, ApplyOptions, WhiteoutMode};
    let io = |cause| ContextError::Io {
        context: "reading the build context from stdin".into(),
        cause,
    };
    let target =
        cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority()).map_err(io)?;
    let reader = layer::decompress(reader).map_err(io)?;
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Remove,
        allow_devices: false,
        ..ApplyOptions::default()
    };
    layer::apply(reader, &target, &opts).map_err(|e| ContextError::Io {
        context: "unpacking the build context from stdin".into(),
        cause: std::io::Error::other(e.to_string()),
    })?;
    Ok(())
}

/// Cleans a context-relative source path: `..` cannot climb above the root.
pub fn clean_relative(p: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text, ".dockerignore").unwrap()
    }

    #[test]
    fn go_filepath_match() {
        assert!(match_element("*.txt", "a.txt").unwrap());
        assert!(!match_element("*.txt", "a.txt.bak").unwrap());
        assert!(match_element("a?c", "abc").unwrap());
        assert!(match_element("[a-c]x", "bx").unwrap());
        assert!(!match_element("[^a-c]x", "bx").unwrap());
        assert!(match_element("\\*", "*").unwrap());
        assert!(match_element("[", "x").is_err());
    }

    #[test]
    fn anchored_at_the_root_not_like_gitignore() {
        let r = rules("*.log\n");
        assert!(r.excluded("a.log"));
        // gitignore would exclude this one; Docker does not.
        assert!(!r.excluded("sub/a.log"));
        let r = rules("**/*.log\n");
        assert!(r.excluded("sub/deep/a.log"));
        assert!(r.excluded("a.log"));
    }

    #[test]
    fn folders_exclude_their_contents_and_last_match_wins() {
        let r = rules("# comment\nsecret\n*.md\n!README.md\n");
        assert!(r.excluded("secret/key"));
        assert!(r.excluded("notes.md"));
        assert!(!r.excluded("README.md"));
        let r = rules("!README.md\n*.md\n");
        assert!(r.excluded("README.md"));
        let r = rules("/./build/../dist\n");
        assert!(r.excluded("dist/x"));
    }

    /// The matcher as first written (recursive, exponential in the stars), kept as the
    /// reference the compiled one must agree with.
    mod reference {
        /// Whether `rel` is excluded by `lines` (pattern, exception): the last match wins.
        pub fn excluded(lines: &[(Vec<String>, bool)], rel: &str) -> bool {
            let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
            let mut excluded = false;
            for (elements, exception) in lines {
                if (1..=parts.len()).any(|n| match_path(elements, &parts[..n])) {
                    excluded = !exception;
                }
            }
            excluded
        }

        fn match_path(pattern: &[String], path: &[&str]) -> bool {
            match pattern.split_first() {
                None => path.is_empty(),
                Some((first, rest)) if first == "**" => {
                    (0..=path.len()).any(|skip| match_path(rest, &path[skip..]))
                }
                Some((first, rest)) => match path.split_first() {
                    Some((p, path_rest)) => match_element(first, p) && match_path(rest, path_rest),
                    None => false,
                },
            }
        }

        pub fn match_element(pattern: &str, name: &str) -> bool {
            let p: Vec<char> = pattern.chars().collect();
            let n: Vec<char> = name.chars().collect();
            match_from(&p, &n)
        }

        fn match_from(p: &[char], n: &[char]) -> bool {
            let Some(&c) = p.first() else {
                return n.is_empty();
            };
            match c {
                '*' => (0..=n.len()).any(|k| match_from(&p[1..], &n[k..])),
                '?' => !n.is_empty() && match_from(&p[1..], &n[1..]),
                '[' => {
                    let Some(((negated, ranges), end)) = parse_class(p, 0) else {
                        return false;
                    };
                    let Some(&ch) = n.first() else {
                        return false;
                    };
                    let inside = ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi);
                    inside != negated && match_from(&p[end..], &n[1..])
                }
                '\\' => p.len() > 1 && n.first() == Some(&p[1]) && match_from(&p[2..], &n[1..]),
                _ => n.first() == Some(&c) && match_from(&p[1..], &n[1..]),
            }
        }

        // The class syntax is the matcher's own; only the matching algorithm is the old one.
        use crate::glob::parse_class;
    }

    /// The reference's view of an ignore file (the same cleaning and `!` handling).
    fn reference_lines(text: &str) -> Vec<(Vec<String>, bool)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let l = l.trim();
                let (exception, pattern) = match l.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, l),
                };
                let cleaned = clean_pattern(pattern);
                (!cleaned.is_empty())
                    .then(|| (cleaned.split('/').map(str::to_string).collect(), exception))
            })
            .collect()
    }

    #[test]
    fn agrees_with_the_first_matcher_on_the_known_cases() {
        let files = [
            "*.log\n",
            "**/*.log\n",
            "# comment\nsecret\n*.md\n!README.md\n",
            "!README.md\n*.md\n",
            "/./build/../dist\n",
            "a/**/b\n**\n!x/**/y?\n",
            "[a-c]x\n[^a-c]y/*\n\\*\n",
        ];
        let paths = [
            "a.log",
            "sub/a.log",
            "sub/deep/a.log",
            "secret/key",
            "notes.md",
            "README.md",
            "dist/x",
            "a/b",
            "a/q/b/c",
            "x/1/y2",
            "bx",
            "dy/z",
            "*",
            "plain",
        ];
        for text in files {
            let (new, old) = (rules(text), reference_lines(text));
            for path in paths {
                assert_eq!(
                    new.excluded(path),
                    reference::excluded(&old, path),
                    "{text:?} on {path}"
                );
            }
        }
        for (pattern, name) in [
            ("*.txt", "a.txt"),
            ("*.txt", "a.txt.bak"),
            ("a?c", "abc"),
            ("[a-c]x", "bx"),
            ("[^a-c]x", "bx"),
            ("\\*", "*"),
        ] {
            assert_eq!(
                match_element(pattern, name).unwrap(),
                reference::match_element(pattern, name),
                "{pattern} on {name}"
            );
        }
    }

    /// Small patterns and paths over a few letters, so matches are frequent.
    fn pattern_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let element = prop_oneof![
            3 => "[ab*?]{0,3}",
            1 => Just("**".to_string()),
            1 => "\\[[!^]?[ab](-b)?\\]",
            1 => "\\\\[ab*]",
        ];
        let line = (any::<bool>(), prop::collection::vec(element, 1..4)).prop_map(
            |(exception, elements)| {
                format!("{}{}", if exception { "!" } else { "" }, elements.join("/"))
            },
        );
        prop::collection::vec(line, 1..4).prop_map(|lines| lines.join("\n"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        #[test]
        fn agrees_with_the_first_matcher(
            text in pattern_text(),
            paths in proptest::collection::vec("[ab]{0,2}(/[ab*]{0,2}){0,3}", 1..6),
        ) {
            let Ok(new) = IgnoreRules::parse(&text, ".dockerignore") else {
                return Ok(());
            };
            let old = reference_lines(&text);
            for path in &paths {
                proptest::prop_assert_eq!(
                    new.excluded(path),
                    reference::excluded(&old, path),
                    "{:?} on {:?}", text, path
                );
            }
        }

        #[test]
        fn parsing_and_matching_never_panic(text in "\\PC{0,40}", path in "\\PC{0,40}") {
            if let Ok(rules) = IgnoreRules::parse(&text, ".dockerignore") {
                let _ = rules.excluded(&path);
            }
        }
    }
}
