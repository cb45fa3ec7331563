//! The gateway in front of a local server that speaks Anthropic's Messages API exactly: a
//! thinking + tool-use conversation over three turns keeps every signature intact, the
//! client speaking OpenAI's chat format (and, in `anthropic_messages.rs`, Anthropic's).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use common::Gateway;
use http::StatusCode;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};

/// What the fake Anthropic server saw: each request body.
type Seen = Arc<Mutex<Vec<Value>>>;

const SIG_1: &str = "EqQBCkYIARgCIkB1c2lnbmF0dXJlLW9uZQ==";
const SIG_2: &str = "EqQBCkYIARgCIkB0d28tc2lnbmF0dXJl+/==";

/// Answers turn by turn: thinking + a tool call, thinking + another tool call, then text;
/// every request after the first must carry the earlier thinking blocks unchanged, each
/// before the tool_use it led to.
async fn messages(
    State(seen): State<Seen>,
    headers: http::HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let turn = {
        let mut s = seen.lock().unwrap();
        let mut rec = body.clone();
        rec["_anthropic_beta"] = headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok())
            .map_or(Value::Null, |v| json!(v));
        s.push(rec);
        s.len()
    };
    let assistant: Vec<&Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    let expected_signatures: &[&str] = match turn {
        1 => &[],
        2 => &[SIG_1],
        _ => &[SIG_1, SIG_2],
    };
    for (m, sig) in assistant.iter().zip(expected_signatures) {
        let blocks = m["content"].as_array().unwrap();
        if blocks[0]["type"] != "thinking"
            || blocks[0]["signature"] != *sig
            || blocks.last().unwrap()["type"] != "tool_use"
        {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    json!({"type": "error", "error": {"type": "invalid_request_error",
                    "message": format!("thinking block not sent back unchanged: {m}")}}),
                ),
            )
                .into_response();
        }
    }
    if assistant.len() != expected_signatures.len() {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": format!("turn {turn}: {} assistant turns", assistant.len())}}),
            ),
        )
            .into_response();
    }
    let usage = json!({"input_tokens": 50, "output_tokens": 20,
        "cache_read_input_tokens": 10, "cache_creation_input_tokens": 0});
    let content = match turn {
        1 => json!([
            {"type": "thinking", "thinking": "I need the weather.", "signature": SIG_1},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
        ]),
        2 => json!([
            {"type": "thinking", "thinking": "Now the time.", "signature": SIG_2},
            {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {"tz": "Europe/Paris"}}
        ]),
        _ => json!([{"type": "text", "text": "Sunny, 21 C, and it is noon."}]),
    };
    let stop = if turn < 3 { "tool_use" } else { "end_turn" };
    let message = json!({
        "id": format!("msg_{turn}"), "type": "message", "role": "assistant",
        "model": body["model"], "content": content, "stop_reason": stop,
        "stop_sequence": null, "usage": usage
    });
    if body["stream"] == true {
        return (
            [(http::header::CONTENT_TYPE, "text/event-stream")],
            sse_events(&message),
        )
            .into_response();
    }
    (StatusCode::OK, Json(message)).into_response()
}

/// The message as Anthropic streams it: `message_start`, each block as start / deltas /
/// stop (thinking text then its signature, tool input as JSON fragments), `message_delta`
/// with the stop reason and output tokens, `message_stop`.
fn sse_events(message: &Value) -> String {
    let mut out = String::new();
    let mut event = |name: &str, data: Value| {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    event(
        "message_start",
        json!({"type": "message_start", "message": start}),
    );
    for (i, block) in message["content"].as_array().unwrap().iter().enumerate() {
        let (empty, deltas) = match block["type"].as_str().unwrap() {
            "thinking" => (
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                vec![
                    json!({"type": "thinking_delta", "thinking": block["thinking"]}),
                    json!({"type": "signature_delta", "signature": block["signature"]}),
                ],
            ),
            "tool_use" => {
                let input = block["input"].to_string();
                let (a, b) = input.split_at(input.len() / 2);
                (
                    json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
                    vec![
                        json!({"type": "input_json_delta", "partial_json": a}),
                        json!({"type": "input_json_delta", "partial_json": b}),
                    ],
                )
            }
            _ => (
                json!({"type": "text", "text": ""}),
                vec![json!({"type": "text_delta", "text": block["text"]})],
            ),
        };
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": i, "content_block": empty}),
        );
        for d in deltas {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": d}),
            );
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        );
    }
    event(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": message["stop_reason"], "stop_sequence": null},
               "usage": {"output_tokens": message["usage"]["output_tokens"]}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    out
}

