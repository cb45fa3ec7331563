//! Mapping between our OpenAI-shaped types and Anthropic's Messages API.
//!
//! # Requests
//!
//! - `system` and `developer` messages become the top-level `system`: one string (the
//!   messages joined with a blank line), or an array of text blocks when any of them (or
//!   any of their text parts) carries `cache_control`. A system message with a part
//!   other than text is an `InvalidRequest` (Anthropic's `system` holds only text).
//! - An assistant message is sent as its `thinking_blocks` first (unchanged, signatures
//!   byte for byte), then its text, then its `tool_calls` as `tool_use` blocks.
//! - A `tool` message becomes a `tool_result` block (its text and image parts become the
//!   result's content; `is_error` is read from the message's `extra`) in a user turn;
//!   consecutive results share one turn.
//! - Content parts: `text`; `image_url` (`data:` URLs -> base64 source, `http(s)://` ->
//!   url source; `detail` is dropped); `file` -> a `document` block (`file_data` as a
//!   base64 `data:` URL of a PDF -> base64 source, of `text/*` -> text source, of
//!   `image/*` -> an `image` block, bare base64 is taken as a PDF; `file_id` -> a `file`
//!   source, which needs the Files API beta; `filename` -> `title`); a part of an
//!   Anthropic block type (`document`, `search_result`, `image`, `container_upload`, ...)
//!   is passed through as it is; `input_audio` is refused ("Anthropic does not accept
//!   audio input").
//! - `cache_control` is taken from the `extra` of a system message or its text parts, a
//!   message (put on the message's last block), a content part (put on that block) and a
//!   tool (put on that tool). Any other field in a part's `extra` is OpenAI's and is
//!   dropped.
//! - Tools: `function` tools become `{name, description, input_schema}` (`strict` is
//!   dropped); a tool of another type whose fields look like one of Anthropic's tools (a
//!   `name`, and a versioned type such as `web_search_20250305`, `bash_20250124`,
//!   `text_editor_20250728`, or `custom` with an `input_schema`) is sent as it is; other
//!   tool types are refused.
//! - `tool_choice`: `extra["anthropic_tool_choice"]` (Anthropic's own form, as a gateway
//!   speaking the Messages API keeps it) is sent as is; otherwise OpenAI's form is mapped
//!   (`auto`, `required` -> `any`, `none`, a named function -> `tool`).
//! - `extra["thinking"]` is sent as `thinking`; `extra["anthropic_beta"]` (strings) is
//!   removed from the body and sent in the `anthropic-beta` header, merged with the
//!   configured betas. Every other `extra` field not in the table below (e.g. `top_k`,
//!   `container`, `mcp_servers`) passes through unchanged.
//!
//! # OpenAI fields
//!
//! Anthropic rejects fields it does not know, so the OpenAI request fields are mapped or
//! dropped here ([`OPENAI_FIELDS`] lists the `extra` ones):
//!
//! | OpenAI field | sent to Anthropic as |
//! |---|---|
//! | `reasoning_effort` | `thinking: {type: enabled, budget_tokens}` when no `thinking` is given: `minimal`/`low` 1024, `medium` 4096, `high` 16384, `xhigh` 32768 tokens; `none` sends no thinking; any other value is an `InvalidRequest`. Without `max_tokens` the request gets `default_max_tokens + budget`; when `max_tokens` cannot hold the budget, the budget shrinks to half of `max_tokens` (at least 1024, Anthropic's minimum) and if that still does not fit `max_tokens` becomes `max_tokens + budget` |
//! | `response_format` | `json_schema` -> `output_config.format: {type: json_schema, schema}` (structured outputs, no beta needed); `json_object` -> an instruction to answer with one JSON object only, appended to `system`; `text` -> nothing; anything else is an `InvalidRequest` |
//! | `service_tier` | `auto` -> `auto` (and Anthropic's own `standard_only` kept); OpenAI's `default`, `flex`, `priority`, `scale` are dropped |
//! | `user` | `metadata.user_id` (else `metadata.user_id` of OpenAI's `metadata`, else `safety_identifier`) |
//! | `metadata` | only its `user_id` (see `user`); OpenAI's other keys are dropped |
//! | `parallel_tool_calls: false` | `tool_choice.disable_parallel_tool_use: true` |
//! | `n > 1` | an `InvalidRequest` (one answer per call) |
//! | `seed`, `presence_penalty`, `frequency_penalty`, `logit_bias` | dropped: no seeding, no penalties (`temperature`, `top_p`, `top_k` are the sampling controls) |
//! | `logprobs`, `top_logprobs` | dropped: Anthropic returns no log probabilities |
//! | `stream_options` | dropped: the stream always reports usage (one usage chunk at the end) |
//! | `verbosity`, `prompt_cache_key`, `prompt_cache_retention`, `store`, `modalities`, `audio`, `prediction`, `web_search_options` | dropped: OpenAI-only features (use `cache_control` for caching, Anthropic's `web_search_*` tool for search) |
//!
//! With thinking on (`enabled` or `adaptive`) Anthropic refuses sampling changes:
//! `temperature` and `top_k` are not sent, nor `top_p` below 0.95.
//!
//! # Responses
//!
//! Text blocks are joined into the content; `tool_use` -> `tool_calls`; `thinking` and
//! `redacted_thinking` -> `thinking_blocks` (in order, with signatures) and the thinking
//! text joined with a blank line -> `reasoning_content`. Blocks of other types (server
//! tool results) are not mapped. `stop_reason`: `end_turn`/`stop_sequence` -> `stop`,
//! `max_tokens`/`model_context_window_exceeded` -> `length`, `tool_use` -> `tool_calls`,
//! `refusal` -> `content_filter`, others (`pause_turn`) kept; the raw value is in the
//! choice's `extra["anthropic_stop_reason"]`. `stop_sequence`, `container` and unknown
//! top-level fields go to the response's `extra`; `usage.service_tier` to `service_tier`.
//! Usage: prompt = `input_tokens` + cache reads + cache writes; cached = reads; cache
//! writes split by `cache_creation` (5 minutes / 1 hour; all 5 minutes without the split).

