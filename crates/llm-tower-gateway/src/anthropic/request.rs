//! Anthropic Messages request JSON -> [`ChatRequest`].
//!
//! The body is walked as JSON (not derived), so every rejection names its field the way
//! Anthropic does (`messages.1.content.0.source.media_type: ...`) and nothing a provider
//! might need is dropped: fields this module does not model stay in the `extra` maps of
//! the request, the message, the part or the tool, and blocks of unknown types are kept
//! whole as [`ContentPart::Other`].

use std::borrow::Cow;

use llm_tower_core::{
    ChatRequest, Content, ContentPart, FileData, FunctionDef, ImageUrl, Message, Role, Stop,
    StreamOptions, ThinkingBlock, Tool, ToolCall,
};
use serde_json::{Map, Value, json};

use crate::openai_error::OpenAiError;

/// Whether `max_tokens` is required (`/v1/messages`) or not (`count_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/messages`: `max_tokens` is required.
    Messages,
    /// `POST /v1/messages/count_tokens`: `max_tokens` and `stream` are ignored.
    CountTokens,
}

type Obj = Map<String, Value>;

/// A 400 naming `path`.
fn bad(path: &str, msg: impl std::fmt::Display) -> OpenAiError {
    OpenAiError::bad_request(format!("{path}: {msg}"), Some(Cow::Owned(path.to_owned())))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, OpenAiError> {
    v.as_object()
        .ok_or_else(|| bad(path, format_args!("expected an object, got {}", kind_of(v))))
}

fn expect_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, OpenAiError> {
    v.as_str()
        .ok_or_else(|| bad(path, format_args!("expected a string, got {}", kind_of(v))))
}

fn req_str<'a>(o: &'a Obj, field: &str, path: &str) -> Result<&'a str, OpenAiError> {
    match o.get(field) {
        Some(v) => expect_str(v, &format!("{path}.{field}")),
        None => Err(bad(&format!("{path}.{field}"), "Field required")),
    }
}

fn opt_f64(o: &Obj, field: &str) -> Result<Option<f64>, OpenAiError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(field, format_args!("expected a number, got {}", kind_of(v)))),
    }
}

fn opt_u32(o: &Obj, field: &str) -> Result<Option<u32>, OpenAiError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                bad(
                    field,
                    format_args!("expected an integer from 0 to {}, got {v}", u32::MAX),
                )
            }),
    }
}

/// The fields of `o` other than `skip`.
fn rest(o: &Obj, skip: &[&str]) -> Obj {
    o.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Parses a `/v1/messages` (or `count_tokens`) body into a [`ChatRequest`].
///
/// # Errors
/// A 400 naming the field for anything Anthropic's API would refuse to parse: a missing
/// `model`, `messages` or (for [`Endpoint::Messages`]) `max_tokens`, a wrong type, an
/// unknown role, a block missing its fields, a `tool_use` in a user turn or a
/// `tool_result` in an assistant turn.
pub fn parse(bytes: &[u8], endpoint: Endpoint) -> Result<ChatRequest, OpenAiError> {
    let body: Value = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            OpenAiError::bad_request(format!("Invalid request body: {e}"), None)
        } else {
            crate::openai_error::invalid_json(&e)
        }
    })?;
    let Value::Object(body) = body else {
        return Err(OpenAiError::bad_request(
            format!(
                "The request body must be a JSON object, got {}.",
                kind_of(&body)
            ),
            None,
        ));
    };
    to_chat_request(body, endpoint)
}

