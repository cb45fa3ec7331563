//! The Gemini provider against a local server speaking the Gemini API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{End, Reply, TestServer, collect, guard, serve};
use llm_tower_core::{
    ChatRequest, Content, ContentPart, EmbeddingInput, EmbeddingVector, EmbeddingsRequest, Error,
    ErrorKind, FileData, FunctionDef, LimitOrigin, LlmRequest, LlmResponse, Message, Role, Tool,
    ToolCall, UsageSource, collect_chat_stream,
};
use llm_tower_providers::gemini::{Gemini, GeminiConfig};
use llm_tower_providers::http::HttpClient;
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "AIzaSyTEST-SECRET-key-0123456789abcdef";

fn provider(server: &TestServer) -> Gemini {
    Gemini::new(
        GeminiConfig::new(KEY).base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap()
}

async fn call(p: &Gemini, req: LlmRequest) -> Result<LlmResponse, Error> {
    guard(p.clone().oneshot(req)).await
}

fn weather_tool() -> Tool {
    let mut f = FunctionDef::new("get_weather");
    f.description = Some("Weather for a city".into());
    f.parameters = Some(json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "city": {"type": "string", "enum": ["Paris", "Oslo"]},
            "additionalProperties": {"type": "object", "additionalProperties": false}
        },
        "required": ["city"],
        "additionalProperties": false
    }));
    f.strict = Some(true);
    Tool::function(f)
}

fn text_body() -> Value {
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "Let me think.", "thought": true},
                {"text": "Hello"},
                {"text": " there!"}
            ]},
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
        }],
        "usageMetadata": {
            "promptTokenCount": 120, "cachedContentTokenCount": 100,
            "candidatesTokenCount": 7, "thoughtsTokenCount": 30, "totalTokenCount": 157
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-abc"
    })
}

fn text_events() -> Vec<String> {
    vec![
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me think.", "thought": true}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 100, "totalTokenCount": 120},
               "modelVersion": "gemini-2.5-flash", "responseId": "resp-abc"}).to_string(),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 100, "candidatesTokenCount": 1, "thoughtsTokenCount": 30, "totalTokenCount": 151},
               "modelVersion": "gemini-2.5-flash", "responseId": "resp-abc"}).to_string(),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": " there!"}]}, "finishReason": "STOP", "index": 0,
               "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]}],
               "usageMetadata": {"promptTokenCount": 120, "cachedContentTokenCount": 100, "candidatesTokenCount": 7, "thoughtsTokenCount": 30, "totalTokenCount": 157},
               "modelVersion": "gemini-2.5-flash", "responseId": "resp-abc"}).to_string(),
    ]
}

fn tool_body() -> Value {
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="},
                {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
            ]},
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 10, "totalTokenCount": 60},
        "modelVersion": "gemini-2.5-pro"
    })
}

