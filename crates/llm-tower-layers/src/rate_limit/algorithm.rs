//! The pure rate-limit algorithms, on explicit integer time.
//!
//! Both take "now" in nanoseconds and a weight, and answer with a [`Decision`]. They never
//! read a clock, so stores (memory, Redis scripts) run the same arithmetic, and property
//! tests drive them with arbitrary time sequences.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use llm_tower_core::Error;

/// Which algorithm a limiter runs, with its parameters. Build it with
/// [`Algorithm::sliding_window`] or [`Algorithm::leaky_bucket`], which validate.
///
/// The fields are public so stores can read them; a value built directly is checked
/// with [`Algorithm::validate`] by the layer and the in-memory store before any decision,
/// and the algorithms never divide by a zero parameter.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Exact sliding log: in any closed window `[t - window, t]`, the admitted weight is
    /// at most `limit`. Denied requests are not recorded.
    SlidingWindow {
        /// Units admitted per window.
        limit: u64,
        /// The window length.
        window: Duration,
    },
    /// GCRA (a leaky bucket): `rate` units per `per`, with up to `burst` units at once.
    LeakyBucket {
        /// Units per period.
        rate: u64,
        /// The period of `rate`.
        per: Duration,
        /// Units that may pass at once from an idle bucket.
        burst: u64,
    },
}

impl fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Algorithm::SlidingWindow { limit, window } => {
                write!(f, "SlidingWindow({limit} per {window:?})")
            }
            Algorithm::LeakyBucket { rate, per, burst } => {
                write!(f, "LeakyBucket({rate} per {per:?}, burst {burst})")
            }
        }
    }
}

impl Algorithm {
    /// An exact sliding window of `limit` units per `window`.
    ///
    /// # Errors
    /// `Config` when `limit` is 0 or `window` is zero or too long.
    pub fn sliding_window(limit: u64, window: Duration) -> Result<Self, Error> {
        let alg = Algorithm::SlidingWindow { limit, window };
        alg.validate()?;
        Ok(alg)
    }

    /// A leaky bucket (GCRA) of `rate` units per `per`, bursting up to `burst` units.
    ///
    /// # Errors
    /// `Config` when `rate`, `per` or `burst` is zero, or `per` is too long.
    pub fn leaky_bucket(rate: u64, per: Duration, burst: u64) -> Result<Self, Error> {
        let alg = Algorithm::LeakyBucket { rate, per, burst };
        alg.validate()?;
        Ok(alg)
    }

    /// Checks the parameters, as the constructors do. The variants' fields are public,
    /// so a value built directly may be invalid: the rate-limit layer and the in-memory
    /// store refuse such a value with this error instead of deciding on it.
    ///
    /// # Errors
    /// `Config` naming the bad parameter.
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            Algorithm::SlidingWindow { limit, window } => {
                if limit == 0 {
                    return Err(Error::config("sliding window: limit must be > 0"));
                }
                if window.is_zero() {
                    return Err(Error::config("sliding window: window must be > 0"));
                }
                if window.as_nanos() > u128::from(u64::MAX / 4) {
                    return Err(Error::config("sliding window: window is too long"));
                }
            }
            Algorithm::LeakyBucket { rate, per, burst } => {
                if rate == 0 {
                    return Err(Error::config("leaky bucket: rate must be > 0"));
                }
                if per.is_zero() {
                    return Err(Error::config("leaky bucket: period must be > 0"));
                }
                if burst == 0 {
                    return Err(Error::config("leaky bucket: burst must be > 0"));
                }
                if per.as_nanos() > u128::from(u64::MAX / 4) {
                    return Err(Error::config("leaky bucket: period is too long"));
                }
            }
        }
        Ok(())
    }

    /// The most weight one request may have: `limit` or `burst`.
    pub fn capacity(&self) -> u64 {
        match *self {
            Algorithm::SlidingWindow { limit, .. } => limit,
            Algorithm::LeakyBucket { burst, .. } => burst,
        }
    }

    /// A short stable name (`sliding_window`, `leaky_bucket`).
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::SlidingWindow { .. } => "sliding_window",
            Algorithm::LeakyBucket { .. } => "leaky_bucket",
        }
    }
}

