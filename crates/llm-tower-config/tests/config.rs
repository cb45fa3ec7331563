//! Parsing, interpolation, validation, round trip, schema, and the shipped config files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use llm_tower_config::{Config, ConfigError, DEFAULT_CONFIG_JSON, LogFormat, build};
use serde_json::{Value, json};

const SECRET: &str = "sk-test-very-secret-value";

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn base_env() -> impl Fn(&str) -> Option<String> {
    env(&[("OPENAI_API_KEY", SECRET)])
}

/// A valid config to break in one place per test.
fn base() -> Value {
    json!({
        "providers": {
            "mock": {
                "type": "mock",
                "models": {
                    "gpt-4o-mini": { "price": { "input": "0.15", "output": "0.60" } },
                    "mock-large": { "price": { "input": "2", "output": "8" }, "tokenizer": "heuristic" }
                }
            },
            "openai": {
                "type": "openai",
                "api_key": "${OPENAI_API_KEY}",
                "models": { "gpt-4o": { "price": { "input": "2.50", "cached_input": "1.25", "output": "10.00" } } }
            }
        },
        "routes": { "fast": ["mock/gpt-4o-mini", "openai/gpt-4o"] },
        "rate_limits": [
            { "name": "rpm", "algorithm": "sliding_window", "limit": 60, "window": "1m", "key": "caller" },
            { "name": "tpm", "algorithm": "sliding_window", "limit": 100000, "window": "1m", "unit": "tokens" },
            { "name": "bucket", "algorithm": "leaky_bucket", "rate": 10, "per": "1s", "burst": 5,
              "scope": "provider", "key": "provider", "mode": "wait", "max_wait": "2s" }
        ],
        "budgets": [
            { "name": "daily", "scope": "global", "period": "day", "limit_usd": "5", "alerts": [0.5, 1] }
        ]
    })
}

fn load(v: &Value) -> Result<Config, ConfigError> {
    Config::from_str_with_env(&v.to_string(), &base_env())
}

fn problems(v: &Value) -> Vec<String> {
    load(v)
        .expect_err("config should be refused")
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_problem(v: &Value, expected: &str) {
    let all = problems(v);
    assert!(
        all.iter().any(|p| p == expected),
        "expected {expected:?} among {all:#?}"
    );
}

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(name)
}

#[test]
fn the_base_config_is_valid() {
    let c = load(&base()).unwrap();
    assert_eq!(c.gateway().listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.gateway().max_body_bytes, 1024 * 1024);
}

// ---- parse errors ---------------------------------------------------------------------

#[test]
fn unknown_field_is_reported_with_its_path() {
    let mut v = base();
    v["providers"]["openai"]["models"]["gpt-4o"]["prize"] = json!({});
    let e = load(&v).unwrap_err();
    assert_eq!(e.problems().len(), 1);
    let p = &e.problems()[0];
    assert_eq!(p.path, "providers.openai.models.gpt-4o.prize");
    assert!(p.message.starts_with("unknown field `prize`"), "{p}");
}

#[test]
fn unknown_top_level_field_is_an_error() {
    let mut v = base();
    v["rate_limit"] = json!([]);
    let e = load(&v).unwrap_err();
    assert_eq!(e.problems()[0].path, "rate_limit");
}

#[test]
fn wrong_type_is_reported_with_its_path_without_echoing_strings() {
    let mut v = base();
    v["rate_limits"][1]["limit"] = json!(SECRET);
    let e = load(&v).unwrap_err();
    let p = &e.problems()[0];
    assert_eq!(p.path, "rate_limits[1].limit");
    assert!(
        p.message.starts_with("invalid type: string, expected u64"),
        "{p}"
    );
    assert!(!e.to_string().contains(SECRET));
}

#[test]
fn unknown_enum_value_and_syntax_errors() {
    let mut v = base();
    v["providers"]["mock"]["type"] = json!("mocky");
    let e = load(&v).unwrap_err();
    assert_eq!(e.problems()[0].path, "providers.mock.type");
    assert!(e.problems()[0].message.contains("unknown variant `mocky`"));

    let e = Config::from_str_with_env("{ \"providers\": ", &base_env()).unwrap_err();
    assert!(e.problems()[0].message.contains("line 1"), "{e}");
    let e = Config::from_str_with_env("{} trailing", &base_env()).unwrap_err();
    assert!(
        e.problems()[0].message.contains("trailing characters"),
        "{e}"
    );
}

// ---- validation: each rule, exact paths ------------------------------------------------

#[test]
fn negative_price() {
    let mut v = base();
    v["providers"]["openai"]["models"]["gpt-4o"]["price"]["input"] = json!("-1");
    assert_problem(
        &v,
        "providers.openai.models.gpt-4o.price.input: must be >= 0",
    );
}

#[test]
fn price_that_is_not_a_decimal() {
    let mut v = base();
    v["providers"]["openai"]["models"]["gpt-4o"]["price"]["output"] = json!("1e5");
    let all = problems(&v);
    assert!(
        all.iter()
            .any(|p| p
                .starts_with("providers.openai.models.gpt-4o.price.output: invalid USD amount")),
        "{all:#?}"
    );
}

#[test]
fn budgeted_model_without_a_price() {
    let mut v = base();
    v["providers"]["mock"]["models"]["free-lunch"] = json!({});
    assert_problem(&v, "budgets[0]: model \"mock/free-lunch\" has no price");
}

#[test]
fn model_budget_needs_a_price_only_for_its_model() {
    let mut v = base();
    v["providers"]["mock"]["models"]["free-lunch"] = json!({});
    v["budgets"] = json!([
        { "name": "m", "scope": "model:gpt-4o", "period": "month", "limit_usd": "10" },
        { "name": "f", "scope": "model:mock/free-lunch", "period": "month", "limit_usd": "10" }
    ]);
    assert_eq!(
        problems(&v),
        vec!["budgets[1]: model \"mock/free-lunch\" has no price"]
    );
}

#[test]
fn route_naming_an_unknown_model_or_provider() {
    let mut v = base();
    v["routes"]["fast"] = json!(["mock/gpt-4o-mini", "openai/gpt-5x", "nobody/gpt-4o"]);
    assert_problem(&v, "routes.fast[1]: unknown model \"openai/gpt-5x\"");
    assert_problem(&v, "routes.fast[2]: unknown model \"nobody/gpt-4o\"");
}