/// Converts a parsed Messages request body into a [`ChatRequest`] (see [`parse`]).
///
/// # Errors
/// As [`parse`].
pub fn to_chat_request(mut body: Obj, endpoint: Endpoint) -> Result<ChatRequest, OpenAiError> {
    let model = match body.remove("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        Some(Value::String(_)) => return Err(bad("model", "must not be empty")),
        Some(v) => {
            return Err(bad(
                "model",
                format_args!("expected a string, got {}", kind_of(&v)),
            ));
        }
        None => return Err(bad("model", "Field required")),
    };
    let max_tokens = opt_u32(&body, "max_tokens")?;
    body.remove("max_tokens");
    if max_tokens.is_none() && endpoint == Endpoint::Messages {
        return Err(bad("max_tokens", "Field required"));
    }

    let mut messages = Vec::new();
    if let Some(system) = body.remove("system")
        && let Some(m) = system_message(&system)?
    {
        messages.push(m);
    }
    let turns = match body.remove("messages") {
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(bad(
                "messages",
                format_args!("expected an array, got {}", kind_of(&v)),
            ));
        }
        None => return Err(bad("messages", "Field required")),
    };
    if turns.is_empty() {
        return Err(bad("messages", "at least one message is required"));
    }
    for (i, turn) in turns.iter().enumerate() {
        convert_turn(turn, &format!("messages.{i}"), &mut messages)?;
    }

    let mut req = ChatRequest::new(model, messages);
    req.max_tokens = max_tokens;
    req.temperature = opt_f64(&body, "temperature")?;
    body.remove("temperature");
    req.top_p = opt_f64(&body, "top_p")?;
    body.remove("top_p");

    match body.remove("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            let mut stops = Vec::with_capacity(a.len());
            for (i, s) in a.iter().enumerate() {
                stops.push(expect_str(s, &format!("stop_sequences.{i}"))?.to_owned());
            }
            if !stops.is_empty() {
                req.stop = Some(Stop::Many(stops));
            }
        }
        Some(v) => {
            return Err(bad(
                "stop_sequences",
                format_args!("expected an array, got {}", kind_of(&v)),
            ));
        }
    }

    match body.remove("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, t) in a.iter().enumerate() {
                req.tools.push(convert_tool(t, &format!("tools.{i}"))?);
            }
        }
        Some(v) => {
            return Err(bad(
                "tools",
                format_args!("expected an array, got {}", kind_of(&v)),
            ));
        }
    }

    if let Some(choice) = body.remove("tool_choice")
        && !choice.is_null()
    {
        let (openai, parallel) = convert_tool_choice(&choice)?;
        req.tool_choice = Some(openai);
        if let Some(p) = parallel {
            req.extra
                .insert("parallel_tool_calls".into(), Value::Bool(p));
        }
    }

    match body.remove("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(mut meta)) => {
            match meta.remove("user_id") {
                None | Some(Value::Null) => {}
                Some(Value::String(u)) => req.user = Some(u),
                Some(v) => {
                    return Err(bad(
                        "metadata.user_id",
                        format_args!("expected a string, got {}", kind_of(&v)),
                    ));
                }
            }
            if !meta.is_empty() {
                req.extra.insert("metadata".into(), Value::Object(meta));
            }
        }
        Some(v) => {
            return Err(bad(
                "metadata",
                format_args!("expected an object, got {}", kind_of(&v)),
            ));
        }
    }

    if let Some(thinking) = body.remove("thinking")
        && !thinking.is_null()
    {
        let t = expect_obj(&thinking, "thinking")?;
        req_str(t, "type", "thinking")?;
        req.extra.insert("thinking".into(), thinking);
    }
    if let Some(top_k) = body.get("top_k")
        && !top_k.is_null()
        && top_k.as_u64().is_none()
    {
        return Err(bad(
            "top_k",
            format_args!("expected a non-negative integer, got {top_k}"),
        ));
    }

    let stream = match body.remove("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(v) => {
            return Err(bad(
                "stream",
                format_args!("expected a boolean, got {}", kind_of(&v)),
            ));
        }
    };
    if stream && endpoint == Endpoint::Messages {
        req.stream = true;
        // Always ask the provider for usage: cost is settled on real numbers, and
        // Anthropic's `message_delta` reports it.
        req.stream_options = Some(StreamOptions {
            extra: Default::default(),
            include_usage: true,
        });
    }

    // Everything else (`top_k`, `service_tier`, `container`, `mcp_servers`,
    // `context_management`, ...) passes through for the provider.
    body.retain(|_, v| !v.is_null());
    req.extra.extend(body);
    Ok(req)
}

/// `system`: a string, or an array of text blocks (each keeping `cache_control` and any
/// other field in the part's `extra`).
fn system_message(system: &Value) -> Result<Option<Message>, OpenAiError> {
    match system {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(Message::system(s.clone()))),
        Value::Array(blocks) => {
            if blocks.is_empty() {
                return Ok(None);
            }
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                let path = format!("system.{i}");
                let o = expect_obj(b, &path)?;
                let kind = req_str(o, "type", &path)?;
                if kind != "text" {
                    return Err(bad(
                        &format!("{path}.type"),
                        format_args!("system blocks must be `text` blocks, got {kind:?}"),
                    ));
                }
                parts.push(ContentPart::Text {
                    text: req_str(o, "text", &path)?.to_owned(),
                    extra: rest(o, &["type", "text"]),
                });
            }
            let mut m = Message::empty(Role::System);
            m.content = Some(Content::Parts(parts));
            Ok(Some(m))
        }
        other => Err(bad(
            "system",
            format_args!(
                "expected a string or an array of text blocks, got {}",
                kind_of(other)
            ),
        )),
    }
}

