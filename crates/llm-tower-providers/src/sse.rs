//! A server-sent events decoder that accepts bytes split anywhere.
//!
//! It follows the WHATWG event-stream rules: lines end with CRLF, LF or CR (a CRLF split
//! across two chunks counts once), lines starting with `:` are comments, `data` lines of
//! one event are joined with `\n`, a blank line dispatches the event, one space after the
//! colon is dropped, a leading byte-order mark is ignored, and an event that is not
//! terminated by a blank line before the end of the stream is discarded.
//!
//! ```
//! use llm_tower_providers::sse::SseDecoder;
//!
//! let mut dec = SseDecoder::new();
//! let mut events = Vec::new();
//! dec.feed(b"event: ping\r\ndata: {\"a\":", &mut events).unwrap();
//! dec.feed(b"1}\r\n\r\n: comment\n", &mut events).unwrap();
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].event, "ping");
//! assert_eq!(events[0].data, "{\"a\":1}");
//! ```

use llm_tower_core::{Error, ErrorKind};

/// The default bound on one line or one event's data (16 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One decoded event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type (`event:` field); empty when the event has none (meaning `message`).
    pub event: String,
    /// The data lines joined with `\n`.
    pub data: String,
    /// The last event id seen (`id:` field), if any.
    pub id: Option<String>,
    /// The reconnection time the server asked for (`retry:` field), in milliseconds.
    pub retry: Option<u64>,
}

/// An incremental server-sent events decoder.
#[derive(Debug, Clone)]
pub struct SseDecoder {
    line: Vec<u8>,
    skip_lf: bool,
    started: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    max_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::new()
    }
}

impl SseDecoder {
    /// A decoder with the default size bound.
    pub fn new() -> Self {
        SseDecoder::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that fails when one line or one event's data exceeds `max` bytes.
    pub fn with_max_event_bytes(max: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            skip_lf: false,
            started: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
            retry: None,
            max_bytes: max,
        }
    }

