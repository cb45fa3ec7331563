//! The whole in-process stack over every HTTP provider, against local wire-format servers:
//!
//! ```text
//! trace -> count_tokens -> track_cost (prices, budgets) -> rate_limit (per caller, Reject)
//!       -> retry (seeded, millisecond backoff) -> rate_limit (per provider, Wait)
//!       -> timeout -> provider -> 127.0.0.1:0
//! ```
//!
//! Retries wait a few milliseconds at most (millisecond backoff, `retry-after-ms: 20` or
//! `retry-after: 0`); nothing sleeps to wait for a result and nothing asserts on timing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::aws::{self, event_stream, frame, verify_signature};
use common::{End, Reply, TestServer, collect, guard, serve};
use llm_tower_core::{
    ChatChunk, ChatRequest, Error, ErrorKind, LlmRequest, LlmResponse, Message, Money, Price,
    Usage, UsageSource,
};
use llm_tower_layers::builder::ServiceBuilderExt;
use llm_tower_layers::cost::{
    AnalyticsSnapshot, Budget, BudgetScope, BudgetStatus, CostTracker, ModelPrice, Period,
    PriceTable, Totals,
};
use llm_tower_layers::rate_limit::{Algorithm, KeyBy, Mode, RateLimitLayer};
use llm_tower_layers::retry::RetryLayer;
use llm_tower_providers::anthropic::{Anthropic, AnthropicConfig};
use llm_tower_providers::azure::{AzureAuth, AzureOpenAi, AzureOpenAiConfig};
use llm_tower_providers::bedrock::{Bedrock, BedrockConfig};
use llm_tower_providers::gemini::{Gemini, GeminiConfig};
use llm_tower_providers::http::HttpClient;
use llm_tower_providers::openai::{OpenAi, OpenAiConfig};
use llm_tower_providers::openai_compat::{OpenAiCompatible, OpenAiCompatibleConfig};
use llm_tower_providers::vertex::{Vertex, VertexAuth, VertexConfig};
use serde_json::{Value, json};
use tower::ServiceBuilder;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

type BoxSvc = BoxCloneSyncService<LlmRequest, LlmResponse, Error>;

const CALLER: &str = "alice";
/// The Bedrock model of these tests (Amazon Nova Pro, served through Converse).
const BEDROCK_MODEL: &str = "amazon.nova-pro-v1:0";
/// The static Vertex access token.
const VERTEX_TOKEN: &str = "ya29.vertex-SECRET-token";

// ---------------------------------------------------------------------------------------
// The stack
// ---------------------------------------------------------------------------------------

fn prices() -> PriceTable {
    let gpt = ModelPrice::usd("0.15", "0.60")
        .unwrap()
        .cached_input(Price::parse_per_million("0.075").unwrap())
        .max_output_tokens(16_384);
    let claude = ModelPrice::usd("3.00", "15.00")
        .unwrap()
        .cached_input(Price::parse_per_million("0.30").unwrap())
        .max_output_tokens(64_000);
    let llama = ModelPrice::usd("0.10", "0.20")
        .unwrap()
        .max_output_tokens(8_192);
    PriceTable::new()
        .with("gpt-4o-mini", gpt)
        .with("claude-sonnet-4-5", claude)
        .with("llama3", llama)
        .with(
            BEDROCK_MODEL,
            ModelPrice::usd("0.80", "3.20")
                .unwrap()
                .cached_input(Price::parse_per_million("0.20").unwrap())
                .max_output_tokens(10_000),
        )
        .with(
            "gemini-2.5-flash",
            ModelPrice::usd("0.30", "2.50")
                .unwrap()
                .cached_input(Price::parse_per_million("0.03").unwrap())
                .max_output_tokens(65_536),
        )
}

/// The stack and the tracker behind its cost layer.
struct Stack {
    svc: BoxSvc,
    tracker: CostTracker,
}

impl Stack {
    async fn call(&self, req: LlmRequest) -> Result<LlmResponse, Error> {
        guard(self.svc.clone().oneshot(req)).await
    }

    fn snapshot(&self) -> AnalyticsSnapshot {
        self.tracker.snapshot()
    }

    async fn budgets(&self) -> Vec<BudgetStatus> {
        self.tracker.budget_status(Some(CALLER)).await.unwrap()
    }

    /// Every budget counter holds nothing and has spent exactly `spent`.
    async fn assert_budgets(&self, spent: Money) {
        let status = self.budgets().await;
        assert_eq!(status.len(), 2, "{status:?}");
        for s in status {
            assert_eq!(s.reserved, Money::ZERO, "a hold was left behind: {s:?}");
            assert_eq!(s.spent, spent, "{s:?}");
        }
    }
}

