//! A WAGI module for berth's `serve` tests. What it prints depends on PATH_INFO
//! (see the match in `main`); by default it answers text/plain with every
//! environment variable as a sorted `KEY=VALUE` line, then its arguments as
//! `argv[I]=VALUE` lines (brackets so they cannot clash with a variable).

use std::hint::black_box;
use std::io::{Read, Write};

use sha2::{Digest as _, Sha256};

/// /big writes its body in chunks of this size.
const BIG_CHUNK: usize = 64 * 1024;

fn main() {
    let path = std::env::var("PATH_INFO").unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let response: Vec<u8> = match path.as_str() {
        "/status" => "Content-Type: text/plain\nStatus: 201 Created\nX-Probe: yes\n\nmade".into(),
        // No Content-Type: a Location alone is a redirect, which the host answers with 302.
        "/redirect" => "Location: /elsewhere\n\n".into(),
        // No header block at all: the host has to reject it, not guess.
        "/noheaders" => "hello\n".into(),
        "/badheader" => "Content-Type text/plain\n\n".into(),
        "/trap" => std::process::abort(),
        "/loop" => {
            // black_box keeps the optimizer from proving the loop does nothing.
            let mut i = 0u64;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        "/upload" => upload().into(),
        _ => match path.strip_prefix("/big/").map(str::parse::<u64>) {
            Some(Ok(n)) => return big(&mut out, n),
            Some(Err(_)) => {
                "Status: 400 Bad Request\nContent-Type: text/plain\n\nbad length".into()
            }
            None => dump().into(),
        },
    };
    out.write_all(&response).expect("write response");
    out.flush().expect("flush response");
}

/// The default answer: the CGI environment and argv.
fn dump() -> String {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    let mut body = String::from("Content-Type: text/plain\n\n");
    for (key, value) in vars {
        body.push_str(&format!("{key}={value}\n"));
    }
    for (i, arg) in std::env::args().enumerate() {
        body.push_str(&format!("argv[{i}]={arg}\n"));
    }
    body
}

/// Reads all of stdin and answers `LEN SHA256HEX`.
fn upload() -> String {
    let mut stdin = std::io::stdin().lock();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0; BIG_CHUNK];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) => {
                return format!(
                    "Status: 500 Internal Server Error\nContent-Type: text/plain\n\nread after {len} bytes: {e}"
                )
            }
        }
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("Content-Type: text/plain\n\n{len} {hex}")
}

/// Content-Type, then N bytes, byte i being b'a' + i % 26, written 64 KiB at a time.
fn big(out: &mut impl Write, n: u64) {
    // One chunk plus a lap of the alphabet, so any chunk can start at any letter.
    let pattern: Vec<u8> = (b'a'..=b'z').cycle().take(BIG_CHUNK + 26).collect();
    out.write_all(b"Content-Type: text/plain\n\n")
        .expect("write headers");
    let mut sent = 0u64;
    while sent < n {
        let take = (n - sent).min(BIG_CHUNK as u64) as usize;
        let from = (sent % 26) as usize;
        out.write_all(&pattern[from..from + take])
            .expect("write body");
        sent += take as u64;
    }
    out.flush().expect("flush body");
}
