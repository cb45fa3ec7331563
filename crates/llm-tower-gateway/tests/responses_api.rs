//! The OpenAI Responses API over the in-process gateway: the translation to chat, stored
//! responses, streaming events, errors, and the official Python SDK.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use llm_tower_core::{
    ChatChoice, ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Delta, Error, LlmRequest,
    LlmResponse, Message, RequestBody, ResponseBody, Role, ToolCall, Usage, UsageSource,
};
use llm_tower_gateway::AppState;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<ChatRequest>>>;

/// A provider that records each chat request and answers with `answer(request)`.
fn recording<F>(answer: F) -> (AppState, Seen)
where
    F: Fn(&ChatRequest) -> Message + Clone + Send + Sync + 'static,
{
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let svc = tower::service_fn(move |req: LlmRequest| {
        let s = s.clone();
        let answer = answer.clone();
        async move {
            // As every provider that serves Responses requests through their chat
            // translation does: refuse what the translation lost.
            llm_tower_core::ResponsesBody::check_translatable(&req)?;
            let RequestBody::Chat(chat) = req.body else {
                return Err(Error::internal("chat only"));
            };
            let msg = answer(&chat);
            let finish = if msg.tool_calls.is_empty() {
                "stop"
            } else {
                "tool_calls"
            };
            let model = chat.model.clone();
            s.lock().unwrap().push(chat);
            let resp = ChatResponse::new(
                "chatcmpl-1",
                model,
                1,
                vec![ChatChoice::new(0, msg, Some(finish.into()))],
            );
            let mut out = LlmResponse::new(ResponseBody::Chat(resp));
            out.usage = Some(Usage::new(11, 5, UsageSource::Provider).with_cached(3));
            Ok::<_, Error>(out)
        }
    });
    let state = AppState::builder(svc).auth(keys(), true).build();
    (state, seen)
}

