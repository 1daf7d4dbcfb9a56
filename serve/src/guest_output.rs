//! Where a function's stdout and stderr go: berth's stderr, each line prefixed with the route,
//! so several functions' output stays readable. A line is written in one call, so lines from
//! requests running at once do not interleave inside a line.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line kept whole; a longer one is written in pieces, each prefixed.
const MAX_LINE: usize = 16 * 1024;

/// A function's output stream: `[ROUTE] ` before each line, to berth's stderr.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    prefix: Arc<str>,
}

impl GuestOutput {
    /// Output of the route `route` (`stream` names stdout or stderr in the prefix).
    pub fn new(route: &str, stream: &str) -> GuestOutput {
        GuestOutput {
            prefix: format!("[{route} {stream}] ").into(),
        }
    }

    fn writer(&self) -> LineWriter {
        LineWriter {
            prefix: self.prefix.clone(),
            line: Vec::new(),
        }
    }
}

/// One guest's stream: it gathers a line, then writes it with its prefix.
struct LineWriter {
    prefix: Arc<str>,
    line: Vec<u8>,
}

impl LineWriter {
    fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = MAX_LINE - self.line.len();
            match bytes[..bytes.len().min(room)]
                .iter()
                .position(|&b| b == b'\n')
            {
                Some(i) => {
                    self.line.extend_from_slice(&bytes[..=i]);
                    bytes = &bytes[i + 1..];
                    self.flush_line();
                }
                None => {
                    let n = bytes.len().min(room);
                    self.line.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.line.len() >= MAX_LINE {
                        self.line.push(b'\n');
                        self.flush_line();
                    }
                }
            }
        }
    }

    fn flush_line(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.prefix.len() + self.line.len() + 1);
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(&self.line);
        if out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
        // The log is best effort: a closed stderr must not fail the request.
        let _ = io::stderr().lock().write_all(&out);
        self.line.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush_line();
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LineWriter::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        LineWriter::write(&mut self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