async fn fake_anthropic() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route("/v1/messages", post(messages))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

async fn gateway(upstream: SocketAddr) -> Gateway {
    let config = json!({
        "providers": {
            "claude": {
                "type": "anthropic",
                "api_key": "sk-ant-test-not-real",
                "base_url": format!("http://{upstream}"),
                "models": { "claude-sonnet-4-5": { "price": {
                    "input": "3", "output": "15", "cached_input": "0.30",
                    "cache_write_5m": "3.75", "cache_write_1h": "6"
                } } }
            }
        },
        "retry": { "max_retries": 0 }
    });
    let built = build(&Config::from_str(&config.to_string()).unwrap())
        .await
        .unwrap();
    Gateway::start(AppState::from_built(&built)).await
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}
    ])
}

#[tokio::test]
async fn thinking_and_tool_use_over_three_turns_in_openai_format_keep_the_signatures() {
    let (upstream, seen) = fake_anthropic().await;
    let gw = gateway(upstream).await;
    let mut messages = vec![json!({"role": "user", "content": "Weather and time in Paris?"})];
    let mut last = Value::Null;
    for turn in 1..=3 {
        let body = json!({
            "model": "claude/claude-sonnet-4-5",
            "max_tokens": 2048,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": tools(),
            "messages": messages,
        });
        let r = gw.post("/v1/chat/completions", &[], body).await;
        assert_eq!(r.status, StatusCode::OK, "turn {turn}: {}", r.text());
        last = r.json();
        let msg = last["choices"][0]["message"].clone();
        if turn < 3 {
            assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
            assert_eq!(msg["thinking_blocks"][0]["type"], "thinking");
            let call = msg["tool_calls"][0].clone();
            messages.push(msg);
            messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "ok"}));
        }
    }
    assert_eq!(
        last["choices"][0]["message"]["content"],
        "Sunny, 21 C, and it is noon."
    );
    // Cached reads are reported in OpenAI's shape.
    assert_eq!(last["usage"]["prompt_tokens"], 60);
    assert_eq!(last["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    // The thinking request reached Anthropic as Anthropic wants it.
    assert_eq!(seen[0]["thinking"]["type"], "enabled");
    let third = &seen[2]["messages"];
    assert_eq!(third[1]["content"][0]["signature"], SIG_1);
    assert_eq!(third[3]["content"][0]["signature"], SIG_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anthropic_sdk_keeps_thinking_signatures_over_three_turns_one_streamed() {
    if !common::python_sdk("anthropic") {
        return;
    }
    let (upstream, seen) = fake_anthropic().await;
    let gw = gateway(upstream).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/anthropic_thinking_tools.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("LLM_TOWER_BASE_URL", format!("http://{}", gw.addr))
        .env("LLM_TOWER_API_KEY", "unused: the gateway is open")
        .env("LLM_TOWER_MODEL", "claude/claude-sonnet-4-5")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ok: three turns"), "{stdout}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1]["stream"], true, "the second turn was streamed");
    for body in seen.iter() {
        // The client's anthropic-beta header reached Anthropic.
        assert_eq!(
            body["_anthropic_beta"], "interleaved-thinking-2025-05-14",
            "{body}"
        );
    }
    let third = &seen[2]["messages"];
    assert_eq!(third[1]["content"][0]["signature"], SIG_1);
    assert_eq!(third[3]["content"][0]["signature"], SIG_2);
}

/// An Anthropic request through the gateway to an Anthropic upstream arrives as it was
/// sent, and the upstream's answer reaches the client as it was sent.
#[tokio::test]
async fn anthropic_to_anthropic_passes_requests_and_answers_unchanged() {
    use axum::response::IntoResponse;
    let seen = Seen::default();
    let answer = json!({
        "id": "msg_x", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "t", "signature": "sig"},
            {"type": "redacted_thinking", "data": "enc"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": [1, 2]}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3,
                  "cache_creation_input_tokens": 4,
                  "cache_creation": {"ephemeral_5m_input_tokens": 1, "ephemeral_1h_input_tokens": 3}}
    });
    let (s2, a2) = (seen.clone(), answer.clone());
    let app = axum::Router::new().route(
        "/v1/messages",
        post(move |Json(body): Json<Value>| {
            let (seen, answer) = (s2.clone(), a2.clone());
            async move {
                seen.lock().unwrap().push(body);
                Json(answer).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = gateway(upstream).await;
    let sent = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig0"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"q": "x"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "42", "is_error": false}
            ]}
        ],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"}
    });
    let r = gw.post("/v1/messages", &[], sent.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got = r.json();
    let received = seen.lock().unwrap()[0].clone();
    let mut diff = Vec::new();
    for (k, v) in sent.as_object().unwrap() {
        if received.get(k) != Some(v) {
            diff.push(format!("{k}: sent {v} received {:?}", received.get(k)));
        }
    }
    for (k, v) in received.as_object().unwrap() {
        if sent.get(k).is_none() {
            diff.push(format!("{k}: added {v}"));
        }
    }
    assert!(
        diff.is_empty(),
        "request changed on the way:\n{}",
        diff.join("\n")
    );
    let mut diff = Vec::new();
    for (k, v) in answer.as_object().unwrap() {
        if got.get(k) != Some(v) {
            diff.push(format!("{k}: upstream {v} client {:?}", got.get(k)));
        }
    }
    assert!(
        diff.is_empty(),
        "answer changed on the way:\n{}",
        diff.join("\n")
    );
}

