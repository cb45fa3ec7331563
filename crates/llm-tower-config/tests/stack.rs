//! The built stack: requests through `service()`, routing and fallback, circuits, per-key
//! limits and budgets, authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;
use llm_tower_config::{BuiltStack, Config, build};
use llm_tower_core::{
    ChatRequest, Error, ErrorKind, LlmRequest, LlmResponse, Message, Money, UsageSource,
};
use serde_json::{Value, json};
use tower::ServiceExt;

fn chat(model: &str) -> LlmRequest {
    LlmRequest::chat(
        ChatRequest::new(model, vec![Message::user("Tell me about towers.")]).max_tokens(20),
    )
}

async fn call(stack: &BuiltStack, req: LlmRequest) -> Result<LlmResponse, Error> {
    stack.service().oneshot(req).await
}

async fn stack_of(v: Value) -> BuiltStack {
    let config = Config::from_str_with_env(&v.to_string(), &|name| {
        (name == "ALICE_KEY").then(|| "alice-secret-gateway-key".to_owned())
    })
    .unwrap();
    build(&config).await.unwrap()
}

fn mock(extra: Value) -> Value {
    let mut p = json!({
        "type": "mock",
        "models": { "m": { "price": { "input": "1.00", "output": "2.00" }, "tokenizer": "o200k_base" } }
    });
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            p.insert(k.clone(), v.clone());
        }
    }
    p
}

#[tokio::test]
async fn default_config_answers_with_usage_and_cost() {
    let stack = build(&Config::embedded_default().unwrap()).await.unwrap();
    assert!(!stack.auth_required());
    let resp = call(&stack, chat("default").with_caller("someone"))
        .await
        .unwrap();
    let usage = resp.usage.unwrap();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(usage.source, UsageSource::Provider);
    let cost = resp.cost.unwrap();
    assert!(cost > Money::ZERO);
    assert_eq!(resp.meta.provider.as_deref(), Some("mock"));
    assert_eq!(resp.meta.attempts, 1);
    // The price of mock/gpt-4o-mini (0.15 / 0.60 per million).
    let expected = Money::from_nanos(
        i64::try_from(usage.prompt_tokens * 150 + usage.completion_tokens * 600).unwrap(),
    );
    assert_eq!(cost, expected);

    let snap = stack.tracker().snapshot();
    assert_eq!(snap.total.requests, 1);
    assert_eq!(snap.total.cost, cost);
    assert_eq!(snap.by_model["mock/gpt-4o-mini"].requests, 1);
    assert_eq!(snap.by_provider["mock"].requests, 1);
    assert_eq!(snap.by_caller["someone"].requests, 1);

    // Bare model names and provider/model work too.
    call(&stack, chat("gpt-4o-mini")).await.unwrap();
    let r = call(&stack, chat("mock/mock-large")).await.unwrap();
    assert_eq!(
        stack.tracker().snapshot().by_model["mock/mock-large"].cost,
        r.cost.unwrap()
    );

    let health = stack.health().await;
    assert_eq!(health.len(), 1);
    assert!(health[0].ok && health[0].name == "mock" && health[0].error.is_none());
}

#[tokio::test]
async fn default_config_streams_and_settles_at_the_end() {
    let stack = build(&Config::embedded_default().unwrap()).await.unwrap();
    let req = LlmRequest::chat(
        ChatRequest::new("default", vec![Message::user("Stream please.")])
            .max_tokens(20)
            .streaming(),
    );
    let resp = call(&stack, req).await.unwrap();
    // The cost layer sits inside the router; its handle reaches the caller.
    let handle = resp
        .stream_cost()
        .expect("stream cost handle through the router");
    let mut stream = resp.into_stream().unwrap();
    let mut usage = None;
    let mut chunk_cost = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if let Some(u) = chunk.usage {
            usage = Some(u);
            chunk_cost = chunk.cost;
        }
    }
    drop(stream);
    let usage = usage.unwrap();
    tokio::task::yield_now().await;
    let snap = stack.tracker().snapshot();
    assert_eq!(snap.total.requests, 1);
    assert_eq!(snap.total.completion_tokens, usage.completion_tokens);
    assert!(snap.total.cost > Money::ZERO);
    assert_eq!(chunk_cost, Some(snap.total.cost));
    assert_eq!(handle.get(), Some(snap.total.cost));
}

