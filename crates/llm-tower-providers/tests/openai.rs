//! The OpenAI provider against a local server speaking OpenAI's wire format.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use common::{End, Reply, TestServer, closed_port_url, collect, guard, serve};
use llm_tower_core::{
    ChatRequest, CompletionRequest, EmbeddingInput, EmbeddingVector, EmbeddingsRequest, Error,
    ErrorKind, FunctionDef, LimitOrigin, LlmRequest, LlmResponse, Message, Prompt, Role, Tool,
    ToolCall, UsageSource,
};
use llm_tower_providers::http::{HttpClient, HttpConfig};
use llm_tower_providers::openai::{OpenAi, OpenAiConfig};
use serde_json::{Value, json};
use tower::{Service, ServiceExt};

const KEY: &str = "sk-test-SECRET-0123456789abcdef";

fn provider_with(server: &TestServer, http: HttpConfig) -> OpenAi {
    OpenAi::new(
        OpenAiConfig::new(KEY)
            .base_url(format!("{}/v1", server.url()))
            .organization("org-1")
            .project("proj-1"),
        HttpClient::with_config(http).unwrap(),
    )
    .unwrap()
}

fn provider(server: &TestServer) -> OpenAi {
    provider_with(server, HttpConfig::default())
}

fn chat_req() -> LlmRequest {
    LlmRequest::chat(
        ChatRequest::new(
            "gpt-4o-mini",
            vec![Message::system("be brief"), Message::user("Say hi")],
        )
        .max_tokens(20),
    )
}

fn stream_req() -> LlmRequest {
    let mut c = ChatRequest::new("gpt-4o-mini", vec![Message::user("Say hi")]);
    c.stream = true; // no stream_options: the provider must force include_usage
    LlmRequest::chat(c)
}

fn completion_body() -> Value {
    json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!", "refusal": null},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
        "system_fingerprint": "fp_1"
    })
}

fn limit_headers(reply: Reply) -> Reply {
    reply
        .header("x-ratelimit-limit-requests", "10000")
        .header("x-ratelimit-remaining-requests", "9999")
        .header("x-ratelimit-reset-requests", "6ms")
        .header("x-ratelimit-limit-tokens", "30000")
        .header("x-ratelimit-remaining-tokens", "29900")
        .header("x-ratelimit-reset-tokens", "1m0.2s")
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
           "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
           "usage": null})
    .to_string()
}

fn usage_chunk() -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
           "model": "gpt-4o-mini-2024-07-18", "choices": [],
           "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                     "prompt_tokens_details": {"cached_tokens": 4}}})
    .to_string()
}

fn stream_events() -> Vec<String> {
    vec![
        chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        ),
        chunk(json!({"content": "Hi"}), None),
        chunk(json!({"content": " there"}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(),
        "[DONE]".to_owned(),
    ]
}

fn assert_no_key(e: &Error) {
    assert!(
        !e.to_string().contains("SECRET"),
        "Display leaks the key: {e}"
    );
    assert!(
        !format!("{e:?}").contains("SECRET"),
        "Debug leaks the key: {e:?}"
    );
}

async fn call(p: &OpenAi, req: LlmRequest) -> Result<LlmResponse, Error> {
    guard(p.clone().oneshot(req)).await
}

#[test]
fn provider_is_a_clone_send_sync_static_service() {
    fn assert_service<S>()
    where
        S: Service<LlmRequest, Response = LlmResponse, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
    }
    assert_service::<OpenAi>();
    assert_service::<llm_tower_providers::AzureOpenAi>();
    assert_service::<llm_tower_providers::OpenAiCompatible>();
    assert_service::<llm_tower_providers::Anthropic>();
}

