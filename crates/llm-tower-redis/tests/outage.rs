//! Redis going away and coming back: fail closed refuses, fail open decides locally (and
//! still limits), both return to Redis, and accounting resumes. A private `redis-server`
//! on a free port is started and killed; the shared server is never touched.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use llm_tower_core::{Error, ErrorKind, ManualClock, Money};
use llm_tower_layers::cost::{BudgetStore, ReserveOutcome};
use llm_tower_layers::rate_limit::{Acquire, Algorithm, Decision, RateLimitStore};
use llm_tower_redis::{FailurePolicy, RedisBudgetStore, RedisConfig, RedisRateLimitStore};
use tokio::process::{Child, Command};
use tracing::Level;
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Counts this crate's warnings and infos on one thread (the tests run on current-thread
/// runtimes).
#[derive(Clone, Default)]
struct LogCount {
    warn: Arc<AtomicUsize>,
    info: Arc<AtomicUsize>,
}

thread_local! {
    static THREAD_COUNT: RefCell<Option<LogCount>> = const { RefCell::new(None) };
}

/// The global subscriber's one layer: hands each event to the current thread's counter.
/// (One global subscriber rather than one per thread: per-thread subscribers that come and
/// go while other tests log can make tracing cache a callsite as uninteresting.)
struct Forward;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Forward {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let m = event.metadata();
        if !m.target().starts_with("llm_tower_redis") {
            return;
        }
        THREAD_COUNT.with(|c| {
            if let Some(count) = &*c.borrow() {
                match *m.level() {
                    Level::WARN => count.warn.fetch_add(1, Ordering::Relaxed),
                    Level::INFO => count.info.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
            }
        });
    }
}

/// Installs the global subscriber; every test calls it first, before anything logs.
fn init_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Forward))
            .unwrap();
    });
}

/// Stops counting on this thread when dropped.
struct CountGuard;

impl Drop for CountGuard {
    fn drop(&mut self) {
        THREAD_COUNT.with(|c| *c.borrow_mut() = None);
    }
}

impl LogCount {
    /// Counts this thread's events from now on.
    fn install() -> (LogCount, CountGuard) {
        init_logs();
        let count = LogCount::default();
        THREAD_COUNT.with(|c| *c.borrow_mut() = Some(count.clone()));
        (count, CountGuard)
    }

    fn get(&self) -> (usize, usize) {
        (
            self.warn.load(Ordering::Relaxed),
            self.info.load(Ordering::Relaxed),
        )
    }
}

