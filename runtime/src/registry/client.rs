//! One registry host over HTTP: which scheme it speaks (https, or plain HTTP for loopback and
//! insecure registries), requests with the right `Authorization` (see [`auth`]), transient
//! failures retried with exponential backoff, and the registry's error bodies turned into
//! [`RegistryError`]s.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
use ureq::http::{self, Method, Response};
use ureq::{Agent, Body, SendBody};

use super::auth::{AuthState, Challenge, Login, parse_challenge, scope_key};
use super::{RegistryError, RegistryOptions, Result, endpoint_host, is_loopback, tls};

/// A request body that can be sent again on a retry.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    /// No body.
    Empty,
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`.
    File {
        /// The file.
        file: &'a File,
        /// Where the body starts.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
}

impl Payload<'_> {
    fn len(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }
}

/// Reads a file range with positioned reads, so several requests can share one handle.
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, &mut buf[..want], self.pos)?;
        // Windows' positioned read also moves the handle's cursor; nothing here relies on it.
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, &mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob file is shorter than its size",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A request to send through [`Client::send`].
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// A path under the registry (`/v2/…`) or a full URL (an upload location).
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub payload: Payload<'a>,
}

impl<'a> Request<'a> {
    /// A request without a body.
    pub fn new(method: Method, url: impl Into<String>) -> Request<'a> {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            payload: Payload::Empty,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub fn payload(mut self, payload: Payload<'a>) -> Self {
        self.payload = payload;
        self
    }
}

/// The retry policy for requests: a few attempts, exponential backoff with jitter.
pub fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(4))
        .with_max_times(4)
        .with_jitter()
}

/// A connection to one registry for one set of scopes.
pub struct Client {
    registry: String,
    base: String,
    agent: Agent,
    scopes: Vec<String>,
    auth: Mutex<AuthState>,
}

enum Failure {
    Transport(ureq::Error),
    Status(Box<Response<Body>>),
}

/// Whether a transport error is worth retrying (the connection, not the request, failed).
fn transient(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Timeout(_)
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
    )
}

fn is_tls_error(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => true,
        ureq::Error::Io(io) => {
            let s = io.to_string();
            // rustls reports through io::Error: a bad certificate, or a peer that answered
            // the handshake with plain HTTP ("received corrupt message").
            [
                "certificate",
                "tls",
                "TLS",
                "corrupt message",
                "handshake",
                "alert",
            ]
            .iter()
            .any(|w| s.contains(w))
        }
        _ => false,
    }
}

/// Turns a transport error into a [`RegistryError`] for `registry`.
pub fn transport_error(registry: &str, e: ureq::Error) -> RegistryError {
    if is_tls_error(&e) {
        return RegistryError::Tls {
            registry: registry.to_string(),
            cause: e.to_string(),
        };
    }
    let cause = match &e {
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        ureq::Error::HostNotFound => "host not found".to_string(),
        other => other.to_string(),
    };
    RegistryError::Unreachable {
        registry: registry.to_string(),
        cause,
    }
}

/// The registry's JSON error body: `{"errors":[{"code":…,"message":…}]}`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ErrorBody {
    /// The errors.
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
}

/// One error of an [`ErrorBody`].
#[derive(Debug, Default, serde::Deserialize)]
pub struct ErrorEntry {
    /// `MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, `DENIED`, …
    #[serde(default)]
    pub code: String,
    /// The registry's words.
    #[serde(default)]
    pub message: String,
}