/// trace -> count_tokens -> track_cost -> rate_limit (caller) -> retry -> rate_limit
/// (provider) -> timeout -> `provider`, as the layers crate documents the order.
fn build_stack(provider: BoxSvc) -> Stack {
    let tracker = CostTracker::builder()
        .prices(prices())
        .budget(
            Budget::new(
                "daily",
                BudgetScope::Global,
                Period::Day,
                Money::from_usd(5),
            )
            .unwrap(),
        )
        .budget(
            Budget::new(
                "per_caller",
                BudgetScope::EachCaller,
                Period::Day,
                Money::from_usd(1),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .llm_trace()
        .count_tokens()
        .track_cost(tracker.clone())
        .llm_rate_limit(
            RateLimitLayer::new(Algorithm::sliding_window(100, Duration::from_secs(60)).unwrap())
                .name("per_caller")
                .key(KeyBy::Caller),
        )
        .llm_retry(
            RetryLayer::new()
                .seed(7)
                .max_retries(3)
                .backoff(Duration::from_millis(1), Duration::from_millis(5))
                .retry_after_cap(Duration::from_secs(1)),
        )
        .llm_rate_limit(
            RateLimitLayer::new(
                Algorithm::leaky_bucket(1_000_000, Duration::from_secs(60), 100_000).unwrap(),
            )
            .name("provider_tpm")
            .by_tokens()
            .key(KeyBy::Provider)
            .mode(Mode::Wait {
                max_wait: Duration::from_secs(1),
            }),
        )
        .llm_timeout(Duration::from_secs(5))
        .service(provider);
    Stack {
        svc: BoxCloneSyncService::new(svc),
        tracker,
    }
}

// ---------------------------------------------------------------------------------------
// Providers
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    OpenAi,
    Azure,
    Anthropic,
    Compat,
    Gemini,
    Vertex,
    Bedrock,
}

const ALL: [Kind; 7] = [
    Kind::OpenAi,
    Kind::Azure,
    Kind::Anthropic,
    Kind::Compat,
    Kind::Gemini,
    Kind::Vertex,
    Kind::Bedrock,
];

impl Kind {
    /// The provider's name, in `meta.provider`, in errors and as a router would write it
    /// into `ctx.provider`.
    fn name(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Azure => "azure",
            Kind::Anthropic => "anthropic",
            Kind::Compat => "openai-compatible",
            Kind::Gemini => "gemini",
            Kind::Vertex => "vertex",
            Kind::Bedrock => "bedrock",
        }
    }

    fn model(self) -> &'static str {
        match self {
            Kind::OpenAi | Kind::Azure => "gpt-4o-mini",
            Kind::Anthropic => "claude-sonnet-4-5",
            Kind::Compat => "llama3",
            Kind::Gemini | Kind::Vertex => "gemini-2.5-flash",
            Kind::Bedrock => BEDROCK_MODEL,
        }
    }

    fn provider(self, server: &TestServer) -> BoxSvc {
        let http = HttpClient::new().unwrap();
        match self {
            Kind::OpenAi => BoxCloneSyncService::new(
                OpenAi::new(
                    OpenAiConfig::new("sk-test-SECRET-0123456789abcdef")
                        .base_url(format!("{}/v1", server.url())),
                    http,
                )
                .unwrap(),
            ),
            Kind::Azure => BoxCloneSyncService::new(
                AzureOpenAi::new(
                    AzureOpenAiConfig::new(server.url(), AzureAuth::api_key("azure-SECRET-key"))
                        .deployment("gpt-4o-mini", "prod-mini"),
                    http,
                )
                .unwrap(),
            ),
            Kind::Anthropic => BoxCloneSyncService::new(
                Anthropic::new(
                    AnthropicConfig::new("sk-ant-api03-SECRET-abcdef").base_url(server.url()),
                    http,
                )
                .unwrap(),
            ),
            Kind::Compat => BoxCloneSyncService::new(
                OpenAiCompatible::new(
                    OpenAiCompatibleConfig::new(format!("{}/v1", server.url())),
                    http,
                )
                .unwrap(),
            ),
            Kind::Gemini => BoxCloneSyncService::new(
                Gemini::new(
                    GeminiConfig::new("AIza-gemini-SECRET-key").base_url(server.url()),
                    http,
                )
                .unwrap(),
            ),
            Kind::Vertex => BoxCloneSyncService::new(
                Vertex::new(
                    VertexConfig::new(
                        "test-project",
                        "us-central1",
                        VertexAuth::access_token(VERTEX_TOKEN),
                    )
                    .base_url(server.url()),
                    http,
                )
                .unwrap(),
            ),
            Kind::Bedrock => BoxCloneSyncService::new(
                Bedrock::new(
                    BedrockConfig::new(aws::REGION, aws::creds()).base_url(server.url()),
                    http,
                )
                .unwrap(),
            ),
        }
    }

    /// Checks what only some providers send: Vertex's bearer token, Bedrock's SigV4
    /// signature (recomputed from the test credentials).
    fn check_auth(self, sent: &common::Recorded) {
        match self {
            Kind::Vertex => assert_eq!(
                sent.header("authorization"),
                Some(format!("Bearer {VERTEX_TOKEN}").as_str())
            ),
            Kind::Bedrock => verify_signature(sent).unwrap(),
            _ => {}
        }
    }

    /// The path the provider posts chats to.
    fn path(self) -> &'static str {
        match self {
            Kind::OpenAi | Kind::Compat => "/v1/chat/completions",
            Kind::Azure => "/openai/deployments/prod-mini/chat/completions",
            Kind::Anthropic => "/v1/messages",
            Kind::Gemini => "/v1beta/models/gemini-2.5-flash:generateContent",
            Kind::Vertex => {
                "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
            }
            Kind::Bedrock => "/model/amazon.nova-pro-v1%3A0/converse",
        }
    }

    /// A successful, complete chat answer with usage.
    fn ok(self) -> Reply {
        match self {
            Kind::Anthropic => Reply::json(200, anthropic_body()),
            Kind::Gemini | Kind::Vertex => Reply::json(200, gemini_body()),
            Kind::Bedrock => Reply::json(200, bedrock_body()),
            _ => Reply::json(200, openai_body(self.model(), true)),
        }
    }

    /// The usage in [`Kind::ok`], as the provider must report it.
    fn ok_usage(self) -> Usage {
        match self {
            // input 20 + cache read 10 + cache creation 0; 6 out.
            Kind::Anthropic => Usage::new(30, 6, UsageSource::Provider).with_cached(10),
            _ => Usage::new(19, 2, UsageSource::Provider).with_cached(8),
        }
    }

    /// A 429 with a retry-after of a few milliseconds, in the provider's shape.
    fn rate_limited(self) -> Reply {
        match self {
            Kind::Anthropic => Reply::json(
                429,
                json!({"type": "error", "error": {"type": "rate_limit_error",
                       "message": "Number of request tokens has exceeded your per-minute rate limit"}}),
            )
            .header("retry-after", "0"),
            Kind::Azure => Reply::json(
                429,
                json!({"error": {"code": "429", "message": "Requests to the ChatCompletions_Create Operation have exceeded call rate limit."}}),
            )
            .header("retry-after-ms", "20"),
            Kind::OpenAi | Kind::Compat => Reply::json(
                429,
                json!({"error": {"message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.",
                                 "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
            )
            .header("retry-after-ms", "20")
            .header("x-ratelimit-remaining-requests", "0"),
            Kind::Gemini | Kind::Vertex => Reply::json(
                429,
                json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                       "status": "RESOURCE_EXHAUSTED",
                       "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.02s"}]}}),
            ),
            Kind::Bedrock => Reply::json(
                429,
                json!({"message": "Too many requests, please wait before trying again."}),
            )
            .header("x-amzn-errortype", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/")
            .header("retry-after", "0"),
        }
    }

    fn server_error(self) -> Reply {
        match self {
            Kind::Bedrock => Reply::json(500, json!({"message": "Internal server error"}))
                .header("x-amzn-errortype", "InternalServerException"),
            Kind::Gemini | Kind::Vertex => Reply::json(
                500,
                json!({"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}),
            ),
            Kind::Anthropic => Reply::json(
                500,
                json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}),
            ),
            _ => Reply::json(
                500,
                json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}),
            ),
        }
    }

    fn unauthorized(self) -> Reply {
        match self {
            Kind::Vertex => Reply::json(
                401,
                json!({"error": {"code": 401, "message": "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                       "status": "UNAUTHENTICATED"}}),
            ),
            Kind::Bedrock => Reply::json(
                403,
                json!({"message": "The security token included in the request is invalid."}),
            )
            .header("x-amzn-errortype", "UnrecognizedClientException"),
            Kind::Gemini => Reply::json(
                403,
                json!({"error": {"code": 403, "message": "Method doesn't allow unregistered callers.", "status": "PERMISSION_DENIED"}}),
            ),
            Kind::Anthropic => Reply::json(
                401,
                json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
            ),
            _ => Reply::json(
                401,
                json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}}),
            ),
        }
    }
}

