//! The Anthropic provider against a local server speaking the Messages API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{End, Reply, TestServer, collect, guard, serve};
use llm_tower_core::{
    ChatRequest, Content, ContentPart, Error, ErrorKind, FileData, FunctionDef, LimitOrigin,
    LlmRequest, LlmResponse, ManualClock, Message, Role, ThinkingBlock, Tool, UsageSource,
};
use llm_tower_providers::anthropic::{Anthropic, AnthropicConfig};
use llm_tower_providers::http::{HttpClient, HttpConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "sk-ant-api03-SECRET-abcdef0123456789";

fn provider_with(server: &TestServer, cfg: AnthropicConfig, http: HttpConfig) -> Anthropic {
    Anthropic::new(
        cfg.base_url(server.url()),
        HttpClient::with_config(http).unwrap(),
    )
    .unwrap()
}

fn provider(server: &TestServer) -> Anthropic {
    provider_with(server, AnthropicConfig::new(KEY), HttpConfig::default())
}

async fn call(p: &Anthropic, req: LlmRequest) -> Result<LlmResponse, Error> {
    guard(p.clone().oneshot(req)).await
}

fn chat_req() -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(
        "claude-sonnet-4-5",
        vec![Message::system("Be brief."), Message::user("Hello, Claude")],
    ))
}

fn stream_req() -> LlmRequest {
    LlmRequest::chat(
        ChatRequest::new("claude-sonnet-4-5", vec![Message::user("Hello")]).streaming(),
    )
}

fn message_body() -> Value {
    json!({
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi! My name is Claude."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

fn text_stream() -> Vec<(&'static str, String)> {
    vec![
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10, "output_tokens": 1}}}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        ("ping", json!({"type": "ping"}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}).to_string()),
        ("message_stop", json!({"type": "message_stop"}).to_string()),
    ]
}

#[tokio::test]
async fn plain_chat_sends_headers_system_and_default_max_tokens() {
    let server = serve(|_| Reply::json(200, message_body())).await;
    let p = provider_with(
        &server,
        AnthropicConfig::new(KEY)
            .default_max_tokens(333)
            .beta("prompt-caching-2024-07-31"),
        HttpConfig::default(),
    );
    let resp = call(&p, chat_req()).await.unwrap();
    let sent = server.last();
    assert_eq!(sent.uri.path(), "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("prompt-caching-2024-07-31")
    );
    assert!(sent.header("authorization").is_none());
    let body = sent.json();
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(body["max_tokens"], 333);
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Hello, Claude"}])
    );
    let chat = resp.as_chat().unwrap();
    assert_eq!(chat.text(), "Hi! My name is Claude.");
    assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(chat.choices[0].message.role, Role::Assistant);
    let u = resp.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (2095, 503, 2598)
    );
    assert_eq!(resp.meta.provider.as_deref(), Some("anthropic"));
    assert_eq!(
        resp.meta.model.as_deref(),
        Some("claude-sonnet-4-5-20250929")
    );
}

#[tokio::test]
async fn tool_use_round_trip() {
    let server = serve(|req| {
        let body = req.json();
        if body["messages"].as_array().unwrap().len() == 1 {
            Reply::json(
                200,
                json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                  "content": [
                    {"type": "text", "text": "I'll check the weather."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "San Francisco, CA"}}
                  ],
                  "stop_reason": "tool_use", "stop_sequence": null,
                  "usage": {"input_tokens": 100, "output_tokens": 30}}),
            )
        } else {
            Reply::json(
                200,
                json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                  "content": [{"type": "text", "text": "It is 15C and sunny."}],
                  "stop_reason": "end_turn", "usage": {"input_tokens": 150, "output_tokens": 9}}),
            )
        }
    })
    .await;
    let p = provider(&server);
    let mut chat = ChatRequest::new("claude-sonnet-4-5", vec![Message::user("Weather in SF?")]);
    chat.tools = vec![Tool::function(FunctionDef {
        extra: Default::default(),
        name: "get_weather".into(),
        description: Some("Get the current weather".into()),
        parameters: Some(
            json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
        ),
        strict: None,
    })];
    chat.tool_choice = Some(json!("required"));
    let first = call(&p, LlmRequest::chat(chat.clone())).await.unwrap();
    let sent = server.last().json();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["location"])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    let choice = &first.as_chat().unwrap().choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.text(), "I'll check the weather.");
    let call0 = &choice.message.tool_calls[0];
    assert_eq!(call0.id, "toolu_01A");
    let args: Value = serde_json::from_str(&call0.function.arguments).unwrap();
    assert_eq!(args, json!({"location": "San Francisco, CA"}));

    chat.messages.push(choice.message.clone());
    chat.messages.push(Message::tool("toolu_01A", "15C, sunny"));
    let second = call(&p, LlmRequest::chat(chat)).await.unwrap();
    assert_eq!(second.as_chat().unwrap().text(), "It is 15C and sunny.");
    let sent = server.last().json();
    assert_eq!(sent["messages"][1]["role"], "assistant");
    assert_eq!(
        sent["messages"][1]["content"][1],
        json!({"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "San Francisco, CA"}})
    );
    assert_eq!(sent["messages"][2]["role"], "user");
    assert_eq!(
        sent["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_01A", "content": "15C, sunny"})
    );
}

