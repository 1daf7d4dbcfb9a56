//! Image references, normalized as Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `localhost:5000/app:1` keeps its registry, and
//! `name@sha256:…` pins a digest.

use std::fmt;
use std::str::FromStr;

use oci_spec::distribution::{ParseError, Reference};

/// A normalized image reference.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ImageRef {
    inner: Reference,
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

impl ImageRef {
    /// Parses and normalizes a reference as Docker does.
    pub fn parse(s: &str) -> Result<ImageRef, InvalidReference> {
        let err = |reason: String| InvalidReference {
            input: s.to_string(),
            reason,
        };
        match Reference::from_str(s) {
            Ok(inner) => Ok(ImageRef { inner }),
            Err(ParseError::ReferenceInvalidFormat)
                if s.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                Err(err("repository name must be lowercase".into()))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// The registry host, e.g. `docker.io` or `localhost:5000`.
    pub fn registry(&self) -> &str {
        self.inner.registry()
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        self.inner.repository()
    }

    /// The tag, if any (a bare name gets `latest`).
    pub fn tag(&self) -> Option<&str> {
        self.inner.tag()
    }

    /// The pinned digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.inner.digest()
    }

    /// `registry/repository`, fully qualified.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry(), self.repository())
    }

    /// The name as Docker shows it: `busybox` rather than `docker.io/library/busybox`.
    pub fn familiar_name(&self) -> String {
        if self.registry() == "docker.io" {
            match self.repository().strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.repository().to_string(),
            }
        } else {
            self.name()
        }
    }

    /// The whole reference as Docker shows it, e.g. `busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = self.tag() {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = self.digest() {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// A copy with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            inner: Reference::with_tag(
                self.registry().to_string(),
                self.repository().to_string(),
                tag.to_string(),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
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
    }
}
