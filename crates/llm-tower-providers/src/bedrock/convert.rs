//! Core chat requests to Converse requests, Converse responses to core responses, and the
//! InvokeModel embeddings bodies of Titan and Cohere.

use base64::Engine as _;
use llm_tower_core::{
    ChatChoice, ChatRequest, ChatResponse, Content, ContentPart, EmbeddingInput, FileData,
    FunctionCall, Message, Role, Stop, ThinkingBlock, Tool, ToolCall, Usage, UsageSource,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use llm_tower_core::Error;

/// Top-level Converse fields taken from the request's `extra` as they are.
pub(crate) const PASSTHROUGH: &[&str] = &[
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
    "additionalModelResponseFieldPaths",
    "serviceTier",
];

fn has_cache_control(extra: &Map<String, Value>) -> bool {
    extra.contains_key("cache_control")
}

fn cache_point() -> Value {
    json!({"cachePoint": {"type": "default"}})
}

/// A Converse request body, and the name of the tool that stands for `response_format`
/// (its `toolUse` input is the answer's JSON text).
#[derive(Debug)]
pub(crate) struct ConverseBody {
    pub body: Value,
    pub json_tool: Option<String>,
}

/// The Converse body of a chat request (`stream` changes nothing in the body).
pub(crate) fn converse_request(chat: &ChatRequest) -> Result<ConverseBody, Error> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(
            Error::invalid_request("Bedrock returns one choice; n must be 1").with_param("n"),
        );
    }
    let mut system: Vec<Value> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in chat.messages.iter().enumerate() {
        let path = format!("messages[{i}]");
        match m.role {
            Role::System | Role::Developer => {
                system_blocks(m, &path, &mut system)?;
            }
            Role::User => {
                let mut blocks = content_blocks(m.content.as_ref(), &path)?;
                if has_cache_control(&m.extra) {
                    blocks.push(cache_point());
                }
                push(&mut turns, "user", blocks);
            }
            Role::Assistant => {
                let mut blocks: Vec<Value> = m.thinking_blocks.iter().map(thinking_block).collect();
                blocks.extend(content_blocks(m.content.as_ref(), &path)?);
                for (j, tc) in m.tool_calls.iter().enumerate() {
                    let input = tool_input(&tc.function.arguments).map_err(|e| {
                        e.with_param(format!("{path}.tool_calls[{j}].function.arguments"))
                    })?;
                    blocks.push(json!({"toolUse": {
                        "toolUseId": tc.id, "name": tc.function.name, "input": input,
                    }}));
                }
                if has_cache_control(&m.extra) {
                    blocks.push(cache_point());
                }
                push(&mut turns, "assistant", blocks);
            }
            Role::Tool => {
                let Some(id) = m.tool_call_id.as_deref().filter(|s| !s.is_empty()) else {
                    return Err(Error::invalid_request(format!(
                        "{path}.tool_call_id: required for tool messages"
                    ))
                    .with_param(format!("{path}.tool_call_id")));
                };
                let mut result = json!({
                    "toolUseId": id,
                    "content": tool_result_content(m.content.as_ref(), &path)?,
                });
                if let Some(status) = m.extra.get("status").and_then(Value::as_str)
                    && let Some(o) = result.as_object_mut()
                {
                    o.insert("status".into(), Value::String(status.to_owned()));
                }
                let mut blocks = vec![json!({"toolResult": result})];
                if has_cache_control(&m.extra) {
                    blocks.push(cache_point());
                }
                push(&mut turns, "user", blocks);
            }
        }
    }
    let mut body = Map::new();
    body.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(n) = chat.max_tokens {
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = chat.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = chat.top_p {
        inference.insert("topP".into(), json!(p));
    }
    match &chat.stop {
        Some(Stop::One(s)) => {
            inference.insert("stopSequences".into(), json!([s]));
        }
        Some(Stop::Many(v)) if !v.is_empty() => {
            inference.insert("stopSequences".into(), json!(v));
        }
        _ => {}
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    let json_tool = response_format_tool(chat)?;
    if !chat.tools.is_empty() || json_tool.is_some() {
        let mut specs = tools(&chat.tools)?;
        let mut choice = tool_choice(chat.tool_choice.as_ref())?;
        if let Some((name, spec)) = &json_tool {
            specs.push(spec.clone());
            // Alone, the schema's tool is forced; next to the caller's tools the model
            // must call one of them (the caller's tool_choice, when given, wins).
            if chat.tools.is_empty() {
                choice = Some(json!({"tool": {"name": name}}));
            } else if choice.is_none() {
                choice = Some(json!({"any": {}}));
            }
        }
        let mut tc = Map::new();
        tc.insert("tools".into(), Value::Array(specs));
        if let Some(choice) = choice {
            tc.insert("toolChoice".into(), choice);
        }
        body.insert("toolConfig".into(), Value::Object(tc));
    }
    let additional = additional_fields(chat)?;
    if is_anthropic(&chat.model) {
        claude_thinking_limits(&additional, &mut body);
    }
    if !additional.is_empty() {
        body.insert(
            "additionalModelRequestFields".into(),
            Value::Object(additional),
        );
    }
    for k in PASSTHROUGH {
        if let Some(v) = chat.extra.get(*k) {
            body.insert((*k).to_owned(), v.clone());
        }
    }
    Ok(ConverseBody {
        body: Value::Object(body),
        json_tool: json_tool.map(|(name, _)| name),
    })
}

/// The tool name made of a schema name: Bedrock takes `[a-zA-Z0-9_-]{1,64}`.
fn tool_name_of(schema_name: Option<&str>) -> String {
    let name: String = schema_name
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "json_response".to_owned()
    } else {
        name
    }
}