#[tokio::test]
async fn streaming_with_usage_added_exactly_once() {
    let server = serve(|_| Reply::sse_events(&text_stream())).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    assert!(resp.meta.time_to_first_token.is_some());
    assert_eq!(
        resp.meta.model.as_deref(),
        Some("claude-sonnet-4-5-20250929")
    );
    assert_eq!(server.last().json()["stream"], true);
    assert!(server.last().json().get("stream_options").is_none());
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let text: String = chunks.iter().map(|c| c.text()).collect();
    assert_eq!(text, "Hello!");
    let usages: Vec<_> = chunks.iter().filter_map(|c| c.usage).collect();
    assert_eq!(usages.len(), 1);
    let u = usages[0];
    assert_eq!(u.prompt_tokens, 35, "25 input + 10 cache read");
    assert_eq!(u.cached_prompt_tokens, 10);
    assert_eq!(
        u.completion_tokens, 15,
        "the message_delta count, not 1 + 15"
    );
    assert_eq!(u.total_tokens, 50);
    assert_eq!(u.source, UsageSource::Provider);
    assert!(chunks.last().unwrap().usage.is_some());
    let finish = chunks
        .iter()
        .find_map(|c| c.choices.first()?.finish_reason.clone());
    assert_eq!(finish.as_deref(), Some("stop"));
}

#[tokio::test]
async fn streamed_tool_use_becomes_indexed_tool_call_deltas() {
    let events = vec![
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_2", "model": "claude-haiku-4-5", "usage": {"input_tokens": 400, "output_tokens": 1}}}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me look."}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San Fra"}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "ncisco, CA\"}"}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 1}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 2}).to_string()),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 89}}).to_string()),
        ("message_stop", json!({"type": "message_stop"}).to_string()),
    ];
    let server = serve(move |_| Reply::sse_events(&events)).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let deltas: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| &c.delta.tool_calls)
        .collect();
    let args = |i: u32| -> String {
        deltas
            .iter()
            .filter(|d| d.index == i)
            .filter_map(|d| d.function.as_ref()?.arguments.clone())
            .collect()
    };
    assert_eq!(args(0), "{\"location\": \"San Francisco, CA\"}");
    assert_eq!(args(1), "{}");
    assert_eq!(deltas.iter().filter(|d| d.id.is_some()).count(), 2);
    assert_eq!(deltas[0].id.as_deref(), Some("toolu_1"));
    let u = chunks.last().unwrap().usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (400, 89));
}

#[tokio::test]
async fn streamed_parallel_tool_use_is_assembled() {
    let events = vec![
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_3", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 512, "output_tokens": 1}}}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking both."}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_w", "name": "get_weather", "input": {}}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"Par"}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "is\"}"}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 1}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_t", "name": "get_time", "input": {}}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"tz\": \"CET\"}"}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 2}).to_string()),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 120}}).to_string()),
        ("message_stop", json!({"type": "message_stop"}).to_string()),
    ];
    let server = serve(move |_| Reply::sse_events(&events)).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let (chat, usage) = guard(llm_tower_core::collect_chat_stream(
        resp.into_stream().unwrap(),
    ))
    .await
    .unwrap();
    assert_eq!(chat.id, "msg_3");
    assert_eq!(chat.model, "claude-sonnet-4-5-20250929");
    let u = usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (512, 120));
    let choice = &chat.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.text(), "Checking both.");
    let calls: Vec<_> = choice
        .message
        .tool_calls
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.function.name.as_str(),
                c.function.arguments.as_str(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("toolu_w", "get_weather", r#"{"location": "Paris"}"#),
            ("toolu_t", "get_time", r#"{"tz": "CET"}"#),
        ]
    );
}

