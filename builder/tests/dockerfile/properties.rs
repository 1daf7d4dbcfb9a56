//! Property tests: the parser and the expander never panic, stay within their bounds on any
//! input (hostile nesting and doubling included), and give back what was quoted or escaped.

use berth_builder::dockerfile::{
    Command, InstructionKind, MAX_GROWTH, MAX_NESTING, expand_word, expand_words, parse,
};
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

/// Variables for the bound properties: one value large enough that a few uses exceed the
/// growth limit.
fn big_env() -> std::collections::HashMap<String, String> {
    let big = "b".repeat(MAX_GROWTH / 3);
    env(&[("A", "a b"), ("E", ""), ("B", &big)])
}

/// Words that substitute a lot: `$B` repeated, nested defaults, pattern replacements.
fn greedy_word() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(
            &[
                "$B",
                "${B}",
                "${U:-$B}",
                "${B//b/$B}",
                "${B/b/xy}",
                "x",
                "\\",
            ][..],
        ),
        0..8,
    )
    .prop_map(|parts| parts.concat())
}

/// `${U:-` `depth` times around `x`.
fn nested(depth: usize) -> String {
    format!("{}x{}", "${U:-".repeat(depth), "}".repeat(depth))
}

/// Expansion in a thread with a small stack: the nesting bound must keep recursion shallow.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// Escapes `text` for inside double quotes: `\`, `"` and `$` take a backslash.
fn double_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if matches!(c, '\\' | '"' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Fewer cases: each one expands up to megabytes.
fn bounds_config() -> ProptestConfig {
    ProptestConfig::with_cases(32)
}

proptest! {
    #![proptest_config(bounds_config())]

    #[test]
    fn expansion_grows_a_word_by_at_most_the_limit(word in greedy_word()) {
        let vars = big_env();
        if let Ok(text) = expand_word(&word, &vars, '\\') {
            prop_assert!(text.len() <= word.len() + MAX_GROWTH, "{} bytes", text.len());
        }
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_not_a_crash(depth in 0usize..3 * MAX_NESTING) {
        let result = on_small_stack(move || expand_word(&nested(depth), &env(&[]), '\\'));
        if depth <= MAX_NESTING {
            prop_assert_eq!(result.as_deref(), Ok("x"));
        } else {
            let message = result.unwrap_err().to_string();
            prop_assert!(message.contains("nested"), "{}", message);
            prop_assert!(message.len() < 1000, "{}", message);
        }
    }

    #[test]
    fn single_quoted_text_expands_to_itself(text in "[^']{0,40}") {
        let vars = env(&[("A", "a")]);
        prop_assert_eq!(expand_word(&format!("'{text}'"), &vars, '\\'), Ok(text));
    }

    #[test]
    fn escaped_text_expands_to_itself(text in "\\PC{0,40}", backtick in any::<bool>()) {
        let escape = if backtick { '`' } else { '\\' };
        let word: String = text.chars().flat_map(|c| [escape, c]).collect();
        prop_assert_eq!(expand_word(&word, &env(&[("A", "a")]), escape), Ok(text));
    }

    #[test]
    fn label_values_round_trip(key in "[a-z][a-z0-9.]{0,8}", value in "[^\\pC]{0,40}") {
        let source = format!("FROM x\nLABEL {key}={}\n", double_quoted(&value));
        let file = parse(&source).unwrap();
        let expanded = file.instructions[1].expand(&env(&[]), '\\').unwrap();
        prop_assert_eq!(expanded.kind, InstructionKind::Label(vec![(key, value)]));
    }

    #[test]
    fn exec_form_round_trips_through_json(argv in prop::collection::vec("\\PC{0,12}", 1..5)) {
        let source = format!("FROM x\nCMD {}\n", serde_json::to_string(&argv).unwrap());
        let file = parse(&source).unwrap();
        prop_assert_eq!(&file.instructions[1].kind, &InstructionKind::Cmd(Command::Exec(argv)));
    }
}

#[test]
fn hostile_structure_parses_or_fails_cleanly() {
    let deep = 100_000;
    let cases = [
        // JSON nested past serde_json's limit is not an exec form: the shell form takes it.
        format!("FROM x\nCMD {}{}\n", "[".repeat(deep), "]".repeat(deep)),
        format!("FROM x\nSHELL {}\n", "[".repeat(deep)),
        format!("FROM x\nENV V={}\n", nested(deep)),
        format!("FROM x\nRUN <<A {} cat\nA\n", nested(deep)),
        format!("FROM x\nCOPY <<{} /x\n", nested(deep)),
        format!("FROM x\nRUN {}\n", "<<A ".repeat(10_000)),
        format!("FROM x\nLABEL {}\n", "a=b \\\n".repeat(10_000)),
    ];
    for source in cases {
        let source: &'static str = Box::leak(source.into_boxed_str());
        on_small_stack(move || {
            if let Ok(file) = parse(source) {
                for instruction in &file.instructions {
                    let _ = instruction.expand(&env(&[]), '\\');
                }
            }
        });
    }
}
