//! A blocking client over any llm-tower stack, for programs without an async runtime.
//!
//! ```
//! # #[cfg(feature = "providers")] {
//! use llm_tower::prelude::*;
//! use llm_tower::sync::BlockingClient;
//!
//! let client = BlockingClient::new(MockProvider::new()).unwrap();
//! let answer = client.chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("Hi")])).unwrap();
//! assert!(!answer.text().is_empty());
//! # }
//! ```
//!
//! With the `config` feature, [`BlockingClient::from_config`] builds the stack of a JSON
//! config; `llm_tower::config::build_blocking` gives the built stack itself (its cost
//! tracker, models, ...), and `BlockingClient::new(stack.service())` a client over it.
//!
//! The client owns a single-threaded tokio runtime and drives each call on it. Creating
//! or calling it from inside an async runtime fails with an `Internal` error (it would
//! block the runtime's thread); use the async service there. Dropping it is safe
//! anywhere, also inside a runtime (its own runtime is shut down in the background).

use std::fmt;

use futures_util::StreamExt;
use llm_tower_core::{
    ChatChunk, ChatRequest, ChatResponse, ChatStream, Error, LlmRequest, LlmResponse, Money,
    ResponseBody, StreamCost,
};
use llm_tower_layers::builder::{BoxLlmService, LlmServiceExt};
use tower::{Service, ServiceExt};

/// A blocking client over a stack.
pub struct BlockingClient {
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    service: BoxLlmService,
}

impl Drop for BlockingClient {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's context panics; shutting it down in
        // the background does not (and nothing is left running on it between calls).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for BlockingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingClient").finish_non_exhaustive()
    }
}

fn not_in_async() -> Result<(), Error> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::internal(
            "BlockingClient cannot be used inside an async runtime: call the async service instead",
        ));
    }
    Ok(())
}

impl BlockingClient {
    /// A client over `service` (any stack: `Clone + Send + Sync`).
    ///
    /// # Errors
    /// `Internal` when called inside an async runtime (use the async service there) or
    /// when the runtime cannot be created.
    pub fn new<S>(service: S) -> Result<Self, Error>
    where
        S: Service<LlmRequest, Response = LlmResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        not_in_async()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("could not start a runtime: {e}")))?;
        Ok(BlockingClient {
            runtime: Some(runtime),
            service: service.boxed_llm(),
        })
    }

    /// A client over the stack a JSON config builds (`llm_tower::config::build_blocking`).
    ///
    /// ```
    /// use llm_tower::config::Config;
    /// use llm_tower::prelude::*;
    /// use llm_tower::sync::BlockingClient;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config: Config = r#"{ "providers": { "mock": { "type": "mock",
    ///     "models": { "gpt-4o-mini": { "price": { "input": "0.15", "output": "0.60" } } } } } }"#
    ///     .parse()?;
    /// let client = BlockingClient::from_config(&config)?;
    /// let answer = client.chat(ChatRequest::new("gpt-4o-mini", vec![Message::user("Hi")]))?;
    /// assert!(!answer.text().is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`BlockingClient::new`], and `Config` when the stack cannot be built.
    #[cfg(feature = "config")]
    pub fn from_config(config: &llm_tower_config::Config) -> Result<Self, Error> {
        not_in_async()?;
        let stack = llm_tower_config::build_blocking(config)?;
        BlockingClient::new(stack.service())
    }

    fn block_on<F: std::future::Future>(&self, fut: F) -> Result<F::Output, Error> {
        not_in_async()?;
        match &self.runtime {
            Some(rt) => Ok(rt.block_on(fut)),
            None => Err(Error::internal("BlockingClient: the runtime is gone")),
        }
    }

    /// Sends one request and waits for the response.
    ///
    /// # Errors
    /// The stack's error, or `Internal` inside an async runtime.
    pub fn call(&self, req: LlmRequest) -> Result<LlmResponse, Error> {
        let svc = self.service.clone();
        self.block_on(svc.oneshot(req))?
    }

    /// Sends a chat request (not streamed) and returns the completion.
    ///
    /// # Errors
    /// As [`BlockingClient::call`]; `InvalidRequest` if the request asks for a stream.
    pub fn chat(&self, req: ChatRequest) -> Result<ChatResponse, Error> {
        if req.stream {
            return Err(Error::invalid_request(
                "chat() does not stream: use stream()",
            ));
        }
        match self.call(LlmRequest::chat(req))?.body {
            ResponseBody::Chat(c) => Ok(c),
            other => Err(Error::internal(format!(
                "expected a chat completion, got {other:?}"
            ))),
        }
    }

    /// Sends a streamed chat request; iterate the result for chunks, then read
    /// [`BlockingStream::cost`].
    ///
    /// # Errors
    /// As [`BlockingClient::call`].
    pub fn stream(&self, mut req: ChatRequest) -> Result<BlockingStream<'_>, Error> {
        req.stream = true;
        let resp = self.call(LlmRequest::chat(req))?;
        let cost = resp.stream_cost();
        match resp.body {
            ResponseBody::Stream(stream) => Ok(BlockingStream {
                client: self,
                stream,
                cost,
            }),
            other => Err(Error::internal(format!("expected a stream, got {other:?}"))),
        }
    }
}

