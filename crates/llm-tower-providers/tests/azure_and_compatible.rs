//! Azure OpenAI and OpenAI-compatible servers against local servers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{Reply, collect, guard, serve};
use llm_tower_core::{
    ChatRequest, EmbeddingInput, EmbeddingsRequest, ErrorKind, LimitOrigin, LlmRequest, Message,
    Role,
};
use llm_tower_providers::azure::{AzureAuth, AzureOpenAi, AzureOpenAiConfig};
use llm_tower_providers::http::HttpClient;
use llm_tower_providers::openai_compat::{OpenAiCompatible, OpenAiCompatibleConfig};
use serde_json::json;
use tower::ServiceExt;

const AZURE_KEY: &str = "azure-SECRET-key-0123456789";

fn reply_body(model: &str) -> serde_json::Value {
    json!({"id": "c", "object": "chat.completion", "created": 1_700_000_000u64, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
}

fn chat(model: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(model, vec![Message::user("hi")]).max_tokens(5))
}

#[tokio::test]
async fn azure_uses_deployment_urls_api_version_and_api_key() {
    let server = serve(|_| {
        Reply::json(200, reply_body("gpt-4o-mini")).header("x-ratelimit-remaining-requests", "99")
    })
    .await;
    let azure = AzureOpenAi::new(
        AzureOpenAiConfig::new(format!("{}/", server.url()), AzureAuth::api_key(AZURE_KEY))
            .deployment("gpt-4o-mini", "prod-mini")
            .api_version("2024-06-01"),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    assert_eq!(azure.deployment_for("gpt-4o-mini"), "prod-mini");
    assert_eq!(azure.deployment_for("other"), "other");
    let resp = guard(azure.clone().oneshot(chat("gpt-4o-mini")))
        .await
        .unwrap();
    let sent = server.last();
    assert_eq!(
        sent.uri.path(),
        "/openai/deployments/prod-mini/chat/completions"
    );
    assert_eq!(sent.uri.query(), Some("api-version=2024-06-01"));
    assert_eq!(sent.header("api-key"), Some(AZURE_KEY));
    assert!(sent.header("authorization").is_none());
    assert_eq!(sent.json()["max_tokens"], 5);
    assert_eq!(resp.as_chat().unwrap().text(), "ok");
    assert_eq!(resp.meta.provider.as_deref(), Some("azure"));
    assert_eq!(resp.usage.unwrap().total_tokens, 4);
    assert_eq!(
        resp.meta
            .provider_limits
            .unwrap()
            .requests
            .unwrap()
            .remaining,
        Some(99)
    );

    let e = EmbeddingsRequest {
        model: "text-embedding-3-small".into(),
        input: EmbeddingInput::One("x".into()),
        encoding_format: None,
        dimensions: None,
        user: None,
        extra: Default::default(),
    };
    let _ = guard(azure.clone().oneshot(LlmRequest::embeddings(e))).await;
    assert_eq!(
        server.last().uri.path(),
        "/openai/deployments/text-embedding-3-small/embeddings"
    );

    guard(azure.health()).await.unwrap();
    let sent = server.last();
    assert_eq!(sent.uri.path(), "/openai/models");
    assert_eq!(sent.uri.query(), Some("api-version=2024-06-01"));
}

#[tokio::test]
async fn azure_bearer_token_and_default_deployment() {
    let server = serve(|_| Reply::json(200, reply_body("gpt-4o"))).await;
    let azure = AzureOpenAi::new(
        AzureOpenAiConfig::new(server.url(), AzureAuth::bearer_token("entra-SECRET-token"))
            .default_deployment("main deploy"),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    guard(azure.oneshot(chat("gpt-4o"))).await.unwrap();
    let sent = server.last();
    assert_eq!(
        sent.uri.path(),
        "/openai/deployments/main%20deploy/chat/completions"
    );
    assert_eq!(sent.uri.query(), Some("api-version=2024-10-21"));
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer entra-SECRET-token")
    );
    assert!(sent.header("api-key").is_none());
}

#[tokio::test]
async fn azure_429_with_retry_after_ms_and_404_deployment() {
    let server = serve(|req| {
        if req.uri.path().contains("/missing/") {
            Reply::json(404, json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}}))
        } else {
            Reply::json(429, json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded call rate limit. Please retry after 2 seconds."}}))
                .header("retry-after", "2")
                .header("retry-after-ms", "1500")
                .header("x-ratelimit-remaining-tokens", "0")
        }
    })
    .await;
    let azure = AzureOpenAi::new(
        AzureOpenAiConfig::new(server.url(), AzureAuth::api_key(AZURE_KEY)),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = guard(azure.clone().oneshot(chat("gpt-4o")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.origin(), Some(LimitOrigin::Provider));
    assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    assert_eq!(e.limits().unwrap().tokens.unwrap().remaining, Some(0));
    assert_eq!(e.provider(), Some("azure"));
    let e = guard(azure.oneshot(chat("missing"))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.message().contains("deployment"), "{e}");
    assert!(!format!("{e:?}").contains("SECRET"));
}

#[tokio::test]
async fn azure_stream_skips_prompt_filter_chunks() {
    let filter = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]}).to_string();
    let c = |delta: serde_json::Value, finish: Option<&str>| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "content_filter_results": {}}]}).to_string()
    };
    let events = vec![
        filter,
        c(json!({"role": "assistant", "content": ""}), None),
        c(json!({"content": "ok"}), None),
        c(json!({}), Some("stop")),
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06", "choices": [],
               "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).to_string(),
        "[DONE]".to_owned(),
    ];
    let server = serve(move |_| Reply::sse_data(&events)).await;
    let azure = AzureOpenAi::new(
        AzureOpenAiConfig::new(server.url(), AzureAuth::api_key(AZURE_KEY)),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let req = LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]).streaming());
    let resp = guard(azure.oneshot(req)).await.unwrap();
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| !c.choices.is_empty() || c.usage.is_some())
    );
    assert_eq!(chunks.iter().map(|c| c.text()).collect::<String>(), "ok");
    assert_eq!(chunks.last().unwrap().usage.unwrap().total_tokens, 4);
}

