//! The Bedrock provider against a local server that speaks Converse, ConverseStream
//! (binary event-stream frames) and InvokeModel, and that checks the SigV4 signature of
//! every request it receives.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::aws::{
    AKID, REGION, SECRET, TOKEN, creds, event_stream, exception, frame, verify_signature,
};
use common::{Recorded, Reply, TestServer, collect, guard, serve};
use llm_tower_core::{
    ChatRequest, Content, ContentPart, EmbeddingInput, EmbeddingVector, EmbeddingsRequest, Error,
    ErrorKind, FileData, FunctionDef, LimitOrigin, LlmRequest, LlmResponse, Message, ResponseBody,
    Role, ThinkingBlock, Tool, ToolCall,
};
use llm_tower_providers::bedrock::{AwsCredentials, Bedrock, BedrockConfig};
use llm_tower_providers::http::HttpClient;
use serde_json::{Value, json};
use tower::ServiceExt;

const MODEL: &str = "anthropic.claude-sonnet-4-20250514-v1:0";
const MODEL_PATH: &str = "anthropic.claude-sonnet-4-20250514-v1%3A0";

/// A server whose every request must carry a valid signature; `checked` counts them.
async fn signed_server<F>(handler: F) -> (TestServer, Arc<AtomicUsize>)
where
    F: Fn(&Recorded) -> Reply + Send + Sync + 'static,
{
    let checked = Arc::new(AtomicUsize::new(0));
    let c = checked.clone();
    let server = serve(move |rec| match verify_signature(rec) {
        Ok(()) => {
            c.fetch_add(1, Ordering::SeqCst);
            handler(rec)
        }
        Err(e) => Reply::json(
            403,
            json!({"message": format!("TEST SIGNATURE CHECK FAILED: {e}")}),
        )
        .header("x-amzn-errortype", "InvalidSignatureException"),
    })
    .await;
    (server, checked)
}

fn provider(server: &TestServer) -> Bedrock {
    Bedrock::new(
        BedrockConfig::new(REGION, creds()).base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap()
}

async fn call(p: &Bedrock, req: LlmRequest) -> Result<LlmResponse, Error> {
    guard(p.clone().oneshot(req)).await
}

fn chat_of(r: LlmResponse) -> llm_tower_core::ChatResponse {
    match r.body {
        ResponseBody::Chat(c) => c,
        _ => panic!("not a chat response"),
    }
}

/// The whole answer: reasoning, text, a tool call, usage with cache reads and writes.
fn converse_body() -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "The user wants weather.", "signature": "sig-abc"}}},
            {"text": "Let me check."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 30, "outputTokens": 40, "totalTokens": 170,
                  "cacheReadInputTokens": 80, "cacheWriteInputTokens": 20},
        "metrics": {"latencyMs": 321}
    })
}

/// The same answer as ConverseStream events.
fn converse_frames() -> Vec<Vec<u8>> {
    vec![
        frame("messageStart", json!({"role": "assistant"})),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "The user "}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "wants weather."}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig-abc"}}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 0})),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"text": "Let me "}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"text": "check."}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 1})),
        frame(
            "contentBlockStart",
            json!({"contentBlockIndex": 2, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "{\"city\":"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 2})),
        frame("messageStop", json!({"stopReason": "tool_use"})),
        frame(
            "metadata",
            json!({"usage": {"inputTokens": 30, "outputTokens": 40, "totalTokens": 170,
                             "cacheReadInputTokens": 80, "cacheWriteInputTokens": 20},
                   "metrics": {"latencyMs": 321}}),
        ),
    ]
}

