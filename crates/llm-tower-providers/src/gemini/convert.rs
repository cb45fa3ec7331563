//! OpenAI-shaped requests to Gemini's `GenerateContentRequest` JSON, and Gemini's
//! responses back to OpenAI-shaped ones.

use base64::Engine as _;
use llm_tower_core::{
    ChatChoice, ChatRequest, ChatResponse, Content, ContentPart, EmbeddingInput, EmbeddingVector,
    EmbeddingsRequest, EmbeddingsResponse, Error, ErrorKind, FileData, Message, Role, Tool,
    ToolCall, Usage, UsageSource,
};
use serde_json::{Map, Value, json};

use super::wire::{self, BatchEmbedResponse, GenerateContentResponse, PromptFeedback};

/// The key of a tool call's (or message's) Gemini thought signature in its `extra`.
pub const THOUGHT_SIGNATURE: &str = "thought_signature";

/// JSON-schema keys Gemini's OpenAPI-subset `Schema` rejects; removed from tool parameters
/// and response schemas.
const UNSUPPORTED_SCHEMA_KEYS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "additionalProperties",
    "strict",
];

/// A model name checked for use in a URL path (`gemini-2.5-flash`, `models/...` accepted).
pub(crate) fn model_path(model: &str) -> Result<&str, Error> {
    let m = model.strip_prefix("models/").unwrap_or(model);
    let ok = !m.is_empty()
        && m.len() <= 200
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'@'));
    if ok {
        Ok(m)
    } else {
        Err(Error::invalid_request(format!(
            "model {:?}: not a valid Gemini model name",
            model.chars().take(80).collect::<String>()
        ))
        .with_param("model"))
    }
}

fn invalid(path: &str, msg: impl std::fmt::Display) -> Error {
    Error::invalid_request(format!("{path}: {msg}")).with_param(path.to_owned())
}

/// Reasoning effort -> thinking budget (tokens); `none` -> 0.
pub(crate) fn effort_budget(effort: &str) -> Result<u32, Error> {
    Ok(match effort {
        "none" => 0,
        "minimal" => 512,
        "low" => 1024,
        "medium" => 8192,
        "high" => 24576,
        "xhigh" => 32768,
        other => {
            return Err(invalid(
                "reasoning_effort",
                format!(
                    "unknown value {:?} (none, minimal, low, medium, high, xhigh)",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    })
}

/// Removes the JSON-schema keys Gemini rejects, recursively (property names are kept).
pub(crate) fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, v) in obj {
                if UNSUPPORTED_SCHEMA_KEYS.contains(&k.as_str()) {
                    continue;
                }
                let v = match (k.as_str(), v) {
                    // A map from names to schemas: the names are not schema keys.
                    ("properties" | "$defs" | "definitions", Value::Object(props)) => {
                        Value::Object(
                            props
                                .iter()
                                .map(|(name, s)| (name.clone(), clean_schema(s)))
                                .collect(),
                        )
                    }
                    // Values, not schemas.
                    ("enum" | "const" | "default" | "example" | "examples" | "required", v) => {
                        v.clone()
                    }
                    (_, v) => clean_schema(v),
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

/// A `data:` URL split into media type and base64 data (plain data is encoded).
fn data_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    Some(match meta.strip_suffix(";base64") {
        Some(mt) => (mt.to_owned(), data.to_owned()),
        None => (
            meta.to_owned(),
            base64::engine::general_purpose::STANDARD.encode(data.as_bytes()),
        ),
    })
}

/// The media type for a file name or URL, by its extension.
fn mime_from_name(name: &str) -> Option<&'static str> {
    let path = name.split(['?', '#']).next().unwrap_or(name);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "html" => "text/html",
        "csv" => "text/csv",
        "json" => "application/json",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "flac" => "audio/flac",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/mov",
        _ => return None,
    })
}

fn extra_str<'a>(extra: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| extra.get(*k).and_then(Value::as_str))
}

fn image_part(url: &str, extra: &Map<String, Value>, path: &str) -> Result<Value, Error> {
    if url.starts_with("data:") {
        let (mime, data) = data_url(url).ok_or_else(|| invalid(path, "malformed data: URL"))?;
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") || url.starts_with("gs://") {
        let mime = extra_str(extra, &["mime_type", "mimeType", "media_type"])
            .or_else(|| mime_from_name(url))
            .ok_or_else(|| {
                invalid(
                    path,
                    "Gemini needs the media type of an image URL: use a URL ending in \
                     .png/.jpg/.webp/..., set image_url.mime_type, or send a data: URL",
                )
            })?;
        return Ok(json!({"fileData": {"fileUri": url, "mimeType": mime}}));
    }
    Err(invalid(path, "expected a data:, https:// or gs:// URL"))
}