#[test]
fn route_rules() {
    let mut v = base();
    v["routes"] = json!({ "a/b": ["mock/gpt-4o-mini"], "empty": [], "dup": ["gpt-4o-mini", "mock/gpt-4o-mini"] });
    assert_problem(
        &v,
        "routes.a/b: route names must not contain '/' (that is how provider/model is written)",
    );
    assert_problem(
        &v,
        "routes.empty: a route needs at least one provider/model",
    );
    assert_problem(
        &v,
        "routes.dup[1]: \"mock/gpt-4o-mini\" is already in this route",
    );
}

#[test]
fn route_objects_are_validated_with_their_paths() {
    let mut v = base();
    v["routes"]["pool"] = json!({
        "targets": ["mock/gpt-4o-mini", {"model": "openai/gpt-4o", "weight": 0}, "mock/nope"],
        "fallback": ["mock/gpt-4o-mini"],
        "affinity_tokens": 10,
        "hedge": {"after": "p120", "max_extra": 5}
    });
    assert_problem(&v, "routes.pool.targets[1].weight: must be >= 1");
    assert_problem(&v, "routes.pool.targets[2]: unknown model \"mock/nope\"");
    assert_problem(
        &v,
        "routes.pool.fallback[0]: \"mock/gpt-4o-mini\" is already in this route",
    );
    assert_problem(
        &v,
        "routes.pool.affinity_tokens: only applies with \"affinity\": \"prompt_prefix\"",
    );
    assert_problem(
        &v,
        "routes.pool.hedge.after: a percentile is written p1 to p99.9, e.g. \"p90\"",
    );
    assert_problem(&v, "routes.pool.hedge.max_extra: must be 1, 2 or 3");
    v["routes"]["pool"] =
        json!({"targets": [], "balance": "weighted", "affinity": "prompt_prefix"});
    assert_problem(
        &v,
        "routes.pool.targets: a route object needs at least one target",
    );
    assert_problem(
        &v,
        "routes.pool.affinity: prompt_prefix affinity needs \"balance\": \"p2c\" (it falls back on load)",
    );
    v["routes"]["pool"] = json!({"targets": ["mock/gpt-4o-mini"], "balanse": "p2c"});
    let all = problems(&v);
    assert!(
        all.iter()
            .any(|p| p.starts_with("routes.pool") && p.contains("unknown field `balanse`")),
        "{all:#?}"
    );
    v["routes"]["pool"] = json!(42);
    let all = problems(&v);
    assert!(
        all.iter()
            .any(|p| p.contains("a list of provider/model names or a route object")),
        "{all:#?}"
    );
    // A valid one, both target forms, a duration hedge.
    v["routes"]["pool"] = json!({
        "balance": "p2c", "affinity": "prompt_prefix",
        "targets": ["mock/gpt-4o-mini", {"model": "mock/mock-large", "weight": 3}],
        "fallback": ["openai/gpt-4o"], "hedge": {"after": "800ms"}, "cache": false
    });
    load(&v).unwrap();
}

#[test]
fn ambiguous_bare_model_in_a_route() {
    let mut v = base();
    v["providers"]["mock"]["models"]["gpt-4o"] =
        json!({ "price": { "input": "1", "output": "1" } });
    v["routes"]["fast"] = json!(["gpt-4o"]);
    assert_problem(
        &v,
        "routes.fast[0]: model \"gpt-4o\" is served by several providers: write one of mock/gpt-4o, openai/gpt-4o",
    );
}

#[test]
fn burst_of_zero() {
    let mut v = base();
    v["rate_limits"][2]["burst"] = json!(0);
    assert_problem(&v, "rate_limits[2].burst: must be > 0");
}

#[test]
fn zero_limits_and_windows() {
    let mut v = base();
    v["rate_limits"][0]["limit"] = json!(0);
    v["rate_limits"][1]["window"] = json!("0s");
    v["rate_limits"][2]["rate"] = json!(0);
    v["rate_limits"][2]["per"] = json!("0ms");
    assert_problem(&v, "rate_limits[0].limit: must be > 0");
    assert_problem(&v, "rate_limits[1].window: must be > 0");
    assert_problem(&v, "rate_limits[2].rate: must be > 0");
    assert_problem(&v, "rate_limits[2].per: must be > 0");
}

#[test]
fn rate_limit_shape_rules() {
    let mut v = base();
    v["rate_limits"] = json!([
        { "name": "a", "algorithm": "sliding_window", "limit": 5 },
        { "name": "a", "algorithm": "leaky_bucket", "rate": 5, "per": "1s", "window": "1m" },
        { "name": "c", "algorithm": "sliding_window", "limit": 5, "window": "5 minutes" },
        { "name": "d", "algorithm": "sliding_window", "limit": 5, "window": "1m", "key": "provider" },
        { "name": "e", "algorithm": "sliding_window", "limit": 5, "window": "1m", "max_wait": "1s",
          "providers": ["openai"] },
        { "name": "f", "algorithm": "sliding_window", "limit": 5, "window": "1m", "scope": "provider",
          "providers": ["nobody"] }
    ]);
    assert_problem(&v, "rate_limits[0].window: required for sliding_window");
    assert_problem(&v, "rate_limits[1].name: duplicate rate limit name \"a\"");
    assert_problem(&v, "rate_limits[1].window: not used by leaky_bucket");
    assert_problem(
        &v,
        "rate_limits[2].window: missing unit after 5 (write e.g. \"5s\" or \"5ms\")",
    );
    assert_problem(
        &v,
        "rate_limits[3].key: the provider is chosen by the router, inside caller-scope limits: use scope \"provider\"",
    );
    assert_problem(&v, "rate_limits[4].max_wait: only for mode wait");
    assert_problem(&v, "rate_limits[4].providers: only for scope provider");
    assert_problem(
        &v,
        "rate_limits[5].providers[0]: unknown provider \"nobody\"",
    );
}