#[tokio::test]
async fn request_mapping_system_turns_images_files_tools_and_generation_config() {
    let server = serve(|_| Reply::json(200, text_body())).await;
    let mut assistant = Message::assistant("");
    assistant.content = None;
    let mut call0 = ToolCall::function("call_0", "get_weather", r#"{"city":"Paris"}"#);
    call0
        .extra
        .insert("thought_signature".into(), json!("c2lnLTE="));
    assistant.tool_calls = vec![call0];
    let mut user = Message::user("");
    user.content = Some(Content::Parts(vec![
        ContentPart::text("What is in these?"),
        ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
        ContentPart::image_url("https://example.com/cat.JPG?size=large"),
        ContentPart::File {
            file: FileData {
                file_id: Some("https://generativelanguage.googleapis.com/v1beta/files/abc".into()),
                file_data: None,
                filename: Some("report.pdf".into()),
                extra: Default::default(),
            },
            extra: Default::default(),
        },
        ContentPart::File {
            file: FileData {
                file_id: None,
                file_data: Some("data:application/pdf;base64,JVBERi0=".into()),
                filename: None,
                extra: Default::default(),
            },
            extra: Default::default(),
        },
    ]));
    let mut req = ChatRequest::new(
        "gemini-2.5-flash",
        vec![
            Message::system("Be brief."),
            Message::empty(Role::Developer),
            user,
            assistant,
            Message::tool("call_0", "18C and sunny"),
            Message::user("Thanks"),
        ],
    );
    req.messages[1].content = Some(Content::Text("Answer in English.".into()));
    req.tools = vec![weather_tool()];
    req.tool_choice = Some(json!({"type": "function", "function": {"name": "get_weather"}}));
    req.temperature = Some(0.5);
    req.top_p = Some(0.9);
    req.max_tokens = Some(256);
    req.n = Some(2);
    req.seed = Some(7);
    req.stop = Some(llm_tower_core::Stop::Many(vec!["END".into()]));
    req.response_format = Some(
        json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true,
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}}}),
    );
    req.extra.insert("reasoning_effort".into(), json!("low"));
    req.extra.insert("user".into(), json!("ignored"));
    req.extra.insert("logprobs".into(), json!(true));
    req.extra.insert("top_logprobs".into(), json!(3));
    let resp = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap();
    assert!(resp.as_chat().is_some());

    let rec = server.last();
    assert_eq!(
        rec.uri.path(),
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(rec.header("x-goog-api-key"), Some(KEY));
    let body = rec.json();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}, {"text": "Answer in English."}]})
    );
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 4);
    assert_eq!(contents[0]["role"], "user");
    assert_eq!(
        contents[0]["parts"],
        json!([
            {"text": "What is in these?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"fileUri": "https://example.com/cat.JPG?size=large", "mimeType": "image/jpeg"}},
            {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc", "mimeType": "application/pdf"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
        ])
    );
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="}]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "18C and sunny"}}}]})
    );
    assert_eq!(
        contents[3],
        json!({"role": "user", "parts": [{"text": "Thanks"}]})
    );
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{
            "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "enum": ["Paris", "Oslo"]},
                "additionalProperties": {"type": "object"}
            }, "required": ["city"]}
        }]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        body["generationConfig"],
        json!({
            "temperature": 0.5, "topP": 0.9, "maxOutputTokens": 256, "candidateCount": 2,
            "seed": 7, "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseSchema": {"type": "object", "properties": {"a": {"type": "string"}}},
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true},
            "responseLogprobs": true, "logprobs": 3
        })
    );
    assert!(body.get("user").is_none());
}

#[tokio::test]
async fn tool_choice_modes_json_object_and_thinking_passthrough() {
    let server = serve(|_| Reply::json(200, text_body())).await;
    let p = provider(&server);
    for (choice, mode) in [("auto", "AUTO"), ("required", "ANY"), ("none", "NONE")] {
        let mut req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
        req.tools = vec![weather_tool()];
        req.tool_choice = Some(json!(choice));
        req.response_format = Some(json!({"type": "json_object"}));
        req.extra.insert(
            "thinking_config".into(),
            json!({"thinkingLevel": "high", "includeThoughts": true}),
        );
        call(&p, LlmRequest::chat(req)).await.unwrap();
        let body = server.last().json();
        assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], mode);
        assert_eq!(
            body["generationConfig"]["responseMimeType"],
            "application/json"
        );
        assert_eq!(
            body["generationConfig"]["thinkingConfig"],
            json!({"thinkingLevel": "high", "includeThoughts": true})
        );
    }
    // reasoning_effort none turns thinking off.
    let mut req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    req.extra.insert("reasoning_effort".into(), json!("none"));
    call(&p, LlmRequest::chat(req)).await.unwrap();
    assert_eq!(
        server.last().json()["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0})
    );
}