fn file_part(file: &FileData, path: &str) -> Result<Value, Error> {
    let mime = extra_str(&file.extra, &["mime_type", "mimeType"])
        .or_else(|| file.filename.as_deref().and_then(mime_from_name))
        .map(str::to_owned);
    if let Some(data) = &file.file_data {
        let (mt, b64) = match data_url(data) {
            Some((mt, b64)) => (mt, b64),
            // Bare base64: the media type must come from the name.
            None => (mime.clone().unwrap_or_default(), data.clone()),
        };
        let mt = if mt.is_empty() {
            mime.unwrap_or_default()
        } else {
            mt
        };
        if mt.is_empty() {
            return Err(invalid(
                path,
                "the file's media type is unknown (send a data: URL or a filename with an extension)",
            ));
        }
        return Ok(json!({"inlineData": {"mimeType": mt, "data": b64}}));
    }
    if let Some(id) = &file.file_id {
        let mut fd = Map::new();
        fd.insert("fileUri".into(), Value::String(id.clone()));
        if let Some(m) = mime {
            fd.insert("mimeType".into(), Value::String(m));
        }
        return Ok(json!({ "fileData": fd }));
    }
    Err(invalid(path, "a file part needs file_data or file_id"))
}

fn audio_mime(format: &str) -> String {
    match format {
        "mp3" => "audio/mp3".to_owned(),
        "wav" => "audio/wav".to_owned(),
        other if other.contains('/') => other.to_owned(),
        other => format!("audio/{other}"),
    }
}

/// Gemini parts of a message's content.
fn parts(content: Option<&Content>, path: &str) -> Result<Vec<Value>, Error> {
    let Some(content) = content else {
        return Ok(Vec::new());
    };
    match content {
        Content::Text(t) => Ok(if t.is_empty() {
            Vec::new()
        } else {
            vec![json!({ "text": t })]
        }),
        Content::Parts(ps) => {
            let mut out = Vec::with_capacity(ps.len());
            for (i, p) in ps.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push(match p {
                    ContentPart::Text { text, .. } => json!({ "text": text }),
                    ContentPart::ImageUrl { image_url, extra } => {
                        let mut extra = extra.clone();
                        for (k, v) in &image_url.extra {
                            extra.insert(k.clone(), v.clone());
                        }
                        image_part(&image_url.url, &extra, &format!("{path}.image_url"))?
                    }
                    ContentPart::InputAudio { input_audio, .. } => json!({
                        "inlineData": {
                            "mimeType": audio_mime(&input_audio.format),
                            "data": input_audio.data,
                        }
                    }),
                    ContentPart::File { file, .. } => file_part(file, &format!("{path}.file"))?,
                    ContentPart::Other(v @ Value::Object(_)) => v.clone(),
                    ContentPart::Other(_) => {
                        return Err(invalid(&path, "unsupported content part"));
                    }
                });
            }
            Ok(out)
        }
    }
}

/// The function name of tool call `id`, from the nearest assistant message before `before`.
fn tool_name_for<'a>(messages: &'a [Message], before: usize, id: &str) -> Option<&'a str> {
    messages[..before].iter().rev().find_map(|m| {
        m.tool_calls
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.function.name.as_str())
    })
}

fn function_call_part(call: &ToolCall, path: &str) -> Result<Value, Error> {
    if call.function.name.is_empty() {
        return Err(invalid(
            path,
            "only function tool calls can be sent to Gemini",
        ));
    }
    let args: Value = if call.function.arguments.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&call.function.arguments).map_err(|e| {
            invalid(
                &format!("{path}.function.arguments"),
                format!("not JSON: {e}"),
            )
        })?
    };
    let mut part = json!({"functionCall": {"name": call.function.name, "args": args}});
    if let Some(sig) = call.extra.get(THOUGHT_SIGNATURE).and_then(Value::as_str)
        && let Value::Object(o) = &mut part
    {
        o.insert("thoughtSignature".into(), Value::String(sig.to_owned()));
    }
    Ok(part)
}

fn push_turn(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    contents.push(json!({"role": role, "parts": parts}));
}

