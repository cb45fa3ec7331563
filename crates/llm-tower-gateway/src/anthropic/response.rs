//! [`ChatResponse`] + [`Usage`] -> an Anthropic `message` object.

use llm_tower_core::{ChatResponse, Content, ContentPart, Message, ThinkingBlock, Usage};
use serde_json::{Map, Value, json};

/// The message id Anthropic clients expect: the provider's id when it already starts
/// with `msg_`, else `msg_` + the id.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_owned()
    } else {
        format!("msg_{id}")
    }
}

/// Our finish reason -> Anthropic's `stop_reason`: `stop` -> `end_turn` (or
/// `stop_sequence` when the stop sequence is known), `length` -> `max_tokens`,
/// `tool_calls` -> `tool_use`, `content_filter` -> `refusal`; Anthropic's own values pass
/// unchanged; anything else is `end_turn`. `None` while unknown.
pub fn stop_reason(finish: Option<&str>, stop_sequence: Option<&str>) -> Option<&'static str> {
    Some(match finish? {
        "stop" | "end_turn" if stop_sequence.is_some() => "stop_sequence",
        "stop" | "end_turn" => "end_turn",
        "length" | "max_tokens" => "max_tokens",
        "tool_calls" | "function_call" | "tool_use" => "tool_use",
        "content_filter" | "refusal" => "refusal",
        "stop_sequence" => "stop_sequence",
        "pause_turn" => "pause_turn",
        "model_context_window_exceeded" => "model_context_window_exceeded",
        _ => "end_turn",
    })
}

/// Anthropic's `usage`: `input_tokens` excludes cache reads and cache writes (our
/// `prompt_tokens` includes both), `cache_creation` splits the writes by lifetime.
pub fn usage_json(u: &Usage) -> Value {
    let writes = u
        .cache_write_5m_tokens
        .saturating_add(u.cache_write_1h_tokens);
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_prompt_tokens).saturating_sub(writes),
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": u.cached_prompt_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens,
        },
    })
}

/// A thinking block as Anthropic writes it.
pub fn thinking_json(b: &ThinkingBlock) -> Value {
    match b {
        ThinkingBlock::Thinking {
            thinking,
            signature,
        } => json!({"type": "thinking", "thinking": thinking, "signature": signature}),
        ThinkingBlock::RedactedThinking { data } => {
            json!({"type": "redacted_thinking", "data": data})
        }
    }
}

/// A text block: `{"type": "text", "text"}` plus the part's other fields (`citations`).
fn text_block(text: &str, extra: Option<&Map<String, Value>>) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!("text"));
    o.insert("text".into(), json!(text));
    if let Some(extra) = extra {
        for (k, v) in extra {
            if k != "type" && k != "text" && k != "cache_control" {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(o)
}

/// The tool input: the arguments parsed as JSON; `{}` when empty or not a JSON object
/// (Anthropic's `input` is always an object).
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) | Err(_) => {
            if !arguments.trim().is_empty() {
                tracing::debug!("tool arguments are not a JSON object; sent as {{}}");
            }
            json!({})
        }
    }
}

/// The content blocks of an assistant message: thinking blocks first (in order), then
/// the text (one block per text part; parts of other types as they came), then a
/// `tool_use` block per tool call.
pub fn content_blocks(m: &Message) -> Vec<Value> {
    let mut blocks: Vec<Value> = m.thinking_blocks.iter().map(thinking_json).collect();
    if m.thinking_blocks.is_empty()
        && let Some(r) = m.reasoning_content.as_deref().filter(|r| !r.is_empty())
    {
        // Reasoning text without a signed block (DeepSeek, vLLM): shown as thinking.
        blocks.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    match &m.content {
        Some(Content::Text(t)) if !t.is_empty() => blocks.push(text_block(t, None)),
        Some(Content::Parts(parts)) => {
            for p in parts {
                match p {
                    ContentPart::Text { text, extra } if !text.is_empty() => {
                        blocks.push(text_block(text, Some(extra)));
                    }
                    ContentPart::Other(v) => blocks.push(v.clone()),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    if let Some(r) = m.refusal.as_deref().filter(|r| !r.is_empty()) {
        blocks.push(text_block(r, None));
    }
    for call in &m.tool_calls {
        let name = if call.function.name.is_empty() {
            call.extra
                .get(&call.kind)
                .and_then(|v| v.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        } else {
            &call.function.name
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": name,
            "input": tool_input(&call.function.arguments),
        }));
    }
    blocks
}

/// The stop sequence a provider reported (`stop_sequence` in a choice's or chunk's
/// `extra`, as an Anthropic provider keeps it).
pub fn stop_sequence_of(extra: &Map<String, Value>) -> Option<&str> {
    extra.get("stop_sequence").and_then(Value::as_str)
}

/// The `message` object of a non-streamed answer (the first choice; Anthropic has one).
pub fn message_json(resp: &ChatResponse, usage: Option<Usage>) -> Value {
    let choice = resp.choices.first();
    let content = choice
        .map(|c| content_blocks(&c.message))
        .unwrap_or_default();
    let stop_sequence = choice.and_then(|c| stop_sequence_of(&c.extra));
    let stop_reason = stop_reason(
        choice
            .and_then(|c| c.finish_reason.as_deref())
            .or(Some("stop")),
        stop_sequence,
    );
    json!({
        "id": message_id(&resp.id),
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(&usage.unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_tower_core::{ChatChoice, ToolCall, UsageSource};

    #[test]
    fn message_shape_with_thinking_text_and_tools() {
        let mut m = Message::assistant("hello");
        m.thinking_blocks = vec![
            ThinkingBlock::Thinking {
                thinking: "hmm".into(),
                signature: "sig".into(),
            },
            ThinkingBlock::RedactedThinking { data: "xx".into() },
        ];
        m.tool_calls = vec![
            ToolCall::function("toolu_1", "f", r#"{"a":1}"#),
            ToolCall::function("toolu_2", "g", ""),
        ];
        let resp = ChatResponse::new(
            "abc",
            "claude-x",
            0,
            vec![ChatChoice::new(0, m, Some("tool_calls".into()))],
        );
        let usage = Usage::new(100, 7, UsageSource::Provider)
            .with_cached(30)
            .with_cache_writes(10, 5);
        let v = message_json(&resp, Some(usage));
        assert_eq!(v["id"], "msg_abc");
        let kinds: Vec<&str> = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "thinking",
                "redacted_thinking",
                "text",
                "tool_use",
                "tool_use"
            ]
        );
        assert_eq!(v["content"][3]["input"], json!({"a": 1}));
        assert_eq!(v["content"][4]["input"], json!({}));
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["usage"]["input_tokens"], 55);
        assert_eq!(v["usage"]["cache_read_input_tokens"], 30);
        assert_eq!(v["usage"]["cache_creation_input_tokens"], 15);
        assert_eq!(v["usage"]["cache_creation"]["ephemeral_1h_input_tokens"], 5);
        assert_eq!(v["usage"]["output_tokens"], 7);
    }

    #[test]
    fn stop_reasons() {
        assert_eq!(stop_reason(Some("stop"), None), Some("end_turn"));
        assert_eq!(
            stop_reason(Some("stop"), Some("END")),
            Some("stop_sequence")
        );
        assert_eq!(stop_reason(Some("length"), None), Some("max_tokens"));
        assert_eq!(stop_reason(Some("content_filter"), None), Some("refusal"));
        assert_eq!(stop_reason(Some("pause_turn"), None), Some("pause_turn"));
        assert_eq!(stop_reason(None, None), None);
    }
}
