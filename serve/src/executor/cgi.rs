//! CGI as WAGI speaks it (the WAGI spec, as Spin implements it): what a module gets (CGI/1.1
//! variables, `HTTP_*` headers, argv), and how its stdout becomes a response (headers up to
//! the first blank line, then the body).

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use percent_encoding::percent_decode_str;

use crate::route::Route;

/// What a request tells a CGI module, besides its body.
#[derive(Debug)]
pub struct CgiRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// The request target's path, undecoded.
    pub path: &'a str,
    /// The query, without `?` (empty when none).
    pub query: &'a str,
    /// The Host header, or the URI's authority (HTTP/2).
    pub authority: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The route it matched.
    pub route: &'a Route,
    /// The client.
    pub remote: SocketAddr,
    /// The address the server listens on.
    pub local: SocketAddr,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: &'a str,
    /// The body's length, when known.
    pub content_length: Option<u64>,
}

/// The environment variables of a WAGI request.
pub fn environment(r: &CgiRequest<'_>) -> Vec<(String, String)> {
    let header = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let host = r.authority.unwrap_or("").to_string();
    let server_name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ if host.is_empty() => r.local.ip().to_string(),
        _ => host.clone(),
    };
    let raw_path_info = r.route.path_info(r.path);
    let path_info = percent_decode_str(raw_path_info)
        .decode_utf8_lossy()
        .into_owned();
    let authority = if host.is_empty() {
        r.local.to_string()
    } else {
        host.clone()
    };
    let full_url = if r.query.is_empty() {
        format!("http://{authority}{}", r.path)
    } else {
        format!("http://{authority}{}?{}", r.path, r.query)
    };
    let mut env: Vec<(String, String)> = vec![
        ("AUTH_TYPE".into(), String::new()),
        (
            "CONTENT_LENGTH".into(),
            r.content_length.map(|n| n.to_string()).unwrap_or_default(),
        ),
        ("CONTENT_TYPE".into(), header("content-type")),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("PATH_INFO".into(), path_info.clone()),
        ("PATH_TRANSLATED".into(), path_info),
        ("QUERY_STRING".into(), r.query.to_string()),
        ("REMOTE_ADDR".into(), r.remote.ip().to_string()),
        ("REMOTE_HOST".into(), r.remote.ip().to_string()),
        ("REMOTE_USER".into(), String::new()),
        ("REQUEST_METHOD".into(), r.method.to_string()),
        ("SCRIPT_NAME".into(), r.route.base().to_string()),
        ("SERVER_NAME".into(), server_name),
        ("SERVER_PORT".into(), r.local.port().to_string()),
        ("SERVER_PROTOCOL".into(), r.protocol.to_string()),
        ("SERVER_SOFTWARE".into(), "berth".into()),
        ("X_MATCHED_ROUTE".into(), r.route.to_string()),
        ("X_FULL_URL".into(), full_url),
        ("X_RAW_PATH_INFO".into(), raw_path_info.to_string()),
    ];
    for (name, value) in r.headers {
        // Credentials are not the module's to see (CGI's rule); nor is `Proxy`, which would
        // become HTTP_PROXY, a variable HTTP clients take for their proxy ("httpoxy").
        if name == http::header::AUTHORIZATION
            || name == http::header::PROXY_AUTHORIZATION
            || name.as_str() == "proxy"
        {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let key = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        match env.iter_mut().find(|(k, _)| *k == key) {
            // Repeated headers are one variable, as a proxy would join them.
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(value);
            }
            None => env.push((key, value.to_string())),
        }
    }
    env
}

/// The module's argv: the path, then the query's `key=value` pairs, decoded (`+` is a space
/// in the query only).
pub fn arguments(path: &str, query: &str) -> Vec<String> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    std::iter::once(decode(path))
        .chain(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| decode(&p.replace('+', " "))),
        )
        .collect()
}

/// Why a module's output is not a CGI response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgiError {
    /// No blank line ends a header block.
    #[error(
        "its output has no header block (header lines, then a blank line): is the image built for WAGI? it must print e.g. `Content-Type: text/plain`, a blank line, then the body"
    )]
    NoHeaders,
    /// A header line is not `Name: value`.
    #[error("header line {line} of its output is not `Name: value`: {text:?}")]
    BadHeader {
        /// 1-based.
        line: usize,
        /// The line, shortened.
        text: String,
    },
    /// None of `Status`, `Content-Type`, `Location`.
    #[error(
        "its output's headers have none of Status, Content-Type or Location, of which CGI needs one"
    )]
    NoRequiredHeader,
    /// `Status:` is not a code.
    #[error("its Status header {0:?} does not start with a status code from 100 to 999")]
    BadStatus(String),
}

/// A parsed CGI response.
#[derive(Debug)]
pub struct CgiResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers, without `Status`.
    pub headers: HeaderMap,
    /// Where the body starts in the output.
    pub body_start: usize,
}

