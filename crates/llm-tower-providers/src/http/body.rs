//! Reading response bodies: gzip decoding, size bounds, and collecting.

use std::io::Write;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use flate2::write::GzDecoder;
use http::HeaderMap;
use http::header::CONTENT_ENCODING;
use http_body::Body;
use hyper::body::Incoming;
use llm_tower_core::{Error, ErrorKind};

/// A response body yielding decoded (gunzipped when needed) bytes.
pub(crate) struct BodyReader {
    body: Incoming,
    gzip: Option<GzDecoder<Vec<u8>>>,
    finished: bool,
}

fn transport(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Transport, msg)
}

impl BodyReader {
    /// Wraps a body, decoding it as the `content-encoding` header says.
    ///
    /// # Errors
    ///
    /// `Transport` for an encoding other than `gzip` or `identity`.
    pub fn new(body: Incoming, headers: &HeaderMap) -> Result<BodyReader, Error> {
        let gzip = match headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case(b"identity") || v.is_empty() => None,
            Some(v) if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => {
                Some(GzDecoder::new(Vec::new()))
            }
            Some(v) => {
                let name = String::from_utf8_lossy(v);
                let name: String = name.chars().take(40).collect();
                return Err(transport(format!("unsupported content-encoding {name:?}")));
            }
        };
        Ok(BodyReader {
            body,
            gzip,
            finished: false,
        })
    }

    /// The next decoded bytes; `None` at the end of the body.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers
                    };
                    match &mut self.gzip {
                        None if data.is_empty() => continue,
                        None => return Poll::Ready(Some(Ok(data))),
                        Some(gz) => {
                            if gz.write_all(&data).is_err() {
                                self.finished = true;
                                return Poll::Ready(Some(Err(transport("invalid gzip body"))));
                            }
                            let out = std::mem::take(gz.get_mut());
                            if !out.is_empty() {
                                return Poll::Ready(Some(Ok(Bytes::from(out))));
                            }
                        }
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(crate::error_map::transport(&e))));
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    if let Some(gz) = &mut self.gzip {
                        if gz.try_finish().is_err() {
                            return Poll::Ready(Some(Err(transport("truncated gzip body"))));
                        }
                        let out = std::mem::take(gz.get_mut());
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Bytes::from(out))));
                        }
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Reads a whole body, failing with `Transport` beyond `max` decoded bytes.
pub(crate) async fn collect_body(mut reader: BodyReader, max: usize) -> Result<Bytes, Error> {
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(chunk) = std::future::poll_fn(|cx| reader.poll_chunk(cx)).await {
        let chunk = chunk?;
        let len = first.as_ref().map_or(0, Bytes::len) + buf.len() + chunk.len();
        if len > max {
            return Err(transport(format!("response body larger than {max} bytes")));
        }
        if first.is_none() && buf.is_empty() {
            first = Some(chunk);
        } else {
            if let Some(f) = first.take() {
                buf.extend_from_slice(&f);
            }
            buf.extend_from_slice(&chunk);
        }
    }
    Ok(match first {
        Some(f) => f,
        None => buf.freeze(),
    })
}
