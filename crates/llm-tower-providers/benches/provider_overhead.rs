//! Per-request overhead of the OpenAI provider (serialize, send over loopback, parse)
//! against a local server returning a fixed body, for ~1 KB and ~20 KB responses,
//! non-streamed and streamed (streams report time per chunk).
//!
//! The numbers include the local hyper server's own work on the same thread, so they are
//! an upper bound on the provider's overhead.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::{Reply, serve};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use llm_tower_core::{ChatRequest, LlmRequest, Message};
use llm_tower_providers::http::HttpClient;
use llm_tower_providers::openai::{OpenAi, OpenAiConfig};
use serde_json::json;
use tower::ServiceExt;

fn completion_of(bytes: usize) -> Vec<u8> {
    let mut body = json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 200, "total_tokens": 220,
                  "prompt_tokens_details": {"cached_tokens": 0}}
    });
    let base = serde_json::to_vec(&body).unwrap().len();
    body["choices"][0]["message"]["content"] =
        json!("lorem ipsum ".repeat(bytes.saturating_sub(base) / 12 + 1));
    serde_json::to_vec(&body).unwrap()
}

fn stream_of(bytes: usize) -> (Vec<String>, u64) {
    let chunk = |content: &str| {
        json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
               "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1",
               "choices": [{"index": 0, "delta": {"content": content}, "logprobs": null, "finish_reason": null}],
               "usage": null})
        .to_string()
    };
    let one = format!("data: {}\n\n", chunk(" word")).len();
    let n = (bytes / one).max(1);
    let mut events: Vec<String> = (0..n).map(|_| chunk(" word")).collect();
    events.push(
        json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
               "model": "gpt-4o-mini-2024-07-18", "choices": [],
               "usage": {"prompt_tokens": 20, "completion_tokens": n, "total_tokens": n + 20}})
        .to_string(),
    );
    events.push("[DONE]".to_owned());
    (events, n as u64 + 1)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut group = c.benchmark_group("openai_chat");
    for (label, size) in [("1KB", 1024usize), ("20KB", 20 * 1024)] {
        let body = completion_of(size);
        let len = body.len();
        let server = rt.block_on(serve(move |_| {
            Reply::bytes(200, "application/json", body.clone())
        }));
        let provider = OpenAi::new(
            OpenAiConfig::new("sk-bench").base_url(format!("{}/v1", server.url())),
            HttpClient::new().unwrap(),
        )
        .unwrap();
        let req = LlmRequest::chat(
            ChatRequest::new("gpt-4o-mini", vec![Message::user("Write a paragraph.")])
                .max_tokens(300),
        );
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("non_streaming", label), |b| {
            b.to_async(&rt).iter(|| {
                let p = provider.clone();
                let r = req.clone();
                async move {
                    let resp = p.oneshot(r).await.unwrap();
                    black_box(resp.usage.unwrap().total_tokens)
                }
            });
        });
    }
    for (label, size) in [("1KB", 1024usize), ("20KB", 20 * 1024)] {
        let (events, chunks) = stream_of(size);
        let server = rt.block_on(serve(move |_| Reply::sse_data(&events)));
        let provider = OpenAi::new(
            OpenAiConfig::new("sk-bench").base_url(format!("{}/v1", server.url())),
            HttpClient::new().unwrap(),
        )
        .unwrap();
        let req = LlmRequest::chat(
            ChatRequest::new("gpt-4o-mini", vec![Message::user("Write a paragraph.")]).streaming(),
        );
        // Per chunk: total time / chunks received.
        group.throughput(Throughput::Elements(chunks));
        group.bench_function(BenchmarkId::new("streaming_per_chunk", label), |b| {
            b.to_async(&rt).iter(|| {
                let p = provider.clone();
                let r = req.clone();
                async move {
                    let resp = p.oneshot(r).await.unwrap();
                    let mut stream = resp.into_stream().unwrap();
                    let mut n = 0u64;
                    while let Some(c) = stream.next().await {
                        black_box(c.unwrap());
                        n += 1;
                    }
                    assert_eq!(n, chunks);
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
