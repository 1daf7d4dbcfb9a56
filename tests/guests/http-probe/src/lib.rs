//! A wasi:http component for berth's `serve` tests. What it does depends on the
//! request path (see the match in `handle`); every answer is text/plain.

use std::hint::black_box;
use std::io::{Read, Write as _};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Probe;

wasip2::http::proxy::export!(Probe);

/// Survives between requests only if the host reuses an instance: /stash must
/// always find it empty.
static STASH: Mutex<String> = Mutex::new(String::new());

/// The commands, by the path segment that names them.
const COMMANDS: &[&str] = &[
    "env", "file", "write", "stash", "trap", "loop", "hog", "big", "upload", "echo-header",
    "print", "status", "sleep",
];

/// /big streams its body in chunks of this size.
const BIG_CHUNK: usize = 64 * 1024;

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let full = request.path_with_query().unwrap_or_default();
        let path = full.split('?').next().unwrap_or_default();
        // The command is the first segment that names one, so a route's prefix
        // (`/a/env/X` under `/a/...`) goes before it.
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let at = segments
            .iter()
            .position(|s| COMMANDS.contains(s))
            .unwrap_or(segments.len());
        let head = segments.get(at).copied().unwrap_or("");
        let rest = decode(&segments.get(at + 1..).unwrap_or(&[]).join("/"));
        match head {
            "env" => match std::env::var(&rest) {
                Ok(value) => send(out, 200, value),
                Err(_) => send(out, 404, "unset"),
            },
            "file" => match std::fs::read(format!("/{rest}")) {
                Ok(bytes) => send(out, 200, bytes),
                Err(e) => send(out, 404, e.to_string()),
            },
            "write" => match std::fs::write(format!("/{rest}"), "x") {
                Ok(()) => send(out, 200, "wrote"),
                Err(e) => send(out, 500, e.to_string()),
            },
            "stash" => {
                let previous = std::mem::replace(&mut *STASH.lock().unwrap(), rest);
                send(out, 200, previous)
            }
            "trap" => core::arch::wasm32::unreachable(),
            "loop" => {
                // black_box keeps the optimizer from proving the loop does nothing.
                let mut i = 0u64;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "hog" => hog(out),
            "big" => match rest.parse::<u64>() {
                Ok(n) => big(out, n),
                Err(_) => send(out, 400, "bad length"),
            },
            "upload" => upload(request, out),
            "echo-header" => match request.headers().get(&rest).first() {
                Some(value) => send(out, 200, value.clone()),
                None => send(out, 404, "unset"),
            },
            "print" => {
                println!("hello stdout");
                eprintln!("hello stderr");
                send(out, 200, "printed")
            }
            "status" => match rest.parse::<u16>() {
                Ok(code) => send(out, code, ""),
                Err(_) => send(out, 400, "bad status"),
            },
            "sleep" => {
                let ms = rest.parse::<u64>().unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                send(out, 200, "slept")
            }
            _ => send(out, 200, "probe"),
        }
    }
}

/// Answers `status` with a whole body and its content-length.
fn send(out: ResponseOutparam, status: u16, body: impl AsRef<[u8]>) {
    let body = body.as_ref();
    // 204 and 304 must not carry a content-length.
    let len = (!matches!(status, 204 | 304)).then_some(body.len() as u64);
    let Some((response, outgoing)) = start(status, len) else {
        return send(out, 400, "bad status");
    };
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream taken once");
    // A client that hung up closes the stream: stop quietly, no trap.
    // blocking_flush, not flush: the stream's inherent `flush` only starts one.
    let sent =
        body.is_empty() || (stream.write_all(body).is_ok() && stream.blocking_flush().is_ok());
    drop(stream);
    if sent {
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

/// A response with text/plain and, if known, a content-length; None if the
/// status is not one wasi:http accepts.
fn start(status: u16, len: Option<u64>) -> Option<(OutgoingResponse, OutgoingBody)> {
    let mut fields = vec![("content-type".to_string(), b"text/plain".to_vec())];
    if let Some(len) = len {
        fields.push(("content-length".to_string(), len.to_string().into_bytes()));
    }
    let response = OutgoingResponse::new(Fields::from_list(&fields).expect("valid headers"));
    response.set_status_code(status).ok()?;
    let body = response.body().expect("body taken once");
    Some((response, body))
}

/// N bytes, byte i being b'a' + i % 26, with no content-length (so chunked),
/// written 64 KiB at a time with a flush after each, so the host has to stream it
/// rather than take it whole.
fn big(out: ResponseOutparam, n: u64) {
    let (response, outgoing) = start(200, None).expect("200 is valid");
    ResponseOutparam::set(out, Ok(response));
    // One chunk plus a lap of the alphabet, so any chunk can start at any letter.
    let pattern: Vec<u8> = (b'a'..=b'z').cycle().take(BIG_CHUNK + 26).collect();
    let mut stream = outgoing.write().expect("stream taken once");
    let mut sent = 0u64;
    while sent < n {
        let take = (n - sent).min(BIG_CHUNK as u64) as usize;
        let from = (sent % 26) as usize;
        // write_all goes through check_write, so no write exceeds what the stream
        // accepts; a closed stream (client gone) ends the request quietly.
        let chunk = &pattern[from..from + take];
        if stream.write_all(chunk).is_err() || stream.blocking_flush().is_err() {
            return;
        }
        sent += take as u64;
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Reads the whole request body as a stream and answers `LEN SHA256HEX`.
fn upload(request: IncomingRequest, out: ResponseOutparam) {
    let body = request.consume().expect("body consumed once");
    let mut stream = body.stream().expect("stream taken once");
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0; BIG_CHUNK];
    loop {
        // Read::read by name: the stream's inherent wasi `read` takes a length.
        match Read::read(&mut stream, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) => return send(out, 500, format!("read after {len} bytes: {e}")),
        }
    }
    drop(stream);
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    send(out, 200, format!("{len} {hex}"))
}

/// Allocates and touches 1 MiB blocks until the memory runs out. With a memory
/// limit that makes memory.grow fail, it frees them and answers 500 with how far
/// it got; a host that traps at the limit instead ends the request.
fn hog(out: ResponseOutparam) {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::new();
        if block.try_reserve_exact(1 << 20).is_err() || blocks.try_reserve(1).is_err() {
            break;
        }
        // Touch every page so the memory is really used.
        block.resize(1 << 20, 1u8);
        blocks.push(black_box(block));
    }
    let mib = blocks.len();
    drop(blocks);
    send(out, 500, format!("allocation failed after {mib} MiB"))
}

/// Undoes %XX escapes, so a path segment can carry any byte.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
