//! A Responses API request (`POST /v1/responses`) translated into a chat request.

use std::borrow::Cow;
use std::fmt::Display;

use llm_tower_core::{
    ChatRequest, Content, ContentPart, FileData, FunctionDef, ImageUrl, InputAudio, Message, Role,
    ThinkingBlock, Tool, ToolCall,
};
use serde_json::{Map, Value, json};

use crate::openai_error::OpenAiError;

/// The prefix of the `encrypted_content` of a reasoning item the gateway made from
/// Anthropic thinking blocks (JSON after it); such items come back as the blocks.
pub(crate) const THINKING_PREFIX: &str = "llm-tower.thinking.v1:";

/// A 400 naming `param`.
pub(crate) fn bad(param: impl Into<String>, message: impl Display) -> OpenAiError {
    let param = param.into();
    OpenAiError::bad_request(format!("{param}: {message}"), Some(Cow::Owned(param)))
}

/// The first feature of a request that the chat translation cannot carry: the request
/// goes on (a provider that speaks the Responses API natively serves it whole), and every
/// other provider refuses it naming the field (see `ResponsesBody::check_translatable`).
#[derive(Debug, Default)]
pub(crate) struct Untranslatable(pub Option<(String, String)>);

impl Untranslatable {
    fn note(&mut self, param: impl Into<String>, what: impl Display) {
        if self.0.is_none() {
            self.0 = Some((param.into(), what.to_string()));
        }
    }
}

fn unsupported(param: &str, what: impl Display) -> OpenAiError {
    bad(
        param,
        format_args!(
            "{what} is not supported by this gateway (it translates the Responses API to chat completions)"
        ),
    )
}

/// The request fields a response object echoes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    pub model: String,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub text: Value,
    pub reasoning: Value,
    pub store: bool,
    pub metadata: Value,
    pub user: Option<String>,
    pub service_tier: Option<String>,
    pub prompt_cache_key: Option<String>,
}

/// A parsed Responses request: the chat request without its messages (they need the
/// stored conversation of `previous_response_id` first), and the input items.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The request body as sent, for a provider that speaks the Responses API.
    pub native: Map<String, Value>,
    /// What of it the chat translation leaves out.
    pub untranslatable: Untranslatable,
    pub chat: ChatRequest,
    pub input: Vec<Value>,
    pub echo: Echo,
    pub stream: bool,
}

fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>, OpenAiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, "expected a string")),
    }
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, OpenAiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(key, "expected a boolean")),
    }
}

fn opt_f64(m: &Map<String, Value>, key: &str) -> Result<Option<f64>, OpenAiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(key, "expected a number")),
    }
}

fn present(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

fn str_field<'a>(v: &'a Value, key: &str, param: &str) -> Result<&'a str, OpenAiError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{param}.{key}"), "a string is required"))
}