    /// Feeds bytes and appends every event completed by them to `out`.
    ///
    /// # Errors
    ///
    /// `Transport` when a line or an event grows past the size bound (a server that sends
    /// garbage without line breaks cannot make the decoder buffer without limit).
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Error> {
        if !self.started && !bytes.is_empty() {
            // Strip a UTF-8 byte-order mark at the very start (possibly split).
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let take = (BOM.len() - have).min(bytes.len());
            if bytes[..take] == BOM[have..have + take] {
                if have + take == BOM.len() {
                    self.line.clear();
                    self.started = true;
                    bytes = &bytes[take..];
                } else {
                    self.line.extend_from_slice(&bytes[..take]);
                    return Ok(());
                }
            } else {
                self.started = true;
                // The partial BOM prefix we held was real content after all.
            }
        }
        if self.skip_lf && !bytes.is_empty() {
            self.skip_lf = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    let is_cr = bytes[pos] == b'\r';
                    if self.line.is_empty() {
                        self.process_line_bytes(&bytes[..pos], out)?;
                    } else {
                        self.push_line(&bytes[..pos])?;
                        let line = std::mem::take(&mut self.line);
                        self.process_line_bytes(&line, out)?;
                        self.line = line;
                        self.line.clear();
                    }
                    bytes = &bytes[pos + 1..];
                    if is_cr {
                        match bytes.first() {
                            Some(b'\n') => bytes = &bytes[1..],
                            Some(_) => {}
                            None => self.skip_lf = true,
                        }
                    }
                }
                None => {
                    self.push_line(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(())
    }

    /// `true` when bytes of an unfinished line or event are buffered.
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn push_line(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.line.len() + bytes.len() > self.max_bytes {
            return Err(too_large());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line_bytes(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Error> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_bytes {
                    return Err(too_large());
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if !self.has_data {
            self.event.clear();
            return;
        }
        out.push(SseEvent {
            event: std::mem::take(&mut self.event),
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
            retry: self.retry.take(),
        });
        self.has_data = false;
    }
}

fn too_large() -> Error {
    Error::new(
        ErrorKind::Transport,
        "server-sent event larger than the allowed size",
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out).unwrap();
        }
        out
    }

    fn decode_split_every_byte(input: &[u8]) -> Vec<SseEvent> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for b in input {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
        }
        out
    }

    const STREAM: &[u8] = b"\xEF\xBB\xBF: keep-alive\r\n\r\nevent: message_start\r\ndata: {\"x\":\"h\xC3\xA9llo\"}\r\n\r\ndata: line1\ndata: line2\ndata:  two spaces\n\n: comment\nevent: e\rdata: cr\r\rdata: [DONE]\n\n";

    fn expected() -> Vec<(String, String)> {
        vec![
            ("message_start".into(), "{\"x\":\"h\u{e9}llo\"}".into()),
            (String::new(), "line1\nline2\n two spaces".into()),
            ("e".into(), "cr".into()),
            (String::new(), "[DONE]".into()),
        ]
    }

    fn pairs(evs: &[SseEvent]) -> Vec<(String, String)> {
        evs.iter()
            .map(|e| (e.event.clone(), e.data.clone()))
            .collect()
    }

    #[test]
    fn decodes_whole_input() {
        assert_eq!(pairs(&decode_all(&[STREAM])), expected());
    }

    #[test]
    fn decodes_input_split_at_every_byte() {
        assert_eq!(pairs(&decode_split_every_byte(STREAM)), expected());
    }

    #[test]
    fn decodes_input_split_at_every_position_in_two() {
        for i in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(i);
            assert_eq!(pairs(&decode_all(&[a, b])), expected(), "split at {i}");
        }
    }

    #[test]
    fn crlf_split_between_cr_and_lf_counts_once() {
        let evs = decode_all(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(
            pairs(&evs),
            vec![(String::new(), "a".into()), (String::new(), "b".into())]
        );
        let evs = decode_all(&[b"data: a\r", b"\n", b"\n", b"data: b\n\n"]);
        assert_eq!(
            pairs(&evs),
            vec![(String::new(), "a".into()), (String::new(), "b".into())]
        );
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.feed(b"data: {\"partial\":", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(d.has_pending());
        d.feed(b"1}\n", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(d.has_pending());
    }

    #[test]
    fn field_without_colon_and_empty_data() {
        let evs = decode_all(&[b"data\n\nevent: only-type\n\ndata:\ndata:\n\n"]);
        assert_eq!(
            pairs(&evs),
            vec![(String::new(), String::new()), (String::new(), "\n".into())]
        );
    }

    #[test]
    fn id_and_retry_fields() {
        let evs = decode_all(&[b"id: 7\nretry: 1500\nretry: x\ndata: a\n\ndata: b\n\n"]);
        assert_eq!(evs[0].id.as_deref(), Some("7"));
        assert_eq!(evs[0].retry, Some(1500));
        assert_eq!(evs[1].id.as_deref(), Some("7"));
        assert_eq!(evs[1].retry, None);
    }

    #[test]
    fn oversized_line_is_an_error_not_unbounded_memory() {
        let mut d = SseDecoder::with_max_event_bytes(64);
        let mut out = Vec::new();
        let junk = [b'x'; 40];
        d.feed(&junk, &mut out).unwrap();
        let err = d.feed(&junk, &mut out).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport);
    }

    #[test]
    fn oversized_event_data_is_an_error() {
        let mut d = SseDecoder::with_max_event_bytes(16);
        let mut out = Vec::new();
        let err = d
            .feed(b"data: 0123456789\ndata: 0123456789\n", &mut out)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transport);
    }

    #[test]
    fn partial_bom_that_is_not_a_bom_is_kept() {
        // 0xEF starts a BOM but is followed by other bytes: it is content, decoded lossily.
        let evs = decode_all(&[b"\xEF", b"data: x\n\n"]);
        assert_eq!(
            evs.len(),
            0,
            "the line starts with a garbage byte, so no data field"
        );
        let evs = decode_all(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(pairs(&evs), vec![(String::new(), "x".into())]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200 {
            let mut d = SseDecoder::with_max_event_bytes(1024);
            let mut out = Vec::new();
            for _ in 0..50 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = (seed % 17) as usize;
                let chunk: Vec<u8> = (0..len)
                    .map(|i| {
                        let b = (seed >> (i % 8 * 8)) as u8;
                        [b'\r', b'\n', b':', b'd', b'a', b't', b' ', b][(b % 8) as usize]
                    })
                    .collect();
                let _ = d.feed(&chunk, &mut out);
            }
        }
    }
}
