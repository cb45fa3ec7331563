//! Time, injected: every algorithm reads time through [`Clock`].
//!
//! [`TokioClock`] is the default: it follows tokio's clock, so `tokio::time::pause()` and
//! `advance()` move it in tests. [`ManualClock`] is moved only by hand and is shared by
//! all its clones, which makes rate-limit and budget tests exact.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A boxed sleep future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of monotonic time, wall time and sleeps.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current monotonic instant.
    fn now(&self) -> Instant;

    /// The current wall-clock time (for calendar periods such as "this month").
    fn system_now(&self) -> SystemTime;

    /// A future that completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;

    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.now() + duration;
        self.sleep_until(deadline)
    }

    /// Seconds since the Unix epoch, as read from [`Clock::system_now`].
    fn unix_secs(&self) -> u64 {
        self.system_now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A shared, dynamically typed clock.
pub type SharedClock = Arc<dyn Clock>;

/// The default clock: tokio's (pausable) time.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl TokioClock {
    /// The default clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(TokioClock)
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(
            deadline,
        )))
    }
}

/// A clock moved only by [`ManualClock::advance`]; all clones share one time.
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

struct ManualState {
    base: Instant,
    elapsed: Duration,
    system_base: SystemTime,
    waiters: Vec<(Instant, Waker)>,
}

impl ManualClock {
    /// A manual clock whose wall time starts at the given Unix second.
    pub fn starting_at_unix(secs: u64) -> Self {
        ManualClock {
            state: Arc::new(Mutex::new(ManualState {
                base: Instant::now(),
                elapsed: Duration::ZERO,
                system_base: UNIX_EPOCH + Duration::from_secs(secs),
                waiters: Vec::new(),
            })),
        }
    }

    /// A manual clock starting at 2026-01-01T00:00:00Z wall time.
    pub fn new() -> Self {
        ManualClock::starting_at_unix(1_767_225_600)
    }

    /// Moves time forward and wakes every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        let woken = {
            let mut s = self.lock();
            s.elapsed += by;
            let now = s.base + s.elapsed;
            let (due, rest): (Vec<_>, Vec<_>) = s.waiters.drain(..).partition(|(d, _)| *d <= now);
            s.waiters = rest;
            due
        };
        for (_, w) in woken {
            w.wake();
        }
    }

    /// Time elapsed since the clock was created.
    pub fn elapsed(&self) -> Duration {
        self.lock().elapsed
    }

    /// Number of sleepers waiting for a later time.
    pub fn sleepers(&self) -> usize {
        self.lock().waiters.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let s = self.lock();
        s.base + s.elapsed
    }

    fn system_now(&self) -> SystemTime {
        let s = self.lock();
        s.system_base + s.elapsed
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.clock.lock();
        if s.base + s.elapsed >= self.deadline {
            return Poll::Ready(());
        }
        s.waiters.retain(|(_, w)| !w.will_wake(cx.waker()));
        s.waiters.push((self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_on_advance() {
        let clock = ManualClock::new();
        let c2 = clock.clone();
        let h = tokio::spawn(async move { c2.sleep(Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        assert_eq!(clock.sleepers(), 1);
        clock.advance(Duration::from_secs(4));
        tokio::task::yield_now().await;
        assert!(!h.is_finished());
        clock.advance(Duration::from_secs(1));
        h.await.unwrap();
        assert_eq!(clock.unix_secs(), 1_767_225_605);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = TokioClock;
        let t0 = c.now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(c.now() - t0, Duration::from_secs(3));
        c.sleep(Duration::from_secs(10)).await;
        assert!(c.now() - t0 >= Duration::from_secs(13));
    }
}
