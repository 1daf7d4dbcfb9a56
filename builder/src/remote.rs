//! `ADD http(s)://…`: downloads a URL into a file, as BuildKit's http source does: the file
//! is named by the response's `Content-Disposition` or the URL's last path segment, gets the
//! `Last-Modified` time (the epoch without one), and its sha256 is taken on the way so the
//! step's cache key can name the content and `--checksum` can be checked.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

/// A downloaded URL.
#[derive(Debug, Clone)]
pub struct Download {
    /// Where the content was saved.
    pub path: PathBuf,
    /// The file name the content takes in a destination folder.
    pub name: String,
    /// The modification time to give it.
    pub mtime: SystemTime,
    /// The content's sha256, hex.
    pub sha256: String,
}

/// Why a download failed; the messages name the URL.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server could not be reached or the transfer broke.
    #[error("downloading {url}: {cause}")]
    Transfer {
        /// The URL.
        url: String,
        /// Why.
        cause: String,
    },
    /// The server answered with an error status.
    #[error("downloading {url}: the server answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// `404 Not Found` and the like.
        status: String,
    },
    /// The content is not what `--checksum` says.
    #[error(
        "downloading {url}: checksum mismatch: expected sha256:{expected}, got sha256:{actual}"
    )]
    Checksum {
        /// The URL.
        url: String,
        /// The digest `--checksum` gave.
        expected: String,
        /// The digest of what was downloaded.
        actual: String,
    },
    /// The downloaded file could not be written.
    #[error("saving {url} to {path}: {cause}")]
    Io {
        /// The URL.
        url: String,
        /// Where.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
}

/// Whether an ADD source is an http(s) URL.
pub fn is_url(source: &str) -> bool {
    let lower = source.get(..8).unwrap_or(source).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Parses `--checksum=sha256:HEX` into the lowercase hex digest.
pub fn parse_checksum(value: &str) -> Result<String, String> {
    let Some((algo, hex)) = value.split_once(':') else {
        return Err(format!(
            "--checksum={value}: give the digest as sha256:HEX (only sha256 is supported)"
        ));
    };
    if !algo.eq_ignore_ascii_case("sha256") {
        return Err(format!(
            "--checksum={value}: the {algo} algorithm is not supported; only sha256 is"
        ));
    }
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "--checksum={value}: a sha256 digest is 64 hexadecimal digits"
        ));
    }
    Ok(hex.to_ascii_lowercase())
}

/// Downloads `url` into the folder `dir` (as a file named by its index `n`), checking the
/// content against `checksum` (hex sha256) when one is given.
pub fn download(
    url: &str,
    dir: &Path,
    n: usize,
    checksum: Option<&str>,
) -> Result<Download, RemoteError> {
    let response = fetch(url)?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let name = header("content-disposition")
        .and_then(|d| disposition_name(&d))
        .unwrap_or_else(|| url_name(url));
    let mtime = header("last-modified")
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
        .and_then(|t| {
            let secs = u64::try_from(t.timestamp()).ok()?;
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        })
        .unwrap_or(SystemTime::UNIX_EPOCH);

    let path = dir.join(format!("download-{n}"));
    let sha256 = save(url, response.into_body().into_reader(), &path)?;
    if let Some(expected) = checksum
        && expected != sha256
    {
        return Err(RemoteError::Checksum {
            url: url.to_string(),
            expected: expected.to_string(),
            actual: sha256,
        });
    }
    Ok(Download {
        path,
        name,
        mtime,
        sha256,
    })
}

fn transfer(url: &str, cause: String) -> RemoteError {
    RemoteError::Transfer {
        url: url.to_string(),
        cause,
    }
}

/// The response to a GET of `url`, once its status says success.
fn fetch(url: &str) -> Result<ureq::http::Response<ureq::Body>, RemoteError> {
    let mut config = ureq::Agent::config_builder();
    // The proxy variables are honoured, except for loopback hosts (as Go's, so BuildKit's).
    if is_loopback(url) {
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config
        .http_status_as_error(false)
        .max_redirects(10)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| {
        transfer(
            url,
            match e {
                ureq::Error::TooManyRedirects => {
                    "too many redirects (more than 10; a redirect loop?)".into()
                }
                ureq::Error::Io(io) => format!("cannot reach the server: {io}"),
                ureq::Error::HostNotFound => "host not found".into(),
                ureq::Error::ConnectionFailed => {
                    "cannot reach the server: connection failed".into()
                }
                other => other.to_string(),
            },
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(RemoteError::Status {
            url: url.to_string(),
            status: format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        });
    }
    Ok(response)
}

/// Writes the body `reader` of `url` to `path`; returns its sha256, hex.
fn save(url: &str, mut reader: impl Read, path: &Path) -> Result<String, RemoteError> {
    let io = |cause: std::io::Error| RemoteError::Io {
        url: url.to_string(),
        path: path.display().to_string(),
        cause,
    };
    let mut file = std::fs::File::create(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(transfer(url, format!("the transfer broke off: {e}"))),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(io)?;
    }
    file.flush().map_err(io)?;
    Ok(hex::encode(hasher.finalize()))
}

/// Whether the URL's host is `localhost` or a loopback address.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The `filename` of a `Content-Disposition` header, reduced to its last element.
fn disposition_name(value: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let v = v.trim().trim_matches('"');
        if v.ends_with('/') {
            return None;
        }
        let base = v.rsplit('/').next()?;
        (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
    })
}

/// The last segment of the URL's path (percent-decoded), or `download`, as BuildKit's.
pub fn url_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let base = percent_decode(base);
    if base.is_empty() || base == "." || base == ".." || base.contains('/') {
        "download".into()
    } else {
        base
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_url_path() {
        assert_eq!(url_name("http://h:8/a/b/file.tar.gz?x=1"), "file.tar.gz");
        assert_eq!(url_name("https://h/dir/"), "dir");
        assert_eq!(url_name("https://h"), "download");
        assert_eq!(url_name("https://h/"), "download");
        assert_eq!(url_name("http://h/a%20b.txt"), "a b.txt");
        assert_eq!(
            disposition_name("attachment; filename=\"report.csv\""),
            Some("report.csv".into())
        );
        assert_eq!(disposition_name("inline"), None);
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://user@localhost/x"));
        assert!(is_loopback("http://[::1]:80/x"));
        assert!(!is_loopback("https://example.com/x"));
    }

    #[test]
    fn checksums_are_sha256_only() {
        let hex = "a".repeat(64);
        assert_eq!(parse_checksum(&format!("sha256:{hex}")), Ok(hex.clone()));
        assert_eq!(
            parse_checksum(&format!("SHA256:{}", "A".repeat(64))),
            Ok(hex)
        );
        let err = parse_checksum(&format!("sha512:{}", "a".repeat(128))).unwrap_err();
        assert!(err.contains("only sha256"), "{err}");
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum("deadbeef").unwrap_err().contains("sha256"));
    }
}