/// A server answering its n-th request with `replies[n]` (the last one from then on).
async fn serve_seq(replies: Vec<Reply>) -> TestServer {
    let n = AtomicUsize::new(0);
    serve(move |_| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        replies
            .get(i)
            .or_else(|| replies.last())
            .cloned()
            .unwrap_or_else(|| Reply::text(500, "no reply scripted"))
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Requests and wire bodies
// ---------------------------------------------------------------------------------------

/// A chat from [`CALLER`], routed to `kind` (the router's job: it writes `ctx.provider`).
fn chat_req(kind: Kind, model: &str) -> LlmRequest {
    let mut req = LlmRequest::chat(
        ChatRequest::new(
            model,
            vec![Message::system("be brief"), Message::user("Say hi")],
        )
        .max_tokens(20),
    )
    .with_caller(CALLER);
    req.ctx.provider = Some(Arc::from(kind.name()));
    req
}

fn stream_req(kind: Kind, model: &str) -> LlmRequest {
    let mut req = chat_req(kind, model);
    if let llm_tower_core::RequestBody::Chat(c) = &mut req.body {
        c.stream = true;
    }
    req
}

fn openai_body(model: &str, with_usage: bool) -> Value {
    let mut body = json!({
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there, friend!"},
                     "logprobs": null, "finish_reason": "stop"}],
        "system_fingerprint": "fp_1"
    });
    if with_usage {
        body["usage"] = json!({"prompt_tokens": 19, "completion_tokens": 2, "total_tokens": 21,
                               "prompt_tokens_details": {"cached_tokens": 8}});
    }
    body
}

/// 19 prompt tokens (8 cached), 2 out, as [`Kind::ok_usage`] expects.
fn gemini_body() -> Value {
    json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hi there"}]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 19, "cachedContentTokenCount": 8,
                          "candidatesTokenCount": 2, "totalTokenCount": 21},
        "modelVersion": "gemini-2.5-flash", "responseId": "g-1"
    })
}

/// 19 prompt tokens (11 fresh + 8 cache reads), 2 out, as [`Kind::ok_usage`] expects.
fn bedrock_body() -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Hi there"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 11, "outputTokens": 2, "totalTokens": 21,
                  "cacheReadInputTokens": 8, "cacheWriteInputTokens": 0},
        "metrics": {"latencyMs": 30}
    })
}

/// The same answer as ConverseStream frames; `cut_after` keeps only the first frames.
fn bedrock_frames() -> Vec<Vec<u8>> {
    vec![
        frame("messageStart", json!({"role": "assistant"})),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": " there"}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 0})),
        frame("messageStop", json!({"stopReason": "end_turn"})),
        frame(
            "metadata",
            json!({"usage": {"inputTokens": 11, "outputTokens": 2, "totalTokens": 21,
                             "cacheReadInputTokens": 8, "cacheWriteInputTokens": 0},
                   "metrics": {"latencyMs": 30}}),
        ),
    ]
}

