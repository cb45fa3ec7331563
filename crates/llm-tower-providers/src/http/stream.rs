//! A streamed response body turned into a [`ChatStream`]: bytes -> SSE events -> chunks,
//! with an idle timeout, the request deadline, and a clear error when the stream ends
//! before its final event.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_util::StreamExt;
use llm_tower_core::clock::Sleep;
use llm_tower_core::{ChatChunk, ChatStream, Error, SharedClock};

use super::{BodyReader, Deadline};
use crate::error_map;
use crate::sse::{SseDecoder, SseEvent};

/// What a provider's stream parser says after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// More events follow.
    Continue,
    /// The final event arrived; the stream is complete.
    Done,
}

/// Converts one provider's SSE events into chunks.
pub(crate) trait StreamParser: Send + Unpin + 'static {
    /// Handles one event, pushing the chunks it produces.
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<ChatChunk>) -> Result<Flow, Error>;

    /// The error for a body that ended before the final event.
    fn incomplete(&self) -> Error;

    /// The body ended (without a final event): a provider whose stream has no final event
    /// (Gemini) decides here whether it is complete, pushing any last chunks. The default
    /// is [`StreamParser::incomplete`].
    fn end(&mut self, _out: &mut VecDeque<ChatChunk>) -> Result<(), Error> {
        Err(self.incomplete())
    }
}

enum State {
    Reading,
    /// The final event arrived: hand out what is buffered, then end.
    Complete,
    /// An error was returned: end.
    Failed,
}

/// Splits a response body into events: server-sent events, or another framing (Bedrock's
/// binary event stream) whose messages are handed to the parser as [`SseEvent`]s.
pub(crate) trait FrameDecoder: Send + Unpin + 'static {
    /// Feeds bytes, pushing every complete event.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Error>;
}

impl FrameDecoder for SseDecoder {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), Error> {
        SseDecoder::feed(self, bytes, out)
    }
}

/// The stream over a response body.
pub(crate) struct SseChatStream<P, D = SseDecoder> {
    body: BodyReader,
    decoder: D,
    events: Vec<SseEvent>,
    parser: P,
    out: VecDeque<ChatChunk>,
    state: State,
    clock: SharedClock,
    provider: Arc<str>,
    idle: Duration,
    last_data: Instant,
    /// `None` when `last_data + idle` cannot be represented (no idle deadline).
    idle_sleep: Option<Sleep>,
    deadline: Option<(Deadline, Sleep)>,
}

impl<P: StreamParser> SseChatStream<P> {
    /// A stream of server-sent events over `body`; `deadline` is the caller's deadline, if
    /// any.
    pub fn new(
        body: BodyReader,
        parser: P,
        clock: SharedClock,
        provider: Arc<str>,
        idle: Duration,
        deadline: Option<Deadline>,
    ) -> Self {
        SseChatStream::with_decoder(
            body,
            SseDecoder::new(),
            parser,
            clock,
            provider,
            idle,
            deadline,
        )
    }
}

impl<P: StreamParser, D: FrameDecoder> SseChatStream<P, D> {
    /// A stream over `body` framed by `decoder`.
    pub fn with_decoder(
        body: BodyReader,
        decoder: D,
        parser: P,
        clock: SharedClock,
        provider: Arc<str>,
        idle: Duration,
        deadline: Option<Deadline>,
    ) -> Self {
        let now = clock.now();
        let idle_sleep = now.checked_add(idle).map(|due| clock.sleep_until(due));
        let deadline = deadline.and_then(|d| d.at.map(|at| (d, clock.sleep_until(at))));
        SseChatStream {
            body,
            decoder,
            events: Vec::new(),
            parser,
            out: VecDeque::new(),
            state: State::Reading,
            clock,
            provider,
            idle,
            last_data: now,
            idle_sleep,
            deadline,
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<ChatChunk, Error>>> {
        self.state = State::Failed;
        self.out.clear();
        Poll::Ready(Some(Err(e.with_provider(self.provider.clone()))))
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.decoder.feed(bytes, &mut self.events)?;
        let mut events = std::mem::take(&mut self.events);
        let mut result = Ok(());
        for ev in events.drain(..) {
            match self.parser.on_event(ev, &mut self.out) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Done) => {
                    self.state = State::Complete;
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        events.clear();
        self.events = events;
        result
    }
}

impl<P: StreamParser, D: FrameDecoder> Stream for SseChatStream<P, D> {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(c) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(c)));
            }
            match this.state {
                State::Reading => {}
                State::Complete | State::Failed => return Poll::Ready(None),
            }
            if let Some((d, sleep)) = &mut this.deadline
                && sleep.as_mut().poll(cx).is_ready()
            {
                let e = d.error();
                return this.fail(e);
            }
            match this.body.poll_chunk(cx) {
                Poll::Ready(Some(Ok(bytes))) => {
                    this.last_data = this.clock.now();
                    if let Err(e) = this.feed(&bytes) {
                        return this.fail(e);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let e = Error::new(e.kind(), format!("stream interrupted: {}", e.message()));
                    return this.fail(e);
                }
                Poll::Ready(None) => match this.parser.end(&mut this.out) {
                    Ok(()) => this.state = State::Complete,
                    Err(e) => return this.fail(e),
                },
                Poll::Pending => loop {
                    let Some(idle_sleep) = &mut this.idle_sleep else {
                        return Poll::Pending;
                    };
                    if idle_sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    let Some(due) = this.last_data.checked_add(this.idle) else {
                        this.idle_sleep = None;
                        return Poll::Pending;
                    };
                    if this.clock.now() >= due {
                        let e = Error::timeout(format!(
                            "stream idle: no data for {}",
                            error_map::fmt_duration(this.idle)
                        ));
                        return this.fail(e);
                    }
                    this.idle_sleep = Some(this.clock.sleep_until(due));
                },
            }
        }
    }
}

/// Reads chunks until the first one that carries a token (text, a tool call, a finish
/// reason or usage), so the response can report the time to first token and errors that
/// arrive before any output fail the call itself (where a retry layer can act on them).
///
/// Returns the buffered chunks, the instant the first token arrived, and the rest.
pub(crate) async fn first_token<S>(
    mut stream: S,
    deadline: &Deadline,
    clock: &SharedClock,
) -> Result<(Vec<ChatChunk>, Option<Instant>, S), Error>
where
    S: Stream<Item = Result<ChatChunk, Error>> + Unpin + Send,
{
    let mut buffered = Vec::new();
    let at = deadline
        .run(clock, async {
            while let Some(item) = stream.next().await {
                let chunk = item?;
                let is_token = chunk.usage.is_some()
                    || chunk.choices.iter().any(|c| {
                        c.finish_reason.is_some()
                            || c.delta.content.as_deref().is_some_and(|t| !t.is_empty())
                            || !c.delta.tool_calls.is_empty()
                    });
                buffered.push(chunk);
                if is_token {
                    return Ok(Some(clock.now()));
                }
            }
            Ok(None)
        })
        .await?;
    Ok((buffered, at, stream))
}

/// The buffered chunks followed by the rest of the stream.
pub(crate) fn prepend<S>(buffered: Vec<ChatChunk>, rest: S) -> ChatStream
where
    S: Stream<Item = Result<ChatChunk, Error>> + Send + 'static,
{
    Box::pin(futures_util::stream::iter(buffered.into_iter().map(Ok)).chain(rest))
}