/// Parses the body of `POST /v1/responses`.
pub(crate) fn parse(body: Value) -> Result<Parsed, OpenAiError> {
    let Value::Object(m) = body else {
        return Err(OpenAiError::bad_request(
            "The request body must be a JSON object.",
            None,
        ));
    };
    // What we cannot honour at all: a clear 400 rather than a silent difference.
    if m.get("background").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported("background", "background mode"));
    }
    if present(&m, "conversation") {
        return Err(unsupported(
            "conversation",
            "`conversation` (use `previous_response_id`)",
        ));
    }
    // What only a provider speaking the Responses API serves.
    let mut untranslatable = Untranslatable::default();
    for key in ["prompt", "max_tool_calls"] {
        if present(&m, key) {
            untranslatable.note(key, format_args!("`{key}`"));
        }
    }
    if m.get("top_logprobs")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 0)
    {
        untranslatable.note("top_logprobs", "`top_logprobs`");
    }
    match opt_str(&m, "truncation")?.as_deref() {
        None | Some("disabled") => {}
        Some(_) => untranslatable.note("truncation", "truncation other than `disabled`"),
    }
    // Reasoning items always carry the blocks they can (see `THINKING_PREFIX`).
    match m.get("include") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                match v.as_str() {
                    Some("reasoning.encrypted_content") => {}
                    Some(other) => {
                        untranslatable
                            .note(format!("include[{i}]"), format_args!("including `{other}`"));
                    }
                    None => return Err(bad(format!("include[{i}]"), "expected a string")),
                }
            }
        }
        Some(_) => return Err(bad("include", "expected an array of strings")),
    }

    let model = opt_str(&m, "model")?.ok_or_else(|| bad("model", "a model is required"))?;
    let input = match m.get("input") {
        Some(Value::String(s)) => vec![json!({"type": "message", "role": "user", "content": s})],
        Some(Value::Array(items)) => items.clone(),
        None | Some(Value::Null) => return Err(bad("input", "an input is required")),
        Some(_) => return Err(bad("input", "expected a string or an array of items")),
    };
    let instructions = opt_str(&m, "instructions")?;
    let stream = opt_bool(&m, "stream")?.unwrap_or(false);
    let store = opt_bool(&m, "store")?.unwrap_or(true);
    let previous_response_id = opt_str(&m, "previous_response_id")?;
    let max_output_tokens = match m.get("max_output_tokens") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("max_output_tokens", "expected a positive integer"))?,
        ),
    };
    let temperature = opt_f64(&m, "temperature")?;
    let top_p = opt_f64(&m, "top_p")?;
    let parallel_tool_calls = opt_bool(&m, "parallel_tool_calls")?;
    let user = opt_str(&m, "user")?;
    let service_tier = opt_str(&m, "service_tier")?;
    let prompt_cache_key = opt_str(&m, "prompt_cache_key")?;
    let metadata = match m.get("metadata") {
        None | Some(Value::Null) => Value::Null,
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(bad("metadata", "expected an object")),
    };

    let raw_tools = match m.get("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t.clone(),
        Some(_) => return Err(bad("tools", "expected an array")),
    };
    let mut tools = Vec::with_capacity(raw_tools.len());
    for (i, t) in raw_tools.iter().enumerate() {
        if let Some(t) = tool(i, t, &mut untranslatable)? {
            tools.push(t);
        }
    }
    let raw_choice = m.get("tool_choice").cloned().unwrap_or(Value::Null);
    let tool_choice = tool_choice(&raw_choice, &mut untranslatable)?;

    let reasoning = m.get("reasoning").cloned().unwrap_or(Value::Null);
    let effort = match &reasoning {
        Value::Null => None,
        Value::Object(r) => match r.get("effort") {
            None | Some(Value::Null) => None,
            Some(Value::String(e)) => Some(e.clone()),
            Some(_) => return Err(bad("reasoning.effort", "expected a string")),
        },
        _ => return Err(bad("reasoning", "expected an object")),
    };
    let text = m.get("text").cloned().unwrap_or(Value::Null);
    let (response_format, verbosity) = match &text {
        Value::Null => (None, None),
        Value::Object(t) => {
            let format = match t.get("format") {
                None | Some(Value::Null) => None,
                Some(f) => response_format(f)?,
            };
            (format, t.get("verbosity").filter(|v| !v.is_null()).cloned())
        }
        _ => return Err(bad("text", "expected an object")),
    };

    let mut chat = ChatRequest::new(model.clone(), Vec::new());
    chat.tools = tools;
    chat.tool_choice = tool_choice;
    chat.max_tokens = max_output_tokens;
    chat.temperature = temperature;
    chat.top_p = top_p;
    chat.response_format = response_format;
    chat.user = user.clone();
    chat.stream = stream;
    if let Some(e) = effort {
        chat.extra
            .insert("reasoning_effort".into(), Value::String(e));
    }
    if let Some(v) = verbosity {
        chat.extra.insert("verbosity".into(), v);
    }
    if let Some(p) = parallel_tool_calls {
        chat.extra
            .insert("parallel_tool_calls".into(), Value::Bool(p));
    }
    if !metadata.is_null() {
        chat.extra.insert("metadata".into(), metadata.clone());
    }
    for key in ["safety_identifier", "prompt_cache_retention"] {
        if let Some(s) = opt_str(&m, key)? {
            chat.extra.insert(key.into(), Value::String(s));
        }
    }
    if let Some(k) = &prompt_cache_key {
        chat.extra
            .insert("prompt_cache_key".into(), Value::String(k.clone()));
    }
    if let Some(t) = &service_tier {
        chat.extra
            .insert("service_tier".into(), Value::String(t.clone()));
    }
    let echo = Echo {
        model,
        instructions,
        max_output_tokens,
        temperature,
        top_p,
        tools: raw_tools,
        tool_choice: if raw_choice.is_null() {
            Value::String("auto".into())
        } else {
            raw_choice
        },
        parallel_tool_calls: parallel_tool_calls.unwrap_or(true),
        previous_response_id,
        text: if text.is_null() {
            json!({"format": {"type": "text"}})
        } else {
            text
        },
        reasoning,
        store,
        metadata,
        user,
        service_tier,
        prompt_cache_key,
    };
    Ok(Parsed {
        native: m,
        untranslatable,
        chat,
        input,
        echo,
        stream,
    })
}