use llm_tower_core::{
    ChatChoice, ChatRequest, ChatResponse, Content, ContentPart, Error, FileData, FunctionCall,
    Message, Role, ThinkingBlock, Tool, ToolCall, Usage, UsageSource,
};
use serde_json::{Map, Value, json};

use super::wire;

/// OpenAI request fields found in [`ChatRequest::extra`] that are not sent as they are
/// (mapped, or dropped; see the module documentation).
pub(crate) const OPENAI_FIELDS: &[&str] = &[
    "reasoning_effort",
    "service_tier",
    "metadata",
    "safety_identifier",
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "verbosity",
    "prompt_cache_key",
    "prompt_cache_retention",
    "store",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
];

/// Our own `extra` fields, read here and never sent as body fields.
const OWN_FIELDS: &[&str] = &["thinking", "anthropic_beta", "anthropic_tool_choice"];

/// Anthropic content block types a raw part ([`ContentPart::Other`]) may carry.
const ANTHROPIC_BLOCK_TYPES: &[&str] = &[
    "text",
    "image",
    "document",
    "search_result",
    "container_upload",
    "tool_result",
    "tool_use",
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "tool_reference",
];

/// Anthropic's minimum thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

/// What `json_object` adds to `system`.
pub(crate) const JSON_OBJECT_INSTRUCTION: &str =
    "Respond with a single valid JSON object and nothing else: no text before or after it.";

/// A request ready to send: the body and the `anthropic-beta` features it asks for.
#[derive(Debug)]
pub(crate) struct WireRequest {
    pub body: Vec<u8>,
    pub betas: Vec<String>,
}

/// `reasoning_effort` -> thinking budget (`None`: no thinking).
pub(crate) fn effort_budget(effort: &str) -> Result<Option<u32>, Error> {
    Ok(match effort {
        "none" => None,
        "minimal" | "low" => Some(MIN_THINKING_BUDGET),
        "medium" => Some(4096),
        "high" => Some(16_384),
        "xhigh" => Some(32_768),
        other => {
            return Err(Error::invalid_request(format!(
                "unknown reasoning_effort {other:?} (expected none, minimal, low, medium, high or xhigh)"
            ))
            .with_param("reasoning_effort"));
        }
    })
}

/// `thinking` and `max_tokens` from `extra["thinking"]`, `reasoning_effort` and `max_tokens`.
fn thinking_and_max_tokens(
    req: &ChatRequest,
    default_max_tokens: u32,
) -> Result<(Option<Value>, u32), Error> {
    if let Some(t) = req.extra.get("thinking").filter(|v| !v.is_null()) {
        let budget = t
            .get("budget_tokens")
            .and_then(Value::as_u64)
            .map(|b| u32::try_from(b).unwrap_or(u32::MAX));
        let max = match (req.max_tokens, budget) {
            (Some(m), _) => m,
            (None, Some(b)) if default_max_tokens <= b => default_max_tokens.saturating_add(b),
            (None, _) => default_max_tokens,
        };
        return Ok((Some(t.clone()), max));
    }
    let effort = match req.extra.get("reasoning_effort") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => effort_budget(s)?,
        Some(_) => {
            return Err(Error::invalid_request("reasoning_effort must be a string")
                .with_param("reasoning_effort"));
        }
    };
    let Some(mut budget) = effort else {
        return Ok((None, req.max_tokens.unwrap_or(default_max_tokens)));
    };
    let max = match req.max_tokens {
        None => default_max_tokens.saturating_add(budget),
        Some(m) if m > budget => m,
        Some(m) => {
            budget = (m / 2).max(MIN_THINKING_BUDGET);
            if m > budget {
                m
            } else {
                m.saturating_add(budget)
            }
        }
    };
    Ok((
        Some(json!({"type": "enabled", "budget_tokens": budget})),
        max,
    ))
}

fn thinking_on(thinking: Option<&Value>) -> bool {
    thinking
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "disabled")
}

fn cache_control(extra: &Map<String, Value>) -> Option<&Value> {
    extra.get("cache_control").filter(|v| !v.is_null())
}

fn set_cache_control(block: &mut Value, cc: Option<&Value>) {
    if let (Some(cc), Some(o)) = (cc, block.as_object_mut()) {
        o.insert("cache_control".into(), cc.clone());
    }
}