fn tools(tools: &[Tool]) -> Result<Vec<Value>, Error> {
    let mut decls = Vec::new();
    let mut others = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        match (&*t.kind, &t.function) {
            ("function", Some(f)) => {
                let mut d = Map::new();
                d.insert("name".into(), Value::String(f.name.clone()));
                if let Some(desc) = &f.description {
                    d.insert("description".into(), Value::String(desc.clone()));
                }
                if let Some(p) = &f.parameters {
                    // An empty object schema is refused by Gemini: leave it out.
                    let empty = p
                        .get("properties")
                        .and_then(Value::as_object)
                        .is_none_or(Map::is_empty);
                    if !empty {
                        d.insert("parameters".into(), clean_schema(p));
                    }
                }
                decls.push(Value::Object(d));
            }
            ("custom", _) => {
                return Err(invalid(&path, "Gemini has no custom (free-form) tools"));
            }
            // Gemini's own tools (`googleSearch`, `codeExecution`, `urlContext`) pass
            // through as `{"type": "googleSearch", "googleSearch": {}}`.
            (kind, None) if kind != "function" => {
                let v = t.extra.get(kind).cloned().unwrap_or_else(|| json!({}));
                others.push(json!({ kind: v }));
            }
            _ => return Err(invalid(&path, "expected a function tool")),
        }
    }
    let mut out = Vec::new();
    if !decls.is_empty() {
        out.push(json!({"functionDeclarations": decls}));
    }
    out.extend(others);
    Ok(out)
}