#[tokio::test]
async fn plain_chat_sends_key_and_headers_and_reads_usage_and_limits() {
    let server = serve(|_| limit_headers(Reply::json(200, completion_body()))).await;
    let p = provider(&server);
    let resp = call(&p, chat_req()).await.unwrap();

    let req = server.last();
    assert_eq!(req.method, "POST");
    assert_eq!(req.uri.path(), "/v1/chat/completions");
    assert_eq!(req.header("authorization"), Some(&*format!("Bearer {KEY}")));
    assert_eq!(req.header("openai-organization"), Some("org-1"));
    assert_eq!(req.header("openai-project"), Some("proj-1"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body = req.json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["max_completion_tokens"], 20);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );

    assert_eq!(resp.as_chat().unwrap().text(), "Hi!");
    let u = resp.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens),
        (19, 2, 21)
    );
    assert_eq!(u.source, UsageSource::Provider);
    assert_eq!(resp.meta.provider.as_deref(), Some("openai"));
    assert_eq!(resp.meta.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    let limits = resp.meta.provider_limits.unwrap();
    let r = limits.requests.unwrap();
    assert_eq!((r.limit, r.remaining), (Some(10_000), Some(9_999)));
    assert_eq!(r.reset, Some(Duration::from_millis(6)));
    assert_eq!(
        limits.tokens.unwrap().reset,
        Some(Duration::from_millis(60_200))
    );
    assert!(resp.meta.latency > Duration::ZERO);
}

#[tokio::test]
async fn tool_call_round_trip() {
    let server = serve(|req| {
        let body = req.json();
        if body["messages"].as_array().unwrap().len() == 1 {
            Reply::json(
                200,
                json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                  "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                      "role": "assistant", "content": null,
                      "tool_calls": [{"id": "call_9", "type": "function",
                          "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
                  "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60}}),
            )
        } else {
            Reply::json(
                200,
                json!({"id": "c2", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                  "choices": [{"index": 0, "finish_reason": "stop",
                      "message": {"role": "assistant", "content": "It is 18C in Paris."}}],
                  "usage": {"prompt_tokens": 70, "completion_tokens": 8, "total_tokens": 78}}),
            )
        }
    })
    .await;
    let p = provider(&server);
    let tools = vec![Tool::function(FunctionDef {
        extra: Default::default(),
        name: "get_weather".into(),
        description: Some("Weather for a city".into()),
        parameters: Some(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
        strict: None,
    })];
    let mut chat = ChatRequest::new("gpt-4o", vec![Message::user("Weather in Paris?")]);
    chat.tools = tools.clone();
    chat.tool_choice = Some(json!("auto"));
    let first = call(&p, LlmRequest::chat(chat.clone())).await.unwrap();
    let choice = &first.as_chat().unwrap().choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    let calls: Vec<ToolCall> = choice.message.tool_calls.clone();
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(calls[0].function.arguments, "{\"city\":\"Paris\"}");
    let sent = server.last().json();
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "auto");

    chat.messages.push(choice.message.clone());
    chat.messages.push(Message::tool("call_9", "18C"));
    let second = call(&p, LlmRequest::chat(chat)).await.unwrap();
    assert_eq!(second.as_chat().unwrap().text(), "It is 18C in Paris.");
    let sent = server.last().json();
    assert_eq!(sent["messages"][1]["role"], "assistant");
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_9");
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "content": "18C", "tool_call_id": "call_9"})
    );
}