/// `response_format` as Converse has no such field: `json_schema` becomes a tool named
/// after the schema whose input schema is the schema (the caller's `toolSpec` and the
/// tool's name are returned); `text` is the default; `json_object` has no faithful
/// mapping (no schema to force) and is refused.
fn response_format_tool(chat: &ChatRequest) -> Result<Option<(String, Value)>, Error> {
    let Some(rf) = chat.response_format.as_ref().filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = |msg: &str| Error::invalid_request(msg.to_owned()).with_param("response_format");
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_schema") => {
            let js = rf.get("json_schema").ok_or_else(|| {
                bad("response_format: json_schema needs a json_schema object with a schema")
            })?;
            let schema = js.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
                bad("response_format.json_schema.schema: required, a JSON schema object")
            })?;
            let name = tool_name_of(js.get("name").and_then(Value::as_str));
            if chat
                .tools
                .iter()
                .any(|t| t.function.as_ref().is_some_and(|f| f.name == name))
            {
                return Err(bad(&format!(
                    "response_format: the schema name {name:?} is also the name of a tool; rename one"
                )));
            }
            let description = js
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("Respond with the answer as the input of this tool, as JSON that matches its schema.");
            let spec = json!({"toolSpec": {
                "name": name,
                "description": description,
                "inputSchema": {"json": schema},
            }});
            Ok(Some((name, spec)))
        }
        Some("json_object") => Err(bad(
            "response_format: Bedrock's Converse API has no JSON mode; use {\"type\": \"json_schema\"} with a schema",
        )),
        _ => Err(bad(
            "response_format: expected type text or json_schema (json_object is not supported by Bedrock)",
        )),
    }
}

/// `additionalModelRequestFields`: the request's own, plus thinking.
fn additional_fields(chat: &ChatRequest) -> Result<Map<String, Value>, Error> {
    let mut out = match chat.extra.get("additionalModelRequestFields") {
        Some(Value::Object(o)) => o.clone(),
        Some(_) => {
            return Err(
                Error::invalid_request("additionalModelRequestFields must be an object")
                    .with_param("additionalModelRequestFields"),
            );
        }
        None => Map::new(),
    };
    if let Some(t) = chat.extra.get("thinking") {
        out.insert("thinking".into(), t.clone());
    } else if let Some(effort) = chat.extra.get("reasoning_effort").and_then(Value::as_str) {
        if is_anthropic(&chat.model) {
            if let Some(budget) = crate::anthropic::convert::effort_budget(effort)
                .map_err(|e| e.with_param("reasoning_effort"))?
            {
                out.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": budget}),
                );
            }
        } else {
            out.insert("reasoning_effort".into(), Value::String(effort.to_owned()));
        }
    }
    if let Some(k) = chat.extra.get("top_k") {
        out.entry("top_k").or_insert_with(|| k.clone());
    }
    Ok(out)
}

