//! Registry authentication: the `WWW-Authenticate` challenge a registry answers 401 with, and
//! what berth sends back: `Basic` credentials, or a `Bearer` token fetched from the challenge's
//! realm for the scopes a request needs (Docker's token flow), cached per scope.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// What a registry asks for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP basic authentication.
    Basic {
        /// The realm, for messages.
        realm: String,
    },
    /// A token from `realm`, for `service` and `scope`.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The service the token is for.
        service: Option<String>,
        /// The scope the registry named, if any.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value: `SCHEME k="v", k2=v2`. Only the first challenge
/// is read; unknown schemes give `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |k: &str| params.get(k).cloned();
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: get("realm").unwrap_or_default(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        }),
        _ => None,
    }
}

/// `k="quoted, \"value\"", k2=token` pairs, keys lowercased.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = s[i..].chars().next().expect("in bounds");
                value.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&s[vs..i]);
        }
        out.insert(key, value);
    }
    out
}

/// A username and password (or a registry's identity token, with username `<token>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The username.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({:?}, ***)", self.username)
    }
}

impl Login {
    /// The `Authorization` value for basic authentication.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// What berth knows about authenticating to one registry.
#[derive(Debug, Default)]
pub struct AuthState {
    /// The credentials to use, if any.
    pub login: Option<Login>,
    /// The registry's last challenge.
    pub challenge: Option<Challenge>,
    /// Bearer tokens by the scopes they were issued for.
    pub tokens: HashMap<String, String>,
}

impl AuthState {
    /// The `Authorization` header for a request needing `scopes`, if berth has one ready.
    pub fn header(&self, scopes: &[String]) -> Option<String> {
        match self.challenge.as_ref()? {
            Challenge::Basic { .. } => self.login.as_ref().map(Login::basic_header),
            Challenge::Bearer { .. } => self
                .tokens
                .get(&scope_key(scopes))
                .map(|t| format!("Bearer {t}")),
        }
    }
}

/// The cache key of a set of scopes.
pub fn scope_key(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// The scope to pull from a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope to push to a repository.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            }
        );
    }

    #[test]
    fn scope_with_comma_and_spaces() {
        let c = parse_challenge(
            r#"bearer  realm="http://127.0.0.1:1/t" , scope="repository:a/b:pull,push", service=reg"#,
        )
        .unwrap();
        let Challenge::Bearer { scope, service, .. } = c else {
            panic!()
        };
        assert_eq!(scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(service.as_deref(), Some("reg"));
    }

    #[test]
    fn basic_and_escapes() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry \"Realm\"""#),
            Some(Challenge::Basic {
                realm: r#"Registry "Realm""#.into()
            })
        );
        assert_eq!(
            parse_challenge("Basic"),
            Some(Challenge::Basic {
                realm: String::new()
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn basic_header() {
        let l = Login {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(l.basic_header(), "Basic dTpw");
        let secret = Login {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
