//! Mapping between our OpenAI-shaped types and Anthropic's Messages API.
//!
//! The OpenAI fields that are not sent, and why, are listed in the
//! [module documentation](super).

use llm_tower_core::{
    ChatChoice, ChatRequest, ChatResponse, Content, ContentPart, Error, FunctionCall, Message,
    Role, ToolCall, Usage, UsageSource,
};
use serde_json::{Map, Value, json};

use super::wire::{self, Block, ImageSource, WireMessage};

/// OpenAI-only request fields that Anthropic rejects; they are dropped
/// (`parallel_tool_calls` is mapped to `disable_parallel_tool_use`).
const OPENAI_ONLY_FIELDS: &[&str] = &[
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "store",
    "modalities",
    "prediction",
];

/// Builds the request body. `default_max_tokens` fills the required `max_tokens`.
pub(crate) fn messages_request(
    req: &ChatRequest,
    default_max_tokens: u32,
) -> Result<Vec<u8>, Error> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(Error::invalid_request("Anthropic does not support n > 1"));
    }
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<WireMessage> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        match m.role {
            Role::System | Role::Developer => {
                let t = m.text();
                if !t.is_empty() {
                    system.push(t.into_owned());
                }
            }
            Role::User => {
                let blocks = content_blocks(m.content.as_ref())?;
                push(&mut messages, "user", blocks);
            }
            Role::Tool => {
                let id = match m.tool_call_id.as_deref().map(str::trim) {
                    Some(id) if !id.is_empty() => id.to_owned(),
                    _ => {
                        return Err(Error::invalid_request(format!(
                            "messages[{i}].tool_call_id: required for tool messages"
                        )));
                    }
                };
                let content = content_blocks(m.content.as_ref())?;
                push(
                    &mut messages,
                    "user",
                    vec![Block::ToolResult {
                        tool_use_id: id,
                        content,
                    }],
                );
            }
            Role::Assistant => {
                let mut blocks = content_blocks(m.content.as_ref())?;
                for call in &m.tool_calls {
                    blocks.push(Block::ToolUse {
                        id: call.id.clone(),
                        name: call.function.name.clone(),
                        input: tool_input(&call.function.arguments)?,
                    });
                }
                push(&mut messages, "assistant", blocks);
            }
        }
    }

    let tools = req
        .tools
        .iter()
        .filter_map(|t| t.function.as_ref())
        .map(|f| wire::WireTool {
            name: &f.name,
            description: f.description.as_deref(),
            input_schema: f
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        })
        .collect();

    let parallel = req
        .extra
        .get("parallel_tool_calls")
        .and_then(Value::as_bool);
    let tool_choice = tool_choice(req.tool_choice.as_ref(), parallel, !req.tools.is_empty())?;

    let mut extra: Map<String, Value> = Map::new();
    for (k, v) in &req.extra {
        if !OPENAI_ONLY_FIELDS.contains(&k.as_str()) {
            extra.insert(k.clone(), v.clone());
        }
    }

    let body = wire::MessagesRequest {
        model: &req.model,
        max_tokens: req.max_tokens.unwrap_or(default_max_tokens),
        messages,
        system: (!system.is_empty()).then(|| system.join("\n\n")),
        stop_sequences: req.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(),
        temperature: req.temperature,
        top_p: req.top_p,
        tools,
        tool_choice,
        stream: req.stream,
        metadata: req.user.as_deref().map(|u| wire::Metadata { user_id: u }),
        extra,
    };
    serde_json::to_vec(&body)
        .map_err(|e| Error::invalid_request(format!("request cannot be serialized: {e}")))
}

/// Appends blocks to the last turn when it has the same role (Anthropic wants alternating
/// turns; consecutive tool results become one user turn).
fn push(messages: &mut Vec<WireMessage>, role: &'static str, blocks: Vec<Block>) {
    if let Some(last) = messages.last_mut()
        && last.role == role
    {
        last.content.extend(blocks);
        return;
    }
    messages.push(WireMessage {
        role,
        content: blocks,
    });
}