#[tokio::test]
async fn streaming_forces_usage_and_converts_chunks() {
    let server = serve(|_| limit_headers(Reply::sse_data(&stream_events()))).await;
    let p = provider(&server);
    let resp = call(&p, stream_req()).await.unwrap();
    assert!(resp.is_stream());
    assert!(resp.usage.is_none());
    assert!(resp.meta.time_to_first_token.is_some());
    assert!(resp.meta.provider_limits.is_some());
    assert_eq!(resp.meta.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    let sent = server.last();
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    assert_eq!(sent.json()["stream_options"]["include_usage"], true);

    let items = collect(resp.into_stream().unwrap()).await;
    let chunks: Vec<_> = items.into_iter().map(Result::unwrap).collect();
    let text: String = chunks.iter().map(|c| c.text()).collect();
    assert_eq!(text, "Hi there");
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    let last = chunks.last().unwrap();
    let u = last.usage.unwrap();
    assert_eq!(
        (u.prompt_tokens, u.completion_tokens, u.cached_prompt_tokens),
        (9, 2, 4)
    );
    assert_eq!(u.source, UsageSource::Provider);
    assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
}

#[tokio::test]
async fn stream_tool_call_deltas_keep_their_index() {
    let events = vec![
        chunk(
            json!({"role": "assistant", "content": null,
            "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "f", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(),
        "[DONE]".to_owned(),
    ];
    let server = serve(move |_| Reply::sse_data(&events)).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let args: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| &c.delta.tool_calls)
        .filter(|t| t.index == 0)
        .filter_map(|t| t.function.as_ref()?.arguments.clone())
        .collect();
    assert_eq!(args, "{\"a\":1}");
}

#[tokio::test]
async fn stream_of_two_parallel_tool_calls_is_assembled() {
    // As OpenAI streams parallel calls: the first delta of each index carries id, type,
    // name and empty arguments; later deltas only the index and an arguments fragment.
    let start = |index: u32, id: &str, name: &str| {
        json!({"tool_calls": [{"index": index, "id": id, "type": "function",
            "function": {"name": name, "arguments": ""}}]})
    };
    let args = |index: u32, fragment: &str| json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]});
    let mut first = start(0, "call_weather", "get_weather");
    first["role"] = json!("assistant");
    first["content"] = Value::Null;
    let events = vec![
        chunk(first, None),
        chunk(args(0, "{\"loca"), None),
        chunk(start(1, "call_time", "get_time"), None),
        chunk(args(1, "{\"timezone\""), None),
        chunk(args(0, "tion\": \"Paris, "), None),
        chunk(args(1, ": \"Europe/Paris\"}"), None),
        chunk(args(0, "France\"}"), None),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(),
        "[DONE]".to_owned(),
    ];
    let server = serve(move |_| Reply::sse_data(&events)).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let stream = resp.into_stream().unwrap();
    let (chat, usage) = guard(llm_tower_core::collect_chat_stream(stream))
        .await
        .unwrap();
    assert_eq!(chat.id, "chatcmpl-1");
    assert_eq!(chat.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(usage.unwrap().total_tokens, 11);
    let choice = &chat.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.role, Role::Assistant);
    assert_eq!(choice.message.content, None);
    let calls = &choice.message.tool_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_weather");
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(
        calls[0].function.arguments,
        r#"{"location": "Paris, France"}"#
    );
    assert_eq!(calls[1].id, "call_time");
    assert_eq!(calls[1].function.name, "get_time");
    assert_eq!(
        calls[1].function.arguments,
        r#"{"timezone": "Europe/Paris"}"#
    );
    for c in calls {
        serde_json::from_str::<Value>(&c.function.arguments).unwrap();
    }
}

#[tokio::test]
async fn sse_split_at_awkward_byte_positions_with_crlf_and_comments() {
    let mut raw = String::from(": OPENROUTER PROCESSING\r\n\r\n");
    for e in stream_events() {
        raw.push_str("data: ");
        raw.push_str(&e);
        raw.push_str("\r\n\r\n");
    }
    for split in [1, 3, 7, 64] {
        let raw = raw.clone();
        let server =
            serve(move |_| Reply::sse_raw(std::slice::from_ref(&raw)).split_every(split)).await;
        let resp = call(&provider(&server), stream_req()).await.unwrap();
        let chunks: Vec<_> = collect(resp.into_stream().unwrap())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let text: String = chunks.iter().map(|c| c.text()).collect();
        assert_eq!(text, "Hi there", "split every {split}");
        assert!(
            chunks.last().unwrap().usage.is_some(),
            "split every {split}"
        );
    }
}

#[tokio::test]
async fn stream_cut_in_the_middle_is_a_transport_error() {
    let server = serve(|_| Reply::sse_data(&stream_events()[..3]).ending(End::Abort)).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.provider(), Some("openai"));
    assert!(err.is_retryable());
    assert!(items[..items.len() - 1].iter().all(Result::is_ok));
}

#[tokio::test]
async fn stream_ending_without_done_is_an_error() {
    let server = serve(|_| Reply::sse_data(&stream_events()[..5])).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(
        err.message().contains("stream ended before [DONE]"),
        "{err}"
    );
}

