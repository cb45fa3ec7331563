//! Mapping between our types and OpenAI's wire format.

use std::borrow::Cow;

use llm_tower_core::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, CompletionChoice,
    CompletionResponse, Content, Delta, EmbeddingsResponse, FunctionCall, FunctionCallDelta,
    Message, Role, ToolCall, ToolCallDelta, Usage, UsageSource,
};
use serde_json::Value;

use super::MaxTokensField;
use super::wire;

/// When a streamed chat request carries `stream_options: {"include_usage": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamUsage {
    /// Always (the provider reports usage in a last chunk).
    Always,
    /// Only when the caller asked for it.
    IfAsked,
    /// Never, even when the caller asked: the API rejects `stream_options` (Azure
    /// api-versions before 2024-09-01). The token-count layer counts the output instead.
    Never,
}

/// How a flavour of the OpenAI API wants its chat requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireOptions {
    pub max_tokens_field: MaxTokensField,
    /// Whether streams ask for usage with `stream_options.include_usage`.
    pub stream_usage: StreamUsage,
    /// Send `developer` messages as `system` (servers whose chat templates lack the role).
    pub developer_as_system: bool,
    /// OpenAI's own API (and Azure's) rejects fields it does not know: drop what other
    /// providers' clients send (see [`FOREIGN_FIELDS`]) and map Anthropic's `thinking`
    /// to `reasoning_effort`. OpenAI-compatible servers get everything as sent.
    pub strict_openai: bool,
}

/// Request fields of other providers' APIs that OpenAI's API rejects, dropped for OpenAI
/// and Azure (kept for OpenAI-compatible servers, several of which take `top_k`):
///
/// | field | where | what happens |
/// |---|---|---|
/// | `thinking` (Anthropic) | request | `{type: enabled, budget_tokens}` becomes `reasoning_effort` (<= 2,048: `low`, <= 8,192: `medium`, more: `high`) unless one is set; dropped |
/// | `top_k`, `anthropic_beta`, `anthropic_tool_choice`, `anthropic_version` | request | dropped |
/// | `cache_control` (Anthropic prompt caching) | message, content part, tool | dropped (OpenAI caches prompts by itself; `prompt_cache_key` steers it) |
/// | `thinking_blocks`, `reasoning_content` | assistant messages sent back | dropped (OpenAI does not take reasoning back in chat) |
/// | `is_error` | tool messages | dropped |
pub(crate) const FOREIGN_FIELDS: &[&str] = &[
    "thinking",
    "top_k",
    "anthropic_beta",
    "anthropic_tool_choice",
    "anthropic_version",
];

/// `thinking: {type: enabled, budget_tokens}` as a reasoning effort.
fn effort_of(thinking: &Value) -> Option<&'static str> {
    if thinking.get("type").and_then(Value::as_str) == Some("disabled") {
        return None;
    }
    let budget = thinking
        .get("budget_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(4_096);
    Some(match budget {
        0..=2_048 => "low",
        2_049..=8_192 => "medium",
        _ => "high",
    })
}

/// Messages without what OpenAI's API rejects, or `None` when there is nothing to drop.
fn strict_messages(messages: &[Message]) -> Option<Vec<Message>> {
    let dirty = |m: &Message| {
        m.extra.contains_key("cache_control")
            || m.extra.contains_key("is_error")
            || !m.thinking_blocks.is_empty()
            || m.reasoning_content.is_some()
            || matches!(&m.content, Some(Content::Parts(parts))
                if parts.iter().any(|p| p.extra().is_some_and(|e| e.contains_key("cache_control"))))
    };
    if !messages.iter().any(dirty) {
        return None;
    }
    Some(
        messages
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m.extra.remove("cache_control");
                m.extra.remove("is_error");
                m.thinking_blocks.clear();
                m.reasoning_content = None;
                if let Some(Content::Parts(parts)) = &mut m.content {
                    for p in parts {
                        if let Some(e) = p.extra_mut() {
                            e.remove("cache_control");
                        }
                    }
                }
                m
            })
            .collect(),
    )
}