#[test]
fn duplicate_gateway_key() {
    let mut v = base();
    let hash = "b67661a75926e1c9a8caac5d7621dcc872caa716b8c3caf085b9f3506b4aeb65";
    v["gateway"] = json!({ "keys": [
        { "name": "alice", "key_sha256": hash },
        { "name": "bob", "key_sha256": hash.to_uppercase() },
        { "name": "alice", "key_sha256": "abc" }
    ]});
    assert_problem(
        &v,
        "gateway.keys[1].key_sha256: duplicate key (the same key as gateway.keys[0])",
    );
    assert_problem(
        &v,
        "gateway.keys[2].name: duplicate key name \"alice\" (also gateway.keys[0])",
    );
    assert_problem(
        &v,
        "gateway.keys[2].key_sha256: must be 64 hex digits (the SHA-256 of the key)",
    );
}

#[test]
fn plain_gateway_keys_only_from_the_environment() {
    let mut v = base();
    v["gateway"] = json!({ "keys": [
        { "name": "alice", "key": "literal-key-in-the-file" },
        { "name": "bob" },
        { "name": "carol", "key": "${CAROL_KEY}",
          "key_sha256": "b67661a75926e1c9a8caac5d7621dcc872caa716b8c3caf085b9f3506b4aeb65" }
    ]});
    let e = load(&v).unwrap_err();
    let text = e.to_string();
    assert!(
        e.at("gateway.keys[0].key").is_some_and(|p| p
            .message
            .starts_with("a plain key must come from the environment")),
        "{text}"
    );
    assert!(!text.contains("literal-key-in-the-file"));
    assert!(e.at("gateway.keys[1]").is_some(), "{text}");
    assert!(
        e.at("gateway.keys[2]")
            .is_some_and(|p| p.message.contains("not both")),
        "{text}"
    );
}

#[test]
fn thresholds_outside_zero_one() {
    let mut v = base();
    v["budgets"][0]["alerts"] = json!([0, 0.5, 1.5, -0.1, 1]);
    let all = problems(&v);
    assert_eq!(
        all,
        vec![
            "budgets[0].alerts[0]: must be in (0, 1]",
            "budgets[0].alerts[2]: must be in (0, 1]",
            "budgets[0].alerts[3]: must be in (0, 1]",
        ]
    );
}

#[test]
fn budget_rules() {
    let mut v = base();
    v["budgets"] = json!([
        { "name": "a", "scope": "tenant:x", "period": "day", "limit_usd": "0" },
        { "name": "a", "scope": "model:gpt-5x", "period": "day", "limit_usd": "1" },
        { "name": "c", "scope": "provider:nobody", "period": "day", "limit_usd": "abc" },
        { "name": "d", "scope": "model:fast", "period": "day", "limit_usd": "1" }
    ]);
    assert_problem(
        &v,
        "budgets[0].scope: expected global, each_caller, caller:<name>, model:<provider/model> or provider:<name>",
    );
    assert_problem(&v, "budgets[0].limit_usd: must be > 0");
    assert_problem(
        &v,
        "budgets[1].name: duplicate budget name \"a\" (also budgets[0])",
    );
    assert_problem(&v, "budgets[1].scope: unknown model \"gpt-5x\"");
    assert_problem(&v, "budgets[2].scope: unknown provider \"nobody\"");
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("budgets[2].limit_usd: invalid USD amount"))
    );
    assert_problem(
        &v,
        "budgets[3].scope: unknown model \"fast\" (budgets apply to provider models, not to routes)",
    );
}

#[test]
fn bad_url() {
    let mut v = base();
    v["providers"]["openai"]["base_url"] = json!("not a url");
    assert_problem(
        &v,
        "providers.openai.base_url: not a valid http(s) URL (e.g. \"https://api.example.com/v1\")",
    );
    v["providers"]["openai"]["base_url"] = json!("ftp://example.com");
    assert_problem(
        &v,
        "providers.openai.base_url: not a valid http(s) URL (e.g. \"https://api.example.com/v1\")",
    );
}

#[test]
fn unknown_tokenizer() {
    let mut v = base();
    v["providers"]["mock"]["models"]["gpt-4o-mini"]["tokenizer"] = json!("p50k_base");
    assert_problem(
        &v,
        "providers.mock.models.gpt-4o-mini.tokenizer: unknown tokenizer \"p50k_base\" (expected o200k_base, cl100k_base or heuristic)",
    );
}

#[test]
fn provider_fields_must_fit_the_type() {
    let mut v = base();
    v["providers"]["mock"]["api_key"] = json!("x");
    v["providers"]["mock"]["deployments"] = json!({ "gpt-4o-mini": "dep" });
    v["providers"]["openai"]["latency"] = json!("1s");
    v["providers"]["azure"] = json!({ "type": "azure", "api_key": "k", "models": { "gpt-4o": {} },
        "deployments": { "gpt-5": "x" } });
    v["providers"]["local"] = json!({ "type": "openai_compatible", "models": {} });
    assert_problem(
        &v,
        "providers.mock.api_key: not used by type mock (only by openai, azure, anthropic, openai_compatible, gemini)",
    );
    assert_problem(
        &v,
        "providers.mock.deployments: not used by type mock (only by azure)",
    );
    assert_problem(
        &v,
        "providers.openai.latency: not used by type openai (only by mock)",
    );
    assert_problem(&v, "providers.azure.base_url: required for type azure");
    assert_problem(
        &v,
        "providers.azure.deployments.gpt-5: no model \"gpt-5\" in providers.azure.models",
    );
    assert_problem(
        &v,
        "providers.local.base_url: required for type openai_compatible",
    );
    assert_problem(&v, "providers.local.models: at least one model is required");
}

#[test]
fn missing_api_key_and_bad_durations() {
    let mut v = base();
    v["providers"]["openai"]
        .as_object_mut()
        .unwrap()
        .remove("api_key");
    v["providers"]["openai"]["timeouts"] = json!({ "request": "0s", "connect": "soon" });
    v["retry"] = json!({ "base": "1s", "max": "500ms" });
    v["circuit_breaker"] = json!({ "failure_threshold": 0 });
    assert_problem(
        &v,
        "providers.openai.api_key: required for type openai (e.g. \"${OPENAI_API_KEY}\")",
    );
    assert_problem(&v, "providers.openai.timeouts.request: must be > 0");
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("providers.openai.timeouts.connect: "))
    );
    assert_problem(&v, "retry.max: must be >= retry.base");
    assert_problem(&v, "circuit_breaker.failure_threshold: must be > 0");
}