/// The chunks of a streamed answer, one blocking `next()` at a time.
pub struct BlockingStream<'a> {
    client: &'a BlockingClient,
    stream: ChatStream,
    cost: Option<StreamCost>,
}

impl BlockingStream<'_> {
    /// What the request cost, once the stream has ended (or failed): `None` before, or
    /// without a cost layer in the stack, or when the model has no price.
    pub fn cost(&self) -> Option<Money> {
        self.cost.as_ref().and_then(StreamCost::get)
    }

    /// The cost handle itself, which outlives the stream (it is also settled when the
    /// stream is dropped before its end).
    pub fn cost_handle(&self) -> Option<StreamCost> {
        self.cost.clone()
    }
}

impl fmt::Debug for BlockingStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingStream").finish_non_exhaustive()
    }
}

impl Iterator for BlockingStream<'_> {
    type Item = Result<ChatChunk, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.client.block_on(self.stream.next()) {
            Ok(item) => item,
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(all(test, feature = "providers"))]
mod tests {
    use super::*;
    use llm_tower_core::Message;
    use llm_tower_providers::mock::MockProvider;

    #[test]
    fn blocking_chat_and_stream() {
        let client = BlockingClient::new(MockProvider::new()).unwrap();
        let c = client
            .chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]))
            .unwrap();
        let text: String = client
            .stream(ChatRequest::new("gpt-4o", vec![Message::user("hi")]))
            .unwrap()
            .map(|c| c.unwrap().text())
            .collect();
        assert_eq!(c.text(), text);
    }

    #[tokio::test]
    async fn refuses_inside_a_runtime() {
        let e = BlockingClient::new(MockProvider::new()).unwrap_err();
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::Internal);
        let client = std::thread::spawn(|| BlockingClient::new(MockProvider::new()).unwrap())
            .join()
            .unwrap();
        let e = client
            .chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]))
            .unwrap_err();
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::Internal);
        // Dropping it here, inside the test's runtime, must not panic.
        drop(client);
    }

    #[test]
    fn blocking_client_over_a_layered_stack() {
        use llm_tower_core::{ErrorKind, Money};
        use llm_tower_layers::builder::ServiceBuilderExt;
        use llm_tower_layers::cost::{
            Budget, BudgetScope, CostTracker, ModelPrice, Period, PriceTable,
        };
        use llm_tower_layers::rate_limit::{Algorithm, RateLimitLayer};
        use std::time::Duration;

        let tracker = CostTracker::builder()
            .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
            .budget(
                Budget::new("b", BudgetScope::Global, Period::Total, Money::from_usd(1)).unwrap(),
            )
            .build()
            .unwrap();
        let stack = tower::ServiceBuilder::new()
            .count_tokens()
            .track_cost(tracker.clone())
            .llm_rate_limit(RateLimitLayer::new(
                Algorithm::sliding_window(3, Duration::from_secs(60)).unwrap(),
            ))
            .service(MockProvider::new());
        let client = BlockingClient::new(stack).unwrap();
        let req = || ChatRequest::new("gpt-4o", vec![Message::user("hi")]).max_tokens(16);
        let c = client.chat(req()).unwrap();
        assert!(!c.text().is_empty());
        let mut stream = client.stream(req()).unwrap();
        assert_eq!(stream.cost(), None, "not settled before the end");
        let streamed: String = stream.by_ref().map(|c| c.unwrap().text()).collect();
        assert_eq!(streamed, c.text());
        let stream_cost = stream.cost().expect("settled at the end");
        assert!(stream_cost > Money::ZERO);
        drop(stream);
        let resp = client.call(LlmRequest::chat(req())).unwrap();
        assert!(resp.usage.is_some() && resp.cost.is_some());
        let e = client.chat(req()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
        // The completions and the stream were settled on the client's runtime; the refusal
        // (inside the cost layer) released its hold and counts as an error.
        let snap = tracker.snapshot();
        assert_eq!((snap.total.requests, snap.total.errors), (4, 1));
        assert!(snap.total.cost > Money::ZERO);
        drop(client);
    }
}