/// A tool; `None` (noted) for a built-in tool only the Responses API itself serves.
fn tool(
    i: usize,
    t: &Value,
    untranslatable: &mut Untranslatable,
) -> Result<Option<Tool>, OpenAiError> {
    let param = format!("tools[{i}]");
    let kind = t
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("{param}.type"), "a string is required"))?;
    match kind {
        "function" => {
            let mut f = FunctionDef::new(str_field(t, "name", &param)?);
            f.description = t
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned);
            f.parameters = t.get("parameters").filter(|v| !v.is_null()).cloned();
            f.strict = t.get("strict").and_then(Value::as_bool);
            Ok(Some(Tool::function(f)))
        }
        "custom" => {
            let mut custom = Map::new();
            custom.insert("name".into(), str_field(t, "name", &param)?.into());
            for key in ["description", "format"] {
                if let Some(v) = t.get(key).filter(|v| !v.is_null()) {
                    custom.insert(key.into(), v.clone());
                }
            }
            let mut extra = Map::new();
            extra.insert("custom".into(), Value::Object(custom));
            Ok(Some(Tool {
                kind: "custom".into(),
                function: None,
                extra,
            }))
        }
        other => {
            untranslatable.note(
                format!("{param}.type"),
                format_args!("the built-in tool type `{other}`"),
            );
            Ok(None)
        }
    }
}

fn tool_choice(
    v: &Value,
    untranslatable: &mut Untranslatable,
) -> Result<Option<Value>, OpenAiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(Some(v.clone()))
        }
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some(kind @ ("function" | "custom")) => {
                let name = str_field(v, "name", "tool_choice")?;
                Ok(Some(json!({"type": kind, kind: {"name": name}})))
            }
            Some(other) => {
                untranslatable.note("tool_choice", format_args!("the tool choice `{other}`"));
                Ok(None)
            }
            None => Err(bad("tool_choice.type", "a string is required")),
        },
        _ => Err(bad(
            "tool_choice",
            "expected `auto`, `none`, `required` or an object",
        )),
    }
}

fn response_format(f: &Value) -> Result<Option<Value>, OpenAiError> {
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            schema.insert("name".into(), str_field(f, "name", "text.format")?.into());
            let s = f
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| bad("text.format.schema", "a JSON schema object is required"))?;
            schema.insert("schema".into(), s.clone());
            for key in ["strict", "description"] {
                if let Some(v) = f.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        Some(other) => Err(unsupported(
            "text.format.type",
            format_args!("the text format `{other}`"),
        )),
        None => Err(bad("text.format.type", "a string is required")),
    }
}

/// Turns Responses items into chat messages, in order.
#[derive(Debug, Default)]
pub(crate) struct Conversation {
    pub messages: Vec<Message>,
    /// Items only the Responses API itself serves (built-in tool calls, item references).
    pub untranslatable: Untranslatable,
}

