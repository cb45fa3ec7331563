//! Reading response bodies: gzip decoding, size bounds, and collecting.

use std::io::Write;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::write::GzDecoder;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http_body::Body;
use hyper::body::Incoming;
use llm_tower_core::{Error, ErrorKind};

use super::{BudgetHold, BufferBudget};

/// Decoded output is handed out in pieces of about this size, so one small compressed
/// frame never inflates into a large buffer at once.
const GZIP_PIECE: usize = 32 * 1024;

/// A gzip decoder that inflates step by step and stops once its output passes a limit.
struct Gunzip {
    decoder: GzDecoder<Vec<u8>>,
    /// Compressed bytes not yet fed to the decoder.
    pending: Bytes,
    /// Decoded bytes handed out so far.
    decoded: usize,
    max: usize,
}

impl Gunzip {
    /// Feeds pending input until a piece of output is ready or the input is used up.
    fn step(&mut self) -> Result<Option<Bytes>, Error> {
        while !self.pending.is_empty() && self.decoder.get_ref().len() < GZIP_PIECE {
            // One `write` inflates at most one internal buffer (32 KiB) of output.
            match self.decoder.write(&self.pending) {
                Ok(0) | Err(_) => return Err(transport("invalid gzip body")),
                Ok(n) => {
                    let _ = self.pending.split_to(n);
                }
            }
            self.check(self.decoder.get_ref().len())?;
        }
        self.take()
    }

    /// Flushes the decoder at the end of the body.
    fn finish(&mut self) -> Result<Option<Bytes>, Error> {
        if self.decoder.try_finish().is_err() {
            return Err(transport("truncated gzip body"));
        }
        self.take()
    }

    fn check(&self, buffered: usize) -> Result<(), Error> {
        if self.decoded.saturating_add(buffered) > self.max {
            return Err(transport(format!(
                "gzip response body decompresses to more than {} bytes",
                self.max
            )));
        }
        Ok(())
    }

    fn take(&mut self) -> Result<Option<Bytes>, Error> {
        let out = std::mem::take(self.decoder.get_mut());
        self.check(out.len())?;
        self.decoded += out.len();
        Ok((!out.is_empty()).then(|| Bytes::from(out)))
    }
}

/// A response body yielding decoded (gunzipped when needed) bytes.
pub(crate) struct BodyReader {
    body: Incoming,
    gzip: Option<Gunzip>,
    finished: bool,
    /// The `content-length` the upstream declared (of the encoded body).
    declared_len: Option<u64>,
}

fn transport(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::Transport, msg)
}

impl BodyReader {
    /// Wraps a body, decoding it as the `content-encoding` header says. A gzip body fails
    /// with `Transport` as soon as its decoded size passes `max_decoded` bytes; decoded
    /// bytes come out in pieces of at most a few tens of KiB.
    ///
    /// # Errors
    ///
    /// `Transport` for an encoding other than `gzip` or `identity`.
    pub fn new(
        body: Incoming,
        headers: &HeaderMap,
        max_decoded: usize,
    ) -> Result<BodyReader, Error> {
        let gzip = match headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
            None => None,
            Some(v) if v.eq_ignore_ascii_case(b"identity") || v.is_empty() => None,
            Some(v) if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => {
                Some(Gunzip {
                    decoder: GzDecoder::new(Vec::new()),
                    pending: Bytes::new(),
                    decoded: 0,
                    max: max_decoded,
                })
            }
            Some(v) => {
                let name = String::from_utf8_lossy(v);
                let name: String = name.chars().take(40).collect();
                return Err(transport(format!("unsupported content-encoding {name:?}")));
            }
        };
        let declared_len = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        Ok(BodyReader {
            body,
            gzip,
            finished: false,
            declared_len,
        })
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Bytes, Error>>> {
        self.finished = true;
        self.gzip = None;
        Poll::Ready(Some(Err(e)))
    }

    /// The next decoded bytes; `None` at the end of the body.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            // Compressed input left over from the last frame comes first.
            if let Some(gz) = &mut self.gzip
                && !gz.pending.is_empty()
            {
                match gz.step() {
                    Ok(Some(out)) => return Poll::Ready(Some(Ok(out))),
                    Ok(None) => {}
                    Err(e) => return self.fail(e),
                }
                continue;
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
                        Some(gz) => gz.pending = data,
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return self.fail(crate::error_map::transport(&e));
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    if let Some(gz) = &mut self.gzip {
                        match gz.finish() {
                            Ok(Some(out)) => return Poll::Ready(Some(Ok(out))),
                            Ok(None) => {}
                            Err(e) => return self.fail(e),
                        }
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Reads a whole body, failing with `Transport` beyond `max` decoded bytes.
///
/// A declared `content-length` above `max` fails at once, before a byte is read. The
/// buffer never grows past `max` (nor past what the shared `budget` allows while it is
/// being filled).
pub(crate) async fn collect_body(
    mut reader: BodyReader,
    max: usize,
    budget: Option<BufferBudget>,
) -> Result<Bytes, Error> {
    if let Some(n) = reader.declared_len
        && n > max as u64
    {
        return Err(too_large(max, Some(n)));
    }
    let mut hold = BudgetHold::new(budget);
    // A body that comes in one piece (the usual case) is handed out as it is. Otherwise
    // the pieces are copied into segments of at most SEGMENT bytes and joined once at the
    // end: the buffer never reallocates while it grows, and the transport's read buffers
    // are not kept alive by the pieces, so the memory held is close to the body's size.
    let mut first: Option<Bytes> = None;
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut len = 0usize;
    while let Some(chunk) = std::future::poll_fn(|cx| reader.poll_chunk(cx)).await {
        let chunk = chunk?;
        len = len.saturating_add(chunk.len());
        if len > max {
            return Err(too_large(max, None));
        }
        hold.grow_to(len)?;
        if segments.is_empty() && first.is_none() {
            first = Some(chunk);
            continue;
        }
        for piece in first.take().iter().chain(std::iter::once(&chunk)) {
            let mut rest: &[u8] = piece;
            while !rest.is_empty() {
                let room = segments
                    .last()
                    .map_or(0, |s| s.capacity().saturating_sub(s.len()));
                if room == 0 {
                    segments.push(Vec::with_capacity(SEGMENT));
                    continue;
                }
                let (now, later) = rest.split_at(room.min(rest.len()));
                if let Some(seg) = segments.last_mut() {
                    seg.extend_from_slice(now);
                }
                rest = later;
            }
        }
    }
    if let Some(f) = first {
        return Ok(f);
    }
    if segments.len() == 1 {
        return Ok(segments.pop().map(Bytes::from).unwrap_or_default());
    }
    let mut out = Vec::with_capacity(len);
    for seg in segments.drain(..) {
        out.extend_from_slice(&seg);
    }
    Ok(Bytes::from(out))
}

/// The size of the segments a many-piece body is copied into.
const SEGMENT: usize = 1024 * 1024;

fn too_large(max: usize, declared: Option<u64>) -> Error {
    let msg = match declared {
        Some(n) => format!(
            "upstream response body declares {n} bytes, above the limit of {max} bytes \
             (max_response_bytes)"
        ),
        None => format!(
            "upstream response body is larger than the limit of {max} bytes (max_response_bytes)"
        ),
    };
    Error::new(ErrorKind::Transport, msg)
}