#[tokio::test]
async fn stream_cut_in_the_middle_is_an_error_not_a_hang() {
    let server = serve(|_| Reply::sse_events(&text_stream()[..4]).ending(End::Abort)).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.provider(), Some("anthropic"));
}

#[tokio::test]
async fn stream_without_message_stop_is_an_error() {
    let server = serve(|_| Reply::sse_events(&text_stream()[..7])).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.message().contains("message_stop"), "{err}");
    assert!(
        items
            .iter()
            .all(|i| i.as_ref().map_or(true, |c| c.usage.is_none()))
    );
}

#[tokio::test]
async fn overloaded_error_event_before_output_fails_the_call() {
    let mut events = text_stream()[..1].to_vec();
    events.push((
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            .to_string(),
    ));
    let server = serve(move |_| Reply::sse_events(&events)).await;
    let err = call(&provider(&server), stream_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert!(err.is_retryable());
    assert_eq!(err.provider(), Some("anthropic"));
}

#[tokio::test]
async fn rate_limited_429_with_anthropic_limits_relative_to_the_clock() {
    // 2026-01-01T00:00:00Z
    let clock = ManualClock::starting_at_unix(1_767_225_600);
    let server = serve(|_| {
        Reply::json(
            429,
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
        )
        .header("retry-after", "12")
        .header("anthropic-ratelimit-requests-limit", "50")
        .header("anthropic-ratelimit-requests-remaining", "49")
        .header("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:01Z")
        .header("anthropic-ratelimit-input-tokens-limit", "30000")
        .header("anthropic-ratelimit-input-tokens-remaining", "0")
        .header("anthropic-ratelimit-input-tokens-reset", "2026-01-01T00:00:12Z")
        .header("anthropic-ratelimit-output-tokens-limit", "8000")
        .header("anthropic-ratelimit-output-tokens-remaining", "8000")
        .header("anthropic-ratelimit-output-tokens-reset", "2026-01-01T00:00:00Z")
    })
    .await;
    let p = provider_with(
        &server,
        AnthropicConfig::new(KEY).clock(Arc::new(clock)),
        HttpConfig::default(),
    );
    let err = call(&p, chat_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.origin(), Some(LimitOrigin::Provider));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
    let l = err.limits().unwrap();
    assert_eq!(l.requests.unwrap().reset, Some(Duration::from_secs(1)));
    let input = l.input_tokens.unwrap();
    assert_eq!((input.limit, input.remaining), (Some(30_000), Some(0)));
    assert_eq!(input.reset, Some(Duration::from_secs(12)));
    assert_eq!(l.output_tokens.unwrap().reset, Some(Duration::ZERO));
}

#[tokio::test]
async fn error_statuses_map_to_kinds() {
    let server = serve(|req| match req.json()["model"].as_str() {
        Some("overloaded") => Reply::json(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        Some("long") => Reply::json(400, json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 208310 tokens > 200000 maximum"}})),
        Some("forbidden") => Reply::json(403, json!({"type": "error", "error": {"type": "permission_error", "message": "Your API key does not have permission to use the specified resource."}})),
        Some("missing") => Reply::json(404, json!({"type": "error", "error": {"type": "not_found_error", "message": "model: missing"}})),
        _ => Reply::json(500, json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}})),
    })
    .await;
    let p = provider(&server);
    for (model, kind, retryable) in [
        ("overloaded", ErrorKind::Overloaded, true),
        ("long", ErrorKind::ContextLengthExceeded, false),
        ("forbidden", ErrorKind::Unauthorized, false),
        ("missing", ErrorKind::InvalidRequest, false),
        ("other", ErrorKind::Provider { status: 500 }, true),
    ] {
        let mut req = chat_req();
        req.set_model(model);
        let e = call(&p, req).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{model}: {e}");
        assert_eq!(e.is_retryable(), retryable, "{model}");
        assert_eq!(e.provider(), Some("anthropic"));
    }
}