/// Builds the request body. `default_max_tokens` fills the required `max_tokens`.
pub(crate) fn messages_request(
    req: &ChatRequest,
    default_max_tokens: u32,
) -> Result<WireRequest, Error> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(Error::invalid_request("Anthropic does not support n > 1").with_param("n"));
    }
    let (thinking, max_tokens) = thinking_and_max_tokens(req, default_max_tokens)?;
    let thinking_on = thinking_on(thinking.as_ref());

    let mut system = System::default();
    // Each turn: its role, its blocks, and whether it may go out as a plain string.
    let mut messages: Vec<(&'static str, Vec<Value>, bool)> = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        let cc = cache_control(&m.extra);
        match m.role {
            Role::System | Role::Developer => system.push(m, cc, &path)?,
            Role::User => {
                let mut blocks = content_blocks(m.content.as_ref(), &path)?;
                if let Some(last) = blocks.last_mut() {
                    set_cache_control(last, cc);
                }
                // Plain text without a cache hint goes out as a string, as it came.
                let plain = cc.is_none() && matches!(&m.content, Some(Content::Text(_)));
                push(&mut messages, "user", blocks);
                if plain && let Some(last) = messages.last_mut() {
                    last.2 = last.1.len() == 1;
                }
            }
            Role::Tool => {
                let id = match m.tool_call_id.as_deref().map(str::trim) {
                    Some(id) if !id.is_empty() => id.to_owned(),
                    _ => {
                        return Err(Error::invalid_request(format!(
                            "{path}.tool_call_id: required for tool messages"
                        ))
                        .with_param(format!("{path}.tool_call_id")));
                    }
                };
                // Plain text stays a string, as clients send it; parts become blocks.
                let content = match &m.content {
                    Some(Content::Text(t)) => Value::String(t.clone()),
                    other => Value::Array(content_blocks(other.as_ref(), &path)?),
                };
                let mut block =
                    json!({"type": "tool_result", "tool_use_id": id, "content": content});
                if let (Some(e), Some(o)) = (m.extra.get("is_error"), block.as_object_mut())
                    && e.is_boolean()
                {
                    o.insert("is_error".into(), e.clone());
                }
                set_cache_control(&mut block, cc);
                push(&mut messages, "user", vec![block]);
            }
            Role::Assistant => {
                let mut blocks =
                    Vec::with_capacity(m.thinking_blocks.len() + 1 + m.tool_calls.len());
                for tb in &m.thinking_blocks {
                    blocks.push(thinking_block(tb));
                }
                blocks.extend(content_blocks(m.content.as_ref(), &path)?);
                for (j, call) in m.tool_calls.iter().enumerate() {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.function.name,
                        "input": tool_input(&call.function.arguments)
                            .map_err(|e| e.with_param(format!("{path}.tool_calls[{j}].function.arguments")))?,
                    }));
                }
                if let Some(last) = blocks.last_mut() {
                    set_cache_control(last, cc);
                }
                push(&mut messages, "assistant", blocks);
            }
        }
    }

    let mut body: Map<String, Value> = Map::new();
    // Pass-through fields first; everything set below wins over them.
    for (k, v) in &req.extra {
        if !OPENAI_FIELDS.contains(&k.as_str()) && !OWN_FIELDS.contains(&k.as_str()) {
            body.insert(k.clone(), v.clone());
        }
    }

    match req.response_format.as_ref() {
        None | Some(Value::Null) => {}
        Some(rf) => match rf.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => system.instruction(JSON_OBJECT_INSTRUCTION),
            Some("json_schema") => {
                let schema = rf
                    .get("json_schema")
                    .and_then(|j| j.get("schema"))
                    .filter(|s| s.is_object())
                    .ok_or_else(|| {
                        Error::invalid_request("response_format.json_schema.schema: required")
                            .with_param("response_format.json_schema.schema")
                    })?;
                let format = json!({"type": "json_schema", "schema": schema});
                match body.get_mut("output_config").and_then(Value::as_object_mut) {
                    Some(oc) => {
                        oc.entry("format").or_insert(format);
                    }
                    None => {
                        body.insert("output_config".into(), json!({ "format": format }));
                    }
                }
            }
            _ => {
                return Err(Error::invalid_request(
                    "response_format: only text, json_object and json_schema can be sent to Anthropic",
                )
                .with_param("response_format"));
            }
        },
    }

    body.insert("model".into(), Value::String(req.model.clone()));
    body.insert("max_tokens".into(), Value::from(max_tokens));
    body.insert(
        "messages".into(),
        Value::Array(
            messages
                .into_iter()
                .map(|(role, content, plain)| match (plain, content.as_slice()) {
                    (true, [only]) if only.get("type") == Some(&json!("text")) => {
                        json!({"role": role, "content": only["text"]})
                    }
                    _ => json!({"role": role, "content": content}),
                })
                .collect(),
        ),
    );
    if let Some(s) = system.finish() {
        body.insert("system".into(), s);
    }
    if let Some(stop) = &req.stop {
        let stop = stop.to_vec();
        if !stop.is_empty() {
            body.insert("stop_sequences".into(), json!(stop));
        }
    }
    if let Some(t) = thinking {
        body.insert("thinking".into(), t);
    }
    if thinking_on {
        body.remove("top_k");
    } else if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p
        && (!thinking_on || p >= 0.95)
    {
        body.insert("top_p".into(), json!(p));
    }

    let tools = tools(&req.tools)?;
    let parallel = req
        .extra
        .get("parallel_tool_calls")
        .and_then(Value::as_bool);
    let choice = match req.extra.get("anthropic_tool_choice") {
        Some(c) if c.is_object() => Some(c.clone()),
        _ => tool_choice(req.tool_choice.as_ref(), parallel, !tools.is_empty())?,
    };
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = choice {
        body.insert("tool_choice".into(), c);
    }
    if req.stream {
        body.insert("stream".into(), Value::Bool(true));
    } else {
        body.remove("stream");
    }
    let user_id = req
        .user
        .as_deref()
        .or_else(|| {
            req.extra
                .get("metadata")
                .and_then(|m| m.get("user_id"))
                .and_then(Value::as_str)
        })
        .or_else(|| req.extra.get("safety_identifier").and_then(Value::as_str));
    if let Some(u) = user_id {
        body.insert("metadata".into(), json!({ "user_id": u }));
    }
    if let Some(tier @ ("auto" | "standard_only")) =
        req.extra.get("service_tier").and_then(Value::as_str)
    {
        body.insert("service_tier".into(), Value::String(tier.to_owned()));
    }

    let betas = match req.extra.get("anthropic_beta") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    Error::invalid_request("anthropic_beta must be an array of strings")
                        .with_param("anthropic_beta")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(
                Error::invalid_request("anthropic_beta must be an array of strings")
                    .with_param("anthropic_beta"),
            );
        }
    };

    let body = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| Error::invalid_request(format!("request cannot be serialized: {e}")))?;
    Ok(WireRequest { body, betas })
}

/// Betas joined for the `anthropic-beta` header: configured ones first, then the
/// request's; comma-separated values split; duplicates and empty names dropped.
pub(crate) fn merge_betas(configured: &[String], requested: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for b in configured.iter().chain(requested) {
        for name in b.split(',').map(str::trim) {
            if !name.is_empty() && !out.iter().any(|o| o == name) {
                out.push(name.to_owned());
            }
        }
    }
    out
}

/// The `system` prompt being assembled.
#[derive(Default)]
struct System {
    /// Per message: its text blocks (text, cache_control).
    messages: Vec<Vec<(String, Option<Value>)>>,
    /// A message came as parts (Anthropic's array form): keep the blocks.
    parts: bool,
}

