//! One in-memory rate-limit decision: one key, and 100,000 live keys; memory per key.
//!
//! Run: `cargo bench -p llm-tower-layers --bench rate_limit`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use llm_tower_layers::rate_limit::{Acquire, Algorithm, MemoryStore};

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn decide(store: &MemoryStore, alg: &Algorithm, key: &str) {
    black_box(store.decide(Acquire {
        scope: "bench",
        key,
        algorithm: alg,
        weight: 1,
        max_wait: Duration::ZERO,
    }));
}

fn bench(c: &mut Criterion) {
    // Limits high enough that every decision admits (the common, hot path). The window is
    // short, so a key's log holds one or two entries, as for a caller that sends a request
    // now and then (the 100k-keys case visits each key every ~30 ms).
    let sliding = Algorithm::sliding_window(u64::MAX / 2, Duration::from_millis(10)).unwrap();
    let bucket =
        Algorithm::leaky_bucket(1_000_000_000, Duration::from_secs(1), 1_000_000_000).unwrap();
    let keys: Vec<String> = (0..100_000).map(|i| format!("caller-{i}")).collect();

    let mut g = c.benchmark_group("rate_limit_decision");
    for (name, alg) in [("sliding_window", sliding), ("leaky_bucket", bucket)] {
        let store = MemoryStore::new();
        g.bench_function(format!("{name}/one_key"), |b| {
            b.iter(|| decide(&store, &alg, "caller-0"))
        });

        let store = MemoryStore::new();
        for k in &keys {
            decide(&store, &alg, k);
        }
        let mut i = 0usize;
        g.bench_function(format!("{name}/100k_keys"), |b| {
            b.iter(|| {
                i = (i + 7919) % keys.len();
                decide(&store, &alg, &keys[i]);
            })
        });
    }
    g.finish();

    // Memory per key: RSS growth while one million keys are live, per key.
    for (name, alg) in [
        (
            "sliding_window",
            Algorithm::sliding_window(10, Duration::from_secs(3600)).unwrap(),
        ),
        (
            "leaky_bucket",
            Algorithm::leaky_bucket(10, Duration::from_secs(3600), 10).unwrap(),
        ),
    ] {
        let before = rss_bytes();
        let store = MemoryStore::new();
        for i in 0..1_000_000 {
            decide(&store, &alg, &format!("caller-{i}"));
        }
        if let (Some(b), Some(a)) = (before, rss_bytes()) {
            println!(
                "{name}: ~{} bytes per live key (RSS growth over 1,000,000 keys, one entry each)",
                a.saturating_sub(b) / 1_000_000
            );
        }
        drop(store);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
