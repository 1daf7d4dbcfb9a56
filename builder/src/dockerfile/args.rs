//! Splitting an instruction's text: keyword, `--flags`, and argument words in the forms
//! BuildKit uses (whitespace-delimited, quote-aware name=value words, JSON arrays).

/// A word with the byte offset where it starts in the logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) text: String,
    pub(crate) offset: usize,
}

/// Is `c` one of the separators of BuildKit's `[\t\v\f\r ]+`?
fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits on runs of spaces and tabs (quotes are not special), as for `FROM`, `EXPOSE`
/// and the shell form of `COPY`/`ADD`/`VOLUME`. `base` is the offset of `text`.
pub(crate) fn split_whitespace(text: &str, base: usize) -> Vec<Word> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (is_separator(c), start) {
            (true, Some(s)) => {
                words.push(Word {
                    text: text[s..i].to_string(),
                    offset: base + s,
                });
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    words
}

/// Splits `text` in two at the first run of separators: (first, rest, offset of rest).
pub(crate) fn split_first(text: &str) -> (&str, &str, usize) {
    match text.find(is_separator) {
        Some(i) => {
            let rest = text[i..].trim_start_matches(is_separator);
            (&text[..i], rest, text.len() - rest.len())
        }
        None => (text, "", text.len()),
    }
}

/// Leading `--flag[=value]` words of `text` (offsets from `base`) and the offset in `text`
/// where the arguments start.
///
/// Quotes are removed and `\` escapes the next character, as in BuildKit's
/// `extractBuilderFlags`; a bare `--` ends the flags.
pub(crate) fn extract_flags(text: &str, base: usize) -> (Vec<Word>, usize) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut flags = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut start = 0;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let (pos, mut ch) = chars[i];
        i += 1;
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                let next_is_dash = chars.get(i).is_some_and(|&(_, c)| c == '-');
                if ch != '-' || !next_is_dash {
                    return (flags, pos);
                }
                phase = Phase::Word;
                start = pos;
                word.push(ch);
            }
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (flags, pos);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(Word {
                            text: std::mem::take(&mut word),
                            offset: base + start,
                        });
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    continue;
                }
                if ch == '\\' {
                    let Some(&(_, escaped)) = chars.get(i) else {
                        continue;
                    };
                    i += 1;
                    ch = escaped;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                    continue;
                }
                if ch == '\\' {
                    let Some(&(_, escaped)) = chars.get(i) else {
                        phase = Phase::Word;
                        continue;
                    };
                    i += 1;
                    ch = escaped;
                }
                word.push(ch);
            }
        }
    }
    if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(Word {
            text: word,
            offset: base + start,
        });
    }
    (flags, text.len())
}

/// Splits on unquoted, unescaped whitespace keeping quotes and escapes in the words
/// (BuildKit's `parseWords`, used by `ENV`, `LABEL` and `ARG`).
pub(crate) fn split_words(text: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<char> = text.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let mut ch = chars[i];
        i += 1;
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        match phase {
            Phase::Word => {
                if ch.is_whitespace() {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    // An escape at the very end is dropped; otherwise it stays with its char.
                    let Some(&escaped) = chars.get(i) else {
                        continue;
                    };
                    word.push(ch);
                    i += 1;
                    ch = escaped;
                }
                word.push(ch);
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                }
                if ch == escape && quote != '\'' {
                    let Some(&escaped) = chars.get(i) else {
                        phase = Phase::Word;
                        continue;
                    };
                    word.push(ch);
                    i += 1;
                    ch = escaped;
                }
                word.push(ch);
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
    if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// The outcome of trying to read arguments as a JSON array.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Json {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// Not JSON (or not an array): the shell form.
    Text,
    /// A JSON array holding something other than strings: an error in BuildKit.
    NotStrings,
}

/// Reads `text` as a JSON array of strings if it is one.
pub(crate) fn parse_json(text: &str) -> Json {
    if !text.trim_start().starts_with('[') {
        return Json::Text;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map_or(Json::NotStrings, Json::Strings),
        _ => Json::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(words: Vec<Word>) -> Vec<String> {
        words.into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn flags() {
        let (flags, rest) = extract_flags("--a=1 --b='x y' --c cmd --d", 0);
        assert_eq!(texts(flags), ["--a=1", "--b=x y", "--c"]);
        assert_eq!(rest, 20);
        let (flags, rest) = extract_flags("--x -- --y", 10);
        assert_eq!(
            flags,
            [Word {
                text: "--x".into(),
                offset: 10
            }]
        );
        assert_eq!(rest, 6);
        let (flags, rest) = extract_flags("--only", 0);
        assert_eq!((texts(flags), rest), (vec!["--only".to_string()], 6));
    }

    #[test]
    fn words() {
        assert_eq!(
            split_words(r#"a=1 b="x y" c='p q'\ r d\ e "#, '\\'),
            [r"a=1", r#"b="x y""#, r"c='p q'\ r", r"d\ e"]
        );
        assert_eq!(texts(split_whitespace("a \t b", 0)), ["a", "b"]);
        assert_eq!(split_first("ab  cd e"), ("ab", "cd e", 4));
    }

    #[test]
    fn json() {
        assert_eq!(
            parse_json(r#"["a", "b"]"#),
            Json::Strings(vec!["a".into(), "b".into()])
        );
        assert_eq!(parse_json("['a']"), Json::Text);
        assert_eq!(parse_json(r#"["a"] x"#), Json::Text);
        assert_eq!(parse_json("[1]"), Json::NotStrings);
        assert_eq!(parse_json("echo"), Json::Text);
    }
}
