//! [`CountTokensLayer`].

use std::sync::Arc;

use tower::Layer;

use super::counter::TokenCounter;
use super::service::CountTokens;
use super::tokenizers::Tokenizers;

/// Counts prompt tokens before the call and output tokens after it when the provider
/// reports no usage; see the [module docs](super).
///
/// A small configuration value: it holds the shared [`TokenCounter`] and nothing else.
#[derive(Clone, Debug)]
pub struct CountTokensLayer {
    counter: Arc<dyn TokenCounter>,
}

impl CountTokensLayer {
    /// A layer counting with `counter`.
    pub fn new<C: TokenCounter>(counter: C) -> Self {
        CountTokensLayer {
            counter: Arc::new(counter),
        }
    }

    /// A layer counting with an already shared counter.
    pub fn from_arc(counter: Arc<dyn TokenCounter>) -> Self {
        CountTokensLayer { counter }
    }

    /// The counter.
    pub fn counter(&self) -> &Arc<dyn TokenCounter> {
        &self.counter
    }
}

/// Counts with [`Tokenizers`]: exact for OpenAI models, estimated for the rest.
impl Default for CountTokensLayer {
    fn default() -> Self {
        CountTokensLayer::new(Tokenizers)
    }
}

impl<S> Layer<S> for CountTokensLayer {
    type Service = CountTokens<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountTokens::from_arc(inner, Arc::clone(&self.counter))
    }
}