fn tool_config(choice: &Value) -> Result<Value, Error> {
    let cfg = match choice {
        Value::String(s) => match s.as_str() {
            "auto" => json!({"mode": "AUTO"}),
            "required" | "any" => json!({"mode": "ANY"}),
            "none" => json!({"mode": "NONE"}),
            other => {
                return Err(invalid(
                    "tool_choice",
                    format!(
                        "unknown value {:?}",
                        other.chars().take(40).collect::<String>()
                    ),
                ));
            }
        },
        Value::Object(o) => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .or_else(|| o.get("name"))
                .and_then(Value::as_str);
            if let Some(name) = name {
                json!({"mode": "ANY", "allowedFunctionNames": [name]})
            } else if o.get("type").and_then(Value::as_str) == Some("allowed_tools") {
                let at = o.get("allowed_tools").unwrap_or(&Value::Null);
                let names: Vec<&str> = at
                    .get("tools")
                    .and_then(Value::as_array)
                    .map(|ts| {
                        ts.iter()
                            .filter_map(|t| {
                                t.get("function")
                                    .and_then(|f| f.get("name"))
                                    .and_then(Value::as_str)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mode = match at.get("mode").and_then(Value::as_str) {
                    Some("required") => "ANY",
                    _ => "AUTO",
                };
                if mode == "ANY" {
                    json!({"mode": mode, "allowedFunctionNames": names})
                } else {
                    json!({"mode": mode})
                }
            } else {
                return Err(invalid("tool_choice", "expected a function name"));
            }
        }
        _ => return Err(invalid("tool_choice", "expected a string or an object")),
    };
    Ok(json!({ "functionCallingConfig": cfg }))
}

fn response_format(rf: &Value, gen_cfg: &mut Map<String, Value>) -> Result<(), Error> {
    match rf.get("type").and_then(Value::as_str) {
        Some("text") | None => {}
        Some("json_object") => {
            gen_cfg.insert("responseMimeType".into(), json!("application/json"));
        }
        Some("json_schema") => {
            gen_cfg.insert("responseMimeType".into(), json!("application/json"));
            let schema = rf
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .ok_or_else(|| invalid("response_format.json_schema.schema", "required"))?;
            gen_cfg.insert("responseSchema".into(), clean_schema(schema));
        }
        Some(other) => {
            return Err(invalid(
                "response_format.type",
                format!(
                    "unknown value {:?}",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    }
    Ok(())
}

fn thinking_config(chat: &ChatRequest) -> Result<Option<Value>, Error> {
    if let Some(tc) = chat
        .extra
        .get("thinking_config")
        .or_else(|| chat.extra.get("thinkingConfig"))
    {
        return Ok(Some(tc.clone()));
    }
    let Some(effort) = chat.extra.get("reasoning_effort") else {
        return Ok(None);
    };
    let effort = effort
        .as_str()
        .ok_or_else(|| invalid("reasoning_effort", "expected a string"))?;
    let budget = effort_budget(effort)?;
    Ok(Some(if budget == 0 {
        json!({"thinkingBudget": 0})
    } else {
        json!({"thinkingBudget": budget, "includeThoughts": true})
    }))
}

/// The `GenerateContentRequest` body for a chat request.
pub(crate) fn generate_request(chat: &ChatRequest) -> Result<Value, Error> {
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    let mut responses: Vec<Value> = Vec::new();
    let msgs = &chat.messages;
    for (i, m) in msgs.iter().enumerate() {
        let path = format!("messages[{i}]");
        if m.role != Role::Tool && !responses.is_empty() {
            push_turn(&mut contents, "user", std::mem::take(&mut responses));
        }
        match m.role {
            Role::System | Role::Developer => {
                system.extend(parts(m.content.as_ref(), &format!("{path}.content"))?);
            }
            Role::User => {
                push_turn(
                    &mut contents,
                    "user",
                    parts(m.content.as_ref(), &format!("{path}.content"))?,
                );
            }
            Role::Assistant => {
                let mut ps = parts(m.content.as_ref(), &format!("{path}.content"))?;
                if let Some(sig) = m.extra.get(THOUGHT_SIGNATURE).and_then(Value::as_str)
                    && let Some(Value::Object(first)) = ps.first_mut()
                {
                    first.insert("thoughtSignature".into(), Value::String(sig.to_owned()));
                }
                for (j, c) in m.tool_calls.iter().enumerate() {
                    ps.push(function_call_part(c, &format!("{path}.tool_calls[{j}]"))?);
                }
                push_turn(&mut contents, "model", ps);
            }
            Role::Tool => {
                let id = m.tool_call_id.as_deref().unwrap_or_default();
                let name = tool_name_for(msgs, i, id)
                    .or(m.name.as_deref())
                    .ok_or_else(|| {
                        invalid(
                            &format!("{path}.tool_call_id"),
                            "no earlier assistant tool call has this id (Gemini needs the function name)",
                        )
                    })?;
                let text = m.content.as_ref().map(|c| c.text()).unwrap_or_default();
                responses.push(json!({
                    "functionResponse": {"name": name, "response": {"content": text}}
                }));
            }
        }
    }
    push_turn(&mut contents, "user", responses);

    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let tools = tools(&chat.tools)?;
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tc) = &chat.tool_choice {
        body.insert("toolConfig".into(), tool_config(tc)?);
    }

    let mut gen_cfg = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            gen_cfg.insert(k.into(), v);
        }
    };
    put("temperature", chat.temperature.map(Value::from));
    put("topP", chat.top_p.map(Value::from));
    put("maxOutputTokens", chat.max_tokens.map(Value::from));
    put("candidateCount", chat.n.map(Value::from));
    put("seed", chat.seed.map(Value::from));
    put("presencePenalty", chat.presence_penalty.map(Value::from));
    put("frequencyPenalty", chat.frequency_penalty.map(Value::from));
    put(
        "stopSequences",
        chat.stop.as_ref().map(|s| json!(s.to_vec())),
    );
    put("topK", chat.extra.get("top_k").cloned());
    if chat.extra.get("logprobs").and_then(Value::as_bool) == Some(true) {
        gen_cfg.insert("responseLogprobs".into(), Value::Bool(true));
        if let Some(n) = chat.extra.get("top_logprobs") {
            gen_cfg.insert("logprobs".into(), n.clone());
        }
    }
    if let Some(rf) = &chat.response_format {
        response_format(rf, &mut gen_cfg)?;
    }
    if let Some(tc) = thinking_config(chat)? {
        gen_cfg.insert("thinkingConfig".into(), tc);
    }
    if let Some(Value::Object(more)) = chat
        .extra
        .get("generation_config")
        .or_else(|| chat.extra.get("generationConfig"))
    {
        for (k, v) in more {
            gen_cfg.insert(k.clone(), v.clone());
        }
    }
    if !gen_cfg.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gen_cfg));
    }
    for (ours, theirs) in [
        ("safety_settings", "safetySettings"),
        ("cached_content", "cachedContent"),
        ("labels", "labels"),
    ] {
        if let Some(v) = chat.extra.get(ours).or_else(|| chat.extra.get(theirs)) {
            body.insert(theirs.into(), v.clone());
        }
    }
    Ok(Value::Object(body))
}

/// Gemini's finish reason in OpenAI's terms (`STOP` with function calls -> `tool_calls`).
pub(crate) fn finish_reason(reason: &str, has_tool_calls: bool) -> String {
    match reason {
        "STOP" if has_tool_calls => "tool_calls".to_owned(),
        "STOP" => "stop".to_owned(),
        "MAX_TOKENS" => "length".to_owned(),
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" => "content_filter".to_owned(),
        other => other.to_ascii_lowercase(),
    }
}

/// The usage of `usageMetadata`.
pub(crate) fn usage(u: &wire::UsageMetadata) -> Usage {
    let completion = u
        .candidates_token_count
        .saturating_add(u.thoughts_token_count);
    let prompt = u
        .prompt_token_count
        .saturating_add(u.tool_use_prompt_token_count);
    let mut usage = Usage::new(prompt, completion, UsageSource::Provider)
        .with_cached(u.cached_content_token_count)
        .with_reasoning(u.thoughts_token_count);
    if u.total_token_count > 0 {
        usage.total_tokens = u.total_token_count;
    }
    usage
}

/// The error for a prompt Gemini blocked (no candidates, `promptFeedback.blockReason`).
pub(crate) fn blocked(fb: &PromptFeedback) -> Option<Error> {
    let reason = fb.block_reason.as_deref()?;
    let detail = fb
        .block_reason_message
        .as_deref()
        .map(|m| format!(": {}", m.chars().take(200).collect::<String>()))
        .unwrap_or_default();
    Some(
        Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "Gemini blocked the prompt ({}){detail}",
                reason.chars().take(60).collect::<String>()
            ),
        )
        .with_code("content_filter"),
    )
}