#[tokio::test]
async fn the_key_never_appears_in_errors() {
    let server = serve(|_| {
        Reply::json(
            401,
            json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {KEY}")}}),
        )
    })
    .await;
    let p = provider(&server);
    let e = call(&p, chat_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(!e.to_string().contains("SECRET"), "{e}");
    assert!(!format!("{e:?}").contains("SECRET"));
    assert!(!format!("{p:?}").contains("SECRET"));
}

#[tokio::test]
async fn slow_server_and_garbage_body() {
    let server = serve(|req| match req.json()["model"].as_str() {
        Some("slow") => Reply::stall(),
        _ => Reply::bytes(
            200,
            "application/json",
            "{\"type\":\"message\",\"content\":",
        ),
    })
    .await;
    let p = provider_with(
        &server,
        AnthropicConfig::new(KEY),
        HttpConfig::default().request_timeout(Duration::from_millis(200)),
    );
    let mut req = chat_req();
    req.set_model("slow");
    assert_eq!(call(&p, req).await.unwrap_err().kind(), ErrorKind::Timeout);
    let e = call(&p, chat_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
}

#[tokio::test]
async fn gzip_body_is_decoded() {
    let server = serve(|_| Reply::json(200, message_body()).gzip()).await;
    let resp = call(&provider(&server), chat_req()).await.unwrap();
    assert_eq!(resp.as_chat().unwrap().text(), "Hi! My name is Claude.");
}

#[tokio::test]
async fn health_uses_the_models_endpoint_and_other_operations_are_refused() {
    let server = serve(|_| Reply::json(200, json!({"data": [], "has_more": false}))).await;
    let p = provider(&server);
    guard(p.health()).await.unwrap();
    let sent = server.last();
    assert_eq!(
        (sent.method.as_str(), sent.uri.path()),
        ("GET", "/v1/models")
    );
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    let e = call(
        &p,
        LlmRequest::embeddings(llm_tower_core::EmbeddingsRequest {
            model: "x".into(),
            input: llm_tower_core::EmbeddingInput::One("hi".into()),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn tool_message_without_id_is_refused_before_sending() {
    let server = serve(|_| Reply::json(200, message_body())).await;
    let mut tool = Message::tool("", "42");
    tool.tool_call_id = None;
    let req = LlmRequest::chat(ChatRequest::new(
        "claude-sonnet-4-5",
        vec![Message::user("q"), tool],
    ));
    let e = call(&provider(&server), req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(
        e.message()
            .contains("messages[1].tool_call_id: required for tool messages"),
        "{e}"
    );
    assert!(server.requests().is_empty());
}

// ---- issue 10: a lossless mapping ----

/// Signatures with every character JSON or base64 can make awkward.
const SIG1: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+/Z0w==";
const SIG2: &str = "ErUBCkYIBRgCIkB\"quoted\"\\slash/é+FjM9Q==";

fn weather_tool() -> Tool {
    Tool::function(FunctionDef {
        extra: Default::default(),
        name: "get_weather".into(),
        description: Some("Get the weather".into()),
        parameters: Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        strict: None,
    })
}

fn thinking_turn(
    id: &str,
    thinking: &str,
    sig: &str,
    text: Option<&str>,
    tool: Option<(&str, Value)>,
) -> Value {
    let mut content = vec![json!({"type": "thinking", "thinking": thinking, "signature": sig})];
    if let Some(t) = text {
        content.push(json!({"type": "text", "text": t}));
    }
    let stop = if let Some((tid, input)) = &tool {
        content.push(json!({"type": "tool_use", "id": tid, "name": "get_weather", "input": input}));
        "tool_use"
    } else {
        "end_turn"
    };
    json!({"id": id, "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": content, "stop_reason": stop, "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 50}})
}

#[tokio::test]
async fn three_turn_thinking_and_tool_use_sends_the_signatures_back_unchanged() {
    let server = serve(|req| {
        let body = req.json();
        match body["messages"].as_array().unwrap().len() {
            1 => Reply::json(
                200,
                thinking_turn(
                    "msg_1",
                    "Need Paris weather.",
                    SIG1,
                    Some("Checking Paris."),
                    Some(("toolu_1", json!({"city": "Paris"}))),
                ),
            ),
            3 => Reply::json(
                200,
                thinking_turn(
                    "msg_2",
                    "Now Rome.",
                    SIG2,
                    None,
                    Some(("toolu_2", json!({"city": "Rome"}))),
                ),
            ),
            _ => Reply::json(
                200,
                thinking_turn("msg_3", "Compare.", "sig3", Some("Rome is warmer."), None),
            ),
        }
    })
    .await;
    let p = provider(&server);
    let mut chat = ChatRequest::new(
        "claude-sonnet-4-5",
        vec![Message::user("Paris or Rome warmer?")],
    );
    chat.tools = vec![weather_tool()];
    chat.max_tokens = Some(8000);
    chat.extra.insert(
        "thinking".into(),
        json!({"type": "enabled", "budget_tokens": 4000}),
    );

    let first = call(&p, LlmRequest::chat(chat.clone())).await.unwrap();
    let sent = server.last().json();
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 4000})
    );
    assert_eq!(sent["max_tokens"], 8000);
    let m1 = first.as_chat().unwrap().choices[0].message.clone();
    assert_eq!(m1.reasoning_content.as_deref(), Some("Need Paris weather."));
    chat.messages.push(m1);
    chat.messages.push(Message::tool("toolu_1", "18C"));

    let second = call(&p, LlmRequest::chat(chat.clone())).await.unwrap();
    let raw = server.last();
    let sent = raw.json();
    assert_eq!(
        sent["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "Need Paris weather.", "signature": SIG1},
            {"type": "text", "text": "Checking Paris."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
        ])
    );
    assert_eq!(
        sent["messages"][1]["content"][0]["signature"].as_str(),
        Some(SIG1)
    );
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    let m2 = second.as_chat().unwrap().choices[0].message.clone();
    assert_eq!(m2.content, None);
    chat.messages.push(m2);
    chat.messages.push(Message::tool("toolu_2", "25C"));

    let third = call(&p, LlmRequest::chat(chat)).await.unwrap();
    let raw = server.last();
    let sent = raw.json();
    let msgs = sent["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs[1]["content"][0]["signature"].as_str(), Some(SIG1));
    assert_eq!(
        msgs[3]["content"],
        json!([
            {"type": "thinking", "thinking": "Now Rome.", "signature": SIG2},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ])
    );
    assert_eq!(msgs[3]["content"][0]["signature"].as_str(), Some(SIG2));
    // The signature's JSON encoding on the wire is the one serde_json gives the exact string.
    let encoded = serde_json::to_string(SIG2).unwrap();
    assert!(
        std::str::from_utf8(&raw.body).unwrap().contains(&encoded),
        "signature bytes changed"
    );
    let chat = third.as_chat().unwrap();
    assert_eq!(chat.text(), "Rome is warmer.");
    assert_eq!(chat.choices[0].message.thinking_blocks.len(), 1);
}

fn thinking_message_body() -> Value {
    json!({"id": "msg_t", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "Step one. Step two.", "signature": SIG1},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 20, "output_tokens": 90, "cache_read_input_tokens": 1000,
                  "cache_creation_input_tokens": 300,
                  "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}}})
}

fn thinking_events() -> Vec<(&'static str, String)> {
    let ev = |t: &'static str, v: Value| (t, v.to_string());
    vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_t", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 300,
                      "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200}}}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Step one."}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": " Step two."}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": SIG1}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "check."}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 3}),
        ),
        ev(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 90}}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ]
}

