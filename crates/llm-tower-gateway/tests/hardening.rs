//! Hostile and careless clients: spend privacy between callers, request ranges, JSON
//! errors, budgets that can never fit, `/health` details.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::StatusCode;
use llm_tower_core::Money;
use llm_tower_gateway::AppState;
use llm_tower_layers::cost::{Budget, BudgetScope, CostTracker, Period};
use llm_tower_providers::mock::MockProvider;
use serde_json::json;

fn auth(token: &str) -> [(&'static str, String); 1] {
    [("authorization", bearer(token))]
}

fn h<'a>(a: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    a.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// alice and bob (not admins), each with a key budget, a shared global budget, and
/// carol's admin key.
async fn shared_gateway() -> (Gateway, CostTracker) {
    let budget = |name: &str, scope: BudgetScope, usd: &str| {
        Budget::new(name, scope, Period::Month, Money::parse_usd(usd).unwrap()).unwrap()
    };
    let t = CostTracker::builder()
        .prices(prices())
        .budget(budget(
            "key:alice",
            BudgetScope::Caller("alice".into()),
            "1",
        ))
        .budget(budget("key:bob", BudgetScope::Caller("bob".into()), "1"))
        .budget(budget("company", BudgetScope::Global, "0.0001"))
        .build()
        .unwrap();
    let gw = Gateway::start(
        AppState::builder(stack(MockProvider::new(), t.clone(), generous()))
            .models([CHAT_MODEL])
            .auth(keys().with("sk-test-carol-admin", "carol"), true)
            .tracker(t.clone())
            .usage_admins(["carol"])
            .build(),
    )
    .await;
    (gw, t)
}

#[tokio::test]
async fn a_caller_never_sees_another_callers_name_or_spend() {
    let (gw, _) = shared_gateway().await;
    let (a, b) = (auth(ALICE), auth(BOB));
    let r = gw
        .post("/v1/chat/completions", &h(&b), chat_body(false, None))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // alice's usage: her key budget in full, the shared one as exhausted / resets only.
    let r = gw.get("/v1/usage", &h(&a)).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(!text.contains("bob"), "{text}");
    let v = r.json();
    let budgets = v["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2, "{v}");
    let company = budgets.iter().find(|b| b["budget"] == "company").unwrap();
    assert_eq!(company["key"], "global", "{v}");
    assert_eq!(company["shared"], true);
    assert!(company.get("spent").is_none(), "{v}");
    assert!(company.get("limit").is_none(), "{v}");
    assert!(company["resets_at"].as_u64().unwrap() > 0);
    let own = budgets.iter().find(|b| b["budget"] == "key:alice").unwrap();
    assert_eq!(own["spent"], "0");
    assert_eq!(own["limit"], "1");

    // The admin sees every budget with its numbers.
    let c = auth("sk-test-carol-admin");
    let v = gw.get("/v1/usage", &h(&c)).await.json();
    assert_eq!(v["scope"], "all");
    let names: Vec<&str> = v["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["budget"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"key:bob") && names.contains(&"key:alice"),
        "{v}"
    );
    let company = v["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["budget"] == "company")
        .unwrap();
    assert_ne!(company["spent"], "0", "{v}");

    // A refusal by the shared budget tells alice nothing about what others spent.
    let mut refused = None;
    for _ in 0..20 {
        let r = gw
            .post("/v1/chat/completions", &h(&a), chat_body(false, None))
            .await;
        if r.status == StatusCode::PAYMENT_REQUIRED {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the shared budget runs out");
    let msg = r.error()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("\"company\" (month global) has no room"),
        "{msg}"
    );
    assert!(!msg.contains("spent"), "{msg}");
    assert!(!msg.contains("bob"), "{msg}");
}

#[tokio::test]
async fn out_of_range_fields_are_400_naming_the_field() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    let with = |field: &str, value: serde_json::Value| {
        let mut body = chat_body(false, None);
        body[field] = value;
        body
    };
    for (field, value) in [
        ("temperature", json!(2.5)),
        ("temperature", json!(-0.1)),
        ("temperature", json!(1e39)),
        ("top_p", json!(1.5)),
        ("n", json!(0)),
        ("n", json!(1_000_000)),
        ("max_tokens", json!(0)),
    ] {
        let r = gw
            .post("/v1/chat/completions", &h(&a), with(field, value.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{field}={value}: {}",
            r.text()
        );
        assert_eq!(r.error()["param"], field, "{}", r.text());
        assert_eq!(r.error()["code"], "invalid_value");
    }
    // Above the model's largest output (16,384 for the test model).
    let r = gw
        .post(
            "/v1/chat/completions",
            &h(&a),
            with("max_tokens", json!(10_000_000)),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.error()["param"], "max_tokens");
    assert!(r.error()["message"].as_str().unwrap().contains("16384"));
    assert_eq!(r.header("retry-after"), None);
    // In range passes.
    let r = gw
        .post(
            "/v1/chat/completions",
            &h(&a),
            with("temperature", json!(2)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

#[tokio::test]
async fn malformed_json_names_line_and_column_without_a_param() {
    let gw = Gateway::start(default_state()).await;
    let a = auth(ALICE);
    for raw in [&b"{1: 2}"[..], b"{\"model\": ", b"not json"] {
        let r = gw
            .send(
                http::Method::POST,
                "/v1/chat/completions",
                &[
                    ("authorization", a[0].1.as_str()),
                    ("content-type", "application/json"),
                ],
                Some(raw.to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
        let e = r.error();
        assert_eq!(e["param"], serde_json::Value::Null, "{}", r.text());
        let msg = e["message"].as_str().unwrap();
        assert!(msg.starts_with("Invalid JSON at line 1, column "), "{msg}");
        assert!(!msg.contains('?'), "{msg}");
    }
}

#[tokio::test]
async fn health_shows_provider_details_to_admins_only() {
    let t = tracker();
    let gw = Gateway::start(
        AppState::builder(stack(MockProvider::new(), t.clone(), generous()))
            .models([CHAT_MODEL])
            .auth(keys().with("sk-test-carol-admin", "carol"), true)
            .tracker(t)
            .usage_admins(["carol"])
            .build(),
    )
    .await;
    let anon = gw.get("/health", &[]).await;
    assert_eq!(anon.status, StatusCode::OK);
    assert!(anon.json().get("providers").is_none(), "{}", anon.text());
    assert_eq!(anon.json()["status"], "ok");
    let a = auth(ALICE);
    assert!(
        gw.get("/health", &h(&a))
            .await
            .json()
            .get("providers")
            .is_none()
    );
    let c = auth("sk-test-carol-admin");
    let r = gw.get("/health", &h(&c)).await;
    assert!(r.json()["providers"].is_object(), "{}", r.text());
}
