//! `RUN --mount=type=...,key=value,...` into a typed [`Mount`].

use super::instruction::{Mount, MountKind};
use super::suggest;

const KINDS: [&str; 5] = ["bind", "cache", "secret", "ssh", "tmpfs"];

const KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "src",
    "target",
    "dst",
    "destination",
    "readonly",
    "ro",
    "readwrite",
    "rw",
    "required",
    "id",
    "sharing",
    "mode",
    "uid",
    "gid",
    "size",
    "env",
];

/// Parses a `--mount` value; variables in values are kept for [`Mount::validate`] after
/// substitution, but literal values are checked right away.
pub(crate) fn parse(value: &str) -> Result<Mount, String> {
    let mut mount = Mount {
        kind: MountKind::Bind,
        target: None,
        source: None,
        from: None,
        id: None,
        sharing: None,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
        readonly: false,
        required: false,
    };
    let mut readonly = None;
    let mut required = false;
    let mut fields_seen = Vec::new();
    for field in csv_fields(value)? {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key.to_ascii_lowercase(), Some(value.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => readonly = Some(true),
                "readwrite" | "rw" => readonly = Some(false),
                "required" => required = true,
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            fields_seen.push(key);
            continue;
        };
        match key.as_str() {
            "type" => {
                mount.kind = match value.to_ascii_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    "tmpfs" => MountKind::Tmpfs,
                    _ => {
                        return Err(suggest::with_hint(
                            format!("unsupported mount type {value:?}"),
                            &value,
                            &KINDS,
                        ));
                    }
                }
            }
            "from" => mount.from = Some(value),
            "source" | "src" => mount.source = Some(value),
            "target" | "dst" | "destination" => mount.target = Some(value),
            "readonly" | "ro" => readonly = Some(parse_bool(&key, &value)?),
            "readwrite" | "rw" => readonly = Some(!parse_bool(&key, &value)?),
            "required" => required = parse_bool(&key, &value)?,
            "id" => mount.id = Some(value),
            "sharing" => mount.sharing = Some(value),
            "mode" => mount.mode = Some(value),
            "uid" => mount.uid = Some(value),
            "gid" => mount.gid = Some(value),
            "size" => mount.size = Some(value),
            "env" => mount.env = Some(value),
            _ => {
                return Err(suggest::with_hint(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    &KEYS,
                ));
            }
        }
        fields_seen.push(key);
    }
    mount.readonly = readonly.unwrap_or(!matches!(mount.kind, MountKind::Cache | MountKind::Tmpfs));
    mount.required = required;
    let kind = mount.kind;
    let only_for = |key: &str, allowed: &[MountKind]| -> Result<(), String> {
        if fields_seen.iter().any(|k| k == key) && !allowed.contains(&kind) {
            return Err(format!(
                "unexpected key '{key}' for mount type '{}'",
                kind.as_str()
            ));
        }
        Ok(())
    };
    only_for("required", &[MountKind::Secret, MountKind::Ssh])?;
    only_for("env", &[MountKind::Secret])?;
    only_for("size", &[MountKind::Tmpfs])?;
    mount.validate(true)?;
    Ok(mount)
}

impl Mount {
    /// Checks values and combinations; with `literal_only`, values holding `$` are skipped
    /// because they are only known after substitution.
    pub(crate) fn validate(&self, literal_only: bool) -> Result<(), String> {
        let kind = self.kind.as_str();
        fn check(value: &Option<String>, literal_only: bool) -> Option<&str> {
            value
                .as_deref()
                .filter(|v| !(literal_only && v.contains('$')))
        }
        let file_info = matches!(
            self.kind,
            MountKind::Secret | MountKind::Ssh | MountKind::Cache
        );
        for (key, value) in [("mode", &self.mode), ("uid", &self.uid), ("gid", &self.gid)] {
            if value.is_some() && !file_info {
                return Err(format!("{key} not allowed for {kind:?} type mounts"));
            }
            if let Some(v) = check(value, literal_only) {
                let radix = if key == "mode" { 8 } else { 10 };
                u32::from_str_radix(v, radix)
                    .map_err(|_| format!("invalid value for {key}: {v}"))?;
            }
        }
        if self.sharing.is_some() && self.kind != MountKind::Cache {
            return Err(format!("invalid cache sharing set for {kind} mount"));
        }
        if let Some(v) = check(&self.sharing, literal_only)
            && !matches!(
                v.to_ascii_lowercase().as_str(),
                "" | "shared" | "private" | "locked"
            )
        {
            return Err(format!("unsupported sharing value {v:?}"));
        }
        match self.kind {
            MountKind::Secret => {
                if self.from.is_some() {
                    return Err("secret mount should not have a from".to_string());
                }
                if self.source.is_none()
                    && self.target.is_none()
                    && self.id.is_none()
                    && self.env.is_none()
                {
                    return Err(
                        "invalid secret mount: one of id, source, target or env required"
                            .to_string(),
                    );
                }
                if self.source.is_some() && self.id.is_some() {
                    return Err("both source and id can't be set".to_string());
                }
            }
            MountKind::Ssh => {}
            MountKind::Bind | MountKind::Cache | MountKind::Tmpfs => {
                if self.target.as_deref().is_none_or(str::is_empty) {
                    return Err(format!("{kind} mount requires a target"));
                }
            }
        }
        Ok(())
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    // Go's strconv.ParseBool spellings.
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

/// Splits one CSV record (Go's `encoding/csv`): `,` separates, `"` quotes, `""` is a quote.
fn csv_fields(record: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("extraneous or missing \" in quoted-field".to_string()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err("extraneous or missing \" in quoted-field".to_string()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in non-quoted-field".to_string()),
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv() {
        assert_eq!(csv_fields("a,b").unwrap(), ["a", "b"]);
        assert_eq!(csv_fields(r#""a,b",c"#).unwrap(), ["a,b", "c"]);
        assert_eq!(csv_fields(r#""a""b""#).unwrap(), [r#"a"b"#]);
        assert!(csv_fields(r#"a"b"#).is_err());
    }

    #[test]
    fn mounts() {
        let m = parse("type=cache,target=/root/.cache,sharing=locked,id=x,uid=1000").unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert!(!m.readonly);
        assert_eq!(m.uid.as_deref(), Some("1000"));
        let m = parse("target=/src,rw").unwrap();
        assert_eq!((m.kind, m.readonly), (MountKind::Bind, false));
        assert!(parse("type=secret,id=npm,required").unwrap().required);
        assert!(parse("type=bind,target=/x,required").is_err());
        assert!(parse("type=cache,target=/x,uid=$UID").is_ok());
        assert!(parse("type=cache,target=/x,uid=abc").is_err());
        assert!(
            parse("type=cahce,target=/x")
                .unwrap_err()
                .contains("did you mean cache?")
        );
        assert!(parse("type=bind").is_err());
        assert!(parse("target=/x,bogus=1").is_err());
    }
}