fn content_blocks(content: Option<&Content>) -> Result<Vec<Block>, Error> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Content::Text(t)) if t.is_empty() => {}
        Some(Content::Text(t)) => out.push(Block::Text { text: t.clone() }),
        Some(Content::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Text { text, .. } => {
                        if !text.is_empty() {
                            out.push(Block::Text { text: text.clone() });
                        }
                    }
                    ContentPart::ImageUrl { image_url, .. } => out.push(Block::Image {
                        source: image_source(&image_url.url)?,
                    }),
                    other => {
                        return Err(Error::invalid_request(format!(
                            "content parts of type {:?} cannot be sent to Anthropic",
                            other.kind()
                        )));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `data:image/png;base64,...` -> base64 source; `https://...` -> url source.
pub(crate) fn image_source(url: &str) -> Result<ImageSource, Error> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| Error::invalid_request("malformed data URL for an image"))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| Error::invalid_request("image data URLs must be base64-encoded"))?;
        if media_type.is_empty() {
            return Err(Error::invalid_request(
                "image data URL without a media type",
            ));
        }
        return Ok(ImageSource::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    }
    Err(Error::invalid_request(
        "image URLs must be https:// or data: URLs",
    ))
}

fn tool_input(arguments: &str) -> Result<Value, Error> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments)
        .map_err(|e| Error::invalid_request(format!("tool call arguments are not valid JSON: {e}")))
}

