//! Word expansion with BuildKit's shell-lexer semantics.

use berth_builder::dockerfile::{expand_word, expand_words};

use super::{env, strings};

#[test]
fn substitution_forms() {
    let vars = env(&[
        ("A", "a"),
        ("E", ""),
        ("B", "b c"),
        ("P", "dir/sub/file.tar.gz"),
    ]);
    let table = [
        ("$A", "a"),
        ("${A}", "a"),
        ("${A}x", "ax"),
        ("$Ax", ""),
        ("$U", ""),
        ("${A:-w}", "a"),
        ("${E:-w}", "w"),
        ("${U:-w}", "w"),
        ("${E-w}", ""),
        ("${U-w}", "w"),
        ("${A:+w}", "w"),
        ("${E:+w}", ""),
        ("${E+w}", "w"),
        ("${U+w}", ""),
        ("${A:?oops}", "a"),
        ("${E?oops}", ""),
        ("${U:-${A}}", "a"),
        ("${U:-${U2:-deep}}", "deep"),
        ("${U:-'lit $A'}", "lit $A"),
        ("${U:-\"q $A\"}", "q a"),
        ("${P#*/}", "sub/file.tar.gz"),
        ("${P##*/}", "file.tar.gz"),
        ("${P%.*}", "dir/sub/file.tar"),
        ("${P%%.*}", "dir/sub/file"),
        ("${P/sub/SUB}", "dir/SUB/file.tar.gz"),
        ("${P//\\//_}", "dir_sub_file.tar.gz"),
        ("$", "$"),
        ("a$", "a$"),
        ("$1x", "x"),
        ("\\", ""),
        ("x\\", "x"),
        ("\\\\", "\\"),
        ("'\"'", "\""),
        ("\"'\"", "'"),
        ("$B", "b c"),
    ];
    for (word, expected) in table {
        assert_eq!(
            expand_word(word, &vars, '\\').as_deref(),
            Ok(expected),
            "{word}"
        );
    }
}

#[test]
fn closures_and_backtick_escape() {
    let lookup = |name: &str| (name == "X").then(|| "x".to_string());
    assert_eq!(expand_word("`$X $X", &lookup, '`').as_deref(), Ok("$X x"));
    assert_eq!(expand_word("\\$X", &lookup, '`').as_deref(), Ok("\\x"));
    assert_eq!(expand_word("\"`\"\"", &lookup, '`').as_deref(), Ok("\""));
}

#[test]
fn errors() {
    let vars = env(&[("E", "")]);
    let table = [
        ("${U:?must be set}", "U: must be set"),
        ("${U?}", "U: is not allowed to be unset"),
        ("${E:?}", "E: is not allowed to be empty"),
        ("${A", "syntax error: missing '}'"),
        ("${A:-x", "syntax error: missing '}'"),
        ("${", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${:a}", "syntax error: bad substitution"),
        ("${A:x}", "unsupported modifier (:x) in substitution"),
        ("${A:#x}", "unsupported modifier (:#) in substitution"),
        ("${A^}", "unsupported modifier (^) in substitution"),
        (
            "'open",
            "unexpected end of statement while looking for matching single-quote",
        ),
        (
            "\"open",
            "unexpected end of statement while looking for matching double-quote",
        ),
        ("${A/x", "syntax error: missing '/' in ${}"),
    ];
    for (word, message) in table {
        let err = expand_word(word, &vars, '\\').unwrap_err();
        assert_eq!(err.message, message, "{word}");
        assert_eq!(err.word, word);
        assert_eq!(
            err.to_string(),
            format!("failed to process {word:?}: {message}")
        );
    }
}

#[test]
fn word_splitting() {
    let vars = env(&[("P", "80  443/udp"), ("E", "")]);
    let table: [(&str, &[&str]); 6] = [
        ("$P", &["80", "443/udp"]),
        ("\"$P\"", &["80  443/udp"]),
        ("a b", &["a", "b"]),
        ("a\\ b", &["a b"]),
        ("'' $E x", &["x"]),
        ("pre$P", &["pre80", "443/udp"]),
    ];
    for (word, expected) in table {
        assert_eq!(
            expand_words(word, &vars, '\\'),
            Ok(strings(expected)),
            "{word}"
        );
    }
}
