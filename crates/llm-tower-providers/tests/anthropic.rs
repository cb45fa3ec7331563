//! The Anthropic provider against a local server speaking the Messages API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{End, Reply, TestServer, collect, guard, serve};
use llm_tower_core::{
    ChatRequest, Error, ErrorKind, FunctionDef, LimitOrigin, LlmRequest, LlmResponse, ManualClock,
    Message, Role, Tool, UsageSource,
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
        json!([{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}])
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
        json!({"type": "tool_result", "tool_use_id": "toolu_01A", "content": [{"type": "text", "text": "15C, sunny"}]})
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