/// The answer of a limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; the request may go after `wait` (zero: at once). The weight is recorded at
    /// that future time, so later requests queue behind it (FIFO per key).
    Admitted {
        /// How long to wait before sending.
        wait: Duration,
        /// Units left in the window (or bucket) once this request has gone.
        remaining: u64,
        /// Time until the limiter is fully replenished.
        reset: Duration,
    },
    /// Not now: it would pass after `retry_after`, which is more than the caller may wait.
    /// Nothing was recorded.
    Denied {
        /// The exact time after which the same request would be admitted.
        retry_after: Duration,
    },
    /// Never: the weight exceeds the whole limit (or burst).
    TooHeavy {
        /// The limiter's capacity.
        capacity: u64,
    },
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The log of a sliding window: (time, weight) entries, oldest first. Up to two entries
/// live inline (most keys: one caller, a request now and then), so a lookup does not
/// chase a pointer; longer logs move to a `VecDeque`.
type Entry = (u64, u64);

#[derive(Debug, Clone)]
enum Entries {
    Inline { buf: [(u64, u64); 2], len: u8 },
    Heap(VecDeque<(u64, u64)>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Inline {
            buf: [(0, 0); 2],
            len: 0,
        }
    }
}

impl Entries {
    fn as_slices(&self) -> (&[Entry], &[Entry]) {
        match self {
            Entries::Inline { buf, len } => (&buf[..usize::from(*len)], &[]),
            Entries::Heap(d) => d.as_slices(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(u64, u64)> {
        let (a, b) = self.as_slices();
        a.iter().chain(b.iter())
    }

    fn front(&self) -> Option<&(u64, u64)> {
        self.iter().next()
    }

    fn back(&self) -> Option<&(u64, u64)> {
        match self {
            Entries::Inline { buf, len } => buf[..usize::from(*len)].last(),
            Entries::Heap(d) => d.back(),
        }
    }

    fn back_mut(&mut self) -> Option<&mut (u64, u64)> {
        match self {
            Entries::Inline { buf, len } => buf[..usize::from(*len)].last_mut(),
            Entries::Heap(d) => d.back_mut(),
        }
    }

    fn pop_front(&mut self) {
        match self {
            Entries::Inline { buf, len } => {
                if *len > 0 {
                    buf[0] = buf[1];
                    *len -= 1;
                }
            }
            Entries::Heap(d) => {
                d.pop_front();
            }
        }
    }

    fn push_back(&mut self, entry: (u64, u64)) {
        match self {
            Entries::Inline { buf, len } if usize::from(*len) < buf.len() => {
                buf[usize::from(*len)] = entry;
                *len += 1;
            }
            Entries::Inline { buf, len } => {
                let mut d = VecDeque::with_capacity(8);
                d.extend(buf[..usize::from(*len)].iter().copied());
                d.push_back(entry);
                *self = Entries::Heap(d);
            }
            Entries::Heap(d) => d.push_back(entry),
        }
    }

    fn len(&self) -> usize {
        match self {
            Entries::Inline { len, .. } => usize::from(*len),
            Entries::Heap(d) => d.len(),
        }
    }
}

/// The state of one sliding-window key: a log of (time, weight), oldest first.
#[derive(Debug, Clone, Default)]
pub struct SlidingLog {
    entries: Entries,
    total: u64,
    /// The latest "now" seen: a decision never runs on an earlier time than a previous
    /// one. A caller may read the clock, then lose the race for the key to a caller that
    /// read it later; its decision must not treat that caller's entry as being in its
    /// future (which would deny it for a few nanoseconds in `Reject` mode).
    seen: u64,
}

impl SlidingLog {
    /// Decides a request of `weight` at `now` (nanoseconds), waiting at most `max_wait`.
    pub fn acquire(
        &mut self,
        limit: u64,
        window: u64,
        now: u64,
        weight: u64,
        max_wait: u64,
    ) -> Decision {
        if weight > limit {
            return Decision::TooHeavy { capacity: limit };
        }
        let now = now.max(self.seen);
        self.seen = now;
        // Closed window [now - window, now]: an entry at t still counts while t >= now - window.
        self.evict(now, window);
        let start = self.entries.back().map_or(now, |&(t, _)| t.max(now));
        let at = self.earliest(limit, window, start, weight);
        let wait = at.saturating_sub(now);
        if wait > max_wait {
            return Decision::Denied {
                retry_after: Duration::from_nanos(wait),
            };
        }
        match self.entries.back_mut() {
            Some((t, w)) if *t == at => *w = w.saturating_add(weight),
            _ => self.entries.push_back((at, weight)),
        }
        self.total = self.total.saturating_add(weight);
        let in_window = self.weight_since(at.saturating_sub(window));
        let reset = self.entries.back().map_or(0, |&(t, _)| {
            t.saturating_add(window)
                .saturating_add(1)
                .saturating_sub(now)
        });
        Decision::Admitted {
            wait: Duration::from_nanos(wait),
            remaining: limit.saturating_sub(in_window),
            reset: Duration::from_nanos(reset),
        }
    }

    /// The earliest time >= `start` at which `weight` fits.
    fn earliest(&self, limit: u64, window: u64, start: u64, weight: u64) -> u64 {
        let lower = start.saturating_sub(window);
        let counted = self.weight_since(lower);
        let Some(need) = counted.saturating_add(weight).checked_sub(limit) else {
            return start;
        };
        if need == 0 {
            return start;
        }
        let leaves = |t: u64| t.saturating_add(window).saturating_add(1).max(start);
        let mut need = need;
        for &(t, w) in self.entries.iter().filter(|&&(t, _)| t >= lower) {
            need = need.saturating_sub(w);
            if need == 0 {
                // The entry at t leaves the closed window once now - window > t.
                return leaves(t);
            }
        }
        // Unreachable when weight <= limit, but stay safe: after everything has expired.
        self.entries.back().map_or(start, |&(t, _)| leaves(t))
    }

    fn weight_since(&self, lower: u64) -> u64 {
        let mut sum = self.total;
        for &(t, w) in self.entries.iter() {
            if t >= lower {
                break;
            }
            sum = sum.saturating_sub(w);
        }
        sum
    }

    fn evict(&mut self, now: u64, window: u64) {
        let lower = now.saturating_sub(window);
        while let Some(&(t, w)) = self.entries.front() {
            if t >= lower {
                break;
            }
            self.entries.pop_front();
            self.total = self.total.saturating_sub(w);
        }
    }

    /// `true` when nothing in the log can affect a future decision.
    pub fn is_idle(&self, now: u64, window: u64) -> bool {
        self.entries
            .back()
            .is_none_or(|&(t, _)| t < now.saturating_sub(window))
    }

    /// Number of log entries held (memory accounting).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when the log is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}

/// The state of one leaky-bucket key: the theoretical arrival time (GCRA).
///
/// The arithmetic is exact: time is counted in units of `1 / rate` nanoseconds, so one
/// unit of weight advances the arrival time by exactly `per` such units and the burst
/// tolerance is exactly `burst * per`, whatever `per / rate` is. From an idle bucket
/// exactly `burst` units pass at once, and over any interval of length `L` at most
/// `burst + rate * L / per` units pass. Waits and retry-afters are rounded up to whole
/// nanoseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gcra {
    /// Whole nanoseconds of the theoretical arrival time...
    tat: u64,
    /// ...plus `frac / rate` of a nanosecond (`frac < rate`).
    frac: u64,
    /// The latest "now" seen: a decision never runs on an earlier time than a previous
    /// one (a caller may read the clock before another caller decides).
    seen: u64,
}

/// A time as whole nanoseconds plus `frac / rate` of a nanosecond (`frac < rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Exact {
    ns: u64,
    frac: u64,
}

impl Exact {
    const fn whole(ns: u64) -> Exact {
        Exact { ns, frac: 0 }
    }

    /// `x * per / rate` nanoseconds, exactly (the whole part saturates).
    fn of(x: u64, per: u64, rate: u64) -> Exact {
        match x.checked_mul(per) {
            // The usual case: one 64-bit division.
            Some(v) => Exact {
                ns: v / rate,
                frac: v % rate,
            },
            None => {
                let v = u128::from(x) * u128::from(per);
                let r = u128::from(rate);
                Exact {
                    ns: u64::try_from(v / r).unwrap_or(u64::MAX),
                    frac: u64::try_from(v % r).unwrap_or(0),
                }
            }
        }
    }

    fn add(self, other: Exact, rate: u64) -> Exact {
        let frac = u128::from(self.frac) + u128::from(other.frac);
        let ns = self.ns.saturating_add(other.ns);
        if frac >= u128::from(rate) {
            Exact {
                ns: ns.saturating_add(1),
                frac: u64::try_from(frac - u128::from(rate)).unwrap_or(0),
            }
        } else {
            Exact {
                ns,
                frac: u64::try_from(frac).unwrap_or(0),
            }
        }
    }

    /// `self - other`, or zero when `other` is later.
    fn sub(self, other: Exact, rate: u64) -> Exact {
        if self <= other {
            return Exact::whole(0);
        }
        if self.frac >= other.frac {
            Exact {
                ns: self.ns - other.ns,
                frac: self.frac - other.frac,
            }
        } else {
            // self > other with a smaller fraction: self.ns > other.ns.
            Exact {
                ns: self.ns - other.ns - 1,
                frac: rate - (other.frac - self.frac),
            }
        }
    }

    /// Rounded up to whole nanoseconds.
    fn ceil(self) -> u64 {
        self.ns.saturating_add(u64::from(self.frac > 0))
    }

    /// How many times `per / rate` ns fits in `self`: `floor((ns * rate + frac) / per)`.
    fn units(self, per: u64, rate: u64) -> u64 {
        let scaled = self
            .ns
            .checked_mul(rate)
            .and_then(|v| v.checked_add(self.frac));
        match scaled {
            Some(v) => v.checked_div(per).unwrap_or(u64::MAX),
            None => {
                let v = u128::from(self.ns) * u128::from(rate) + u128::from(self.frac);
                v.checked_div(u128::from(per))
                    .map_or(u64::MAX, |n| u64::try_from(n).unwrap_or(u64::MAX))
            }
        }
    }
}

impl Gcra {
    /// Decides a request of `weight` at `now` (nanoseconds), waiting at most `max_wait`.
    ///
    /// A `rate` of zero admits nothing ([`Decision::TooHeavy`] with capacity 0); the
    /// validating constructor [`Algorithm::leaky_bucket`] never produces one.
    pub fn acquire(
        &mut self,
        rate: u64,
        per: u64,
        burst: u64,
        now: u64,
        weight: u64,
        max_wait: u64,
    ) -> Decision {
        if weight > burst {
            return Decision::TooHeavy { capacity: burst };
        }
        if rate == 0 {
            return Decision::TooHeavy { capacity: 0 };
        }
        let now = now.max(self.seen);
        self.seen = now;
        let tat = if self.frac < rate {
            Exact {
                ns: self.tat,
                frac: self.frac,
            }
        } else {
            // The rate changed under this key: round the old time up (stricter).
            Exact::whole(self.tat.saturating_add(1))
        };
        let now_x = Exact::whole(now);
        let tau = Exact::of(burst, per, rate);
        let new_tat = tat.max(now_x).add(Exact::of(weight, per, rate), rate);
        let allowed_at = new_tat.sub(tau, rate);
        let wait = allowed_at.sub(now_x, rate).ceil();
        if wait > max_wait {
            return Decision::Denied {
                retry_after: Duration::from_nanos(wait),
            };
        }
        self.tat = new_tat.ns;
        self.frac = new_tat.frac;
        let start = Exact::whole(now.saturating_add(wait));
        let free = start.add(tau, rate).sub(new_tat, rate);
        Decision::Admitted {
            wait: Duration::from_nanos(wait),
            remaining: free.units(per, rate).min(burst),
            reset: Duration::from_nanos(new_tat.sub(now_x, rate).ceil()),
        }
    }

    /// `true` when the bucket is empty (equivalent to a fresh key).
    pub fn is_idle(&self, now: u64) -> bool {
        self.tat.saturating_add(u64::from(self.frac > 0)) <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    fn admitted(d: Decision) -> bool {
        matches!(d, Decision::Admitted { .. })
    }

    #[test]
    fn sliding_window_is_closed_and_exact() {
        let mut log = SlidingLog::default();
        assert!(admitted(log.acquire(2, 10 * S, 0, 1, 0)));
        assert!(admitted(log.acquire(2, 10 * S, 5 * S, 1, 0)));
        // At exactly t = 10s the entry at 0 is still inside [0, 10].
        assert_eq!(
            log.acquire(2, 10 * S, 10 * S, 1, 0),
            Decision::Denied {
                retry_after: Duration::from_nanos(1)
            }
        );
        assert!(admitted(log.acquire(2, 10 * S, 10 * S + 1, 1, 0)));
    }

    #[test]
    fn sliding_window_retry_after_is_exact_for_weights() {
        let mut log = SlidingLog::default();
        log.acquire(10, 60 * S, 0, 4, 0);
        log.acquire(10, 60 * S, 10 * S, 4, 0);
        // 8 used; a weight of 5 needs 3 freed: the first entry (4) leaves at 60s + 1ns.
        match log.acquire(10, 60 * S, 20 * S, 5, 0) {
            Decision::Denied { retry_after } => {
                assert_eq!(retry_after, Duration::from_nanos(40 * S + 1))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            log.acquire(10, 60 * S, 20 * S, 11, 0),
            Decision::TooHeavy { capacity: 10 }
        );
    }

    #[test]
    fn sliding_window_wait_reserves_fifo_slots() {
        let mut log = SlidingLog::default();
        let w = 10 * S;
        assert!(admitted(log.acquire(1, w, 0, 1, u64::MAX)));
        let Decision::Admitted { wait: w1, .. } = log.acquire(1, w, 0, 1, u64::MAX) else {
            panic!()
        };
        let Decision::Admitted { wait: w2, .. } = log.acquire(1, w, 0, 1, u64::MAX) else {
            panic!()
        };
        assert_eq!(w1, Duration::from_nanos(w + 1));
        assert_eq!(w2, Duration::from_nanos(2 * (w + 1)));
    }

    #[test]
    fn gcra_bursts_then_paces() {
        let mut g = Gcra::default();
        // 10 per second, burst 3.
        for _ in 0..3 {
            assert!(admitted(g.acquire(10, S, 3, 0, 1, 0)));
        }
        match g.acquire(10, S, 3, 0, 1, 0) {
            Decision::Denied { retry_after } => assert_eq!(retry_after, Duration::from_millis(100)),
            other => panic!("{other:?}"),
        }
        assert!(admitted(g.acquire(10, S, 3, S / 10, 1, 0)));
        assert_eq!(
            g.acquire(10, S, 3, S, 4, 0),
            Decision::TooHeavy { capacity: 3 }
        );
    }

    #[test]
    fn a_stale_now_after_a_later_entry_is_decided_at_the_later_time() {
        // Caller A reads the clock at 999 ns; caller B reads 1000 ns, takes the key first
        // and records its entry at 1000. A then decides with its earlier reading: the
        // window is nearly empty, so A must pass at once, not be told to wait 1 ns.
        let mut log = SlidingLog::default();
        assert!(admitted(log.acquire(10, 10 * S, 1000, 1, 0)));
        assert_eq!(
            log.acquire(10, 10 * S, 999, 1, 0),
            Decision::Admitted {
                wait: Duration::ZERO,
                remaining: 8,
                reset: Duration::from_nanos(10 * S + 1),
            }
        );
        let mut g = Gcra::default();
        assert!(admitted(g.acquire(10, S, 2, 1000, 1, 0)));
        assert!(
            matches!(g.acquire(10, S, 2, 999, 1, 0), Decision::Admitted { wait, .. } if wait.is_zero())
        );
    }

    #[test]
    fn a_queued_waiter_still_holds_its_future_slot() {
        // The clamp is to the latest time *seen*, not to the latest entry: a slot
        // reserved in the future by a waiter keeps later callers behind it.
        let mut log = SlidingLog::default();
        assert!(admitted(log.acquire(1, 10 * S, 0, 1, 0)));
        let Decision::Admitted { wait, .. } = log.acquire(1, 10 * S, 0, 1, u64::MAX) else {
            panic!()
        };
        assert_eq!(wait, Duration::from_nanos(10 * S + 1));
        assert!(matches!(
            log.acquire(1, 10 * S, S, 1, 0),
            Decision::Denied { .. }
        ));
    }

    #[test]
    fn gcra_admits_the_whole_burst_when_per_over_rate_is_fractional() {
        // 3 per second (333,333,333.3 ns each), burst 3.
        let mut g = Gcra::default();
        for i in 0..3 {
            assert!(admitted(g.acquire(3, S, 3, 0, 1, 0)), "request {i}");
        }
        match g.acquire(3, S, 3, 0, 1, 0) {
            Decision::Denied { retry_after } => {
                assert_eq!(retry_after, Duration::from_nanos(333_333_334))
            }
            other => panic!("{other:?}"),
        }
        // 7 per minute, burst 7.
        let mut g = Gcra::default();
        for i in 0..7 {
            assert!(admitted(g.acquire(7, 60 * S, 7, 0, 1, 0)), "request {i}");
        }
        assert!(!admitted(g.acquire(7, 60 * S, 7, 0, 1, 0)));
        // Over an hour at full demand, exactly 7 * 60 + 7 pass (the long-run rate is exact).
        let mut g = Gcra::default();
        let mut n = 0u64;
        let mut now = 0u64;
        while now <= 3600 * S {
            match g.acquire(7, 60 * S, 7, now, 1, 0) {
                Decision::Admitted { .. } => n += 1,
                Decision::Denied { retry_after } => now += nanos(retry_after),
                Decision::TooHeavy { .. } => unreachable!(),
            }
        }
        assert_eq!(n, 7 * 60 + 7);
    }

    #[test]
    fn invalid_parameters_never_panic() {
        let bad = [
            Algorithm::SlidingWindow {
                limit: 0,
                window: Duration::from_secs(1),
            },
            Algorithm::SlidingWindow {
                limit: 1,
                window: Duration::ZERO,
            },
            Algorithm::SlidingWindow {
                limit: 1,
                window: Duration::MAX,
            },
            Algorithm::LeakyBucket {
                rate: 0,
                per: Duration::from_secs(1),
                burst: 1,
            },
            Algorithm::LeakyBucket {
                rate: 1,
                per: Duration::ZERO,
                burst: 1,
            },
            Algorithm::LeakyBucket {
                rate: 1,
                per: Duration::from_secs(1),
                burst: 0,
            },
        ];
        for alg in bad {
            assert_eq!(
                alg.validate().unwrap_err().kind(),
                llm_tower_core::ErrorKind::Config,
                "{alg:?}"
            );
        }
        let mut g = Gcra::default();
        assert_eq!(
            g.acquire(0, S, 5, S, 1, 0),
            Decision::TooHeavy { capacity: 0 }
        );
        assert!(admitted(g.acquire(1, 0, 5, S, 1, 0)));
        assert!(admitted(g.acquire(
            u64::MAX,
            u64::MAX,
            u64::MAX,
            u64::MAX,
            u64::MAX,
            u64::MAX
        )));
        let mut log = SlidingLog::default();
        for now in [0, u64::MAX - 1, u64::MAX] {
            let _ = log.acquire(u64::MAX, u64::MAX, now, u64::MAX, u64::MAX);
            let _ = log.acquire(1, u64::MAX, now, 1, u64::MAX);
        }
    }

    proptest! {
        /// From an idle bucket, exactly `burst` unit requests pass at one instant, for any
        /// rate, period and burst.
        #[test]
        fn gcra_admits_exactly_the_burst_from_idle(
            rate in 1u64..=u64::from(u32::MAX),
            per in 1u64..=(1u64 << 50),
            burst in 1u64..=300,
            start in 0u64..=(1u64 << 62),
        ) {
            let mut g = Gcra::default();
            for i in 0..burst {
                let d = g.acquire(rate, per, burst, start, 1, 0);
                prop_assert!(admitted(d), "request {} of burst {} denied: {:?}", i, burst, d);
            }
            let d = g.acquire(rate, per, burst, start, 1, 0);
            prop_assert!(matches!(d, Decision::Denied { .. }), "request beyond burst {}: {:?}", burst, d);
        }

        /// In every closed window of length W, admitted weight <= limit.
        #[test]
        fn sliding_window_never_exceeds_limit(
            limit in 1u64..20,
            window_ms in 1u64..1000,
            steps in proptest::collection::vec((0u64..400, 1u64..6, any::<bool>()), 1..200),
        ) {
            let window = window_ms * 1_000_000;
            let mut log = SlidingLog::default();
            let mut now = 0u64;
            let mut admitted_at: Vec<(u64, u64)> = Vec::new();
            for (dt_ms, weight, wait) in steps {
                now += dt_ms * 1_000_000;
                let max_wait = if wait { window * 3 } else { 0 };
                if let Decision::Admitted { wait, .. } = log.acquire(limit, window, now, weight, max_wait) {
                    admitted_at.push((now + nanos(wait), weight));
                }
            }
            for &(t, _) in &admitted_at {
                // Windows ending at each admission time are the worst case.
                let sum: u64 = admitted_at.iter().filter(|&&(s, _)| s <= t && s + window >= t).map(|&(_, w)| w).sum();
                prop_assert!(sum <= limit, "sum {} > limit {} at {}", sum, limit, t);
            }
        }

        /// Over any interval of length L, GCRA admits at most burst + rate * L / per, also
        /// when per / rate is not a whole number of nanoseconds.
        #[test]
        fn gcra_never_exceeds_rate_plus_burst(
            rate in 1u64..50,
            per in 1_000_000u64..(3 * S),
            burst in 1u64..10,
            steps in proptest::collection::vec((0u64..200, 1u64..4), 1..200),
        ) {
            let mut g = Gcra::default();
            let mut now = 0u64;
            let mut admitted_at: Vec<(u64, u64)> = Vec::new();
            for (dt_ms, weight) in steps {
                now += dt_ms * 1_000_000;
                if let Decision::Admitted { wait, .. } = g.acquire(rate, per, burst, now, weight, 0) {
                    admitted_at.push((now + nanos(wait), weight));
                }
            }
            for (i, &(t0, _)) in admitted_at.iter().enumerate() {
                let mut sum = 0u128;
                for &(t, w) in &admitted_at[i..] {
                    sum += u128::from(w);
                    let allowed = u128::from(burst) + u128::from(rate) * u128::from(t - t0) / u128::from(per);
                    prop_assert!(sum <= allowed, "sum {} > allowed {}", sum, allowed);
                }
            }
        }
    }
}
