//! The tricky rules of the Dockerfile syntax, one test each.

use berth_builder::dockerfile::{Command, CopySource, InstructionKind, expand_word, parse};

use super::{after_from, env, one, strings};

fn command_of(kind: InstructionKind) -> Command {
    match kind {
        InstructionKind::Run { command, .. }
        | InstructionKind::Cmd(command)
        | InstructionKind::Entrypoint(command) => command,
        other => panic!("no command in {other:?}"),
    }
}

#[test]
fn invalid_json_exec_form_is_shell_form() {
    let table = [
        ("CMD ['a', 'b']", Command::Shell("['a', 'b']".into())),
        (r#"RUN ["a", "b""#, Command::Shell(r#"["a", "b""#.into())),
        (
            r#"ENTRYPOINT ["a"] extra"#,
            Command::Shell(r#"["a"] extra"#.into()),
        ),
        ("CMD [not json]", Command::Shell("[not json]".into())),
        (r#"CMD ["a",]"#, Command::Shell(r#"["a",]"#.into())),
        (r#"CMD  ["a",  "b"]  "#, Command::Exec(strings(&["a", "b"]))),
        (
            r#"RUN ["a\tb", "\u00e9"]"#,
            Command::Exec(strings(&["a\tb", "é"])),
        ),
    ];
    for (source, expected) in table {
        assert_eq!(command_of(one(source)), expected, "{source}");
    }
    // COPY/ADD/VOLUME fall back to whitespace-separated words.
    let InstructionKind::Copy(spec) = one("COPY ['a', 'b'] /x") else {
        panic!()
    };
    assert_eq!(
        spec.sources,
        [
            CopySource::Path("['a',".into()),
            CopySource::Path("'b']".into())
        ]
    );
}

#[test]
fn escapes_in_shell_form_are_kept_except_continuation() {
    let table = [
        (r"RUN echo a\nb", r"echo a\nb"),
        (r#"RUN echo "a\"b" \$HOME"#, r#"echo "a\"b" \$HOME"#),
        ("RUN echo a \\\n  b", "echo a   b"),
        ("RUN echo a\\\nb", "echo ab"),
        ("RUN echo a \\  \t\nb", "echo a b"),
        (r"CMD C:\path\ x", r"C:\path\ x"),
        // A doubled escape at the end does not continue the line.
        ("RUN echo \\\\\nCMD x", "echo \\\\"),
    ];
    for (source, expected) in table {
        let first = after_from(source).remove(0);
        assert_eq!(
            command_of(first.kind),
            Command::Shell(expected.into()),
            "{source:?}"
        );
    }
}

#[test]
fn quote_removal_in_expanded_words() {
    let vars = env(&[("A", "x y"), ("E", "")]);
    let table = [
        ("he'll'o", "hello"),
        (r#""a b""#, "a b"),
        (r#"'$A'"#, "$A"),
        (r#""$A""#, "x y"),
        (r#"pre"$A"post"#, "prex ypost"),
        (r"\$A", "$A"),
        (r"a\ b", "a b"),
        (r#""a\"b""#, r#"a"b"#),
        (r#""a\nb""#, r"a\nb"),
        ("''", ""),
        ("$E", ""),
        ("$UNSET-x", "-x"),
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
fn env_substitution_sees_values_from_before_the_line() {
    let env_line = &after_from("ENV a=bye b=$a c=${a}-x")[0];
    let expanded = env_line.expand(&env(&[("a", "hi")]), '\\').unwrap();
    assert_eq!(
        expanded.kind,
        InstructionKind::Env(vec![
            ("a".into(), "bye".into()),
            ("b".into(), "hi".into()),
            ("c".into(), "hi-x".into()),
        ])
    );
    // The original text is untouched, for cache keys.
    assert_eq!(expanded.original, "ENV a=bye b=$a c=${a}-x");
}

#[test]
fn comments_and_empty_lines_between_continuations_are_dropped() {
    let table = [
        ("RUN a \\\n# comment\n  b", "a   b", 4),
        ("RUN a \\\n  # indented comment\n\n   \nb", "a b", 6),
        ("RUN a \\\n#c1\n#c2 \\\nb \\\nc", "a b c", 6),
    ];
    for (source, expected, end_line) in table {
        let run = after_from(source).remove(0);
        assert_eq!(
            command_of(run.kind),
            Command::Shell(expected.into()),
            "{source:?}"
        );
        assert_eq!((run.line, run.end_line), (2, end_line), "{source:?}");
    }
}

#[test]
fn directives_count_only_before_the_first_comment_blank_or_instruction() {
    let table = [
        ("# escape=`\nFROM x", '`'),
        ("#ESCAPE = `\nFROM x", '`'),
        ("  # escape=`\nFROM x", '`'),
        ("# syntax=docker/dockerfile:1\n# escape=`\nFROM x", '`'),
        ("# a comment\n# escape=`\nFROM x", '\\'),
        ("\n# escape=`\nFROM x", '\\'),
        ("FROM x\n# escape=`", '\\'),
        ("# unknown=1\n# escape=`\nFROM x", '\\'),
    ];
    for (source, escape) in table {
        let file = parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
        assert_eq!(file.directives.escape, escape, "{source:?}");
    }
    let file =
        parse("# syntax = docker/dockerfile:1.7 \n# check=skip=all;error=true\nFROM x").unwrap();
    assert_eq!(
        file.directives.syntax.as_deref(),
        Some("docker/dockerfile:1.7")
    );
    assert_eq!(
        file.directives.check.as_deref(),
        Some("skip=all;error=true")
    );
    let file = parse("FROM x\n# syntax=foo").unwrap();
    assert_eq!(file.directives.syntax, None);
}

#[test]
fn backtick_escape_changes_continuation_and_escaping() {
    let file = parse(
        "# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\nRUN copy c:\\\nENV A=`$B C=\\$B D=\"`\"\"",
    )
    .unwrap();
    let kinds: Vec<InstructionKind> = file.instructions.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(
        command_of(kinds[1].clone()),
        Command::Shell("dir c:\\   /w".into())
    );
    // A backslash at the end of a line is just a backslash now.
    assert_eq!(
        command_of(kinds[2].clone()),
        Command::Shell("copy c:\\".into())
    );
    let expanded = file.instructions[3]
        .expand(&env(&[("B", "b")]), file.directives.escape)
        .unwrap();
    assert_eq!(
        expanded.kind,
        InstructionKind::Env(vec![
            ("A".into(), "$B".into()),
            ("C".into(), "\\b".into()),
            ("D".into(), "\"".into()),
        ])
    );
}

#[test]
fn copy_from_is_not_expanded() {
    let copy = &after_from("COPY --from=$STAGE --chown=$U:$G --chmod=$M $SRC ${DIR}/")[0];
    let vars = env(&[
        ("STAGE", "build"),
        ("U", "1"),
        ("G", "2"),
        ("M", "0600"),
        ("SRC", "a.txt"),
        ("DIR", "/app"),
    ]);
    let InstructionKind::Copy(spec) = copy.expand(&vars, '\\').unwrap().kind else {
        panic!()
    };
    assert_eq!(spec.from.as_deref(), Some("$STAGE"));
    assert_eq!(spec.chown.as_deref(), Some("1:2"));
    assert_eq!(spec.chmod.as_deref(), Some("0600"));
    assert_eq!(spec.sources, [CopySource::Path("a.txt".into())]);
    assert_eq!(spec.dest, "/app/");
}

#[test]
fn expansion_applies_to_exactly_the_buildkit_fields() {
    let vars = env(&[("V", "val"), ("P", "80 443")]);
    let expanded = |body: &str| after_from(body).remove(0).expand(&vars, '\\').unwrap().kind;
    let unchanged = [
        "RUN echo $V",
        "CMD echo $V",
        "ENTRYPOINT [\"$V\"]",
        "SHELL [\"$V\"]",
        "HEALTHCHECK CMD $V",
        "ONBUILD ENV X=$V",
        "MAINTAINER $V",
    ];
    for body in unchanged {
        assert_eq!(expanded(body), one(body), "{body}");
        assert!(
            body.starts_with("RUN") == one(body).allows_expansion(),
            "{body}"
        );
    }
    let changed = [
        ("USER $V", InstructionKind::User("val".into())),
        ("WORKDIR /$V", InstructionKind::Workdir("/val".into())),
        ("STOPSIGNAL $V", InstructionKind::Stopsignal("val".into())),
        (
            "VOLUME /$V \"/b\"",
            InstructionKind::Volume(strings(&["/val", "/b"])),
        ),
        (
            "EXPOSE $P 22",
            InstructionKind::Expose(strings(&["80", "443", "22"])),
        ),
        (
            "LABEL $V=\"$V\"",
            InstructionKind::Label(vec![("val".into(), "val".into())]),
        ),
    ];
    for (body, expected) in changed {
        assert!(one(body).allows_expansion(), "{body}");
        assert_eq!(expanded(body), expected, "{body}");
    }
    let InstructionKind::Arg(decls) = expanded("ARG X=${V:-d} Y") else {
        panic!()
    };
    assert_eq!(decls[0].default.as_deref(), Some("val"));
    assert_eq!(decls[1].default, None);
    let InstructionKind::Run { mounts, .. } = expanded("RUN --mount=type=cache,id=$V,target=/$V x")
    else {
        panic!()
    };
    assert_eq!(mounts[0].id.as_deref(), Some("val"));
    assert_eq!(mounts[0].target.as_deref(), Some("/val"));
    let file = parse("ARG T=1\nFROM --platform=$P img:$T").unwrap();
    assert_eq!(
        file.instructions[1].expand(&vars, '\\').unwrap().kind,
        InstructionKind::From {
            image: "img:".into(),
            name: None,
            platform: Some("80 443".into())
        }
    );
}

#[test]
fn mount_values_are_checked_after_substitution() {
    let run = &after_from("RUN --mount=type=cache,target=/c,uid=$U ls")[0];
    assert!(run.expand(&env(&[("U", "1000")]), '\\').is_ok());
    let err = run.expand(&env(&[("U", "abc")]), '\\').unwrap_err();
    assert!(err.message.contains("invalid value for uid"), "{err}");
}
