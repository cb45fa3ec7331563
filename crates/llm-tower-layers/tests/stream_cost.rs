//! The cost of a streamed response: carried by the usage chunk and by the response's
//! `StreamCost` once the stream ends, fails or is dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use llm_tower_core::{
    ChatChunk, ChatRequest, ChatStream, ChunkChoice, Delta, Error, ErrorKind, LlmRequest,
    LlmResponse, Message, Money, ResponseBody, Usage, UsageSource,
};
use llm_tower_layers::builder::ServiceBuilderExt;
use llm_tower_layers::cost::{CostTracker, ModelPrice, PriceTable};
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// $2.50 in, $10 out per million tokens: 2,500 and 10,000 nano-USD a token.
fn tracker() -> CostTracker {
    CostTracker::builder()
        .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
        .build()
        .unwrap()
}

fn cost(prompt: i64, completion: i64) -> Money {
    Money::from_nanos(prompt * 2_500 + completion * 10_000)
}

fn text(t: &str) -> ChatChunk {
    ChatChunk {
        extra: Default::default(),
        id: "chatcmpl-1".into(),
        model: "gpt-4o".into(),
        created: 1,
        choices: vec![ChunkChoice {
            logprobs: None,
            index: 0,
            delta: Delta {
                content: Some(t.into()),
                ..Delta::default()
            },
            finish_reason: None,
        }],
        usage: None,
        cost: None,
        native: None,
    }
}

fn usage_chunk(prompt: u64, completion: u64) -> ChatChunk {
    ChatChunk {
        choices: Vec::new(),
        usage: Some(Usage::new(prompt, completion, UsageSource::Provider)),
        ..text("")
    }
}

/// A provider that streams `items` (copied for every call).
fn provider(
    items: Vec<Result<ChatChunk, Error>>,
) -> BoxCloneSyncService<LlmRequest, LlmResponse, Error> {
    BoxCloneSyncService::new(service_fn(move |_req: LlmRequest| {
        let stream: ChatStream = Box::pin(futures_util::stream::iter(clone_items(&items)));
        async move { Ok::<_, Error>(LlmResponse::new(ResponseBody::Stream(stream))) }
    }))
}

fn request(model: &str) -> LlmRequest {
    LlmRequest::chat(ChatRequest::new(model, vec![Message::user("hello")]).max_tokens(50))
}

fn clone_items(items: &[Result<ChatChunk, Error>]) -> Vec<Result<ChatChunk, Error>> {
    items
        .iter()
        .map(|i| match i {
            Ok(c) => Ok(c.clone()),
            Err(e) => Err(Error::new(e.kind(), e.message().to_owned())),
        })
        .collect()
}

#[tokio::test]
async fn the_provider_usage_chunk_carries_the_cost_and_the_handle_settles_at_the_end() {
    let t = tracker();
    let stack = ServiceBuilder::new()
        .count_tokens()
        .track_cost(t.clone())
        .service(provider(vec![
            Ok(text("Hel")),
            Ok(text("lo")),
            Ok(usage_chunk(9, 2)),
        ]));
    let resp = stack.oneshot(request("gpt-4o")).await.unwrap();
    assert_eq!(resp.cost, None, "a stream is not priced before it runs");
    let handle = resp.stream_cost().expect("the cost layer sets the handle");
    assert!(!handle.is_settled());
    let chunks: Vec<ChatChunk> = resp
        .into_stream()
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        chunks.len(),
        3,
        "nothing appended after the provider's usage"
    );
    assert_eq!(chunks[0].cost, None);
    assert_eq!(chunks[2].cost, Some(cost(9, 2)));
    assert_eq!(handle.get(), Some(cost(9, 2)));
    assert_eq!(t.snapshot().total.cost, cost(9, 2));
}

#[tokio::test]
async fn the_appended_usage_chunk_carries_the_cost_of_the_counted_output() {
    // A local server that reports no usage: count_tokens appends the usage chunk.
    let t = tracker();
    let stack = ServiceBuilder::new()
        .count_tokens()
        .track_cost(t.clone())
        .service(provider(vec![Ok(text("Hello")), Ok(text(" world"))]));
    let resp = stack.oneshot(request("gpt-4o")).await.unwrap();
    let handle = resp.stream_cost().unwrap();
    let chunks: Vec<ChatChunk> = resp
        .into_stream()
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let last = chunks.last().unwrap();
    let usage = last.usage.expect("appended by count_tokens");
    let expected = cost(
        i64::try_from(usage.prompt_tokens).unwrap(),
        i64::try_from(usage.completion_tokens).unwrap(),
    );
    assert!(usage.completion_tokens > 0);
    assert_eq!(last.cost, Some(expected));
    assert_eq!(handle.get(), Some(expected));
    assert_eq!(t.snapshot().total.cost, expected);
}

