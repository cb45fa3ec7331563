//! Whose clock a script reads: the server's (`TIME`) or a test's manual clock.

use llm_tower_core::ManualClock;

/// Microseconds added to a manual clock's elapsed time, so test times look like Unix
/// times in microseconds (2001-09-09) and never come near zero.
pub const TEST_CLOCK_OFFSET_MICROS: u64 = 1_000_000_000_000_000;

/// The time a script decides at.
#[derive(Clone, Debug, Default)]
pub(crate) enum TimeSource {
    /// `redis.call('TIME')`: one clock for every instance, whatever their own clocks say.
    #[default]
    Server,
    /// A manual clock's elapsed microseconds plus [`TEST_CLOCK_OFFSET_MICROS`], passed as an
    /// argument (tests only).
    Manual(ManualClock),
}

impl TimeSource {
    /// The script argument: `""` for the server's clock, else the time in microseconds.
    pub(crate) fn arg(&self) -> String {
        match self {
            TimeSource::Server => String::new(),
            TimeSource::Manual(clock) => {
                let micros = u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX / 2);
                TEST_CLOCK_OFFSET_MICROS.saturating_add(micros).to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn manual_time_is_offset_microseconds() {
        let clock = ManualClock::new();
        let t = TimeSource::Manual(clock.clone());
        assert_eq!(t.arg(), "1000000000000000");
        clock.advance(Duration::from_nanos(2_500));
        assert_eq!(
            t.arg(),
            "1000000000000002",
            "truncated to whole microseconds"
        );
        assert_eq!(TimeSource::Server.arg(), "");
    }
}