#[test]
fn connection_limits_are_read() {
    let c = load(&base()).unwrap();
    assert_eq!(c.gateway().max_connections, None);
    assert_eq!(c.gateway().idle_timeout, Duration::from_secs(60));
    assert_eq!(
        c.gateway().http2_keep_alive_interval,
        Some(Duration::from_secs(20))
    );
    let mut v = base();
    v["gateway"] = json!({
        "max_connections": 200,
        "idle_timeout": "30s",
        "http2_keep_alive_interval": "0s",
        "http2_keep_alive_timeout": "5s"
    });
    let c = load(&v).unwrap();
    assert_eq!(c.gateway().max_connections, Some(200));
    assert_eq!(c.gateway().idle_timeout, Duration::from_secs(30));
    assert_eq!(c.gateway().http2_keep_alive_interval, None);
    assert_eq!(c.gateway().http2_keep_alive_timeout, Duration::from_secs(5));
}

#[test]
fn gateway_and_logging_rules() {
    let mut v = base();
    v["gateway"] = json!({
        "listen": "localhost:http",
        "max_body_bytes": 0,
        "request_timeout": "0s",
        "idle_timeout": "0s",
        "http2_keep_alive_timeout": "soon",
        "max_connections": 0
    });
    v["logging"] = json!({ "level": "loud" });
    assert_problem(
        &v,
        "gateway.listen: not a socket address (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")",
    );
    assert_problem(&v, "gateway.max_body_bytes: must be > 0");
    assert_problem(&v, "gateway.request_timeout: must be > 0");
    assert_problem(&v, "gateway.idle_timeout: must be > 0");
    assert_problem(&v, "gateway.max_connections: must be >= 1");
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("gateway.http2_keep_alive_timeout: "))
    );
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("logging.level: "))
    );
}

#[cfg(not(feature = "redis"))]
#[test]
fn a_redis_store_needs_the_redis_feature() {
    let mut v = base();
    v["store"] = json!({ "type": "redis", "url": "redis://127.0.0.1:6379/" });
    assert_problem(
        &v,
        "store.type: \"redis\" needs the `redis` cargo feature (of llm-tower, or of llm-tower-config)",
    );
}

#[cfg(feature = "redis")]
#[test]
fn redis_store_is_validated() {
    let mut v = base();
    v["store"] = json!({ "type": "redis" });
    assert_problem(
        &v,
        "store.url: required for type redis (e.g. \"redis://127.0.0.1:6379/\")",
    );
    v["store"] = json!({ "type": "memory", "prefix": "x" });
    assert_problem(&v, "store.prefix: only for type redis");
    v["store"] = json!({ "type": "redis", "url": "redis://:hunter2secret@127.0.0.1:6379/", "prefix": "a{b}" });
    let e = load(&v).unwrap_err();
    assert!(e.at("store").is_some(), "{e}");
    assert!(!e.to_string().contains("hunter2secret"));
    v["store"] =
        json!({ "type": "redis", "url": "redis://127.0.0.1:6379/", "on_error": "fail_open_local" });
    load(&v).unwrap();
}

#[cfg(feature = "redis")]
#[test]
fn redis_budget_retention_and_reservation_ttl_are_validated() {
    let mut v = base();
    let redis = |extra: Value| {
        let mut s = json!({ "type": "redis", "url": "redis://127.0.0.1:6379/" });
        for (k, x) in extra.as_object().unwrap() {
            s[k] = x.clone();
        }
        s
    };
    v["store"] = redis(json!({ "budget_retention": "0s", "reservation_ttl": "0s" }));
    assert_problem(&v, "store.budget_retention: must be > 0");
    assert_problem(&v, "store.reservation_ttl: must be > 0");
    v["store"] = redis(json!({ "budget_retention": "soon", "reservation_ttl": "5 min" }));
    let all = problems(&v);
    assert!(
        all.iter()
            .any(|p| p.starts_with("store.budget_retention: "))
            && all.iter().any(|p| p.starts_with("store.reservation_ttl: ")),
        "{all:#?}"
    );
    // A counter must outlive its period.
    v["budgets"] = json!([
        { "name": "hourly", "scope": "global", "period": "hour", "limit_usd": "1" },
        { "name": "monthly", "scope": "global", "period": "month", "limit_usd": "100" },
        { "name": "forever", "scope": "global", "period": "total", "limit_usd": "1000" }
    ]);
    v["store"] = redis(json!({ "budget_retention": "30d" }));
    assert_problem(
        &v,
        "store.budget_retention: must be at least the longest budget period (31d for month budget \"monthly\"), \
         or a counter could expire before its period ends",
    );
    v["store"] = redis(json!({ "budget_retention": "40d", "reservation_ttl": "5m" }));
    load(&v).unwrap();
    v["store"] = json!({ "type": "memory", "budget_retention": "40d", "reservation_ttl": "5m" });
    assert_problem(&v, "store.budget_retention: only for type redis");
    assert_problem(&v, "store.reservation_ttl: only for type redis");
}

#[test]
fn every_problem_is_reported_at_once_one_per_line() {
    let mut v = base();
    v["providers"]["openai"]["models"]["gpt-4o"]["price"]["input"] = json!("-1");
    v["providers"]["mock"]["models"]["gpt-4o-mini"]["tokenizer"] = json!("p50k_base");
    v["routes"]["fast"][1] = json!("openai/gpt-5x");
    v["rate_limits"][2]["burst"] = json!(0);
    v["budgets"][0]["alerts"] = json!([2]);
    v["providers"]["openai"]["base_url"] = json!("nope");
    let e = load(&v).unwrap_err();
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), e.problems().len());
    for expected in [
        "providers.openai.base_url: not a valid http(s) URL (e.g. \"https://api.example.com/v1\")",
        "providers.openai.models.gpt-4o.price.input: must be >= 0",
        "providers.mock.models.gpt-4o-mini.tokenizer: unknown tokenizer \"p50k_base\" (expected o200k_base, cl100k_base or heuristic)",
        "routes.fast[1]: unknown model \"openai/gpt-5x\"",
        "rate_limits[2].burst: must be > 0",
        "budgets[0].alerts[0]: must be in (0, 1]",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{e}");
    }
    assert_eq!(lines.len(), 6, "{e}");
}