/// A Gemini (and Vertex) stream saying "Hi there", usage on its last event.
fn gemini_stream() -> Vec<String> {
    vec![
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}],
               "modelVersion": "gemini-2.5-flash"})
        .to_string(),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": " there"}]}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 19, "cachedContentTokenCount": 8, "candidatesTokenCount": 2, "totalTokenCount": 21},
               "modelVersion": "gemini-2.5-flash"})
        .to_string(),
    ]
}

fn anthropic_body() -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hi there!"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 20, "output_tokens": 6,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10}
    })
}

fn openai_chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
           "model": model, "system_fingerprint": "fp_1",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    .to_string()
}

/// An OpenAI stream saying "Hi there"; with the usage chunk (9 in, 4 cached, 2 out) when
/// `with_usage`.
fn openai_stream(model: &str, with_usage: bool) -> Vec<String> {
    let mut events = vec![
        openai_chunk(model, json!({"role": "assistant", "content": ""}), None),
        openai_chunk(model, json!({"content": "Hi"}), None),
        openai_chunk(model, json!({"content": " there"}), None),
        openai_chunk(model, json!({}), Some("stop")),
    ];
    if with_usage {
        events.push(
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
                   "model": model, "choices": [],
                   "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                             "prompt_tokens_details": {"cached_tokens": 4}}})
            .to_string(),
        );
    }
    events.push("[DONE]".to_owned());
    events
}

/// An Anthropic stream saying "Hello!" (25 in + 10 cache read, 15 out).
fn anthropic_stream() -> Vec<(&'static str, String)> {
    vec![
        ("message_start", json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 10, "output_tokens": 1}}}).to_string()),
        ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        ("ping", json!({"type": "ping"}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}).to_string()),
        ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}).to_string()),
        ("content_block_stop", json!({"type": "content_block_stop", "index": 0}).to_string()),
        ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}}).to_string()),
        ("message_stop", json!({"type": "message_stop"}).to_string()),
    ]
}

// ---------------------------------------------------------------------------------------
// Assertions shared by the tests
// ---------------------------------------------------------------------------------------

fn totals<'a>(map: &'a std::collections::BTreeMap<String, Totals>, key: &str) -> &'a Totals {
    map.get(key)
        .unwrap_or_else(|| panic!("no analytics for {key:?} in {map:?}"))
}

/// One request settled, accounted under its model, provider and caller with `usage` and
/// `cost`.
fn assert_one_request(
    snap: &AnalyticsSnapshot,
    kind: Kind,
    model: &str,
    usage: &Usage,
    cost: Money,
    error: bool,
) {
    let expect = Totals {
        requests: 1,
        errors: u64::from(error),
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        cost,
        cache_hits: 0,
    };
    assert_eq!(snap.total, expect, "total");
    assert_eq!(*totals(&snap.by_model, model), expect, "by model");
    assert_eq!(
        *totals(&snap.by_provider, kind.name()),
        expect,
        "by provider"
    );
    assert_eq!(*totals(&snap.by_caller, CALLER), expect, "by caller");
}

fn texts(chunks: &[ChatChunk]) -> String {
    chunks.iter().map(ChatChunk::text).collect()
}

// ---------------------------------------------------------------------------------------
// 1. A plain chat over every provider
// ---------------------------------------------------------------------------------------

async fn plain_chat(kind: Kind) {
    let server = serve(move |_| kind.ok()).await;
    let stack = build_stack(kind.provider(&server));
    let model = kind.model();
    let resp = stack.call(chat_req(kind, model)).await.unwrap();

    let sent = server.last();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(sent.uri.path(), kind.path(), "{kind:?}");
    kind.check_auth(&sent);
    assert!(!texts_of(&resp).is_empty());

    let usage = resp.usage.expect("usage");
    assert_eq!(usage, kind.ok_usage(), "{kind:?}");
    let cost = stack.tracker.cost_of(model, &usage).expect("priced");
    assert!(cost > Money::ZERO);
    assert_eq!(resp.cost, Some(cost), "{kind:?}");
    assert_eq!(resp.meta.provider.as_deref(), Some(kind.name()));
    assert_eq!(resp.meta.attempts, 1);

    assert_one_request(&stack.snapshot(), kind, model, &usage, cost, false);
    stack.assert_budgets(cost).await;
}

