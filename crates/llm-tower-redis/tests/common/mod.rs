//! Helpers shared by the Redis integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llm_tower_redis::{FailurePolicy, RedisConfig, RedisConnection};

/// `REDIS_URL`, or the local default when it is unset.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A key prefix no other test run uses.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "llmt-test:{tag}:{}:{nanos}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fail-closed configuration on `url` with a fresh prefix.
pub fn config(url: &str, tag: &str) -> RedisConfig {
    RedisConfig::new(url)
        .prefix(unique_prefix(tag))
        .failure_policy(FailurePolicy::FailClosed)
        .timeout(Duration::from_secs(5))
}

/// Whether the Redis tests must run: `LLM_TOWER_REQUIRE_REDIS` is set (to anything but
/// empty or `0`), as CI should. Then a missing server is a failure, never a skip.
pub fn redis_required() -> bool {
    std::env::var("LLM_TOWER_REQUIRE_REDIS").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Skips `test` because of `why`: prints it, or panics when [`redis_required`].
pub fn skip(test: &str, why: &str) {
    if redis_required() {
        panic!("{test}: Redis is required (LLM_TOWER_REQUIRE_REDIS is set) but {why}");
    }
    eprintln!("skipping {test}: {why}");
}

/// The Redis URL when a server answers there. Otherwise prints why the test is skipped and
/// returns `None`, or fails when `LLM_TOWER_REQUIRE_REDIS` is set (set it in CI).
pub async fn redis_or_skip(test: &str) -> Option<String> {
    let url = redis_url();
    let shown = llm_tower_redis::redact_url(&url);
    let conn =
        match RedisConnection::new(&RedisConfig::new(url.as_str()).timeout(Duration::from_secs(2)))
        {
            Ok(conn) => conn,
            Err(e) => {
                skip(test, &format!("REDIS_URL {shown} is not usable ({e})"));
                return None;
            }
        };
    match conn.ping().await {
        Ok(()) => Some(url),
        Err(e) => {
            skip(
                test,
                &format!(
                    "no Redis answers at {shown} ({e}); start one (redis-server) or set REDIS_URL"
                ),
            );
            None
        }
    }
}

/// A raw connection for inspecting keys.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
