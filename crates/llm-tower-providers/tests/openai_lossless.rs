//! The OpenAI provider loses nothing: request fields and parts of every kind reach the
//! wire unchanged, and responses keep refusal, reasoning, logprobs, annotations, audio,
//! service tier, usage details and unknown fields, streamed or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Reply, TestServer, collect, guard, serve};
use llm_tower_core::{ChatRequest, LlmRequest, collect_chat_stream};
use llm_tower_providers::http::{HttpClient, HttpConfig};
use llm_tower_providers::openai::{OpenAi, OpenAiConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

fn provider(server: &TestServer) -> OpenAi {
    OpenAi::new(
        OpenAiConfig::new("sk-test-lossless").base_url(format!("{}/v1", server.url())),
        HttpClient::with_config(HttpConfig::default()).unwrap(),
    )
    .unwrap()
}

/// A request using every kind of part, a custom tool, caching and reasoning fields, and
/// unknown fields at several levels.
fn rich_request() -> Value {
    json!({
        "model": "gpt-5",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "Listen and read."},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
                {"type": "x_future_part", "payload": {"k": [1, 2]}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "custom", "custom": {"name": "sql", "input": "select 1"}}
            ], "reasoning_content": "earlier thought", "x_vendor": 7},
            {"role": "tool", "tool_call_id": "call_1", "content": "1"}
        ],
        "tools": [
            {"type": "custom", "custom": {"name": "sql", "description": "run SQL", "format": {"type": "text"}}},
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "x_inner": true}}
        ],
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "name": "f"}]}},
        "reasoning_effort": "minimal",
        "verbosity": "low",
        "prompt_cache_key": "user-42",
        "service_tier": "flex",
        "logprobs": true,
        "top_logprobs": 2,
        "max_completion_tokens": 50
    })
}

fn rich_response() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-5",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hi.",
                "refusal": null,
                "annotations": [{"type": "url_citation", "url_citation": {"url": "https://x.test", "title": "x", "start_index": 0, "end_index": 3}}],
                "audio": {"id": "audio_1", "data": "AAAA", "expires_at": 1, "transcript": "Hi."},
                "reasoning_content": "thought"
            },
            "logprobs": {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}], "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 60, "audio_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 25, "audio_tokens": 5}
        },
        "service_tier": "flex",
        "system_fingerprint": "fp_1",
        "x_future": {"a": 1}
    })
}

#[tokio::test]
async fn every_request_field_reaches_the_wire_and_every_response_field_comes_back() {
    let server = serve(|_| Reply::json(200, rich_response())).await;
    let sent = rich_request();
    let req: ChatRequest = serde_json::from_value(sent.clone()).unwrap();
    let resp = guard(provider(&server).oneshot(LlmRequest::chat(req)))
        .await
        .unwrap();

    // The wire body is the request, field for field (the provider writes
    // max_completion_tokens for this model family or max_tokens, its choice).
    let mut wire = server.last().json();
    let mut expected = sent;
    // OpenAI's API takes no reasoning back in chat: that one field is dropped (an
    // OpenAI-compatible server gets it, see below).
    expected["messages"][2]
        .as_object_mut()
        .unwrap()
        .remove("reasoning_content");
    for v in [&mut wire, &mut expected] {
        let o = v.as_object_mut().unwrap();
        let max = o
            .remove("max_tokens")
            .or_else(|| o.remove("max_completion_tokens"));
        assert_eq!(max, Some(json!(50)));
    }
    assert_eq!(wire, expected);

    let usage = resp.usage.unwrap();
    assert_eq!(
        (
            usage.cached_prompt_tokens,
            usage.audio_prompt_tokens,
            usage.reasoning_tokens,
            usage.audio_completion_tokens
        ),
        (60, 10, 25, 5)
    );
    let chat = resp.as_chat().unwrap();
    assert_eq!(chat.service_tier.as_deref(), Some("flex"));
    assert_eq!(chat.extra["x_future"], json!({"a": 1}));
    let c = &chat.choices[0];
    assert_eq!(c.logprobs.as_ref().unwrap()["content"][0]["token"], "Hi");
    assert_eq!(c.message.text(), "Hi.");
    assert_eq!(c.message.refusal, None);
    assert_eq!(c.message.reasoning_content.as_deref(), Some("thought"));
    assert_eq!(c.message.extra["annotations"][0]["type"], "url_citation");
    assert_eq!(c.message.extra["audio"]["transcript"], "Hi.");
}

