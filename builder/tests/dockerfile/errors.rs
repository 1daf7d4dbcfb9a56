//! Errors carry the right line, column and message.

use berth_builder::dockerfile::parse;

/// (source, line, column, expected message fragment)
type Row = (&'static str, usize, usize, &'static str);

fn check(table: &[Row]) {
    for &(source, line, column, fragment) in table {
        let err = match parse(source) {
            Ok(file) => panic!("{source:?} parsed: {file:#?}"),
            Err(err) => err,
        };
        assert!(
            err.message.contains(fragment),
            "{source:?}: {:?} lacks {fragment:?}",
            err.message
        );
        assert_eq!((err.line, err.column), (line, column), "{source:?}: {err}");
        assert_eq!(
            err.to_string(),
            format!("line {line}, column {column}: {}", err.message)
        );
        assert!(!err.message.ends_with('.'), "{err}");
    }
}

#[test]
fn unknown_instruction() {
    check(&[
        (
            "FROM x\nFORM y",
            2,
            1,
            "unknown instruction: FORM (did you mean FROM?)",
        ),
        (
            "FROM x\n   RUNN y",
            2,
            4,
            "unknown instruction: RUNN (did you mean RUN?)",
        ),
        (
            "FROM x\nRUN a \\\n b\nxyzzy",
            4,
            1,
            "unknown instruction: xyzzy",
        ),
        ("FROM x\nONBUILD RUNN x", 2, 9, "unknown instruction: RUNN"),
    ]);
}

/// Instructions missing arguments, as BuildKit reports them.
const MISSING_ARGUMENTS: &[Row] = &[
    ("FROM", 1, 1, "FROM requires either one or three arguments"),
    (
        "FROM a b",
        1,
        6,
        "FROM requires either one or three arguments",
    ),
    (
        "FROM x AS 1st",
        1,
        11,
        "invalid name for build stage: \"1st\"",
    ),
    (
        "FROM x\nCOPY onlyone",
        2,
        6,
        "COPY requires at least two arguments",
    ),
    ("FROM x\nADD", 2, 1, "ADD requires at least two arguments"),
    ("FROM x\nENV", 2, 1, "ENV requires at least one argument"),
    ("FROM x\nENV a", 2, 5, "ENV must have two arguments"),
    ("FROM x\nLABEL a", 2, 7, "LABEL must have two arguments"),
    ("FROM x\nENV a=1 b", 2, 5, "can't find = in \"b\""),
    ("FROM x\nENV =1", 2, 5, "ENV names can not be blank"),
    ("FROM x\nARG", 2, 1, "ARG requires at least one argument"),
    ("FROM x\nARG =x", 2, 5, "ARG names can not be blank"),
    ("FROM x\nRUN", 2, 1, "RUN requires at least one argument"),
    ("FROM x\nCMD", 2, 1, "CMD requires at least one argument"),
    (
        "FROM x\nENTRYPOINT   ",
        2,
        1,
        "ENTRYPOINT requires at least one argument",
    ),
    ("FROM x\nUSER", 2, 1, "USER requires exactly one argument"),
    (
        "FROM x\nWORKDIR",
        2,
        1,
        "WORKDIR requires exactly one argument",
    ),
    (
        "FROM x\nSTOPSIGNAL",
        2,
        1,
        "STOPSIGNAL requires exactly one argument",
    ),
    (
        "FROM x\nMAINTAINER",
        2,
        1,
        "MAINTAINER requires exactly one argument",
    ),
    (
        "FROM x\nEXPOSE",
        2,
        1,
        "EXPOSE requires at least one argument",
    ),
    (
        "FROM x\nVOLUME",
        2,
        1,
        "VOLUME requires at least one argument",
    ),
    (
        "FROM x\nVOLUME [\"\"]",
        2,
        8,
        "VOLUME specified can not be an empty string",
    ),
    (
        "FROM x\nONBUILD",
        2,
        1,
        "ONBUILD requires at least one argument",
    ),
    (
        "FROM x\nHEALTHCHECK",
        2,
        1,
        "HEALTHCHECK requires at least one argument",
    ),
    (
        "FROM x\nHEALTHCHECK CMD",
        2,
        13,
        "missing command after HEALTHCHECK CMD",
    ),
    (
        "FROM x\nHEALTHCHECK NONE x",
        2,
        18,
        "HEALTHCHECK NONE takes no arguments",
    ),
    (
        "FROM x\nHEALTHCHECK FOO x",
        2,
        13,
        "unknown type \"FOO\" in HEALTHCHECK",
    ),
    (
        "FROM x\nCMD [\"a\", 1]",
        2,
        5,
        "arrays must be comprised of strings only",
    ),
    (
        "FROM x\nCOPY a <<EOF",
        2,
        8,
        "COPY cannot accept a heredoc as a destination",
    ),
];

#[test]
fn missing_arguments() {
    check(MISSING_ARGUMENTS);
}