#[tokio::test]
async fn invalid_inputs_are_refused_before_sending() {
    let server = serve(|_| Reply::json(200, text_body())).await;
    let p = provider(&server);
    let mut img = Message::user("");
    img.content = Some(Content::Parts(vec![ContentPart::image_url(
        "https://example.com/image",
    )]));
    let cases = vec![
        (
            ChatRequest::new("gemini-2.5-flash", vec![img]),
            "messages[0].content[0].image_url",
        ),
        (
            ChatRequest::new(
                "gemini-2.5-flash",
                vec![Message::user("q"), Message::tool("call_9", "r")],
            ),
            "messages[1].tool_call_id",
        ),
        (
            ChatRequest::new("../../v1/evil?x=", vec![Message::user("q")]),
            "model",
        ),
    ];
    for (req, param) in cases {
        let e = call(&p, LlmRequest::chat(req)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
        assert_eq!(e.param(), Some(param), "{e}");
        assert_eq!(e.provider(), Some("gemini"));
    }
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn text_response_with_thoughts_usage_and_meta() {
    let server = serve(|_| Reply::json(200, text_body())).await;
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    let resp = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap();
    let chat = resp.as_chat().unwrap();
    assert_eq!(chat.id, "resp-abc");
    assert_eq!(chat.model, "gemini-2.5-flash");
    let c = &chat.choices[0];
    assert_eq!(c.message.content.as_ref().unwrap().text(), "Hello there!");
    assert_eq!(
        c.message.reasoning_content.as_deref(),
        Some("Let me think.")
    );
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert!(c.extra.contains_key("safety_ratings"));
    let u = resp.usage.unwrap();
    assert_eq!(u.prompt_tokens, 120);
    assert_eq!(u.cached_prompt_tokens, 100);
    assert_eq!(u.completion_tokens, 37);
    assert_eq!(u.reasoning_tokens, 30);
    assert_eq!(u.total_tokens, 157);
    assert_eq!(u.source, UsageSource::Provider);
    assert_eq!(resp.meta.provider.as_deref(), Some("gemini"));
    assert_eq!(resp.meta.model.as_deref(), Some("gemini-2.5-flash"));
}

#[tokio::test]
async fn function_calls_get_ids_arguments_and_signatures() {
    let server = serve(|_| Reply::json(200, tool_body())).await;
    let mut req = ChatRequest::new("gemini-2.5-pro", vec![Message::user("weather?")]);
    req.tools = vec![weather_tool()];
    let resp = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap();
    let c = &resp.as_chat().unwrap().choices[0];
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    assert!(c.message.content.is_none());
    let calls = &c.message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_0");
    assert_eq!(calls[1].id, "call_1");
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(calls[0].extra["thought_signature"], "c2lnLTE=");
    assert!(!calls[1].extra.contains_key("thought_signature"));
}

#[tokio::test]
async fn finish_reasons_and_safety_map() {
    for (raw, expected) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "malformed_function_call"),
        ("OTHER", "other"),
    ] {
        let body =
            json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": raw}]});
        let server = serve(move |_| Reply::json(200, body.clone())).await;
        let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
        let resp = call(&provider(&server), LlmRequest::chat(req))
            .await
            .unwrap();
        let c = &resp.as_chat().unwrap().choices[0];
        assert_eq!(c.finish_reason.as_deref(), Some(expected), "{raw}");
        assert_eq!(c.extra["gemini_finish_reason"], raw);
    }
}

#[tokio::test]
async fn blocked_prompt_is_a_clear_invalid_request() {
    let body = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
                      "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}});
    let events = vec![body.to_string()];
    let server = serve(move |r| {
        if r.uri.path().ends_with(":streamGenerateContent") {
            Reply::sse_data(&events)
        } else {
            Reply::json(200, body.clone())
        }
    })
    .await;
    let p = provider(&server);
    for stream in [false, true] {
        let mut req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("bad")]);
        req.stream = stream;
        let e = call(&p, LlmRequest::chat(req)).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(e.code(), Some("content_filter"));
        assert!(e.message().contains("SAFETY"), "{e}");
        assert_eq!(e.provider(), Some("gemini"));
    }
}

