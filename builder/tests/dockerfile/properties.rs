//! Property tests: the parser and the expander never panic.

use berth_builder::dockerfile::{expand_word, expand_words, parse};
use proptest::prelude::*;

use super::env;

const TOKENS: &[&str] = &[
    "FROM",
    "from",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "NONE",
    "AS",
    "alpine",
    "x",
    "/dst/",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\\",
    "\\\n",
    "`",
    "`\n",
    "#",
    "# escape=`\n",
    "# syntax=x\n",
    "# check=y\n",
    "\"",
    "'",
    "[",
    "]",
    ",",
    "=",
    "$",
    "${",
    "}",
    ":-",
    ":?",
    "#",
    "%",
    "/",
    "<<",
    "<<-",
    "EOF",
    "\nEOF\n",
    "<<EOF",
    "<<'EOF'",
    "3<<A",
    "--mount=",
    "type=cache",
    "type=secret",
    "target=/x",
    "--from=",
    "--chown=",
    "--link",
    "--platform=",
    "--interval=",
    "1m30s",
    "--retries=",
    "--",
    "-",
    "é",
    "\u{feff}",
    "\0",
];

fn arbitrary_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => proptest::char::range(' ', '~'),
            1 => Just('\n'),
            1 => any::<char>(),
        ],
        0..200,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn dockerfile_ish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|tokens| tokens.concat())
}

/// Parsing and, when it succeeds, expanding every instruction must not panic.
fn exercise(source: &str) {
    if let Ok(file) = parse(source) {
        let vars = env(&[("A", "a b"), ("E", ""), ("P", "/p")]);
        for instruction in &file.instructions {
            let _ = instruction.expand(&vars, file.directives.escape);
        }
        let _ = file.stages();
    }
}

/// 2000 cases keep the suite fast; set `PROPTEST_CASES` for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_never_panics_on_arbitrary_text(source in arbitrary_text()) {
        exercise(&source);
    }

    #[test]
    fn parse_never_panics_on_dockerfile_tokens(source in dockerfile_ish()) {
        exercise(&source);
        exercise(&format!("FROM x\n{source}"));
    }

    #[test]
    fn expand_word_never_panics(
        word in prop_oneof![arbitrary_text(), dockerfile_ish()],
        backtick in any::<bool>(),
    ) {
        let vars = env(&[("A", "a b"), ("E", ""), ("P", "x/y.z")]);
        let escape = if backtick { '`' } else { '\\' };
        let _ = expand_word(&word, &vars, escape);
        let _ = expand_words(&word, &vars, escape);
    }
}