/// With Claude's extended thinking on, Bedrock (as Anthropic) refuses `temperature`,
/// `topP` below 0.95 and a `maxTokens` not above the thinking budget: the first two are
/// not sent, and `maxTokens` becomes budget + `maxTokens`.
fn claude_thinking_limits(additional: &Map<String, Value>, body: &mut Map<String, Value>) {
    let Some(budget) = additional
        .get("thinking")
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("enabled"))
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64)
    else {
        return;
    };
    let Some(Value::Object(inf)) = body.get_mut("inferenceConfig") else {
        return;
    };
    inf.remove("temperature");
    if inf
        .get("topP")
        .and_then(Value::as_f64)
        .is_some_and(|p| p < 0.95)
    {
        inf.remove("topP");
    }
    if let Some(m) = inf.get("maxTokens").and_then(Value::as_u64)
        && m <= budget
    {
        inf.insert("maxTokens".into(), json!(budget.saturating_add(m)));
    }
    if inf.is_empty() {
        body.remove("inferenceConfig");
    }
}

/// Anthropic's models on Bedrock: `anthropic.claude-...`, `us.anthropic.claude-...`, ARNs.
fn is_anthropic(model: &str) -> bool {
    model.contains("anthropic.") || model.contains("claude")
}

fn push(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((r, b)) if *r == role => b.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

fn system_blocks(m: &Message, path: &str, out: &mut Vec<Value>) -> Result<(), Error> {
    match &m.content {
        None => {}
        Some(Content::Text(t)) if !t.is_empty() => out.push(json!({"text": t})),
        Some(Content::Text(_)) => {}
        Some(Content::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                match p {
                    ContentPart::Text { text, extra } => {
                        out.push(json!({"text": text}));
                        if has_cache_control(extra) {
                            out.push(cache_point());
                        }
                    }
                    _ => {
                        return Err(Error::invalid_request(format!(
                            "{path}.content[{j}]: system messages hold only text"
                        ))
                        .with_param(format!("{path}.content[{j}]")));
                    }
                }
            }
        }
    }
    if has_cache_control(&m.extra) {
        out.push(cache_point());
    }
    Ok(())
}

fn content_blocks(content: Option<&Content>, path: &str) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    match content {
        None => {}
        Some(Content::Text(t)) if !t.is_empty() => out.push(json!({"text": t})),
        Some(Content::Text(_)) => {}
        Some(Content::Parts(parts)) => {
            for (j, p) in parts.iter().enumerate() {
                let at = format!("{path}.content[{j}]");
                let block = match p {
                    ContentPart::Text { text, .. } => json!({"text": text}),
                    ContentPart::ImageUrl { image_url, .. } => {
                        image_block(&image_url.url).map_err(|e| e.with_param(at.clone()))?
                    }
                    ContentPart::File { file, .. } => {
                        document_block(file, j).map_err(|e| e.with_param(at.clone()))?
                    }
                    ContentPart::InputAudio { .. } => {
                        return Err(Error::invalid_request(format!(
                            "{at}: Bedrock's Converse API takes no audio input"
                        ))
                        .with_param(at));
                    }
                    ContentPart::Other(v) => v.clone(),
                    #[allow(unreachable_patterns)]
                    _ => {
                        return Err(Error::invalid_request(format!(
                            "{at}: unsupported content part"
                        ))
                        .with_param(at));
                    }
                };
                out.push(block);
                if p.extra().is_some_and(has_cache_control) {
                    out.push(cache_point());
                }
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

fn image_block(url: &str) -> Result<Value, Error> {
    let Some((mt, base64, data)) = data_url(url) else {
        return Err(Error::invalid_request(
            "Bedrock takes images as data: URLs (base64), not links",
        ));
    };
    if !base64 {
        return Err(Error::invalid_request(
            "image data URLs must be base64-encoded",
        ));
    }
    let format = match mt.split(';').next().unwrap_or_default().trim() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(Error::invalid_request(format!(
                "Bedrock takes png, jpeg, gif and webp images, not {other:?}"
            )));
        }
    };
    Ok(json!({"image": {"format": format, "source": {"bytes": data.trim()}}}))
}

/// A file part -> a `document` block (`name` made of the characters Bedrock allows).
fn document_block(file: &FileData, index: usize) -> Result<Value, Error> {
    let Some(data) = &file.file_data else {
        return Err(Error::invalid_request(
            "Bedrock needs the file's bytes (file_data); uploaded file ids are not supported",
        ));
    };
    let (format, bytes) = match data_url(data) {
        Some((mt, true, d)) => {
            let mt = mt.split(';').next().unwrap_or_default().trim();
            let f = doc_format(mt).ok_or_else(|| {
                Error::invalid_request(format!("Bedrock takes no documents of type {mt:?}"))
            })?;
            (f, d.trim().to_owned())
        }
        Some((mt, false, d)) => {
            let mt = mt.split(';').next().unwrap_or_default().trim();
            let f = doc_format(mt).ok_or_else(|| {
                Error::invalid_request(format!("Bedrock takes no documents of type {mt:?}"))
            })?;
            (f, base64::engine::general_purpose::STANDARD.encode(d))
        }
        // Bare base64: OpenAI's file inputs are PDFs, unless the file name says otherwise.
        None => {
            let ext = file
                .filename
                .as_deref()
                .and_then(|n| n.rsplit_once('.'))
                .map(|(_, e)| e.to_ascii_lowercase());
            let f = match ext.as_deref() {
                Some(
                    e @ ("pdf" | "csv" | "doc" | "docx" | "xls" | "xlsx" | "html" | "txt" | "md"),
                ) => doc_ext(e),
                _ => "pdf",
            };
            (f, data.trim().to_owned())
        }
    };
    let name = document_name(file.filename.as_deref(), index);
    Ok(json!({"document": {"format": format, "name": name, "source": {"bytes": bytes}}}))
}

fn doc_ext(e: &str) -> &'static str {
    match e {
        "csv" => "csv",
        "doc" => "doc",
        "docx" => "docx",
        "xls" => "xls",
        "xlsx" => "xlsx",
        "html" => "html",
        "txt" => "txt",
        "md" => "md",
        _ => "pdf",
    }
}