/// One Anthropic turn -> one or more core messages (a user turn's `tool_result` blocks
/// become `tool` messages, in order with the user's other content).
fn convert_turn(turn: &Value, path: &str, out: &mut Vec<Message>) -> Result<(), OpenAiError> {
    let o = expect_obj(turn, path)?;
    let role = match req_str(o, "role", path)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(bad(
                &format!("{path}.role"),
                format_args!("must be \"user\" or \"assistant\", got {other:?}"),
            ));
        }
    };
    let extra = rest(o, &["role", "content"]);
    let content = match o.get("content") {
        Some(c) => c,
        None => return Err(bad(&format!("{path}.content"), "Field required")),
    };
    let blocks = match content {
        Value::String(s) => {
            let mut m = Message::empty(role);
            m.content = Some(Content::Text(s.clone()));
            m.extra = extra;
            out.push(m);
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        other => {
            return Err(bad(
                &format!("{path}.content"),
                format_args!(
                    "expected a string or an array of blocks, got {}",
                    kind_of(other)
                ),
            ));
        }
    };
    match role {
        Role::Assistant => {
            out.push(assistant_turn(blocks, path, extra)?);
            Ok(())
        }
        _ => user_turn(blocks, path, extra, out),
    }
}

fn user_turn(
    blocks: &[Value],
    path: &str,
    extra: Obj,
    out: &mut Vec<Message>,
) -> Result<(), OpenAiError> {
    let mut parts: Vec<ContentPart> = Vec::new();
    let mut extra = Some(extra);
    let flush = |parts: &mut Vec<ContentPart>, extra: &mut Option<Obj>, out: &mut Vec<Message>| {
        if parts.is_empty() {
            return;
        }
        let mut m = Message::empty(Role::User);
        m.content = Some(Content::Parts(std::mem::take(parts)));
        m.extra = extra.take().unwrap_or_default();
        out.push(m);
    };
    let mut any = false;
    for (i, b) in blocks.iter().enumerate() {
        let bpath = format!("{path}.content.{i}");
        let o = expect_obj(b, &bpath)?;
        match req_str(o, "type", &bpath)? {
            "tool_result" => {
                flush(&mut parts, &mut extra, out);
                out.push(tool_result(o, &bpath)?);
                any = true;
            }
            "tool_use" | "thinking" | "redacted_thinking" => {
                return Err(bad(
                    &format!("{bpath}.type"),
                    "this block may only appear in an assistant turn",
                ));
            }
            _ => parts.push(content_part(o, &bpath)?),
        }
    }
    if parts.is_empty() && !any {
        // An empty block list: keep the (empty) turn rather than drop it.
        let mut m = Message::empty(Role::User);
        m.content = Some(Content::Parts(Vec::new()));
        m.extra = extra.take().unwrap_or_default();
        out.push(m);
    }
    flush(&mut parts, &mut extra, out);
    Ok(())
}