impl Conversation {
    /// Appends the messages of `items`; `base` names them in errors (`input`).
    pub(crate) fn push_items(&mut self, items: &[Value], base: &str) -> Result<(), OpenAiError> {
        for (i, item) in items.iter().enumerate() {
            let param = format!("{base}[{i}]");
            self.push_item(item, &param)?;
        }
        Ok(())
    }

    /// Drops assistant messages left with nothing to send (a reasoning item that no
    /// message or call followed, with no blocks to send back).
    pub(crate) fn finish(&mut self) -> Vec<Message> {
        self.messages.retain(|m| {
            m.role != Role::Assistant
                || m.content.is_some()
                || !m.tool_calls.is_empty()
                || !m.thinking_blocks.is_empty()
                || m.refusal.is_some()
        });
        std::mem::take(&mut self.messages)
    }

    /// The last message, when it is an assistant message nothing but reasoning went into.
    fn open_assistant(&mut self) -> Option<&mut Message> {
        self.messages.last_mut().filter(|m| {
            m.role == Role::Assistant
                && m.content.is_none()
                && m.tool_calls.is_empty()
                && m.refusal.is_none()
        })
    }

    fn push_item(&mut self, item: &Value, param: &str) -> Result<(), OpenAiError> {
        if !item.is_object() {
            return Err(bad(param, "expected an object"));
        }
        let kind = match item.get("type") {
            None | Some(Value::Null) => "message",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(bad(format!("{param}.type"), "expected a string")),
        };
        match kind {
            "message" => self.push_message(item, param),
            "function_call" => {
                let call = ToolCall::function(
                    str_field(item, "call_id", param)?,
                    str_field(item, "name", param)?,
                    str_field(item, "arguments", param)?,
                );
                self.push_call(call);
                Ok(())
            }
            "custom_tool_call" => {
                let mut call = ToolCall::function(str_field(item, "call_id", param)?, "", "");
                call.kind = "custom".into();
                call.extra.insert(
                    "custom".into(),
                    json!({
                        "name": str_field(item, "name", param)?,
                        "input": str_field(item, "input", param)?,
                    }),
                );
                self.push_call(call);
                Ok(())
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = str_field(item, "call_id", param)?;
                let content = match item.get("output") {
                    Some(Value::String(s)) => Content::Text(s.clone()),
                    Some(Value::Array(parts)) => {
                        Content::Parts(content_parts(parts, &format!("{param}.output"))?)
                    }
                    _ => {
                        return Err(bad(
                            format!("{param}.output"),
                            "a string or an array of content parts is required",
                        ));
                    }
                };
                let mut m = Message::empty(Role::Tool);
                m.tool_call_id = Some(call_id.to_owned());
                m.content = Some(content);
                self.messages.push(m);
                Ok(())
            }
            "reasoning" => {
                self.push_reasoning(item);
                Ok(())
            }
            other => {
                self.untranslatable.note(
                    format!("{param}.type"),
                    format_args!("the input item type `{other}`"),
                );
                Ok(())
            }
        }
    }

    fn push_call(&mut self, call: ToolCall) {
        match self.messages.last_mut() {
            Some(m) if m.role == Role::Assistant => m.tool_calls.push(call),
            _ => {
                let mut m = Message::empty(Role::Assistant);
                m.tool_calls.push(call);
                self.messages.push(m);
            }
        }
    }