fn rich_request() -> ChatRequest {
    let mut system = Message::system("Be brief.");
    system
        .extra
        .insert("cache_control".into(), json!({"type": "ephemeral"}));
    let mut user_parts = vec![
        ContentPart::text("What is in these?"),
        ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
    ];
    user_parts.push(ContentPart::File {
        file: FileData {
            file_id: None,
            file_data: Some("data:application/pdf;base64,JVBERi0xLjQ=".into()),
            filename: Some("Q3 report (final).pdf".into()),
            extra: Default::default(),
        },
        extra: [("cache_control".to_owned(), json!({"type": "ephemeral"}))]
            .into_iter()
            .collect(),
    });
    let mut user = Message::user("x");
    user.content = Some(Content::Parts(user_parts));
    let mut assistant = Message::assistant("Checking.");
    assistant.thinking_blocks = vec![ThinkingBlock::Thinking {
        thinking: "Need the weather.".into(),
        signature: "sig-1".into(),
    }];
    assistant.tool_calls = vec![ToolCall::function(
        "tooluse_0",
        "get_weather",
        r#"{"city":"Lyon"}"#,
    )];
    let tool = Message::tool("tooluse_0", r#"{"temp_c": 21}"#);
    let mut req = ChatRequest::new(
        MODEL,
        vec![system, user, assistant, tool, Message::user("And Paris?")],
    );
    let mut f = FunctionDef::new("get_weather");
    f.description = Some("Current weather".into());
    f.parameters = Some(json!({"type": "object", "properties": {"city": {"type": "string"}}}));
    req.tools = vec![Tool::function(f)];
    req.tool_choice = Some(json!("required"));
    req.max_tokens = Some(2048);
    req.temperature = Some(0.5);
    req.top_p = Some(0.9);
    req.stop = Some(llm_tower_core::Stop::One("END".into()));
    req.extra.insert("reasoning_effort".into(), json!("low"));
    req.extra.insert("seed".into(), json!(7));
    req.extra.insert(
        "guardrailConfig".into(),
        json!({"guardrailIdentifier": "g1", "guardrailVersion": "1"}),
    );
    req
}

#[tokio::test]
async fn converse_request_is_signed_and_mapped_and_the_answer_comes_back() {
    let (server, checked) =
        signed_server(|_| Reply::json(200, converse_body()).header("x-amzn-requestid", "req-123"))
            .await;
    let p = provider(&server);
    let resp = call(&p, LlmRequest::chat(rich_request())).await.unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 1);
    let rec = server.last();
    assert_eq!(rec.method, http::Method::POST);
    assert_eq!(rec.uri.path(), format!("/model/{MODEL_PATH}/converse"));
    assert_eq!(rec.header("x-amz-security-token"), Some(TOKEN));
    assert_eq!(rec.header("content-type"), Some("application/json"));
    let expected = json!({
        "system": [{"text": "Be brief."}, {"cachePoint": {"type": "default"}}],
        "messages": [
            {"role": "user", "content": [
                {"text": "What is in these?"},
                {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
                {"document": {"format": "pdf", "name": "Q3 report (final)", "source": {"bytes": "JVBERi0xLjQ="}}},
                {"cachePoint": {"type": "default"}}
            ]},
            {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "Need the weather.", "signature": "sig-1"}}},
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "tooluse_0", "name": "get_weather", "input": {"city": "Lyon"}}}
            ]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_0", "content": [{"json": {"temp_c": 21}}]}},
                {"text": "And Paris?"}
            ]}
        ],
        // Thinking is on (reasoning_effort low): temperature and topP < 0.95 are not sent.
        "inferenceConfig": {"maxTokens": 2048, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [{"toolSpec": {"name": "get_weather", "description": "Current weather",
                        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}],
            "toolChoice": {"any": {}}
        },
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        "guardrailConfig": {"guardrailIdentifier": "g1", "guardrailVersion": "1"}
    });
    assert_eq!(rec.json(), expected);

    let usage = resp.usage.unwrap();
    assert_eq!(usage.prompt_tokens, 130);
    assert_eq!(usage.completion_tokens, 40);
    assert_eq!(usage.cached_prompt_tokens, 80);
    assert_eq!(usage.cache_write_5m_tokens, 20);
    assert_eq!(resp.meta.provider.as_deref(), Some("bedrock"));
    let chat = chat_of(resp);
    assert_eq!(chat.id, "chatcmpl-bedrock-req-123");
    assert_eq!(chat.model, MODEL);
    let choice = &chat.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.extra["bedrock_stop_reason"], "tool_use");
    let m = &choice.message;
    assert_eq!(m.content.as_ref().unwrap().text(), "Let me check.");
    assert_eq!(m.tool_calls[0].id, "tooluse_1");
    assert_eq!(m.tool_calls[0].function.name, "get_weather");
    assert_eq!(m.tool_calls[0].function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(
        m.reasoning_content.as_deref(),
        Some("The user wants weather.")
    );
    assert_eq!(
        m.thinking_blocks,
        vec![ThinkingBlock::Thinking {
            thinking: "The user wants weather.".into(),
            signature: "sig-abc".into()
        }]
    );
    assert_eq!(chat.extra["metrics"]["latencyMs"], 321);
}

