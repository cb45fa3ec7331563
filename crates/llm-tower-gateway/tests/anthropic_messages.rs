//! The Anthropic Messages API (`/v1/messages`, `/v1/messages/count_tokens`) over the
//! in-process gateway: the same stack as the OpenAI routes, Anthropic's shapes at the edge.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ALICE, CHAT_MODEL, Gateway, default_state, generous, keys, state_with, tracker};
use http::StatusCode;
use llm_tower_core::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, ClientHeaders, Content, Delta,
    Error, LlmRequest, LlmResponse, Message, RequestBody, ResponseBody, Role, ThinkingBlock, Usage,
    UsageSource,
};
use llm_tower_gateway::{AppState, Settings};
use llm_tower_layers::rate_limit::Algorithm;
use llm_tower_layers::token_count::{TokenCounter, Tokenizers};
use llm_tower_providers::mock::MockProvider;
use serde_json::{Value, json};
use tower::ServiceExt;

const THINKING_MODEL: &str = "claude-thinking-stub";

fn body(stream: bool) -> Value {
    json!({
        "model": CHAT_MODEL,
        "max_tokens": 64,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say something about towers."}],
        "stream": stream,
    })
}

fn key(token: &str) -> [(&str, &str); 2] {
    [("x-api-key", token), ("anthropic-version", "2023-06-01")]
}

/// `(event name, data)` of an Anthropic SSE body; checks every event's framing and that
/// its `type` is its name.
fn events(reply: &common::Reply) -> Vec<(String, Value)> {
    let text = reply.text();
    assert!(text.ends_with("\n\n"), "{text:?}");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str(), "{e}");
            (name, data)
        })
        .collect()
}

fn anthropic_error(reply: &common::Reply, kind: &str) -> Value {
    let v = reply.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    let id = reply.header("request-id").unwrap();
    assert_eq!(reply.header("x-request-id"), Some(id));
    assert_eq!(v["request_id"], id);
    v
}

// ---------------------------------------------------------------------------------------
// A stub provider that records what the stack gave it and answers with thinking.

type Seen = Arc<Mutex<Vec<(ChatRequest, Option<ClientHeaders>)>>>;

fn thinking_blocks() -> Vec<ThinkingBlock> {
    vec![
        ThinkingBlock::Thinking {
            thinking: "Let me think.".into(),
            signature: "sig-1".into(),
        },
        ThinkingBlock::RedactedThinking {
            data: "opaque".into(),
        },
    ]
}

fn usage() -> Usage {
    Usage::new(50, 20, UsageSource::Provider)
        .with_cached(10)
        .with_cache_writes(5, 1)
}

fn stub_answer(req: LlmRequest, seen: &Seen) -> Result<LlmResponse, Error> {
    let client = req.extensions.get::<ClientHeaders>().cloned();
    let RequestBody::Chat(chat) = req.body else {
        return Err(Error::invalid_request("chat only"));
    };
    let stream = chat.stream;
    seen.lock().unwrap().push((chat, client));
    let chunk = |delta: Delta, finish: Option<&str>| {
        Ok(
            ChatChunk::new("stub-1", THINKING_MODEL, 0).with_choice(ChunkChoice::new(
                0,
                delta,
                finish.map(str::to_owned),
            )),
        )
    };
    let mut resp = if stream {
        let mut last = ChatChunk::new("stub-1", THINKING_MODEL, 0);
        last.usage = Some(usage());
        let chunks = vec![
            chunk(
                Delta {
                    role: Some(Role::Assistant),
                    reasoning_content: Some("Let me ".into()),
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    reasoning_content: Some("think.".into()),
                    thinking_blocks: vec![thinking_blocks()[0].clone()],
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    thinking_blocks: vec![thinking_blocks()[1].clone()],
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    content: Some("The answer".into()),
                    ..Delta::default()
                },
                None,
            ),
            chunk(
                Delta {
                    content: Some(" is 4.".into()),
                    ..Delta::default()
                },
                Some("stop"),
            ),
            Ok(last),
        ];
        LlmResponse::new(ResponseBody::Stream(Box::pin(futures_util::stream::iter(
            chunks,
        ))))
    } else {
        let mut m = Message::assistant("The answer is 4.");
        m.thinking_blocks = thinking_blocks();
        m.reasoning_content = Some("Let me think.".into());
        LlmResponse::new(ResponseBody::Chat(ChatResponse::new(
            "stub-1",
            THINKING_MODEL,
            0,
            vec![ChatChoice::new(0, m, Some("stop".into()))],
        )))
    };
    resp.usage = Some(usage());
    Ok(resp)
}

