//! Log lines for failures that can repeat for every packet or every lease (a full disk, a full
//! map, a failing socket): the first is logged at once, later ones at most once per interval
//! with how many were held back. A fault that hits every packet must not flood the log, which
//! may well sit on the very disk that is full. Counters and metrics still count every one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a throttled line may be logged.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// One throttled log site (a `static` next to the line it guards).
#[derive(Debug)]
pub struct LogThrottle {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the last line was logged; `None` before the first.
    last: Option<Instant>,
    held_back: u64,
}

impl LogThrottle {
    pub const fn new() -> Self {
        LogThrottle {
            state: Mutex::new(State {
                last: None,
                held_back: 0,
            }),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were held back since the
    /// last one; `None` when this one is held back.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.last {
            Some(last) if now.saturating_duration_since(last) < LOG_INTERVAL => {
                state.held_back += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.held_back))
            }
        }
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new()
    }
}

/// Logs a `tracing` event at `$level` (`warn`, `error`, ...) through a throttle of its own call
/// site, with a `held_back` field counting the lines held back since the last one:
/// `log_throttled!(warn, error = %err, "receive failed")`.
#[macro_export]
macro_rules! log_throttled {
    ($level:ident, $($event:tt)+) => {{
        static THROTTLE: $crate::log_throttle::LogThrottle = $crate::log_throttle::LogThrottle::new();
        if let Some(held_back) = THROTTLE.allow() {
            tracing::$level!(held_back, $($event)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_at_once_then_one_per_interval_with_the_count_held_back() {
        let throttle = LogThrottle::new();
        let t0 = Instant::now();
        assert_eq!(throttle.allow_at(t0), Some(0));
        for i in 1..=99 {
            assert_eq!(throttle.allow_at(t0 + Duration::from_millis(i * 5)), None);
        }
        assert_eq!(throttle.allow_at(t0 + LOG_INTERVAL), Some(99));
        assert_eq!(throttle.allow_at(t0 + LOG_INTERVAL), None);
        assert_eq!(throttle.allow_at(t0 + LOG_INTERVAL * 5), Some(1));
    }
}