fn texts_of(resp: &LlmResponse) -> String {
    resp.as_chat()
        .map(|c| c.text().into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn plain_chat_through_the_whole_stack_openai() {
    plain_chat(Kind::OpenAi).await;
}

#[tokio::test]
async fn plain_chat_through_the_whole_stack_azure() {
    plain_chat(Kind::Azure).await;
}

#[tokio::test]
async fn plain_chat_through_the_whole_stack_anthropic() {
    plain_chat(Kind::Anthropic).await;
}

#[tokio::test]
async fn plain_chat_through_the_whole_stack_openai_compatible() {
    plain_chat(Kind::Compat).await;
}

#[tokio::test]
async fn plain_chat_through_the_whole_stack_gemini() {
    plain_chat(Kind::Gemini).await;
}

#[tokio::test]
async fn plain_chat_through_the_whole_stack_vertex() {
    plain_chat(Kind::Vertex).await;
}

#[tokio::test]
async fn plain_chat_through_the_whole_stack_bedrock() {
    plain_chat(Kind::Bedrock).await;
}

#[tokio::test]
async fn gemini_stream_through_the_whole_stack_is_charged_once() {
    let kind = Kind::Gemini;
    let events = vec![
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}],
               "modelVersion": "gemini-2.5-flash"})
        .to_string(),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": " there"}]}, "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 19, "cachedContentTokenCount": 8, "candidatesTokenCount": 2, "totalTokenCount": 21},
               "modelVersion": "gemini-2.5-flash"})
        .to_string(),
    ];
    let server = serve(move |_| Reply::sse_data(&events)).await;
    let stack = build_stack(kind.provider(&server));
    let resp = stack.call(stream_req(kind, kind.model())).await.unwrap();
    let chunks: Vec<ChatChunk> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts(&chunks), "Hi there");
    let usage = kind.ok_usage();
    let cost = stack.tracker.cost_of(kind.model(), &usage).unwrap();
    assert_one_request(&stack.snapshot(), kind, kind.model(), &usage, cost, false);
    stack.assert_budgets(cost).await;
}

#[tokio::test]
async fn a_cached_prompt_is_charged_at_the_cached_price() {
    // The cached-input price must actually lower the charge for the provider's usage.
    let p = prices();
    let gpt = p.get("gpt-4o-mini").unwrap();
    let claude = p.get("claude-sonnet-4-5").unwrap();
    let mut uncached = Kind::OpenAi.ok_usage();
    uncached.cached_prompt_tokens = 0;
    assert!(gpt.cost(&Kind::OpenAi.ok_usage()) < gpt.cost(&uncached));
    let mut uncached = Kind::Anthropic.ok_usage();
    uncached.cached_prompt_tokens = 0;
    assert!(claude.cost(&Kind::Anthropic.ok_usage()) < claude.cost(&uncached));
}

// ---------------------------------------------------------------------------------------
// 2. 429 then success; Anthropic's 529
// ---------------------------------------------------------------------------------------

/// `first` then a success: the caller sees one response after two attempts, settled once.
async fn retried_once(kind: Kind, first: Reply) {
    let server = serve_seq(vec![first, kind.ok()]).await;
    let stack = build_stack(kind.provider(&server));
    let model = kind.model();
    let resp = stack.call(chat_req(kind, model)).await.unwrap();
    assert_eq!(resp.meta.attempts, 2, "{kind:?}");
    assert_eq!(server.requests().len(), 2, "{kind:?}");
    assert_eq!(resp.meta.provider.as_deref(), Some(kind.name()));
    let usage = resp.usage.expect("usage");
    assert_eq!(usage, kind.ok_usage());
    let cost = stack.tracker.cost_of(model, &usage).unwrap();
    assert_eq!(resp.cost, Some(cost));
    // The cost layer is outside retry: one settlement, no error recorded, nothing held.
    assert_one_request(&stack.snapshot(), kind, model, &usage, cost, false);
    stack.assert_budgets(cost).await;
}

#[tokio::test]
async fn rate_limited_429_with_retry_after_is_retried_openai() {
    retried_once(Kind::OpenAi, Kind::OpenAi.rate_limited()).await;
}

#[tokio::test]
async fn rate_limited_429_with_retry_after_ms_is_retried_azure() {
    retried_once(Kind::Azure, Kind::Azure.rate_limited()).await;
}

#[tokio::test]
async fn rate_limited_429_with_retry_after_is_retried_anthropic() {
    retried_once(Kind::Anthropic, Kind::Anthropic.rate_limited()).await;
}

#[tokio::test]
async fn rate_limited_429_with_retry_after_is_retried_openai_compatible() {
    retried_once(Kind::Compat, Kind::Compat.rate_limited()).await;
}

#[tokio::test]
async fn rate_limited_429_with_retry_info_is_retried_gemini() {
    retried_once(Kind::Gemini, Kind::Gemini.rate_limited()).await;
}

#[tokio::test]
async fn rate_limited_429_with_retry_info_is_retried_vertex() {
    retried_once(Kind::Vertex, Kind::Vertex.rate_limited()).await;
}

#[tokio::test]
async fn throttling_exception_429_is_retried_bedrock() {
    retried_once(Kind::Bedrock, Kind::Bedrock.rate_limited()).await;
}

#[tokio::test]
async fn a_throttling_exception_frame_before_output_is_retried_bedrock() {
    // Throttled inside ConverseStream, before the first token: retried like a 429.
    let throttled = event_stream(&[
        frame("messageStart", json!({"role": "assistant"})),
        aws::exception("throttlingException", "Too many tokens, please wait."),
    ]);
    let server = serve_seq(vec![throttled, event_stream(&bedrock_frames())]).await;
    let stack = build_stack(Kind::Bedrock.provider(&server));
    let resp = stack
        .call(stream_req(Kind::Bedrock, BEDROCK_MODEL))
        .await
        .unwrap();
    assert_eq!(resp.meta.attempts, 2);
    assert_eq!(server.requests().len(), 2);
    for rec in server.requests() {
        verify_signature(&rec).unwrap();
    }
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts(&chunks), "Hi there");
    let usage = Kind::Bedrock.ok_usage();
    let cost = stack.tracker.cost_of(BEDROCK_MODEL, &usage).unwrap();
    assert_one_request(
        &stack.snapshot(),
        Kind::Bedrock,
        BEDROCK_MODEL,
        &usage,
        cost,
        false,
    );
    stack.assert_budgets(cost).await;
}

