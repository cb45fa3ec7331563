//! The Vertex AI provider against a local server that plays both Vertex and Google's
//! OAuth2 token endpoint (which verifies the service-account JWT with the test key's
//! public half).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use common::{Recorded, Reply, TestServer, guard, serve};
use llm_tower_core::{
    ChatRequest, Error, ErrorKind, LlmRequest, LlmResponse, ManualClock, Message,
    collect_chat_stream,
};
use llm_tower_providers::http::HttpClient;
use llm_tower_providers::vertex::{
    CLOUD_PLATFORM_SCOPE, ServiceAccountKey, Vertex, VertexAuth, VertexConfig, default_base_url,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const PRIVATE_KEY: &str = include_str!("data/vertex-test-key.pem");
const PUBLIC_KEY: &[u8] = include_bytes!("data/vertex-test-key.pub.der");
const AUD: &str = "https://oauth2.googleapis.com/token";
const EMAIL: &str = "llm-tower-test@test-project.iam.gserviceaccount.com";

fn key_json() -> String {
    json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "kid-123",
        "private_key": PRIVATE_KEY,
        "client_email": EMAIL,
        "token_uri": AUD,
    })
    .to_string()
}

fn gemini_body() -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
        "modelVersion": "gemini-2.5-flash"
    })
}

fn b64url(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

/// Checks a JWT-bearer token request; `Err` with the reason when it is wrong.
fn verify_token_request(rec: &Recorded, now_unix: u64) -> Result<(), String> {
    if rec.header("content-type") != Some("application/x-www-form-urlencoded") {
        return Err("content type".into());
    }
    let form = std::str::from_utf8(&rec.body).unwrap();
    let mut grant = None;
    let mut assertion = None;
    for pair in form.split('&') {
        let (k, v) = pair.split_once('=').unwrap();
        match k {
            "grant_type" => grant = Some(v.replace("%3A", ":")),
            "assertion" => assertion = Some(v.to_owned()),
            _ => return Err(format!("unexpected field {k}")),
        }
    }
    if grant.as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err("grant_type".into());
    }
    let jwt = assertion.ok_or("no assertion")?;
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWT".into());
    }
    let signed = format!("{}.{}", parts[0], parts[1]);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        PUBLIC_KEY,
    )
    .verify(signed.as_bytes(), &b64url(parts[2]))
    .map_err(|_| "bad signature".to_owned())?;
    let header: Value = serde_json::from_slice(&b64url(parts[0])).unwrap();
    if header != json!({"alg": "RS256", "typ": "JWT", "kid": "kid-123"}) {
        return Err(format!("header {header}"));
    }
    let claims: Value = serde_json::from_slice(&b64url(parts[1])).unwrap();
    let expected = json!({"iss": EMAIL, "scope": CLOUD_PLATFORM_SCOPE, "aud": AUD,
                          "iat": now_unix, "exp": now_unix + 3600});
    if claims != expected {
        return Err(format!("claims {claims}"));
    }
    Ok(())
}

struct Fixture {
    server: TestServer,
    token_requests: Arc<AtomicUsize>,
    clock: ManualClock,
}

const START: u64 = 1_767_225_600;

async fn fixture(expires_in: u64) -> Fixture {
    let clock = ManualClock::starting_at_unix(START);
    let token_requests = Arc::new(AtomicUsize::new(0));
    let (c, n) = (clock.clone(), token_requests.clone());
    let server = serve(move |rec| {
        if rec.uri.path() == "/token" {
            let i = n.fetch_add(1, Ordering::SeqCst) + 1;
            let now = llm_tower_core::Clock::unix_secs(&c);
            return match verify_token_request(rec, now) {
                Ok(()) => Reply::json(
                    200,
                    json!({"access_token": format!("ya29.token-{i}"), "expires_in": expires_in, "token_type": "Bearer"}),
                ),
                Err(why) => Reply::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": format!("Invalid JWT: {why}")}),
                ),
            };
        }
        Reply::json(200, gemini_body())
    })
    .await;
    Fixture {
        server,
        token_requests,
        clock,
    }
}