impl Client {
    /// Connects to `registry` (as named in a reference: `docker.io`, `localhost:5000`) for
    /// requests needing `scopes`, with `login` if berth has one. The first request finds
    /// the scheme: https, or plain HTTP when the registry is on loopback or insecure and does
    /// not speak TLS.
    pub fn connect(
        registry: &str,
        opts: &RegistryOptions,
        login: Option<Login>,
        scopes: Vec<String>,
    ) -> Result<Client> {
        let host = endpoint_host(registry);
        let insecure = opts.is_insecure(registry) || opts.is_insecure(host);
        let tls = tls::config_for(opts, host, insecure);
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(16)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .accept_encoding("identity")
            .build()
            .into();
        let mut client = Client {
            registry: registry.to_string(),
            base: format!("https://{host}"),
            agent,
            scopes,
            auth: Mutex::new(AuthState {
                login,
                ..AuthState::default()
            }),
        };
        let probe = |base: &str| {
            (|| client.agent.get(format!("{base}/v2/")).call())
                .retry(backoff().with_max_times(2))
                .when(|e| !is_tls_error(e) && transient(e))
                .notify(|e, d| tracing::debug!("probing {base}: {e}; retrying in {d:?}"))
                .call()
        };
        let resp = match probe(&client.base) {
            Ok(r) => r,
            Err(e) if insecure || is_loopback(host) => {
                let plain = format!("http://{host}");
                match probe(&plain) {
                    Ok(r) if matches!(r.status().as_u16(), 200 | 401) => {
                        client.base = plain;
                        r
                    }
                    Ok(_) => return Err(transport_error(registry, e)),
                    Err(e2) => {
                        // Connection refused twice is the registry being down; say that, not TLS.
                        let e = if is_tls_error(&e) { e } else { e2 };
                        return Err(transport_error(registry, e));
                    }
                }
            }
            Err(e) => return Err(transport_error(registry, e)),
        };
        if resp.status() == 401 {
            client.note_challenge(&resp);
        }
        Ok(client)
    }