#[tokio::test]
async fn compatible_server_without_usage_leaves_it_none() {
    let server = serve(|req| {
        if req.json()["stream"] == true {
            Reply::sse_data(&[
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "llama3.2", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}]}).to_string(),
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "llama3.2", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}).to_string(),
                "[DONE]".to_owned(),
            ])
        } else {
            Reply::json(200, json!({"id": "c", "object": "chat.completion", "created": 1, "model": "llama3.2",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}]}))
        }
    })
    .await;
    let ollama = OpenAiCompatible::new(
        OpenAiCompatibleConfig::new(format!("{}/v1", server.url())).name("ollama"),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let resp = guard(ollama.clone().oneshot(chat("llama3.2")))
        .await
        .unwrap();
    assert!(resp.usage.is_none());
    assert_eq!(resp.as_chat().unwrap().text(), "Hello");
    assert_eq!(resp.meta.provider.as_deref(), Some("ollama"));
    let sent = server.last();
    assert!(sent.header("authorization").is_none());
    assert_eq!(sent.json()["max_tokens"], 5);

    let req = LlmRequest::chat(ChatRequest::new("llama3.2", vec![Message::user("hi")]).streaming());
    let resp = guard(ollama.oneshot(req)).await.unwrap();
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunks.iter().map(|c| c.text()).collect::<String>(), "Hello");
    assert!(chunks.iter().all(|c| c.usage.is_none()));
    assert_eq!(
        server.last().json()["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn compatible_server_key_headers_and_developer_role() {
    let server = serve(|_| Reply::json(200, reply_body("Qwen/Qwen2.5-7B-Instruct"))).await;
    let vllm = OpenAiCompatible::new(
        OpenAiCompatibleConfig::new(format!("{}/v1/", server.url()))
            .name("vllm")
            .api_key("vllm-SECRET")
            .header("x-team", "search")
            .secret_header("x-gateway-key", "gw-SECRET")
            .stream_usage(false),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let mut c = ChatRequest::new("Qwen/Qwen2.5-7B-Instruct", vec![Message::user("hi")]);
    c.messages.insert(
        0,
        Message {
            role: Role::Developer,
            ..Message::system("rules")
        },
    );
    let resp = guard(vllm.clone().oneshot(LlmRequest::chat(c)))
        .await
        .unwrap();
    assert_eq!(resp.usage.unwrap().total_tokens, 4);
    let sent = server.last();
    assert_eq!(sent.uri.path(), "/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer vllm-SECRET"));
    assert_eq!(sent.header("x-team"), Some("search"));
    assert_eq!(sent.header("x-gateway-key"), Some("gw-SECRET"));
    assert_eq!(sent.json()["messages"][0]["role"], "system");
    assert!(!format!("{vllm:?}").contains("SECRET"));

    guard(vllm.health()).await.unwrap();
    assert_eq!(server.last().uri.path(), "/v1/models");
}

#[tokio::test]
async fn compatible_server_errors_map_like_openai() {
    let server = serve(|_| {
        Reply::json(400, json!({"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.", "type": "BadRequestError", "param": null, "code": 400}))
    })
    .await;
    let vllm = OpenAiCompatible::new(
        OpenAiCompatibleConfig::new(format!("{}/v1", server.url())),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = guard(vllm.oneshot(chat("m"))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);
    assert_eq!(e.provider(), Some("openai-compatible"));
}

fn azure_stream_reply() -> Reply {
    let c = |delta: serde_json::Value, finish: Option<&str>| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    Reply::sse_data(&[
        c(json!({"role": "assistant", "content": "ok"}), None),
        c(json!({}), Some("stop")),
        "[DONE]".to_owned(),
    ])
}

async fn azure_stream_body(config: AzureOpenAiConfig) -> serde_json::Value {
    let server = serve(|_| azure_stream_reply()).await;
    let mut config = config;
    config.endpoint = server.url();
    let azure = AzureOpenAi::new(config, HttpClient::new().unwrap()).unwrap();
    // `streaming()` asks for usage too: an old api-version must still not get the field.
    let req = LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]).streaming());
    let resp = guard(azure.oneshot(req)).await.unwrap();
    let chunks = collect(resp.into_stream().unwrap()).await;
    assert!(chunks.iter().all(Result::is_ok));
    server.last().json()
}

