//! Every instruction parses into the right variant with the right raw fields.

use std::time::Duration;

use berth_builder::dockerfile::{
    ArgDecl, Command, CopySource, CopySpec, Healthcheck, HealthcheckOptions, InstructionKind,
    Mount, MountKind, NetworkMode, SecurityMode, parse,
};

use super::{one, strings};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shell(text: &str) -> Command {
    Command::Shell(text.to_string())
}

fn exec(argv: &[&str]) -> Command {
    Command::Exec(strings(argv))
}

fn copy(sources: &[&str], dest: &str) -> CopySpec {
    CopySpec {
        sources: sources
            .iter()
            .map(|s| CopySource::Path(s.to_string()))
            .collect(),
        dest: dest.to_string(),
        ..CopySpec::default()
    }
}

fn bind(target: &str) -> Mount {
    Mount {
        kind: MountKind::Bind,
        target: Some(target.to_string()),
        source: None,
        from: None,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
        readonly: true,
        required: false,
    }
}

fn run(command: Command) -> InstructionKind {
    InstructionKind::Run {
        mounts: vec![],
        network: None,
        security: None,
        command,
        heredocs: vec![],
    }
}

#[test]
fn every_instruction_parses_into_its_variant() {
    use InstructionKind as K;
    let table: Vec<(&str, InstructionKind)> = vec![
        ("RUN make all", run(shell("make all"))),
        ("run  make   all  ", run(shell("make   all"))),
        (r#"RUN ["make", "all"]"#, run(exec(&["make", "all"]))),
        ("CMD echo hi", K::Cmd(shell("echo hi"))),
        (r#"CMD ["echo", "hi"]"#, K::Cmd(exec(&["echo", "hi"]))),
        ("CMD []", K::Cmd(exec(&[]))),
        ("ENTRYPOINT top -b", K::Entrypoint(shell("top -b"))),
        (
            r#"ENTRYPOINT ["top", "-b"]"#,
            K::Entrypoint(exec(&["top", "-b"])),
        ),
        (
            r#"SHELL ["/bin/bash", "-c"]"#,
            K::Shell(strings(&["/bin/bash", "-c"])),
        ),
        (
            r#"LABEL a=1 "b c"="d e" f='g'"#,
            K::Label(pairs(&[("a", "1"), (r#""b c""#, r#""d e""#), ("f", "'g'")])),
        ),
        (
            "LABEL legacy some value",
            K::Label(pairs(&[("legacy", "some value")])),
        ),
        (
            "MAINTAINER Jo <jo@example.com>",
            K::Maintainer("Jo <jo@example.com>".into()),
        ),
        (
            "EXPOSE 80 443/tcp  53/udp",
            K::Expose(strings(&["80", "443/tcp", "53/udp"])),
        ),
        (
            r#"ENV A=1 B="two words" C=a\ b"#,
            K::Env(pairs(&[
                ("A", "1"),
                ("B", r#""two words""#),
                ("C", r"a\ b"),
            ])),
        ),
        (
            "ENV PATH /usr/bin:$PATH  x",
            K::Env(pairs(&[("PATH", "/usr/bin:$PATH  x")])),
        ),
        ("ENV EMPTY=", K::Env(pairs(&[("EMPTY", "")]))),
        ("COPY a b /dst/", K::Copy(copy(&["a", "b"], "/dst/"))),
        (
            r#"COPY ["a b", "/dst dir/"]"#,
            K::Copy(copy(&["a b"], "/dst dir/")),
        ),
        (
            "ADD https://example.com/x.tgz /x",
            K::Add(copy(&["https://example.com/x.tgz"], "/x")),
        ),
        ("VOLUME /a /b", K::Volume(strings(&["/a", "/b"]))),
        (
            r#"VOLUME ["/a", " /b "]"#,
            K::Volume(strings(&["/a", "/b"])),
        ),
        ("USER app:app", K::User("app:app".into())),
        ("WORKDIR /my dir", K::Workdir("/my dir".into())),
        (
            "ARG A B=2 C=",
            K::Arg(vec![
                ArgDecl {
                    name: "A".into(),
                    default: None,
                },
                ArgDecl {
                    name: "B".into(),
                    default: Some("2".into()),
                },
                ArgDecl {
                    name: "C".into(),
                    default: Some("".into()),
                },
            ]),
        ),
        ("STOPSIGNAL SIGTERM", K::Stopsignal("SIGTERM".into())),
        ("HEALTHCHECK NONE", K::Healthcheck(Healthcheck::None)),
        (
            "HEALTHCHECK CMD curl -f http://localhost/",
            K::Healthcheck(Healthcheck::Cmd {
                command: shell("curl -f http://localhost/"),
                options: HealthcheckOptions::default(),
            }),
        ),
    ];
    for (source, expected) in table {
        assert_eq!(one(source), expected, "{source}");
    }
}

#[test]
fn from_forms() {
    let file =
        parse("ARG V=1\nFROM --platform=$P alpine:$V AS Build\nFROM build\nfrom x as y-1.z_")
            .unwrap();
    let kinds: Vec<_> = file.instructions.iter().map(|i| i.kind.clone()).collect();
    assert_eq!(
        kinds[1],
        InstructionKind::From {
            image: "alpine:$V".into(),
            name: Some("build".into()),
            platform: Some("$P".into()),
        }
    );
    assert_eq!(
        kinds[2],
        InstructionKind::From {
            image: "build".into(),
            name: None,
            platform: None
        }
    );
    assert!(matches!(&kinds[3], InstructionKind::From { name: Some(n), .. } if n == "y-1.z_"));
}

#[test]
fn stages_split_at_from() {
    let file = parse("ARG A\nARG B\nFROM a AS one\nRUN x\nRUN y\nFROM one\nCMD z\n").unwrap();
    let (args, stages) = file.stages();
    assert_eq!(args.len(), 2);
    assert_eq!(stages.len(), 2);
    assert_eq!((stages[0].image, stages[0].name), ("a", Some("one")));
    assert_eq!(stages[0].instructions.len(), 2);
    assert_eq!((stages[1].image, stages[1].name), ("one", None));
    assert_eq!(stages[1].instructions.len(), 1);
    assert_eq!(stages[1].from.line, 6);
}

#[test]
fn run_flags() {
    let kind = one(
        "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000 \\\n\
         --mount=type=secret,id=tok,env=TOKEN,required \\\n\
         --mount=target=/src,from=build,source=/out,rw \\\n\
         --mount=type=ssh \\\n\
         --mount=type=tmpfs,dst=/tmp,size=64m \\\n\
         --network=none --security=insecure make",
    );
    let InstructionKind::Run {
        mounts,
        network,
        security,
        command,
        ..
    } = kind
    else {
        panic!("not RUN: {kind:?}");
    };
    assert_eq!(network, Some(NetworkMode::None));
    assert_eq!(security, Some(SecurityMode::Insecure));
    assert_eq!(command, shell("make"));
    let kinds: Vec<MountKind> = mounts.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            MountKind::Cache,
            MountKind::Secret,
            MountKind::Bind,
            MountKind::Ssh,
            MountKind::Tmpfs
        ]
    );
    let cache = &mounts[0];
    assert_eq!(cache.target.as_deref(), Some("/root/.cache"));
    assert_eq!(cache.id.as_deref(), Some("pip"));
    assert_eq!(cache.sharing.as_deref(), Some("locked"));
    assert_eq!(cache.mode.as_deref(), Some("0755"));
    assert_eq!(
        (cache.uid.as_deref(), cache.gid.as_deref()),
        (Some("1000"), Some("1000"))
    );
    assert!(!cache.readonly);
    let secret = &mounts[1];
    assert_eq!(
        (secret.env.as_deref(), secret.required),
        (Some("TOKEN"), true)
    );
    let bind = &mounts[2];
    assert_eq!(bind.from.as_deref(), Some("build"));
    assert_eq!(bind.source.as_deref(), Some("/out"));
    assert!(!bind.readonly);
    assert_eq!(mounts[4].size.as_deref(), Some("64m"));
    assert_eq!(
        one("RUN --mount=target=/x ls"),
        InstructionKind::Run {
            mounts: vec![bind_default()],
            network: None,
            security: None,
            command: shell("ls"),
            heredocs: vec![],
        }
    );
}

fn bind_default() -> Mount {
    bind("/x")
}

#[test]
fn copy_and_add_flags() {
    let InstructionKind::Copy(spec) = one(
        "COPY --from=build --chown=1:2 --chmod=0644 --link --parents --exclude=*.md --exclude=.git a /b",
    ) else {
        panic!()
    };
    assert_eq!(spec.from.as_deref(), Some("build"));
    assert_eq!(spec.chown.as_deref(), Some("1:2"));
    assert_eq!(spec.chmod.as_deref(), Some("0644"));
    assert!(spec.link && spec.parents);
    assert_eq!(spec.exclude, strings(&["*.md", ".git"]));
    let InstructionKind::Add(spec) = one(
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --link=false https://x/y.git /src",
    ) else {
        panic!()
    };
    assert_eq!(spec.checksum.as_deref(), Some("sha256:abc"));
    assert!(spec.keep_git_dir);
    assert_eq!(spec.unpack, Some(false));
    assert!(!spec.link);
}

#[test]
fn healthcheck_options() {
    let kind = one(
        r#"HEALTHCHECK --interval=1m30s --timeout=5s --start-period=1.5s --start-interval=500ms --retries=3 CMD ["curl", "-f", "x"]"#,
    );
    assert_eq!(
        kind,
        InstructionKind::Healthcheck(Healthcheck::Cmd {
            command: exec(&["curl", "-f", "x"]),
            options: HealthcheckOptions {
                interval: Some(Duration::from_secs(90)),
                timeout: Some(Duration::from_secs(5)),
                start_period: Some(Duration::from_millis(1500)),
                start_interval: Some(Duration::from_millis(500)),
                retries: Some(3),
            },
        })
    );
    assert_eq!(
        one("healthcheck none"),
        InstructionKind::Healthcheck(Healthcheck::None)
    );
}

#[test]
fn onbuild_wraps_an_instruction() {
    let file = parse("FROM x\nONBUILD RUN --mount=target=/x make \\\n  all").unwrap();
    let onbuild = &file.instructions[1];
    assert_eq!((onbuild.line, onbuild.end_line), (2, 3));
    let InstructionKind::Onbuild(inner) = &onbuild.kind else {
        panic!("{onbuild:?}")
    };
    assert_eq!(inner.original, "RUN --mount=target=/x make   all");
    assert!(
        matches!(&inner.kind, InstructionKind::Run { command: Command::Shell(s), .. } if s == "make   all")
    );
}

#[test]
fn keywords_are_case_insensitive_and_located() {
    let file = parse("  from alpine\n\n\tRuN echo \\\n  hi\nCmd x").unwrap();
    let found: Vec<(usize, usize, &str)> = file
        .instructions
        .iter()
        .map(|i| (i.line, i.end_line, i.original.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (1, 1, "from alpine"),
            (3, 4, "RuN echo   hi"),
            (5, 5, "Cmd x")
        ]
    );
}