#[tokio::test]
async fn describe_and_models_of_the_default_config() {
    let stack = build(&Config::embedded_default().unwrap()).await.unwrap();
    let d = stack.describe();
    assert!(
        d.contains(
            "route \"default\": trace -> count_tokens -> rate_limit[per_caller: sliding_window 60/1m, requests by caller, reject] -> router -> \
             [mock/gpt-4o-mini: circuit[5 failures, 30s] -> track_cost[2 budgets, $0.15/$0.6 cached $0.075 per Mtok] -> retry[3] -> \
             rate_limit[mock_tpm: leaky_bucket 1000000/1m burst 200000, tokens by provider, wait<=5s] -> timeout[30s] -> mock], \
             fallback [mock/mock-large: "
        ),
        "{d}"
    );
    assert!(
        d.contains("budget \"daily\": global, day, $5, block, alerts at 50%/80%/100%"),
        "{d}"
    );
    assert!(!d.contains("gateway"), "{d}");
    let g = stack.describe_gateway();
    assert!(
        g.starts_with("gateway: listen 127.0.0.1:8080, open (no keys), max body "),
        "{g}"
    );
    let models: Vec<(String, String)> = stack
        .models()
        .into_iter()
        .map(|m| (m.id, m.owned_by))
        .collect();
    assert_eq!(
        models,
        [
            ("default".to_owned(), "llm-tower".to_owned()),
            ("mock/gpt-4o-mini".to_owned(), "mock".to_owned()),
            ("mock/mock-large".to_owned(), "mock".to_owned()),
        ]
    );
    assert_eq!(stack.gateway().listen.to_string(), "127.0.0.1:8080");
}