#[tokio::test]
async fn anthropic_529_overloaded_is_retried() {
    let overloaded = Reply::json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    retried_once(Kind::Anthropic, overloaded).await;
}

#[tokio::test]
async fn anthropic_overloaded_error_event_before_output_is_retried() {
    // Overload reported inside the stream, before the first token: the call fails before
    // its headers reach the caller, so the retry layer can still retry it.
    let mut events = anthropic_stream()[..1].to_vec();
    events.push((
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            .to_string(),
    ));
    let server = serve_seq(vec![
        Reply::sse_events(&events),
        Reply::sse_events(&anthropic_stream()),
    ])
    .await;
    let stack = build_stack(Kind::Anthropic.provider(&server));
    let resp = stack
        .call(stream_req(Kind::Anthropic, "claude-sonnet-4-5"))
        .await
        .unwrap();
    assert_eq!(resp.meta.attempts, 2);
    assert_eq!(server.requests().len(), 2);
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts(&chunks), "Hello!");
}

// ---------------------------------------------------------------------------------------
// 3. 500 then success; 401 is final
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn server_error_500_then_success_takes_two_attempts() {
    for kind in ALL {
        retried_once(kind, kind.server_error()).await;
    }
}

#[tokio::test]
async fn unauthorized_401_is_not_retried() {
    for kind in ALL {
        let server = serve(move |_| kind.unauthorized()).await;
        let stack = build_stack(kind.provider(&server));
        let model = kind.model();
        let err = stack.call(chat_req(kind, model)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{kind:?}: {err}");
        assert_eq!(err.attempts(), 1, "{kind:?}");
        assert_eq!(err.provider(), Some(kind.name()));
        assert_eq!(server.requests().len(), 1, "{kind:?}");
        assert!(!format!("{err:?}").contains("SECRET"));
        // Released, recorded as one failed request.
        assert_one_request(
            &stack.snapshot(),
            kind,
            model,
            &Usage::default(),
            Money::ZERO,
            true,
        );
        stack.assert_budgets(Money::ZERO).await;
    }
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_max_retries() {
    let server = serve(|_| Kind::OpenAi.server_error()).await;
    let stack = build_stack(Kind::OpenAi.provider(&server));
    let err = stack
        .call(chat_req(Kind::OpenAi, "gpt-4o-mini"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Provider { status: 500 });
    assert_eq!(err.attempts(), 4, "1 attempt + 3 retries");
    assert_eq!(server.requests().len(), 4);
    let snap = stack.snapshot();
    assert_eq!((snap.total.requests, snap.total.errors), (1, 1));
    stack.assert_budgets(Money::ZERO).await;
}

// ---------------------------------------------------------------------------------------
// 4. Streaming settles once, at the end
// ---------------------------------------------------------------------------------------

/// Streams through the stack; checks nothing is settled before the end and everything
/// after.
async fn stream_settles_at_the_end(kind: Kind, server: &TestServer, expected: Usage) {
    let stack = build_stack(kind.provider(server));
    let model = kind.model();
    let resp = stack.call(stream_req(kind, model)).await.unwrap();
    assert!(resp.is_stream());
    assert_eq!(resp.meta.attempts, 1);
    assert_eq!(resp.meta.provider.as_deref(), Some(kind.name()));
    assert!(resp.meta.time_to_first_token.is_some());

    // Headers are in, the body is not: nothing settled, the worst case still held.
    let snap = stack.snapshot();
    assert_eq!(snap.total.requests, 0, "settled before the stream ended");
    for s in stack.budgets().await {
        assert!(s.reserved > Money::ZERO, "no hold while streaming: {s:?}");
        assert_eq!(s.spent, Money::ZERO);
    }

    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(chunks.len() > 2);
    let with_usage: Vec<_> = chunks.iter().filter_map(|c| c.usage).collect();
    assert_eq!(with_usage.len(), 1, "one usage chunk: {with_usage:?}");
    let usage = chunks
        .last()
        .unwrap()
        .usage
        .expect("usage on the last chunk");
    assert_eq!(usage, expected, "the provider's usage, untouched");

    let cost = stack.tracker.cost_of(model, &usage).unwrap();
    assert!(cost > Money::ZERO);
    assert_one_request(&stack.snapshot(), kind, model, &usage, cost, false);
    stack.assert_budgets(cost).await;
}

#[tokio::test]
async fn streaming_through_the_stack_openai() {
    let server = serve(|_| Reply::sse_data(&openai_stream("gpt-4o-mini-2024-07-18", true))).await;
    stream_settles_at_the_end(
        Kind::OpenAi,
        &server,
        Usage::new(9, 2, UsageSource::Provider).with_cached(4),
    )
    .await;
    assert_eq!(
        server.last().json()["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn streaming_through_the_stack_anthropic() {
    let server = serve(|_| Reply::sse_events(&anthropic_stream())).await;
    stream_settles_at_the_end(
        Kind::Anthropic,
        &server,
        Usage::new(35, 15, UsageSource::Provider).with_cached(10),
    )
    .await;
}

#[tokio::test]
async fn streaming_through_the_stack_azure_skips_prompt_filter_results() {
    // Azure's first chunk carries only prompt filter results (no choices, empty model).
    let filter = json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]})
    .to_string();
    let mut events = vec![filter];
    events.extend(openai_stream("gpt-4o-mini-2024-07-18", true));
    let server = serve(move |_| Reply::sse_data(&events)).await;
    stream_settles_at_the_end(
        Kind::Azure,
        &server,
        Usage::new(9, 2, UsageSource::Provider).with_cached(4),
    )
    .await;
    assert_eq!(server.last().uri.path(), Kind::Azure.path());
}

#[tokio::test]
async fn streaming_through_the_stack_vertex() {
    let server = serve(|_| Reply::sse_data(&gemini_stream())).await;
    stream_settles_at_the_end(Kind::Vertex, &server, Kind::Vertex.ok_usage()).await;
    let sent = server.last();
    assert_eq!(
        sent.uri.to_string(),
        "/v1/projects/test-project/locations/us-central1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    Kind::Vertex.check_auth(&sent);
}

#[tokio::test]
async fn streaming_through_the_stack_bedrock() {
    // Event-stream frames fed a few bytes at a time.
    let server = serve(|_| event_stream(&bedrock_frames()).split_every(5)).await;
    stream_settles_at_the_end(Kind::Bedrock, &server, Kind::Bedrock.ok_usage()).await;
    let sent = server.last();
    assert_eq!(
        sent.uri.path(),
        "/model/amazon.nova-pro-v1%3A0/converse-stream"
    );
    Kind::Bedrock.check_auth(&sent);
}

#[tokio::test]
async fn streaming_text_arrives_in_order() {
    let server = serve(|_| Reply::sse_data(&openai_stream("gpt-4o-mini", true))).await;
    let stack = build_stack(Kind::OpenAi.provider(&server));
    let resp = stack
        .call(stream_req(Kind::OpenAi, "gpt-4o-mini"))
        .await
        .unwrap();
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts(&chunks), "Hi there");

    let server = serve(|_| Reply::sse_events(&anthropic_stream())).await;
    let stack = build_stack(Kind::Anthropic.provider(&server));
    let resp = stack
        .call(stream_req(Kind::Anthropic, "claude-sonnet-4-5"))
        .await
        .unwrap();
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts(&chunks), "Hello!");
}

#[tokio::test]
async fn a_dropped_stream_releases_its_hold() {
    let server = serve(|_| Reply::sse_data(&openai_stream("gpt-4o-mini", true))).await;
    let stack = build_stack(Kind::OpenAi.provider(&server));
    let resp = stack
        .call(stream_req(Kind::OpenAi, "gpt-4o-mini"))
        .await
        .unwrap();
    assert!(
        stack
            .budgets()
            .await
            .iter()
            .all(|s| s.reserved > Money::ZERO)
    );
    drop(resp);
    for s in stack.budgets().await {
        assert_eq!(s.reserved, Money::ZERO, "{s:?}");
    }
    assert_eq!(stack.snapshot().total.requests, 1);
}

// ---------------------------------------------------------------------------------------
// 5. A compatible server that reports no usage
// ---------------------------------------------------------------------------------------

/// A compatible server that never reports usage, neither in bodies nor in streams.
async fn usage_less_server(model: &'static str) -> TestServer {
    serve(move |req| {
        if req.json()["stream"] == true {
            Reply::sse_data(&openai_stream(model, false))
        } else {
            Reply::json(200, openai_body(model, false))
        }
    })
    .await
}

async fn counted_usage_is_charged(model: &'static str, source: UsageSource) {
    let kind = Kind::Compat;
    let server = usage_less_server(model).await;

    // A complete answer.
    let stack = build_stack(kind.provider(&server));
    let resp = stack.call(chat_req(kind, model)).await.unwrap();
    let usage = resp.usage.expect("usage filled in by the stack");
    assert_eq!(usage.source, source, "{model}");
    assert!(
        usage.prompt_tokens > 0 && usage.completion_tokens > 0,
        "{usage:?}"
    );
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    let cost = stack.tracker.cost_of(model, &usage).unwrap();
    assert!(cost > Money::ZERO);
    assert_eq!(resp.cost, Some(cost));
    assert_one_request(&stack.snapshot(), kind, model, &usage, cost, false);
    stack.assert_budgets(cost).await;

    // A stream: the stack appends one counted usage chunk and settles with it.
    let stack = build_stack(kind.provider(&server));
    let resp = stack.call(stream_req(kind, model)).await.unwrap();
    assert_eq!(stack.snapshot().total.requests, 0);
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts(&chunks), "Hi there");
    assert_eq!(chunks.iter().filter(|c| c.usage.is_some()).count(), 1);
    let streamed = chunks.last().unwrap().usage.expect("counted usage chunk");
    assert_eq!(streamed.source, source, "{model}");
    assert!(streamed.prompt_tokens > 0 && streamed.completion_tokens > 0);
    let cost = stack.tracker.cost_of(model, &streamed).unwrap();
    assert!(cost > Money::ZERO);
    assert_one_request(&stack.snapshot(), kind, model, &streamed, cost, false);
    stack.assert_budgets(cost).await;
}