#[tokio::test]
async fn azure_sends_stream_options_only_from_api_version_2024_09_01() {
    let cfg = |v: &str| {
        AzureOpenAiConfig::new("http://unused", AzureAuth::api_key(AZURE_KEY)).api_version(v)
    };

    let old = azure_stream_body(cfg("2024-06-01")).await;
    assert_eq!(old["stream"], true);
    assert!(old.get("stream_options").is_none(), "{old}");
    let old_preview = azure_stream_body(cfg("2024-08-01-preview")).await;
    assert!(old_preview.get("stream_options").is_none(), "{old_preview}");

    let new = azure_stream_body(cfg("2024-09-01-preview")).await;
    assert_eq!(new["stream_options"], json!({"include_usage": true}));
    let default = azure_stream_body(AzureOpenAiConfig::new(
        "http://unused",
        AzureAuth::api_key(AZURE_KEY),
    ))
    .await;
    assert_eq!(default["stream_options"], json!({"include_usage": true}));

    // The explicit override wins both ways.
    let forced = azure_stream_body(cfg("2024-06-01").stream_usage(true)).await;
    assert_eq!(forced["stream_options"], json!({"include_usage": true}));
    let off = azure_stream_body(cfg("2024-10-21").stream_usage(false)).await;
    assert!(off.get("stream_options").is_none(), "{off}");
}

