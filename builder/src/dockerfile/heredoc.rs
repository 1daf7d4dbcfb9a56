//! Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) and their content.

use super::expand::{Lexer, raw_words};
use super::instruction::Heredoc;

/// A heredoc marker found in an instruction, before its content is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) heredoc: Heredoc,
    /// Byte offset of the marker word in the text it was found in.
    pub(crate) offset: usize,
}

/// Parses one word as a heredoc marker: `^(\d*)<<(-?)\s*([^<]*)$` with a single-word
/// delimiter (whitespace after `<<` is allowed since BuildKit v0.22).
///
/// The delimiter is quoted (so the content must not be expanded later) when removing quotes
/// changes it, as BuildKit decides.
pub(crate) fn from_word(word: &str) -> Option<Heredoc> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, delimiter) = match rest.strip_prefix('-') {
        Some(after) => (true, after),
        None => (false, rest),
    };
    let delimiter = delimiter.trim_start_matches([' ', '\t', '\n', '\x0c', '\r']);
    if delimiter.is_empty() || delimiter.contains('<') {
        return None;
    }
    let no_env = |_: &str| None;
    let lexer = Lexer {
        skip_unset: true,
        ..Lexer::new('\\')
    };
    let (_, words) = lexer.process(delimiter, &no_env).ok()?;
    let [name] = words.as_slice() else {
        return None;
    };
    let raw = Lexer {
        raw_quotes: true,
        ..lexer
    };
    let (_, raw_words) = raw.process(delimiter, &no_env).ok()?;
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    let expand = raw_words.first().is_some_and(|r| quotes(r) == quotes(name));
    Some(Heredoc {
        name: name.clone(),
        fd: word[..digits].parse().ok(),
        expand,
        chomp,
        content: String::new(),
    })
}

/// Whether `word` is a marker missing its delimiter (`<<`, `<<-`, `3<<`), which then is the
/// next word (`<< EOF`).
pub(crate) fn is_bare_marker(word: &str) -> bool {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    rest == "<<" || rest == "<<-"
}

/// Heredoc markers among the shell words of `text`, in order, with their offsets in `text`.
pub(crate) fn markers_in(text: &str) -> Vec<Marker> {
    if !text.contains("<<") {
        return Vec::new();
    }
    let mut located = Vec::new();
    let mut search_from = 0;
    for word in raw_words(text) {
        // Raw words are spelled as in the source, so searching finds where each one starts.
        let offset = text
            .get(search_from..)
            .and_then(|rest| rest.find(&word))
            .map_or(search_from, |i| search_from + i);
        search_from = (offset + word.len()).min(text.len());
        while !text.is_char_boundary(search_from) {
            search_from -= 1;
        }
        located.push((word, offset));
    }
    let mut markers = Vec::new();
    let mut words = located.into_iter();
    while let Some((mut word, offset)) = words.next() {
        if is_bare_marker(&word)
            && let Some((next, _)) = words.next()
        {
            word = format!("{word} {next}");
        }
        if let Some(heredoc) = from_word(&word) {
            markers.push(Marker { heredoc, offset });
        }
    }
    markers
}

/// Removes leading tabs from every line, for `<<-` heredocs.
pub(crate) fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        let h = from_word("<<EOF").unwrap();
        assert_eq!(
            (h.name.as_str(), h.expand, h.chomp, h.fd),
            ("EOF", true, false, None)
        );
        let h = from_word("<<-'EOF'").unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.chomp), ("EOF", false, true));
        let h = from_word("3<<\"E\"OF").unwrap();
        assert_eq!((h.name.as_str(), h.expand, h.fd), ("EOF", false, Some(3)));
        assert!(from_word("<<").is_none());
        assert!(from_word("a<<EOF").is_none());
        assert!(from_word("<<<EOF").is_none());
        let found = markers_in("<<A cat - <<B");
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].offset, found[1].offset), (0, 10));
        assert!(markers_in("echo '<<A'").is_empty());
        let found = markers_in("cat <<  EOF > f << -X");
        let names: Vec<&str> = found.iter().map(|m| m.heredoc.name.as_str()).collect();
        assert_eq!(names, ["EOF", "-X"]);
        assert_eq!(found[0].offset, 4);
    }

    #[test]
    fn chomps_tabs() {
        assert_eq!(chomp("\t\ta\n\tb\n  c\n"), "a\nb\n  c\n");
    }
}