// ---- interpolation ---------------------------------------------------------------------

#[test]
fn missing_variable_is_named_with_its_path() {
    let e = Config::from_str_with_env(&base().to_string(), &|_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "providers.openai.api_key: environment variable OPENAI_API_KEY is not set"
    );
}

#[test]
fn secret_values_never_appear_in_errors_or_debug() {
    // A key a header cannot carry: the problem is reported, the key is not.
    let bad = format!("{SECRET}\nnewline");
    let e = Config::from_str_with_env(&base().to_string(), &env(&[("OPENAI_API_KEY", &bad)]))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "providers.openai.api_key: contains characters that cannot be sent in an HTTP header"
    );
    assert!(!format!("{e:?}").contains(SECRET));

    // A valid config: Debug of the config and of its raw form show no secret.
    let mut v = base();
    v["providers"]["literal"] = json!({ "type": "openai", "api_key": "sk-literal-in-file-123",
        "models": { "gpt-4o-mini": { "price": { "input": "1", "output": "1" } } } });
    let c = load(&v).unwrap();
    let dbg = format!("{c:?} {:?} {:#?}", c.raw(), c.raw());
    assert!(!dbg.contains(SECRET), "{dbg}");
    assert!(!dbg.contains("sk-literal-in-file-123"), "{dbg}");
    assert!(dbg.contains("${OPENAI_API_KEY}"));
}

#[test]
fn interpolation_in_any_string_and_escapes() {
    let mut v = base();
    v["providers"]["mock"]["reply"] = json!({ "fixed": "costs $${PRICE} and ${GREETING}" });
    v["rate_limits"][0]["window"] = json!("${WINDOW}");
    let c = Config::from_str_with_env(
        &v.to_string(),
        &env(&[
            ("OPENAI_API_KEY", SECRET),
            ("WINDOW", "30s"),
            ("GREETING", "hi"),
        ]),
    )
    .unwrap();
    // The raw form keeps the references.
    assert_eq!(c.raw().rate_limits[0].window.as_deref(), Some("${WINDOW}"));

    let e = Config::from_str_with_env(&v.to_string(), &base_env()).unwrap_err();
    assert_eq!(
        e.problems()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec![
            "providers.mock.reply.fixed: environment variable GREETING is not set",
            "rate_limits[0].window: environment variable WINDOW is not set",
        ]
    );
}

// ---- round trip ------------------------------------------------------------------------

fn example_env() -> impl Fn(&str) -> Option<String> {
    env(&[
        ("OPENAI_API_KEY", SECRET),
        ("ANTHROPIC_API_KEY", "sk-ant-test-secret"),
        ("AZURE_OPENAI_API_KEY", "azure-test-secret"),
        (
            "AZURE_OPENAI_ENDPOINT",
            "https://example-resource.openai.azure.com",
        ),
        ("LLM_TOWER_KEY_ALICE", "alice-gateway-key-secret"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "aws-test-secret-key"),
        ("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001"),
        ("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000002"),
        ("AZURE_CLIENT_SECRET", "azure-client-test-secret"),
        ("GEMINI_API_KEY", "gemini-test-secret"),
    ])
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("llm-tower-config-{}-{name}", std::process::id()))
}

#[test]
fn load_save_round_trip_keeps_references_not_secrets() {
    let original = Config::load_with_env(repo_file("example.json"), &example_env()).unwrap();
    let path = temp_path("roundtrip.json");
    original.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for secret in [
        SECRET,
        "sk-ant-test-secret",
        "azure-test-secret",
        "alice-gateway-key-secret",
        "aws-test-secret-key",
        "azure-client-test-secret",
        "gemini-test-secret",
    ] {
        assert!(!text.contains(secret), "saved file contains a secret");
    }
    assert!(text.contains("\"${OPENAI_API_KEY}\""));
    assert!(text.contains("\"${LLM_TOWER_KEY_ALICE}\""));
    let again = Config::load_with_env(&path, &example_env()).unwrap();
    assert_eq!(again.raw(), original.raw());
    // Saving again is byte-identical, and the order of the file is kept.
    let path2 = temp_path("roundtrip2.json");
    again.save(&path2).unwrap();
    assert_eq!(std::fs::read_to_string(&path2).unwrap(), text);
    let providers: Vec<&String> = again.raw().providers.keys().collect();
    assert_eq!(
        providers,
        [
            "openai",
            "anthropic",
            "azure",
            "ollama",
            "bedrock",
            "azure_v1",
            "gemini",
            "vertex"
        ]
    );
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path2);
}

#[test]
fn load_reports_a_missing_file() {
    let e = Config::load_with_env(temp_path("does-not-exist.json"), &|_| None).unwrap_err();
    assert_eq!(e.problems()[0].path, "");
    assert!(e.to_string().starts_with("cannot read "), "{e}");
}

// ---- schema ----------------------------------------------------------------------------

#[test]
fn schema_file_is_current() {
    let path = repo_file("llm-tower.schema.json");
    let generated = Config::json_schema_string();
    if std::env::var("UPDATE_SCHEMA").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "config/llm-tower.schema.json is out of date: run `UPDATE_SCHEMA=1 cargo test -p llm-tower-config --test config schema`"
    );
    let schema: Value = serde_json::from_str(&current).unwrap();
    assert_eq!(schema["additionalProperties"], json!(false));
    assert!(schema["properties"]["providers"].is_object());
}

// ---- shipped files ---------------------------------------------------------------------

#[test]
fn default_config_is_valid_and_embedded() {
    let on_disk = std::fs::read_to_string(repo_file("default.json")).unwrap();
    assert_eq!(on_disk, DEFAULT_CONFIG_JSON);
    let c = Config::embedded_default().unwrap();
    assert_eq!(c.raw().providers.len(), 1);
    assert_eq!(
        c.raw().providers["mock"].kind,
        llm_tower_config::raw::ProviderKind::Mock
    );
    assert!(c.raw().routes.contains_key("default"));
    assert!(c.raw().gateway.as_ref().is_none_or(|g| g.keys.is_empty()));
}