/// OpenAI's `tool_choice` -> Anthropic's.
fn tool_choice(
    choice: Option<&Value>,
    parallel: Option<bool>,
    has_tools: bool,
) -> Result<Option<Value>, Error> {
    let mut out = match choice {
        None => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" | "any" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            other => {
                return Err(Error::invalid_request(format!(
                    "unknown tool_choice {other:?}"
                )));
            }
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str);
            match (o.get("type").and_then(Value::as_str), name) {
                (Some("function" | "tool"), Some(n)) => Some(json!({"type": "tool", "name": n})),
                // Already in Anthropic's shape.
                (Some("auto" | "any" | "none"), _) => Some(Value::Object(o.clone())),
                _ => return Err(Error::invalid_request("unsupported tool_choice object")),
            }
        }
        Some(_) => return Err(Error::invalid_request("unsupported tool_choice")),
    };
    if parallel == Some(false) && has_tools {
        let v = out.get_or_insert_with(|| json!({"type": "auto"}));
        if let Some(o) = v.as_object_mut()
            && o.get("type").and_then(Value::as_str) != Some("none")
        {
            o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    Ok(out)
}

/// Anthropic's `stop_reason` -> OpenAI's `finish_reason`.
pub(crate) fn finish_reason(stop: &str) -> String {
    match stop {
        "end_turn" | "stop_sequence" | "pause_turn" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

/// Our usage from Anthropic's: prompt = input + cache reads + cache writes; cached = reads.
pub(crate) fn usage(input: u64, cache_read: u64, cache_creation: u64, output: u64) -> Usage {
    let prompt = input
        .saturating_add(cache_read)
        .saturating_add(cache_creation);
    Usage::new(prompt, output, UsageSource::Provider).with_cached(cache_read)
}

fn wire_usage(u: &wire::WireUsage) -> Usage {
    usage(
        u.input_tokens.unwrap_or(0),
        u.cache_read_input_tokens.unwrap_or(0),
        u.cache_creation_input_tokens.unwrap_or(0),
        u.output_tokens.unwrap_or(0),
    )
}

/// A response from the wire, with usage.
pub(crate) fn messages_response(
    w: wire::MessagesResponse,
    created: u64,
) -> (ChatResponse, Option<Usage>) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in w.content {
        match block {
            wire::ResponseBlock::Text { text: t } => text.push_str(&t),
            wire::ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                extra: Default::default(),
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: if input.is_null() {
                        "{}".to_owned()
                    } else {
                        input.to_string()
                    },
                },
            }),
            wire::ResponseBlock::Other => {}
        }
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(Content::Text(text))
    };
    let usage = w.usage.as_ref().map(wire_usage);
    (
        ChatResponse {
            extra: Default::default(),
            service_tier: None,
            id: w.id,
            model: w.model,
            created,
            choices: vec![ChatChoice {
                extra: Default::default(),
                logprobs: None,
                index: 0,
                message: Message {
                    refusal: None,
                    reasoning_content: None,
                    thinking_blocks: Vec::new(),
                    extra: Default::default(),
                    role: Role::Assistant,
                    content,
                    name: None,
                    tool_calls,
                    tool_call_id: None,
                },
                finish_reason: w.stop_reason.as_deref().map(finish_reason),
            }],
            system_fingerprint: None,
        },
        usage,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use llm_tower_core::{FunctionDef, ImageUrl, Stop, Tool};

    fn body(req: &ChatRequest) -> Value {
        serde_json::from_slice(&messages_request(req, 1024).unwrap()).unwrap()
    }

    fn assistant_call(id: &str, name: &str, args: &str) -> Message {
        Message {
            refusal: None,
            reasoning_content: None,
            thinking_blocks: Vec::new(),
            extra: Default::default(),
            role: Role::Assistant,
            content: None,
            name: None,
            tool_calls: vec![ToolCall {
                extra: Default::default(),
                id: id.into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.into(),
                    arguments: args.into(),
                },
            }],
            tool_call_id: None,
        }
    }

    #[test]
    fn system_separated_and_tool_results_merged() {
        let mut req = ChatRequest::new(
            "claude-sonnet-4-5",
            vec![
                Message::system("be brief"),
                Message {
                    role: Role::Developer,
                    ..Message::system("use metric units")
                },
                Message::user("weather in Paris and Rome?"),
                Message {
                    tool_calls: vec![
                        assistant_call("toolu_1", "weather", r#"{"city":"Paris"}"#).tool_calls[0]
                            .clone(),
                        assistant_call("toolu_2", "weather", r#"{"city":"Rome"}"#).tool_calls[0]
                            .clone(),
                    ],
                    ..Message::assistant("Let me check.")
                },
                Message::tool("toolu_1", "18C"),
                Message::tool("toolu_2", "25C"),
                Message::user("thanks"),
            ],
        );
        req.stop = Some(Stop::Many(vec!["END".into()]));
        req.temperature = Some(0.3);
        req.top_p = Some(0.8);
        req.user = Some("user-1".into());
        let b = body(&req);
        assert_eq!(b["system"], "be brief\n\nuse metric units");
        assert_eq!(b["max_tokens"], 1024);
        assert_eq!(b["stop_sequences"], json!(["END"]));
        assert_eq!(b["metadata"]["user_id"], "user-1");
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert_eq!(msgs[1]["role"], "assistant");
        assert_eq!(
            msgs[1]["content"][0],
            json!({"type": "text", "text": "Let me check."})
        );
        assert_eq!(
            msgs[1]["content"][1],
            json!({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}})
        );
        assert_eq!(msgs[2]["role"], "user");
        assert_eq!(
            msgs[2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]})
        );
        assert_eq!(msgs[2]["content"][1]["tool_use_id"], "toolu_2");
        assert_eq!(
            msgs[2]["content"][2],
            json!({"type": "text", "text": "thanks"})
        );
    }

    #[test]
    fn images_tools_and_tool_choice() {
        let mut req = ChatRequest::new(
            "claude",
            vec![Message {
                refusal: None,
                reasoning_content: None,
                thinking_blocks: Vec::new(),
                extra: Default::default(),
                role: Role::User,
                content: Some(Content::Parts(vec![
                    ContentPart::text("what?"),
                    ContentPart::ImageUrl {
                        image_url: ImageUrl {
                            extra: Default::default(),
                            url: "data:image/png;base64,iVBORw0KGgo=".into(),
                            detail: None,
                        },
                        extra: Default::default(),
                    },
                    ContentPart::ImageUrl {
                        image_url: ImageUrl {
                            extra: Default::default(),
                            url: "https://example.invalid/cat.jpg".into(),
                            detail: Some("high".into()),
                        },
                        extra: Default::default(),
                    },
                ])),
                name: None,
                tool_calls: vec![],
                tool_call_id: None,
            }],
        )
        .max_tokens(10);
        req.tools = vec![Tool::function(FunctionDef {
            extra: Default::default(),
            name: "f".into(),
            description: None,
            parameters: None,
            strict: None,
        })];
        req.tool_choice = Some(json!({"type": "function", "function": {"name": "f"}}));
        req.extra.insert("parallel_tool_calls".into(), json!(false));
        req.extra.insert("top_k".into(), json!(5));
        let b = body(&req);
        assert_eq!(b["max_tokens"], 10);
        let c = &b["messages"][0]["content"];
        assert_eq!(
            c[1]["source"],
            json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
        );
        assert_eq!(
            c[2]["source"],
            json!({"type": "url", "url": "https://example.invalid/cat.jpg"})
        );
        assert_eq!(b["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(
            b["tool_choice"],
            json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
        );
        assert_eq!(b["top_k"], 5);
        assert!(b.get("parallel_tool_calls").is_none());

        req.tool_choice = Some(json!("required"));
        req.extra.clear();
        assert_eq!(body(&req)["tool_choice"], json!({"type": "any"}));
        req.tool_choice = Some(json!("none"));
        assert_eq!(body(&req)["tool_choice"], json!({"type": "none"}));
        req.tool_choice = Some(json!("auto"));
        assert_eq!(body(&req)["tool_choice"], json!({"type": "auto"}));
    }

    #[test]
    fn bad_inputs_are_invalid_requests() {
        for url in [
            "data:image/png,notbase64",
            "ftp://x/y.png",
            "data:;base64,AAAA",
        ] {
            assert!(image_source(url).is_err(), "{url}");
        }
        let req = ChatRequest::new("c", vec![assistant_call("t", "f", "{not json")]);
        let e = messages_request(&req, 10).unwrap_err();
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::InvalidRequest);
        let mut req = ChatRequest::new("c", vec![Message::user("x")]);
        req.n = Some(2);
        assert!(messages_request(&req, 10).is_err());
    }

    #[test]
    fn tool_message_without_tool_call_id_names_the_message() {
        for id in [None, Some(""), Some("  ")] {
            let mut tool = Message::tool("x", "42");
            tool.tool_call_id = id.map(str::to_owned);
            let req = ChatRequest::new(
                "c",
                vec![
                    Message::system("s"),
                    Message::user("q"),
                    assistant_call("call_1", "f", "{}"),
                    tool,
                ],
            );
            let e = messages_request(&req, 10).unwrap_err();
            assert_eq!(e.kind(), llm_tower_core::ErrorKind::InvalidRequest);
            assert_eq!(
                e.message(),
                "messages[3].tool_call_id: required for tool messages"
            );
        }
    }

    #[test]
    fn openai_only_sampling_fields_are_not_sent() {
        let mut req = ChatRequest::new("c", vec![Message::user("q")]);
        req.response_format = Some(json!({"type": "json_object"}));
        req.seed = Some(7);
        req.presence_penalty = Some(0.5);
        req.frequency_penalty = Some(0.5);
        req.stream_options = Some(llm_tower_core::StreamOptions {
            extra: Default::default(),
            include_usage: true,
        });
        req.extra.insert("logprobs".into(), json!(true));
        req.extra.insert("top_k".into(), json!(5));
        let b = body(&req);
        for f in [
            "response_format",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "stream_options",
            "logprobs",
        ] {
            assert!(b.get(f).is_none(), "{f} sent: {b}");
        }
        assert_eq!(b["top_k"], 5);
    }

    #[test]
    fn response_text_joined_tools_and_stop_reasons() {
        let w: wire::MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Hello "},
                {"type": "text", "text": "world"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}
        }))
        .unwrap();
        let (r, u) = messages_response(w, 7);
        assert_eq!(r.text(), "Hello world");
        assert_eq!(r.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            r.choices[0].message.tool_calls[0].function.arguments,
            r#"{"a":1}"#
        );
        let u = u.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_prompt_tokens, u.completion_tokens),
            (130, 100, 5)
        );
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("stop_sequence"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
    }
}