fn assistant_turn(blocks: &[Value], path: &str, extra: Obj) -> Result<Message, OpenAiError> {
    let mut m = Message::empty(Role::Assistant);
    m.extra = extra;
    let mut parts = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let bpath = format!("{path}.content.{i}");
        let o = expect_obj(b, &bpath)?;
        match req_str(o, "type", &bpath)? {
            "tool_use" => {
                let id = req_str(o, "id", &bpath)?;
                let name = req_str(o, "name", &bpath)?;
                let arguments = match o.get("input") {
                    None | Some(Value::Null) => "{}".to_owned(),
                    Some(input) => input.to_string(),
                };
                let mut call = ToolCall::function(id, name, arguments);
                call.extra = rest(o, &["type", "id", "name", "input"]);
                m.tool_calls.push(call);
            }
            "thinking" => m.thinking_blocks.push(ThinkingBlock::Thinking {
                thinking: req_str(o, "thinking", &bpath)?.to_owned(),
                signature: match o.get("signature") {
                    None | Some(Value::Null) => String::new(),
                    Some(v) => expect_str(v, &format!("{bpath}.signature"))?.to_owned(),
                },
            }),
            "redacted_thinking" => m.thinking_blocks.push(ThinkingBlock::RedactedThinking {
                data: req_str(o, "data", &bpath)?.to_owned(),
            }),
            "tool_result" => {
                return Err(bad(
                    &format!("{bpath}.type"),
                    "`tool_result` blocks may only appear in a user turn",
                ));
            }
            _ => parts.push(content_part(o, &bpath)?),
        }
    }
    // Plain text blocks become a plain string (what OpenAI-style providers expect of an
    // assistant turn); anything richer stays as parts.
    m.content = if parts.is_empty() {
        None
    } else if parts
        .iter()
        .all(|p| matches!(p, ContentPart::Text { extra, .. } if extra.is_empty()))
    {
        let mut text = String::new();
        for p in &parts {
            if let ContentPart::Text { text: t, .. } = p {
                text.push_str(t);
            }
        }
        Some(Content::Text(text))
    } else {
        Some(Content::Parts(parts))
    };
    Ok(m)
}

/// A `tool_result` block -> a `tool` message; `is_error` and `cache_control` (and any
/// other field) go to the message's `extra`.
fn tool_result(o: &Obj, path: &str) -> Result<Message, OpenAiError> {
    let id = req_str(o, "tool_use_id", path)?;
    let mut m = Message::empty(Role::Tool);
    m.tool_call_id = Some(id.to_owned());
    m.content = Some(match o.get("content") {
        None | Some(Value::Null) => Content::Text(String::new()),
        Some(Value::String(s)) => Content::Text(s.clone()),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (i, b) in blocks.iter().enumerate() {
                let bpath = format!("{path}.content.{i}");
                parts.push(content_part(expect_obj(b, &bpath)?, &bpath)?);
            }
            Content::Parts(parts)
        }
        Some(other) => {
            return Err(bad(
                &format!("{path}.content"),
                format_args!(
                    "expected a string or an array of blocks, got {}",
                    kind_of(other)
                ),
            ));
        }
    });
    if let Some(e) = o.get("is_error")
        && !e.is_null()
        && !e.is_boolean()
    {
        return Err(bad(
            &format!("{path}.is_error"),
            format_args!("expected a boolean, got {}", kind_of(e)),
        ));
    }
    m.extra = rest(o, &["type", "tool_use_id", "content"]);
    m.extra.retain(|_, v| !v.is_null());
    Ok(m)
}

/// A content block of a user turn, an assistant turn's text, or a tool result's content.
fn content_part(o: &Obj, path: &str) -> Result<ContentPart, OpenAiError> {
    let kind = req_str(o, "type", path)?;
    match kind {
        "text" => Ok(ContentPart::Text {
            text: req_str(o, "text", path)?.to_owned(),
            extra: rest(o, &["type", "text"]),
        }),
        "image" => image_part(o, path),
        "document" => document_part(o, path),
        // `server_tool_use`, `web_search_tool_result`, `search_result`, `container_upload`,
        // and whatever comes next: kept whole for a provider that knows it.
        _ => Ok(ContentPart::Other(Value::Object(o.clone()))),
    }
}

fn source<'a>(o: &'a Obj, path: &str) -> Result<(&'a Obj, &'a str, String), OpenAiError> {
    let spath = format!("{path}.source");
    let s = match o.get("source") {
        Some(s) => expect_obj(s, &spath)?,
        None => return Err(bad(&spath, "Field required")),
    };
    let kind = req_str(s, "type", &spath)?;
    Ok((s, kind, spath))
}

/// `image`: a base64 source becomes a `data:` URL, a URL source the URL; other sources
/// (`file`) are kept whole.
fn image_part(o: &Obj, path: &str) -> Result<ContentPart, OpenAiError> {
    let (s, kind, spath) = source(o, path)?;
    let url = match kind {
        "base64" => {
            let media = req_str(s, "media_type", &spath)?;
            let data = req_str(s, "data", &spath)?;
            format!("data:{media};base64,{data}")
        }
        "url" => req_str(s, "url", &spath)?.to_owned(),
        _ => return Ok(ContentPart::Other(Value::Object(o.clone()))),
    };
    Ok(ContentPart::ImageUrl {
        image_url: ImageUrl {
            extra: Default::default(),
            url,
            detail: None,
        },
        extra: rest(o, &["type", "source"]),
    })
}