/// The tool call of a `functionCall` part; `n` numbers the calls of the response.
pub(crate) fn tool_call(fc: &wire::FunctionCall, sig: Option<&str>, n: usize) -> ToolCall {
    let id = match &fc.id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => format!("call_{n}"),
    };
    let args = match &fc.args {
        Some(v @ Value::Object(_)) => v.to_string(),
        _ => "{}".to_owned(),
    };
    let mut call = ToolCall::function(id, fc.name.clone(), args);
    if let Some(sig) = sig {
        call.extra
            .insert(THOUGHT_SIGNATURE.into(), Value::String(sig.to_owned()));
    }
    call
}

/// A `generateContent` response as a chat response and its usage.
pub(crate) fn generate_response(
    w: GenerateContentResponse,
    created: u64,
    requested_model: &str,
) -> Result<(ChatResponse, Option<Usage>), Error> {
    if w.candidates.is_empty()
        && let Some(fb) = &w.prompt_feedback
        && let Some(e) = blocked(fb)
    {
        return Err(e);
    }
    let mut n_calls = 0usize;
    let mut choices = Vec::with_capacity(w.candidates.len());
    for (i, c) in w.candidates.into_iter().enumerate() {
        let index = c.index.unwrap_or(u32::try_from(i).unwrap_or(u32::MAX));
        let mut msg = Message::empty(Role::Assistant);
        let mut text = String::new();
        let mut reasoning = String::new();
        let mut other_parts = Vec::new();
        let mut text_sig: Option<String> = None;
        for p in c.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(fc) = &p.function_call {
                msg.tool_calls
                    .push(tool_call(fc, p.thought_signature.as_deref(), n_calls));
                n_calls += 1;
                continue;
            }
            if let Some(t) = &p.text {
                if p.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            } else if !p.other.is_empty() {
                other_parts.push(Value::Object(p.other.clone()));
            }
            if text_sig.is_none() {
                text_sig = p.thought_signature.clone();
            }
        }
        if !text.is_empty() || msg.tool_calls.is_empty() {
            msg.content = Some(Content::Text(text));
        }
        if !reasoning.is_empty() {
            msg.reasoning_content = Some(reasoning);
        }
        if let Some(sig) = text_sig {
            msg.extra
                .insert(THOUGHT_SIGNATURE.into(), Value::String(sig));
        }
        if !other_parts.is_empty() {
            msg.extra
                .insert("gemini_parts".into(), Value::Array(other_parts));
        }
        let finish = c
            .finish_reason
            .as_deref()
            .map(|r| finish_reason(r, !msg.tool_calls.is_empty()));
        let mut choice = ChatChoice::new(index, msg, finish);
        choice.logprobs = c.logprobs_result;
        for (k, v) in [
            ("gemini_finish_reason", c.finish_reason.map(Value::String)),
            ("finish_message", c.finish_message.map(Value::String)),
            ("safety_ratings", c.safety_ratings),
            ("citation_metadata", c.citation_metadata),
            ("grounding_metadata", c.grounding_metadata),
        ] {
            if let Some(v) = v {
                choice.extra.insert(k.into(), v);
            }
        }
        choices.push(choice);
    }
    let model = w
        .model_version
        .unwrap_or_else(|| requested_model.to_owned());
    let id = w.response_id.unwrap_or_else(|| format!("gemini-{created}"));
    let mut resp = ChatResponse::new(id, model, created, choices);
    if let Some(reason) = w.prompt_feedback.and_then(|fb| fb.block_reason) {
        resp.extra
            .insert("prompt_block_reason".into(), Value::String(reason));
    }
    Ok((resp, w.usage_metadata.as_ref().map(usage)))
}

