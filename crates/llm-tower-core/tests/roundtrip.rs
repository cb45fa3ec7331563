//! Round trips that pin the core vocabulary as lossless:
//! - any OpenAI chat request JSON, with unknown fields at every level, parses into
//!   `ChatRequest` and serializes back to the same JSON;
//! - any chat completion parses into `ChatResponse` and back, unchanged;
//! - a response cut into stream chunks (`response_chunks`) and folded back by the
//!   accumulator is the response again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use llm_tower_core::{ChatRequest, ChatResponse, ChatStreamAccumulator, Usage, response_chunks};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Arbitrary JSON (bounded depth), for unknown fields.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        (-1000.0f64..1000.0).prop_map(|f| json!(f)),
        "[a-z ]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Unknown fields: names no type models (prefixed `x_`).
fn unknown() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("x_[a-z]{1,6}", any_json(), 0..3)
        .prop_map(|m| m.into_iter().collect())
}

fn with(mut base: Map<String, Value>, extra: Map<String, Value>) -> Value {
    base.extend(extra);
    Value::Object(base)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn part() -> impl Strategy<Value = Value> {
    prop_oneof![
        ("[a-zA-Z ]{0,20}", unknown())
            .prop_map(|(t, x)| with(obj(json!({"type": "text", "text": t})), x)),
        (
            "https://[a-z]{1,8}\\.test/[a-z]{1,5}\\.png",
            prop::option::of(prop_oneof!["low", "high", "auto"]),
            unknown(),
            unknown()
        )
            .prop_map(|(url, detail, inner, x)| {
                let mut img = obj(json!({ "url": url }));
                if let Some(d) = detail {
                    img.insert("detail".into(), json!(d));
                }
                img.extend(inner);
                with(obj(json!({"type": "image_url", "image_url": img})), x)
            }),
        ("[A-Za-z0-9+/]{4,16}", prop_oneof!["wav", "mp3"], unknown()).prop_map(|(d, f, x)| {
            with(
                obj(json!({"type": "input_audio", "input_audio": {"data": d, "format": f}})),
                x,
            )
        }),
        (
            "file-[a-z0-9]{4,8}",
            prop::option::of("[a-z]{1,8}\\.pdf"),
            unknown()
        )
            .prop_map(|(id, name, x)| {
                let mut file = obj(json!({ "file_id": id }));
                if let Some(n) = name {
                    file.insert("filename".into(), json!(n));
                }
                with(obj(json!({"type": "file", "file": file})), x)
            }),
        (unknown(), "[a-z]{1,8}")
            .prop_map(|(x, t)| with(obj(json!({ "type": format!("x_{t}") })), x)),
    ]
}

fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-zA-Z .,]{0,30}".prop_map(Value::String),
        prop::collection::vec(part(), 1..4).prop_map(Value::Array),
    ]
}

fn tool_call() -> impl Strategy<Value = Value> {
    prop_oneof![
        ("call_[a-z0-9]{4}", "[a-z_]{1,10}", unknown()).prop_map(|(id, name, x)| {
            with(
                obj(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": "{\"a\":1}"}
                })),
                x,
            )
        }),
        ("call_[a-z0-9]{4}", "[a-z_]{1,10}").prop_map(|(id, name)| {
            json!({"id": id, "type": "custom", "custom": {"name": name, "input": "free text"}})
        }),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    let role = prop_oneof!["system", "developer", "user", "assistant", "tool"];
    (
        role,
        prop::option::of(content()),
        prop::option::of("[a-z]{1,8}"),
        prop::collection::vec(tool_call(), 0..3),
        prop::option::of("[a-zA-Z ]{1,20}"),
        prop::option::of("[a-zA-Z ]{1,20}"),
        any::<bool>(),
        unknown(),
    )
        .prop_map(
            |(role, content, name, calls, refusal, reasoning, thinking, x)| {
                let mut m = obj(json!({"role": role, "content": content}));
                if let Some(n) = name {
                    m.insert("name".into(), json!(n));
                }
                if role == "assistant" {
                    if !calls.is_empty() {
                        m.insert("tool_calls".into(), Value::Array(calls));
                    }
                    if let Some(r) = refusal {
                        m.insert("refusal".into(), json!(r));
                    }
                    if let Some(r) = reasoning {
                        m.insert("reasoning_content".into(), json!(r));
                    }
                    if thinking {
                        m.insert(
                            "thinking_blocks".into(),
                            json!([
                                {"type": "thinking", "thinking": "step one", "signature": "sig=="},
                                {"type": "redacted_thinking", "data": "enc=="}
                            ]),
                        );
                    }
                }
                if role == "tool" {
                    m.insert("tool_call_id".into(), json!("call_1"));
                }
                with(m, x)
            },
        )
}