#[tokio::test]
async fn a_refusal_stays_apart_from_the_content() {
    let server = serve(|_| {
        Reply::json(
            200,
            json!({
                "id": "c", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]
            }),
        )
    })
    .await;
    let req = ChatRequest::new("m", vec![llm_tower_core::Message::user("x")]);
    let resp = guard(provider(&server).oneshot(LlmRequest::chat(req)))
        .await
        .unwrap();
    let m = &resp.as_chat().unwrap().choices[0].message;
    assert_eq!(m.content, None);
    assert_eq!(m.refusal.as_deref(), Some("I can't help with that."));
}

#[tokio::test]
async fn streamed_reasoning_refusal_logprobs_and_custom_calls_fold_into_the_whole_answer() {
    let chunks = [
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp", "service_tier": "default",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"reasoning_content": "think "}, "finish_reason": null}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"reasoning_content": "more"}, "finish_reason": null}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": "Hel"}, "logprobs": {"content": [{"token": "Hel", "logprob": -0.2, "bytes": null, "top_logprobs": []}]}, "finish_reason": null}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": "lo"}, "logprobs": {"content": [{"token": "lo", "logprob": -0.3, "bytes": null, "top_logprobs": []}]}, "finish_reason": null}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_9", "type": "custom", "custom": {"name": "sql", "input": "select 2"}}]}, "finish_reason": null}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
               "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14, "completion_tokens_details": {"reasoning_tokens": 3}}}),
    ];
    let datas: Vec<String> = chunks
        .iter()
        .map(Value::to_string)
        .chain(["[DONE]".to_owned()])
        .collect();
    let server = serve(move |_| Reply::sse_data(&datas)).await;
    let mut req = ChatRequest::new("m", vec![llm_tower_core::Message::user("x")]);
    req.stream = true;
    let resp = guard(provider(&server).oneshot(LlmRequest::chat(req)))
        .await
        .unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    let stream: llm_tower_core::ChatStream = Box::pin(futures_util::stream::iter(items));
    let (whole, usage) = collect_chat_stream(stream).await.unwrap();
    let m = &whole.choices[0].message;
    assert_eq!(m.text(), "Hello");
    assert_eq!(m.reasoning_content.as_deref(), Some("think more"));
    assert_eq!(m.tool_calls[0].kind, "custom");
    assert_eq!(m.tool_calls[0].extra["custom"]["input"], "select 2");
    let lp = whole.choices[0].logprobs.as_ref().unwrap()["content"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(lp, 2);
    assert_eq!(whole.system_fingerprint.as_deref(), Some("fp"));
    assert_eq!(whole.service_tier.as_deref(), Some("default"));
    assert_eq!(usage.unwrap().reasoning_tokens, 3);
}

#[tokio::test]
async fn other_providers_fields_are_dropped_for_openai_and_kept_for_compatible_servers() {
    let server = serve(|_| Reply::json(200, rich_response())).await;
    let sent = json!({
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": "a", "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
            {"role": "user", "content": "b", "cache_control": {"type": "ephemeral"}}
        ],
        "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}],
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "top_k": 5
    });
    let req: ChatRequest = serde_json::from_value(sent.clone()).unwrap();
    guard(provider(&server).oneshot(LlmRequest::chat(req.clone())))
        .await
        .unwrap();
    let wire = server.last().json();
    let text = wire.to_string();
    for foreign in ["cache_control", "thinking", "top_k", "signature"] {
        assert!(!text.contains(foreign), "{foreign} reached OpenAI: {text}");
    }
    assert_eq!(wire["reasoning_effort"], "high");
    assert_eq!(wire["messages"][0]["content"][0]["text"], "rules");

    // An OpenAI-compatible server gets the request as sent.
    let compat = llm_tower_providers::openai_compat::OpenAiCompatible::new(
        llm_tower_providers::openai_compat::OpenAiCompatibleConfig::new(format!(
            "{}/v1",
            server.url()
        )),
        HttpClient::with_config(HttpConfig::default()).unwrap(),
    )
    .unwrap();
    guard(compat.oneshot(LlmRequest::chat(req))).await.unwrap();
    let wire = server.last().json();
    assert_eq!(wire["top_k"], 5);
    assert_eq!(wire["thinking"]["budget_tokens"], 10000);
    assert_eq!(wire["messages"][1]["thinking_blocks"][0]["signature"], "s");
}