#[tokio::test]
async fn example_config_is_valid_and_builds() {
    let c = Config::load_with_env(repo_file("example.json"), &example_env()).unwrap();
    assert_eq!(c.gateway().log_format, LogFormat::Json);
    assert_eq!(c.gateway().max_body_bytes, 4 * 1024 * 1024);
    let stack = build(&c).await.unwrap();
    assert!(stack.auth_required());
    assert_eq!(
        stack
            .authenticate("alice-gateway-key-secret")
            .map(|k| k.to_string()),
        Some("alice".to_owned())
    );
    assert_eq!(
        stack
            .authenticate("bob-example-key-change-me")
            .map(|k| k.to_string()),
        Some("bob".to_owned())
    );
    let d = stack.describe();
    assert!(
        d.contains(
            "route \"smart\": trace -> count_tokens -> cache[memory 10000 entries/268435456 bytes, ttl 10m, per caller] -> rate_limit[per_caller_rpm"
        ),
        "{d}"
    );
    assert!(
        d.contains("[openai/gpt-4.1: circuit[5 failures, 30s] -> track_cost[3 budgets"),
        "{d}"
    );
    assert!(d.contains(", fallback [azure/gpt-4o: "), "{d}");
    assert!(
        d.contains(
            "rate_limit[anthropic_rpm: sliding_window 50/1m, requests by provider, wait<=5s]"
        ),
        "{d}"
    );
    assert!(!d.contains(SECRET));
    let ids: Vec<String> = stack.models().into_iter().map(|m| m.id).collect();
    assert!(ids.starts_with(&["fast".to_owned(), "smart".to_owned(), "embed".to_owned()]));
    assert!(ids.contains(&"anthropic/claude-sonnet-4-20250514".to_owned()));
}

#[test]
fn cache_write_and_reasoning_prices_are_read_and_checked() {
    let mut v = base();
    v["providers"]["openai"]["models"]["gpt-4o"]["price"] = json!({
        "input": "3", "output": "15", "cached_input": "0.30",
        "cache_write_5m": "3.75", "cache_write_1h": "6", "reasoning": "20"
    });
    let config = load(&v).unwrap();
    let built = llm_tower_config::build_blocking(&config).unwrap();
    let price = built
        .tracker()
        .prices()
        .get("openai/gpt-4o")
        .copied()
        .unwrap();
    let usage = llm_tower_core::Usage::new(10_000, 600, llm_tower_core::UsageSource::Provider)
        .with_cached(2_000)
        .with_cache_writes(3_000, 4_000)
        .with_reasoning(100);
    // 1,000 x 3 + 2,000 x 0.30 + 3,000 x 3.75 + 4,000 x 6 + 500 x 15 + 100 x 20.
    assert_eq!(
        price.cost(&usage),
        llm_tower_core::Money::from_nanos(48_350_000)
    );
    v["providers"]["openai"]["models"]["gpt-4o"]["price"]["cache_write_1h"] = json!("-2");
    assert_problem(
        &v,
        "providers.openai.models.gpt-4o.price.cache_write_1h: must be >= 0",
    );
}

// ---- bedrock and azure v1 --------------------------------------------------------------

fn with_provider(name: &str, provider: Value) -> Value {
    let mut v = base();
    v["providers"][name] = provider;
    v
}

fn bedrock(credentials: Value) -> Value {
    let mut p = json!({
        "type": "bedrock",
        "region": "eu-west-3",
        "models": {"amazon.nova-lite-v1:0": {"price": {"input": "0.06", "output": "0.24"}}}
    });
    if !credentials.is_null() {
        p["credentials"] = credentials;
    }
    with_provider("bedrock", p)
}

#[tokio::test]
async fn bedrock_providers_validate_and_build() {
    let v = bedrock(json!({"access_key_id": "AKID", "secret_access_key": "${OPENAI_API_KEY}"}));
    let c = load(&v).unwrap();
    let stack = build(&c).await.unwrap();
    assert!(!stack.describe().contains(SECRET));
    // A profile from a credentials file.
    let dir = temp_path("aws");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("credentials");
    std::fs::write(
        &file,
        "[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = s3cr3t\n",
    )
    .unwrap();
    let creds =
        llm_tower_providers::bedrock::AwsCredentials::from_profile_file(&file, "work").unwrap();
    assert_eq!(creds.access_key_id, "AKIDWORK");
    let _ = std::fs::remove_dir_all(dir);
    load(&bedrock(json!({"profile": "work"}))).unwrap();
    load(&bedrock(json!({"env": true}))).unwrap();
    load(&bedrock(Value::Null)).unwrap();
}

#[test]
fn bedrock_problems_have_json_paths() {
    assert_problem(
        &bedrock(json!({"env": true, "profile": "x"})),
        "providers.bedrock.credentials: expected exactly one of {\"env\": true}, {\"profile\": NAME} or {\"access_key_id\", \"secret_access_key\"}",
    );
    assert_problem(
        &bedrock(json!({"access_key_id": "AKID"})),
        "providers.bedrock.credentials: access_key_id and secret_access_key are both required (session_token is optional)",
    );
    assert_problem(
        &bedrock(json!({"env": false})),
        "providers.bedrock.credentials.env: must be true (or name a profile or the keys)",
    );
    let mut v = bedrock(Value::Null);
    v["providers"]["bedrock"]
        .as_object_mut()
        .unwrap()
        .remove("region");
    assert_problem(
        &v,
        "providers.bedrock.region: required for type bedrock (e.g. \"us-east-1\")",
    );
    v["providers"]["bedrock"]["region"] = json!("us east");
    assert_problem(
        &v,
        "providers.bedrock.region: expected an AWS region such as us-east-1",
    );
    let mut v = bedrock(Value::Null);
    v["providers"]["bedrock"]["api_key"] = json!("x");
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("providers.bedrock.api_key:"))
    );
    let mut v = base();
    v["providers"]["openai"]["region"] = json!("us-east-1");
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("providers.openai.region:"))
    );
}

