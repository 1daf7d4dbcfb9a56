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

/// (word, variables, expected result or `None` for an error)
type Vector = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

/// Vectors from BuildKit's own lexer tests (`TestProcessWithMatches` and friends).
const BUILDKIT_VECTORS: &[Vector] = &[
    ("x ${UNUSED}", &[], Some("x ")),
    (
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
        &[("FOO", "xxx"), ("BAR", "")],
        Some("xxx  ccc"),
    ),
    (
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        &[("FOO", "xxx"), ("BAR", "")],
        Some("xxx bbb ccc"),
    ),
    ("${FOO:-}", &[], Some("")),
    (
        "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
        &[("FOO", "xxx"), ("BAR", "")],
        Some("aaa bbb "),
    ),
    (
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
        &[("FOO", "xxx"), ("BAR", "")],
        Some("aaa  "),
    ),
    ("${BAR?bbb}", &[("BAR", "")], Some("")),
    ("${BAZ?ccc}", &[], None),
    ("${BAR:?bbb}", &[("BAR", "")], None),
    ("${BAZ:?}", &[], None),
    ("${FOO=aaa}", &[("FOO", "xxx")], None),
    ("${FOO=}", &[], None),
    (
        r"${FOO#()[]{\}^$.\*\?|\\}",
        &[("FOO", r"()[]{}^$.*?|\x")],
        Some("x"),
    ),
    (r"${FOO%%\**}", &[("FOO", "xx**")], Some("xx")),
    ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
    ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
    ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
    ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy")),
    ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
    (r"${FOO#?\?}", &[("FOO", "???y")], Some("?y")),
    (
        "${ABC:-.}${FOO%x}${ABC:-.}",
        &[("FOO", "xxyy")],
        Some(".xxyy."),
    ),
    (r"${FOO%%\**\*}", &[("FOO", "a***yy*")], Some("a")),
    (
        "${FOO%%$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        Some("xxyy"),
    ),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", r"\*/")],
        Some("/foo.*/*.txt - /foo..*.txt"),
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
        Some("/tmp/bar.txt - /bar.txt"),
    ),
    (
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "/a/foo/b/c.txt"),
            ("NEEDLE", "/?/"),
            ("REPLACEMENT", "/"),
        ],
        Some("/foo/b/c.txt - /foo/c.txt"),
    ),
    (
        r"${FOO//\//\/}",
        &[("FOO", "/tmp/foo.txt")],
        Some(r"\/tmp\/foo.txt"),
    ),
    (
        "${FOO/$BAR/ww}",
        &[("FOO", "xxyy"), ("BAR", "")],
        Some("wwxxyy"),
    ),
    ("${FOO//ww}", &[("FOO", "xxyy")], None),
    ("${FOO//}", &[("FOO", "xxyy")], None),
    ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
    ("${FOO///}", &[], Some("")),
    (
        "${VAR:?message here$ARG}",
        &[("VAR", "plain"), ("ARG", "x")],
        Some("plain"),
    ),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        &[
            ("VERSION", "v1.2.3"),
            ("TARGETOS", "linux"),
            ("TARGETARCH", "arm"),
            ("TARGETVARIANT", "v7"),
        ],
        Some("something-v1.2.3.linux-arm-v7.tar.gz"),
    ),
];

/// [`BUILDKIT_VECTORS`] give what BuildKit gives.
#[test]
fn buildkit_test_vectors() {
    for (word, vars, expected) in BUILDKIT_VECTORS {
        let result = expand_word(word, &env(vars), '\\');
        match expected {
            Some(expected) => assert_eq!(result.as_deref(), Ok(*expected), "{word}"),
            None => assert!(result.is_err(), "{word} gave {result:?}"),
        }
    }
    let err = expand_word(
        "${VAR:?message here$ARG}",
        &env(&[("VAR", ""), ("ARG", "x")]),
        '\\',
    );
    assert!(err.unwrap_err().message.contains("message herex"));
}
