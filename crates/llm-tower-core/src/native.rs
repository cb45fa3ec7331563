//! [`ResponsesBody`]: an OpenAI Responses API request as the client sent it, for a
//! provider that speaks that API to send it unchanged.
//!
//! The gateway serves `POST /v1/responses` by translating the request into a chat
//! request, so that limits, budgets, token counting, cost and routes work the same for
//! every format and every provider serves it. A provider that speaks the Responses API
//! itself (OpenAI, Azure's v1 API) does better with the original: built-in tools
//! (`web_search`, `local_shell`, ...), encrypted reasoning items and `include` options
//! that chat completions cannot carry go through untouched. The gateway keeps the body in
//! [`LlmRequest::extensions`](crate::LlmRequest::extensions); such a provider sends it
//! (with the routed model name) and answers with the chat translation of the response,
//! keeping the provider's own JSON in [`ChatResponse::native`](crate::ChatResponse::native)
//! and [`ChatChunk::native`](crate::ChatChunk::native) so the gateway can pass it on.
//!
//! A request using a feature that only the native path can serve carries it in
//! [`ResponsesBody::untranslatable`]: every other provider refuses it with
//! [`ResponsesBody::check_translatable`], a 400 naming the field, rather than silently
//! dropping the feature.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{Error, LlmRequest};

/// Marks a chat request whose client speaks Anthropic's Messages API (the gateway's
/// `POST /v1/messages`): an Anthropic provider keeps its own response JSON in
/// [`ChatResponse::native`](crate::ChatResponse::native) and every stream event in
/// [`ChatChunk::native`](crate::ChatChunk::native), so the answer reaches the client with
/// nothing lost (server tool blocks, citations, whatever Anthropic adds next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnthropicMessagesClient;

/// An OpenAI Responses API request body (`POST /v1/responses`), kept in a request's
/// extensions beside its chat translation.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesBody {
    /// The body to send: the client's, with the items of a stored conversation it
    /// continues already in `input` (no `previous_response_id`). A provider sets `model`
    /// and `stream` from the chat request it is given.
    pub body: Arc<Map<String, Value>>,
    /// The first feature of the request that the chat translation cannot carry, as
    /// `(field, what)`, e.g. `("tools[2].type", "the tool type `web_search`")`.
    pub untranslatable: Option<(String, String)>,
}

impl ResponsesBody {
    /// A body that translates fully.
    pub fn new(body: Map<String, Value>) -> Self {
        ResponsesBody {
            body: Arc::new(body),
            untranslatable: None,
        }
    }

    /// The body of `req`, if it came in as a Responses API request.
    pub fn of(req: &LlmRequest) -> Option<&ResponsesBody> {
        req.extensions.get::<ResponsesBody>()
    }

    /// For a provider that serves a request through its chat translation: `Err` (an
    /// invalid request naming the field) when the original used a feature the translation
    /// lost.
    pub fn check_translatable(req: &LlmRequest) -> Result<(), Error> {
        match Self::of(req).and_then(|b| b.untranslatable.as_ref()) {
            None => Ok(()),
            Some((param, what)) => Err(Error::invalid_request(format!(
                "{param}: {what} is only supported when the model is served by a provider \
                 that speaks the Responses API natively (OpenAI, Azure OpenAI v1)"
            ))
            .with_param(param.clone())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{ChatRequest, Message};

    #[test]
    fn untranslatable_features_are_refused_with_their_field() {
        let mut req = LlmRequest::chat(ChatRequest::new("m", vec![Message::user("hi")]));
        assert!(ResponsesBody::check_translatable(&req).is_ok());
        let mut body = ResponsesBody::new(Map::new());
        req.extensions.insert(body.clone());
        assert!(ResponsesBody::check_translatable(&req).is_ok());
        body.untranslatable = Some(("tools[0].type".into(), "the tool type `web_search`".into()));
        req.extensions.insert(body);
        let e = ResponsesBody::check_translatable(&req).unwrap_err();
        assert_eq!(e.param(), Some("tools[0].type"));
        assert!(e.message().contains("web_search"), "{}", e.message());
    }
}