/// `document`: a base64 PDF becomes a `file` part with a `data:` URL, a `file` source a
/// file id (`title`, `context`, `citations` and `cache_control` stay in the part's
/// `extra`); text, content and URL sources are kept whole, for an Anthropic provider.
fn document_part(o: &Obj, path: &str) -> Result<ContentPart, OpenAiError> {
    let (s, kind, spath) = source(o, path)?;
    let file = match kind {
        "base64" => {
            let media = req_str(s, "media_type", &spath)?;
            let data = req_str(s, "data", &spath)?;
            FileData {
                file_data: Some(format!("data:{media};base64,{data}")),
                ..FileData::default()
            }
        }
        "file" => FileData {
            file_id: Some(req_str(s, "file_id", &spath)?.to_owned()),
            ..FileData::default()
        },
        _ => return Ok(ContentPart::Other(Value::Object(o.clone()))),
    };
    Ok(ContentPart::File {
        file,
        extra: rest(o, &["type", "source"]),
    })
}

/// A tool: a custom tool (no `type`, or `custom`) becomes a function with
/// `input_schema` as its parameters (`cache_control` and other fields in the tool's
/// `extra`); a server or client tool of another type (`web_search_20250305`,
/// `bash_20250124`, ...) is kept as `Tool { kind, extra }`.
fn convert_tool(t: &Value, path: &str) -> Result<Tool, OpenAiError> {
    let o = expect_obj(t, path)?;
    let kind = match o.get("type") {
        None | Some(Value::Null) => "custom",
        Some(v) => expect_str(v, &format!("{path}.type"))?,
    };
    if kind != "custom" {
        req_str(o, "name", path)?;
        return Ok(Tool {
            kind: kind.to_owned(),
            function: None,
            extra: rest(o, &["type"]),
        });
    }
    let mut f = FunctionDef::new(req_str(o, "name", path)?);
    f.description = match o.get("description") {
        None | Some(Value::Null) => None,
        Some(v) => Some(expect_str(v, &format!("{path}.description"))?.to_owned()),
    };
    f.parameters = match o.get("input_schema") {
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(v) => {
            return Err(bad(
                &format!("{path}.input_schema"),
                format_args!("expected an object, got {}", kind_of(v)),
            ));
        }
        None => return Err(bad(&format!("{path}.input_schema"), "Field required")),
    };
    f.strict = o.get("strict").and_then(Value::as_bool);
    let mut tool = Tool::function(f);
    tool.extra = rest(
        o,
        &["type", "name", "description", "input_schema", "strict"],
    );
    Ok(tool)
}