#[tokio::test]
async fn stop_reasons_map_to_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
    ] {
        let (server, _) = signed_server(move |_| {
            Reply::json(
                200,
                json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
                       "stopReason": stop, "usage": {"inputTokens": 1, "outputTokens": 1}}),
            )
        })
        .await;
        let chat = chat_of(
            call(
                &provider(&server),
                LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")])),
            )
            .await
            .unwrap(),
        );
        assert_eq!(
            chat.choices[0].finish_reason.as_deref(),
            Some(finish),
            "{stop}"
        );
    }
}

#[tokio::test]
async fn stream_split_at_every_byte_folds_into_the_non_streamed_answer() {
    let (server, checked) = signed_server(|rec| {
        if rec.uri.path().ends_with("/converse-stream") {
            event_stream(&converse_frames()).split_every(1)
        } else {
            Reply::json(200, converse_body())
        }
    })
    .await;
    let p = provider(&server);
    let whole = call(
        &p,
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("Weather?")])),
    )
    .await
    .unwrap();
    let whole_usage = whole.usage;
    let whole = chat_of(whole);
    let streamed = call(
        &p,
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("Weather?")]).streaming()),
    )
    .await
    .unwrap();
    assert!(streamed.meta.time_to_first_token.is_some());
    let rec = server.last();
    assert_eq!(
        rec.uri.path(),
        format!("/model/{MODEL_PATH}/converse-stream")
    );
    assert_eq!(
        rec.header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
    let ResponseBody::Stream(stream) = streamed.body else {
        panic!("not a stream")
    };
    let (folded, usage) = guard(llm_tower_core::collect_chat_stream(stream))
        .await
        .unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 2);
    assert_eq!(usage, whole_usage);
    assert_eq!(folded.choices.len(), 1);
    assert_eq!(folded.choices[0].message, whole.choices[0].message);
    assert_eq!(
        folded.choices[0].finish_reason,
        whole.choices[0].finish_reason
    );
}

#[tokio::test]
async fn a_corrupt_frame_is_a_clear_transport_error() {
    let mut frames = converse_frames();
    // Flip a payload bit of the third frame: its message CRC no longer matches.
    let f = &mut frames[2];
    let n = f.len();
    f[n - 10] ^= 0x01;
    let (server, _) = signed_server(move |_| event_stream(&frames)).await;
    let resp = call(
        &provider(&server),
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")]).streaming()),
    )
    .await;
    let err = match resp {
        Err(e) => e,
        Ok(r) => {
            let ResponseBody::Stream(s) = r.body else {
                panic!()
            };
            collect(s)
                .await
                .into_iter()
                .find_map(Result::err)
                .expect("an error")
        }
    };
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(
        err.message().contains("corrupt event-stream frame"),
        "{}",
        err.message()
    );
    assert_eq!(err.provider(), Some("bedrock"));
}

#[tokio::test]
async fn a_truncated_stream_is_a_transport_error() {
    let mut frames = converse_frames();
    frames.truncate(8);
    let (server, _) = signed_server(move |_| event_stream(&frames)).await;
    let r = call(
        &provider(&server),
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")]).streaming()),
    )
    .await
    .unwrap();
    let ResponseBody::Stream(s) = r.body else {
        panic!()
    };
    let items = collect(s).await;
    let e = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(e.message().contains("metadata"), "{}", e.message());
}