/// Serializes a chat request for the wire.
pub(crate) fn chat_request_body(
    req: &ChatRequest,
    opts: &WireOptions,
) -> Result<Vec<u8>, serde_json::Error> {
    let messages: Cow<'_, [Message]> =
        if opts.developer_as_system && req.messages.iter().any(|m| m.role == Role::Developer) {
            Cow::Owned(
                req.messages
                    .iter()
                    .map(|m| {
                        let mut m = m.clone();
                        if m.role == Role::Developer {
                            m.role = Role::System;
                        }
                        m
                    })
                    .collect(),
            )
        } else {
            Cow::Borrowed(&req.messages)
        };
    let (max_tokens, max_completion_tokens) = match opts.max_tokens_field {
        MaxTokensField::MaxTokens => (req.max_tokens, None),
        MaxTokensField::MaxCompletionTokens => (None, req.max_tokens),
    };
    let stream_options = if req.stream {
        let asked = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
        let send = match opts.stream_usage {
            StreamUsage::Always => true,
            StreamUsage::IfAsked => asked,
            StreamUsage::Never => false,
        };
        let extra = req
            .stream_options
            .as_ref()
            .map(|o| o.extra.clone())
            .unwrap_or_default();
        (send || !extra.is_empty()).then_some(wire::StreamOptions {
            include_usage: send,
            extra,
        })
    } else {
        None
    };
    // OpenAI's own API: drop other providers' fields (FOREIGN_FIELDS).
    let strict = opts.strict_openai;
    let clean_messages = if strict {
        strict_messages(&messages)
    } else {
        None
    };
    let messages: &[Message] = clean_messages.as_deref().unwrap_or(&messages);
    let clean_tools: Option<Vec<llm_tower_core::Tool>> = (strict
        && req
            .tools
            .iter()
            .any(|t| t.extra.contains_key("cache_control")))
    .then(|| {
        req.tools
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.extra.remove("cache_control");
                t
            })
            .collect()
    });
    let tools: &[llm_tower_core::Tool] = clean_tools.as_deref().unwrap_or(&req.tools);
    let clean_extra =
        (strict && FOREIGN_FIELDS.iter().any(|f| req.extra.contains_key(*f))).then(|| {
            let mut extra = req.extra.clone();
            let thinking = extra.remove("thinking");
            for f in FOREIGN_FIELDS {
                extra.remove(*f);
            }
            if let Some(effort) = thinking.as_ref().and_then(effort_of) {
                extra
                    .entry("reasoning_effort")
                    .or_insert_with(|| Value::String(effort.to_owned()));
            }
            extra
        });
    let extra = clean_extra.as_ref().unwrap_or(&req.extra);
    let body = wire::ChatCompletionRequest {
        model: &req.model,
        messages,
        tools,
        tool_choice: req.tool_choice.as_ref(),
        max_tokens,
        max_completion_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        n: req.n,
        stop: req.stop.as_ref(),
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        seed: req.seed,
        response_format: req.response_format.as_ref(),
        stream: req.stream,
        stream_options,
        user: req.user.as_deref(),
        extra,
    };
    serde_json::to_vec(&body)
}

/// Provider usage from the wire: cached input, reasoning and audio tokens included.
pub(crate) fn usage(u: &wire::WireUsage) -> Usage {
    let p = u.prompt_tokens_details.as_ref();
    let c = u.completion_tokens_details.as_ref();
    let cached = p.and_then(|d| d.cached_tokens).unwrap_or(0);
    Usage::new(u.prompt_tokens, u.completion_tokens, UsageSource::Provider)
        .with_cached(cached)
        .with_reasoning(c.and_then(|d| d.reasoning_tokens).unwrap_or(0))
        .with_audio(
            p.and_then(|d| d.audio_tokens).unwrap_or(0),
            c.and_then(|d| d.audio_tokens).unwrap_or(0),
        )
}

/// Reasoning text from `reasoning_content`, or from `reasoning` when a server sends it
/// under that name as a string.
fn reasoning_text(content: Option<String>, other: Option<Value>) -> Option<String> {
    content.or(match other {
        Some(Value::String(s)) => Some(s),
        _ => None,
    })
}

/// Tool-call arguments as a JSON string (some servers send an object).
fn arguments_string(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn content_text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Array(parts) => {
            let mut s = String::new();
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    s.push_str(t);
                }
            }
            Some(s)
        }
        _ => None,
    }
}

/// A chat completion from the wire, with the provider's usage if it sent one. Nothing the
/// server sent is dropped: refusal, reasoning, logprobs, annotations, audio, service tier
/// and unknown fields are kept (only `object` goes: the gateway writes its own).
pub(crate) fn chat_response(
    w: wire::ChatCompletionResponse,
    fallback_created: u64,
) -> (ChatResponse, Option<Usage>) {
    let choices = w
        .choices
        .into_iter()
        .map(|c| {
            let m = c.message;
            let tool_calls: Vec<ToolCall> = m
                .tool_calls
                .into_iter()
                .map(|t| ToolCall {
                    id: t.id,
                    kind: t.kind.unwrap_or_else(|| "function".to_owned()),
                    function: FunctionCall {
                        name: t.function.name,
                        arguments: arguments_string(t.function.arguments),
                    },
                    extra: t.extra,
                })
                .collect();
            let mut message = Message::empty(Role::Assistant);
            message.content = content_text(m.content).map(Content::Text);
            message.tool_calls = tool_calls;
            message.refusal = m.refusal;
            message.reasoning_content = reasoning_text(m.reasoning_content, m.reasoning);
            message.thinking_blocks = m.thinking_blocks;
            message.extra = m.extra;
            let mut choice = ChatChoice::new(c.index, message, c.finish_reason);
            choice.logprobs = c.logprobs;
            choice.extra = c.extra;
            choice
        })
        .collect();
    let usage = w.usage.as_ref().map(usage);
    let mut extra = w.extra;
    extra.remove("object");
    (
        ChatResponse {
            id: w.id,
            model: w.model,
            created: if w.created == 0 {
                fallback_created
            } else {
                w.created
            },
            choices,
            system_fingerprint: w.system_fingerprint,
            service_tier: w.service_tier,
            extra,
            native: None,
        },
        usage,
    )
}