/// A `redis-server` child process on `port`, killed on drop.
struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    /// Starts a server on `port` and waits until it answers; `None` when `redis-server`
    /// is not installed.
    async fn start(port: u16) -> Option<PrivateRedis> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let url = format!("redis://127.0.0.1:{port}/");
        // Readiness: poll until it answers PING (bounded; this waits for a process, not for
        // any clock the stores read).
        for _ in 0..200 {
            let ping = async {
                let mut c = redis::Client::open(url.as_str())
                    .ok()?
                    .get_multiplexed_async_connection()
                    .await
                    .ok()?;
                redis::cmd("PING").query_async::<String>(&mut c).await.ok()
            };
            if tokio::time::timeout(Duration::from_millis(500), ping)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                return Some(PrivateRedis { child });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {port} did not come up");
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn acquire(
    store: &dyn RateLimitStore,
    key: &str,
    alg: &Algorithm,
) -> Result<Decision, Error> {
    store
        .acquire(Acquire {
            scope: "outage",
            key,
            algorithm: alg,
            weight: 1,
            max_wait: Duration::ZERO,
        })
        .await
}

async fn admitted(store: &dyn RateLimitStore, key: &str, alg: &Algorithm, tries: usize) -> usize {
    let mut n = 0;
    for _ in 0..tries {
        if matches!(
            acquire(store, key, alg).await.unwrap(),
            Decision::Admitted { .. }
        ) {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn stores_follow_their_policy_through_an_outage_and_come_back() {
    let (logs, _guard) = LogCount::install();
    let port = free_port();
    let Some(server) = PrivateRedis::start(port).await else {
        common::skip(
            "outage",
            "redis-server could not be started (apt-get install redis-server)",
        );
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let base = RedisConfig::new(url.as_str())
        .prefix(common::unique_prefix("outage"))
        .timeout(Duration::from_millis(500))
        .reconnect_interval(Duration::ZERO);
    let closed_cfg = base.clone().failure_policy(FailurePolicy::FailClosed);
    let open_cfg = base.clone().failure_policy(FailurePolicy::FailOpenLocal);
    let clock = ManualClock::new();
    let closed = RedisRateLimitStore::new(&closed_cfg)
        .unwrap()
        .with_test_clock(clock.clone());
    let open = RedisRateLimitStore::new(&open_cfg)
        .unwrap()
        .with_test_clock(clock.clone());
    let closed_budget = RedisBudgetStore::new(&closed_cfg).unwrap();
    let open_budget = RedisBudgetStore::new(&open_cfg).unwrap();
    let alg = Algorithm::sliding_window(4, Duration::from_secs(60)).unwrap();
    let limit = Money::from_nanos(1_000);
    let ttl = Duration::from_secs(60);

    // Up: the two stores share one limit.
    assert_eq!(admitted(&closed, "a", &alg, 2).await, 2);
    assert_eq!(admitted(&open, "a", &alg, 5).await, 2);
    assert_eq!(admitted(&closed, "a", &alg, 1).await, 0);

    server.stop().await;

    // Fail closed: Store errors, every time, no panic.
    for _ in 0..3 {
        let e = acquire(&closed, "b", &alg).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store, "{e}");
        let e = closed_budget
            .reserve("k", Money::from_nanos(1), limit, ttl)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Store, "{e}");
    }
    assert!(!closed.connection().is_up());
    assert!(!e_contains_password(
        &acquire(&closed, "b", &alg).await.unwrap_err()
    ));

    // Fail open: local limits, never unlimited.
    assert_eq!(
        admitted(&open, "b", &alg, 10).await,
        4,
        "the local store still limits"
    );
    assert!(!open.connection().is_up());
    let ReserveOutcome::Reserved(local_id) = open_budget
        .reserve("k", Money::from_nanos(700), limit, ttl)
        .await
        .unwrap()
    else {
        panic!("a local reservation within the limit")
    };
    assert!(local_id.0.starts_with("local:"), "{local_id:?}");
    assert!(matches!(
        open_budget
            .reserve("k", Money::from_nanos(400), limit, ttl)
            .await
            .unwrap(),
        ReserveOutcome::Exceeded { .. }
    ));

    // One warning per connection that went down (four stores, four connections), not one
    // per request.
    assert_eq!(logs.get(), (4, 0));
    for _ in 0..5 {
        let _ = acquire(&closed, "b", &alg).await;
        let _ = acquire(&open, "b", &alg).await;
    }
    assert_eq!(logs.get(), (4, 0));

    // Back on the same port (empty: no persistence).
    let server = PrivateRedis::start(port).await.unwrap();
    let mut back = false;
    for _ in 0..20 {
        if acquire(&closed, "c", &alg).await.is_ok() {
            back = true;
            break;
        }
    }
    assert!(back, "fail-closed store did not return to Redis");
    assert!(closed.connection().is_up());
    // The open store returns to Redis too, and accounting is shared again: "c" has 3 left.
    let mut shared = 0;
    for _ in 0..20 {
        let d = acquire(&open, "c", &alg).await.unwrap();
        if open.connection().is_up() {
            shared += usize::from(matches!(d, Decision::Admitted { .. }));
            if shared == 3 {
                break;
            }
        }
    }
    assert_eq!(shared, 3, "the open store admits what Redis has left");
    assert_eq!(
        admitted(&closed, "c", &alg, 2).await,
        0,
        "and both see the same full window"
    );
    assert_eq!(admitted(&open, "c", &alg, 2).await, 0);

    // The reservation made locally during the outage settles into Redis.
    let s = open_budget
        .settle("k", &local_id, Money::from_nanos(650))
        .await
        .unwrap();
    assert_eq!((s.before, s.after), (Money::ZERO, Money::from_nanos(650)));
    let u = closed_budget.usage("k").await.unwrap();
    assert_eq!((u.spent, u.reserved), (Money::from_nanos(650), Money::ZERO));
    assert_eq!(
        open_budget.local().usage_now("k").reserved,
        Money::ZERO,
        "the local hold is released"
    );
    assert!(matches!(
        closed_budget
            .reserve("k", Money::from_nanos(400), limit, ttl)
            .await
            .unwrap(),
        ReserveOutcome::Exceeded { .. }
    ));
    // One "reachable again" per connection.
    assert_eq!(logs.get(), (4, 4));

    server.stop().await;
}

/// Reserves `amount` of 1000 nano-USD for a minute; panics when it does not fit.
async fn reserved(
    store: &RedisBudgetStore,
    key: &str,
    amount: i64,
) -> llm_tower_layers::cost::ReservationId {
    match store
        .reserve(
            key,
            Money::from_nanos(amount),
            Money::from_nanos(1_000),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
    {
        ReserveOutcome::Reserved(id) => id,
        o => panic!("{o:?}"),
    }
}

#[tokio::test]
async fn budget_spend_settled_during_an_outage_reaches_redis_when_it_is_back() {
    let (logs, _guard) = LogCount::install();
    let port = free_port();
    let Some(server) = PrivateRedis::start(port).await else {
        common::skip(
            "outage (budget replay)",
            "redis-server could not be started (apt-get install redis-server)",
        );
        return;
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let base = RedisConfig::new(url.as_str())
        .prefix(common::unique_prefix("replay"))
        .timeout(Duration::from_millis(500))
        .reconnect_interval(Duration::ZERO);
    let prefix = base.prefix.clone();
    let closed =
        RedisBudgetStore::new(&base.clone().failure_policy(FailurePolicy::FailClosed)).unwrap();
    let open = RedisBudgetStore::new(&base.failure_policy(FailurePolicy::FailOpenLocal)).unwrap();
    let limit = Money::from_nanos(1_000);
    let ttl = Duration::from_secs(60);
    let nanos = Money::from_nanos;
    let (kc, ko) = ("closed::day:7", "open::day:7");

    // Up: 600 spent on the open store's counter, and one hold on each counter.
    let id = reserved(&open, ko, 600).await;
    open.settle(ko, &id, nanos(600)).await.unwrap();
    let held_closed = reserved(&closed, kc, 300).await;
    let held_open = reserved(&open, ko, 200).await;

    server.stop().await;

    // Fail closed: the settlement is refused, but its spend is kept.
    let e = closed
        .settle(kc, &held_closed, nanos(250))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store, "{e}");
    assert!(e.to_string().contains("kept"), "{e}");
    assert_eq!(closed.queued_counters(), 1);

    // Fail open: a Redis reservation settled locally, on top of the 600 last seen in Redis.
    let s = open.settle(ko, &held_open, nanos(150)).await.unwrap();
    assert_eq!((s.before, s.after), (nanos(600), nanos(750)));
    // The local fallback starts from what Redis last said: 250 left, not 1000.
    assert!(matches!(
        open.reserve(ko, nanos(300), limit, ttl).await.unwrap(),
        ReserveOutcome::Exceeded { .. }
    ));
    let local = reserved(&open, ko, 250).await;
    assert!(local.0.starts_with("local:"), "{local:?}");
    open.settle(ko, &local, nanos(240)).await.unwrap();
    assert_eq!(open.queued_counters(), 1, "merged per counter");
    // Two connections down, and one "spend queued" warning per store.
    assert_eq!(logs.get(), (4, 0));

    // Back, empty (no persistence): only the replayed spend is there.
    let server = PrivateRedis::start(port).await.unwrap();
    let mut replayed = None;
    for _ in 0..20 {
        if let Ok(u) = closed.usage(kc).await {
            replayed = Some(u);
            break;
        }
    }
    let u = replayed.expect("the fail-closed store did not return to Redis");
    assert_eq!((u.spent, u.reserved), (nanos(250), Money::ZERO));
    assert_eq!(closed.queued_counters(), 0);
    let mut spent = None;
    for _ in 0..20 {
        let u = open.usage(ko).await.unwrap();
        if open.connection().is_up() {
            spent = Some(u.spent);
            break;
        }
    }
    assert_eq!(
        spent,
        Some(nanos(150 + 240)),
        "both settlements of the outage"
    );
    assert_eq!(open.queued_counters(), 0);
    assert_eq!(open.local().usage_now(ko).reserved, Money::ZERO);
    // The replayed counters carry their retention (a day counter: two days).
    let mut raw = common::raw(&url).await;
    for key in [kc, ko] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}:v1:{{b:{key}}}:spent"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(pttl > 172_000_000 && pttl <= 172_800_000, "{key}: {pttl}");
    }
    // One "reachable again" per connection and one "replayed" per store.
    assert_eq!(logs.get(), (4, 4));

    server.stop().await;
}

fn e_contains_password(e: &Error) -> bool {
    e.to_string().contains("secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_cannot_hang_requests() {
    init_logs();
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let base = RedisConfig::new(format!("redis://:secret@127.0.0.1:{port}/"))
        .prefix(common::unique_prefix("hung"))
        .timeout(Duration::from_millis(200))
        .reconnect_interval(Duration::from_secs(3600));
    let alg = Algorithm::leaky_bucket(1, Duration::from_secs(60), 2).unwrap();

    let closed =
        RedisRateLimitStore::new(&base.clone().failure_policy(FailurePolicy::FailClosed)).unwrap();
    let e = acquire(&closed, "k", &alg).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Store);
    assert!(!e_contains_password(&e), "{e}");
    assert!(format!("{closed:?}").contains(":***@"), "{closed:?}");
    // Down, and the next check is an hour away: refused at once, without trying.
    let e = acquire(&closed, "k", &alg).await.unwrap_err();
    assert!(e.to_string().contains("unreachable"), "{e}");

    let open =
        RedisRateLimitStore::new(&base.failure_policy(FailurePolicy::FailOpenLocal)).unwrap();
    assert_eq!(
        admitted(&open, "k", &alg, 5).await,
        2,
        "burst 2, decided locally"
    );
    hold.abort();
}