    fn push_reasoning(&mut self, item: &Value) {
        let texts = |key: &str| -> Option<String> {
            let parts = item.get(key)?.as_array()?;
            let joined: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!joined.is_empty()).then(|| joined.join("\n\n"))
        };
        let text = texts("content").or_else(|| texts("summary"));
        let blocks: Vec<ThinkingBlock> = item
            .get("encrypted_content")
            .and_then(Value::as_str)
            .and_then(|e| e.strip_prefix(THINKING_PREFIX))
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        if self.open_assistant().is_none() {
            self.messages.push(Message::empty(Role::Assistant));
        }
        if let Some(m) = self.open_assistant() {
            if let Some(t) = text {
                match &mut m.reasoning_content {
                    Some(r) => {
                        r.push_str("\n\n");
                        r.push_str(&t);
                    }
                    None => m.reasoning_content = Some(t),
                }
            }
            m.thinking_blocks.extend(blocks);
        }
    }

    fn push_message(&mut self, item: &Value, param: &str) -> Result<(), OpenAiError> {
        let role = match item.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("system") => Role::System,
            Some("developer") => Role::Developer,
            Some(other) => {
                return Err(bad(
                    format!("{param}.role"),
                    format_args!("unknown role `{other}`"),
                ));
            }
            None => return Err(bad(format!("{param}.role"), "a role is required")),
        };
        let cparam = format!("{param}.content");
        let (content, refusal) = match item.get("content") {
            Some(Value::String(s)) => (Content::Text(s.clone()), None),
            Some(Value::Array(parts)) => {
                let mut refusal: Option<String> = None;
                let mut kept = Vec::with_capacity(parts.len());
                for (j, p) in parts.iter().enumerate() {
                    if p.get("type").and_then(Value::as_str) == Some("refusal") {
                        let r = str_field(p, "refusal", &format!("{cparam}[{j}]"))?;
                        refusal.get_or_insert_with(String::new).push_str(r);
                    } else {
                        kept.push(p.clone());
                    }
                }
                let parts = content_parts(&kept, &cparam)?;
                let all_text = parts.iter().all(|p| matches!(p, ContentPart::Text { .. }));
                let content = if role != Role::User && all_text {
                    Content::Text(Content::Parts(parts).text().into_owned())
                } else {
                    Content::Parts(parts)
                };
                (content, refusal)
            }
            _ => {
                return Err(bad(
                    cparam,
                    "a string or an array of content parts is required",
                ));
            }
        };
        let empty_text = matches!(&content, Content::Text(t) if t.is_empty());
        if role == Role::Assistant
            && let Some(m) = self.open_assistant()
        {
            if !(empty_text && refusal.is_some()) {
                m.content = Some(content);
            }
            m.refusal = refusal;
            return Ok(());
        }
        let mut m = Message::empty(role);
        if !(empty_text && refusal.is_some()) {
            m.content = Some(content);
        }
        m.refusal = refusal;
        self.messages.push(m);
        Ok(())
    }
}