mod roundtrip {
    //! Any Anthropic Messages request (system as text or cached blocks, text, images,
    //! thinking, tool use and results, tools, sampling fields, unknown fields) reaches an
    //! Anthropic upstream through the gateway unchanged, and any answer comes back
    //! unchanged.

    use super::*;
    use proptest::prelude::*;

    fn text_block() -> impl Strategy<Value = Value> {
        ("[a-zA-Z]{1,12}", any::<bool>()).prop_map(|(t, cached)| {
            let mut b = json!({"type": "text", "text": t});
            if cached {
                b["cache_control"] = json!({"type": "ephemeral"});
            }
            b
        })
    }

    fn user_blocks() -> impl Strategy<Value = Value> {
        prop::collection::vec(
            prop_oneof![
                text_block(),
                Just(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})),
                Just(json!({"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}})),
            ],
            1..3,
        )
        .prop_map(Value::Array)
    }

    /// user, (assistant with thinking + tool_use, user with its tool_result)*, as Anthropic
    /// requires turns to alternate.
    fn conversation() -> impl Strategy<Value = (Vec<Value>, bool)> {
        (
            prop_oneof!["[a-zA-Z ]{1,20}".prop_map(Value::String), user_blocks()],
            prop::collection::vec(("[a-z]{1,8}", "[A-Za-z0-9+/]{4,12}", any::<bool>()), 0..3),
        )
            .prop_map(|(first, turns)| {
                let mut msgs = vec![json!({"role": "user", "content": first})];
                let thinking = !turns.is_empty();
                for (i, (name, sig, error)) in turns.into_iter().enumerate() {
                    let id = format!("toolu_{i}");
                    msgs.push(json!({"role": "assistant", "content": [
                        {"type": "thinking", "thinking": format!("step {i}"), "signature": sig},
                        {"type": "tool_use", "id": id, "name": name, "input": {"n": i}}
                    ]}));
                    let mut result =
                        json!({"type": "tool_result", "tool_use_id": id, "content": "done"});
                    if error {
                        result["is_error"] = json!(true);
                    }
                    msgs.push(json!({"role": "user", "content": [result]}));
                }
                (msgs, thinking)
            })
    }

    fn request() -> impl Strategy<Value = Value> {
        (
            conversation(),
            prop::option::of(prop_oneof![
                "[a-zA-Z ]{1,20}".prop_map(Value::String),
                prop::collection::vec(text_block(), 1..3).prop_map(Value::Array),
            ]),
            prop::collection::vec(("[a-z]{1,8}", any::<bool>()), 0..3),
            prop::option::of(prop::collection::vec("[A-Z]{1,5}", 1..3)),
            prop::option::of(prop_oneof![Just(0.0), Just(0.5), Just(1.0)]),
            prop::option::of(1u32..100),
            prop::option::of("[a-z0-9-]{1,10}"),
        )
            .prop_map(|((messages, thinking), system, tools, stop, temp, top_k, user)| {
                let mut r = json!({"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": messages});
                if let Some(s) = system {
                    r["system"] = s;
                }
                if !tools.is_empty() {
                    let mut seen = std::collections::HashSet::new();
                    let tools: Vec<Value> = tools
                        .into_iter()
                        .filter(|(n, _)| seen.insert(n.clone()))
                        .map(|(name, cached)| {
                            let mut t = json!({"name": name, "description": "d",
                                "input_schema": {"type": "object", "properties": {"n": {"type": "integer"}}}});
                            if cached {
                                t["cache_control"] = json!({"type": "ephemeral"});
                            }
                            t
                        })
                        .collect();
                    r["tools"] = Value::Array(tools);
                }
                if let Some(s) = stop {
                    r["stop_sequences"] = json!(s);
                }
                if thinking {
                    r["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
                } else {
                    // Anthropic refuses sampling changes with thinking on.
                    if let Some(t) = temp {
                        r["temperature"] = json!(t);
                    }
                    if let Some(k) = top_k {
                        r["top_k"] = json!(k);
                    }
                }
                if let Some(u) = user {
                    r["metadata"] = json!({"user_id": u});
                }
                r
            })
    }

    fn answer() -> impl Strategy<Value = Value> {
        (
            any::<bool>(),
            prop::option::of("[a-zA-Z .]{1,30}"),
            prop::option::of(("[a-z]{1,8}", 0u32..9)),
            (1u64..1000, 1u64..1000, 0u64..100, 0u64..100, 0u64..100),
        )
            .prop_map(|(thinking, text, tool, (i, o, read, w5, w1))| {
                let mut content = Vec::new();
                if thinking {
                    content.push(json!({"type": "thinking", "thinking": "because", "signature": "c2ln"}));
                }
                if let Some(t) = text {
                    content.push(json!({"type": "text", "text": t}));
                }
                if let Some((name, n)) = &tool {
                    content.push(json!({"type": "tool_use", "id": "toolu_z", "name": name, "input": {"n": n}}));
                }
                if content.is_empty() {
                    content.push(json!({"type": "text", "text": "ok"}));
                }
                json!({
                    "id": "msg_p", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                    "content": content,
                    "stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" },
                    "stop_sequence": null,
                    "usage": {"input_tokens": i, "output_tokens": o, "cache_read_input_tokens": read,
                              "cache_creation_input_tokens": w5 + w1,
                              "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}}
                })
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn anthropic_requests_and_answers_pass_unchanged(sent in request(), reply in answer()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (received, got) = rt.block_on(async {
                use axum::response::IntoResponse;
                let seen = Seen::default();
                let (s2, a2) = (seen.clone(), reply.clone());
                let app = axum::Router::new().route(
                    "/v1/messages",
                    post(move |Json(body): Json<Value>| {
                        let (seen, answer) = (s2.clone(), a2.clone());
                        async move {
                            seen.lock().unwrap().push(body);
                            Json(answer).into_response()
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let upstream = listener.local_addr().unwrap();
                tokio::spawn(async move { axum::serve(listener, app).await });
                let gw = gateway(upstream).await;
                let r = gw.post("/v1/messages", &[], sent.clone()).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                let received = seen.lock().unwrap()[0].clone();
                (received, r.json())
            });
            prop_assert_eq!(received, sent);
            prop_assert_eq!(got, reply);
        }
    }
}

/// Blocks the gateway does not model (a server tool call, its result, text with
/// citations) reach an Anthropic client through an Anthropic provider exactly as sent,
/// whole and streamed; an OpenAI client gets the text.
#[tokio::test]
async fn server_tool_blocks_and_citations_pass_through_unchanged() {
    use axum::response::IntoResponse;
    let answer = json!({
        "id": "msg_srv", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "tower rust"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
                {"type": "web_search_result", "url": "https://docs.rs/tower", "title": "tower",
                 "encrypted_content": "EqgfCio", "page_age": null}
            ]},
            {"type": "text", "text": "Tower is a library.", "citations": [
                {"type": "web_search_result_location", "url": "https://docs.rs/tower", "title": "tower",
                 "encrypted_index": "Eo8BCi", "cited_text": "Tower is a library of modular components"}
            ]}
        ],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 20, "output_tokens": 9,
                  "server_tool_use": {"web_search_requests": 1}}
    });
    let events = vec![
        json!({"type": "message_start", "message": {"id": "msg_srv", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-5", "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": 20, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block":
               {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta":
               {"type": "input_json_delta", "partial_json": "{\"query\": \"tower rust\"}"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": answer["content"][1]}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": "", "citations": []}}),
        json!({"type": "content_block_delta", "index": 2, "delta":
               {"type": "citations_delta", "citation": answer["content"][2]["citations"][0]}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "text_delta", "text": "Tower is a library."}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": 9, "server_tool_use": {"web_search_requests": 1}}}),
        json!({"type": "message_stop"}),
    ];
    let (a2, e2) = (answer.clone(), events.clone());
    let app = axum::Router::new().route(
        "/v1/messages",
        post(move |Json(body): Json<Value>| {
            let (answer, events) = (a2.clone(), e2.clone());
            async move {
                if body["stream"] == true {
                    let mut sse = String::new();
                    for e in &events {
                        sse.push_str(&format!(
                            "event: {}\ndata: {e}\n\n",
                            e["type"].as_str().unwrap()
                        ));
                    }
                    return ([(http::header::CONTENT_TYPE, "text/event-stream")], sse)
                        .into_response();
                }
                Json(answer).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = gateway(upstream).await;
    let ask = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What is tower?"}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
    });
    let r = gw.post("/v1/messages", &[], ask.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), answer, "the message as Anthropic wrote it");

    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let r = gw.post("/v1/messages", &[], streamed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let got: Vec<(String, Value)> = r
        .text()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (ev, data) = e.split_once('\n').unwrap();
            (
                ev.strip_prefix("event: ").unwrap().to_owned(),
                serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), events.len(), "{}", r.text());
    for ((name, data), want) in got.iter().zip(&events) {
        assert_eq!(name, want["type"].as_str().unwrap());
        assert_eq!(data, want, "every event as Anthropic sent it");
    }

    // An OpenAI client gets the translation: the text.
    let r = gw
        .post(
            "/v1/chat/completions",
            &[],
            json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "What is tower?"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "Tower is a library."
    );
}