#[tokio::test]
async fn streamed_text_thoughts_and_usage_fold_into_the_non_streamed_answer() {
    let events = text_events();
    let server = serve(move |r| {
        if r.uri.path().ends_with(":streamGenerateContent") {
            Reply::sse_data(&events)
        } else {
            Reply::json(200, text_body())
        }
    })
    .await;
    let p = provider(&server);
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    let whole = call(&p, LlmRequest::chat(req.clone())).await.unwrap();
    let streamed = call(&p, LlmRequest::chat(req.streaming())).await.unwrap();
    let rec = server.last();
    assert_eq!(
        rec.uri.to_string(),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(rec.header("accept"), Some("text/event-stream"));
    assert!(streamed.meta.time_to_first_token.is_some());
    assert_eq!(streamed.meta.model.as_deref(), Some("gemini-2.5-flash"));
    let chunks: Vec<_> = collect(streamed.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let usages: Vec<_> = chunks.iter().filter_map(|c| c.usage).collect();
    assert_eq!(usages.len(), 1, "usage once, in the last chunk");
    assert!(chunks.last().unwrap().usage.is_some());
    let stream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
    let (folded, usage) = collect_chat_stream(stream).await.unwrap();
    let whole_chat = whole.as_chat().unwrap();
    assert_eq!(folded.id, whole_chat.id);
    assert_eq!(folded.model, whole_chat.model);
    assert_eq!(
        folded.choices[0].message.content,
        whole_chat.choices[0].message.content
    );
    assert_eq!(
        folded.choices[0].message.reasoning_content,
        whole_chat.choices[0].message.reasoning_content
    );
    assert_eq!(
        folded.choices[0].finish_reason,
        whole_chat.choices[0].finish_reason
    );
    assert_eq!(usage, whole.usage);
}

#[tokio::test]
async fn streamed_function_calls_fold_into_the_non_streamed_answer() {
    let events = vec![
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="}]}, "index": 0}],
            "modelVersion": "gemini-2.5-pro"}).to_string(),
        json!({"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 50, "candidatesTokenCount": 10, "totalTokenCount": 60},
            "modelVersion": "gemini-2.5-pro"}).to_string(),
    ];
    let server = serve(move |r| {
        if r.uri.path().ends_with(":streamGenerateContent") {
            Reply::sse_data(&events)
        } else {
            Reply::json(200, tool_body())
        }
    })
    .await;
    let p = provider(&server);
    let mut req = ChatRequest::new("gemini-2.5-pro", vec![Message::user("weather?")]);
    req.tools = vec![weather_tool()];
    let whole = call(&p, LlmRequest::chat(req.clone())).await.unwrap();
    let streamed = call(&p, LlmRequest::chat(req.streaming())).await.unwrap();
    let (folded, usage) = collect_chat_stream(streamed.into_stream().unwrap())
        .await
        .unwrap();
    let w = &whole.as_chat().unwrap().choices[0];
    let f = &folded.choices[0];
    assert_eq!(f.message.tool_calls, w.message.tool_calls);
    assert_eq!(f.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(usage, whole.usage);
}

#[tokio::test]
async fn stream_without_finish_reason_is_a_transport_error() {
    let events: Vec<String> = text_events().into_iter().take(2).collect();
    let server = serve(move |_| Reply::sse_data(&events)).await;
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]).streaming();
    let resp = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.kind(), ErrorKind::Transport);
    assert!(last.message().contains("finish reason"), "{last}");

    // A cut connection is an error too, not a hang.
    let events: Vec<String> = text_events().into_iter().take(1).collect();
    let server = serve(move |_| Reply::sse_data(&events).ending(End::Abort)).await;
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]).streaming();
    let resp = call(&provider(&server), LlmRequest::chat(req)).await;
    match resp {
        Err(e) => assert!(e.is_retryable() || e.kind() == ErrorKind::Transport, "{e}"),
        Ok(r) => {
            let items = collect(r.into_stream().unwrap()).await;
            assert!(items.last().unwrap().is_err());
        }
    }
}

#[tokio::test]
async fn error_in_stream_is_mapped() {
    let events = vec![
        json!({"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}})
            .to_string(),
    ];
    let server = serve(move |_| Reply::sse_data(&events)).await;
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]).streaming();
    let e = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
}

fn google_error(code: u16, status: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

#[tokio::test]
async fn error_statuses_map_to_kinds() {
    let cases: Vec<(u16, Value, ErrorKind)> = vec![
        (
            400,
            google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
            ErrorKind::InvalidRequest,
        ),
        (
            400,
            google_error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ),
            ErrorKind::ContextLengthExceeded,
        ),
        (
            400,
            json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                    "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}),
            ErrorKind::Unauthorized,
        ),
        (
            401,
            google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ),
            ErrorKind::Unauthorized,
        ),
        (
            403,
            google_error(403, "PERMISSION_DENIED", "Permission denied."),
            ErrorKind::Unauthorized,
        ),
        (
            404,
            google_error(404, "NOT_FOUND", "models/gemini-9 is not found"),
            ErrorKind::InvalidRequest,
        ),
        (
            503,
            google_error(
                503,
                "UNAVAILABLE",
                "The model is overloaded. Please try again later.",
            ),
            ErrorKind::Overloaded,
        ),
        (
            500,
            google_error(500, "INTERNAL", "An internal error has occurred."),
            ErrorKind::Provider { status: 500 },
        ),
    ];
    for (status, body, kind) in cases {
        let b = body.clone();
        let server = serve(move |_| Reply::json(status, b.clone())).await;
        let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
        let e = call(&provider(&server), LlmRequest::chat(req))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{status} {body}");
        assert_eq!(e.provider(), Some("gemini"));
    }
}