#[tokio::test]
async fn exception_events_map_to_errors() {
    for (kind, message, expected) in [
        (
            "throttlingException",
            "Too many requests",
            ErrorKind::RateLimited,
        ),
        (
            "validationException",
            "bad input",
            ErrorKind::InvalidRequest,
        ),
        (
            "validationException",
            "Input is too long for requested model.",
            ErrorKind::ContextLengthExceeded,
        ),
        (
            "modelStreamErrorException",
            "model failed",
            ErrorKind::Provider { status: 424 },
        ),
        (
            "internalServerException",
            "oops",
            ErrorKind::Provider { status: 500 },
        ),
        (
            "serviceUnavailableException",
            "later",
            ErrorKind::Overloaded,
        ),
    ] {
        // Before any token: the call itself fails.
        let frames = vec![
            frame("messageStart", json!({"role": "assistant"})),
            exception(kind, message),
        ];
        let (server, _) = signed_server(move |_| event_stream(&frames)).await;
        let p = provider(&server);
        let req =
            || LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")]).streaming());
        let e = call(&p, req()).await.unwrap_err();
        assert_eq!(e.kind(), expected, "{kind}");
        assert!(e.message().contains(message), "{}", e.message());
        if expected == ErrorKind::RateLimited {
            assert_eq!(e.origin(), Some(LimitOrigin::Provider));
        }
        // After a token: the stream ends with the error (fed byte by byte, so the token
        // is usually handed out before the exception frame is read).
        let frames = vec![
            frame("messageStart", json!({"role": "assistant"})),
            frame(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            ),
            exception(kind, message),
        ];
        let (server, _) = signed_server(move |_| event_stream(&frames).split_every(1)).await;
        let e = match call(&provider(&server), req()).await {
            Err(e) => e,
            Ok(r) => {
                let ResponseBody::Stream(s) = r.body else {
                    panic!()
                };
                let items = collect(s).await;
                items.last().unwrap().as_ref().unwrap_err().clone()
            }
        };
        assert_eq!(e.kind(), expected, "{kind}");
    }
}

#[tokio::test]
async fn http_errors_map_by_error_type() {
    for (status, kind, message, expected) in [
        (
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            ErrorKind::RateLimited,
        ),
        (
            400,
            "ValidationException",
            "The model returned the following errors: Input is too long for requested model.",
            ErrorKind::ContextLengthExceeded,
        ),
        (
            400,
            "ValidationException",
            "Malformed input request",
            ErrorKind::InvalidRequest,
        ),
        (
            403,
            "AccessDeniedException",
            "You don't have access to the model",
            ErrorKind::Unauthorized,
        ),
        (
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            ErrorKind::Unauthorized,
        ),
        (
            429,
            "ModelNotReadyException",
            "Model is not ready",
            ErrorKind::Overloaded,
        ),
        (
            503,
            "ServiceUnavailableException",
            "Service unavailable",
            ErrorKind::Overloaded,
        ),
        (
            408,
            "ModelTimeoutException",
            "Model timed out",
            ErrorKind::Timeout,
        ),
        (
            500,
            "InternalServerException",
            "Internal error",
            ErrorKind::Provider { status: 500 },
        ),
        (
            404,
            "ResourceNotFoundException",
            "Model not found",
            ErrorKind::InvalidRequest,
        ),
    ] {
        let (server, _) = signed_server(move |_| {
            Reply::json(status, json!({"message": message})).header(
                "x-amzn-errortype",
                &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
            )
        })
        .await;
        let e = call(
            &provider(&server),
            LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")])),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), expected, "{kind}");
        assert!(e.message().contains(kind), "{}", e.message());
        assert!(e.message().contains(&message[..10]), "{}", e.message());
        assert_eq!(e.provider(), Some("bedrock"));
    }
    // A retry-after header is kept; the secret never shows.
    let (server, _) = signed_server(|_| {
        Reply::json(429, json!({"message": format!("slow down {SECRET}")}))
            .header("x-amzn-errortype", "ThrottlingException")
            .header("retry-after", "2")
    })
    .await;
    let e = call(
        &provider(&server),
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")])),
    )
    .await
    .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    assert!(!e.message().contains(SECRET), "{}", e.message());
    assert!(!format!("{e:?}").contains(SECRET));
}

#[tokio::test]
async fn titan_embeds_one_text_per_call() {
    let (server, checked) = signed_server(|rec| {
        let text = rec.json()["inputText"].as_str().unwrap().to_owned();
        let n = text.len() as f32;
        Reply::json(
            200,
            json!({"embedding": [n, 0.5], "inputTextTokenCount": text.len()}),
        )
    })
    .await;
    let req = EmbeddingsRequest {
        model: "amazon.titan-embed-text-v2:0".into(),
        input: EmbeddingInput::Many(vec!["abc".into(), "hello".into()]),
        encoding_format: None,
        dimensions: Some(256),
        user: None,
        extra: Default::default(),
    };
    let r = call(&provider(&server), LlmRequest::embeddings(req))
        .await
        .unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 2);
    let recs = server.requests();
    assert_eq!(
        recs[0].uri.path(),
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    );
    assert_eq!(
        recs[0].json(),
        json!({"inputText": "abc", "dimensions": 256})
    );
    assert_eq!(recs[1].json()["inputText"], "hello");
    assert_eq!(r.usage.unwrap().prompt_tokens, 8);
    let ResponseBody::Embeddings(e) = r.body else {
        panic!()
    };
    assert_eq!(e.data.len(), 2);
    assert_eq!(e.data[1].index, 1);
    assert_eq!(e.data[1].embedding, EmbeddingVector::Float(vec![5.0, 0.5]));
}