#[tokio::test]
async fn a_dropped_stream_settles_the_handle_with_the_output_counted_so_far() {
    for count_tokens in [true, false] {
        let t = tracker();
        let inner = provider(vec![
            Ok(text("Hello")),
            Ok(text(" world, and a long tail")),
            Ok(usage_chunk(9, 40)),
        ]);
        let resp = if count_tokens {
            ServiceBuilder::new()
                .count_tokens()
                .track_cost(t.clone())
                .service(inner)
                .oneshot(request("gpt-4o"))
                .await
        } else {
            ServiceBuilder::new()
                .track_cost(t.clone())
                .service(inner)
                .oneshot(request("gpt-4o"))
                .await
        }
        .unwrap();
        let handle = resp.stream_cost().unwrap();
        let mut stream = resp.into_stream().unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.text(), "Hello");
        assert!(!handle.is_settled());
        drop(stream);
        let settled = handle.get().expect("settled on drop");
        // The prompt estimate plus the one chunk read ("Hello" is one token).
        let snap = t.snapshot();
        assert_eq!(
            snap.total.completion_tokens, 1,
            "count_tokens: {count_tokens}"
        );
        assert_eq!(
            settled,
            cost(i64::try_from(snap.total.prompt_tokens).unwrap(), 1)
        );
        assert_eq!(snap.total.cost, settled);
    }
}

#[tokio::test]
async fn a_stream_dropped_after_its_usage_chunk_settles_with_the_provider_usage() {
    let t = tracker();
    let stack = ServiceBuilder::new()
        .count_tokens()
        .track_cost(t.clone())
        .service(provider(vec![
            Ok(text("Hello")),
            Ok(usage_chunk(9, 7)),
            Ok(text("a straggler the caller never reads")),
        ]));
    let resp = stack.oneshot(request("gpt-4o")).await.unwrap();
    let handle = resp.stream_cost().unwrap();
    let mut stream = resp.into_stream().unwrap();
    stream.next().await.unwrap().unwrap();
    let with_usage = stream.next().await.unwrap().unwrap();
    assert_eq!(with_usage.cost, Some(cost(9, 7)));
    drop(stream);
    assert_eq!(handle.get(), Some(cost(9, 7)));
    assert_eq!(t.snapshot().total.cost, cost(9, 7));
}

#[tokio::test]
async fn a_failed_stream_settles_the_handle() {
    let t = tracker();
    let items = vec![
        Ok(text("Hello")),
        Err(Error::new(
            ErrorKind::Provider { status: 502 },
            "upstream cut",
        )),
    ];
    let stack = ServiceBuilder::new()
        .count_tokens()
        .track_cost(t.clone())
        .service(provider(items));
    let resp = stack.oneshot(request("gpt-4o")).await.unwrap();
    let handle = resp.stream_cost().unwrap();
    let results: Vec<_> = resp.into_stream().unwrap().collect().await;
    assert!(results.last().unwrap().is_err());
    let snap = t.snapshot();
    assert_eq!(snap.total.errors, 1);
    assert_eq!(handle.get(), Some(snap.total.cost));
    assert!(snap.total.cost > Money::ZERO);
}

#[tokio::test]
async fn an_unpriced_model_settles_without_a_cost() {
    let t = tracker();
    let stack = ServiceBuilder::new()
        .count_tokens()
        .track_cost(t.clone())
        .service(provider(vec![Ok(text("Hello")), Ok(usage_chunk(9, 1))]));
    let resp = stack.oneshot(request("llama-3")).await.unwrap();
    let handle = resp.stream_cost().unwrap();
    let chunks: Vec<ChatChunk> = resp
        .into_stream()
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(chunks.last().unwrap().cost, None);
    assert!(handle.is_settled());
    assert_eq!(handle.get(), None);
}

#[tokio::test]
async fn complete_responses_have_no_stream_cost() {
    let t = tracker();
    let stack = ServiceBuilder::new()
        .count_tokens()
        .track_cost(t)
        .service(service_fn(|_req: LlmRequest| async {
            let chat = llm_tower_core::ChatResponse {
                extra: Default::default(),
                service_tier: None,
                id: "x".into(),
                model: "gpt-4o".into(),
                created: 0,
                choices: vec![llm_tower_core::ChatChoice {
                    extra: Default::default(),
                    logprobs: None,
                    index: 0,
                    message: Message::assistant("hi"),
                    finish_reason: Some("stop".into()),
                }],
                system_fingerprint: None,
                native: None,
            };
            Ok::<_, Error>(LlmResponse::new(ResponseBody::Chat(chat)))
        }));
    let resp = stack.oneshot(request("gpt-4o")).await.unwrap();
    assert!(resp.cost.is_some());
    assert!(resp.stream_cost().is_none());
}