impl System {
    fn push(&mut self, m: &Message, cc: Option<&Value>, path: &str) -> Result<(), Error> {
        let mut blocks: Vec<(String, Option<Value>)> = Vec::new();
        match &m.content {
            None => {}
            Some(Content::Text(t)) if t.is_empty() => {}
            Some(Content::Text(t)) => blocks.push((t.clone(), None)),
            Some(Content::Parts(parts)) => {
                self.parts = true;
                for (j, p) in parts.iter().enumerate() {
                    match p {
                        ContentPart::Text { text, extra } => {
                            if !text.is_empty() {
                                blocks.push((text.clone(), cache_control(extra).cloned()));
                            }
                        }
                        other => {
                            return Err(Error::invalid_request(format!(
                                "{path}.content[{j}]: a system message can only hold text, not {:?}",
                                other.kind()
                            ))
                            .with_param(format!("{path}.content[{j}]")));
                        }
                    }
                }
            }
        }
        if let (Some(cc), Some(last)) = (cc, blocks.last_mut()) {
            last.1 = Some(cc.clone());
        }
        if !blocks.is_empty() {
            self.messages.push(blocks);
        }
        Ok(())
    }

    fn instruction(&mut self, text: &str) {
        self.messages.push(vec![(text.to_owned(), None)]);
    }

    fn finish(self) -> Option<Value> {
        if self.messages.is_empty() {
            return None;
        }
        let cached = self.messages.iter().flatten().any(|(_, cc)| cc.is_some());
        if cached || self.parts {
            let blocks = self
                .messages
                .into_iter()
                .flatten()
                .map(|(text, cc)| {
                    let mut b = json!({"type": "text", "text": text});
                    set_cache_control(&mut b, cc.as_ref());
                    b
                })
                .collect();
            return Some(Value::Array(blocks));
        }
        let joined: Vec<String> = self
            .messages
            .into_iter()
            .map(|m| m.into_iter().map(|(t, _)| t).collect::<String>())
            .collect();
        Some(Value::String(joined.join("\n\n")))
    }
}

fn thinking_block(tb: &ThinkingBlock) -> Value {
    match tb {
        ThinkingBlock::Thinking {
            thinking,
            signature,
        } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
        ThinkingBlock::RedactedThinking { data } => {
            json!({"type": "redacted_thinking", "data": data})
        }
    }
}

/// Appends blocks to the last turn when it has the same role (Anthropic wants alternating
/// turns; consecutive tool results become one user turn).
fn push(
    messages: &mut Vec<(&'static str, Vec<Value>, bool)>,
    role: &'static str,
    blocks: Vec<Value>,
) {
    if let Some((last_role, content, plain)) = messages.last_mut()
        && *last_role == role
    {
        content.extend(blocks);
        *plain = false;
        return;
    }
    messages.push((role, blocks, false));
}

fn content_blocks(content: Option<&Content>, path: &str) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Content::Text(t)) if t.is_empty() => {}
        Some(Content::Text(t)) => out.push(json!({"type": "text", "text": t})),
        Some(Content::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let at = || format!("{path}.content[{j}]");
                let mut block = match p {
                    ContentPart::Text { text, .. } => {
                        if text.is_empty() {
                            continue;
                        }
                        json!({"type": "text", "text": text})
                    }
                    ContentPart::ImageUrl { image_url, .. } => json!({
                        "type": "image",
                        "source": image_source(&image_url.url).map_err(|e| e.with_param(at()))?,
                    }),
                    ContentPart::File { file, .. } => {
                        file_block(file).map_err(|e| e.with_param(at()))?
                    }
                    ContentPart::InputAudio { .. } => {
                        return Err(Error::invalid_request(format!(
                            "{}: Anthropic does not accept audio input",
                            at()
                        ))
                        .with_param(at()));
                    }
                    ContentPart::Other(v) => {
                        if !ANTHROPIC_BLOCK_TYPES.contains(&p.kind()) {
                            return Err(Error::invalid_request(format!(
                                "{}: content parts of type {:?} cannot be sent to Anthropic",
                                at(),
                                p.kind()
                            ))
                            .with_param(at()));
                        }
                        out.push(v.clone());
                        continue;
                    }
                };
                if let Some(extra) = p.extra() {
                    set_cache_control(&mut block, cache_control(extra));
                }
                out.push(block);
            }
        }
    }
    Ok(out)
}

/// A `data:` URL split into media type, whether it is base64, and data.
fn data_url(url: &str) -> Option<(&str, bool, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    Some(match meta.strip_suffix(";base64") {
        Some(mt) => (mt, true, data),
        None => (meta, false, data),
    })
}

/// A `file` part -> a `document` (or `image`) block.
fn file_block(file: &FileData) -> Result<Value, Error> {
    let source = match (&file.file_data, &file.file_id) {
        (Some(data), _) => match data_url(data) {
            Some((mt, base64, data)) => {
                let mt = mt.split(';').next().unwrap_or_default().trim();
                if mt.starts_with("image/") {
                    return Ok(
                        json!({"type": "image", "source": image_source(&format!("data:{mt};base64,{data}"))?}),
                    );
                }
                if mt.starts_with("text/") {
                    let text = if base64 {
                        use base64::Engine as _;
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(data.trim())
                            .map_err(|_| Error::invalid_request("file_data: malformed base64"))?;
                        String::from_utf8(bytes).map_err(|_| {
                            Error::invalid_request("file_data: a text file must be UTF-8")
                        })?
                    } else {
                        data.to_owned()
                    };
                    json!({"type": "text", "media_type": "text/plain", "data": text})
                } else if mt == "application/pdf" && base64 {
                    json!({"type": "base64", "media_type": mt, "data": data})
                } else {
                    return Err(Error::invalid_request(format!(
                        "file_data: Anthropic accepts base64 PDFs, text and images, not {mt:?}"
                    )));
                }
            }
            // Bare base64: OpenAI's file inputs are PDFs.
            None => json!({"type": "base64", "media_type": "application/pdf", "data": data}),
        },
        (None, Some(id)) => json!({"type": "file", "file_id": id}),
        (None, None) => {
            return Err(Error::invalid_request(
                "a file part needs file_data or file_id",
            ));
        }
    };
    let mut block = json!({"type": "document", "source": source});
    if let (Some(name), Some(o)) = (&file.filename, block.as_object_mut()) {
        o.insert("title".into(), Value::String(name.clone()));
    }
    Ok(block)
}

