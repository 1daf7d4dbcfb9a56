//! Image references, normalized as Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `localhost:5000/app:1` keeps its registry, and
//! `name@sha256:…` pins a digest.

use std::fmt;
use std::str::FromStr;

/// A normalized image reference.
///
/// Parsed by hand after docker/distribution's grammar: oci-spec's parser compiles a regex whose
/// Unicode `\w{0,127}` costs tens of milliseconds in every process, and Go's `\w` (Docker's)
/// is ASCII anyway.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// A string that is not a valid image reference; the message says why and shows the form.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid reference {input:?}: {reason} (expected NAME[:TAG][@DIGEST], e.g. busybox:latest)"
)]
pub struct InvalidReference {
    input: String,
    reason: String,
}

const DOCKER_HUB: &str = "docker.io";
const MAX_NAME: usize = 255;

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or `-`+, as a repository path component.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok || sep.is_empty() {
            return false;
        }
    }
    true
}

/// A registry host: dot-separated labels of letters, digits and hyphens, with an optional port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    port_ok && host_ok
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_digest(d: &str) -> Result<(), &'static str> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err("a digest is ALGORITHM:HEX, e.g. sha256:…");
    };
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm (use sha256)"),
    };
    if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the digest has the wrong length or is not hexadecimal");
    }
    Ok(())
}

impl ImageRef {
    /// Parses and normalizes a reference as Docker does.
    pub fn parse(s: &str) -> Result<ImageRef, InvalidReference> {
        let err = |reason: &str| InvalidReference {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(err("the name is empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                valid_digest(d).map_err(err)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(err(
                "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            ));
        }
        // The first component is a registry when it looks like a host, as Docker decides.
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, path.to_string())
            }
            _ => (DOCKER_HUB, name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DOCKER_HUB
        } else {
            domain
        };
        if !valid_domain(domain) {
            return Err(err("the registry host is not valid"));
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err("repository name must be lowercase"));
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(err(
                "a repository name is lowercase letters and digits, in components separated by '/', joined by '.', '_', '__' or '-'",
            ));
        }
        let path = if domain == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if domain.len() + 1 + path.len() > MAX_NAME {
            return Err(err("the name is longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry: domain.to_string(),
            repository: path,
            tag,
            digest,
        })
    }

    /// The registry host, e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (a bare name gets `latest`).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository`, fully qualified.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as Docker shows it: `busybox` rather than `docker.io/library/busybox`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The whole reference as Docker shows it, e.g. `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// A copy with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = InvalidReference;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_as_docker() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "localhost:5000/app:1",
                "localhost:5000/app:1",
                "localhost:5000/app:1",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            ("ghcr.io/o/r/x:v", "ghcr.io/o/r/x:v", "ghcr.io/o/r/x:v"),
            (
                "index.docker.io/library/alpine",
                "docker.io/library/alpine:latest",
                "alpine:latest",
            ),
        ];
        for (input, full, familiar) in cases {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = ImageRef::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.digest(), Some(d));
        assert_eq!(r.tag(), None);
    }

    #[test]
    fn rejects_bad_references() {
        let e = ImageRef::parse("BusyBox").unwrap_err().to_string();
        assert!(e.contains("lowercase"), "{e}");
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("a:b:c").is_err());
        assert!(ImageRef::parse("busybox@sha256:abc").is_err());
        assert!(ImageRef::parse("a//b").is_err());
        assert!(ImageRef::parse("-a").is_err());
        assert!(ImageRef::parse("a:-tag").is_err());
        assert!(
            ImageRef::parse("a:tÄg").is_err(),
            "tags are ASCII, as Go's \\w"
        );
        assert!(ImageRef::parse(&"a".repeat(300)).is_err());
    }

    #[test]
    fn accepts_docker_forms() {
        for ok in [
            "a__b",
            "a-----b",
            "a.b_c",
            "my.registry:5000/x/y:1.0-rc_1",
            "Registry.Example.com/app",
            "localhost/x",
            "x:_tag",
            "127.0.0.1:5000/app",
        ] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
        let r = ImageRef::parse("localhost:5000/app:1@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("localhost:5000", "app", Some("1"))
        );
        assert!(r.digest().is_some());
    }
}