/// The `batchEmbedContents` body.
pub(crate) fn embed_request(e: &EmbeddingsRequest, model: &str) -> Result<Value, Error> {
    let texts: Vec<&str> = match &e.input {
        EmbeddingInput::One(s) => vec![s.as_str()],
        EmbeddingInput::Many(v) => v.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::ManyTokens(_) => {
            return Err(invalid("input", "Gemini embeds text, not token arrays"));
        }
    };
    let task_type = e.extra.get("task_type").or_else(|| e.extra.get("taskType"));
    let requests: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut r = Map::new();
            r.insert("model".into(), Value::String(format!("models/{model}")));
            r.insert("content".into(), json!({"parts": [{"text": t}]}));
            if let Some(d) = e.dimensions {
                r.insert("outputDimensionality".into(), Value::from(d));
            }
            if let Some(tt) = task_type {
                r.insert("taskType".into(), tt.clone());
            }
            Value::Object(r)
        })
        .collect();
    Ok(json!({ "requests": requests }))
}

/// Vertex AI's `:predict` body for text embeddings.
pub(crate) fn vertex_embed_request(e: &EmbeddingsRequest) -> Result<Value, Error> {
    let texts: Vec<&str> = match &e.input {
        EmbeddingInput::One(s) => vec![s.as_str()],
        EmbeddingInput::Many(v) => v.iter().map(String::as_str).collect(),
        EmbeddingInput::Tokens(_) | EmbeddingInput::ManyTokens(_) => {
            return Err(invalid("input", "Vertex AI embeds text, not token arrays"));
        }
    };
    let task_type = e.extra.get("task_type").or_else(|| e.extra.get("taskType"));
    let instances: Vec<Value> = texts
        .iter()
        .map(|t| {
            let mut i = Map::new();
            i.insert("content".into(), Value::String((*t).to_owned()));
            if let Some(tt) = task_type {
                i.insert("task_type".into(), tt.clone());
            }
            Value::Object(i)
        })
        .collect();
    let mut body = Map::new();
    body.insert("instances".into(), Value::Array(instances));
    if let Some(d) = e.dimensions {
        body.insert("parameters".into(), json!({ "outputDimensionality": d }));
    }
    Ok(Value::Object(body))
}

/// Vertex AI's `:predict` embeddings response as Gemini's, and the input tokens it counted.
pub(crate) fn vertex_embed_response(w: &wire::VertexPredictResponse) -> (BatchEmbedResponse, u64) {
    let mut tokens = 0u64;
    let embeddings = w
        .predictions
        .iter()
        .map(|p| {
            tokens = tokens.saturating_add(p.embeddings.statistics.token_count as u64);
            wire::EmbeddingValues {
                values: p.embeddings.values.clone(),
            }
        })
        .collect();
    (BatchEmbedResponse { embeddings }, tokens)
}

/// A `batchEmbedContents` response (`base64` encoding honoured).
pub(crate) fn embed_response(
    w: BatchEmbedResponse,
    model: &str,
    base64_out: bool,
) -> EmbeddingsResponse {
    let data = w
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(i, e)| llm_tower_core::Embedding {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            embedding: if base64_out {
                let bytes: Vec<u8> = e.values.iter().flat_map(|f| f.to_le_bytes()).collect();
                EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                EmbeddingVector::Float(e.values)
            },
        })
        .collect();
    EmbeddingsResponse {
        model: model.to_owned(),
        data,
    }
}