fn doc_format(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "application/pdf" => "pdf",
        "text/csv" => "csv",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "text/html" => "html",
        "text/plain" => "txt",
        "text/markdown" => "md",
        _ => return None,
    })
}

/// Bedrock allows letters, digits, single spaces, hyphens, parentheses and brackets.
fn document_name(filename: Option<&str>, index: usize) -> String {
    let stem = filename
        .map(|n| n.rsplit_once('.').map_or(n, |(s, _)| s))
        .unwrap_or_default();
    let mut out = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || "-()[]".contains(c) {
            c
        } else {
            ' '
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
        if out.len() >= 200 {
            break;
        }
    }
    let out = out.trim_end().to_owned();
    if out.is_empty() {
        format!("document-{}", index + 1)
    } else {
        out
    }
}

fn thinking_block(tb: &ThinkingBlock) -> Value {
    match tb {
        ThinkingBlock::Thinking {
            thinking,
            signature,
        } => {
            let mut rt = json!({"text": thinking});
            if let (Some(o), false) = (rt.as_object_mut(), signature.is_empty()) {
                o.insert("signature".into(), Value::String(signature.clone()));
            }
            json!({"reasoningContent": {"reasoningText": rt}})
        }
        ThinkingBlock::RedactedThinking { data } => {
            json!({"reasoningContent": {"redactedContent": data}})
        }
    }
}

fn tool_input(arguments: &str) -> Result<Value, Error> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments)
        .map_err(|_| Error::invalid_request("tool call arguments must be JSON"))
}

/// A tool message's content: a JSON object or array as `{json}`, anything else as text.
fn tool_result_content(content: Option<&Content>, path: &str) -> Result<Vec<Value>, Error> {
    let one = |t: &str| match serde_json::from_str::<Value>(t) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => json!({"json": v}),
        _ => json!({"text": t}),
    };
    Ok(match content {
        None => vec![json!({"text": ""})],
        Some(Content::Text(t)) => vec![one(t)],
        Some(Content::Parts(parts)) => {
            let mut out = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                match p {
                    ContentPart::Text { text, .. } => out.push(one(text)),
                    ContentPart::ImageUrl { image_url, .. } => out.push(
                        image_block(&image_url.url)
                            .map_err(|e| e.with_param(format!("{path}.content[{j}]")))?,
                    ),
                    ContentPart::Other(v) => out.push(v.clone()),
                    _ => {
                        return Err(Error::invalid_request(format!(
                            "{path}.content[{j}]: tool results hold text, JSON and images"
                        ))
                        .with_param(format!("{path}.content[{j}]")));
                    }
                }
            }
            out
        }
    })
}