#[tokio::test]
async fn rate_limited_429_takes_retry_after_from_retry_info() {
    let body = json!({"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
    "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}
    ]}});
    let server = serve(move |_| Reply::json(429, body.clone())).await;
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    let e = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.origin(), Some(LimitOrigin::Provider));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(37)));
    assert!(e.is_retryable());

    // An array-wrapped error body (as Vertex streams send) parses too.
    let body = json!([{"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}]);
    let server = serve(move |_| Reply::json(429, body.clone())).await;
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    let e = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    assert!(e.message().contains("Resource exhausted"), "{e}");
}

#[tokio::test]
async fn the_key_never_appears_in_errors_or_debug() {
    let server = serve(|_| {
        Reply::json(
            400,
            json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": format!("API key not valid: {KEY}")}}),
        )
    })
    .await;
    let p = provider(&server);
    assert!(!format!("{p:?}").contains("SECRET"));
    let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    let e = call(&p, LlmRequest::chat(req)).await.unwrap_err();
    assert!(!e.to_string().contains("SECRET"), "{e}");
    assert!(!format!("{e:?}").contains("SECRET"));
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(!format!("{:?}", GeminiConfig::new(KEY)).contains("SECRET"));
}

#[tokio::test]
async fn embeddings_use_batch_embed_contents() {
    let server = serve(|_| {
        Reply::json(
            200,
            json!({"embeddings": [{"values": [0.1, 0.2, 0.3]}, {"values": [0.4, 0.5, 0.6]}]}),
        )
    })
    .await;
    let p = provider(&server);
    let mut req = EmbeddingsRequest {
        model: "gemini-embedding-001".into(),
        input: EmbeddingInput::Many(vec!["a".into(), "b".into()]),
        encoding_format: None,
        dimensions: Some(3),
        user: None,
        extra: Default::default(),
    };
    req.extra
        .insert("task_type".into(), json!("RETRIEVAL_DOCUMENT"));
    let resp = call(&p, LlmRequest::embeddings(req.clone())).await.unwrap();
    let rec = server.last();
    assert_eq!(
        rec.uri.path(),
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(
        rec.json(),
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 3, "taskType": "RETRIEVAL_DOCUMENT"},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3, "taskType": "RETRIEVAL_DOCUMENT"}
        ]})
    );
    let llm_tower_core::ResponseBody::Embeddings(e) = &resp.body else {
        panic!("not embeddings")
    };
    assert_eq!(e.data.len(), 2);
    assert_eq!(e.data[1].index, 1);
    assert_eq!(
        e.data[1].embedding,
        EmbeddingVector::Float(vec![0.4, 0.5, 0.6])
    );

    req.encoding_format = Some("base64".into());
    let resp = call(&p, LlmRequest::embeddings(req.clone())).await.unwrap();
    let llm_tower_core::ResponseBody::Embeddings(e) = &resp.body else {
        panic!("not embeddings")
    };
    assert!(matches!(e.data[0].embedding, EmbeddingVector::Base64(_)));

    req.input = EmbeddingInput::Tokens(vec![1, 2]);
    let e = call(&p, LlmRequest::embeddings(req)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn health_lists_models() {
    let server = serve(|_| Reply::json(200, json!({"models": []}))).await;
    provider(&server).health().await.unwrap();
    let rec = server.last();
    assert_eq!(rec.uri.path(), "/v1beta/models");
    assert_eq!(rec.method, http::Method::GET);
    assert_eq!(rec.header("x-goog-api-key"), Some(KEY));
}

#[tokio::test]
async fn hostile_bodies_are_errors_not_panics() {
    for body in [
        "not json",
        r#"{"candidates": "x"}"#,
        r#"{"candidates": [{"content": {"parts": [{"text": 5}]}}]}"#,
        r#"{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": "x"}}]}, "index": 4294967295}], "usageMetadata": {"promptTokenCount": 18446744073709551615, "thoughtsTokenCount": 18446744073709551615}}"#,
        r#"{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}"#,
    ] {
        let server = serve(move |_| Reply::bytes(200, "application/json", body)).await;
        let req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
        match call(&provider(&server), LlmRequest::chat(req)).await {
            Ok(resp) => {
                // The odd-but-valid one: args not an object become "{}", counts saturate.
                let c = &resp.as_chat().unwrap().choices[0];
                assert_eq!(c.message.tool_calls[0].function.arguments, "{}");
                assert_eq!(resp.usage.unwrap().completion_tokens, u64::MAX);
            }
            Err(e) => assert_eq!(e.provider(), Some("gemini"), "{body}: {e}"),
        }
    }
    // An unknown OpenAI tool type is refused before sending.
    let server = serve(|_| Reply::json(200, text_body())).await;
    let mut req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    req.tools = vec![Tool {
        kind: "custom".into(),
        function: None,
        extra: Default::default(),
    }];
    let e = call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap_err();
    assert_eq!(e.param(), Some("tools[0]"));
    // Google's own tools pass through.
    let mut req = ChatRequest::new("gemini-2.5-flash", vec![Message::user("hi")]);
    req.tools = vec![Tool {
        kind: "googleSearch".into(),
        function: None,
        extra: Default::default(),
    }];
    call(&provider(&server), LlmRequest::chat(req))
        .await
        .unwrap();
    assert_eq!(server.last().json()["tools"], json!([{"googleSearch": {}}]));
}