/// `data:image/png;base64,...` -> base64 source; `https://...` -> url source.
pub(crate) fn image_source(url: &str) -> Result<Value, Error> {
    if url.starts_with("data:") {
        let (media_type, base64, data) = data_url(url)
            .ok_or_else(|| Error::invalid_request("malformed data URL for an image"))?;
        if !base64 {
            return Err(Error::invalid_request(
                "image data URLs must be base64-encoded",
            ));
        }
        if media_type.is_empty() {
            return Err(Error::invalid_request(
                "image data URL without a media type",
            ));
        }
        return Ok(json!({"type": "base64", "media_type": media_type, "data": data}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "url", "url": url}));
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

/// Whether a non-function tool is one of Anthropic's: a `name`, and a versioned type
/// (`web_search_20250305`) or `custom` with an `input_schema`.
fn is_anthropic_tool(t: &Tool) -> bool {
    if !t.extra.get("name").is_some_and(Value::is_string) {
        return false;
    }
    if t.kind == "custom" {
        return t.extra.contains_key("input_schema");
    }
    let date = t.kind.rsplit('_').next().unwrap_or_default();
    t.kind.contains('_') && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit())
}

fn tools(tools: &[Tool]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let mut tool = match (&t.function, t.kind.as_str()) {
            (Some(f), "function") => {
                let mut o = Map::new();
                o.insert("name".into(), Value::String(f.name.clone()));
                if let Some(d) = &f.description {
                    o.insert("description".into(), Value::String(d.clone()));
                }
                o.insert(
                    "input_schema".into(),
                    f.parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                );
                if let Some(cc) = cache_control(&f.extra) {
                    o.insert("cache_control".into(), cc.clone());
                }
                o
            }
            _ if t.kind != "function" && is_anthropic_tool(t) => {
                let mut o = t.extra.clone();
                o.insert("type".into(), Value::String(t.kind.clone()));
                o
            }
            _ => {
                return Err(Error::invalid_request(format!(
                    "tools[{i}]: tools of type {:?} cannot be sent to Anthropic",
                    t.kind
                ))
                .with_param(format!("tools[{i}]")));
            }
        };
        if let Some(cc) = cache_control(&t.extra) {
            tool.insert("cache_control".into(), cc.clone());
        }
        out.push(Value::Object(tool));
    }
    Ok(out)
}

/// OpenAI's `tool_choice` -> Anthropic's.
fn tool_choice(
    choice: Option<&Value>,
    parallel: Option<bool>,
    has_tools: bool,
) -> Result<Option<Value>, Error> {
    let bad = |m: String| Err(Error::invalid_request(m).with_param("tool_choice"));
    let mut out = match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "required" | "any" => Some(json!({"type": "any"})),
            "none" => Some(json!({"type": "none"})),
            other => return bad(format!("unknown tool_choice {other:?}")),
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
                _ => return bad("unsupported tool_choice object".to_owned()),
            }
        }
        Some(_) => return bad("unsupported tool_choice".to_owned()),
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
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

/// Anthropic's token counts (input excludes cache reads and writes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
    /// `cache_creation.{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}`.
    pub cache_split: Option<(u64, u64)>,
}

impl Counts {
    /// Takes the counts a usage object carries (later counts replace earlier ones).
    pub(crate) fn take(&mut self, u: &wire::WireUsage) {
        if let Some(n) = u.input_tokens {
            self.input = n;
        }
        if let Some(n) = u.output_tokens {
            self.output = n;
        }
        if let Some(n) = u.cache_read_input_tokens {
            self.cache_read = n;
        }
        if let Some(n) = u.cache_creation_input_tokens {
            self.cache_creation = n;
        }
        if let Some(c) = &u.cache_creation {
            self.cache_split = Some((
                c.ephemeral_5m_input_tokens.unwrap_or(0),
                c.ephemeral_1h_input_tokens.unwrap_or(0),
            ));
        }
    }

    /// Our usage: prompt = input + cache reads + cache writes; cached = reads; writes
    /// split 5m/1h (all 5m without the split).
    pub(crate) fn usage(&self) -> Usage {
        let prompt = self
            .input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_creation);
        let (five_m, one_h) = self.cache_split.unwrap_or((self.cache_creation, 0));
        Usage::new(prompt, self.output, UsageSource::Provider)
            .with_cached(self.cache_read)
            .with_cache_writes(five_m, one_h)
    }
}