#[tokio::test]
async fn no_usage_from_a_compatible_server_is_counted_exactly_for_an_openai_model() {
    counted_usage_is_charged("gpt-4o-mini", UsageSource::Counted).await;
}

#[tokio::test]
async fn no_usage_from_a_compatible_server_is_estimated_for_llama() {
    counted_usage_is_charged("llama3", UsageSource::Estimated).await;
}

// ---------------------------------------------------------------------------------------
// 6. A stream cut in the middle
// ---------------------------------------------------------------------------------------

async fn cut_stream_settles_partial_output(
    kind: Kind,
    reply: Reply,
    before_cut: &str,
    error: ErrorKind,
) {
    let server = serve(move |_| reply.clone()).await;
    let stack = build_stack(kind.provider(&server));
    let model = kind.model();
    let resp = stack.call(stream_req(kind, model)).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;

    let err = items
        .last()
        .unwrap()
        .as_ref()
        .expect_err("the caller gets the error");
    assert_eq!(err.kind(), error, "{kind:?}: {err}");
    assert_eq!(err.provider(), Some(kind.name()));
    let ok: Vec<ChatChunk> = items
        .iter()
        .filter_map(|i| i.as_ref().ok().cloned())
        .collect();
    assert_eq!(ok.len() + 1, items.len(), "one error, at the end");
    assert_eq!(texts(&ok), before_cut);
    assert!(ok.iter().all(|c| c.usage.is_none()), "no usage after a cut");

    // Settled with the counted prompt and the partial output; nothing held.
    let snap = stack.snapshot();
    assert_eq!((snap.total.requests, snap.total.errors), (1, 1), "{kind:?}");
    assert!(snap.total.prompt_tokens > 0);
    assert!(
        snap.total.completion_tokens > 0,
        "{kind:?}: partial output not counted"
    );
    let counted = Usage::new(
        snap.total.prompt_tokens,
        snap.total.completion_tokens,
        UsageSource::Estimated,
    );
    let spent = stack.tracker.cost_of(model, &counted).unwrap();
    assert!(spent > Money::ZERO);
    assert_eq!(snap.total.cost, spent);
    assert_eq!(totals(&snap.by_provider, kind.name()).errors, 1);
    stack.assert_budgets(spent).await;
}