fn role(s: &str) -> Option<Role> {
    match s {
        "assistant" => Some(Role::Assistant),
        "user" => Some(Role::User),
        "system" => Some(Role::System),
        "developer" => Some(Role::Developer),
        "tool" => Some(Role::Tool),
        _ => None,
    }
}

/// A stream chunk from the wire; `None` when it carries nothing (Azure's prompt-filter
/// chunks, empty keep-alive chunks).
pub(crate) fn chunk(w: wire::ChatCompletionChunk, fallback_created: u64) -> Option<ChatChunk> {
    let usage = w.usage.as_ref().map(usage);
    if w.choices.is_empty() && usage.is_none() {
        return None;
    }
    let choices = w
        .choices
        .into_iter()
        .map(|c| {
            let d = c.delta;
            let tool_calls = d
                .tool_calls
                .into_iter()
                .map(|t| ToolCallDelta {
                    extra: t.extra,
                    index: t.index,
                    id: t.id,
                    kind: t.kind,
                    function: t.function.map(|f| FunctionCallDelta {
                        name: f.name,
                        arguments: f.arguments,
                    }),
                })
                .collect();
            let delta = Delta {
                role: d.role.as_deref().and_then(role),
                content: d.content,
                tool_calls,
                refusal: d.refusal,
                reasoning_content: reasoning_text(d.reasoning_content, d.reasoning),
                thinking_blocks: d.thinking_blocks,
            };
            let mut choice = ChunkChoice::new(c.index, delta, c.finish_reason);
            choice.logprobs = c.logprobs;
            choice
        })
        .collect();
    let mut out = ChatChunk::new(
        w.id,
        w.model,
        if w.created == 0 {
            fallback_created
        } else {
            w.created
        },
    );
    out.choices = choices;
    out.usage = usage;
    if let Some(f) = w.system_fingerprint {
        out.extra
            .insert("system_fingerprint".into(), Value::String(f));
    }
    if let Some(t) = w.service_tier {
        out.extra.insert("service_tier".into(), Value::String(t));
    }
    Some(out)
}

/// A legacy completion from the wire.
pub(crate) fn completion_response(
    w: wire::CompletionResponse,
    fallback_created: u64,
) -> (CompletionResponse, Option<Usage>) {
    let usage = w.usage.as_ref().map(usage);
    (
        CompletionResponse {
            id: w.id,
            model: w.model,
            created: if w.created == 0 {
                fallback_created
            } else {
                w.created
            },
            choices: w
                .choices
                .into_iter()
                .map(|c| CompletionChoice {
                    index: c.index,
                    text: c.text,
                    finish_reason: c.finish_reason,
                })
                .collect(),
        },
        usage,
    )
}