/// A gateway state whose stack is the stub (for `THINKING_MODEL`) over the default mock
/// stack (for every other model); the stub's requests are recorded.
fn stub_state() -> (AppState, Seen) {
    let seen: Seen = Arc::default();
    let t = tracker();
    let mock = common::stack(MockProvider::new(), t, generous());
    let recorded = seen.clone();
    let svc = tower::service_fn(move |req: LlmRequest| {
        let mock = mock.clone();
        let seen = recorded.clone();
        async move {
            if req.model() == THINKING_MODEL {
                stub_answer(req, &seen)
            } else {
                mock.oneshot(req).await
            }
        }
    });
    let state = AppState::builder(svc)
        .models([CHAT_MODEL, THINKING_MODEL])
        .auth(keys(), true)
        .build();
    (state, seen)
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_message_in_anthropics_shape() {
    let gw = Gateway::start(default_state()).await;
    let r = gw.post("/v1/messages", &key(ALICE), body(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], CHAT_MODEL);
    assert_eq!(v["content"][0]["type"], "text");
    assert!(!v["content"][0]["text"].as_str().unwrap().is_empty());
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0, "{v}");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(v["usage"]["cache_creation"]["ephemeral_5m_input_tokens"], 0);
    let id = r.header("request-id").unwrap();
    assert_eq!(r.header("x-request-id"), Some(id));
}

