//! The response object of the Responses API, written from a chat response.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

use llm_tower_core::{Message, ThinkingBlock, ToolCall, Usage};
use serde_json::{Map, Value, json};

use super::request::{Echo, THINKING_PREFIX};

/// A new id with `prefix` (`resp`, `msg`, `fc`, `rs`): `gw` and 32 hex digits from a
/// per-process random hasher over a counter and the time, so ids are not guessable from
/// each other. The `gw` (not hex) tells the gateway's ids from OpenAI's (see
/// [`is_gateway_id`]).
pub(crate) fn new_id(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static STATE: std::sync::OnceLock<(RandomState, RandomState)> = std::sync::OnceLock::new();
    let (a, b) = STATE.get_or_init(|| (RandomState::new(), RandomState::new()));
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_gw{:016x}{:016x}",
        a.hash_one((n, nanos)),
        b.hash_one((nanos, n))
    )
}

/// Whether an item id is one of the gateway's (from [`new_id`]).
pub(crate) fn is_gateway_id(id: &str) -> bool {
    id.split_once('_')
        .is_some_and(|(_, rest)| rest.starts_with("gw"))
}

/// An input item as a provider speaking the Responses API takes it: `None` for a
/// reasoning item the gateway made (from another provider's reasoning: OpenAI knows only
/// its own), and the gateway's item ids removed (OpenAI would look them up).
pub(crate) fn native_item(item: &Value) -> Option<std::borrow::Cow<'_, Value>> {
    let gateway = item
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(is_gateway_id);
    let ours = item
        .get("encrypted_content")
        .and_then(Value::as_str)
        .is_some_and(|e| e.starts_with(THINKING_PREFIX));
    if item.get("type").and_then(Value::as_str) == Some("reasoning") && (gateway || ours) {
        return None;
    }
    if !gateway {
        return Some(std::borrow::Cow::Borrowed(item));
    }
    let mut item = item.clone();
    if let Value::Object(m) = &mut item {
        m.remove("id");
    }
    Some(std::borrow::Cow::Owned(item))
}

/// Unix seconds now.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What every response object of one request shares.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub id: String,
    pub created_at: u64,
    pub echo: Echo,
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    InProgress,
    Completed,
    /// Cut short: `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    Failed,
}

impl Status {
    /// The status for a chat `finish_reason`.
    pub(crate) fn from_finish(reason: Option<&str>) -> Status {
        match reason {
            Some("length") => Status::Incomplete("max_output_tokens"),
            Some("content_filter") => Status::Incomplete("content_filter"),
            _ => Status::Completed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::Failed => "failed",
        }
    }

    /// The status of an output item of a response that ended so.
    pub(crate) fn item_status(self) -> &'static str {
        match self {
            Status::Incomplete(_) => "incomplete",
            Status::InProgress => "in_progress",
            _ => "completed",
        }
    }
}

/// `usage` in the Responses shape.
pub(crate) fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": u.cached_prompt_tokens,
            "cache_write_tokens": u.cache_write_5m_tokens.saturating_add(u.cache_write_1h_tokens),
        },
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens,
    })
}

/// The response object.
pub(crate) fn response_object(
    meta: &Meta,
    model: &str,
    status: Status,
    output: &[Value],
    usage: Option<&Usage>,
    error: Option<Value>,
) -> Value {
    let e = &meta.echo;
    let incomplete = match status {
        Status::Incomplete(reason) => json!({"reason": reason}),
        _ => Value::Null,
    };
    let completed_at = match status {
        Status::Completed | Status::Incomplete(_) => Value::from(now_secs()),
        _ => Value::Null,
    };
    json!({
        "id": meta.id,
        "object": "response",
        "created_at": meta.created_at,
        "completed_at": completed_at,
        "status": status.as_str(),
        "background": false,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": e.instructions,
        "max_output_tokens": e.max_output_tokens,
        "model": if model.is_empty() { e.model.as_str() } else { model },
        "output": output,
        "parallel_tool_calls": e.parallel_tool_calls,
        "previous_response_id": e.previous_response_id,
        "prompt_cache_key": e.prompt_cache_key,
        "reasoning": if e.reasoning.is_null() { json!({"effort": null, "summary": null}) } else { e.reasoning.clone() },
        "service_tier": e.service_tier,
        "store": e.store,
        "temperature": e.temperature,
        "text": e.text,
        "tool_choice": e.tool_choice,
        "tools": e.tools,
        "top_p": e.top_p,
        "truncation": "disabled",
        "usage": usage.map(usage_json),
        "user": e.user,
        "metadata": if e.metadata.is_null() { Value::Object(Map::new()) } else { e.metadata.clone() },
    })
}

/// A reasoning item: its text as one summary part; Anthropic thinking blocks (which must
/// go back unchanged) in `encrypted_content`.
pub(crate) fn reasoning_item(id: &str, text: &str, blocks: &[ThinkingBlock]) -> Value {
    let mut item = json!({
        "type": "reasoning",
        "id": id,
        "summary": if text.is_empty() { json!([]) } else { json!([{"type": "summary_text", "text": text}]) },
    });
    let complete: Vec<&ThinkingBlock> = blocks
        .iter()
        .filter(|b| !matches!(b, ThinkingBlock::Thinking { signature, .. } if signature.is_empty()))
        .collect();
    if !complete.is_empty()
        && let Ok(json) = serde_json::to_string(&complete)
    {
        item["encrypted_content"] = Value::String(format!("{THINKING_PREFIX}{json}"));
    }
    item
}

/// A content part of a message item: `output_text` or `refusal`.
pub(crate) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

/// A refusal content part.
pub(crate) fn refusal_part(refusal: &str) -> Value {
    json!({"type": "refusal", "refusal": refusal})
}

/// A message item.
pub(crate) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "id": id,
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

/// A function (or custom tool) call item.
pub(crate) fn call_item(id: &str, call: &ToolCall, status: &str) -> Value {
    if call.kind == "custom" {
        let custom = call.extra.get("custom");
        let get = |k: &str| {
            custom
                .and_then(|c| c.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        return json!({
            "type": "custom_tool_call",
            "id": id,
            "call_id": call.id,
            "name": get("name"),
            "input": get("input"),
            "status": status,
        });
    }
    json!({
        "type": "function_call",
        "id": id,
        "call_id": call.id,
        "name": call.function.name,
        "arguments": call.function.arguments,
        "status": status,
    })
}

/// The output items of a finished assistant message: reasoning, the message, the calls.
pub(crate) fn output_items(msg: &Message, status: Status) -> Vec<Value> {
    let mut out = Vec::new();
    let reasoning = msg.reasoning_content.as_deref().unwrap_or_default();
    if !reasoning.is_empty() || !msg.thinking_blocks.is_empty() {
        out.push(reasoning_item(
            &new_id("rs"),
            reasoning,
            &msg.thinking_blocks,
        ));
    }
    let mut content = Vec::new();
    let text = msg.text();
    if !text.is_empty() {
        content.push(text_part(&text));
    }
    if let Some(r) = &msg.refusal {
        content.push(refusal_part(r));
    }
    if !content.is_empty() {
        out.push(message_item(&new_id("msg"), status.item_status(), content));
    }
    for call in &msg.tool_calls {
        out.push(call_item(&new_id("fc"), call, "completed"));
    }
    out
}