fn tools(tools: &[Tool]) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let Some(f) = &t.function else {
            return Err(Error::invalid_request(format!(
                "tools[{i}]: Bedrock takes function tools only, not {:?}",
                t.kind
            ))
            .with_param(format!("tools[{i}]")));
        };
        let mut spec = Map::new();
        spec.insert("name".into(), Value::String(f.name.clone()));
        if let Some(d) = &f.description {
            spec.insert("description".into(), Value::String(d.clone()));
        }
        let schema = f
            .parameters
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        spec.insert("inputSchema".into(), json!({"json": schema}));
        out.push(json!({"toolSpec": spec}));
        if has_cache_control(&t.extra) {
            out.push(cache_point());
        }
    }
    Ok(out)
}

/// OpenAI's `tool_choice` -> Converse's; `none` sends no choice (Converse has none, and
/// a conversation with tool calls needs the tools).
fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, Error> {
    let bad = || {
        Error::invalid_request("tool_choice: expected auto, required, none or a named function")
            .with_param("tool_choice")
    };
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Some(json!({"auto": {}})),
            "required" | "any" => Some(json!({"any": {}})),
            "none" => None,
            _ => return Err(bad()),
        },
        Some(Value::Object(o)) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            Some(json!({"tool": {"name": name}}))
        }
        Some(_) => return Err(bad()),
    })
}

/// Converse's `stopReason` -> OpenAI's `finish_reason`.
pub(crate) fn finish_reason(stop: &str) -> String {
    match stop {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        other => other,
    }
    .to_owned()
}

/// Converse's token counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
}

impl WireUsage {
    /// Prompt tokens = input + cache reads + cache writes (Bedrock reports them apart).
    pub fn usage(&self) -> Usage {
        let prompt = self
            .input_tokens
            .saturating_add(self.cache_read_input_tokens)
            .saturating_add(self.cache_write_input_tokens);
        Usage::new(prompt, self.output_tokens, UsageSource::Provider)
            .with_cached(self.cache_read_input_tokens)
            .with_cache_writes(self.cache_write_input_tokens, 0)
    }
}

/// A Converse response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConverseResponse {
    #[serde(default)]
    pub output: Option<Output>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<WireUsage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Output {
    #[serde(default)]
    pub message: Option<OutputMessage>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct OutputMessage {
    #[serde(default)]
    pub content: Vec<Value>,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

/// Tool input as OpenAI's argument string.
fn arguments(input: Option<&Value>) -> String {
    match input {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(v) => v.to_string(),
    }
}

/// A Converse response as a chat response, with usage. The input of a call to
/// `json_tool` (the tool standing for `response_format`) becomes the message's text, and
/// the call's `tool_use` stop a `stop`.
pub(crate) fn converse_response(
    w: ConverseResponse,
    id: String,
    model: &str,
    created: u64,
    json_tool: Option<&str>,
) -> (ChatResponse, Option<Usage>) {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    let mut reasoning: Vec<String> = Vec::new();
    let mut answered_in_json = false;
    let mut json_text = String::new();
    let blocks = w
        .output
        .and_then(|o| o.message)
        .map(|m| m.content)
        .unwrap_or_default();
    for b in &blocks {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.push_str(t);
        } else if let Some(tu) = b.get("toolUse")
            && json_tool.is_some()
            && str_at(tu, &["name"]) == json_tool
        {
            answered_in_json = true;
            json_text.push_str(&arguments(tu.get("input")));
        } else if let Some(tu) = b.get("toolUse") {
            tool_calls.push(ToolCall {
                extra: Map::new(),
                id: str_at(tu, &["toolUseId"]).unwrap_or_default().to_owned(),
                kind: "function".to_owned(),
                function: FunctionCall {
                    name: str_at(tu, &["name"]).unwrap_or_default().to_owned(),
                    arguments: arguments(tu.get("input")),
                },
            });
        } else if let Some(rc) = b.get("reasoningContent") {
            if let Some(rt) = rc.get("reasoningText") {
                let thinking = str_at(rt, &["text"]).unwrap_or_default().to_owned();
                if !thinking.is_empty() {
                    reasoning.push(thinking.clone());
                }
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking,
                    signature: str_at(rt, &["signature"]).unwrap_or_default().to_owned(),
                });
            } else if let Some(data) = rc.get("redactedContent").and_then(Value::as_str) {
                thinking_blocks.push(ThinkingBlock::RedactedThinking {
                    data: data.to_owned(),
                });
            }
        }
    }
    // The answer is the JSON alone (no prose around it).
    if answered_in_json {
        text = json_text;
    }
    let content = if text.is_empty() && !tool_calls.is_empty() {
        None
    } else {
        Some(Content::Text(text))
    };
    let mut message = Message::empty(Role::Assistant);
    message.content = content;
    message.tool_calls = tool_calls;
    message.thinking_blocks = thinking_blocks;
    message.reasoning_content = (!reasoning.is_empty()).then(|| reasoning.join("\n\n"));
    let finish = match w.stop_reason.as_deref() {
        Some("tool_use") if answered_in_json && message.tool_calls.is_empty() => {
            Some("stop".to_owned())
        }
        other => other.map(finish_reason),
    };
    let mut choice = ChatChoice::new(0, message, finish);
    if let Some(raw) = w.stop_reason {
        choice
            .extra
            .insert("bedrock_stop_reason".into(), Value::String(raw));
    }
    let mut resp = ChatResponse::new(id, model.to_owned(), created, vec![choice]);
    resp.extra = w.extra;
    (resp, w.usage.map(|u| u.usage()))
}

