//! `POST /v1/responses` to an OpenAI provider goes to OpenAI's `/v1/responses` natively
//! (a local server that speaks the Responses API): the client's body with the routed model
//! (built-in tools, `include`, encrypted reasoning untouched), the provider's object and
//! events back unchanged but for the gateway's response id; stored for
//! `previous_response_id` and `GET /v1/responses/{id}`; the official OpenAI Python SDK
//! runs its Responses example over it. Other providers refuse what only the native path
//! serves, naming the field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::Gateway;
use llm_tower_config::{Config, build};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};

const NATIVE_TEXT: &str = "Native hello from the Responses API.";
const KEY: &str = "sk-native-SECRET-0123456789";

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// The output items the fake OpenAI answers `body` with: a call of `get_weather` when
/// that tool is offered, the input asks about the weather and no tool output came back
/// yet; else a reasoning item (with `encrypted_content` when asked for) and a message.
fn output_for(body: &Value) -> Vec<Value> {
    let input = body["input"].to_string();
    let offers_weather = body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "get_weather"));
    let answered = input.contains("function_call_output");
    if offers_weather && input.contains("weather") && !answered {
        return vec![json!({
            "type": "function_call", "id": "fc_up1", "call_id": "call_up1", "status": "completed",
            "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"
        })];
    }
    let mut reasoning = json!({
        "type": "reasoning", "id": "rs_up1",
        "summary": [{"type": "summary_text", "text": "Thinking natively."}]
    });
    if body["include"]
        .as_array()
        .is_some_and(|i| i.iter().any(|i| i == "reasoning.encrypted_content"))
    {
        reasoning["encrypted_content"] = json!("enc-up-1");
    }
    vec![
        reasoning,
        json!({
            "type": "message", "id": "msg_up1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": NATIVE_TEXT, "annotations": []}]
        }),
    ]
}

fn response_object(body: &Value, status: &str, output: Vec<Value>) -> Value {
    json!({
        "id": "resp_up1", "object": "response", "created_at": 1_700_000_000, "status": status,
        "error": null, "incomplete_details": null, "instructions": body["instructions"],
        "max_output_tokens": body["max_output_tokens"], "model": body["model"],
        "output": output, "parallel_tool_calls": true, "previous_response_id": null,
        "reasoning": {"effort": "low", "summary": "auto"}, "store": body["store"],
        "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": body["tools"].as_array().cloned().unwrap_or_default(), "top_p": 1.0,
        "truncation": "disabled", "metadata": {}, "service_tier": "default",
        "usage": if status == "completed" { json!({
            "input_tokens": 20, "input_tokens_details": {"cached_tokens": 8},
            "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 4},
            "total_tokens": 32
        }) } else { Value::Null }
    })
}

/// The Responses API's events for `output`, as OpenAI streams them.
fn stream_events(body: &Value, output: &[Value]) -> Vec<Value> {
    let mut ev = Vec::new();
    let start = response_object(body, "in_progress", Vec::new());
    ev.push(json!({"type": "response.created", "response": start}));
    ev.push(json!({"type": "response.in_progress", "response": start}));
    for (i, item) in output.iter().enumerate() {
        let id = item["id"].clone();
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        match item["type"].as_str().unwrap() {
            "message" => added["content"] = json!([]),
            "function_call" => added["arguments"] = json!(""),
            _ => added["summary"] = json!([]),
        }
        ev.push(json!({"type": "response.output_item.added", "output_index": i, "item": added}));
        match item["type"].as_str().unwrap() {
            "message" => {
                let text = item["content"][0]["text"].as_str().unwrap();
                let empty = json!({"type": "output_text", "text": "", "annotations": []});
                ev.push(json!({"type": "response.content_part.added", "item_id": id,
                               "output_index": i, "content_index": 0, "part": empty}));
                let (a, b) = text.split_at(6);
                for d in [a, b] {
                    ev.push(json!({"type": "response.output_text.delta", "item_id": id,
                                   "output_index": i, "content_index": 0, "delta": d, "logprobs": []}));
                }
                ev.push(json!({"type": "response.output_text.done", "item_id": id,
                               "output_index": i, "content_index": 0, "text": text, "logprobs": []}));
                ev.push(json!({"type": "response.content_part.done", "item_id": id,
                               "output_index": i, "content_index": 0, "part": item["content"][0]}));
            }
            "function_call" => {
                ev.push(
                    json!({"type": "response.function_call_arguments.delta", "item_id": id,
                               "output_index": i, "delta": item["arguments"]}),
                );
                ev.push(
                    json!({"type": "response.function_call_arguments.done", "item_id": id,
                               "output_index": i, "arguments": item["arguments"]}),
                );
            }
            _ => {
                let text = item["summary"][0]["text"].clone();
                ev.push(
                    json!({"type": "response.reasoning_summary_part.added", "item_id": id,
                               "output_index": i, "summary_index": 0,
                               "part": {"type": "summary_text", "text": ""}}),
                );
                ev.push(
                    json!({"type": "response.reasoning_summary_text.delta", "item_id": id,
                               "output_index": i, "summary_index": 0, "delta": text}),
                );
                ev.push(
                    json!({"type": "response.reasoning_summary_text.done", "item_id": id,
                               "output_index": i, "summary_index": 0, "text": text}),
                );
                ev.push(
                    json!({"type": "response.reasoning_summary_part.done", "item_id": id,
                               "output_index": i, "summary_index": 0,
                               "part": {"type": "summary_text", "text": text}}),
                );
            }
        }
        ev.push(json!({"type": "response.output_item.done", "output_index": i, "item": item}));
    }
    ev.push(json!({"type": "response.completed",
                   "response": response_object(body, "completed", output.to_vec())}));
    for (n, e) in ev.iter_mut().enumerate() {
        e["sequence_number"] = json!(n);
    }
    ev
}