#[tokio::test]
async fn unknown_and_ambiguous_models_are_invalid_requests() {
    let stack = stack_of(json!({
        "providers": { "a": mock(json!({})), "b": mock(json!({})) },
        "rate_limits": [{ "name": "one", "algorithm": "sliding_window", "limit": 1, "window": "1h" }]
    }))
    .await;
    let e = call(&stack, chat("gpt-5x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.message().starts_with("model not found:"), "{e}");
    let e = call(&stack, chat("m")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.message().contains("ambiguous"), "{e}");
    // Refused names did not consume the (global, 1 per hour) limit.
    call(&stack, chat("a/m")).await.unwrap();
    let e = call(&stack, chat("b/m")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
}

fn failing_route(status: u16) -> Value {
    json!({
        "providers": {
            "bad": mock(json!({ "failures": { "rate": 1.0, "kind": "http_error", "status": status } })),
            "good": mock(json!({}))
        },
        "routes": { "r": ["bad/m", "good/m"] },
        "retry": { "max_retries": 1, "base": "10ms", "max": "10ms" },
        "circuit_breaker": { "failure_threshold": 2, "cooldown": "1m" }
    })
}

#[tokio::test(start_paused = true)]
async fn retryable_failure_falls_back_to_the_next_target() {
    let stack = stack_of(failing_route(503)).await;
    let resp = call(&stack, chat("r")).await.unwrap();
    assert_eq!(resp.meta.provider.as_deref(), Some("good"));
    assert!(resp.cost.unwrap() > Money::ZERO);
    let snap = stack.tracker().snapshot();
    // The failed target settled as an error of its provider, with nothing spent.
    assert_eq!(snap.by_provider["bad"].errors, 1);
    assert_eq!(snap.by_provider["bad"].cost, Money::ZERO);
    assert_eq!(snap.by_provider["good"].requests, 1);
    assert_eq!(snap.by_model["good/m"].cost, resp.cost.unwrap());
}

#[tokio::test(start_paused = true)]
async fn non_retryable_failure_does_not_fall_back() {
    let stack = stack_of(failing_route(400)).await;
    let e = call(&stack, chat("r")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider { status: 400 });
    assert_eq!(e.provider(), Some("bad"));
    let snap = stack.tracker().snapshot();
    assert!(!snap.by_provider.contains_key("good"));
}

#[tokio::test(start_paused = true)]
async fn circuit_opens_and_the_route_skips_the_broken_target() {
    let stack = stack_of(failing_route(503)).await;
    for _ in 0..3 {
        let resp = call(&stack, chat("r")).await.unwrap();
        assert_eq!(resp.meta.provider.as_deref(), Some("good"));
    }
    // Two failures opened the circuit: the third request never reached bad's cost layer.
    let snap = stack.tracker().snapshot();
    assert_eq!(snap.by_provider["bad"].errors, 2);
    assert_eq!(snap.by_provider["good"].requests, 3);
    // Asking for the broken target directly fails fast with a retry-after.
    let e = call(&stack, chat("bad/m")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert!(e.message().starts_with("circuit open for bad/m"), "{e}");
    assert!(e.retry_after().is_some());
    // After the cooldown one probe goes through (and fails again here).
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    let e = call(&stack, chat("bad/m")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider { status: 503 });
}

fn keyed_config() -> Value {
    json!({
        "providers": { "mock": mock(json!({})) },
        "gateway": { "keys": [
            { "name": "alice", "key": "${ALICE_KEY}",
              "rate_limits": [{ "name": "rpm", "algorithm": "sliding_window", "limit": 2, "window": "1m", "key": "caller" }],
              "budget": { "period": "day", "limit_usd": "0.0002" } },
            { "name": "bob", "key_sha256": "b67661a75926e1c9a8caac5d7621dcc872caa716b8c3caf085b9f3506b4aeb65",
              "rate_limits": [{ "name": "rpm", "algorithm": "sliding_window", "limit": 2, "window": "1m", "key": "caller" }] }
        ]}
    })
}

#[tokio::test]
async fn per_key_rate_limits_are_isolated() {
    let mut v = keyed_config();
    v["gateway"]["keys"][0]
        .as_object_mut()
        .unwrap()
        .remove("budget");
    let stack = stack_of(v).await;
    for _ in 0..2 {
        call(&stack, chat("m").with_caller("alice")).await.unwrap();
    }
    let e = call(&stack, chat("m").with_caller("alice"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.message().contains("key:alice:rpm"), "{e}");
    // Bob's own limit is untouched, and callers without a key limit are not limited.
    for _ in 0..2 {
        call(&stack, chat("m").with_caller("bob")).await.unwrap();
    }
    for _ in 0..3 {
        call(&stack, chat("m").with_caller("carol")).await.unwrap();
        call(&stack, chat("m")).await.unwrap();
    }
    assert!(
        stack
            .describe()
            .contains("rate_limit[key alice/rpm: sliding_window 2/1m, requests by caller, reject]")
    );
}

#[tokio::test]
async fn per_key_budgets_are_isolated() {
    let mut v = keyed_config();
    v["gateway"]["keys"][0]["rate_limits"][0]["limit"] = json!(100);
    let stack = stack_of(v).await;
    let mut alerts = stack.subscribe_alerts();
    // Each request may cost up to ~20 output tokens x $2/M + prompt x $1/M = ~$0.00006.
    let mut served = 0;
    let refused = loop {
        match call(&stack, chat("m").with_caller("alice")).await {
            Ok(_) => served += 1,
            Err(e) => break e,
        }
        assert!(served < 10, "alice's budget never ran out");
    };
    assert!(served >= 1);
    assert_eq!(refused.kind(), ErrorKind::BudgetExceeded);
    assert!(refused.message().contains("key:alice"), "{refused}");
    // Bob has no budget of his own and is not affected by alice's.
    for _ in 0..2 {
        call(&stack, chat("m").with_caller("bob")).await.unwrap();
    }
    let status = stack.tracker().budget_status(Some("alice")).await.unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].budget, "key:alice");
    assert!(status[0].spent > Money::ZERO && status[0].spent <= status[0].limit);
    // Alice's budget alerted (default thresholds 50 %, 80 %, 100 %), once per threshold.
    let alert = alerts.try_recv().unwrap();
    assert_eq!(alert.budget, "key:alice");
    assert_eq!(alert.caller.as_deref(), Some("alice"));
    assert_eq!(alert.threshold_per_mille, 500);
}

#[test]
fn the_stack_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<BuiltStack>();
    check::<Config>();
}

#[tokio::test]
async fn authenticate_by_sha256_of_the_key() {
    let stack = stack_of(keyed_config()).await;
    assert!(stack.auth_required());
    assert_eq!(
        stack
            .authenticate("alice-secret-gateway-key")
            .map(|k| k.to_string()),
        Some("alice".to_owned())
    );
    assert_eq!(
        stack
            .authenticate("bob-example-key-change-me")
            .map(|k| k.to_string()),
        Some("bob".to_owned())
    );
    assert!(stack.authenticate("alice-secret-gateway-kez").is_none());
    assert!(stack.authenticate("").is_none());
    assert!(
        stack
            .authenticate("b67661a75926e1c9a8caac5d7621dcc872caa716b8c3caf085b9f3506b4aeb65")
            .is_none()
    );
    assert!(!format!("{stack:?}").contains("alice-secret-gateway-key"));
}

#[tokio::test]
async fn provider_scope_limits_count_every_attempt_and_fall_back() {
    let stack = stack_of(json!({
        "providers": { "a": mock(json!({})), "b": mock(json!({})) },
        "routes": { "r": ["a/m", "b/m"] },
        "retry": { "max_retries": 0 },
        "rate_limits": [{ "name": "a_only", "algorithm": "sliding_window", "limit": 1, "window": "1h",
                          "scope": "provider", "key": "provider", "providers": ["a"] }]
    }))
    .await;
    let first = call(&stack, chat("r")).await.unwrap();
    assert_eq!(first.meta.provider.as_deref(), Some("a"));
    // a's quota is spent: the rate-limit refusal is retryable, so the route falls back.
    let second = call(&stack, chat("r")).await.unwrap();
    assert_eq!(second.meta.provider.as_deref(), Some("b"));
}

fn redis_config(on_error: &str) -> Value {
    json!({
        "providers": { "mock": mock(json!({})) },
        "rate_limits": [{ "name": "rpm", "algorithm": "sliding_window", "limit": 10, "window": "1m" }],
        "budgets": [{ "name": "daily", "scope": "global", "period": "day", "limit_usd": "1" }],
        // Nothing listens on port 1: connections are refused at once.
        "store": { "type": "redis", "url": "redis://:pw-secret-123@127.0.0.1:1/", "prefix": "test",
                   "on_error": on_error, "timeout_ms": 500, "reconnect_interval_ms": 60000 }
    })
}

#[tokio::test]
async fn redis_store_fails_closed_when_unreachable() {
    let stack = stack_of(redis_config("fail_closed")).await;
    let d = stack.describe();
    assert!(d.starts_with("store: redis "), "{d}");
    assert!(!d.contains("pw-secret-123"), "{d}");
    let e = call(&stack, chat("m")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store, "{e}");
    assert!(!e.to_string().contains("pw-secret-123"));
}

#[tokio::test]
async fn redis_store_can_fall_back_to_local_limits() {
    let stack = stack_of(redis_config("fail_open_local")).await;
    let resp = call(&stack, chat("m")).await.unwrap();
    assert!(resp.cost.unwrap() > Money::ZERO);
}

/// `REDIS_URL` (default `redis://127.0.0.1:6379/`) as `host:port`, when a server without a
/// password answers `PING` there. Otherwise prints why the test is skipped, or fails when
/// `LLM_TOWER_REQUIRE_REDIS` is set (to anything but empty or `0`).
fn redis_or_skip(test: &str) -> Option<(String, String)> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let addr = url
        .strip_prefix("redis://")
        .and_then(|rest| rest.split('/').next())
        .filter(|a| !a.is_empty() && !a.contains('@'))
        .map(str::to_owned);
    let answer = addr.as_deref().and_then(|a| resp(a, &["PING"]).ok());
    match (addr, answer) {
        (Some(addr), Some(pong)) if pong == "+PONG" => Some((url, addr)),
        _ => {
            let required =
                std::env::var("LLM_TOWER_REQUIRE_REDIS").is_ok_and(|v| !v.is_empty() && v != "0");
            let why = "no Redis without a password answers at REDIS_URL (redis://host:port/)";
            assert!(
                !required,
                "{test}: Redis is required (LLM_TOWER_REQUIRE_REDIS is set) but {why}"
            );
            eprintln!("skipping {test}: {why}");
            None
        }
    }
}

/// Sends one command over RESP and returns the first line of the reply.
fn resp(addr: &str, args: &[&str]) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    (&stream).write_all(cmd.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

fn pttl(addr: &str, key: &str) -> i64 {
    let line = resp(addr, &["PTTL", key]).unwrap();
    line.strip_prefix(':').unwrap().parse().unwrap()
}

fn unique_prefix(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("llmt-test:config-{tag}:{}:{nanos}", std::process::id())
}

/// The `spent` key of the global daily budget "daily" now (the id of today, UTC).
fn daily_spent_key(prefix: &str) -> String {
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    format!("{prefix}:v1:{{b:daily::day:{day}}}:spent")
}

#[tokio::test]
async fn a_built_redis_store_lets_budget_counters_expire() {
    let Some((url, addr)) = redis_or_skip("budget counter retention") else {
        return;
    };
    let ms_per_day = 86_400_000;
    for (extra, expected_days) in [
        // Default: the period (a day) plus one day.
        (json!({}), 2),
        (
            json!({ "budget_retention": "40d", "reservation_ttl": "5m" }),
            40,
        ),
    ] {
        let prefix = unique_prefix("retention");
        let mut store = json!({ "type": "redis", "url": url, "prefix": prefix });
        for (k, x) in extra.as_object().unwrap() {
            store[k] = x.clone();
        }
        let stack = stack_of(json!({
            "providers": { "mock": mock(json!({})) },
            "budgets": [{ "name": "daily", "scope": "global", "period": "day", "limit_usd": "1" }],
            "store": store
        }))
        .await;
        let key = daily_spent_key(&prefix);
        let resp = call(&stack, chat("m")).await.unwrap();
        assert!(resp.cost.unwrap() > Money::ZERO);
        let ttl = pttl(&addr, &key);
        assert!(
            ttl > expected_days * ms_per_day - 60_000 && ttl <= expected_days * ms_per_day,
            "{key}: pttl {ttl}, expected about {expected_days} days"
        );
        if expected_days == 40 {
            // The configured reservation TTL holds a reservation for 5 minutes (+ 1 minute
            // of slack on the holds hash).
            let held = stack.tracker().reserve(&chat("mock/m")).await.unwrap();
            let holds = key.replace(":spent", ":holds");
            let ttl = pttl(&addr, &holds);
            assert!(ttl > 350_000 && ttl <= 360_000, "{holds}: pttl {ttl}");
            held.settle(None, false).await;
        }
        // Test keys do not outlive the test by days.
        assert_eq!(resp_del(&addr, &key), ":1");
    }
}

fn resp_del(addr: &str, key: &str) -> String {
    resp(addr, &["DEL", key]).unwrap()
}

#[test]
fn build_blocking_needs_no_runtime() {
    // A plain test thread: no tokio runtime anywhere.
    assert!(tokio::runtime::Handle::try_current().is_err());
    let config: Config = json!({ "providers": { "mock": mock(json!({})) } })
        .to_string()
        .parse()
        .unwrap();
    let stack = llm_tower_config::build_blocking(&config).unwrap();
    assert!(stack.describe().contains("model \"mock/m\""));

    // A Redis store connects on first use, so building with one needs no runtime either.
    {
        let config: Config = json!({
            "providers": { "mock": mock(json!({})) },
            "store": { "type": "redis", "url": "redis://127.0.0.1:1/" }
        })
        .to_string()
        .parse()
        .unwrap();
        let stack = llm_tower_config::build_blocking(&config).unwrap();
        assert!(
            stack.describe().starts_with("store: redis"),
            "{}",
            stack.describe()
        );
    }
}