#[tokio::test]
async fn compatible_server_secret_headers_are_scrubbed_from_errors() {
    // The server echoes the headers it got, as some gateways do in their error messages.
    let server = serve(|req| {
        let gw = req.header("x-gateway-key").unwrap_or_default().to_owned();
        let other = req.header("x-other-secret").unwrap_or_default().to_owned();
        let msg = format!("invalid gateway key {gw} (other: {other})");
        if req.json()["stream"] == true {
            Reply::sse_data(&[
                json!({"error": {"message": msg, "type": "invalid_request_error"}}).to_string(),
            ])
        } else {
            Reply::json(
                401,
                json!({"error": {"message": msg, "type": "invalid_request_error"}}),
            )
        }
    })
    .await;
    let p = OpenAiCompatible::new(
        OpenAiCompatibleConfig::new(format!("{}/v1", server.url()))
            .secret_header("x-gateway-key", "gw-SECRET-0123456789")
            .secret_header("x-other-secret", "other-SECRET-abcdef"),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = guard(p.clone().oneshot(chat("m"))).await.unwrap_err();
    assert_eq!(
        server.last().header("x-gateway-key"),
        Some("gw-SECRET-0123456789")
    );
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    for text in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
        assert!(!text.contains("SECRET"), "{text}");
    }
    assert!(
        e.message().contains("invalid gateway key [redacted]"),
        "{e}"
    );

    let req = LlmRequest::chat(ChatRequest::new("m", vec![Message::user("hi")]).streaming());
    let e = match guard(p.oneshot(req)).await {
        Err(e) => e,
        Ok(resp) => collect(resp.into_stream().unwrap())
            .await
            .into_iter()
            .find_map(Result::err)
            .expect("an error"),
    };
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains("SECRET"), "{text}");
    }
    assert!(e.message().contains("[redacted]"), "{e}");
}

mod azure_v1_and_entra {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::common::{Reply, TestServer, guard, serve};
    use super::{chat, reply_body};
    use llm_tower_core::{
        EmbeddingInput, EmbeddingsRequest, ErrorKind, LlmRequest, ManualClock, SharedClock,
    };
    use llm_tower_providers::azure::{AzureAuth, AzureOpenAi, AzureOpenAiConfig, EntraTokenSource};
    use llm_tower_providers::http::HttpClient;
    use serde_json::json;
    use tower::ServiceExt;

    const CLIENT_SECRET: &str = "entra-CLIENT-SECRET-0123456789";

