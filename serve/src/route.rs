//! Routes, with Spin's rules: `/a` matches that path only, `/a/...` matches `/a` and every path
//! below it, an exact route beats a wildcard, and among wildcards the longest prefix wins.

use std::fmt;

/// A route pattern as written in a serve file or implied by `berth serve IMAGE` (`/...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/a/b`: that path only.
    Exact(String),
    /// `/a/...`: `/a` and everything below it; the prefix is empty for `/...`.
    Wildcard(String),
}

/// Why a route pattern is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {route:?} is not valid: {reason}")]
pub struct RouteError {
    /// The pattern as given.
    pub route: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Route {
    /// Parses `/a`, `/a/...` or `/...`. A trailing `/` is dropped (`/a/` is `/a`), as Spin does.
    pub fn parse(s: &str) -> Result<Route, RouteError> {
        let err = |reason| RouteError {
            route: s.to_string(),
            reason,
        };
        if !s.starts_with('/') {
            return Err(err("it must start with /"));
        }
        if s.contains(['?', '#']) || s.chars().any(|c| c.is_control() || c == ' ') {
            return Err(err(
                "it must be a path, without a query, fragment, space or control character",
            ));
        }
        let (prefix, wildcard) = match s.strip_suffix("/...") {
            Some(p) => (p, true),
            None => (s, false),
        };
        if prefix.contains("...") {
            return Err(err("`...` may only be the last segment (`/a/...`)"));
        }
        if prefix.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(err("it may not have `.` or `..` segments"));
        }
        let prefix = prefix.trim_end_matches('/').to_string();
        Ok(if wildcard {
            Route::Wildcard(prefix)
        } else if prefix.is_empty() {
            Route::Exact("/".into())
        } else {
            Route::Exact(prefix)
        })
    }

    /// The part of the path the route names: SCRIPT_NAME for WAGI (`/a` for `/a/...`).
    pub fn base(&self) -> &str {
        match self {
            Route::Exact(p) | Route::Wildcard(p) => p,
        }
    }

    /// Whether `path` (without its query) is this route's.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Route::Exact(p) => path == p || (p == "/" && path.is_empty()),
            Route::Wildcard(p) => {
                p.is_empty()
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }

    /// The rest of `path` after the route's base: WAGI's PATH_INFO (empty for an exact route).
    pub fn path_info<'a>(&self, path: &'a str) -> &'a str {
        match self {
            Route::Exact(_) => "",
            Route::Wildcard(p) => path.get(p.len()..).unwrap_or(""),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Exact(p) => f.write_str(p),
            Route::Wildcard(p) => write!(f, "{p}/..."),
        }
    }
}

/// Finds the route of a request among several.
#[derive(Debug, Clone)]
pub struct Router {
    /// Exact routes first, then wildcards by their prefix's length, longest first.
    order: Vec<(Route, usize)>,
}

impl Router {
    /// A router over `routes`, each found as its index in that list. Duplicates are the
    /// caller's to refuse (see [`Router::duplicate`]).
    pub fn new(routes: &[Route]) -> Router {
        let mut order: Vec<(Route, usize)> = routes.iter().cloned().zip(0..).collect();
        order.sort_by_key(|(r, i)| match r {
            Route::Exact(_) => (0, 0, *i),
            Route::Wildcard(p) => (1, usize::MAX - p.len(), *i),
        });
        Router { order }
    }

    /// The first pair of indices whose routes are the same, if any.
    pub fn duplicate(routes: &[Route]) -> Option<(usize, usize)> {
        for (j, r) in routes.iter().enumerate() {
            if let Some(i) = routes[..j].iter().position(|q| q == r) {
                return Some((i, j));
            }
        }
        None
    }

    /// The index of the route `path` goes to.
    pub fn find(&self, path: &str) -> Option<usize> {
        self.order
            .iter()
            .find(|(r, _)| r.matches(path))
            .map(|(_, i)| *i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[&str]) -> Router {
        let routes: Vec<Route> = routes.iter().map(|r| Route::parse(r).unwrap()).collect();
        Router::new(&routes)
    }

    #[test]
    fn exact_beats_wildcard_and_the_longest_prefix_wins() {
        let r = router(&["/...", "/a/...", "/a/b/...", "/a/b", "/c"]);
        assert_eq!(r.find("/x"), Some(0));
        assert_eq!(r.find("/"), Some(0));
        assert_eq!(r.find("/a"), Some(1));
        assert_eq!(r.find("/a/x"), Some(1));
        assert_eq!(
            r.find("/ab"),
            Some(0),
            "a prefix matches whole segments only"
        );
        assert_eq!(r.find("/a/b"), Some(3));
        assert_eq!(r.find("/a/b/c"), Some(2));
        assert_eq!(r.find("/c"), Some(4));
        assert_eq!(r.find("/c/d"), Some(0));
        assert_eq!(router(&["/c"]).find("/d"), None);
    }

    #[test]
    fn path_info_is_what_follows_the_base() {
        let w = Route::parse("/a/...").unwrap();
        assert_eq!(w.path_info("/a/b/c"), "/b/c");
        assert_eq!(w.path_info("/a"), "");
        assert_eq!(Route::parse("/...").unwrap().path_info("/x"), "/x");
        assert_eq!(Route::parse("/e").unwrap().path_info("/e"), "");
    }

    #[test]
    fn bad_patterns_and_duplicates_are_found() {
        for bad in ["a", "/a/.../b", "/a?x", "/a/../b", "/a b", "/a...b"] {
            assert!(Route::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Route::parse("/a/").unwrap(), Route::Exact("/a".into()));
        assert_eq!(Route::parse("/").unwrap().to_string(), "/");
        assert_eq!(Route::parse("/...").unwrap().to_string(), "/...");
        let routes: Vec<Route> = ["/a", "/b/...", "/a/"]
            .iter()
            .map(|r| Route::parse(r).unwrap())
            .collect();
        assert_eq!(Router::duplicate(&routes), Some((0, 2)));
    }
}
