//! [`CacheStream`]: passes a streamed miss through and stores it once it ended well.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use llm_tower_core::{ChatChunk, ChatStream, ChatStreamAccumulator, Error};
use pin_project_lite::pin_project;

use super::entry::{Entry, StoredBody};
use super::key::CacheKey;
use super::layer::Shared;
use super::service::{put, stored};

/// Where a [`CacheStream`] is.
enum State {
    /// Passing chunks on and folding them into a whole response.
    Collecting {
        acc: Box<ChatStreamAccumulator>,
        /// Text, refusal, reasoning and tool-argument bytes seen so far.
        bytes: u64,
    },
    /// Passing chunks on; the answer will not be stored (too large, failed, native).
    PassThrough,
    /// The stream has ended well: storing it before ending for the client too.
    Storing(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// Ended.
    Ended,
}

pin_project! {
    /// A streamed miss: every chunk goes to the client as it comes; when the stream ends
    /// without error, with a finish reason for every choice, the folded response is
    /// stored before the end reaches the client. A stream that fails, is dropped, passes
    /// the size bound, or carries a provider's native events is not stored.
    pub struct CacheStream {
        #[pin]
        inner: ChatStream,
        state: State,
        shared: Arc<Shared>,
        key: CacheKey,
        provider: Option<String>,
        model: Option<String>,
    }
}

impl CacheStream {
    pub(crate) fn new(
        inner: ChatStream,
        shared: Arc<Shared>,
        key: CacheKey,
        provider: Option<String>,
        model: Option<String>,
    ) -> Self {
        CacheStream {
            inner,
            state: State::Collecting {
                acc: Box::default(),
                bytes: 0,
            },
            shared,
            key,
            provider,
            model,
        }
    }
}

/// The bytes a chunk adds to the folded response, roughly (its text parts).
fn chunk_bytes(chunk: &ChatChunk) -> u64 {
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    chunk
        .choices
        .iter()
        .map(|c| {
            let d = &c.delta;
            let tools: usize = d
                .tool_calls
                .iter()
                .map(|t| {
                    t.function
                        .as_ref()
                        .map_or(0, |f| len(&f.arguments) + len(&f.name))
                })
                .sum();
            (len(&d.content) + len(&d.refusal) + len(&d.reasoning_content) + tools) as u64
        })
        .sum()
}

impl Stream for CacheStream {
    type Item = Result<ChatChunk, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Storing(fut) => {
                    ready!(fut.as_mut().poll(cx));
                    *this.state = State::Ended;
                    return Poll::Ready(None);
                }
                State::Ended => return Poll::Ready(None),
                State::Collecting { .. } | State::PassThrough => {}
            }
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    if let State::Collecting { acc, bytes } = this.state {
                        *bytes = bytes.saturating_add(chunk_bytes(&chunk));
                        if chunk.native.is_some() {
                            stored("unsupported");
                            *this.state = State::PassThrough;
                        } else if *bytes > this.shared.max_entry_bytes {
                            stored("too_large");
                            *this.state = State::PassThrough;
                        } else {
                            acc.push(&chunk);
                        }
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Some(Err(e)) => {
                    if matches!(this.state, State::Collecting { .. }) {
                        stored("incomplete");
                    }
                    *this.state = State::PassThrough;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    let State::Collecting { acc, .. } = std::mem::replace(this.state, State::Ended)
                    else {
                        return Poll::Ready(None);
                    };
                    if acc.chunks() == 0 {
                        stored("incomplete");
                        return Poll::Ready(None);
                    }
                    let (resp, usage) = acc.finish();
                    if resp.choices.is_empty()
                        || resp.choices.iter().any(|c| c.finish_reason.is_none())
                    {
                        stored("incomplete");
                        return Poll::Ready(None);
                    }
                    let entry = Entry {
                        usage,
                        provider: this.provider.take(),
                        model: this.model.take(),
                        ..Entry::new_chat(resp)
                    };
                    let shared = this.shared.clone();
                    let key = *this.key;
                    *this.state = State::Storing(Box::pin(async move {
                        put(&shared, &key, &entry).await;
                    }));
                }
            }
        }
    }
}

impl Entry {
    fn new_chat(resp: llm_tower_core::ChatResponse) -> Entry {
        Entry {
            v: super::entry::ENTRY_VERSION,
            body: StoredBody::Chat(resp),
            usage: None,
            provider: None,
            model: None,
        }
    }
}
