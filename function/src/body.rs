//! The proxy's response body: a buffered answer, or a relayed event stream; either way
//! it carries the request's log line, written when the body is finished or dropped.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderValue, header};
use http_body::{Frame, SizeHint};

pub type Response = http::Response<Body>;

type Events = Pin<Box<dyn Stream<Item = Result<Bytes, Infallible>> + Send>>;

pub struct Body {
    kind: Kind,
    /// Dropped with the body: when hyper (or the Lambda runtime) is done with it.
    on_drop: Option<Box<dyn std::any::Any + Send>>,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(Events),
}

impl Body {
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            on_drop: None,
        }
    }

    pub fn stream(events: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static) -> Self {
        Self {
            kind: Kind::Stream(Box::pin(events)),
            on_drop: None,
        }
    }

    /// Keeps `guard` alive until the body is dropped (the request's log line).
    pub fn with_guard(mut self, guard: impl Send + 'static) -> Self {
        self.on_drop = Some(Box::new(guard));
        self
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(events) => events
                .as_mut()
                .poll_next(cx)
                .map(|event| event.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    /// Exact for a buffered answer, so it goes out with `Content-Length`, not chunked.
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

/// A buffered answer of `content_type`.
pub fn with_type(status: http::StatusCode, content_type: &'static str, bytes: impl Into<Bytes>) -> Response {
    let mut response = http::Response::new(Body::full(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A 200 answer with `value` as JSON.
pub fn json(value: &impl serde::Serialize) -> Response {
    // Serialising a `serde_json::Value` or a plain struct cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    with_type(http::StatusCode::OK, "application/json", bytes)
}

/// An SSE comment: ignored by every SSE parser, but traffic on a quiet connection, sent
/// while a model thinks (OpenAI's relayed streams and Bedrock's alike).
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