#[test]
fn unterminated_heredoc() {
    check(&[
        (
            "FROM x\nRUN cat <<EOF\nline\n",
            2,
            9,
            "unterminated heredoc \"EOF\"",
        ),
        (
            "FROM x\nRUN <<A cat <<B\nA\nb\n",
            2,
            13,
            "unterminated heredoc \"B\"",
        ),
        (
            "FROM x\nCOPY <<EOF /x\nhello",
            2,
            6,
            "unterminated heredoc \"EOF\"",
        ),
        (
            "FROM x\nRUN \\\n  <<-EOF x\n\tEOFX",
            3,
            3,
            "unterminated heredoc \"EOF\"",
        ),
    ]);
}

/// Malformed and unknown instruction flags.
const BAD_FLAGS: &[Row] = &[
    (
        "FROM x\nRUN --mout=type=cache x",
        2,
        5,
        "unknown flag: mout (did you mean mount?)",
    ),
    (
        "FROM x\nCOPY --form=a b c",
        2,
        6,
        "unknown flag: form (did you mean from?)",
    ),
    ("FROM x\nADD --from=a b c", 2, 5, "unknown flag: from"),
    ("FROM x\nENV --x=1 a=b", 2, 5, "unknown flag: x"),
    (
        "FROM --platfrom=a x",
        1,
        6,
        "unknown flag: platfrom (did you mean platform?)",
    ),
    (
        "FROM x\nCOPY --from=a --from=b a b",
        2,
        15,
        "duplicate flag specified: from",
    ),
    (
        "FROM x\nCOPY --from a b",
        2,
        6,
        "missing a value on flag: from",
    ),
    (
        "FROM x\nCOPY --link=maybe a b",
        2,
        6,
        "expecting boolean value for flag link",
    ),
    (
        "FROM x\nRUN --network=bridge x",
        2,
        5,
        "unsupported network mode \"bridge\"",
    ),
    (
        "FROM x\nRUN --security=loose x",
        2,
        5,
        "unsupported security mode \"loose\"",
    ),
    (
        "FROM x\nRUN --mount=type=cache x",
        2,
        5,
        "cache mount requires a target",
    ),
    (
        "FROM x\nRUN --mount=type=cahce,target=/x y",
        2,
        5,
        "(did you mean cache?)",
    ),
    (
        "FROM x\nRUN \\\n  --mount=bogus=1 x",
        3,
        3,
        "unexpected key 'bogus' in 'bogus=1'",
    ),
    (
        "FROM x\nRUN --mount=type=bind,target=/é --bogus x",
        2,
        33,
        "unknown flag: bogus",
    ),
    (
        "FROM x\nRUN --mount=target=/x,uid=1 y",
        2,
        5,
        "uid not allowed for \"bind\" type mounts",
    ),
    (
        "FROM x\nHEALTHCHECK --interval=5 CMD x",
        2,
        13,
        "missing unit",
    ),
    (
        "FROM x\nHEALTHCHECK --timeout=1us CMD x",
        2,
        13,
        "cannot be less than 1ms",
    ),
    (
        "FROM x\nHEALTHCHECK --retries=0 CMD x",
        2,
        13,
        "--retries must be at least 1",
    ),
    (
        "FROM x\nHEALTHCHECK --retries=x CMD x",
        2,
        13,
        "invalid value for --retries",
    ),
];

#[test]
fn bad_flags() {
    check(BAD_FLAGS);
}

#[test]
fn shell_requires_json() {
    check(&[
        (
            "FROM x\nSHELL /bin/sh -c",
            2,
            7,
            "SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM x\nSHELL ['/bin/sh']",
            2,
            7,
            "SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM x\nSHELL []",
            2,
            7,
            "SHELL requires at least one argument",
        ),
        (
            "FROM x\nSHELL",
            2,
            1,
            "SHELL requires at least one argument",
        ),
    ]);
}

#[test]
fn onbuild_triggers() {
    check(&[
        (
            "FROM x\nONBUILD ONBUILD RUN x",
            2,
            9,
            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            "FROM x\nONBUILD FROM y",
            2,
            9,
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM x\nonbuild  maintainer y",
            2,
            10,
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
    ]);
}

#[test]
fn directives_and_structure() {
    check(&[
        (
            "# escape=x\nFROM y",
            1,
            1,
            "invalid escape token 'x' does not match ` or \\",
        ),
        (
            "# syntax=a\n# syntax=b\nFROM x",
            2,
            1,
            "only one syntax parser directive can be used",
        ),
        (
            "# escape=`\n# ESCAPE=\\\nFROM x",
            2,
            1,
            "only one escape parser directive can be used",
        ),
        ("RUN x", 1, 1, "RUN before the first FROM"),
        ("ARG a\n  CMD x", 2, 3, "CMD before the first FROM"),
        ("", 1, 1, "file with no instructions"),
        ("# just a comment\n\n", 2, 1, "file with no instructions"),
    ]);
}