/// A local OpenAI that speaks the Responses API (and records what it receives) and chat
/// completions (which the native path must not use).
async fn upstream() -> (SocketAddr, Seen) {
    async fn responses(
        State(seen): State<Seen>,
        headers: http::HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        assert_eq!(
            headers.get("authorization").unwrap(),
            &format!("Bearer {KEY}")
        );
        seen.lock()
            .unwrap()
            .push(("/v1/responses".into(), body.clone()));
        let output = output_for(&body);
        if body["stream"] == true {
            let mut sse = String::new();
            let mut events = stream_events(&body, &output);
            if body["input"] == "cut" {
                // The connection ends in the middle of the answer (after its first text).
                events.truncate(11);
            }
            for e in events {
                sse.push_str(&format!(
                    "event: {}\ndata: {e}\n\n",
                    e["type"].as_str().unwrap()
                ));
            }
            return ([(http::header::CONTENT_TYPE, "text/event-stream")], sse).into_response();
        }
        Json(response_object(&body, "completed", output)).into_response()
    }
    async fn chat(State(seen): State<Seen>, Json(body): Json<Value>) -> Response {
        seen.lock()
            .unwrap()
            .push(("/v1/chat/completions".into(), body));
        (
            http::StatusCode::BAD_REQUEST,
            "chat completions must not be used",
        )
            .into_response()
    }
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route("/v1/responses", post(responses))
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

async fn gateway(up: SocketAddr) -> Gateway {
    let price = json!({"input": "0.25", "cached_input": "0.025", "output": "2.00"});
    let config = json!({
        "providers": {
            "oa": {"type": "openai", "api_key": KEY, "base_url": format!("http://{up}/v1"),
                   "models": {"gpt-5-mini": {"price": price, "tokenizer": "o200k_base"}}},
            "m": {"type": "mock", "models": {"mock-model": {"price": price}}}
        },
        "routes": {"fast": ["oa/gpt-5-mini"]},
        "retry": {"max_retries": 0}
    });
    let built = build(&Config::from_str(&config.to_string()).unwrap())
        .await
        .unwrap();
    Gateway::start(AppState::from_built(&built)).await
}

async fn post_json(gw: &Gateway, body: Value) -> common::Reply {
    gw.post("/v1/responses", &[], body).await
}

#[tokio::test]
async fn responses_go_to_openai_natively_and_come_back_whole() {
    let (up, seen) = upstream().await;
    let gw = gateway(up).await;
    let tools = json!([
        {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}},
        {"type": "web_search"},
        {"type": "local_shell"}
    ]);
    let r = post_json(
        &gw,
        json!({
            "model": "fast", "input": "Hello there", "instructions": "Be brief.",
            "tools": tools, "include": ["reasoning.encrypted_content", "web_search_call.action.sources"],
            "truncation": "auto", "reasoning": {"effort": "low", "summary": "auto"},
            "metadata": {"ticket": "T-1"}
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    // The upstream got the client's body with the routed model, and nothing else changed.
    let (path, sent) = seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/v1/responses");
    assert_eq!(sent["model"], "gpt-5-mini");
    assert_eq!(sent["tools"], tools);
    assert_eq!(
        sent["include"],
        json!([
            "reasoning.encrypted_content",
            "web_search_call.action.sources"
        ])
    );
    assert_eq!(sent["truncation"], "auto");
    assert_eq!(sent["input"], "Hello there");
    assert_eq!(sent["metadata"], json!({"ticket": "T-1"}));
    assert!(sent.get("stream").is_none());
    // The provider's object, with the gateway's id.
    let id = v["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("resp_gw"), "{id}");
    assert_eq!(v["output"][0]["id"], "rs_up1");
    assert_eq!(v["output"][0]["encrypted_content"], "enc-up-1");
    assert_eq!(v["output"][1]["content"][0]["text"], NATIVE_TEXT);
    assert_eq!(v["usage"]["output_tokens_details"]["reasoning_tokens"], 4);
    assert_eq!(v["service_tier"], "default");

    // A continuation: the stored conversation goes along in `input`.
    let r = post_json(
        &gw,
        json!({"model": "fast", "input": "And then?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["previous_response_id"], id.as_str());
    let (_, sent) = seen.lock().unwrap()[1].clone();
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    let items = sent["input"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{sent}");
    assert_eq!(items[0]["content"], "Hello there");
    assert_eq!(items[1]["encrypted_content"], "enc-up-1");
    assert_eq!(items[2]["id"], "msg_up1");
    assert_eq!(items[3]["content"], "And then?");

    // Read back as it was answered.
    let got = gw.get(&format!("/v1/responses/{id}"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), v);
    // Nothing went to chat completions.
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|(p, _)| p == "/v1/responses")
    );
}

#[tokio::test]
async fn streamed_events_pass_through_with_the_gateways_id() {
    let (up, seen) = upstream().await;
    let gw = gateway(up).await;
    let body = json!({"model": "oa/gpt-5-mini", "input": "Stream it", "stream": true,
                      "include": ["reasoning.encrypted_content"]});
    let r = post_json(&gw, body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, sent) = seen.lock().unwrap()[0].clone();
    assert_eq!(sent["stream"], true);
    let mut expected = body.clone();
    expected["model"] = json!("gpt-5-mini");
    let upstream_events = stream_events(&expected, &output_for(&expected));
    let text = r.text();
    let got: Vec<(String, Value)> = text
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
    assert_eq!(got.len(), upstream_events.len(), "{text}");
    let completed = &got.last().unwrap().1;
    let id = completed["response"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("resp_gw"), "{id}");
    for ((name, data), mut want) in got.iter().zip(upstream_events) {
        assert_eq!(name, want["type"].as_str().unwrap());
        if let Some(resp) = want.get_mut("response") {
            resp["id"] = json!(id);
        }
        assert_eq!(data, &want, "every event as the provider sent it");
    }
    assert_eq!(completed["response"]["usage"]["total_tokens"], 32);
    // Stored for a continuation.
    let got = gw.get(&format!("/v1/responses/{id}"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["output"][1]["content"][0]["text"], NATIVE_TEXT);
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_ends_with_response_failed() {
    let (up, _seen) = upstream().await;
    let gw = gateway(up).await;
    let r = post_json(
        &gw,
        json!({"model": "fast", "input": "cut", "stream": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.split_once("data: ").unwrap().1).unwrap())
        .collect();
    assert_eq!(events.len(), 12, "{text}");
    assert_eq!(events[10]["type"], "response.output_text.delta");
    assert_eq!(events[0]["type"], "response.created");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{text}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(
        last["response"]["id"]
            .as_str()
            .unwrap()
            .starts_with("resp_gw")
    );
    assert_eq!(
        last["sequence_number"].as_u64().unwrap(),
        events[10]["sequence_number"].as_u64().unwrap() + 1
    );
}

#[tokio::test]
async fn other_providers_refuse_what_only_the_native_path_serves() {
    let (up, _seen) = upstream().await;
    let gw = gateway(up).await;
    let r = post_json(
        &gw,
        json!({"model": "m/mock-model", "input": "x", "tools": [{"type": "web_search"}]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.error();
    assert_eq!(e["param"], "tools[0].type", "{e}");
    assert!(e["message"].as_str().unwrap().contains("web_search"), "{e}");
    // Without such features the translation serves it.
    let r = post_json(&gw, json!({"model": "m/mock-model", "input": "x"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn openai_python_sdk_runs_its_responses_example_over_the_native_path() {
    if !common::python_sdk("openai") {
        return;
    }
    let (up, seen) = upstream().await;
    let gw = gateway(up).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/responses_client.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("LLM_TOWER_BASE_URL", format!("http://{}/v1", gw.addr))
        .env("LLM_TOWER_API_KEY", "any")
        .env("LLM_TOWER_MODEL", "fast")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ok: all calls succeeded"), "{stdout}");
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 6, "{}", seen.len());
    assert!(seen.iter().all(|(p, _)| p == "/v1/responses"));
}