fn content_parts(parts: &[Value], param: &str) -> Result<Vec<ContentPart>, OpenAiError> {
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let pp = format!("{param}[{j}]");
        let kind = p
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{pp}.type"), "a string is required"))?;
        let part = match kind {
            "input_text" | "output_text" | "text" => ContentPart::text(str_field(p, "text", &pp)?),
            "input_image" => {
                let detail = p.get("detail").and_then(Value::as_str).map(str::to_owned);
                if let Some(url) = p.get("image_url").and_then(Value::as_str) {
                    ContentPart::ImageUrl {
                        image_url: ImageUrl {
                            extra: Default::default(),
                            url: url.to_owned(),
                            detail,
                        },
                        extra: Map::new(),
                    }
                } else if let Some(id) = p.get("file_id").and_then(Value::as_str) {
                    ContentPart::File {
                        file: FileData {
                            file_id: Some(id.to_owned()),
                            file_data: None,
                            filename: None,
                            extra: Map::new(),
                        },
                        extra: Map::new(),
                    }
                } else {
                    return Err(bad(pp, "`image_url` or `file_id` is required"));
                }
            }
            "input_file" => {
                let get = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
                let mut extra = Map::new();
                if let Some(url) = p.get("file_url").filter(|v| !v.is_null()) {
                    extra.insert("file_url".into(), url.clone());
                }
                let file = FileData {
                    file_id: get("file_id"),
                    file_data: get("file_data"),
                    filename: get("filename"),
                    extra,
                };
                if file.file_id.is_none() && file.file_data.is_none() && file.extra.is_empty() {
                    return Err(bad(pp, "`file_data`, `file_id` or `file_url` is required"));
                }
                ContentPart::File {
                    file,
                    extra: Map::new(),
                }
            }
            "input_audio" => {
                let a = p
                    .get("input_audio")
                    .ok_or_else(|| bad(format!("{pp}.input_audio"), "an object is required"))?;
                ContentPart::InputAudio {
                    input_audio: InputAudio {
                        data: str_field(a, "data", &format!("{pp}.input_audio"))?.to_owned(),
                        format: str_field(a, "format", &format!("{pp}.input_audio"))?.to_owned(),
                        extra: Map::new(),
                    },
                    extra: Map::new(),
                }
            }
            other => {
                return Err(unsupported(
                    &format!("{pp}.type"),
                    format_args!("the content part type `{other}`"),
                ));
            }
        };
        out.push(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn convert(items: Value) -> Vec<Message> {
        let mut c = Conversation::default();
        c.push_items(items.as_array().unwrap(), "input").unwrap();
        c.finish()
    }

    #[test]
    fn calls_merge_and_outputs_become_tool_messages() {
        let m = convert(json!([
            {"role": "user", "content": "weather?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
            {"type": "function_call", "call_id": "c1", "name": "get", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "get", "arguments": "{\"a\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
        ]));
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].role, Role::Assistant);
        assert_eq!(m[1].reasoning_content.as_deref(), Some("think"));
        assert_eq!(m[1].tool_calls.len(), 2);
        assert_eq!(m[2].tool_call_id.as_deref(), Some("c1"));
        assert_eq!(m[3].text(), "rain");
    }

    #[test]
    fn parts_map_to_chat_parts() {
        let m = convert(json!([
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,AA", "filename": "a.pdf"},
            ]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "seen", "annotations": []}]},
        ]));
        let Some(Content::Parts(p)) = &m[0].content else {
            panic!()
        };
        assert_eq!(p[1].kind(), "image_url");
        assert_eq!(p[2].kind(), "file");
        assert_eq!(m[1].content, Some(Content::Text("seen".into())));
    }

    #[test]
    fn thinking_blocks_round_trip_through_encrypted_content() {
        let blocks = vec![ThinkingBlock::Thinking {
            thinking: "t".into(),
            signature: "sig".into(),
        }];
        let enc = format!(
            "{THINKING_PREFIX}{}",
            serde_json::to_string(&blocks).unwrap()
        );
        let m = convert(json!([
            {"role": "user", "content": "q"},
            {"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": enc},
            {"role": "assistant", "content": "a"},
        ]));
        assert_eq!(m[1].thinking_blocks, blocks);
        assert_eq!(m[1].text(), "a");
    }

    #[test]
    fn unsupported_things_name_their_field() {
        // Built-in tools, item references, `include` options: noted, for a provider that
        // speaks the Responses API natively; every other one refuses them by name.
        let p = parse(json!({"model": "m", "input": "x", "include": ["file_search_call.results"]}))
            .unwrap();
        assert_eq!(p.untranslatable.0.unwrap().0, "include[0]");
        let p = parse(json!({"model": "m", "input": "x", "tools": [
            {"type": "function", "name": "f"}, {"type": "web_search"}
        ]}))
        .unwrap();
        assert_eq!(p.chat.tools.len(), 1);
        let (param, what) = p.untranslatable.0.unwrap();
        assert_eq!(param, "tools[1].type");
        assert!(what.contains("web_search"), "{what}");
        assert_eq!(p.native["tools"][1]["type"], "web_search");
        let p = parse(json!({"model": "m", "input": "x", "truncation": "auto"})).unwrap();
        assert_eq!(p.untranslatable.0.unwrap().0, "truncation");
        // What the gateway cannot serve at all.
        let e = parse(json!({"model": "m", "input": "x", "background": true})).unwrap_err();
        assert!(e.message().starts_with("background"));
        let e = parse(json!({"model": "m", "input": "x", "conversation": "conv_1"})).unwrap_err();
        assert!(e.message().starts_with("conversation"));
        let mut c = Conversation::default();
        c.push_items(&[json!({"type": "item_reference", "id": "x"})], "input")
            .unwrap();
        assert_eq!(c.untranslatable.0.unwrap().0, "input[0].type");
    }
}
