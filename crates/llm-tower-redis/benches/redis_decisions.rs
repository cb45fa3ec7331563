//! Decisions per second and decision latency of `RedisRateLimitStore`, and budget
//! reserve + settle operations of `RedisBudgetStore`, against a local Redis.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/ cargo bench -p llm-tower-redis --bench redis_decisions
//! ```
//!
//! One instance (one store, one multiplexed connection) makes decisions from 1 and from
//! 64 concurrent tasks, for the sliding window and the leaky bucket, over 256 keys, then
//! budget operations (a reserve and its settle, two round trips) over 256 counters. It
//! prints decisions (operations) per second, p50/p99/max latency, and the `EVALSHA` calls
//! Redis counted per decision (one round trip each, two per budget operation). Without `--bench` (as under `cargo test
//! --benches`) it makes a few decisions only. If Redis is unreachable it says so and
//! exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llm_tower_core::Money;
use llm_tower_layers::cost::{BudgetStore, ReserveOutcome};
use llm_tower_layers::rate_limit::{Acquire, Algorithm, Decision, RateLimitStore};
use llm_tower_redis::{RedisBudgetStore, RedisConfig, RedisConnection, RedisRateLimitStore};

const KEYS: usize = 256;

struct Outcome {
    decisions: usize,
    admitted: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn run(
    store: Arc<RedisRateLimitStore>,
    alg: Algorithm,
    concurrency: usize,
    per_task: usize,
) -> Outcome {
    let start = Instant::now();
    let tasks = (0..concurrency).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            let mut admitted = 0;
            for i in 0..per_task {
                let key = format!("k{}", (t * 7919 + i) % KEYS);
                let t0 = Instant::now();
                let d = store
                    .acquire(Acquire {
                        scope: "bench",
                        key: &key,
                        algorithm: &alg,
                        weight: 1,
                        max_wait: Duration::ZERO,
                    })
                    .await
                    .unwrap();
                latencies.push(t0.elapsed());
                admitted += usize::from(matches!(d, Decision::Admitted { .. }));
            }
            (latencies, admitted)
        })
    });
    let results = futures_util::future::join_all(tasks).await;
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    let mut admitted = 0;
    for r in results {
        let (l, a) = r.unwrap();
        latencies.extend(l);
        admitted += a;
    }
    latencies.sort_unstable();
    Outcome {
        decisions: latencies.len(),
        admitted,
        elapsed,
        latencies,
    }
}

/// Budget round trips: each task reserves a small amount against a large limit and
/// settles it, so every operation is one `reserve` plus one `settle` (two round trips).
async fn run_budget(store: Arc<RedisBudgetStore>, concurrency: usize, per_task: usize) -> Outcome {
    let start = Instant::now();
    let tasks = (0..concurrency).map(|t| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            let mut admitted = 0;
            let amount = Money::from_nanos(1_000);
            for i in 0..per_task {
                let key = format!("bench:k{}:day:1", (t * 7919 + i) % KEYS);
                let t0 = Instant::now();
                let outcome = store
                    .reserve(
                        &key,
                        amount,
                        Money::from_usd(1_000_000),
                        Duration::from_secs(60),
                    )
                    .await
                    .unwrap();
                if let ReserveOutcome::Reserved(id) = outcome {
                    store.settle(&key, &id, amount).await.unwrap();
                    admitted += 1;
                }
                latencies.push(t0.elapsed());
            }
            (latencies, admitted)
        })
    });
    let results = futures_util::future::join_all(tasks).await;
    let elapsed = start.elapsed();
    let mut latencies = Vec::new();
    let mut admitted = 0;
    for r in results {
        let (l, a) = r.unwrap();
        latencies.extend(l);
        admitted += a;
    }
    latencies.sort_unstable();
    Outcome {
        decisions: latencies.len(),
        admitted,
        elapsed,
        latencies,
    }
}

fn print_row(name: &str, concurrency: usize, o: &Outcome, trips: String) {
    println!(
        "{:<24} {:>5} {:>9} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>10}",
        name,
        concurrency,
        o.decisions,
        o.decisions as f64 / o.elapsed.as_secs_f64(),
        o.admitted,
        pct(&o.latencies, 0.50).as_micros(),
        pct(&o.latencies, 0.99).as_micros(),
        o.latencies.last().map_or(0, Duration::as_micros),
        trips
    );
}

fn trips(before: Option<u64>, after: Option<u64>, ops: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("{:.2}", (a - b) as f64 / ops as f64),
        _ => "n/a".to_owned(),
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn evalsha_calls(url: &str) -> Option<u64> {
    let mut c = redis::Client::open(url)
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .ok()?;
    let line = info.lines().find(|l| l.starts_with("cmdstat_evalsha:"))?;
    line.split(['=', ',']).nth(1)?.parse().ok()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let config = RedisConfig::new(url.as_str()).prefix(format!("llmt-bench:{nanos}"));
        let conn = RedisConnection::new(&config).unwrap();
        if let Err(e) = conn.ping().await {
            println!(
                "redis_decisions: no Redis at {} ({e}); start one (redis-server) or set REDIS_URL. Skipping.",
                config.redacted_url()
            );
            return;
        }
        let store = Arc::new(RedisRateLimitStore::with_connection(conn.clone()));
        let budgets = Arc::new(
            RedisBudgetStore::with_connection(conn).counter_retention(Duration::from_secs(600)),
        );
        let algorithms = [
            ("sliding_window 100/s", Algorithm::sliding_window(100, Duration::from_secs(1)).unwrap()),
            ("leaky_bucket 100/s b100", Algorithm::leaky_bucket(100, Duration::from_secs(1), 100).unwrap()),
        ];
        let (per_c1, per_c64) = if full { (10_000, 1_000) } else { (50, 2) };
        // Warm up: load the scripts, open the connection.
        for (_, alg) in &algorithms {
            run(store.clone(), *alg, 8, 50).await;
        }
        println!(
            "{:<24} {:>5} {:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "algorithm", "conc", "decisions", "decisions/s", "admitted", "p50 us", "p99 us", "max us", "evalsha/d"
        );
        for (name, alg) in &algorithms {
            for (concurrency, per_task) in [(1, per_c1), (64, per_c64)] {
                let before = evalsha_calls(&url).await;
                let o = run(store.clone(), *alg, concurrency, per_task).await;
                let after = evalsha_calls(&url).await;
                print_row(name, concurrency, &o, trips(before, after, o.decisions));
            }
        }
        // Budgets: reserve + settle per operation ("decisions" are operations here).
        run_budget(budgets.clone(), 8, 50).await;
        for (concurrency, per_task) in [(1, per_c1 / 2), (64, per_c64 / 2)] {
            let before = evalsha_calls(&url).await;
            let o = run_budget(budgets.clone(), concurrency, per_task.max(1)).await;
            let after = evalsha_calls(&url).await;
            print_row("budget reserve+settle", concurrency, &o, trips(before, after, o.decisions));
        }
    });
}