/// Anthropic's `tool_choice` -> OpenAI's, plus `parallel_tool_calls` from
/// `disable_parallel_tool_use` when given. The mapping is one to one, so a provider
/// speaking Anthropic restores the original exactly:
///
/// | Anthropic | OpenAI |
/// |---|---|
/// | `{"type": "auto"}` | `"auto"` |
/// | `{"type": "any"}` | `"required"` |
/// | `{"type": "tool", "name": N}` | `{"type": "function", "function": {"name": N}}` |
/// | `{"type": "none"}` | `"none"` |
/// | `disable_parallel_tool_use: B` | `parallel_tool_calls: !B` |
fn convert_tool_choice(choice: &Value) -> Result<(Value, Option<bool>), OpenAiError> {
    let o = expect_obj(choice, "tool_choice")?;
    let openai = match req_str(o, "type", "tool_choice")? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            json!({"type": "function", "function": {"name": req_str(o, "name", "tool_choice")?}})
        }
        other => {
            return Err(bad(
                "tool_choice.type",
                format_args!("must be \"auto\", \"any\", \"tool\" or \"none\", got {other:?}"),
            ));
        }
    };
    let parallel = match o.get("disable_parallel_tool_use") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(!b),
        Some(v) => {
            return Err(bad(
                "tool_choice.disable_parallel_tool_use",
                format_args!("expected a boolean, got {}", kind_of(v)),
            ));
        }
    };
    Ok((openai, parallel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_v(v: Value) -> Result<ChatRequest, OpenAiError> {
        parse(&serde_json::to_vec(&v).unwrap(), Endpoint::Messages)
    }

    #[test]
    fn system_blocks_keep_cache_control_and_unknown_fields_pass_through() {
        let req = parse_v(json!({
            "model": "claude-x", "max_tokens": 10,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi"}],
            "top_k": 5, "service_tier": "auto", "container": "c1",
            "metadata": {"user_id": "u1"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "stop_sequences": ["END"],
        }))
        .unwrap();
        let Some(Content::Parts(parts)) = &req.messages[0].content else {
            panic!("system parts");
        };
        assert_eq!(
            parts[0].extra().unwrap()["cache_control"],
            json!({"type": "ephemeral"})
        );
        assert_eq!(req.extra["top_k"], json!(5));
        assert_eq!(req.extra["service_tier"], json!("auto"));
        assert_eq!(req.extra["container"], json!("c1"));
        assert_eq!(req.extra["thinking"]["budget_tokens"], json!(1024));
        assert_eq!(req.user.as_deref(), Some("u1"));
        assert!(!req.extra.contains_key("metadata"));
        assert_eq!(req.stop, Some(Stop::Many(vec!["END".into()])));
    }

    #[test]
    fn tool_choice_forms() {
        let cases = [
            (json!({"type": "auto"}), json!("auto"), None),
            (
                json!({"type": "any", "disable_parallel_tool_use": true}),
                json!("required"),
                Some(false),
            ),
            (
                json!({"type": "tool", "name": "f"}),
                json!({"type": "function", "function": {"name": "f"}}),
                None,
            ),
            (json!({"type": "none"}), json!("none"), None),
        ];
        for (anthropic, openai, parallel) in cases {
            let (o, p) = convert_tool_choice(&anthropic).unwrap();
            assert_eq!(o, openai);
            assert_eq!(p, parallel);
        }
        let e = convert_tool_choice(&json!({"type": "tool"})).unwrap_err();
        assert!(
            e.message().starts_with("tool_choice.name:"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn images_documents_and_unknown_blocks() {
        let req = parse_v(json!({
            "model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}, "title": "t"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}},
                {"type": "search_result", "source": "s", "title": "t", "content": []},
            ]}],
        }))
        .unwrap();
        let Some(Content::Parts(p)) = &req.messages[0].content else {
            panic!()
        };
        assert!(
            matches!(&p[0], ContentPart::ImageUrl { image_url, .. } if image_url.url == "data:image/png;base64,AAAA")
        );
        assert!(
            matches!(&p[1], ContentPart::ImageUrl { image_url, .. } if image_url.url == "https://x/y.png")
        );
        assert!(
            matches!(&p[2], ContentPart::File { file, extra } if file.file_data.as_deref() == Some("data:application/pdf;base64,JVBE") && extra["title"] == "t")
        );
        assert_eq!(p[3].kind(), "document");
        assert!(matches!(&p[3], ContentPart::Other(_)));
        assert_eq!(p[4].kind(), "search_result");
    }

    #[test]
    fn hostile_bodies_are_400s_not_panics() {
        let bodies = [
            json!(null),
            json!({"model": 1, "max_tokens": 1, "messages": []}),
            json!({"model": "m", "max_tokens": 1e30, "messages": [{"role": "user", "content": "x"}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [1]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": null}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [7]}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": 7}]}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f"}]}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "a"}]}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "system": 3}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "thinking": true}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "top_k": -1}),
            json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
        ];
        for b in bodies {
            assert!(parse_v(b.clone()).is_err(), "{b}");
        }
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(deep.as_bytes(), Endpoint::Messages).is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_v(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}))
            .unwrap_err();
        assert_eq!(e.message(), "max_tokens: Field required");
        let e = parse_v(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]})).unwrap_err();
        assert!(
            e.message().starts_with("messages.0.role:"),
            "{}",
            e.message()
        );
        let e = parse_v(json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]})).unwrap_err();
        assert_eq!(
            e.message(),
            "messages.0.content.0.source.media_type: Field required"
        );
        let e = parse_v(json!({"model": "m", "max_tokens": -1, "messages": []})).unwrap_err();
        assert!(e.message().starts_with("max_tokens:"), "{}", e.message());
        assert!(parse(b"[1]", Endpoint::Messages).is_err());
        assert!(parse(b"{", Endpoint::Messages).is_err());
        // count_tokens needs no max_tokens.
        let ok = parse(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
            Endpoint::CountTokens,
        );
        assert!(ok.is_ok());
    }
}