#[tokio::test]
async fn cohere_embeds_a_batch() {
    let (server, checked) = signed_server(|_| {
        Reply::json(
            200,
            json!({"id": "e1", "embeddings": [[0.1, 0.2], [0.3, 0.4]], "texts": ["a", "b"]}),
        )
        .header("x-amzn-bedrock-input-token-count", "7")
    })
    .await;
    let req = EmbeddingsRequest {
        model: "cohere.embed-english-v3".into(),
        input: EmbeddingInput::Many(vec!["a".into(), "b".into()]),
        encoding_format: None,
        dimensions: None,
        user: None,
        extra: Default::default(),
    };
    let r = call(&provider(&server), LlmRequest::embeddings(req))
        .await
        .unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.last().json(),
        json!({"texts": ["a", "b"], "input_type": "search_document"})
    );
    assert_eq!(r.usage.unwrap().prompt_tokens, 7);
    let ResponseBody::Embeddings(e) = r.body else {
        panic!()
    };
    assert_eq!(e.data[1].embedding, EmbeddingVector::Float(vec![0.3, 0.4]));
}

#[tokio::test]
async fn health_is_a_signed_get_of_foundation_models() {
    let (server, checked) =
        signed_server(|_| Reply::json(200, json!({"modelSummaries": []}))).await;
    provider(&server).health().await.unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 1);
    let rec = server.last();
    assert_eq!(rec.method, http::Method::GET);
    assert_eq!(rec.uri.path(), "/foundation-models");
}