fn azure(extra: Value) -> Value {
    let mut p = json!({
        "type": "azure",
        "base_url": "https://example-resource.openai.azure.com",
        "models": {"gpt-4.1-mini": {"price": {"input": "0.40", "output": "1.60"}}}
    });
    for (k, val) in extra.as_object().unwrap() {
        p[k] = val.clone();
    }
    with_provider("az", p)
}

#[tokio::test]
async fn azure_v1_and_entra_validate_and_build() {
    let v = azure(json!({"api": "v1", "auth": {"entra": {
        "tenant_id": "t1", "client_id": "c1", "client_secret": "${OPENAI_API_KEY}"}}}));
    build(&load(&v).unwrap()).await.unwrap();
    let v = azure(
        json!({"auth": {"token_command": ["az", "account", "get-access-token", "-o", "json"]}}),
    );
    build(&load(&v).unwrap()).await.unwrap();
    let v = azure(json!({"api": "deployments", "api_key": "${OPENAI_API_KEY}"}));
    build(&load(&v).unwrap()).await.unwrap();
}

#[test]
fn azure_option_problems_have_json_paths() {
    assert_problem(
        &azure(json!({"api": "v1", "api_key": "k", "api_version": "2024-10-21"})),
        "providers.az.api_version: the v1 API takes no api-version (remove it or set \"api\": \"deployments\")",
    );
    assert_problem(
        &azure(json!({"auth": {"token_command": ["x"]}, "api_key": "k"})),
        "providers.az.auth: set either api_key or auth, not both",
    );
    assert_problem(
        &azure(json!({"auth": {}})),
        "providers.az.auth: expected exactly one of \"entra\" and \"token_command\"",
    );
    assert_problem(
        &azure(json!({"auth": {"token_command": []}})),
        "providers.az.auth.token_command: a command is a non-empty list: the program, then its arguments",
    );
    assert_problem(
        &azure(
            json!({"auth": {"entra": {"tenant_id": "", "client_id": "c", "client_secret": "s"}}}),
        ),
        "providers.az.auth.entra.tenant_id: must be a non-empty id",
    );
    assert!(
        problems(&azure(json!({})))
            .iter()
            .any(|p| p.starts_with("providers.az.api_key: required"))
    );
    assert!(
        problems(&azure(json!({"api": "v2", "api_key": "k"})))
            .iter()
            .any(|p| p.contains("providers.az.api") || p.contains("api")),
    );
}

#[test]
fn gemini_and_vertex_fields_are_validated_with_paths() {
    let mut v = base();
    v["providers"]["gem"] = json!({ "type": "gemini", "location": "us-central1",
        "models": { "gemini-2.5-flash": {} } });
    v["providers"]["vx"] = json!({ "type": "vertex", "api_key": "k",
        "models": { "gemini-2.5-flash": {} } });
    v["providers"]["vx2"] = json!({ "type": "vertex", "project": "a/b", "location": "",
        "auth": { "token_command": [] }, "token_url": "nope",
        "models": { "gemini-2.5-flash": {} } });
    assert_problem(
        &v,
        "providers.gem.api_key: required for type gemini (e.g. \"${GEMINI_API_KEY}\")",
    );
    assert_problem(
        &v,
        "providers.gem.location: not used by type gemini (only by vertex)",
    );
    assert_problem(
        &v,
        "providers.vx.api_key: not used by type vertex (only by openai, azure, anthropic, openai_compatible, gemini)",
    );
    assert_problem(
        &v,
        "providers.vx.project: required for type vertex (the Google Cloud project id)",
    );
    assert_problem(
        &v,
        "providers.vx.location: required for type vertex (e.g. \"us-central1\" or \"global\")",
    );
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("providers.vx.auth: required for type vertex")),
        "{:#?}",
        problems(&v)
    );
    assert_problem(
        &v,
        "providers.vx2.project: must be non-empty: letters, digits, '-', '_' and '.' only",
    );
    assert_problem(
        &v,
        "providers.vx2.location: must be non-empty: letters, digits, '-', '_' and '.' only",
    );
    assert_problem(
        &v,
        "providers.vx2.auth.token_command: must name a program (e.g. [\"gcloud\", \"auth\", \"print-access-token\"])",
    );
    assert_problem(
        &v,
        "providers.vx2.token_url: not a valid http(s) URL (e.g. \"https://api.example.com/v1\")",
    );
    // Two auth methods at once are refused by the parser.
    let mut v = base();
    v["providers"]["vx"] = json!({ "type": "vertex", "project": "p", "location": "global",
        "auth": { "token_env": "A", "access_token": "b" }, "models": { "gemini-2.5-flash": {} } });
    assert!(load(&v).is_err());
}

#[tokio::test]
async fn gemini_and_vertex_providers_build() {
    let key = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../llm-tower-providers/tests/data/vertex-test-key.pem");
    let sa = json!({
        "type": "service_account", "client_email": "t@p.iam.gserviceaccount.com",
        "private_key_id": "k1", "private_key": std::fs::read_to_string(key).unwrap(),
        "token_uri": "https://oauth2.googleapis.com/token"
    });
    let sa_path = temp_path("vertex-sa.json");
    std::fs::write(&sa_path, sa.to_string()).unwrap();
    let mut v = base();
    v["providers"]["gem"] = json!({ "type": "gemini", "api_key": "${GEMINI_API_KEY}",
        "models": { "gemini-2.5-flash": { "tokenizer": "heuristic",
            "price": { "input": "0.30", "output": "2.50" } } } });
    for (name, auth) in [
        (
            "vx_sa",
            json!({ "service_account_file": "${GOOGLE_APPLICATION_CREDENTIALS}" }),
        ),
        ("vx_env", json!({ "token_env": "VERTEX_TOKEN" })),
        (
            "vx_cmd",
            json!({ "token_command": ["gcloud", "auth", "print-access-token"] }),
        ),
        ("vx_tok", json!({ "access_token": "${VERTEX_TOKEN}" })),
    ] {
        v["providers"][name] = json!({ "type": "vertex", "project": "my-project",
            "location": "us-central1", "auth": auth,
            "models": { "gemini-2.5-flash": { "tokenizer": "heuristic",
                "price": { "input": "0.30", "output": "2.50" } } } });
    }
    let sa_str = sa_path.display().to_string();
    let c = Config::from_str_with_env(
        &v.to_string(),
        &env(&[
            ("OPENAI_API_KEY", SECRET),
            ("GEMINI_API_KEY", "gemini-secret"),
            ("VERTEX_TOKEN", "ya29.secret"),
            ("GOOGLE_APPLICATION_CREDENTIALS", sa_str.as_str()),
        ]),
    )
    .unwrap();
    assert!(!format!("{:?}", c.raw()).contains("gemini-secret"));
    build(&c).await.unwrap();

    // A key file that does not exist fails the build, naming the provider.
    let c = Config::from_str_with_env(
        &v.to_string(),
        &env(&[
            ("OPENAI_API_KEY", SECRET),
            ("GEMINI_API_KEY", "gemini-secret"),
            ("VERTEX_TOKEN", "ya29.secret"),
            ("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json"),
        ]),
    )
    .unwrap();
    let Err(e) = build(&c).await else {
        panic!("a missing key file must fail")
    };
    assert!(e.to_string().contains("vx_sa"), "{e}");
    let _ = std::fs::remove_file(sa_path);
}