/// Which InvokeModel body an embeddings model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EmbeddingFamily {
    /// `amazon.titan-embed-*`: one text per call.
    Titan,
    /// `cohere.embed-*`: a batch of texts.
    Cohere,
}

pub(crate) fn embedding_family(model: &str) -> Option<EmbeddingFamily> {
    if model.contains("titan-embed") {
        Some(EmbeddingFamily::Titan)
    } else if model.contains("cohere.embed") {
        Some(EmbeddingFamily::Cohere)
    } else {
        None
    }
}

/// The texts of an embeddings input.
pub(crate) fn embedding_texts(input: &EmbeddingInput) -> Result<Vec<String>, Error> {
    match input {
        EmbeddingInput::One(s) => Ok(vec![s.clone()]),
        EmbeddingInput::Many(v) => Ok(v.clone()),
        _ => Err(
            Error::invalid_request("Bedrock embeddings take text, not token arrays")
                .with_param("input"),
        ),
    }
}

/// Titan's response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TitanResponse {
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub input_text_token_count: u64,
}

/// Cohere's response: `embeddings` as a list of vectors, or by type (`{"float": [...]}`).
#[derive(Debug, Deserialize)]
pub(crate) struct CohereResponse {
    pub embeddings: CohereEmbeddings,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum CohereEmbeddings {
    Plain(Vec<Vec<f32>>),
    ByType { float: Vec<Vec<f32>> },
}

impl CohereEmbeddings {
    pub fn into_vectors(self) -> Vec<Vec<f32>> {
        match self {
            CohereEmbeddings::Plain(v) | CohereEmbeddings::ByType { float: v } => v,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn claude_thinking_drops_sampling_and_raises_max_tokens() {
        let mut req = ChatRequest::new(
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            vec![Message::user("hi")],
        );
        req.max_tokens = Some(500);
        req.temperature = Some(0.2);
        req.top_p = Some(0.99);
        req.extra.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": 2000}),
        );
        let body = converse_request(&req).unwrap().body;
        assert_eq!(
            body["inferenceConfig"],
            json!({"maxTokens": 2500, "topP": 0.99})
        );
        assert_eq!(
            body["additionalModelRequestFields"],
            json!({"thinking": {"type": "enabled", "budget_tokens": 2000}})
        );
        // Other models keep their sampling and get reasoning_effort as is.
        let mut req = ChatRequest::new("openai.gpt-oss-120b-1:0", vec![Message::user("hi")]);
        req.temperature = Some(0.2);
        req.extra.insert("reasoning_effort".into(), json!("high"));
        let body = converse_request(&req).unwrap().body;
        assert_eq!(body["inferenceConfig"], json!({"temperature": 0.2}));
        assert_eq!(
            body["additionalModelRequestFields"],
            json!({"reasoning_effort": "high"})
        );
    }

    #[test]
    fn hostile_responses_do_not_panic() {
        for text in [
            r#"{"output": {"message": {"content": [{"toolUse": 5}, {"reasoningContent": []}, null, {"text": 3}]}}}"#,
            r#"{"output": null, "usage": {"inputTokens": 18446744073709551615, "cacheReadInputTokens": 18446744073709551615}}"#,
            r#"{}"#,
        ] {
            let w: ConverseResponse = serde_json::from_str(text).unwrap();
            let _ = converse_response(w, "id".into(), "m", 0, Some("json_response"));
        }
    }
}