#[tokio::test]
async fn the_next_call_after_a_cut_stream_succeeds() {
    // The cut connection must not be handed out again by the pool.
    let kind = Kind::OpenAi;
    let server = serve_seq(vec![
        Reply::sse_data(&openai_stream("gpt-4o-mini", true)[..3]).ending(End::Abort),
        Reply::sse_data(&openai_stream("gpt-4o-mini", true)),
    ])
    .await;
    let stack = build_stack(kind.provider(&server));
    let resp = stack.call(stream_req(kind, "gpt-4o-mini")).await.unwrap();
    let items = collect(resp.into_stream().unwrap()).await;
    assert!(items.last().unwrap().is_err());
    let resp = stack.call(stream_req(kind, "gpt-4o-mini")).await.unwrap();
    assert_eq!(resp.meta.attempts, 1);
    let chunks: Vec<_> = collect(resp.into_stream().unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(texts(&chunks), "Hi there");
    assert_eq!(server.requests().len(), 2);
    let snap = stack.snapshot();
    assert_eq!((snap.total.requests, snap.total.errors), (2, 1));
    for s in stack.budgets().await {
        assert_eq!(s.reserved, Money::ZERO, "{s:?}");
        assert_eq!(s.spent, snap.total.cost, "{s:?}");
    }
}

#[tokio::test]
async fn stream_cut_in_the_middle_openai() {
    let reply = Reply::sse_data(&openai_stream("gpt-4o-mini", true)[..3]).ending(End::Abort);
    cut_stream_settles_partial_output(Kind::OpenAi, reply, "Hi there", ErrorKind::Transport).await;
}

#[tokio::test]
async fn stream_cut_in_the_middle_anthropic() {
    let reply = Reply::sse_events(&anthropic_stream()[..4]).ending(End::Abort);
    cut_stream_settles_partial_output(Kind::Anthropic, reply, "Hello", ErrorKind::Transport).await;
}

#[tokio::test]
async fn stream_cut_in_the_middle_vertex() {
    let reply = Reply::sse_data(&gemini_stream()[..1]).ending(End::Abort);
    cut_stream_settles_partial_output(Kind::Vertex, reply, "Hi", ErrorKind::Transport).await;
}

#[tokio::test]
async fn stream_cut_in_the_middle_bedrock() {
    let reply = event_stream(&bedrock_frames()[..3]).ending(End::Abort);
    cut_stream_settles_partial_output(Kind::Bedrock, reply, "Hi there", ErrorKind::Transport).await;
}

#[tokio::test]
async fn a_model_stream_error_in_the_middle_reaches_the_caller_bedrock() {
    let mut frames = bedrock_frames()[..3].to_vec();
    frames.push(aws::exception(
        "modelStreamErrorException",
        "The model stopped unexpectedly.",
    ));
    cut_stream_settles_partial_output(
        Kind::Bedrock,
        event_stream(&frames).split_every(1),
        "Hi there",
        ErrorKind::Provider { status: 424 },
    )
    .await;
}

#[tokio::test]
async fn an_error_event_in_the_middle_of_a_stream_reaches_the_caller() {
    // After output has reached the caller nothing may be retried: the error is passed on
    // and the partial output settled.
    let mut events = anthropic_stream()[..4].to_vec();
    events.push((
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            .to_string(),
    ));
    cut_stream_settles_partial_output(
        Kind::Anthropic,
        Reply::sse_events(&events),
        "Hello",
        ErrorKind::Overloaded,
    )
    .await;

    let mut events = openai_stream("gpt-4o-mini", true)[..3].to_vec();
    events.push(
        json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}})
            .to_string(),
    );
    cut_stream_settles_partial_output(
        Kind::OpenAi,
        Reply::sse_data(&events),
        "Hi there",
        ErrorKind::Provider { status: 500 },
    )
    .await;
}