#[tokio::test]
async fn error_in_stream_before_first_token_fails_the_call() {
    let server = serve(|_| {
        Reply::sse_data(&[r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#])
    })
    .await;
    let err = call(&provider(&server), stream_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider { status: 500 });
    assert!(err.is_retryable());
    assert_eq!(err.provider(), Some("openai"));
}

#[tokio::test]
async fn rate_limited_429_has_retry_after_origin_and_limits() {
    let server = serve(|_| {
        Reply::json(
            429,
            json!({"error": {"message": "Rate limit reached for gpt-4o-mini in organization org-1 on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                             "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        )
        .header("retry-after", "20")
        .header("x-ratelimit-limit-requests", "3")
        .header("x-ratelimit-remaining-requests", "0")
        .header("x-ratelimit-reset-requests", "19.5s")
    })
    .await;
    let err = call(&provider(&server), chat_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.origin(), Some(LimitOrigin::Provider));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(20)));
    assert!(err.is_retryable());
    let r = err.limits().unwrap().requests.unwrap();
    assert_eq!((r.limit, r.remaining), (Some(3), Some(0)));
    assert_eq!(r.reset, Some(Duration::from_millis(19_500)));
    assert_eq!(err.provider(), Some("openai"));
    assert!(err.message().contains("Rate limit reached"));
}

#[tokio::test]
async fn insufficient_quota_429_is_not_retryable() {
    let server = serve(|_| {
        Reply::json(
            429,
            json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                             "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}),
        )
    })
    .await;
    let err = call(&provider(&server), chat_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider { status: 429 });
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn server_errors_are_retryable_and_overload_is_recognised() {
    let server = serve(|req| match req.json()["model"].as_str() {
        Some("m500") => Reply::json(500, json!({"error": {"message": "The server had an error", "type": "server_error"}})),
        Some("m503") => Reply::json(503, json!({"error": {"message": "The engine is currently overloaded, please try again later", "type": "server_error"}})),
        _ => Reply::text(502, "<html><body>502 Bad Gateway</body></html>"),
    })
    .await;
    let p = provider(&server);
    let mut req = chat_req();
    req.set_model("m500");
    let e = call(&p, req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider { status: 500 });
    assert!(e.is_retryable());
    let mut req = chat_req();
    req.set_model("m503");
    assert_eq!(
        call(&p, req).await.unwrap_err().kind(),
        ErrorKind::Overloaded
    );
    let mut req = chat_req();
    req.set_model("other");
    let e = call(&p, req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider { status: 502 });
    assert!(e.message().contains("502 Bad Gateway"));
}

#[tokio::test]
async fn client_errors_map_to_their_kinds() {
    let server = serve(|req| match req.json()["model"].as_str() {
        Some("ctx") => Reply::json(400, json!({"error": {"message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})),
        Some("missing") => Reply::json(404, json!({"error": {"message": "The model `missing` does not exist or you do not have access to it.", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})),
        _ => Reply::json(400, json!({"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error", "param": "temperature", "code": "invalid_value"}})),
    })
    .await;
    let p = provider(&server);
    for (model, kind) in [
        ("ctx", ErrorKind::ContextLengthExceeded),
        ("missing", ErrorKind::InvalidRequest),
        ("bad", ErrorKind::InvalidRequest),
    ] {
        let mut req = chat_req();
        req.set_model(model);
        let e = call(&p, req).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{model}: {e}");
        assert!(!e.is_retryable());
    }
}

#[tokio::test]
async fn unauthorized_never_shows_the_key() {
    let server = serve(|_| {
        Reply::json(
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.invalid/account/api-keys."),
                             "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        )
    })
    .await;
    let p = provider(&server);
    let err = call(&p, chat_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.message().contains("Incorrect API key provided"));
    assert_no_key(&err);
    assert!(
        !format!("{p:?}").contains("SECRET"),
        "provider Debug leaks the key"
    );
    assert_eq!(
        server.last().header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
}

#[tokio::test]
async fn slow_server_hits_the_request_timeout() {
    let server = serve(|_| Reply::stall()).await;
    let p = provider_with(
        &server,
        HttpConfig::default().request_timeout(Duration::from_millis(200)),
    );
    let started = Instant::now();
    let err = call(&p, chat_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_retryable());
    assert_eq!(err.provider(), Some("openai"));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_request_deadline_is_respected() {
    let server = serve(|_| Reply::stall()).await;
    let p = provider(&server);
    let req = chat_req().with_deadline(Instant::now() + Duration::from_millis(200));
    let err = call(&p, req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("deadline"), "{err}");
    // A deadline already past fails before anything is sent.
    let before = server.requests().len();
    let req = chat_req().with_deadline(Instant::now() - Duration::from_millis(1));
    assert_eq!(call(&p, req).await.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(server.requests().len(), before);
}

#[tokio::test]
async fn a_stream_that_stalls_ends_with_an_idle_timeout() {
    let server = serve(|_| Reply::sse_data(&stream_events()[..2]).ending(End::Stall)).await;
    let p = provider_with(
        &server,
        HttpConfig::default().stream_idle_timeout(Duration::from_millis(200)),
    );
    let resp = call(&p, stream_req()).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 2);
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("idle"), "{err}");
}

#[tokio::test]
async fn a_stream_that_stalls_before_its_first_token_times_out_the_call() {
    let server = serve(|_| Reply::sse_data(&stream_events()[..1]).ending(End::Stall)).await;
    let p = provider_with(
        &server,
        HttpConfig::default().request_timeout(Duration::from_millis(200)),
    );
    let err = call(&p, stream_req()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn a_stream_is_cut_at_the_caller_deadline() {
    let server = serve(|_| Reply::sse_data(&stream_events()[..2]).ending(End::Stall)).await;
    let p = provider(&server);
    let req = stream_req().with_deadline(Instant::now() + Duration::from_millis(300));
    let resp = call(&p, req).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.message().contains("deadline"), "{err}");
}

#[tokio::test]
async fn garbage_and_truncated_bodies_are_clear_errors() {
    let server = serve(|req| match req.json()["model"].as_str() {
        Some("html") => Reply::bytes(200, "text/html", "<html>maintenance</html>"),
        Some("wrong-shape") => Reply::json(200, json!({"hello": "world"})),
        Some("binary") => Reply::bytes(200, "application/json", vec![0xff, 0xfe, 0x00, 0x01]),
        _ => {
            let body = serde_json::to_string(&completion_body()).unwrap();
            Reply::bytes(200, "application/json", body[..body.len() / 2].to_owned())
                .ending(End::Abort)
        }
    })
    .await;
    let p = provider(&server);
    for model in ["html", "wrong-shape", "binary", "truncated"] {
        let mut req = chat_req();
        req.set_model(model);
        let e = call(&p, req).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transport, "{model}: {e}");
        assert_eq!(e.provider(), Some("openai"));
    }
}

#[tokio::test]
async fn gzip_bodies_are_decoded() {
    let server = serve(|_| Reply::json(200, completion_body()).gzip()).await;
    let resp = call(&provider(&server), chat_req()).await.unwrap();
    assert_eq!(resp.as_chat().unwrap().text(), "Hi!");
    assert_eq!(server.last().header("accept-encoding"), Some("gzip"));

    let server = serve(|_| Reply::sse_data(&stream_events()).gzip().split_every(5)).await;
    let resp = call(&provider(&server), stream_req()).await.unwrap();
    let text: String = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(|c| c.unwrap().text())
        .collect();
    assert_eq!(text, "Hi there");

    let server =
        serve(|_| Reply::json(200, completion_body()).header("content-encoding", "gzip")).await;
    let e = call(&provider(&server), chat_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
}

/// 50 MB of `fill` gzipped (about 50 KB), prefixed by `prefix` (inside the compressed data).
fn gzip_bomb(prefix: &str, fill: u8) -> bytes::Bytes {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(prefix.as_bytes()).unwrap();
    let block = vec![fill; 1024 * 1024];
    for _ in 0..50 {
        enc.write_all(&block).unwrap();
    }
    bytes::Bytes::from(enc.finish().unwrap())
}

fn bomb_reply(content_type: &str, body: bytes::Bytes) -> Reply {
    Reply::bytes(200, content_type, body).header("content-encoding", "gzip")
}

#[tokio::test]
async fn gzip_bombs_stop_at_the_body_limit() {
    let bomb = gzip_bomb("", 0);
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    let b = bomb.clone();
    let server = serve(move |_| bomb_reply("application/json", b.clone())).await;
    let p = provider_with(&server, HttpConfig::default().max_body_bytes(1024 * 1024));
    let e = call(&p, chat_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(
        e.message()
            .contains("decompresses to more than 1048576 bytes"),
        "{e}"
    );

    // A stream is bounded by the body limit too...
    let b = bomb_reply("text/event-stream", gzip_bomb("data: ", b'a'));
    let server = serve(move |_| b.clone()).await;
    let p = provider_with(&server, HttpConfig::default().max_body_bytes(1024 * 1024));
    let e = match call(&p, stream_req()).await {
        Err(e) => e,
        Ok(resp) => collect(resp.into_stream().unwrap())
            .await
            .into_iter()
            .find_map(Result::err)
            .expect("an error"),
    };
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(e.message().contains("decompresses to more than"), "{e}");

    // ...and, under the default body limit, by the largest event size.
    let b = bomb_reply("text/event-stream", gzip_bomb("data: ", b'a'));
    let server = serve(move |_| b.clone()).await;
    let e = match call(&provider(&server), stream_req()).await {
        Err(e) => e,
        Ok(resp) => collect(resp.into_stream().unwrap())
            .await
            .into_iter()
            .find_map(Result::err)
            .expect("an error"),
    };
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(e.message().contains("larger than the allowed size"), "{e}");

    // Error bodies are bounded as well: the status still comes through.
    let b = bomb.clone();
    let server = serve(move |_| {
        Reply::bytes(500, "text/plain", b.clone()).header("content-encoding", "gzip")
    })
    .await;
    let e = call(&provider(&server), chat_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider { status: 500 }, "{e}");
}

#[tokio::test]
async fn absurd_timeouts_mean_no_deadline_instead_of_a_panic() {
    let server = serve(|req| {
        if req.json()["stream"] == true {
            Reply::sse_data(&stream_events())
        } else {
            Reply::json(200, completion_body())
        }
    })
    .await;
    let p = provider_with(
        &server,
        HttpConfig::default()
            .request_timeout(Duration::MAX)
            .stream_idle_timeout(Duration::MAX),
    );
    let resp = call(&p, chat_req()).await.unwrap();
    assert_eq!(resp.as_chat().unwrap().text(), "Hi!");
    let resp = call(&p, stream_req()).await.unwrap();
    let text: String = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(|c| c.unwrap().text())
        .collect();
    assert_eq!(text, "Hi there");
    // A caller deadline still applies (and is far enough away here).
    let mut req = stream_req();
    req.ctx.deadline = Some(Instant::now() + Duration::from_secs(60));
    let resp = call(&p, req).await.unwrap();
    assert!(
        collect(resp.into_stream().unwrap())
            .await
            .iter()
            .all(Result::is_ok)
    );
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let url = closed_port_url().await;
    let p = OpenAi::new(
        OpenAiConfig::new(KEY).base_url(format!("{url}/v1")),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = call(&p, chat_req()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(e.is_retryable());
    assert_no_key(&e);
}

#[tokio::test]
async fn legacy_completions() {
    let server = serve(|_| {
        Reply::json(
            200,
            json!({"id": "cmpl-1", "object": "text_completion", "created": 1_700_000_000u64,
                   "model": "gpt-3.5-turbo-instruct",
                   "choices": [{"text": "\n\nThis is a test.", "index": 0, "logprobs": null, "finish_reason": "length"}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}),
        )
    })
    .await;
    let p = provider(&server);
    let req = LlmRequest::completion(CompletionRequest {
        model: "gpt-3.5-turbo-instruct".into(),
        prompt: Prompt::One("Say this is a test".into()),
        max_tokens: Some(7),
        temperature: Some(0.0),
        top_p: None,
        stop: None,
        stream: false,
        user: None,
        extra: Default::default(),
    });
    let resp = call(&p, req.clone()).await.unwrap();
    let sent = server.last();
    assert_eq!(sent.uri.path(), "/v1/completions");
    assert_eq!(sent.json()["max_tokens"], 7);
    match &resp.body {
        llm_tower_core::ResponseBody::Completion(c) => {
            assert_eq!(c.choices[0].text, "\n\nThis is a test.");
            assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));
        }
        other => panic!("unexpected body {other:?}"),
    }
    assert_eq!(resp.usage.unwrap().total_tokens, 12);

    let mut streaming = req;
    if let llm_tower_core::RequestBody::Completion(c) = &mut streaming.body {
        c.stream = true;
    }
    let before = server.requests().len();
    let e = call(&p, streaming).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(server.requests().len(), before);
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let server = serve(|req| {
        let b64 = req.json()["encoding_format"] == "base64";
        let embedding = if b64 {
            json!("AACAPwAAAEA=")
        } else {
            json!([0.1, -0.2, 0.3])
        };
        Reply::json(
            200,
            json!({"object": "list", "model": "text-embedding-3-small",
                   "data": [{"object": "embedding", "index": 0, "embedding": embedding}],
                   "usage": {"prompt_tokens": 8, "total_tokens": 8}}),
        )
    })
    .await;
    let p = provider(&server);
    let mut e = EmbeddingsRequest {
        model: "text-embedding-3-small".into(),
        input: EmbeddingInput::Many(vec!["hello".into()]),
        encoding_format: None,
        dimensions: Some(3),
        user: None,
        extra: Default::default(),
    };
    let resp = call(&p, LlmRequest::embeddings(e.clone())).await.unwrap();
    assert_eq!(server.last().uri.path(), "/v1/embeddings");
    assert_eq!(server.last().json()["dimensions"], 3);
    let u = resp.usage.unwrap();
    assert_eq!((u.prompt_tokens, u.completion_tokens), (8, 0));
    match &resp.body {
        llm_tower_core::ResponseBody::Embeddings(r) => {
            assert_eq!(
                r.data[0].embedding,
                EmbeddingVector::Float(vec![0.1, -0.2, 0.3])
            );
        }
        other => panic!("unexpected body {other:?}"),
    }
    e.encoding_format = Some("base64".into());
    let resp = call(&p, LlmRequest::embeddings(e)).await.unwrap();
    match &resp.body {
        llm_tower_core::ResponseBody::Embeddings(r) => {
            assert_eq!(
                r.data[0].embedding,
                EmbeddingVector::Base64("AACAPwAAAEA=".into())
            );
        }
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn extra_fields_pass_through() {
    let server = serve(|_| Reply::json(200, completion_body())).await;
    let mut chat = ChatRequest::new("o3-mini", vec![Message::user("hi")]);
    chat.extra.insert("reasoning_effort".into(), json!("low"));
    chat.extra.insert("logprobs".into(), json!(true));
    chat.response_format = Some(
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}),
    );
    call(&provider(&server), LlmRequest::chat(chat))
        .await
        .unwrap();
    let sent = server.last().json();
    assert_eq!(sent["reasoning_effort"], "low");
    assert_eq!(sent["logprobs"], true);
    assert_eq!(sent["response_format"]["type"], "json_schema");
}

#[tokio::test]
async fn health_lists_models_and_reports_bad_keys() {
    let server = serve(|req| {
        if req.header("authorization") == Some(&*format!("Bearer {KEY}")) {
            Reply::json(
                200,
                json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]}),
            )
        } else {
            Reply::json(
                401,
                json!({"error": {"message": "bad key", "type": "invalid_request_error"}}),
            )
        }
    })
    .await;
    guard(provider(&server).health()).await.unwrap();
    let sent = server.last();
    assert_eq!(
        (sent.method.as_str(), sent.uri.path()),
        ("GET", "/v1/models")
    );
    let bad = OpenAi::new(
        OpenAiConfig::new("sk-wrong").base_url(format!("{}/v1", server.url())),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = guard(bad.health()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(e.provider(), Some("openai"));
}

#[tokio::test]
async fn invalid_config_is_a_config_error() {
    let http = HttpClient::new().unwrap();
    let e = OpenAi::new(OpenAiConfig::new(KEY).base_url("not a url"), http.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_eq!(e.provider(), Some("openai"));
    let e = OpenAi::new(OpenAiConfig::new("sk-\nSECRET"), http).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert_no_key(&e);
}
