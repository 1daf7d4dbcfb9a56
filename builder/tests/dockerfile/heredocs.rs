//! Heredocs: plain, `<<-`, quoted, several per line, in COPY, inside ONBUILD.

use berth_builder::dockerfile::{Command, CopySource, Heredoc, InstructionKind, parse};

use super::env;

fn heredoc(name: &str, content: &str, expand: bool, chomp: bool) -> Heredoc {
    Heredoc {
        name: name.into(),
        fd: None,
        expand,
        chomp,
        content: content.into(),
    }
}

fn run_heredocs(source: &str) -> (Command, Vec<Heredoc>, usize) {
    let file = parse(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
    let run = &file.instructions[1];
    match &run.kind {
        InstructionKind::Run {
            command, heredocs, ..
        } => (command.clone(), heredocs.clone(), run.end_line),
        other => panic!("{other:?}"),
    }
}

#[test]
fn run_heredocs_table() {
    let table = [
        (
            "FROM x\nRUN <<EOF\necho $HOME \\\n  \\n done\nEOF\nCMD x",
            "<<EOF",
            vec![heredoc("EOF", "echo $HOME \\\n  \\n done\n", true, false)],
            5,
        ),
        (
            "FROM x\nRUN <<-EOT\n\t\techo a\n\t  b\n\tEOT\n",
            "<<-EOT",
            vec![heredoc("EOT", "echo a\n  b\n", true, true)],
            5,
        ),
        (
            "FROM x\nRUN <<\"EOF\" bash\necho $X\nEOF",
            "<<\"EOF\" bash",
            vec![heredoc("EOF", "echo $X\n", false, false)],
            4,
        ),
        (
            "FROM x\nRUN <<'E'OF\nx\nEOF",
            "<<'E'OF",
            vec![heredoc("EOF", "x\n", false, false)],
            4,
        ),
        (
            "FROM x\nRUN <<A cat - <<B > out\na1\nA\nb1\nb2\nB\n",
            "<<A cat - <<B > out",
            vec![
                heredoc("A", "a1\n", true, false),
                heredoc("B", "b1\nb2\n", true, false),
            ],
            7,
        ),
        (
            "FROM x\nRUN python3 <<EOF\n\nprint('# not a comment')\r\nEOF\r\n",
            "python3 <<EOF",
            vec![heredoc(
                "EOF",
                "\nprint('# not a comment')\r\n",
                true,
                false,
            )],
            5,
        ),
        (
            "FROM x\nRUN --mount=target=/x \\\n  cat <<EOF\nbody\nEOF",
            "cat <<EOF",
            vec![heredoc("EOF", "body\n", true, false)],
            5,
        ),
        // Not heredocs: quoted, attached to a word, or in exec form.
        ("FROM x\nRUN echo '<<EOF'", "echo '<<EOF'", vec![], 2),
        ("FROM x\nRUN echo a<<EOF", "echo a<<EOF", vec![], 2),
    ];
    for (source, text, expected, end_line) in table {
        let (command, heredocs, end) = run_heredocs(source);
        assert_eq!(command, Command::Shell(text.into()), "{source:?}");
        assert_eq!(heredocs, expected, "{source:?}");
        assert_eq!(end, end_line, "{source:?}");
    }
    let (command, heredocs, _) = run_heredocs("FROM x\nRUN [\"cat\", \"<<EOF\"]");
    assert_eq!(command, Command::Exec(vec!["cat".into(), "<<EOF".into()]));
    assert!(heredocs.is_empty());
}

#[test]
fn heredoc_with_fd() {
    let (_, heredocs, _) = run_heredocs("FROM x\nRUN cat 3<<EOF\nx\nEOF");
    assert_eq!(heredocs[0].fd, Some(3));
}

#[test]
fn copy_heredocs() {
    let file = parse(
        "FROM x\nCOPY <<A --chmod=x <<\"B\" /dir/\na\nA\nb $V\nB\nCOPY f <<-C /c\n\tc\n\tC\nRUN x",
    )
    .unwrap();
    let InstructionKind::Copy(spec) = &file.instructions[1].kind else {
        panic!()
    };
    assert_eq!(
        spec.sources,
        [
            CopySource::Heredoc(heredoc("A", "a\n", true, false)),
            CopySource::Path("--chmod=x".into()),
            CopySource::Heredoc(heredoc("B", "b $V\n", false, false)),
        ]
    );
    assert_eq!(spec.dest, "/dir/");
    assert_eq!(file.instructions[1].end_line, 6);
    let InstructionKind::Copy(spec) = &file.instructions[2].kind else {
        panic!()
    };
    assert_eq!(
        spec.sources,
        [
            CopySource::Path("f".into()),
            CopySource::Heredoc(heredoc("C", "c\n", true, true)),
        ]
    );
    assert_eq!(file.instructions.len(), 4);
}

#[test]
fn copy_heredoc_content_expands_only_when_unquoted() {
    let file = parse("FROM x\nCOPY <<A <<'B' /d/\n$V \"q\" \\$V\nA\n$V\nB").unwrap();
    let expanded = file.instructions[1]
        .expand(&env(&[("V", "v")]), '\\')
        .unwrap();
    let InstructionKind::Copy(spec) = expanded.kind else {
        panic!()
    };
    assert_eq!(
        spec.sources,
        [
            CopySource::Heredoc(heredoc("A", "v \"q\" $V\n", true, false)),
            CopySource::Heredoc(heredoc("B", "$V\n", false, false)),
        ]
    );
}

#[test]
fn onbuild_heredoc() {
    let file = parse("FROM x\nONBUILD RUN <<EOF\nmake\nEOF\nCMD y").unwrap();
    let InstructionKind::Onbuild(inner) = &file.instructions[1].kind else {
        panic!()
    };
    let InstructionKind::Run { heredocs, .. } = &inner.kind else {
        panic!()
    };
    assert_eq!(heredocs, &[heredoc("EOF", "make\n", true, false)]);
    assert_eq!(file.instructions[1].end_line, 4);
    assert_eq!(file.instructions.len(), 3);
    // What BuildKit stores as the trigger: the text with heredoc bodies put back.
    assert_eq!(inner.with_heredocs(), "RUN <<EOF\nmake\nEOF");
    assert_eq!(
        file.instructions[1].with_heredocs(),
        "ONBUILD RUN <<EOF\nmake\nEOF"
    );
    let reparsed = parse(&format!("FROM x\n{}", inner.with_heredocs())).unwrap();
    assert_eq!(reparsed.instructions[1].kind, inner.kind);
}

/// BuildKit's `TestParseExtractsHeredoc` file, adapted: contents of `<<-` heredocs are stored
/// with their tabs already stripped.
#[test]
fn buildkit_heredoc_file() {
    let source = "\nFROM alpine:3.6\n\nENV NAME=me\n\nRUN ls\n\nRUN <<EMPTY\nEMPTY\n\n\
        RUN 3<<EMPTY2\nEMPTY2\n\nRUN \"<<NOHEREDOC\"\n\nRUN <<INDENT\n\tfoo\n\tbar\nINDENT\n\n\
        RUN <<-UNINDENT\n\tbaz\n\tquux\nUNINDENT\n\nRUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n\n\
        RUN <<-EXPAND\n\texpand $NAME\nEXPAND\n\nRUN <<-'NOEXPAND'\n\tdon't expand $NAME\nNOEXPAND\n\n\
        RUN <<COPY\necho hello world\necho foo bar\nCOPY\n\n\
        RUN <<COMMENT\n# internal comment\necho hello world\necho foo bar # trailing comment\nCOMMENT\n\n\
        RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n\n\
        COPY <<FILE1 <<FILE2 /dest\ncontent 1\nFILE1\ncontent 2\nFILE2\n\n\
        COPY <<EOF /quotes\n\"foo\"\n'bar'\nEOF\n\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n\n\
        RUN <<COMPLEX python3\nprint('hello world')\nCOMPLEX\n\n\
        COPY <<file.txt /dest\nhello world\nfile.txt\n\nRUN <<eo'f'\necho foo\neof\n\n\
        RUN <<eo\\'f\necho foo\neo'f\n\nRUN <<'e'o\\'f\necho foo\neo'f\n\n\
        RUN <<'one two'\necho bar\none two\n\nRUN <<$EOF\n$EOF\n\nRUN <<  EOF\nEOF\n\n\
        RUN <<  EOF  > foo\nEOF\n\nCOPY << X /x\nx\nX\n\t";
    let h = |name: &str, content: &str, expand: bool, chomp: bool| {
        heredoc(name, content, expand, chomp)
    };
    let expected: Vec<Vec<Heredoc>> = vec![
        vec![], // ENV
        vec![], // RUN ls
        vec![h("EMPTY", "", true, false)],
        vec![Heredoc {
            fd: Some(3),
            ..heredoc("EMPTY2", "", true, false)
        }],
        vec![], // RUN "<<NOHEREDOC"
        vec![h("INDENT", "\tfoo\n\tbar\n", true, false)],
        vec![h("UNINDENT", "baz\nquux\n", true, true)],
        vec![h("UNINDENT2", "baz\nquux\n", true, true)],
        vec![h("EXPAND", "expand $NAME\n", true, true)],
        vec![h("NOEXPAND", "don't expand $NAME\n", false, true)],
        vec![h("COPY", "echo hello world\necho foo bar\n", true, false)],
        vec![h(
            "COMMENT",
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
            true,
            false,
        )],
        vec![h("MOUNT", "echo hello\n", true, false)],
        vec![
            h("FILE1", "content 1\n", true, false),
            h("FILE2", "content 2\n", true, false),
        ],
        vec![h("EOF", "\"foo\"\n'bar'\n", true, false)],
        vec![h("X", "Y\n", true, false), h("Y", "X\n", true, false)],
        vec![h("COMPLEX", "print('hello world')\n", true, false)],
        vec![h("file.txt", "hello world\n", true, false)],
        vec![h("eof", "echo foo\n", false, false)],
        vec![h("eo'f", "echo foo\n", true, false)],
        vec![h("eo'f", "echo foo\n", false, false)],
        vec![h("one two", "echo bar\n", false, false)],
        vec![h("$EOF", "", true, false)],
        vec![h("EOF", "", true, false)],
        vec![h("EOF", "", true, false)],
        vec![h("X", "x\n", true, false)],
    ];
    let file = parse(source).unwrap();
    assert_eq!(file.instructions.len(), expected.len() + 1);
    for (instruction, expected) in file.instructions[1..].iter().zip(expected) {
        let found: Vec<Heredoc> = instruction.kind.heredocs().into_iter().cloned().collect();
        assert_eq!(found, expected, "{}", instruction.original);
    }
}