#[tokio::test]
async fn streamed_thinking_assembles_into_the_non_streamed_response() {
    let server = serve(|req| {
        if req.json()["stream"] == true {
            Reply::sse_events(&thinking_events())
        } else {
            Reply::json(200, thinking_message_body())
        }
    })
    .await;
    let p = provider(&server);
    let mut chat = ChatRequest::new("claude-sonnet-4-5", vec![Message::user("Weather in Oslo?")]);
    chat.tools = vec![weather_tool()];
    let whole = call(&p, LlmRequest::chat(chat.clone())).await.unwrap();
    let whole_usage = whole.usage.unwrap();
    let whole = whole.as_chat().unwrap().clone();
    let streamed = call(&p, LlmRequest::chat(chat.streaming())).await.unwrap();
    let (assembled, usage) = guard(llm_tower_core::collect_chat_stream(
        streamed.into_stream().unwrap(),
    ))
    .await
    .unwrap();
    assert_eq!(assembled.choices[0].message, whole.choices[0].message);
    assert_eq!(
        assembled.choices[0].finish_reason,
        whole.choices[0].finish_reason
    );
    assert_eq!((&assembled.id, &assembled.model), (&whole.id, &whole.model));
    assert_eq!(usage, Some(whole_usage));
    let m = &whole.choices[0].message;
    assert_eq!(m.reasoning_content.as_deref(), Some("Step one. Step two."));
    assert_eq!(
        m.thinking_blocks,
        vec![
            ThinkingBlock::Thinking {
                thinking: "Step one. Step two.".into(),
                signature: SIG1.into()
            },
            ThinkingBlock::RedactedThinking {
                data: "EmwKAhgBEgy3va3pzix/LafPsn4a".into()
            },
        ]
    );
    assert_eq!(m.tool_calls[0].function.arguments, r#"{"city":"Oslo"}"#);
    assert_eq!(whole.choices[0].extra["anthropic_stop_reason"], "tool_use");
}

#[tokio::test]
async fn cache_control_is_placed_and_cache_usage_tiers_are_exact() {
    let server = serve(|_| Reply::json(200, thinking_message_body())).await;
    let eph = json!({"type": "ephemeral"});
    let hour = json!({"type": "ephemeral", "ttl": "1h"});
    let mut big_system = Message::system("A long shared instruction block.");
    big_system
        .extra
        .insert("cache_control".into(), hour.clone());
    let mut doc = ContentPart::text("A long document.");
    doc.extra_mut()
        .unwrap()
        .insert("cache_control".into(), eph.clone());
    let mut user = Message::user("");
    user.content = Some(Content::Parts(vec![
        doc,
        ContentPart::text("Summarise it."),
    ]));
    let mut last = Message::user("And in French?");
    last.extra.insert("cache_control".into(), eph.clone());
    let mut tool = weather_tool();
    tool.extra.insert("cache_control".into(), hour.clone());
    let mut chat = ChatRequest::new(
        "claude-sonnet-4-5",
        vec![
            Message::system("You are terse."),
            big_system,
            user,
            Message::assistant("Summary."),
            last,
        ],
    );
    chat.tools = vec![tool];
    let resp = call(&provider(&server), LlmRequest::chat(chat))
        .await
        .unwrap();
    let sent = server.last().json();
    assert_eq!(
        sent["system"],
        json!([
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "A long shared instruction block.", "cache_control": hour},
        ])
    );
    assert_eq!(sent["messages"][0]["content"][0]["cache_control"], eph);
    assert!(
        sent["messages"][0]["content"][1]
            .get("cache_control")
            .is_none()
    );
    assert!(
        sent["messages"][1]["content"][0]
            .get("cache_control")
            .is_none()
    );
    assert_eq!(
        sent["messages"][2]["content"],
        json!([{"type": "text", "text": "And in French?", "cache_control": eph}])
    );
    assert_eq!(sent["tools"][0]["cache_control"], hour);
    let u = resp.usage.unwrap();
    assert_eq!(u.prompt_tokens, 20 + 1000 + 300);
    assert_eq!(u.cached_prompt_tokens, 1000);
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (100, 200)
    );
    assert_eq!(u.uncached_prompt_tokens(), 20);
    assert_eq!((u.completion_tokens, u.total_tokens), (90, 1410));
}

