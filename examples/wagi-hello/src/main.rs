//! A WAGI handler: a plain WASI command that gets the request the CGI way
//! (environment variables, argv, the body on stdin) and writes its response
//! to stdout as CGI headers, a blank line, then the body.

use std::io::{Read, Write};

/// Bodies up to this size are echoed back; longer ones only by length.
const ECHO_LIMIT: usize = 1024;

fn main() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let args: Vec<String> = std::env::args().collect();
    let mut body = Vec::new();
    // No body reads as an empty stdin.
    let read = std::io::stdin().read_to_end(&mut body);

    let mut out = String::from("Content-Type: text/plain\n\n");
    out.push_str("Hello from a berth WAGI function!\n");
    for name in [
        "REQUEST_METHOD",
        "PATH_INFO",
        "QUERY_STRING",
        "X_MATCHED_ROUTE",
    ] {
        out.push_str(&format!("{name}: {}\n", var(name)));
    }
    out.push_str(&format!("args: {args:?}\n"));
    match read {
        Ok(len) => out.push_str(&format!("body: {len} bytes\n")),
        Err(e) => out.push_str(&format!("body: unreadable: {e}\n")),
    }
    if !body.is_empty() && body.len() <= ECHO_LIMIT {
        out.push_str(&String::from_utf8_lossy(&body));
        if !body.ends_with(b"\n") {
            out.push('\n');
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes()).expect("write response");
    stdout.flush().expect("flush response");
}