#[tokio::test]
async fn the_stack_sees_the_same_request_as_on_the_openai_route() {
    let (state, seen) = stub_state();
    let gw = Gateway::start(state).await;
    let r = gw
        .post(
            "/v1/messages",
            &[
                ("authorization", &common::bearer(ALICE)),
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", "interleaved-thinking-2025-05-14, a-2"),
                ("anthropic-beta", "b-3"),
            ],
            json!({
                "model": THINKING_MODEL,
                "max_tokens": 100,
                "system": [
                    {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
                ],
                "messages": [
                    {"role": "user", "content": "What is the weather in Paris?"},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Let me look."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Sunny", "is_error": false},
                        {"type": "text", "text": "Thanks!"}
                    ]}
                ],
                "tools": [{
                    "name": "get_weather", "description": "Weather.",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "cache_control": {"type": "ephemeral"}
                }, {
                    "type": "web_search_20250305", "name": "web_search", "max_uses": 2
                }],
                "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
                "temperature": 0.5, "top_k": 3, "stop_sequences": ["END"],
                "metadata": {"user_id": "user-7"},
                "some_future_field": {"x": 1}
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = seen.lock().unwrap();
    let (chat, client) = &seen[0];
    let client = client.as_ref().unwrap();
    assert_eq!(client.anthropic_version.as_deref(), Some("2023-06-01"));
    assert_eq!(
        client.anthropic_beta,
        ["interleaved-thinking-2025-05-14", "a-2", "b-3"]
    );
    let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::User
        ]
    );
    let Some(Content::Parts(system)) = &chat.messages[0].content else {
        panic!("system parts")
    };
    assert_eq!(
        system[0].extra().unwrap()["cache_control"],
        json!({"type": "ephemeral"})
    );
    let call = &chat.messages[2].tool_calls[0];
    assert_eq!(
        (call.id.as_str(), call.function.name.as_str()),
        ("toolu_1", "get_weather")
    );
    let args: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(chat.messages[2].text(), "Let me look.");
    let tool = &chat.messages[3];
    assert_eq!(tool.tool_call_id.as_deref(), Some("toolu_1"));
    assert_eq!(tool.text(), "Sunny");
    assert_eq!(tool.extra["is_error"], json!(false));
    assert_eq!(chat.messages[4].text(), "Thanks!");
    let f = chat.tools[0].function.as_ref().unwrap();
    assert_eq!(f.name, "get_weather");
    assert_eq!(f.parameters.as_ref().unwrap()["type"], "object");
    assert_eq!(
        chat.tools[0].extra["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(chat.tools[1].kind, "web_search_20250305");
    assert_eq!(chat.tools[1].name(), Some("web_search"));
    assert_eq!(chat.tools[1].extra["max_uses"], json!(2));
    assert_eq!(
        chat.tool_choice,
        Some(json!({"type": "function", "function": {"name": "get_weather"}}))
    );
    assert_eq!(chat.extra["parallel_tool_calls"], json!(false));
    assert_eq!(chat.extra["top_k"], json!(3));
    assert_eq!(chat.extra["some_future_field"], json!({"x": 1}));
    assert_eq!(chat.temperature, Some(0.5));
    assert_eq!(chat.max_tokens, Some(100));
    assert_eq!(chat.user.as_deref(), Some("user-7"));
    assert_eq!(chat.stop.as_ref().unwrap().to_vec(), ["END"]);
}

#[tokio::test]
async fn tool_use_then_a_tool_result_turn_over_the_mock() {
    let gw = Gateway::start(default_state()).await;
    let tools = json!([{"name": "get_weather", "input_schema": {"type": "object"}}]);
    let question = json!({"role": "user", "content": "Weather in Paris?"});
    let r = gw
        .post(
            "/v1/messages",
            &key(ALICE),
            json!({"model": CHAT_MODEL, "max_tokens": 64, "tools": tools, "messages": [question]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    let call = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap()
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({}));
    let r = gw
        .post(
            "/v1/messages",
            &key(ALICE),
            json!({
                "model": CHAT_MODEL, "max_tokens": 64, "tools": tools,
                "messages": [
                    question,
                    {"role": "assistant", "content": v["content"]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": call["id"], "content": [{"type": "text", "text": "Sunny"}]}
                    ]}
                ]
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["stop_reason"], "end_turn", "{v}");
    assert_eq!(v["content"][0]["type"], "text");
}

#[tokio::test]
async fn thinking_blocks_round_trip_in_order() {
    let (state, seen) = stub_state();
    let gw = Gateway::start(state).await;
    let history = json!([
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Add them.", "signature": "sig-a"},
            {"type": "redacted_thinking", "data": "enc-b"},
            {"type": "thinking", "thinking": "Still 4.", "signature": "sig-c"},
            {"type": "text", "text": "4."}
        ]},
        {"role": "user", "content": "And 3 + 3?"}
    ]);
    let r = gw
        .post(
            "/v1/messages",
            &key(ALICE),
            json!({
                "model": THINKING_MODEL, "max_tokens": 2048,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": history,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    {
        let seen = seen.lock().unwrap();
        let chat = &seen[0].0;
        assert_eq!(
            chat.extra["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        assert_eq!(
            chat.messages[1].thinking_blocks,
            [
                ThinkingBlock::Thinking {
                    thinking: "Add them.".into(),
                    signature: "sig-a".into()
                },
                ThinkingBlock::RedactedThinking {
                    data: "enc-b".into()
                },
                ThinkingBlock::Thinking {
                    thinking: "Still 4.".into(),
                    signature: "sig-c".into()
                },
            ]
        );
        assert_eq!(chat.messages[1].text(), "4.");
    }
    let v = r.json();
    assert_eq!(
        v["content"],
        json!([
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "The answer is 4."}
        ])
    );
    assert_eq!(v["id"], "msg_stub-1");
    // prompt 50 = 34 uncached + 10 cache reads + 6 cache writes (5 for 5 minutes, 1 for an hour).
    assert_eq!(
        v["usage"],
        json!({
            "input_tokens": 34, "output_tokens": 20,
            "cache_creation_input_tokens": 6, "cache_read_input_tokens": 10,
            "cache_creation": {"ephemeral_5m_input_tokens": 5, "ephemeral_1h_input_tokens": 1}
        })
    );
}

#[tokio::test]
async fn a_stream_is_anthropics_events_in_order() {
    let gw = Gateway::start(default_state()).await;
    let r = gw.post("/v1/messages", &key(ALICE), body(true)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let ev = events(&r);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(
        names[3..names.len() - 3]
            .iter()
            .all(|n| *n == "content_block_delta")
    );
    let start = &ev[0].1["message"];
    assert!(start["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(start["content"], json!([]));
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        ev[2].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = ev[3..ev.len() - 3]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(!text.is_empty());
    let delta = &ev[ev.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    // The gateway asked the stack for usage although the client could not.
    assert!(
        delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );
    assert!(
        delta["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{delta}"
    );
}

#[tokio::test]
async fn a_streamed_answer_with_thinking_and_signatures() {
    let (state, seen) = stub_state();
    let gw = Gateway::start(state).await;
    let r = gw
        .post(
            "/v1/messages",
            &key(ALICE),
            json!({
                "model": THINKING_MODEL, "max_tokens": 2048, "stream": true,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
                "messages": [{"role": "user", "content": "What is 2 + 2?"}],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        seen.lock().unwrap()[0]
            .0
            .stream_options
            .as_ref()
            .map(|o| o.include_usage),
        Some(true)
    );
    let ev = events(&r);
    let compact: Vec<String> = ev
        .iter()
        .map(|(n, d)| match n.as_str() {
            "content_block_start" => format!(
                "start {} {}",
                d["index"],
                d["content_block"]["type"].as_str().unwrap()
            ),
            "content_block_delta" => format!(
                "delta {} {}",
                d["index"],
                d["delta"]["type"].as_str().unwrap()
            ),
            "content_block_stop" => format!("stop {}", d["index"]),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(
        compact,
        [
            "message_start",
            "ping",
            "start 0 thinking",
            "delta 0 thinking_delta",
            "delta 0 thinking_delta",
            "delta 0 signature_delta",
            "stop 0",
            "start 1 redacted_thinking",
            "stop 1",
            "start 2 text",
            "delta 2 text_delta",
            "delta 2 text_delta",
            "stop 2",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(ev[5].1["delta"]["signature"], "sig-1");
    assert_eq!(ev[7].1["content_block"]["data"], "opaque");
    assert_eq!(ev[13].1["usage"]["input_tokens"], 34);
    assert_eq!(ev[13].1["usage"]["cache_read_input_tokens"], 10);
    assert_eq!(ev[13].1["usage"]["output_tokens"], 20);
}

#[tokio::test]
async fn errors_in_anthropics_shape() {
    let gw = Gateway::start(default_state()).await;
    // A wrong key in x-api-key, and none at all.
    let r = gw.post("/v1/messages", &key("sk-wrong"), body(false)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    anthropic_error(&r, "authentication_error");
    let r = gw.post("/v1/messages", &[], body(false)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    anthropic_error(&r, "authentication_error");
    // 400 naming the field.
    let mut b = body(false);
    b.as_object_mut().unwrap().remove("max_tokens");
    let r = gw.post("/v1/messages", &key(ALICE), b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = anthropic_error(&r, "invalid_request_error");
    assert_eq!(v["error"]["message"], "max_tokens: Field required");
    let mut b = body(false);
    b["messages"][0]["content"] =
        json!([{"type": "image", "source": {"type": "base64", "data": "AAAA"}}]);
    let r = gw.post("/v1/messages", &key(ALICE), b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = anthropic_error(&r, "invalid_request_error");
    assert_eq!(
        v["error"]["message"],
        "messages.0.content.0.source.media_type: Field required"
    );
    // Out of range: the same check as the OpenAI route.
    let mut b = body(false);
    b["temperature"] = json!(7);
    let r = gw.post("/v1/messages", &key(ALICE), b).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let v = anthropic_error(&r, "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature"),
        "{v}"
    );
    // Unknown model, wrong method, not JSON.
    let mut b = body(false);
    b["model"] = json!("no-such-model");
    let r = gw.post("/v1/messages", &key(ALICE), b).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    anthropic_error(&r, "not_found_error");
    let r = gw.get("/v1/messages", &key(ALICE)).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    anthropic_error(&r, "invalid_request_error");
    let r = gw
        .send(
            http::Method::POST,
            "/v1/messages",
            &key(ALICE),
            Some(b"{\"model\":".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    anthropic_error(&r, "invalid_request_error");
}

#[tokio::test]
async fn x_api_key_works_on_the_openai_routes_too() {
    let gw = Gateway::start(default_state()).await;
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("x-api-key", ALICE)],
            common::chat_body(false, None),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = gw.get("/v1/models", &[("x-api-key", ALICE)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = gw
        .post(
            "/v1/chat/completions",
            &[("x-api-key", "sk-wrong")],
            common::chat_body(false, None),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    r.error();
}

#[tokio::test]
async fn rate_limits_are_429_with_retry_after_and_budgets_402_billing_error() {
    let t = tracker();
    let one = Algorithm::sliding_window(1, Duration::from_secs(60)).unwrap();
    let state = state_with(
        common::stack(MockProvider::new(), t.clone(), one),
        t,
        Settings::default(),
    );
    let gw = Gateway::start(state).await;
    let r = gw.post("/v1/messages", &key(ALICE), body(false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = gw.post("/v1/messages", &key(ALICE), body(false)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    anthropic_error(&r, "rate_limit_error");
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    assert!(r.header("retry-after-ms").is_some());

    let t = common::broke_tracker().await;
    let state = state_with(
        common::stack(MockProvider::new(), t.clone(), generous()),
        t,
        Settings::default(),
    );
    let gw = Gateway::start(state).await;
    let r = gw.post("/v1/messages", &key(ALICE), body(false)).await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text());
    anthropic_error(&r, "billing_error");
}

#[tokio::test]
async fn count_tokens_uses_the_gateways_counter() {
    let gw = Gateway::start(default_state()).await;
    let b = json!({
        "model": CHAT_MODEL,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "How many tokens is this?"}],
    });
    let r = gw.post("/v1/messages/count_tokens", &key(ALICE), b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let expected = Tokenizers::new().count_prompt(&RequestBody::Chat(ChatRequest::new(
        CHAT_MODEL,
        vec![
            Message::system("You are terse."),
            Message::user("How many tokens is this?"),
        ],
    )));
    assert_eq!(r.json(), json!({"input_tokens": expected.tokens}));
    assert_eq!(r.header("x-llm-tower-token-count"), Some("exact"));
    assert!(r.header("request-id").is_some());

    // Claude models are always estimated.
    let (state, _) = stub_state();
    let gw = Gateway::start(state).await;
    let r = gw
        .post(
            "/v1/messages/count_tokens",
            &key(ALICE),
            json!({
                "model": THINKING_MODEL,
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "Describe this."},
                    {"type": "image", "source": {"type": "url", "url": "https://example.invalid/a.png"}}
                ]}],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(r.json()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(r.header("x-llm-tower-token-count"), Some("estimate"));

    let r = gw
        .post(
            "/v1/messages/count_tokens",
            &key("sk-wrong"),
            json!({"model": THINKING_MODEL, "messages": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    anthropic_error(&r, "authentication_error");
}

#[tokio::test]
async fn anthropic_python_sdk_example_runs_against_the_gateway() {
    if !common::python_sdk("anthropic") {
        return;
    }
    let (state, seen) = stub_state();
    let gw = Gateway::start(state).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/anthropic_client.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("LLM_TOWER_BASE_URL", format!("http://{}", gw.addr))
        .env("LLM_TOWER_API_KEY", ALICE)
        .env("LLM_TOWER_MODEL", CHAT_MODEL)
        .env("LLM_TOWER_THINKING_MODEL", THINKING_MODEL)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ok: all calls succeeded"), "{stdout}");
    // The SDK's own headers reached the stack, and the thinking blocks went back in order.
    let seen = seen.lock().unwrap();
    let client = seen[0].1.as_ref().unwrap();
    assert!(client.anthropic_version.is_some(), "{client:?}");
    let last = &seen.last().unwrap().0;
    assert_eq!(last.messages[1].thinking_blocks, thinking_blocks());
    assert!(matches!(
        &last.messages[1].content,
        Some(Content::Text(t)) if t == "The answer is 4."
    ));
}

#[tokio::test]
async fn a_config_built_gateway_serves_messages_and_counts_with_the_configs_tokenizers() {
    let built = llm_tower_config::build(&llm_tower_config::Config::embedded_default().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start(AppState::from_built(&built)).await;
    let r = gw
        .post(
            "/v1/messages",
            &[],
            json!({"model": "default", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    let b = json!({"model": "mock/gpt-4o-mini", "messages": [{"role": "user", "content": "How many?"}]});
    let r = gw.post("/v1/messages/count_tokens", &[], b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let expected = built
        .counter()
        .count_prompt(&RequestBody::Chat(ChatRequest::new(
            "mock/gpt-4o-mini",
            vec![Message::user("How many?")],
        )));
    assert_eq!(r.json()["input_tokens"], expected.tokens);
    let exact = if expected.is_exact() {
        "exact"
    } else {
        "estimate"
    };
    assert_eq!(r.header("x-llm-tower-token-count"), Some(exact));
}