fn tool() -> impl Strategy<Value = Value> {
    prop_oneof![
        (
            "[a-z_]{1,10}",
            prop::option::of("[a-zA-Z ]{1,20}"),
            any::<bool>(),
            unknown(),
            unknown()
        )
            .prop_map(|(name, desc, strict, inner, x)| {
                let mut f = obj(json!({
                    "name": name,
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}
                }));
                if let Some(d) = desc {
                    f.insert("description".into(), json!(d));
                }
                if strict {
                    f.insert("strict".into(), json!(true));
                }
                f.extend(inner);
                with(obj(json!({"type": "function", "function": f})), x)
            }),
        "[a-z_]{1,10}".prop_map(|name| {
            json!({"type": "custom", "custom": {"name": name, "format": {"type": "text"}}})
        }),
        unknown().prop_map(|x| with(obj(json!({"type": "x_builtin"})), x)),
    ]
}

fn chat_request() -> impl Strategy<Value = Value> {
    (
        "[a-z0-9-]{1,12}",
        prop::collection::vec(message(), 1..5),
        prop::collection::vec(tool(), 0..3),
        prop::option::of(prop_oneof![
            Just(json!("auto")),
            Just(json!("none")),
            Just(json!("required")),
            Just(json!({"type": "function", "function": {"name": "f"}})),
        ]),
        prop::option::of(1u32..100_000),
        prop::option::of(prop_oneof![Just(0.0), Just(0.7), Just(1.25), Just(2.0)]),
        prop::option::of(prop_oneof![Just(0.1), Just(0.95), Just(1.0)]),
        prop::option::of(1u32..5),
        prop::option::of(prop_oneof![
            "[a-z]{1,5}".prop_map(Value::String),
            prop::collection::vec("[a-z]{1,5}", 1..3).prop_map(|v| json!(v)),
        ]),
        (
            prop::option::of(any::<i64>()),
            any::<bool>(),
            prop::option::of(any::<bool>()),
            unknown(),
        ),
    )
        .prop_map(
            |(
                model,
                messages,
                tools,
                choice,
                max,
                temp,
                top_p,
                n,
                stop,
                (seed, stream, usage, x),
            )| {
                let mut r = obj(json!({"model": model, "messages": messages}));
                if !tools.is_empty() {
                    r.insert("tools".into(), Value::Array(tools));
                }
                for (k, v) in [
                    ("tool_choice", choice),
                    ("max_tokens", max.map(|m| json!(m))),
                    ("temperature", temp.map(|t| json!(t))),
                    ("top_p", top_p.map(|t| json!(t))),
                    ("n", n.map(|n| json!(n))),
                    ("stop", stop),
                    ("seed", seed.map(|s| json!(s))),
                ] {
                    if let Some(v) = v {
                        r.insert(k.into(), v);
                    }
                }
                if stream {
                    r.insert("stream".into(), json!(true));
                    if let Some(u) = usage {
                        r.insert(
                            "stream_options".into(),
                            json!({"include_usage": u, "include_obfuscation": false}),
                        );
                    }
                }
                with(r, x)
            },
        )
}