    /// A server that is both the token endpoint (`/tenant/token`, answering `tok-N`) and
    /// the Azure resource.
    async fn server(fetches: Arc<AtomicUsize>) -> TestServer {
        serve(move |rec| {
            if rec.uri.path() == "/tenant/token" {
                let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                return Reply::json(
                    200,
                    json!({"token_type": "Bearer", "expires_in": 3600, "access_token": format!("tok-{n}")}),
                );
            }
            if rec.uri.path().ends_with("/embeddings") {
                return Reply::json(
                    200,
                    json!({"object": "list", "model": "emb", "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                           "usage": {"prompt_tokens": 1, "total_tokens": 1}}),
                );
            }
            Reply::json(200, reply_body("gpt-4o-mini"))
        })
        .await
    }

    fn provider(server: &TestServer, clock: &ManualClock) -> AzureOpenAi {
        let source = EntraTokenSource::client_credentials_at(
            format!("{}/tenant/token", server.url()),
            "client-id-1",
            CLIENT_SECRET,
        );
        let shared: SharedClock = Arc::new(clock.clone());
        AzureOpenAi::new(
            AzureOpenAiConfig::new(server.url(), AzureAuth::entra(source))
                .v1()
                .deployment("gpt-4o-mini", "ignored-in-v1")
                .clock(shared),
            HttpClient::new().unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn v1_urls_have_no_deployment_nor_api_version_and_the_model_in_the_body() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let server = server(fetches.clone()).await;
        let clock = ManualClock::new();
        let azure = provider(&server, &clock);
        assert_eq!(azure.deployment_for("gpt-4o-mini"), "gpt-4o-mini");
        guard(azure.clone().oneshot(chat("gpt-4o-mini")))
            .await
            .unwrap();
        let token_req = &server.requests()[0];
        assert_eq!(token_req.uri.path(), "/tenant/token");
        let form = String::from_utf8(token_req.body.to_vec()).unwrap();
        assert!(form.contains("grant_type=client_credentials"), "{form}");
        assert!(form.contains("client_id=client-id-1"), "{form}");
        assert!(
            form.contains("scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default"),
            "{form}"
        );
        let sent = server.last();
        assert_eq!(sent.uri.path(), "/openai/v1/chat/completions");
        assert_eq!(sent.uri.query(), None);
        assert_eq!(sent.header("authorization"), Some("Bearer tok-1"));
        assert!(sent.header("api-key").is_none());
        let body = sent.json();
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["max_completion_tokens"], 5);
        assert!(body.get("max_tokens").is_none());

        let e = EmbeddingsRequest {
            model: "text-embedding-3-small".into(),
            input: EmbeddingInput::One("hi".into()),
            encoding_format: None,
            dimensions: None,
            user: None,
            extra: Default::default(),
        };
        guard(azure.clone().oneshot(LlmRequest::embeddings(e)))
            .await
            .unwrap();
        let sent = server.last();
        assert_eq!(sent.uri.path(), "/openai/v1/embeddings");
        assert_eq!(sent.uri.query(), None);
        assert_eq!(sent.json()["model"], "text-embedding-3-small");
        azure.health().await.unwrap();
        assert_eq!(server.last().uri.path(), "/openai/v1/models");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(!format!("{azure:?}").contains(CLIENT_SECRET));
    }

    #[tokio::test]
    async fn the_entra_token_is_fetched_once_and_refreshed_before_expiry() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let server = server(fetches.clone()).await;
        let clock = ManualClock::new();
        let azure = provider(&server, &clock);
        // Concurrent first requests share one fetch.
        let calls: Vec<_> = (0..8)
            .map(|_| tokio::spawn(azure.clone().oneshot(chat("gpt-4o-mini"))))
            .collect();
        for c in calls {
            guard(c).await.unwrap().unwrap();
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Still fresh 54 minutes later (expires in 60, refreshed 5 minutes before).
        clock.advance(Duration::from_secs(54 * 60));
        guard(azure.clone().oneshot(chat("gpt-4o-mini")))
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(server.last().header("authorization"), Some("Bearer tok-1"));
        // Inside the refresh margin: a new token, before the old one expired.
        clock.advance(Duration::from_secs(2 * 60));
        guard(azure.clone().oneshot(chat("gpt-4o-mini")))
            .await
            .unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        assert_eq!(server.last().header("authorization"), Some("Bearer tok-2"));
    }

    #[tokio::test]
    async fn a_refused_token_request_is_unauthorized_without_the_secret() {
        let server = serve(|rec| {
            if rec.uri.path() == "/tenant/token" {
                Reply::json(
                    401,
                    json!({"error": "invalid_client", "error_description": format!("AADSTS7000215: Invalid client secret {CLIENT_SECRET}")}),
                )
            } else {
                Reply::json(200, reply_body("gpt-4o-mini"))
            }
        })
        .await;
        let azure = provider(&server, &ManualClock::new());
        let e = guard(azure.clone().oneshot(chat("gpt-4o-mini")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(
            e.message().contains("Entra token request failed"),
            "{}",
            e.message()
        );
        assert!(!e.message().contains(CLIENT_SECRET), "{}", e.message());
        assert_eq!(server.requests().len(), 1, "no request without a token");
    }

    #[tokio::test]
    async fn a_command_supplies_the_token() {
        let server = server(Arc::new(AtomicUsize::new(0))).await;
        for (script, expected) in [
            ("echo cmd-token-123", "Bearer cmd-token-123"),
            (
                r#"printf '{"accessToken":"az-token-456","expires_on":4102444800,"tokenType":"Bearer"}'"#,
                "Bearer az-token-456",
            ),
        ] {
            let source = EntraTokenSource::command(vec![
                "sh".to_owned(),
                "-c".to_owned(),
                script.to_owned(),
            ]);
            let azure = AzureOpenAi::new(
                AzureOpenAiConfig::new(server.url(), AzureAuth::entra(source)).v1(),
                HttpClient::new().unwrap(),
            )
            .unwrap();
            guard(azure.clone().oneshot(chat("gpt-4o-mini")))
                .await
                .unwrap();
            assert_eq!(server.last().header("authorization"), Some(expected));
        }
        let source = EntraTokenSource::command(vec!["sh".into(), "-c".into(), "exit 3".into()]);
        let azure = AzureOpenAi::new(
            AzureOpenAiConfig::new(server.url(), AzureAuth::entra(source)).v1(),
            HttpClient::new().unwrap(),
        )
        .unwrap();
        let e = guard(azure.clone().oneshot(chat("gpt-4o-mini")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
    }
    /// An Azure resource that echoes the `Authorization` header it got in its errors (and
    /// in an error event of a stream), behind a token endpoint or a token command.
    async fn echoing_server() -> TestServer {
        serve(|rec| {
            if rec.uri.path() == "/tenant/token" {
                return Reply::json(
                    200,
                    json!({"token_type": "Bearer", "expires_in": 3600,
                           "access_token": "eyJ0eXAiOiJKV1Qi.entra-RUNTIME-token-0001"}),
                );
            }
            let auth = rec.header("authorization").unwrap_or_default().to_owned();
            let echo = format!("got {auth} with client secret {CLIENT_SECRET}, rejected");
            if rec.json()["stream"] == true {
                return Reply::sse_data(&[json!({"error": {"message": echo, "type": "server_error"}}).to_string()]);
            }
            let status = if rec.json()["messages"][0]["content"] == "400" { 400 } else { 401 };
            Reply::json(status, json!({"error": {"message": echo, "type": "invalid_request_error", "code": "invalid_token"}}))
        })
        .await
    }

    fn assert_scrubbed(e: &llm_tower_core::Error, secrets: &[&str]) {
        let shown = format!("{e} {e:?} {}", e.message());
        assert!(e.message().contains("[redacted]"), "{shown}");
        for s in secrets {
            assert!(!shown.contains(s), "{s} leaked: {shown}");
        }
    }

    #[tokio::test]
    async fn runtime_entra_tokens_echoed_by_the_upstream_are_redacted() {
        let server = echoing_server().await;
        let token = "eyJ0eXAiOiJKV1Qi.entra-RUNTIME-token-0001";
        let from_endpoint = EntraTokenSource::client_credentials_at(
            format!("{}/tenant/token", server.url()),
            "client-id-1",
            CLIENT_SECRET,
        );
        let from_command = EntraTokenSource::command(vec![
            "sh".into(),
            "-c".into(),
            "echo cmd-RUNTIME-token-0002".into(),
        ]);
        // The client secret is a secret of the client-credentials source only.
        for (source, secrets) in [
            (from_endpoint, vec![token, CLIENT_SECRET]),
            (from_command, vec!["cmd-RUNTIME-token-0002"]),
        ] {
            let token = secrets[0];
            let azure = AzureOpenAi::new(
                AzureOpenAiConfig::new(server.url(), AzureAuth::entra(source)).v1(),
                HttpClient::new().unwrap(),
            )
            .unwrap();
            let mut req = llm_tower_core::ChatRequest::new(
                "gpt-4o-mini",
                vec![llm_tower_core::Message::user("401")],
            );
            let e = guard(azure.clone().oneshot(LlmRequest::chat(req.clone())))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
            assert_eq!(
                server.last().header("authorization"),
                Some(format!("Bearer {token}").as_str()),
                "the upstream did get the token"
            );
            assert_scrubbed(&e, &secrets);

            req.messages = vec![llm_tower_core::Message::user("400")];
            let e = guard(azure.clone().oneshot(LlmRequest::chat(req.clone())))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
            assert_scrubbed(&e, &secrets);

            // An error event inside a stream goes through the stream parser's copy.
            let e = guard(azure.clone().oneshot(LlmRequest::chat(req.streaming())))
                .await
                .unwrap_err();
            assert_scrubbed(&e, &secrets);
        }
    }
}