// ---- cache ------------------------------------------------------------------------------

#[test]
fn cache_problems_have_json_paths() {
    let mut v = base();
    v["cache"] = json!({"store": "redis", "ttl": "soon", "max_entries": 0, "max_bytes": 5});
    let all = problems(&v);
    for path in [
        "cache.store",
        "cache.ttl",
        "cache.max_entries",
        "cache.max_bytes",
    ] {
        assert!(
            all.iter().any(|p| p.starts_with(&format!("{path}: "))),
            "no problem at {path} among {all:#?}"
        );
    }
    let mut v = base();
    v["cache"] = json!({"ttl": "0s", "max_entry_bytes": 2048, "max_bytes": 1024});
    assert_problem(&v, "cache.ttl: must be > 0");
    assert_problem(
        &v,
        "cache.max_bytes: must be at least max_entry_bytes (2048)",
    );
    let mut v = base();
    v["cache"] = json!({"scope": "everyone"});
    assert!(load(&v).is_err());
}

#[test]
fn the_cache_sits_between_resolve_and_the_callers_limits() {
    let mut v = base();
    v["cache"] =
        json!({"ttl": "5m", "max_entries": 100, "max_bytes": 1048576, "max_entry_bytes": 65536});
    let c = load(&v).unwrap();
    let stack = llm_tower_config::build_blocking(&c).unwrap();
    let d = stack.describe();
    let line = d.lines().find(|l| l.starts_with("route \"fast\"")).unwrap();
    let cache = line
        .find("cache[memory 100 entries/1048576 bytes, ttl 5m, per caller]")
        .unwrap();
    let count = line.find("count_tokens").unwrap();
    let limit = line.find("rate_limit[rpm").unwrap();
    let router = line.find("router").unwrap();
    assert!(count < cache && cache < limit && limit < router, "{line}");
    let v = base();
    let d = llm_tower_config::build_blocking(&load(&v).unwrap())
        .unwrap()
        .describe();
    assert!(!d.contains("cache["), "{d}");
}

#[tokio::test]
async fn adaptive_limits_are_on_by_default_for_providers_that_send_limit_headers() {
    let mut v = base();
    v["budgets"] = json!([]);
    v["providers"]["claude"] = json!({ "type": "anthropic", "api_key": "k",
        "adaptive_limits": { "mode": "reject" }, "models": { "claude-sonnet-4-5": {} } });
    v["providers"]["local"] = json!({ "type": "openai_compatible",
        "base_url": "http://127.0.0.1:8000/v1", "models": { "llama3": {} } });
    v["providers"]["groq"] = json!({ "type": "openai_compatible",
        "base_url": "http://127.0.0.1:8001/v1", "adaptive_limits": { "max_wait": "5s" },
        "models": { "llama-70b": {} } });
    v["providers"]["oa2"] = json!({ "type": "openai", "api_key": "k",
        "adaptive_limits": false, "models": { "gpt-4o": {} } });
    let d = build(&load(&v).unwrap()).await.unwrap().describe();
    let target = |id: &str| {
        d.lines()
            .find(|l| l.starts_with(&format!("model \"{id}\"")))
            .unwrap_or_else(|| panic!("{id} in {d}"))
            .to_owned()
    };
    assert!(
        target("openai/gpt-4o")
            .contains("retry[3] -> adaptive_limits[wait<=30s] -> rate_limit[bucket"),
        "inside retry, outside our provider limits: {d}"
    );
    assert!(
        target("claude/claude-sonnet-4-5").contains("adaptive_limits[reject]"),
        "{d}"
    );
    assert!(
        target("groq/llama-70b").contains("adaptive_limits[wait<=5s]"),
        "{d}"
    );
    for off in ["mock/gpt-4o-mini", "local/llama3", "oa2/gpt-4o"] {
        assert!(!target(off).contains("adaptive_limits"), "{off}: {d}");
    }
}

#[test]
fn adaptive_limits_problems_have_json_paths() {
    let with = |kind: &str, a: Value| {
        let mut v = base();
        v["budgets"] = json!([]);
        v["providers"]["p"] = json!({ "type": kind, "api_key": "k",
            "adaptive_limits": a, "models": { "m": {} } });
        v
    };
    assert_problem(
        &with("openai", json!({"mode": "reject", "max_wait": "1s"})),
        "providers.p.adaptive_limits.max_wait: only for mode \"wait\" (reject never waits)",
    );
    assert!(
        problems(&with("openai", json!({"max_wait": "soon"})))
            .iter()
            .any(|p| p.starts_with("providers.p.adaptive_limits.max_wait: ")),
    );
    assert_problem(
        &with("openai", json!({"max_wait": "0s"})),
        "providers.p.adaptive_limits.max_wait: must be > 0",
    );
    assert_problem(
        &with("gemini", json!(true)),
        "providers.p.adaptive_limits: not used by type gemini (only by openai, azure, anthropic, openai_compatible, bedrock)",
    );
    // Turning off what does not exist is allowed.
    load(&with("gemini", json!(false))).unwrap();
    assert!(
        problems(&with("openai", json!({"mode": "later"})))
            .iter()
            .any(|p| p.contains("providers.p.adaptive_limits")),
    );
}