#[tokio::test]
async fn a_wrong_secret_fails_the_signature_check_and_secrets_stay_hidden() {
    let (server, checked) = signed_server(|_| Reply::json(200, converse_body())).await;
    let p = Bedrock::new(
        BedrockConfig::new(
            REGION,
            AwsCredentials::new(AKID, "not-the-secret").session_token(TOKEN),
        )
        .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = call(
        &p,
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")])),
    )
    .await
    .unwrap_err();
    assert_eq!(checked.load(Ordering::SeqCst), 0);
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(
        e.message().contains("signature mismatch"),
        "{}",
        e.message()
    );
    let dbg = format!("{p:?} {:?}", creds());
    assert!(!dbg.contains(SECRET) && !dbg.contains(TOKEN), "{dbg}");
}

#[tokio::test]
async fn requests_bedrock_cannot_take_fail_before_sending() {
    let (server, _) = signed_server(|_| Reply::json(200, converse_body())).await;
    let p = provider(&server);
    let mut m = Message::user("x");
    m.content = Some(Content::Parts(vec![ContentPart::image_url(
        "https://example.invalid/cat.png",
    )]));
    let e = call(&p, LlmRequest::chat(ChatRequest::new(MODEL, vec![m])))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    let mut t = Message::empty(Role::Tool);
    t.content = Some(Content::Text("r".into()));
    let e = call(&p, LlmRequest::chat(ChatRequest::new(MODEL, vec![t])))
        .await
        .unwrap_err();
    assert_eq!(e.param(), Some("messages[0].tool_call_id"));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_json_answer_to_converse_stream_is_named_and_session_tokens_are_optional() {
    let server = serve(|_| Reply::json(200, converse_body())).await;
    let p = Bedrock::new(
        BedrockConfig::new(REGION, AwsCredentials::new(AKID, SECRET)).base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = call(
        &p,
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")]).streaming()),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider { status: 502 });
    assert!(e.message().contains("application/json"), "{}", e.message());
    let rec = server.last();
    assert!(rec.header("x-amz-security-token").is_none());
    let auth = rec.header("authorization").unwrap();
    assert!(!auth.contains("x-amz-security-token"), "{auth}");
    assert!(auth.contains("/eu-west-3/bedrock/aws4_request"), "{auth}");
}

// ---------------------------------------------------------------------------------------
// Rotating credentials
// ---------------------------------------------------------------------------------------

fn write_profile(path: &std::path::Path, secret: &str, token: &str, mtime_secs: u64) {
    std::fs::write(
        path,
        format!(
            "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n\
             [bedrock]\naws_access_key_id = {AKID}\naws_secret_access_key = {secret}\n\
             aws_session_token = {token}\n"
        ),
    )
    .unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(mtime_secs))
        .unwrap();
}

#[tokio::test]
async fn a_rotated_profile_file_is_signed_with_on_the_next_request() {
    use llm_tower_providers::bedrock::AwsCredentialsProvider;
    let path = std::env::temp_dir().join(format!("llm-tower-bedrock-creds-{}", std::process::id()));
    // Stale temporary credentials: the server (which knows only the current ones)
    // refuses their signature.
    let stale_secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYSTALEKEY";
    write_profile(&path, stale_secret, "stale-SESSION-token-0001", 1_000);
    let (server, checked) = signed_server(|_| Reply::json(200, converse_body())).await;
    let p = Bedrock::new(
        BedrockConfig::new(
            REGION,
            AwsCredentialsProvider::profile_file(&path, "bedrock").unwrap(),
        )
        .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let req = || LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")]));
    let e = call(&p, req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert_eq!(
        server.last().header("x-amz-security-token"),
        Some("stale-SESSION-token-0001")
    );
    // Rotated on disk: the next request is signed with the new keys, no restart.
    write_profile(&path, SECRET, TOKEN, 2_000);
    call(&p, req()).await.unwrap();
    assert_eq!(checked.load(Ordering::SeqCst), 1);
    assert_eq!(server.last().header("x-amz-security-token"), Some(TOKEN));
    let _ = std::fs::remove_file(&path);
    assert!(!format!("{p:?}").contains(SECRET));
}

#[tokio::test]
async fn credentials_from_a_closure_are_scrubbed_from_echoing_errors() {
    // The upstream echoes the session token and (absurdly) the secret key.
    let server = serve(|rec| {
        let token = rec.header("x-amz-security-token").unwrap_or_default();
        Reply::json(
            403,
            json!({"message": format!("The security token {token} is invalid; key {SECRET}")}),
        )
        .header("x-amzn-errortype", "UnrecognizedClientException")
    })
    .await;
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    let p = Bedrock::new(
        BedrockConfig::new(
            REGION,
            AwsCredentials::provider(move || {
                let i = m.fetch_add(1, Ordering::SeqCst);
                Ok(AwsCredentials::new(AKID, SECRET).session_token(format!("rotating-token-{i}")))
            }),
        )
        .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    for i in 0..2 {
        let e = call(
            &p,
            LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")])),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        let token = format!("rotating-token-{i}");
        assert_eq!(
            server.last().header("x-amz-security-token"),
            Some(token.as_str())
        );
        let shown = format!("{e} {e:?}");
        assert!(e.message().contains("[redacted]"), "{shown}");
        assert!(
            !shown.contains(&token) && !shown.contains(SECRET),
            "{shown}"
        );
    }
    // A closure that fails is an Unauthorized error before anything is sent.
    let p = Bedrock::new(
        BedrockConfig::new(
            REGION,
            AwsCredentials::provider(|| Err(Error::config("the vault is sealed"))),
        )
        .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let before = server.requests().len();
    let e = call(
        &p,
        LlmRequest::chat(ChatRequest::new(MODEL, vec![Message::user("hi")])),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("the vault is sealed"), "{e}");
    assert_eq!(server.requests().len(), before);
}

// ---------------------------------------------------------------------------------------
// response_format
// ---------------------------------------------------------------------------------------

fn json_schema_request() -> ChatRequest {
    let mut req = ChatRequest::new(MODEL, vec![Message::user("Weather in Paris as JSON")]);
    req.response_format = Some(json!({
        "type": "json_schema",
        "json_schema": {"name": "weather report", "strict": true, "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
            "required": ["city", "temp_c"]
        }}
    }));
    req
}

#[tokio::test]
async fn response_format_json_schema_is_a_forced_tool_whose_input_is_the_answer() {
    let (server, checked) = signed_server(|rec| {
        if rec.uri.path().ends_with("/converse-stream") {
            event_stream(&[
                frame("messageStart", json!({"role": "assistant"})),
                frame(
                    "contentBlockStart",
                    json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_j", "name": "weather_report"}}}),
                ),
                frame(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"city\":\"Paris\","}}}),
                ),
                frame(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"temp_c\":21}"}}}),
                ),
                frame("contentBlockStop", json!({"contentBlockIndex": 0})),
                frame("messageStop", json!({"stopReason": "tool_use"})),
                frame(
                    "metadata",
                    json!({"usage": {"inputTokens": 50, "outputTokens": 12}, "metrics": {"latencyMs": 5}}),
                ),
            ])
            .split_every(7)
        } else {
            Reply::json(
                200,
                json!({
                    "output": {"message": {"role": "assistant", "content": [
                        {"toolUse": {"toolUseId": "tooluse_j", "name": "weather_report",
                                     "input": {"city": "Paris", "temp_c": 21}}}
                    ]}},
                    "stopReason": "tool_use",
                    "usage": {"inputTokens": 50, "outputTokens": 12}
                }),
            )
        }
    })
    .await;
    let p = provider(&server);

    let resp = call(&p, LlmRequest::chat(json_schema_request()))
        .await
        .unwrap();
    let sent = server.last().json();
    assert_eq!(
        sent["toolConfig"],
        json!({
            "tools": [{"toolSpec": {
                "name": "weather_report",
                "description": "Respond with the answer as the input of this tool, as JSON that matches its schema.",
                "inputSchema": {"json": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
                    "required": ["city", "temp_c"]
                }}
            }}],
            "toolChoice": {"tool": {"name": "weather_report"}}
        })
    );
    assert!(sent.get("response_format").is_none());
    let chat = chat_of(resp);
    let choice = &chat.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    assert!(choice.message.tool_calls.is_empty());
    let text = choice.message.content.as_ref().unwrap().text().into_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"city": "Paris", "temp_c": 21})
    );

    // Streamed: the tool's input arrives as content deltas.
    let resp = call(&p, LlmRequest::chat(json_schema_request().streaming()))
        .await
        .unwrap();
    assert_eq!(server.last().json()["toolConfig"], sent["toolConfig"]);
    let ResponseBody::Stream(stream) = resp.body else {
        panic!("not a stream")
    };
    let (folded, usage) = guard(llm_tower_core::collect_chat_stream(stream))
        .await
        .unwrap();
    let m = &folded.choices[0].message;
    assert!(m.tool_calls.is_empty(), "{m:?}");
    assert_eq!(
        m.content.as_ref().unwrap().text(),
        r#"{"city":"Paris","temp_c":21}"#
    );
    assert_eq!(folded.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(usage.unwrap().completion_tokens, 12);
    assert_eq!(checked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn response_format_next_to_tools_and_the_refused_json_mode() {
    let (server, _) = signed_server(|_| Reply::json(200, converse_body())).await;
    let p = provider(&server);
    // Next to the caller's tools: one more tool, and the model must call one of them.
    let mut req = json_schema_request();
    let mut f = FunctionDef::new("get_weather");
    f.parameters = Some(json!({"type": "object"}));
    req.tools = vec![Tool::function(f)];
    let resp = call(&p, LlmRequest::chat(req.clone())).await.unwrap();
    let sent = server.last().json();
    let names: Vec<&str> = sent["toolConfig"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["toolSpec"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "weather_report"]);
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
    // A real tool call stays a tool call.
    let chat = chat_of(resp);
    assert_eq!(chat.choices[0].finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        chat.choices[0].message.tool_calls[0].function.name,
        "get_weather"
    );

    let n = server.requests().len();
    for (rf, what) in [
        (json!({"type": "json_object"}), "json_schema"),
        (
            json!({"type": "json_schema", "json_schema": {"name": "x"}}),
            "schema",
        ),
        (json!({"type": "yaml"}), "json_schema"),
    ] {
        let mut req = ChatRequest::new(MODEL, vec![Message::user("hi")]);
        req.response_format = Some(rf.clone());
        let e = call(&p, LlmRequest::chat(req)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{rf}");
        assert_eq!(e.http_status(), 400);
        assert_eq!(e.param(), Some("response_format"), "{rf}");
        assert!(e.message().contains("response_format"), "{}", e.message());
        assert!(e.message().contains(what), "{}", e.message());
    }
    assert_eq!(server.requests().len(), n, "refused before sending");
    // `text` is the default and changes nothing.
    let mut req = ChatRequest::new(MODEL, vec![Message::user("hi")]);
    req.response_format = Some(json!({"type": "text"}));
    call(&p, LlmRequest::chat(req)).await.unwrap();
    assert!(server.last().json().get("toolConfig").is_none());
}