fn sa_provider(f: &Fixture) -> Vertex {
    let key = ServiceAccountKey::from_json(&key_json()).unwrap();
    Vertex::new(
        VertexConfig::new(
            "test-project",
            "us-central1",
            VertexAuth::ServiceAccount(key),
        )
        .base_url(f.server.url())
        .token_url(format!("{}/token", f.server.url()))
        .clock(Arc::new(f.clock.clone())),
        HttpClient::new().unwrap(),
    )
    .unwrap()
}

async fn call(p: &Vertex, req: LlmRequest) -> Result<LlmResponse, Error> {
    guard(p.clone().oneshot(req)).await
}

fn chat(model: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(model, vec![Message::user("hello")]))
}

fn api_requests(s: &TestServer) -> Vec<Recorded> {
    s.requests()
        .into_iter()
        .filter(|r| r.uri.path() != "/token")
        .collect()
}

#[test]
fn default_urls_are_regional_or_global() {
    assert_eq!(
        default_base_url("us-central1"),
        "https://us-central1-aiplatform.googleapis.com"
    );
    assert_eq!(
        default_base_url("global"),
        "https://aiplatform.googleapis.com"
    );
    let p = Vertex::new(
        VertexConfig::new("proj-1", "europe-west4", VertexAuth::access_token("t")),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    assert_eq!(
        p.model_url("gemini-2.5-pro"),
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-2.5-pro"
    );
    let p = Vertex::new(
        VertexConfig::new("proj-1", "global", VertexAuth::access_token("t")),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    assert_eq!(
        p.model_url("gemini-2.5-pro"),
        "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global/publishers/google/models/gemini-2.5-pro"
    );
    let bad = Vertex::new(
        VertexConfig::new("proj/../x", "global", VertexAuth::access_token("t")),
        HttpClient::new().unwrap(),
    );
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::Config);
}

#[tokio::test]
async fn service_account_jwt_is_verified_and_the_token_cached_then_refreshed() {
    let f = fixture(3600).await;
    let p = sa_provider(&f);
    for _ in 0..3 {
        let resp = call(&p, chat("gemini-2.5-flash")).await.unwrap();
        assert_eq!(resp.as_chat().unwrap().text(), "Hi");
    }
    assert_eq!(
        f.token_requests.load(Ordering::SeqCst),
        1,
        "one token for three calls"
    );
    let reqs = api_requests(&f.server);
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs[0].uri.to_string(),
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(reqs[0].header("authorization"), Some("Bearer ya29.token-1"));
    assert!(reqs[0].header("x-goog-api-key").is_none());

    // 54 minutes later the token is still used; at 55 (5 minutes before expiry) it is
    // refreshed, with a JWT issued at the new time.
    f.clock.advance(Duration::from_secs(54 * 60));
    call(&p, chat("gemini-2.5-flash")).await.unwrap();
    assert_eq!(f.token_requests.load(Ordering::SeqCst), 1);
    f.clock.advance(Duration::from_secs(60));
    call(&p, chat("gemini-2.5-flash")).await.unwrap();
    assert_eq!(f.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        api_requests(&f.server)
            .last()
            .unwrap()
            .header("authorization"),
        Some("Bearer ya29.token-2")
    );
}

#[tokio::test]
async fn concurrent_calls_share_one_token_request() {
    let f = fixture(3600).await;
    let p = sa_provider(&f);
    let calls: Vec<_> = (0..8).map(|_| call(&p, chat("gemini-2.5-flash"))).collect();
    for r in futures_util::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(f.token_requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_key_is_unauthorized_and_nothing_secret_leaks() {
    let f = fixture(3600).await;
    // The JWT audience is wrong for this endpoint: the server refuses the claims.
    let mut json: Value = serde_json::from_str(&key_json()).unwrap();
    json["token_uri"] = json!("https://elsewhere.example/token");
    let key = ServiceAccountKey::from_json(&json.to_string()).unwrap();
    assert!(!format!("{key:?}").contains("PRIVATE"));
    let p = Vertex::new(
        VertexConfig::new(
            "test-project",
            "us-central1",
            VertexAuth::ServiceAccount(key),
        )
        .base_url(f.server.url())
        .token_url(format!("{}/token", f.server.url()))
        .clock(Arc::new(f.clock.clone())),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    assert!(!format!("{p:?}").contains("PRIVATE"));
    let e = call(&p, chat("gemini-2.5-flash")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(!e.to_string().contains("eyJ"), "no JWT in errors: {e}");
    assert_eq!(e.provider(), Some("vertex"));
    assert!(api_requests(&f.server).is_empty());
    let e = p.health().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
}

#[test]
fn bad_keys_are_config_errors_without_the_key() {
    let e = ServiceAccountKey::from_json("{not json").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let mut json: Value = serde_json::from_str(&key_json()).unwrap();
    json["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nAAAASECRETBITS\n-----END PRIVATE KEY-----\n");
    let e = ServiceAccountKey::from_json(&json.to_string()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(!e.to_string().contains("SECRETBITS"), "{e}");
}

#[tokio::test]
async fn streaming_over_vertex() {
    let events = vec![
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
               "modelVersion": "gemini-2.5-flash"})
        .to_string(),
    ];
    let server = serve(move |_| Reply::sse_data(&events)).await;
    let p = Vertex::new(
        VertexConfig::new(
            "p",
            "global",
            VertexAuth::access_token("ya29.static-SECRET"),
        )
        .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let req = LlmRequest::chat(
        ChatRequest::new("gemini-2.5-flash", vec![Message::user("hello")]).streaming(),
    );
    let resp = call(&p, req).await.unwrap();
    let (folded, usage) = collect_chat_stream(resp.into_stream().unwrap())
        .await
        .unwrap();
    assert_eq!(folded.text(), "Hi");
    assert_eq!(usage.unwrap().total_tokens, 4);
    let rec = server.last();
    assert_eq!(
        rec.uri.to_string(),
        "/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        rec.header("authorization"),
        Some("Bearer ya29.static-SECRET")
    );
}

#[tokio::test]
async fn token_from_env_and_from_a_command() {
    let server = serve(|_| Reply::json(200, gemini_body())).await;
    let var = "LLM_TOWER_VERTEX_TEST_TOKEN_NEVER_SET";
    let p = Vertex::new(
        VertexConfig::new("p", "us-east5", VertexAuth::token_env(var)).base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = call(&p, chat("gemini-2.5-flash")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains(var));
    // A variable that is set (PATH stands in for a token: no test sets variables).
    let path = std::env::var("PATH").unwrap();
    let p = Vertex::new(
        VertexConfig::new("p", "us-east5", VertexAuth::token_env("PATH")).base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    call(&p, chat("gemini-2.5-flash")).await.unwrap();
    assert_eq!(
        server.last().header("authorization").unwrap(),
        format!("Bearer {}", path.trim())
    );

    let clock = ManualClock::new();
    let counter = std::env::temp_dir().join(format!("llm-tower-vertex-{}", std::process::id()));
    let _ = std::fs::remove_file(&counter);
    let script = format!("echo x >> {}; echo ya29.from-command", counter.display());
    let p = Vertex::new(
        VertexConfig::new(
            "p",
            "us-east5",
            VertexAuth::TokenCommand {
                argv: vec!["sh".into(), "-c".into(), script],
                ttl: Duration::from_secs(600),
            },
        )
        .base_url(server.url())
        .clock(Arc::new(clock.clone())),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    call(&p, chat("gemini-2.5-flash")).await.unwrap();
    call(&p, chat("gemini-2.5-flash")).await.unwrap();
    assert_eq!(
        server.last().header("authorization"),
        Some("Bearer ya29.from-command")
    );
    let runs = || std::fs::read_to_string(&counter).unwrap().lines().count();
    assert_eq!(runs(), 1, "the command's token is cached");
    clock.advance(Duration::from_secs(601));
    call(&p, chat("gemini-2.5-flash")).await.unwrap();
    assert_eq!(runs(), 2, "and run again after its TTL");
    let _ = std::fs::remove_file(&counter);

    let p = Vertex::new(
        VertexConfig::new(
            "p",
            "us-east5",
            VertexAuth::token_command(["sh", "-c", "echo nope >&2; exit 3"]),
        )
        .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = call(&p, chat("gemini-2.5-flash")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("nope"), "{e}");
}

#[tokio::test]
async fn claude_models_use_raw_predict_with_the_vertex_anthropic_version() {
    let server = serve(|_| {
        Reply::json(
            200,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
                   "content": [{"type": "text", "text": "Hello from Claude"}],
                   "stop_reason": "end_turn", "stop_sequence": null,
                   "usage": {"input_tokens": 10, "output_tokens": 5}}),
        )
    })
    .await;
    let p = Vertex::new(
        VertexConfig::new("p", "us-east5", VertexAuth::access_token("ya29.t"))
            .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let resp = call(&p, chat("claude-sonnet-4-5@20250929")).await.unwrap();
    assert_eq!(resp.as_chat().unwrap().text(), "Hello from Claude");
    assert_eq!(resp.usage.unwrap().prompt_tokens, 10);
    let rec = server.last();
    assert_eq!(
        rec.uri.path(),
        "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict"
    );
    let body = rec.json();
    assert_eq!(body["anthropic_version"], "vertex-2023-10-16");
    assert!(body.get("model").is_none());
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(rec.header("authorization"), Some("Bearer ya29.t"));
}

#[tokio::test]
async fn embeddings_use_predict() {
    let server = serve(|_| {
        Reply::json(
            200,
            json!({"predictions": [
                {"embeddings": {"values": [0.1, 0.2], "statistics": {"token_count": 3.0, "truncated": false}}},
                {"embeddings": {"values": [0.3, 0.4], "statistics": {"token_count": 4.0, "truncated": false}}}
            ]}),
        )
    })
    .await;
    let p = Vertex::new(
        VertexConfig::new("p", "us-central1", VertexAuth::access_token("ya29.t"))
            .base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let mut req = llm_tower_core::EmbeddingsRequest {
        model: "gemini-embedding-001".into(),
        input: llm_tower_core::EmbeddingInput::Many(vec!["a".into(), "b".into()]),
        encoding_format: None,
        dimensions: Some(2),
        user: None,
        extra: Default::default(),
    };
    req.extra
        .insert("task_type".into(), json!("RETRIEVAL_QUERY"));
    let resp = call(&p, LlmRequest::embeddings(req)).await.unwrap();
    let rec = server.last();
    assert_eq!(
        rec.uri.path(),
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-embedding-001:predict"
    );
    assert_eq!(
        rec.json(),
        json!({"instances": [{"content": "a", "task_type": "RETRIEVAL_QUERY"},
                             {"content": "b", "task_type": "RETRIEVAL_QUERY"}],
               "parameters": {"outputDimensionality": 2}})
    );
    assert_eq!(rec.header("authorization"), Some("Bearer ya29.t"));
    let llm_tower_core::ResponseBody::Embeddings(e) = &resp.body else {
        panic!("not embeddings")
    };
    assert_eq!(e.data.len(), 2);
    assert_eq!(
        e.data[1].embedding,
        llm_tower_core::EmbeddingVector::Float(vec![0.3, 0.4])
    );
    assert_eq!(resp.usage.unwrap().prompt_tokens, 7);
}

#[tokio::test]
async fn claude_streams_use_stream_raw_predict() {
    let events: Vec<(&str, String)> = vec![
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 5}}).to_string()),
        ("message_stop", json!({"type": "message_stop"}).to_string()),
    ];
    let server = serve(move |_| Reply::sse_events(&events)).await;
    let p = Vertex::new(
        VertexConfig::new("p", "global", VertexAuth::access_token("ya29.t")).base_url(server.url()),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let req = LlmRequest::chat(
        ChatRequest::new("claude-sonnet-4-5@20250929", vec![Message::user("hello")]).streaming(),
    );
    let resp = call(&p, req).await.unwrap();
    let (folded, usage) = collect_chat_stream(resp.into_stream().unwrap())
        .await
        .unwrap();
    assert_eq!(folded.text(), "Hello");
    assert_eq!(usage.unwrap().completion_tokens, 5);
    let rec = server.last();
    assert_eq!(
        rec.uri.path(),
        "/v1/projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict"
    );
    assert_eq!(rec.json()["stream"], true);
    assert_eq!(rec.json()["anthropic_version"], "vertex-2023-10-16");
}

/// A Vertex endpoint that echoes the `Authorization` header in its errors (a 400 for a
/// prompt of "400", else a 401), behind a token endpoint that hands out
/// `ya29.sa-RUNTIME-token` for a valid JWT and echoes the form it got when it refuses.
async fn echoing_server(clock: ManualClock) -> TestServer {
    serve(move |rec| {
        if rec.uri.path() == "/token" {
            let now = llm_tower_core::Clock::unix_secs(&clock);
            let form = String::from_utf8_lossy(&rec.body).into_owned();
            return match verify_token_request(rec, now) {
                Ok(()) => Reply::json(
                    200,
                    json!({"access_token": "ya29.sa-RUNTIME-token", "expires_in": 3600}),
                ),
                Err(why) => Reply::json(
                    400,
                    json!({"error": "invalid_grant",
                           "error_description": format!("you sent {form}: {why}")}),
                ),
            };
        }
        let auth = rec.header("authorization").unwrap_or_default();
        let echo = format!("Request had invalid authentication credentials: {auth}");
        if rec.json()["contents"][0]["parts"][0]["text"] == "400" {
            Reply::json(
                400,
                json!({"error": {"code": 400, "message": echo, "status": "INVALID_ARGUMENT"}}),
            )
        } else {
            Reply::json(
                401,
                json!({"error": {"code": 401, "message": echo, "status": "UNAUTHENTICATED"}}),
            )
        }
    })
    .await
}

fn assert_scrubbed(e: &Error, secret: &str) {
    let shown = format!("{e} {e:?} {}", e.message());
    assert!(e.message().contains("[redacted]"), "{shown}");
    assert!(!shown.contains(secret), "leaked: {shown}");
}

#[tokio::test]
async fn runtime_access_tokens_echoed_by_the_upstream_are_redacted() {
    let clock = ManualClock::starting_at_unix(START);
    let server = echoing_server(clock.clone()).await;
    let key = ServiceAccountKey::from_json(&key_json()).unwrap();
    let from_key = VertexAuth::ServiceAccount(key);
    let from_command = VertexAuth::token_command(["sh", "-c", "echo ya29.cmd-RUNTIME-token"]);
    for (auth, token) in [
        (from_key, "ya29.sa-RUNTIME-token"),
        (from_command, "ya29.cmd-RUNTIME-token"),
    ] {
        let p = Vertex::new(
            VertexConfig::new("p", "us-central1", auth)
                .base_url(server.url())
                .token_url(format!("{}/token", server.url()))
                .clock(Arc::new(clock.clone())),
            HttpClient::new().unwrap(),
        )
        .unwrap();
        let e = call(&p, chat("gemini-2.5-flash")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        assert_eq!(
            api_requests(&server)
                .last()
                .unwrap()
                .header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_scrubbed(&e, token);
        let e = call(&p, chat_with("gemini-2.5-flash", "400"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
        assert_scrubbed(&e, token);
    }
}

fn chat_with(model: &str, text: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(model, vec![Message::user(text)]))
}

#[tokio::test]
async fn a_token_endpoint_echoing_the_jwt_assertion_does_not_leak_it() {
    let clock = ManualClock::starting_at_unix(START);
    let server = echoing_server(clock.clone()).await;
    // A wrong audience: the endpoint refuses and echoes the form with the assertion.
    let mut json: Value = serde_json::from_str(&key_json()).unwrap();
    json["token_uri"] = json!("https://elsewhere.example/token");
    let key = ServiceAccountKey::from_json(&json.to_string()).unwrap();
    let p = Vertex::new(
        VertexConfig::new("p", "us-central1", VertexAuth::ServiceAccount(key))
            .base_url(server.url())
            .token_url(format!("{}/token", server.url()))
            .clock(Arc::new(clock.clone())),
        HttpClient::new().unwrap(),
    )
    .unwrap();
    let e = call(&p, chat("gemini-2.5-flash")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let form = String::from_utf8(server.last().body.to_vec()).unwrap();
    let jwt = form.split("assertion=").nth(1).unwrap();
    assert!(jwt.starts_with("eyJ"), "{form}");
    assert!(e.message().contains("[redacted]"), "{}", e.message());
    assert!(!format!("{e} {e:?}").contains(jwt), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("eyJ"), "{e:?}");
}
