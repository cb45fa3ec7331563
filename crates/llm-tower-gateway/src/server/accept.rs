//! Helpers of the accept loop: the log throttle for accept errors, the classification of
//! accept errors, and the queue of open connections from which idle ones are shed when the
//! connection limit is reached.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::connection::ConnState;

/// Lets one log line through per `every`, counting the ones it holds back.
#[derive(Debug)]
pub(super) struct LogThrottle {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub(super) fn new(every: Duration) -> Self {
        LogThrottle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being the lines held back since the
    /// last one; `None` when this one is held back.
    pub(super) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Why `accept` failed, as the `reason` label of `llm_tower_gateway_accept_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AcceptError {
    /// The process or the system ran out of file descriptors (`EMFILE`, `ENFILE`).
    Descriptors,
    /// The client gave up before the accept (`ECONNABORTED`, `ECONNRESET`).
    Aborted,
    /// Anything else (`ENOBUFS`, `ENOMEM`, ...).
    Other,
}

/// `EMFILE` and `ENFILE`: the same numbers on Linux, macOS and the BSDs.
#[cfg(unix)]
const DESCRIPTOR_ERRNOS: [i32; 2] = [24, 23];
#[cfg(not(unix))]
const DESCRIPTOR_ERRNOS: [i32; 0] = [];

impl AcceptError {
    pub(super) fn of(e: &io::Error) -> Self {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
        ) {
            AcceptError::Aborted
        } else if e
            .raw_os_error()
            .is_some_and(|n| DESCRIPTOR_ERRNOS.contains(&n))
        {
            AcceptError::Descriptors
        } else {
            AcceptError::Other
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            AcceptError::Descriptors => "descriptors",
            AcceptError::Aborted => "aborted",
            AcceptError::Other => "other",
        }
    }
}

/// How many connections one [`OpenConnections::shed_one`] call looks at, at most.
const SHED_SCAN: usize = 64;
/// A connection is shed only after this long without a request in flight, so that one
/// just accepted gets to read the request its client sent with the handshake, and a
/// keep-alive one the request that follows a response.
pub(super) const SHED_MIN_IDLE: Duration = Duration::from_millis(20);

/// The open connections in accept order (oldest first), to shed idle ones when the
/// connection limit is reached.
#[derive(Debug, Default)]
pub(super) struct OpenConnections {
    queue: VecDeque<Weak<ConnState>>,
}

impl OpenConnections {
    /// Records a new connection; forgets ended ones once they outnumber the live ones.
    pub(super) fn push(&mut self, conn: &Arc<ConnState>, live: usize) {
        if self.queue.len() > 2 * live + 64 {
            self.queue.retain(|w| w.strong_count() > 0);
        }
        self.queue.push_back(Arc::downgrade(conn));
    }

    /// Asks the oldest connection with no request in flight for [`SHED_MIN_IDLE`] (one
    /// that sent no request yet, or an idle keep-alive one) to close; `true` if one was
    /// asked. Looks at no more than a few connections per call; the others go to the back
    /// of the queue.
    pub(super) fn shed_one(&mut self, now: Instant) -> bool {
        for _ in 0..self.queue.len().min(SHED_SCAN) {
            let Some(weak) = self.queue.pop_front() else {
                break;
            };
            let Some(conn) = weak.upgrade() else {
                continue; // ended
            };
            if conn.closing() {
                continue; // ends soon on its own
            }
            let shed = conn.sheddable(now, SHED_MIN_IDLE);
            if shed {
                conn.shed();
            }
            self.queue.push_back(weak);
            if shed {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_of_held_back_ones() {
        let mut t = LogThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.allow(t0 + Duration::from_millis(100 * i)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_millis(1000)), Some(5));
        assert_eq!(t.allow(t0 + Duration::from_millis(1500)), None);
        assert_eq!(t.allow(t0 + Duration::from_millis(2500)), Some(1));
    }

    #[test]
    fn descriptor_exhaustion_is_told_apart() {
        assert_eq!(
            AcceptError::of(&io::Error::from(io::ErrorKind::ConnectionAborted)),
            AcceptError::Aborted
        );
        #[cfg(unix)]
        {
            assert_eq!(
                AcceptError::of(&io::Error::from_raw_os_error(24)),
                AcceptError::Descriptors
            );
            assert_eq!(
                AcceptError::of(&io::Error::from_raw_os_error(23)),
                AcceptError::Descriptors
            );
        }
        assert_eq!(AcceptError::of(&io::Error::other("x")), AcceptError::Other);
    }

    #[test]
    fn ended_connections_are_forgotten() {
        let mut open = OpenConnections::default();
        let keep = ConnState::new();
        for _ in 0..1000 {
            let c = ConnState::new();
            open.push(&c, 1);
        }
        open.push(&keep, 1);
        assert!(open.queue.len() <= 2 + 64 + 1, "{}", open.queue.len());
        // Just accepted: not yet.
        assert!(!open.shed_one(Instant::now()));
        assert!(open.shed_one(Instant::now() + SHED_MIN_IDLE));
    }
}