    /// The registry, as named in references.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// `https://host` or `http://host`.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn note_challenge(&self, resp: &Response<Body>) {
        if let Some(c) = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        {
            self.auth.lock().expect("auth lock").challenge = Some(c);
        }
    }

    /// A URL for a path or an absolute `Location`.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Fetches a bearer token for this client's scopes from the challenge's realm.
    fn fetch_token(&self) -> Result<()> {
        let (realm, service, login) = {
            let st = self.auth.lock().expect("auth lock");
            match &st.challenge {
                Some(Challenge::Bearer { realm, service, .. }) => {
                    (realm.clone(), service.clone(), st.login.clone())
                }
                _ => return Ok(()),
            }
        };
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        let mut param = |k: &str, v: &str| {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v));
            sep = '&';
        };
        if let Some(s) = &service {
            param("service", s);
        }
        for s in &self.scopes {
            param("scope", s);
        }
        if let Some(l) = &login {
            param("account", &l.username);
        }
        let send = || {
            let mut req = self.agent.get(&url);
            if let Some(l) = &login {
                req = req.header("authorization", l.basic_header());
            }
            req.call()
        };
        let mut resp = send
            .retry(backoff())
            .when(transient)
            .call()
            .map_err(|e| transport_error(&self.registry, e))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(if login.is_some() {
                RegistryError::WrongCredentials {
                    registry: self.registry.clone(),
                }
            } else {
                RegistryError::Unauthorized {
                    what: format!("getting a token from {realm}"),
                    registry: self.registry.clone(),
                }
            });
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| transport_error(&self.registry, e))?;
        if status != 200 {
            return Err(RegistryError::Status {
                what: format!("getting a token from {realm}"),
                registry: self.registry.clone(),
                status,
                message: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| RegistryError::Invalid {
            what: format!("the token from {realm}"),
            reason: e.to_string(),
        })?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| RegistryError::Invalid {
                what: format!("the token from {realm}"),
                reason: "it holds no token".into(),
            })?;
        self.auth
            .lock()
            .expect("auth lock")
            .tokens
            .insert(scope_key(&self.scopes), token);
        Ok(())
    }

    fn auth_header(&self) -> Result<Option<String>> {
        let needs_token = {
            let st = self.auth.lock().expect("auth lock");
            matches!(st.challenge, Some(Challenge::Bearer { .. }))
                && !st.tokens.contains_key(&scope_key(&self.scopes))
        };
        if needs_token {
            self.fetch_token()?;
        }
        Ok(self.auth.lock().expect("auth lock").header(&self.scopes))
    }

    fn send_once(&self, req: &Request<'_>, auth: Option<&str>) -> Result<Response<Body>, Failure> {
        let mut b = http::Request::builder()
            .method(req.method.clone())
            .uri(self.url(&req.url));
        for (k, v) in &req.headers {
            b = b.header(*k, v);
        }
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let has_body = !matches!(req.payload, Payload::Empty)
            || matches!(req.method, Method::PUT | Method::POST | Method::PATCH);
        if has_body {
            b = b.header("content-length", req.payload.len().to_string());
        }
        let result = match req.payload {
            Payload::Empty => self.agent.run(b.body(()).expect("valid request")),
            Payload::Bytes(bytes) => self.agent.run(b.body(bytes).expect("valid request")),
            Payload::File { file, offset, len } => {
                let mut reader = RangeReader {
                    file,
                    pos: offset,
                    end: offset + len,
                };
                self.agent.run(
                    b.body(SendBody::from_reader(&mut reader))
                        .expect("valid request"),
                )
            }
        };
        match result {
            Ok(r) if r.status().is_server_error() || r.status() == 429 => {
                Err(Failure::Status(Box::new(r)))
            }
            Ok(r) => Ok(r),
            Err(e) => Err(Failure::Transport(e)),
        }
    }

    /// Sends a request with authentication, retrying transient failures with backoff and
    /// answering one 401 challenge. Any status comes back as a response; only the connection
    /// failing is an error.
    pub fn send(&self, req: Request<'_>) -> Result<Response<Body>> {
        for attempt in 0..2 {
            let auth = self.auth_header()?;
            let result = (|| self.send_once(&req, auth.as_deref()))
                .retry(backoff())
                .when(|f| match f {
                    Failure::Transport(e) => transient(e),
                    Failure::Status(_) => true,
                })
                .call();
            let resp = match result {
                Ok(r) => r,
                Err(Failure::Status(r)) => *r,
                Err(Failure::Transport(e)) => return Err(transport_error(&self.registry, e)),
            };
            if resp.status() == 401 && attempt == 0 {
                let before = self.auth.lock().expect("auth lock").challenge.clone();
                self.note_challenge(&resp);
                let mut st = self.auth.lock().expect("auth lock");
                let changed = st.challenge != before;
                let had_token = st.tokens.remove(&scope_key(&self.scopes)).is_some();
                let basic_new = matches!(st.challenge, Some(Challenge::Basic { .. }))
                    && st.login.is_some()
                    && auth.is_none();
                if changed || had_token || basic_new {
                    continue;
                }
            }
            return Ok(resp);
        }
        unreachable!("the loop returns")
    }

    /// Reads an error response into a [`RegistryError`] about `what`.
    pub fn error(&self, mut resp: Response<Body>, what: &str) -> RegistryError {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 16)
            .read_to_vec()
            .unwrap_or_default();
        let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        let first = parsed.errors.first();
        let code = first.map(|e| e.code.as_str()).unwrap_or("");
        let message = first
            .map(|e| e.message.clone())
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body).trim().to_string();
                if text.is_empty() {
                    http::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("")
                        .to_lowercase()
                } else {
                    text
                }
            });
        // A token without the scope asked for: the user may not do this.
        let insufficient = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("insufficient_scope"));
        if status == 401 && insufficient {
            return RegistryError::Denied {
                what: what.to_string(),
                registry: self.registry.clone(),
                message: "requested access to the resource is denied".into(),
            };
        }
        match (status, code) {
            (401, _) | (_, "UNAUTHORIZED") => RegistryError::Unauthorized {
                what: what.to_string(),
                registry: self.registry.clone(),
            },
            (403, _) | (_, "DENIED") => RegistryError::Denied {
                what: what.to_string(),
                registry: self.registry.clone(),
                message,
            },
            _ => RegistryError::Status {
                what: what.to_string(),
                registry: self.registry.clone(),
                status,
                message,
            },
        }
    }

    /// The registry's error code in a response body already read.
    pub fn error_code(body: &[u8]) -> String {
        serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.errors.into_iter().next())
            .map(|e| e.code)
            .unwrap_or_default()
    }

    /// Checks the credentials: `GET /v2/` must answer 200 with them. For `login`.
    pub fn check_login(&self) -> Result<()> {
        let resp = self.send(Request::new(Method::GET, "/v2/"))?;
        match resp.status().as_u16() {
            200 => Ok(()),
            401 | 403 => Err(RegistryError::WrongCredentials {
                registry: self.registry.clone(),
            }),
            _ => Err(self.error(resp, &format!("logging in to {}", self.registry))),
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_scopes() {
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            Client::error_code(br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}"#),
            "MANIFEST_UNKNOWN"
        );
        assert_eq!(Client::error_code(b"not json"), "");
    }
}