/// A response content block, read leniently.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResponseBlock {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    Thinking(ThinkingBlock),
    Other,
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Reads a content block (of a response, or a stream's `content_block_start`).
pub(crate) fn response_block(v: &Value) -> ResponseBlock {
    match v.get("type").and_then(Value::as_str) {
        Some("text") => ResponseBlock::Text(str_field(v, "text")),
        Some("tool_use") => ResponseBlock::ToolUse {
            id: str_field(v, "id"),
            name: str_field(v, "name"),
            input: v.get("input").cloned().unwrap_or(Value::Null),
        },
        Some("thinking") => ResponseBlock::Thinking(ThinkingBlock::Thinking {
            thinking: str_field(v, "thinking"),
            signature: str_field(v, "signature"),
        }),
        Some("redacted_thinking") => ResponseBlock::Thinking(ThinkingBlock::RedactedThinking {
            data: str_field(v, "data"),
        }),
        _ => ResponseBlock::Other,
    }
}

/// Tool input as OpenAI's argument string.
pub(crate) fn arguments(input: &Value) -> String {
    if input.is_null() {
        "{}".to_owned()
    } else {
        input.to_string()
    }
}

/// The response's `extra`: `stop_sequence`, `container` and unknown top-level fields.
fn response_extra(stop_sequence: Option<String>, extra: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(s) = stop_sequence {
        out.insert("stop_sequence".into(), Value::String(s));
    }
    for (k, v) in extra {
        if k != "type" && k != "role" && !v.is_null() {
            out.insert(k, v);
        }
    }
    out
}

/// A response from the wire, with usage.
pub(crate) fn messages_response(
    w: wire::MessagesResponse,
    created: u64,
) -> (ChatResponse, Option<Usage>) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    let mut reasoning: Vec<String> = Vec::new();
    for block in &w.content {
        match response_block(block) {
            ResponseBlock::Text(t) => text.push_str(&t),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                extra: Map::new(),
                id,
                kind: "function".to_owned(),
                function: FunctionCall {
                    name,
                    arguments: arguments(&input),
                },
            }),
            ResponseBlock::Thinking(tb) => {
                if let ThinkingBlock::Thinking { thinking, .. } = &tb
                    && !thinking.is_empty()
                {
                    reasoning.push(thinking.clone());
                }
                thinking_blocks.push(tb);
            }
            ResponseBlock::Other => {}
        }
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(Content::Text(text))
    };
    let usage = w.usage.as_ref().map(|u| {
        let mut c = Counts::default();
        c.take(u);
        c.usage()
    });
    let service_tier = w.usage.as_ref().and_then(|u| u.service_tier.clone());
    let mut message = Message::empty(Role::Assistant);
    message.content = content;
    message.tool_calls = tool_calls;
    message.thinking_blocks = thinking_blocks;
    message.reasoning_content = (!reasoning.is_empty()).then(|| reasoning.join("\n\n"));
    let mut choice = ChatChoice::new(0, message, w.stop_reason.as_deref().map(finish_reason));
    if let Some(raw) = w.stop_reason {
        choice
            .extra
            .insert("anthropic_stop_reason".into(), Value::String(raw));
    }
    let mut resp = ChatResponse::new(w.id, w.model, created, vec![choice]);
    resp.service_tier = service_tier;
    resp.extra = response_extra(w.stop_sequence, w.extra);
    (resp, usage)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use llm_tower_core::{FunctionDef, ImageUrl, Stop};

    fn body(req: &ChatRequest) -> Value {
        serde_json::from_slice(&messages_request(req, 1024).unwrap().body).unwrap()
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
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"})
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

    fn req(messages: Vec<Message>) -> ChatRequest {
        ChatRequest::new("claude-sonnet-4-5", messages)
    }

    fn parts(role: Role, parts: Vec<ContentPart>) -> Message {
        let mut m = Message::empty(role);
        m.content = Some(Content::Parts(parts));
        m
    }

    fn with_cc(mut p: ContentPart, cc: Value) -> ContentPart {
        p.extra_mut().unwrap().insert("cache_control".into(), cc);
        p
    }

    fn err(req: &ChatRequest) -> Error {
        messages_request(req, 1024).unwrap_err()
    }

    #[test]
    fn assistant_thinking_blocks_go_first_unchanged() {
        let sig = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/=\"\\u00e9";
        let mut a = assistant_call("toolu_1", "weather", r#"{"city":"Paris"}"#);
        a.content = Some(Content::Text("Checking.".into()));
        a.thinking_blocks = vec![
            ThinkingBlock::Thinking {
                thinking: "I should call the tool.".into(),
                signature: sig.into(),
            },
            ThinkingBlock::RedactedThinking {
                data: "EmwKAhgB".into(),
            },
        ];
        let b = body(&req(vec![Message::user("weather?"), a]));
        assert_eq!(
            b["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "I should call the tool.", "signature": sig},
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ])
        );
        assert_eq!(
            b["messages"][1]["content"][0]["signature"].as_str(),
            Some(sig)
        );
    }

    #[test]
    fn explicit_thinking_is_sent_and_max_tokens_made_room() {
        let mut r = req(vec![Message::user("q")]);
        r.extra.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": 2000}),
        );
        r.temperature = Some(0.2);
        r.extra.insert("top_k".into(), json!(5));
        let b = body(&r);
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": 2000})
        );
        assert_eq!(b["max_tokens"], 1024 + 2000);
        assert!(b.get("temperature").is_none(), "{b}");
        assert!(b.get("top_k").is_none(), "{b}");
        r.max_tokens = Some(5000);
        assert_eq!(body(&r)["max_tokens"], 5000);
        r.extra
            .insert("thinking".into(), json!({"type": "adaptive"}));
        r.top_p = Some(0.9);
        let b = body(&r);
        assert_eq!(b["thinking"], json!({"type": "adaptive"}));
        assert!(b.get("top_p").is_none());
        r.top_p = Some(0.95);
        assert_eq!(body(&r)["top_p"], 0.95);
        r.extra
            .insert("thinking".into(), json!({"type": "disabled"}));
        assert_eq!(body(&r)["temperature"], 0.2);
    }

    #[test]
    fn reasoning_effort_maps_to_a_thinking_budget() {
        for (effort, budget) in [
            ("minimal", 1024),
            ("low", 1024),
            ("medium", 4096),
            ("high", 16_384),
        ] {
            let mut r = req(vec![Message::user("q")]);
            r.extra.insert("reasoning_effort".into(), json!(effort));
            r.temperature = Some(0.5);
            let b = body(&r);
            assert_eq!(
                b["thinking"],
                json!({"type": "enabled", "budget_tokens": budget}),
                "{effort}"
            );
            assert_eq!(b["max_tokens"], 1024 + budget, "{effort}");
            assert!(b.get("reasoning_effort").is_none());
            assert!(b.get("temperature").is_none());
        }
        let mut r = req(vec![Message::user("q")]);
        r.extra.insert("reasoning_effort".into(), json!("none"));
        r.temperature = Some(0.5);
        let b = body(&r);
        assert!(b.get("thinking").is_none());
        assert_eq!(b["temperature"], 0.5);
        // max_tokens that holds the budget is kept.
        r.extra.insert("reasoning_effort".into(), json!("medium"));
        r.max_tokens = Some(10_000);
        let b = body(&r);
        assert_eq!(
            (
                b["max_tokens"].as_u64(),
                b["thinking"]["budget_tokens"].as_u64()
            ),
            (Some(10_000), Some(4096))
        );
        // Too small: the budget shrinks to half of it.
        r.max_tokens = Some(3000);
        let b = body(&r);
        assert_eq!(
            (
                b["max_tokens"].as_u64(),
                b["thinking"]["budget_tokens"].as_u64()
            ),
            (Some(3000), Some(1500))
        );
        // Far too small: the minimum budget, and max_tokens grows by it.
        r.max_tokens = Some(500);
        let b = body(&r);
        assert_eq!(
            (
                b["max_tokens"].as_u64(),
                b["thinking"]["budget_tokens"].as_u64()
            ),
            (Some(1524), Some(1024))
        );
        // An explicit thinking wins.
        r.extra.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": 3000}),
        );
        r.max_tokens = Some(8000);
        assert_eq!(body(&r)["thinking"]["budget_tokens"], 3000);
        r.extra.remove("thinking");
        r.extra.insert("reasoning_effort".into(), json!("extreme"));
        let e = err(&r);
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::InvalidRequest);
        assert_eq!(e.param(), Some("reasoning_effort"));
    }

    #[test]
    fn cache_control_lands_where_it_was_put() {
        let eph = json!({"type": "ephemeral"});
        let hour = json!({"type": "ephemeral", "ttl": "1h"});
        let mut sys2 = Message::system("second system");
        sys2.extra.insert("cache_control".into(), hour.clone());
        let mut user = parts(
            Role::User,
            vec![
                with_cc(ContentPart::text("doc"), eph.clone()),
                ContentPart::text("question"),
            ],
        );
        user.extra.insert("cache_control".into(), hour.clone());
        let mut plain_user = Message::user("again");
        plain_user.extra.insert("cache_control".into(), eph.clone());
        let mut tool = Tool::function(FunctionDef::new("f"));
        tool.extra.insert("cache_control".into(), eph.clone());
        let mut r = req(vec![
            parts(
                Role::System,
                vec![
                    ContentPart::text("a"),
                    with_cc(ContentPart::text("b"), eph.clone()),
                ],
            ),
            sys2,
            user,
            Message::assistant("ok"),
            plain_user,
        ]);
        r.tools = vec![Tool::function(FunctionDef::new("g")), tool];
        let b = body(&r);
        assert_eq!(
            b["system"],
            json!([
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": eph},
                {"type": "text", "text": "second system", "cache_control": hour},
            ])
        );
        assert_eq!(
            b["messages"][0]["content"],
            json!([
                {"type": "text", "text": "doc", "cache_control": eph},
                {"type": "text", "text": "question", "cache_control": hour},
            ])
        );
        assert_eq!(
            b["messages"][2]["content"],
            json!([{"type": "text", "text": "again", "cache_control": eph}])
        );
        assert!(b["tools"][0].get("cache_control").is_none());
        assert_eq!(b["tools"][1]["cache_control"], eph);
        // Without cache_control plain system messages stay one string; a system given as
        // parts (Anthropic's block form) keeps its blocks.
        let b = body(&req(vec![
            Message::system("a"),
            Message::system("c"),
            Message::user("q"),
        ]));
        assert_eq!(b["system"], "a\n\nc");
        let b = body(&req(vec![
            parts(
                Role::System,
                vec![ContentPart::text("a"), ContentPart::text("b")],
            ),
            Message::user("q"),
        ]));
        assert_eq!(
            b["system"],
            json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])
        );
    }

    #[test]
    fn files_raw_parts_audio_and_part_extras() {
        let file = |data: Option<&str>, id: Option<&str>, name: Option<&str>| ContentPart::File {
            file: FileData {
                file_id: id.map(Into::into),
                file_data: data.map(Into::into),
                filename: name.map(Into::into),
                extra: Map::new(),
            },
            extra: Map::new(),
        };
        let mut img = ContentPart::image_url("https://example.invalid/a.png");
        img.extra_mut()
            .unwrap()
            .insert("openai_only".into(), json!(1));
        let search = json!({"type": "search_result", "source": "https://x.invalid", "title": "t",
            "content": [{"type": "text", "text": "r"}], "citations": {"enabled": true}});
        let b = body(&req(vec![parts(
            Role::User,
            vec![
                file(
                    Some("data:application/pdf;base64,JVBERi0x"),
                    None,
                    Some("paper.pdf"),
                ),
                file(Some("data:text/plain;base64,aGVsbG8gw6k="), None, None),
                file(None, Some("file_011CNha8iCJcU1wXNR6q4V8w"), None),
                file(Some("JVBERi0y"), None, None),
                file(Some("data:image/png;base64,iVBO"), None, None),
                ContentPart::Other(search.clone()),
                img,
            ],
        )]));
        assert_eq!(
            b["messages"][0]["content"],
            json!([
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}, "title": "paper.pdf"},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello é"}},
                {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0y"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
                search,
                {"type": "image", "source": {"type": "url", "url": "https://example.invalid/a.png"}},
            ])
        );
        let audio = ContentPart::InputAudio {
            input_audio: llm_tower_core::InputAudio {
                data: "AAAA".into(),
                format: "wav".into(),
                extra: Map::new(),
            },
            extra: Map::new(),
        };
        let e = err(&req(vec![
            Message::user("q"),
            parts(Role::User, vec![audio]),
        ]));
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::InvalidRequest);
        assert!(
            e.message()
                .contains("Anthropic does not accept audio input"),
            "{e}"
        );
        assert_eq!(e.param(), Some("messages[1].content[0]"));
        let e = err(&req(vec![parts(
            Role::User,
            vec![ContentPart::Other(json!({"type": "video_url", "url": "x"}))],
        )]));
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::InvalidRequest);
        let e = err(&req(vec![parts(
            Role::User,
            vec![file(Some("data:application/zip;base64,UEs="), None, None)],
        )]));
        assert_eq!(e.kind(), llm_tower_core::ErrorKind::InvalidRequest);
    }

    #[test]
    fn tool_results_carry_parts_and_is_error() {
        let mut t = parts(
            Role::Tool,
            vec![
                ContentPart::text("chart:"),
                ContentPart::image_url("data:image/png;base64,iVBO"),
            ],
        );
        t.tool_call_id = Some("toolu_1".into());
        t.extra.insert("is_error".into(), json!(true));
        let b = body(&req(vec![
            Message::user("q"),
            assistant_call("toolu_1", "chart", "{}"),
            t,
        ]));
        assert_eq!(
            b["messages"][2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true, "content": [
                {"type": "text", "text": "chart:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
            ]})
        );
    }

    #[test]
    fn anthropic_tools_pass_through_and_anthropic_tool_choice_wins() {
        let web: Tool = serde_json::from_value(
            json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 3}),
        )
        .unwrap();
        let custom: Tool = serde_json::from_value(json!({"type": "custom", "name": "c",
            "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}))
        .unwrap();
        let bash: Tool =
            serde_json::from_value(json!({"type": "bash_20250124", "name": "bash"})).unwrap();
        let mut r = req(vec![Message::user("q")]);
        r.tools = vec![web, custom, bash];
        r.tool_choice = Some(json!("required"));
        r.extra.insert(
            "anthropic_tool_choice".into(),
            json!({"type": "tool", "name": "web_search", "disable_parallel_tool_use": true}),
        );
        let b = body(&r);
        assert_eq!(
            b["tools"],
            json!([
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
                {"type": "custom", "name": "c", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                {"type": "bash_20250124", "name": "bash"},
            ])
        );
        assert_eq!(
            b["tool_choice"],
            json!({"type": "tool", "name": "web_search", "disable_parallel_tool_use": true})
        );
        assert!(b.get("anthropic_tool_choice").is_none());
        // OpenAI's custom tools are not Anthropic's.
        let openai_custom: Tool =
            serde_json::from_value(json!({"type": "custom", "custom": {"name": "x"}})).unwrap();
        r.tools = vec![openai_custom];
        let e = err(&r);
        assert_eq!(e.param(), Some("tools[0]"));
    }

    #[test]
    fn openai_fields_are_mapped_or_dropped() {
        let mut r = req(vec![Message::system("sys"), Message::user("q")]);
        for (k, v) in [
            ("service_tier", json!("auto")),
            ("verbosity", json!("low")),
            ("prompt_cache_key", json!("k")),
            ("metadata", json!({"user_id": "u-meta", "team": "a"})),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("store", json!(true)),
            ("modalities", json!(["text"])),
            ("audio", json!({"voice": "alloy"})),
            ("prediction", json!({"type": "content", "content": "x"})),
            ("web_search_options", json!({})),
            ("parallel_tool_calls", json!(true)),
            ("anthropic_beta", json!(["files-api-2025-04-14"])),
            ("top_k", json!(3)),
        ] {
            r.extra.insert(k.into(), v);
        }
        r.seed = Some(1);
        r.presence_penalty = Some(0.1);
        r.frequency_penalty = Some(0.1);
        r.response_format = Some(json!({"type": "json_object"}));
        let w = messages_request(&r, 1024).unwrap();
        assert_eq!(w.betas, ["files-api-2025-04-14"]);
        let b: Value = serde_json::from_slice(&w.body).unwrap();
        let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "max_tokens",
                "messages",
                "metadata",
                "model",
                "service_tier",
                "system",
                "top_k"
            ]
        );
        assert_eq!(b["service_tier"], "auto");
        assert_eq!(b["metadata"], json!({"user_id": "u-meta"}));
        assert_eq!(b["system"], format!("sys\n\n{JSON_OBJECT_INSTRUCTION}"));
        r.extra.insert("service_tier".into(), json!("flex"));
        r.user = Some("u-user".into());
        r.response_format = Some(
            json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
        );
        let b = body(&r);
        assert!(b.get("service_tier").is_none());
        assert_eq!(b["metadata"], json!({"user_id": "u-user"}));
        assert_eq!(b["system"], "sys");
        assert_eq!(
            b["output_config"],
            json!({"format": {"type": "json_schema", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}})
        );
        r.response_format = Some(json!({"type": "grammar"}));
        assert_eq!(err(&r).param(), Some("response_format"));
        r.response_format = None;
        r.n = Some(3);
        assert_eq!(err(&r).param(), Some("n"));
    }

    #[test]
    fn betas_merge_without_duplicates() {
        assert_eq!(
            merge_betas(
                &["a".into(), "b, c".into()],
                &["c".into(), "d".into(), " ".into()]
            ),
            ["a", "b", "c", "d"]
        );
    }

    #[test]
    fn response_thinking_extras_and_cache_tiers() {
        let w: wire::MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "first", "signature": "sig1"},
                {"type": "redacted_thinking", "data": "enc"},
                {"type": "thinking", "thinking": "second", "signature": "sig2"},
                {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}},
                {"type": "text", "text": 5},
                {"type": "text", "text": "done"}
            ],
            "stop_reason": "pause_turn", "stop_sequence": "END",
            "container": {"id": "c1", "expires_at": "2026-01-01T00:00:00Z"},
            "brand_new": [1],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 30,
                      "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
                      "service_tier": "priority"}
        }))
        .unwrap();
        let (r, u) = messages_response(w, 7);
        let c = &r.choices[0];
        assert_eq!(c.message.text(), "done");
        assert_eq!(
            c.message.reasoning_content.as_deref(),
            Some("first\n\nsecond")
        );
        assert_eq!(
            c.message.thinking_blocks,
            [
                ThinkingBlock::Thinking {
                    thinking: "first".into(),
                    signature: "sig1".into()
                },
                ThinkingBlock::RedactedThinking { data: "enc".into() },
                ThinkingBlock::Thinking {
                    thinking: "second".into(),
                    signature: "sig2".into()
                },
            ]
        );
        assert_eq!(c.finish_reason.as_deref(), Some("pause_turn"));
        assert_eq!(c.extra["anthropic_stop_reason"], "pause_turn");
        assert_eq!(r.extra["stop_sequence"], "END");
        assert_eq!(r.extra["container"]["id"], "c1");
        assert_eq!(r.extra["brand_new"], json!([1]));
        assert!(r.extra.get("type").is_none() && r.extra.get("role").is_none());
        assert_eq!(r.service_tier.as_deref(), Some("priority"));
        let u = u.unwrap();
        assert_eq!(
            (
                u.prompt_tokens,
                u.cached_prompt_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens
            ),
            (140, 100, 10, 20)
        );
        // Without the split every write is a 5-minute one.
        let mut c = Counts::default();
        c.take(
            &serde_json::from_value(json!({"input_tokens": 1, "cache_creation_input_tokens": 9}))
                .unwrap(),
        );
        let u = c.usage();
        assert_eq!(
            (
                u.prompt_tokens,
                u.cache_write_5m_tokens,
                u.cache_write_1h_tokens
            ),
            (10, 9, 0)
        );
        assert_eq!(finish_reason("refusal"), "content_filter");
        assert_eq!(finish_reason("model_context_window_exceeded"), "length");
    }
}
