//! [`CountedStream`]: counts a streamed chat completion chunk by chunk.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use llm_tower_core::{ChatChunk, Error, StreamCost, UsageMeter};
use pin_project_lite::pin_project;

use super::counter::{TokenCount, TokenCounter};
use super::future::usage_of;

/// Where a counted stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Passing chunks on; no chunk has carried usage yet.
    Counting,
    /// A chunk carried the provider's usage: nothing to add at the end.
    ProviderUsage,
    /// The inner stream failed; its error was passed on and nothing is added after it.
    Failed,
    /// Ended (after the appended usage chunk, if any).
    Done,
}

pin_project! {
    /// Wraps a chat stream: adds every chunk's output tokens to the request's
    /// [`UsageMeter`] and, when the stream ends without any chunk carrying usage, yields one
    /// last chunk with the counted usage.
    #[derive(Debug)]
    pub(crate) struct CountedStream<St> {
        #[pin]
        inner: St,
        counter: Arc<dyn TokenCounter>,
        // Fallback model to count with when a chunk names none.
        model: String,
        prompt: TokenCount,
        completion: TokenCount,
        meter: UsageMeter,
        // Id, model and creation time of the last chunk seen, for the usage chunk.
        last: ChatChunk,
        // The cost layer's handle (inside this layer): settled when the inner stream
        // ends, so the appended usage chunk can carry the cost.
        cost: Option<StreamCost>,
        state: State,
    }
}

impl<St> CountedStream<St> {
    pub(crate) fn new(
        inner: St,
        counter: Arc<dyn TokenCounter>,
        model: String,
        prompt: TokenCount,
        meter: UsageMeter,
    ) -> Self {
        let last = ChatChunk {
            extra: Default::default(),
            id: String::new(),
            model: model.clone(),
            created: 0,
            choices: Vec::new(),
            usage: None,
            cost: None,
            native: None,
        };
        CountedStream {
            inner,
            counter,
            model,
            prompt,
            completion: TokenCount::exact(0),
            meter,
            last,
            cost: None,
            state: State::Counting,
        }
    }

    /// The stream's cost handle, whose amount the appended usage chunk carries.
    pub(crate) fn with_cost(mut self, cost: Option<StreamCost>) -> Self {
        self.cost = cost;
        self
    }
}

impl<St> Stream for CountedStream<St>
where
    St: Stream<Item = Result<ChatChunk, Error>>,
{
    type Item = Result<ChatChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.state == State::Done {
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_next(cx)) {
            Some(Ok(chunk)) => {
                let model = if chunk.model.is_empty() {
                    this.model.as_str()
                } else {
                    chunk.model.as_str()
                };
                let count = this.counter.count_chunk(model, &chunk);
                *this.completion += count;
                this.meter.add_completion(count.tokens);
                if chunk.usage.is_some() && *this.state == State::Counting {
                    *this.state = State::ProviderUsage;
                }
                // `clone_from` reuses the buffers: no allocation once they are big enough.
                this.last.id.clone_from(&chunk.id);
                if !chunk.model.is_empty() {
                    this.last.model.clone_from(&chunk.model);
                }
                this.last.created = chunk.created;
                Poll::Ready(Some(Ok(chunk)))
            }
            Some(Err(error)) => {
                *this.state = State::Failed;
                Poll::Ready(Some(Err(error)))
            }
            None => {
                let state = std::mem::replace(this.state, State::Done);
                if state == State::Counting {
                    let mut chunk = std::mem::replace(
                        this.last,
                        ChatChunk {
                            extra: Default::default(),
                            id: String::new(),
                            model: String::new(),
                            created: 0,
                            choices: Vec::new(),
                            usage: None,
                            cost: None,
                            native: None,
                        },
                    );
                    chunk.usage = Some(usage_of(*this.prompt, *this.completion));
                    // A cost layer inside has settled on the end it just saw.
                    chunk.cost = this.cost.as_ref().and_then(StreamCost::get);
                    Poll::Ready(Some(Ok(chunk)))
                } else {
                    Poll::Ready(None)
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (low, high) = self.inner.size_hint();
        match self.state {
            State::Counting => (low, high.and_then(|h| h.checked_add(1))),
            State::ProviderUsage | State::Failed => (low, high),
            State::Done => (0, Some(0)),
        }
    }
}