fn chat_response() -> impl Strategy<Value = Value> {
    let choice = (
        prop::option::of("[a-zA-Z .]{0,30}"),
        prop::collection::vec(tool_call(), 0..3),
        prop::option::of("[a-z ]{1,10}"),
        prop::option::of("[a-z ]{1,10}"),
        any::<bool>(),
        prop::option::of(prop_oneof!["stop", "length", "tool_calls"]),
        any::<bool>(),
        unknown(),
        unknown(),
    )
        .prop_map(
            |(text, calls, refusal, reasoning, thinking, finish, logprobs, mx, cx)| {
                let mut m = obj(json!({"role": "assistant", "content": text}));
                if !calls.is_empty() {
                    m.insert("tool_calls".into(), Value::Array(calls));
                }
                if let Some(r) = refusal {
                    m.insert("refusal".into(), json!(r));
                }
                if let Some(r) = reasoning {
                    m.insert("reasoning_content".into(), json!(r));
                }
                if thinking {
                    m.insert(
                        "thinking_blocks".into(),
                        json!([{"type": "thinking", "thinking": "hmm", "signature": "s1"}]),
                    );
                }
                m.extend(mx);
                let mut c = obj(json!({"message": m, "finish_reason": finish}));
                if logprobs {
                    c.insert(
                        "logprobs".into(),
                        json!({"content": [
                            {"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}
                        ]}),
                    );
                }
                (c, cx)
            },
        );
    (
        "chatcmpl-[a-z0-9]{4}",
        "[a-z0-9-]{1,12}",
        1u64..2_000_000_000,
        prop::collection::vec(choice, 1..3),
        prop::option::of("fp_[a-z0-9]{4}"),
        prop::option::of(prop_oneof!["default", "flex"]),
        unknown(),
    )
        .prop_map(|(id, model, created, choices, fp, tier, x)| {
            let choices: Vec<Value> = choices
                .into_iter()
                .enumerate()
                .map(|(i, (mut c, cx))| {
                    c.insert("index".into(), json!(i));
                    with(c, cx)
                })
                .collect();
            let mut r =
                obj(json!({"id": id, "model": model, "created": created, "choices": choices}));
            if let Some(f) = fp {
                r.insert("system_fingerprint".into(), json!(f));
            }
            if let Some(t) = tier {
                r.insert("service_tier".into(), json!(t));
            }
            with(r, x)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn openai_chat_requests_round_trip(v in chat_request()) {
        let req: ChatRequest = serde_json::from_value(v.clone()).unwrap();
        let back = serde_json::to_value(&req).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn openai_chat_responses_round_trip(v in chat_response()) {
        let resp: ChatResponse = serde_json::from_value(v.clone()).unwrap();
        let back = serde_json::to_value(&resp).unwrap();
        prop_assert_eq!(back, v);
    }

    #[test]
    fn streamed_chunks_fold_back_into_the_response(
        v in chat_response(),
        p in 0u64..10_000,
        c in 0u64..10_000,
    ) {
        let mut resp: ChatResponse = serde_json::from_value(v).unwrap();
        // The fold knows only what chunks carry: unknown choice and message fields are not
        // streamed, and an empty text beside tool calls or a refusal comes back as none.
        for choice in &mut resp.choices {
            choice.extra.clear();
            let m = &mut choice.message;
            m.extra.clear();
            if m.content.as_ref().is_some_and(|t| t.text().is_empty())
                && (!m.tool_calls.is_empty() || m.refusal.is_some())
            {
                m.content = None;
            }
            if m.content.is_none() && m.tool_calls.is_empty() && m.refusal.is_none() {
                m.content = Some(llm_tower_core::Content::Text(String::new()));
            }
        }
        resp.extra.clear();
        let usage = Usage::new(p, c, llm_tower_core::UsageSource::Provider);
        let mut acc = ChatStreamAccumulator::new();
        acc.extend(response_chunks(&resp, Some(usage)));
        let (folded, folded_usage) = acc.finish();
        prop_assert_eq!(folded_usage, Some(usage));
        prop_assert_eq!(folded, resp);
    }
}
