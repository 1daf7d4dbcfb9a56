//! Bodies on their way through the server: a request body held to the size cap as the guest
//! reads it, and a response body that counts what it sends, stops at the cap, and writes the
//! request's access-log line (and frees its slot) when it is done or dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::access_log::Finished;
use crate::executor::Ticket;

/// The error type of the bodies berth sends.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body as the server sends it.
pub type ServerBody = ResponseBody;

/// A request body that fails once more than `cap` bytes came, and says so in `exceeded`.
pub struct CappedRequest<B> {
    inner: B,
    seen: u64,
    cap: u64,
    exceeded: Arc<AtomicBool>,
}

impl<B> CappedRequest<B> {
    /// `inner`, held to `cap` bytes.
    pub fn new(inner: B, cap: u64, exceeded: Arc<AtomicBool>) -> Self {
        CappedRequest {
            inner,
            seen: 0,
            cap,
            exceeded,
        }
    }
}

impl<B> Body for CappedRequest<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let me = &mut *self;
        match Pin::new(&mut me.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    me.seen += data.len() as u64;
                    if me.seen > me.cap {
                        me.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(
                            wasmtime_wasi_http::Error::HttpRequestBodySize(Some(me.cap)),
                        )));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body: counts bytes, cuts the response (the connection is reset) past `cap`, and
/// reports to the access log when finished.
pub struct ResponseBody {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    sent: u64,
    cap: u64,
    /// The length the body said it has, if it did: hyper stops reading once it has that much.
    expected: Option<u64>,
    done: Option<Finished>,
    /// Frames read ahead, in order (see [`ResponseBody::read_ahead`]).
    peeked: VecDeque<Result<Frame<Bytes>, BoxError>>,
    /// The inner body has ended (found while reading ahead).
    ended: bool,
    /// The request's ticket, when an instance makes the body: a body that ends because its
    /// instance was killed or trapped is cut, not complete.
    ticket: Option<Arc<Ticket>>,
}

impl ResponseBody {
    /// `inner` on its way, reported through `done`.
    pub fn new<B>(inner: B, cap: u64, done: Finished) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let expected = inner.size_hint().exact();
        ResponseBody {
            inner: inner.map_err(Into::into).boxed_unsync(),
            sent: 0,
            cap,
            expected,
            done: Some(done),
            peeked: VecDeque::new(),
            ended: false,
            ticket: None,
        }
    }

    /// Takes the response's Content-Length as the body's length, when the body does not
    /// know its own.
    pub fn expecting(mut self, length: Option<u64>) -> Self {
        self.expected = self.expected.or(length);
        self
    }

    /// The request's log entry, taken back unlogged (the response will be another).
    pub fn take_entry(&mut self) -> Option<crate::access_log::Entry> {
        self.done.take()?.into_entry()
    }

    /// Ends the body with an error if the instance behind it failed (see [`Ticket`]).
    pub fn watching(mut self, ticket: Arc<Ticket>) -> Self {
        self.ticket = Some(ticket);
        self
    }

    /// Waits (up to `wait`) for the body's first frame, and takes what follows it at once
    /// (up to its end, if it ends), so the response's head and a small body leave in one
    /// write (and with a Content-Length rather than chunked), instead of the head first and
    /// the body in a second packet the client wakes up for again. Gives an error the body
    /// starts with: nothing is sent yet, so the response can still be a 500.
    pub async fn read_ahead(&mut self, wait: std::time::Duration) -> Result<(), String> {
        use futures::FutureExt;
        let Ok(first) = tokio::time::timeout(wait, self.inner.frame()).await else {
            return Ok(());
        };
        let mut next = first;
        loop {
            match next {
                Some(Ok(frame)) => self.peeked.push_back(Ok(frame)),
                Some(Err(e)) if self.peeked.is_empty() => return Err(e.to_string()),
                Some(Err(e)) => {
                    self.peeked.push_back(Err(e));
                    return Ok(());
                }
                None => {
                    if let Some(why) = self.failure() {
                        return Err(why);
                    }
                    self.ended = true;
                    return Ok(());
                }
            }
            // The guest's body channel holds a few chunks: bounded.
            match self.inner.frame().now_or_never() {
                Some(n) => next = n,
                None => return Ok(()),
            }
        }
    }

    /// Why the instance behind the body failed, if it did.
    fn failure(&self) -> Option<String> {
        let t = self.ticket.as_ref()?;
        if t.timed_out() {
            return Some(
                "the instance ran past its deadline while sending the body: it was cut".into(),
            );
        }
        t.recorded_failure()
            .map(|why| format!("the instance failed while sending the body ({why}): it was cut"))
    }

    /// The next frame: those read ahead, else the inner body's; an end that a failed
    /// instance caused is an error.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(p) = self.peeked.pop_front() {
            return Poll::Ready(Some(p));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => match self.failure() {
                Some(why) => Poll::Ready(Some(Err(why.into()))),
                None => Poll::Ready(None),
            },
            other => other,
        }
    }

    /// A whole body in memory.
    pub fn full(bytes: impl Into<Bytes>, done: Finished) -> Self {
        let full = http_body_util::Full::new(bytes.into());
        ResponseBody::new(full, u64::MAX, done)
    }

    fn finish(&mut self, complete: bool, error: Option<String>) {
        if let Some(done) = self.done.take() {
            done.finish(self.sent, complete, error);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let me = &mut *self;
        match me.poll_next(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    me.sent += data.len() as u64;
                    if me.sent > me.cap {
                        let why = format!(
                            "the response body is larger than --max-body-size ({} bytes): the response was cut",
                            me.cap
                        );
                        me.finish(false, Some(why.clone()));
                        return Poll::Ready(Some(Err(why.into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                me.finish(false, Some(e.to_string()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                me.finish(true, None);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.peeked.is_empty() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let peeked: u64 = self
            .peeked
            .iter()
            .map(|f| match f {
                Ok(f) => f.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => 0,
            })
            .sum();
        if self.ended {
            return SizeHint::with_exact(peeked);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + peeked);
        if let Some(u) = inner.upper() {
            hint.set_upper(u + peeked);
        }
        hint
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Dropped: hyper has what the body's length said, sent no body (HEAD, 204, 304), or
        // the client went away.
        let complete = self.expected == Some(self.sent)
            || (self.peeked.is_empty() && (self.ended || self.inner.is_end_stream()));
        self.finish(complete, None);
    }
}
