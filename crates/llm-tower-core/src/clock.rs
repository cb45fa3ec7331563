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

    /// A future that completes after `duration`. A duration too long to be represented
    /// as an [`Instant`] never completes (no deadline).
    fn sleep(&self, duration: Duration) -> Sleep {
        match self.now().checked_add(duration) {
            Some(deadline) => self.sleep_until(deadline),
            None => Box::pin(std::future::pending()),
        }
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
    /// Pending sleeps: (sleep id, deadline, waker). Keyed by id, not by waker: one task
    /// may await several sleeps at once (a `select!` of a timeout and a delay).
    waiters: Vec<(u64, Instant, Waker)>,
    next_id: u64,
}

impl ManualState {
    fn now(&self) -> Instant {
        self.base + self.elapsed
    }
}

impl ManualClock {
    /// A manual clock whose wall time starts at the given Unix second.
    pub fn starting_at_unix(secs: u64) -> Self {
        ManualClock {
            state: Arc::new(Mutex::new(ManualState {
                base: Instant::now(),
                elapsed: Duration::ZERO,
                system_base: UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .unwrap_or(UNIX_EPOCH),
                waiters: Vec::new(),
                next_id: 0,
            })),
        }
    }

    /// A manual clock starting at 2026-01-01T00:00:00Z wall time.
    pub fn new() -> Self {
        ManualClock::starting_at_unix(1_767_225_600)
    }

    /// Moves time forward and wakes every sleeper whose deadline has passed. Time stops
    /// at the largest instant the platform can represent.
    pub fn advance(&self, by: Duration) {
        let woken = {
            let mut s = self.lock();
            let elapsed = s.elapsed.saturating_add(by);
            if s.base.checked_add(elapsed).is_some() {
                s.elapsed = elapsed;
            }
            let now = s.now();
            let (due, rest): (Vec<_>, Vec<_>) =
                s.waiters.drain(..).partition(|(_, d, _)| *d <= now);
            s.waiters = rest;
            due
        };
        for (_, _, w) in woken {
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
        self.lock().now()
    }

    fn system_now(&self) -> SystemTime {
        let s = self.lock();
        s.system_base
            .checked_add(s.elapsed)
            .unwrap_or(s.system_base)
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let id = {
            let mut s = self.lock();
            s.next_id += 1;
            s.next_id
        };
        Box::pin(ManualSleep {
            clock: self.clone(),
            deadline,
            id,
        })
    }
}

struct ManualSleep {
    clock: ManualClock,
    deadline: Instant,
    /// Identifies this sleep's entry among the waiters.
    id: u64,
}

impl Future for ManualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.clock.lock();
        if s.now() >= self.deadline {
            s.waiters.retain(|(id, _, _)| *id != self.id);
            return Poll::Ready(());
        }
        match s.waiters.iter_mut().find(|(id, _, _)| *id == self.id) {
            Some((_, _, w)) => w.clone_from(cx.waker()),
            None => s.waiters.push((self.id, self.deadline, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        // A sleep dropped before its deadline (the other branch of a select won) leaves
        // no waiter behind.
        self.clock
            .lock()
            .waiters
            .retain(|(id, _, _)| *id != self.id);
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

    #[tokio::test]
    async fn one_task_awaiting_two_sleeps_wakes_for_each() {
        let clock = ManualClock::new();
        let c2 = clock.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // One task polls a 3 s and a 5 s sleep together (as a select of a delay and a
        // timeout does), so both register the same waker.
        let h = tokio::spawn(async move {
            let mut short = c2.sleep(Duration::from_secs(3));
            let mut long = c2.sleep(Duration::from_secs(5));
            let (mut short_done, mut long_done) = (false, false);
            std::future::poll_fn(|cx| {
                if !short_done && short.as_mut().poll(cx).is_ready() {
                    short_done = true;
                    let _ = tx.send(("short", c2.elapsed()));
                }
                if !long_done && long.as_mut().poll(cx).is_ready() {
                    long_done = true;
                    let _ = tx.send(("long", c2.elapsed()));
                }
                if short_done && long_done {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        });
        tokio::task::yield_now().await;
        assert_eq!(clock.sleepers(), 2, "both sleeps are registered");
        clock.advance(Duration::from_secs(3));
        assert_eq!(rx.recv().await, Some(("short", Duration::from_secs(3))));
        assert_eq!(clock.sleepers(), 1, "the 5 s sleep is still registered");
        clock.advance(Duration::from_secs(2));
        assert_eq!(rx.recv().await, Some(("long", Duration::from_secs(5))));
        h.await.unwrap();
        assert_eq!(clock.sleepers(), 0);
    }

    #[tokio::test]
    async fn a_dropped_sleep_leaves_no_waiter() {
        let clock = ManualClock::new();
        let c2 = clock.clone();
        let h = tokio::spawn(async move {
            tokio::select! {
                () = c2.sleep(Duration::from_secs(1)) => "short",
                () = c2.sleep(Duration::from_secs(60)) => "long",
            }
        });
        tokio::task::yield_now().await;
        assert_eq!(clock.sleepers(), 2);
        clock.advance(Duration::from_secs(1));
        assert_eq!(h.await.unwrap(), "short");
        assert_eq!(clock.sleepers(), 0);
    }

    #[test]
    fn sleeping_past_the_end_of_time_never_completes_and_does_not_panic() {
        let clock = ManualClock::new();
        let mut s = clock.sleep(Duration::MAX);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(s.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::MAX);
        assert!(s.as_mut().poll(&mut cx).is_pending());
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