#[tokio::test]
async fn documents_effort_betas_and_no_openai_only_fields_on_the_wire() {
    let server = serve(|_| Reply::json(200, message_body())).await;
    let p = provider_with(
        &server,
        AnthropicConfig::new(KEY)
            .beta("pdfs-2024-09-25")
            .beta("files-api-2025-04-14"),
        HttpConfig::default(),
    );
    let mut user = Message::user("");
    user.content = Some(Content::Parts(vec![
        ContentPart::File {
            file: FileData {
                file_id: None,
                file_data: Some("data:application/pdf;base64,JVBERi0xLjQK".into()),
                filename: Some("report.pdf".into()),
                extra: Default::default(),
            },
            extra: Default::default(),
        },
        ContentPart::File {
            file: FileData {
                file_id: Some("file_011CPMxVD3fHLUhvTqtsQA5w".into()),
                ..FileData::default()
            },
            extra: Default::default(),
        },
        ContentPart::text("Summarise both."),
    ]));
    let mut chat = ChatRequest::new("claude-sonnet-4-5", vec![user]);
    chat.temperature = Some(0.7);
    chat.seed = Some(42);
    chat.presence_penalty = Some(0.5);
    chat.frequency_penalty = Some(0.5);
    chat.user = Some("end-user-7".into());
    chat.stream_options = Some(llm_tower_core::StreamOptions {
        extra: Default::default(),
        include_usage: true,
    });
    for (k, v) in [
        ("reasoning_effort", json!("medium")),
        ("service_tier", json!("priority")),
        ("verbosity", json!("high")),
        ("prompt_cache_key", json!("k1")),
        ("metadata", json!({"session": "s1"})),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("parallel_tool_calls", json!(true)),
        ("store", json!(false)),
        ("modalities", json!(["text"])),
        ("audio", json!({"voice": "alloy", "format": "mp3"})),
        ("prediction", json!({"type": "content", "content": "x"})),
        ("web_search_options", json!({"search_context_size": "low"})),
        (
            "anthropic_beta",
            json!(["files-api-2025-04-14", "context-1m-2025-08-07"]),
        ),
    ] {
        chat.extra.insert(k.into(), v);
    }
    call(&p, LlmRequest::chat(chat)).await.unwrap();
    let raw = server.last();
    assert_eq!(
        raw.header("anthropic-beta"),
        Some("pdfs-2024-09-25,files-api-2025-04-14,context-1m-2025-08-07")
    );
    let sent = raw.json();
    let mut keys: Vec<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["max_tokens", "messages", "metadata", "model", "thinking"]
    );
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert_eq!(
        sent["max_tokens"],
        4096 + 4096,
        "default max_tokens + budget"
    );
    assert_eq!(sent["metadata"], json!({"user_id": "end-user-7"}));
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}, "title": "report.pdf"},
            {"type": "document", "source": {"type": "file", "file_id": "file_011CPMxVD3fHLUhvTqtsQA5w"}},
            {"type": "text", "text": "Summarise both."},
        ])
    );
}