/// Embeddings from the wire (embeddings produce no output tokens).
pub(crate) fn embeddings_response(
    w: wire::EmbeddingsResponse,
) -> (EmbeddingsResponse, Option<Usage>) {
    let usage = w
        .usage
        .as_ref()
        .map(|u| Usage::new(u.prompt_tokens, 0, UsageSource::Provider));
    (
        EmbeddingsResponse {
            model: w.model,
            data: w.data,
        },
        usage,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use llm_tower_core::{ContentPart, FunctionDef, ImageUrl, Stop, Tool};
    use serde_json::json;

    fn opts(field: MaxTokensField) -> WireOptions {
        WireOptions {
            max_tokens_field: field,
            stream_usage: StreamUsage::Always,
            developer_as_system: false,
            strict_openai: true,
        }
    }

    #[test]
    fn chat_request_maps_every_field_and_passes_extra_through() {
        let mut req = ChatRequest::new(
            "gpt-4o-mini",
            vec![
                Message::system("be brief"),
                Message {
                    refusal: None,
                    reasoning_content: None,
                    thinking_blocks: Vec::new(),
                    extra: Default::default(),
                    role: Role::User,
                    content: Some(Content::Parts(vec![
                        ContentPart::text("what is this?"),
                        ContentPart::ImageUrl {
                            image_url: ImageUrl {
                                extra: Default::default(),
                                url: "https://x.invalid/a.png".into(),
                                detail: Some("low".into()),
                            },
                            extra: Default::default(),
                        },
                    ])),
                    name: None,
                    tool_calls: vec![],
                    tool_call_id: None,
                },
            ],
        )
        .max_tokens(50);
        req.tools = vec![Tool::function(FunctionDef {
            extra: Default::default(),
            name: "get_weather".into(),
            description: Some("weather".into()),
            parameters: Some(json!({"type":"object"})),
            strict: None,
        })];
        req.tool_choice = Some(json!("auto"));
        req.temperature = Some(0.5);
        req.top_p = Some(0.9);
        req.stop = Some(Stop::One("END".into()));
        req.seed = Some(7);
        req.presence_penalty = Some(0.1);
        req.frequency_penalty = Some(0.2);
        req.response_format = Some(json!({"type":"json_object"}));
        req.user = Some("u1".into());
        req.extra.insert("logprobs".into(), json!(true));
        let body: Value = serde_json::from_slice(
            &chat_request_body(&req, &opts(MaxTokensField::MaxCompletionTokens)).unwrap(),
        )
        .unwrap();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["max_completion_tokens"], 50);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(
            body["messages"][1]["content"][1]["image_url"]["url"],
            "https://x.invalid/a.png"
        );
        assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(body["tool_choice"], "auto");
        assert_eq!(body["stop"], "END");
        assert_eq!(body["seed"], 7);
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["user"], "u1");
        assert_eq!(body["logprobs"], true);
        assert!(body.get("stream").is_none());
        assert!(body.get("stream_options").is_none());
        let body: Value = serde_json::from_slice(
            &chat_request_body(&req, &opts(MaxTokensField::MaxTokens)).unwrap(),
        )
        .unwrap();
        assert_eq!(body["max_tokens"], 50);
        assert!(body.get("max_completion_tokens").is_none());
    }

    #[test]
    fn streaming_forces_include_usage() {
        let mut req = ChatRequest::new("m", vec![Message::user("hi")]);
        req.stream = true;
        let body: Value = serde_json::from_slice(
            &chat_request_body(&req, &opts(MaxTokensField::MaxTokens)).unwrap(),
        )
        .unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn developer_role_mapped_to_system_when_asked() {
        let mut req = ChatRequest::new("m", vec![Message::user("hi")]);
        req.messages.insert(
            0,
            Message {
                role: Role::Developer,
                ..Message::system("rules")
            },
        );
        let mut o = opts(MaxTokensField::MaxTokens);
        o.developer_as_system = true;
        let body: Value = serde_json::from_slice(&chat_request_body(&req, &o).unwrap()).unwrap();
        assert_eq!(body["messages"][0]["role"], "system");
        o.developer_as_system = false;
        let body: Value = serde_json::from_slice(&chat_request_body(&req, &o).unwrap()).unwrap();
        assert_eq!(body["messages"][0]["role"], "developer");
    }

    #[test]
    fn response_with_tool_calls_and_cached_usage() {
        let w: wire::ChatCompletionResponse = serde_json::from_value(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000u64,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                "refusal": null}, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0}},
            "system_fingerprint": "fp_1"
        }))
        .unwrap();
        let (r, u) = chat_response(w, 5);
        assert_eq!(r.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.choices[0].message.content, None);
        let call = &r.choices[0].message.tool_calls[0];
        assert_eq!(call.function.arguments, "{\"city\":\"Paris\"}");
        let u = u.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (100, 20, 120)
        );
        assert_eq!(u.cached_prompt_tokens, 64);
        assert_eq!(u.source, UsageSource::Provider);
    }

    #[test]
    fn lenient_response_from_compatible_servers() {
        let w: wire::ChatCompletionResponse = serde_json::from_value(json!({
            "model": "llama3", "created": 1.7e9,
            "choices": [{"message": {"content": "hi",
                "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}}]
        }))
        .unwrap();
        let (r, u) = chat_response(w, 5);
        assert!(u.is_none());
        assert_eq!(r.created, 1_700_000_000);
        assert_eq!(r.text(), "hi");
        assert_eq!(
            r.choices[0].message.tool_calls[0].function.arguments,
            "{\"a\":1}"
        );
    }

    #[test]
    fn empty_chunks_are_skipped_and_usage_chunk_kept() {
        let w: wire::ChatCompletionChunk = serde_json::from_value(json!({
            "id": "", "choices": [], "created": 0, "model": "",
            "prompt_filter_results": [{"prompt_index": 0}]
        }))
        .unwrap();
        assert!(chunk(w, 1).is_none());
        let w: wire::ChatCompletionChunk = serde_json::from_value(json!({
            "id": "c", "object": "chat.completion.chunk", "created": 9, "model": "m",
            "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        }))
        .unwrap();
        let c = chunk(w, 1).unwrap();
        assert_eq!(c.usage.unwrap().total_tokens, 7);
    }
}
