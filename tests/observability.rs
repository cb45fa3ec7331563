//! The layers' own spans, events and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llm_tower::layers::cost::BudgetAlert;
use llm_tower::prelude::*;
use llm_tower::providers::mock::{Failure, FailurePlan};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{ServiceBuilder, ServiceExt};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn spans_events_and_metrics_use_gen_ai_names() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();

    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let alerts = Arc::new(Mutex::new(0));
            let a2 = alerts.clone();
            let tracker = CostTracker::builder()
                .prices(PriceTable::new().with("gpt-4o", ModelPrice::usd("2.50", "10.00").unwrap()))
                .budget(
                    Budget::new(
                        "obs",
                        BudgetScope::Global,
                        Period::Total,
                        Money::parse_usd("0.0006").unwrap(),
                    )
                    .unwrap(),
                )
                .alerts(move |_: &BudgetAlert| *a2.lock().unwrap() += 1)
                .build()
                .unwrap();
            let svc = ServiceBuilder::new()
                .llm_trace()
                .count_tokens()
                .track_cost(tracker)
                .llm_rate_limit(
                    RateLimitLayer::new(
                        Algorithm::sliding_window(2, Duration::from_secs(60)).unwrap(),
                    )
                    .name("obs_limit"),
                )
                .llm_retry(
                    RetryLayer::new()
                        .seed(1)
                        .backoff(Duration::from_millis(5), Duration::from_millis(10)),
                )
                .service(
                    MockProvider::builder()
                        .failures(FailurePlan::Once(vec![Some(Failure::ServerError {
                            status: 503,
                        })]))
                        .build(),
                );
            let req = || {
                LlmRequest::chat(
                    ChatRequest::new("gpt-4o", vec![Message::user("hi")]).max_tokens(16),
                )
                .with_caller("obs-user")
            };
            svc.clone().oneshot(req()).await.unwrap();
            svc.clone().oneshot(req()).await.unwrap();
            let e = svc.clone().oneshot(req()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RateLimited);
            assert!(*alerts.lock().unwrap() >= 1);
        });
    });

    let logs = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for needle in [
        "gen_ai.client",
        "gen_ai.request.model=gpt-4o",
        "gen_ai.operation.name=\"chat\"",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "llm_tower.cost_usd",
        "retry: retrying after a retryable error",
        "cause=\"provider_5xx\"",
        "rate limit: request refused",
        "budget: alert threshold crossed",
        "llm request finished",
    ] {
        assert!(logs.contains(needle), "missing {needle:?} in logs:\n{logs}");
    }
    // The provider is recorded once per span (not "" first, then the provider).
    let finished: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("llm request finished"))
        .collect();
    assert!(!finished.is_empty());
    for line in &finished {
        assert_eq!(line.matches("gen_ai.provider.name").count(), 1, "{line}");
        assert!(line.contains("gen_ai.provider.name=\"mock\""), "{line}");
    }
    // The alert went to the sink the test gave: the library logs it at DEBUG, not WARN.
    let alert = logs
        .lines()
        .find(|l| l.contains("budget: alert threshold crossed"))
        .unwrap();
    assert!(
        alert.contains("DEBUG") && !alert.contains("WARN"),
        "{alert}"
    );

    let metrics: Vec<(String, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
        .collect();
    let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
    for needle in [
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "llm_tower_requests_total",
        "llm_tower_retries_total",
        "llm_tower_rate_limited_total",
        "llm_tower_budget_alerts_total",
        "llm_tower_cost_nano_usd_total",
    ] {
        assert!(
            names.contains(&needle),
            "missing metric {needle}: {names:?}"
        );
    }
}

#[test]
fn refusals_are_not_logged_at_warn() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let svc = ServiceBuilder::new()
                .llm_trace()
                .llm_rate_limit(
                    RateLimitLayer::new(
                        Algorithm::sliding_window(1, Duration::from_secs(60)).unwrap(),
                    )
                    .name("quiet"),
                )
                .service(MockProvider::new());
            let req = || LlmRequest::chat(ChatRequest::new("gpt-4o", vec![Message::user("hi")]));
            svc.clone().oneshot(req()).await.unwrap();
            for _ in 0..5 {
                let e = svc.clone().oneshot(req()).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::RateLimited);
                assert!(
                    e.message().contains("(global: shared by every caller)"),
                    "{e}"
                );
            }
        });
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("WARN"), "{text}");
    assert!(!text.contains("refused"), "{text}");
    assert!(text.contains("llm request finished"), "{text}");
}
