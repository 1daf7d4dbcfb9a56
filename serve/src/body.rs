//! Bodies on their way through the server: a request body held to the size cap as the guest
//! reads it, and a response body that counts what it sends, stops at the cap, and writes the
//! request's access-log line (and frees its slot) when it is done or dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::access_log::Finished;

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
        }
    }

    /// Takes the response's Content-Length as the body's length, when the body does not
    /// know its own.
    pub fn expecting(mut self, length: Option<u64>) -> Self {
        self.expected = self.expected.or(length);
        self
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
        match Pin::new(&mut me.inner).poll_frame(cx) {
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
                let why = format!("the response body failed: {e}");
                me.finish(false, Some(why));
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
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Dropped: hyper has what the body's length said, sent no body (HEAD, 204, 304), or
        // the client went away.
        let complete = self.inner.is_end_stream() || self.expected == Some(self.sent);
        self.finish(complete, None);
    }
}