fn auth(key: &str) -> [(&'static str, String); 1] {
    [("authorization", bearer(key))]
}

async fn post(gw: &Gateway, key: &str, body: Value) -> Reply {
    let h = auth(key);
    gw.post("/v1/responses", &[(h[0].0, h[0].1.as_str())], body)
        .await
}

/// `(event name, data)` of a Responses SSE body.
fn events(reply: &Reply) -> Vec<(String, Value)> {
    let text = reply.text();
    assert!(!text.contains("[DONE]"), "no [DONE] in the Responses API");
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (ev, data) = e.split_once('\n').expect("event and data lines");
            let name = ev.strip_prefix("event: ").expect("event line").to_owned();
            let data: Value =
                serde_json::from_str(data.strip_prefix("data: ").expect("data line")).unwrap();
            assert_eq!(data["type"], name.as_str(), "type matches the event name");
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn string_input_gets_a_response_object() {
    let gw = Gateway::start(default_state()).await;
    let r = post(
        &gw,
        ALICE,
        json!({"model": CHAT_MODEL, "input": "Say something about towers.", "instructions": "Be terse.", "max_output_tokens": 64}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-request-id").is_some());
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["instructions"], "Be terse.");
    assert_eq!(v["max_output_tokens"], 64);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["incomplete_details"], Value::Null);
    assert!(v.get("output_text").is_none(), "an SDK property, not JSON");
    let msg = &v["output"][0];
    assert_eq!(msg["type"], "message");
    assert!(msg["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["status"], "completed");
    assert_eq!(msg["content"][0]["type"], "output_text");
    assert!(!msg["content"][0]["text"].as_str().unwrap().is_empty());
    assert_eq!(msg["content"][0]["annotations"], json!([]));
    let u = &v["usage"];
    assert!(u["input_tokens"].as_u64().unwrap() > 0);
    assert!(u["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["input_tokens"].as_u64().unwrap() + u["output_tokens"].as_u64().unwrap()
    );
    assert!(u["input_tokens_details"]["cached_tokens"].is_u64());
    assert!(u["output_tokens_details"]["reasoning_tokens"].is_u64());
}

#[tokio::test]
async fn a_short_max_output_tokens_is_incomplete() {
    let gw = Gateway::start(default_state()).await;
    let r = post(
        &gw,
        ALICE,
        json!({"model": CHAT_MODEL, "input": "Say a lot.", "max_output_tokens": 2}),
    )
    .await;
    let v = r.json();
    assert_eq!(v["status"], "incomplete", "{v}");
    assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
}

#[tokio::test]
async fn items_with_a_function_call_turn_map_to_chat_messages() {
    let (state, seen) = recording(|_| {
        let mut m = Message::empty(Role::Assistant);
        m.tool_calls = vec![ToolCall::function(
            "call_9",
            "get_weather",
            r#"{"city":"Oslo"}"#,
        )];
        m
    });
    let gw = Gateway::start(state).await;
    let r = post(
        &gw,
        ALICE,
        json!({
            "model": "any-model",
            "instructions": "You are a weather bot.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo and Bergen?"}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
                {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "get_weather", "arguments": "{\"city\":\"Bergen\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {"type": "function_call_output", "call_id": "call_2", "output": "rain"},
                {"type": "message", "role": "user", "content": "And Oslo again?"}
            ],
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": false,
            "temperature": 0.5,
            "store": false
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let chat = seen.lock().unwrap()[0].clone();
    let roles: Vec<Role> = chat.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Tool,
            Role::User
        ]
    );
    assert_eq!(chat.messages[0].text(), "You are a weather bot.");
    let calls = &chat.messages[2].tool_calls;
    assert_eq!(calls.len(), 2, "consecutive calls merge into one message");
    assert_eq!(calls[1].id, "call_2");
    assert_eq!(calls[1].function.arguments, r#"{"city":"Bergen"}"#);
    assert_eq!(chat.messages[4].tool_call_id.as_deref(), Some("call_2"));
    assert_eq!(chat.messages[4].text(), "rain");
    let f = chat.tools[0].function.as_ref().unwrap();
    assert_eq!(f.name, "get_weather");
    assert_eq!(f.strict, Some(true));
    assert_eq!(f.parameters.as_ref().unwrap()["type"], "object");
    assert_eq!(
        chat.tool_choice,
        Some(json!({"type": "function", "function": {"name": "get_weather"}}))
    );
    assert_eq!(chat.extra["parallel_tool_calls"], false);
    assert_eq!(chat.temperature, Some(0.5));

    let v = r.json();
    let call = &v["output"][0];
    assert_eq!(call["type"], "function_call", "{v}");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    assert_eq!(call["call_id"], "call_9");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"Oslo"}"#);
    assert_eq!(call["status"], "completed");
    assert_eq!(v["tools"][0]["name"], "get_weather", "tools echoed as sent");
    assert_eq!(v["parallel_tool_calls"], false);
    assert_eq!(v["store"], false);
    // Not stored: it cannot be read back.
    let h = auth(ALICE);
    let id = v["id"].as_str().unwrap();
    let g = gw
        .get(&format!("/v1/responses/{id}"), &[(h[0].0, h[0].1.as_str())])
        .await;
    assert_eq!(g.status, 404);
}

#[tokio::test]
async fn previous_response_id_chains_and_get_reads_only_your_own() {
    let (state, seen) =
        recording(|chat| Message::assistant(format!("reply {}", chat.messages.len())));
    let gw = Gateway::start(state).await;
    let first = post(
        &gw,
        ALICE,
        json!({"model": "m", "input": "first question", "instructions": "only for the first"}),
    )
    .await
    .json();
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(first["store"], true);
    let second = post(
        &gw,
        ALICE,
        json!({"model": "m", "input": "second question", "previous_response_id": id}),
    )
    .await;
    assert_eq!(second.status, 200, "{}", second.text());
    let second = second.json();
    assert_eq!(second["previous_response_id"], id.as_str());
    {
        let seen = seen.lock().unwrap();
        let m = &seen[1].messages;
        assert_eq!(m.len(), 3, "instructions are not carried over: {m:?}");
        assert_eq!(m[0].text(), "first question");
        assert_eq!(m[1].role, Role::Assistant);
        assert_eq!(m[1].text(), "reply 2");
        assert_eq!(m[2].text(), "second question");
    }
    // A third turn sees the whole chain.
    let third = post(
        &gw,
        ALICE,
        json!({"model": "m", "input": "third", "previous_response_id": second["id"]}),
    )
    .await;
    assert_eq!(third.status, 200);
    assert_eq!(seen.lock().unwrap()[2].messages.len(), 5);

    let alice = auth(ALICE);
    let got = gw
        .get(
            &format!("/v1/responses/{id}"),
            &[(alice[0].0, alice[0].1.as_str())],
        )
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), first);

    let bob = auth(BOB);
    let other = gw
        .get(
            &format!("/v1/responses/{id}"),
            &[(bob[0].0, bob[0].1.as_str())],
        )
        .await;
    assert_eq!(other.status, 404);
    assert_eq!(other.error()["type"], "invalid_request_error");
    let chained = post(
        &gw,
        BOB,
        json!({"model": "m", "input": "x", "previous_response_id": id}),
    )
    .await;
    assert_eq!(chained.status, 400);
    assert_eq!(chained.error()["param"], "previous_response_id");
    let missing = post(
        &gw,
        ALICE,
        json!({"model": "m", "input": "x", "previous_response_id": "resp_nope"}),
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.error()["param"], "previous_response_id");
    let unknown = gw
        .get(
            "/v1/responses/resp_nope",
            &[(alice[0].0, alice[0].1.as_str())],
        )
        .await;
    assert_eq!(unknown.status, 404);
    let anonymous = gw.get(&format!("/v1/responses/{id}"), &[]).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn text_format_reasoning_and_extras_map_to_chat_fields() {
    let (state, seen) = recording(|_| Message::assistant("{\"a\":1}"));
    let gw = Gateway::start(state).await;
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"], "additionalProperties": false});
    let r = post(
        &gw,
        ALICE,
        json!({
            "model": "m",
            "input": "json please",
            "text": {"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": true}},
            "reasoning": {"effort": "low", "summary": "auto"},
            "max_output_tokens": 100,
            "top_p": 0.9,
            "user": "u-1",
            "metadata": {"k": "v"},
            "prompt_cache_key": "pck",
            "service_tier": "flex",
            "include": ["reasoning.encrypted_content"]
        }),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let chat = seen.lock().unwrap()[0].clone();
    assert_eq!(
        chat.response_format,
        Some(
            json!({"type": "json_schema", "json_schema": {"name": "thing", "schema": schema, "strict": true}})
        )
    );
    assert_eq!(chat.extra["reasoning_effort"], "low");
    assert_eq!(chat.max_tokens, Some(100));
    assert_eq!(chat.top_p, Some(0.9));
    assert_eq!(chat.user.as_deref(), Some("u-1"));
    assert_eq!(chat.extra["metadata"], json!({"k": "v"}));
    assert_eq!(chat.extra["prompt_cache_key"], "pck");
    assert_eq!(chat.extra["service_tier"], "flex");
    let v = r.json();
    assert_eq!(v["text"]["format"]["type"], "json_schema");
    assert_eq!(v["reasoning"]["effort"], "low");
    assert_eq!(v["metadata"], json!({"k": "v"}));
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 3);

    post(
        &gw,
        ALICE,
        json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}),
    )
    .await;
    assert_eq!(
        seen.lock().unwrap()[1].response_format,
        Some(json!({"type": "json_object"}))
    );
}

#[tokio::test]
async fn what_cannot_be_honoured_is_a_400_naming_the_field() {
    let gw = Gateway::start(default_state()).await;
    let cases = [
        (
            json!({"model": CHAT_MODEL, "input": "x", "background": true}),
            "background",
        ),
        (
            json!({"model": CHAT_MODEL, "input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
        (
            json!({"model": CHAT_MODEL, "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]}),
            "tools[1].type",
        ),
        (
            json!({"model": CHAT_MODEL, "input": "x", "include": ["file_search_call.results"]}),
            "include[0]",
        ),
        (
            json!({"model": CHAT_MODEL, "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0].type",
        ),
        (
            json!({"model": CHAT_MODEL, "input": [{"role": "user", "content": [{"type": "input_video"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": CHAT_MODEL, "input": [{"role": "wizard", "content": "x"}]}),
            "input[0].role",
        ),
        (json!({"model": CHAT_MODEL}), "input"),
        (json!({"input": "x"}), "model"),
        (
            json!({"model": CHAT_MODEL, "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
            "text.format.schema",
        ),
        (
            json!({"model": CHAT_MODEL, "input": "x", "temperature": 9}),
            "temperature",
        ),
    ];
    for (body, param) in cases {
        let r = post(&gw, ALICE, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = r.error();
        assert_eq!(e["param"], param, "{body}: {e}");
        assert_eq!(e["type"], "invalid_request_error");
    }
    let r = post(&gw, ALICE, json!({"model": "no-such-model", "input": "x"})).await;
    assert_eq!(r.status, 404);
    let r = gw
        .post(
            "/v1/responses",
            &[],
            json!({"model": CHAT_MODEL, "input": "x"}),
        )
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn streaming_events_in_order_with_sequence_numbers_and_usage() {
    let gw = Gateway::start(default_state()).await;
    let r = post(
        &gw,
        ALICE,
        json!({"model": CHAT_MODEL, "input": "Stream a short answer.", "stream": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let ev = events(&r);
    for (i, (_, d)) in ev.iter().enumerate() {
        assert_eq!(d["sequence_number"], i as u64);
    }
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "response.output_text.delta")
        .count();
    assert!(deltas > 1, "{names:?}");
    let mut expected = vec![
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ];
    expected.extend(std::iter::repeat_n("response.output_text.delta", deltas));
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]);
    assert_eq!(names, expected);
    assert_eq!(ev[0].1["response"]["status"], "in_progress");
    let text: String = ev
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let done = &ev[ev.len() - 4].1;
    assert_eq!(done["text"], text.as_str());
    let item_id = ev[2].1["item"]["id"].as_str().unwrap();
    assert_eq!(ev[4].1["item_id"], item_id);
    let completed = &ev.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["id"], ev[0].1["response"]["id"]);
    assert_eq!(completed["output"][0]["id"], item_id);
    assert_eq!(completed["output"][0]["content"][0]["text"], text.as_str());
    assert!(completed["usage"]["total_tokens"].as_u64().unwrap() > 0);

    // Stored when it completed.
    let id = completed["id"].as_str().unwrap();
    let h = auth(ALICE);
    let got = gw
        .get(&format!("/v1/responses/{id}"), &[(h[0].0, h[0].1.as_str())])
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.json(), completed);
}

#[tokio::test]
async fn a_streamed_function_call() {
    let gw = Gateway::start(default_state()).await;
    let r = post(
        &gw,
        ALICE,
        json!({"model": CHAT_MODEL, "input": "Weather?", "stream": true,
               "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]}),
    )
    .await;
    let ev = events(&r);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"response.function_call_arguments.done"),
        "{names:?}"
    );
    let added = ev
        .iter()
        .find(|(n, d)| n == "response.output_item.added" && d["item"]["type"] == "function_call")
        .unwrap();
    assert_eq!(added.1["item"]["name"], "get_weather");
    let completed = &ev.last().unwrap().1["response"];
    let call = completed["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], "{}");
    assert_eq!(call["id"], added.1["item"]["id"]);
}

#[tokio::test]
async fn a_stream_error_after_the_start_is_response_failed() {
    let svc = tower::service_fn(|_req: LlmRequest| async {
        let mut first = ChatChunk::new("c", "m", 1);
        first.choices.push(ChunkChoice::new(
            0,
            Delta {
                role: Some(Role::Assistant),
                content: Some("partial".into()),
                ..Delta::default()
            },
            None,
        ));
        let items = vec![
            Ok(first),
            Err(Error::new(
                llm_tower_core::ErrorKind::Provider { status: 500 },
                "upstream broke",
            )),
        ];
        Ok::<_, Error>(LlmResponse::new(ResponseBody::Stream(Box::pin(
            futures_util::stream::iter(items),
        ))))
    });
    let gw = Gateway::start(AppState::builder(svc).build()).await;
    let r = gw
        .post(
            "/v1/responses",
            &[],
            json!({"model": "m", "input": "x", "stream": true}),
        )
        .await;
    assert_eq!(r.status, 200);
    let ev = events(&r);
    let (name, last) = ev.last().unwrap();
    assert_eq!(name, "response.failed", "{ev:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["code"].is_string());
    assert!(
        last["response"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upstream broke")
    );
    assert!(ev.iter().any(|(n, _)| n == "response.output_text.delta"));
}

#[tokio::test]
async fn openai_python_sdk_responses_example_runs_against_the_gateway() {
    if !common::python_sdk("openai") {
        return;
    }
    let gw = Gateway::start(default_state()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/responses_client.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("LLM_TOWER_BASE_URL", format!("http://{}/v1", gw.addr))
        .env("LLM_TOWER_API_KEY", ALICE)
        .env("LLM_TOWER_MODEL", CHAT_MODEL)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ok: all calls succeeded"), "{stdout}");
}