#[tokio::test]
async fn response_extras_and_raw_stop_reason_are_kept() {
    let server = serve(|_| {
        let mut b = message_body();
        b["stop_reason"] = json!("stop_sequence");
        b["stop_sequence"] = json!("###");
        b["container"] = json!({"id": "container_1", "expires_at": "2026-01-01T00:00:00Z"});
        b["usage"]["service_tier"] = json!("standard");
        Reply::json(200, b)
    })
    .await;
    let resp = call(&provider(&server), chat_req()).await.unwrap();
    let chat = resp.as_chat().unwrap();
    assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        chat.choices[0].extra["anthropic_stop_reason"],
        "stop_sequence"
    );
    assert_eq!(chat.extra["stop_sequence"], "###");
    assert_eq!(chat.extra["container"]["id"], "container_1");
    assert_eq!(chat.service_tier.as_deref(), Some("standard"));
}

#[tokio::test]
async fn audio_input_is_refused_before_sending() {
    let server = serve(|_| Reply::json(200, message_body())).await;
    let mut user = Message::user("");
    user.content = Some(Content::Parts(vec![ContentPart::InputAudio {
        input_audio: llm_tower_core::InputAudio {
            data: "UklGRg==".into(),
            format: "wav".into(),
            extra: Default::default(),
        },
        extra: Default::default(),
    }]));
    let req = LlmRequest::chat(ChatRequest::new("claude-sonnet-4-5", vec![user]));
    let e = call(&provider(&server), req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(
        e.message()
            .contains("Anthropic does not accept audio input"),
        "{e}"
    );
    assert!(server.requests().is_empty());
}