/// Parses a module's stdout: headers up to the first blank line (`\n\n` or `\r\n\r\n`), one of
/// `Status`, `Content-Type` or `Location` required; `Location` alone is a 302.
pub fn parse_response(out: &[u8]) -> Result<CgiResponse, CgiError> {
    let (head_end, body_start) = find_blank_line(out).ok_or(CgiError::NoHeaders)?;
    let head = &out[..head_end];
    let mut headers = HeaderMap::new();
    let mut status = None;
    let lines = head.split(|&b| b == b'\n').filter(|_| !head.is_empty());
    for (i, raw) in lines.enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let bad = || CgiError::BadHeader {
            line: i + 1,
            text: String::from_utf8_lossy(&raw[..raw.len().min(80)]).into_owned(),
        };
        let colon = raw.iter().position(|&b| b == b':').ok_or_else(bad)?;
        let name = HeaderName::from_bytes(raw[..colon].trim_ascii()).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(raw[colon + 1..].trim_ascii()).map_err(|_| bad())?;
        if name.as_str() == "status" {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            let code = text.split_whitespace().next().unwrap_or("");
            status = Some(
                code.parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or(CgiError::BadStatus(text))?,
            );
        } else {
            headers.append(name, value);
        }
    }
    let status = match status {
        Some(s) => s,
        None if headers.contains_key(http::header::LOCATION) => StatusCode::FOUND,
        None if headers.contains_key(http::header::CONTENT_TYPE) => StatusCode::OK,
        None => return Err(CgiError::NoRequiredHeader),
    };
    Ok(CgiResponse {
        status,
        headers,
        body_start,
    })
}

/// The end of the header block and the start of the body.
fn find_blank_line(out: &[u8]) -> Option<(usize, usize)> {
    let mut start = 0;
    while let Some(n) = out[start..].iter().position(|&b| b == b'\n') {
        let end = start + n;
        let line = &out[start..end];
        if line.is_empty() || line == b"\r" {
            // The header block is everything before this line, without its own newline.
            return Some((start.saturating_sub(1), end + 1));
        }
        start = end + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_headers_a_blank_line_and_a_body() {
        let out = b"Content-Type: text/plain\nX-A: b\n\nhello";
        let r = parse_response(out).unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["x-a"], "b");
        assert_eq!(&out[r.body_start..], b"hello");
        let out = b"Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nmade";
        let r = parse_response(out).unwrap();
        assert_eq!(r.status, StatusCode::CREATED);
        assert!(!r.headers.contains_key("status"));
        assert_eq!(&out[r.body_start..], b"made");
        let r = parse_response(b"Location: /x\n\n").unwrap();
        assert_eq!(r.status, StatusCode::FOUND);
    }

    #[test]
    fn what_is_not_cgi_is_an_error() {
        assert_eq!(parse_response(b"hello\n").unwrap_err(), CgiError::NoHeaders);
        assert!(matches!(
            parse_response(b"Content-Type text/plain\n\n").unwrap_err(),
            CgiError::BadHeader { line: 1, .. }
        ));
        assert_eq!(
            parse_response(b"X-A: b\n\n").unwrap_err(),
            CgiError::NoRequiredHeader
        );
        assert!(matches!(
            parse_response(b"Status: soon\n\n").unwrap_err(),
            CgiError::BadStatus(_)
        ));
        assert_eq!(parse_response(b"").unwrap_err(), CgiError::NoHeaders);
        assert_eq!(
            parse_response(b"\n\nbody").unwrap_err(),
            CgiError::NoRequiredHeader
        );
    }

    #[test]
    fn the_environment_has_cgi_variables_and_headers_but_no_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.test:8080".parse().unwrap());
        headers.insert("authorization", "Bearer x".parse().unwrap());
        headers.insert("proxy", "http://evil".parse().unwrap());
        headers.insert("proxy-authorization", "Basic x".parse().unwrap());
        headers.insert("x-thing", "1".parse().unwrap());
        headers.append("x-thing", "2".parse().unwrap());
        let route = Route::parse("/cgi/...").unwrap();
        let env = environment(&CgiRequest {
            method: "POST",
            path: "/cgi/a%20b/c",
            query: "x=1&y=2",
            authority: Some("example.test:8080"),
            headers: &headers,
            route: &route,
            remote: "127.0.0.1:5555".parse().unwrap(),
            local: "0.0.0.0:8080".parse().unwrap(),
            protocol: "HTTP/1.1",
            content_length: Some(3),
        });
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH_INFO"), Some("/a b/c"));
        assert_eq!(get("X_RAW_PATH_INFO"), Some("/a%20b/c"));
        assert_eq!(get("SCRIPT_NAME"), Some("/cgi"));
        assert_eq!(get("X_MATCHED_ROUTE"), Some("/cgi/..."));
        assert_eq!(get("SERVER_NAME"), Some("example.test"));
        assert_eq!(
            get("X_FULL_URL"),
            Some("http://example.test:8080/cgi/a%20b/c?x=1&y=2")
        );
        assert_eq!(get("HTTP_X_THING"), Some("1, 2"));
        assert_eq!(get("CONTENT_LENGTH"), Some("3"));
        assert_eq!(get("HTTP_AUTHORIZATION"), None);
        assert_eq!(get("HTTP_PROXY"), None);
        assert_eq!(get("HTTP_PROXY_AUTHORIZATION"), None);
        assert_eq!(arguments("/a+b", ""), ["/a+b"]);
        assert_eq!(
            arguments("/cgi/a%20b", "x=1&y=hello+there"),
            ["/cgi/a b", "x=1", "y=hello there"]
        );
    }
}
