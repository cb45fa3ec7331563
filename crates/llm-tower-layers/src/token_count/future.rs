//! [`ResponseFuture`] of [`CountTokens`](super::CountTokens).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use llm_tower_core::{Error, LlmResponse, ResponseBody, Usage, UsageMeter, UsageSource};
use pin_project_lite::pin_project;

use super::counter::{TokenCount, TokenCounter};
use super::stream::CountedStream;

pin_project! {
    /// The response future of [`CountTokens`](super::CountTokens): completes the
    /// response's usage, or wraps its stream to count it.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        after: Option<AfterCall>,
    }
}

/// What the layer needs once the inner service has answered.
#[derive(Debug)]
struct AfterCall {
    counter: Arc<dyn TokenCounter>,
    /// The model the request named.
    model: String,
    prompt: TokenCount,
    meter: UsageMeter,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: F,
        counter: Arc<dyn TokenCounter>,
        model: String,
        prompt: TokenCount,
        meter: UsageMeter,
    ) -> Self {
        ResponseFuture {
            inner,
            after: Some(AfterCall {
                counter,
                model,
                prompt,
                meter,
            }),
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<LlmResponse, Error>>,
{
    type Output = Result<LlmResponse, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(match this.after.take() {
            Some(after) => after.finish(response),
            None => response,
        }))
    }
}

impl AfterCall {
    fn finish(self, response: LlmResponse) -> LlmResponse {
        let LlmResponse {
            body,
            usage,
            cost,
            meta,
        } = response;
        // Count output as the model that actually answered, when the response says.
        let answered = meta.model.as_deref().filter(|m| !m.is_empty());
        let (body, usage) = match body {
            ResponseBody::Stream(stream) => {
                let model = answered.map_or(self.model, str::to_owned);
                let counted =
                    CountedStream::new(stream, self.counter, model, self.prompt, self.meter)
                        .with_cost(meta.stream_cost.clone());
                (ResponseBody::Stream(Box::pin(counted)), usage)
            }
            body => {
                let usage = usage.or_else(|| {
                    let model = answered
                        .or_else(|| body_model(&body))
                        .unwrap_or(&self.model);
                    let completion = self.counter.count_output(model, &body);
                    Some(usage_of(self.prompt, completion))
                });
                (body, usage)
            }
        };
        LlmResponse {
            body,
            usage,
            cost,
            meta,
        }
    }
}

/// The model named in a complete response body, if any.
fn body_model(body: &ResponseBody) -> Option<&str> {
    let model = match body {
        ResponseBody::Chat(c) => &c.model,
        ResponseBody::Completion(c) => &c.model,
        ResponseBody::Embeddings(e) => &e.model,
        ResponseBody::Stream(_) => return None,
    };
    Some(model.as_str()).filter(|m| !m.is_empty())
}

/// Usage from counted prompt and output: `Counted` only when both are exact.
pub(crate) fn usage_of(prompt: TokenCount, completion: TokenCount) -> Usage {
    let source = if prompt.is_exact() && completion.is_exact() {
        UsageSource::Counted
    } else {
        UsageSource::Estimated
    };
    Usage::new(prompt.tokens, completion.tokens, source)
}
