//! The only place that reads the wall clock. Two clocks share one contract:
//! the engine runs batch `t` when the clock says so, and a receiver asks the
//! clock which batch a record arriving now belongs to.
//!
//! - [`Clock::System`] ticks on the grid of multiples of T in wall-clock time.
//! - [`Clock::Manual`] starts at 0 and moves only when `POST /clock/advance`
//!   runs batches; records that arrive while it shows `t` belong to `t + T`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::time::{BatchTime, Interval};

#[derive(Debug, Clone)]
pub enum Clock {
    System {
        interval: Interval,
    },
    Manual {
        interval: Interval,
        now: Arc<AtomicI64>,
    },
}

impl Clock {
    pub fn system(interval: Interval) -> Clock {
        Clock::System { interval }
    }

    pub fn manual(interval: Interval) -> Clock {
        Clock::Manual {
            interval,
            now: Arc::new(AtomicI64::new(0)),
        }
    }

    pub fn interval(&self) -> Interval {
        match self {
            Clock::System { interval } | Clock::Manual { interval, .. } => *interval,
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual { .. })
    }

    /// Milliseconds since the epoch (system) or the last batch run (manual).
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System { .. } => wall_ms(),
            Clock::Manual { now, .. } => now.load(Ordering::Acquire),
        }
    }

    /// The batch a record arriving now belongs to.
    pub fn arrival_batch(&self) -> BatchTime {
        match self {
            Clock::System { interval } => BatchTime::containing(wall_ms(), *interval),
            Clock::Manual { interval, now } => {
                BatchTime(now.load(Ordering::Acquire)).next(*interval)
            }
        }
    }

    /// A new query's zero time: the grid point at or just before now.
    pub fn zero_time(&self) -> BatchTime {
        BatchTime::floor(self.now_ms(), self.interval())
    }

    /// Records that batch `t` has been run (manual clock only; the system clock
    /// moves by itself).
    pub fn set_ran(&self, t: BatchTime) {
        if let Clock::Manual { now, .. } = self {
            now.store(t.millis(), Ordering::Release);
        }
    }

    /// Wall-clock instant for `t` (system clock), used by the tick timer to sleep.
    pub fn instant_of(&self, t: BatchTime) -> tokio::time::Instant {
        let delta = t.millis() - wall_ms();
        let now = tokio::time::Instant::now();
        if delta <= 0 {
            now
        } else {
            now + std::time::Duration::from_millis(delta as u64)
        }
    }
}

#[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
fn wall_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since.as_millis() as i64
}

/// A monotonic stopwatch for measuring processing time (not batch time).
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(std::time::Instant);

impl Stopwatch {
    #[allow(clippy::disallowed_methods)]
    pub fn start() -> Stopwatch {
        Stopwatch(std::time::Instant::now())
    }

    pub fn elapsed_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_assigns_arrivals_to_the_next_batch() {
        let t = Interval::from_millis(1000).unwrap();
        let clock = Clock::manual(t);
        assert_eq!(clock.arrival_batch(), BatchTime(1000));
        assert_eq!(clock.zero_time(), BatchTime(0));
        clock.set_ran(BatchTime(3000));
        assert_eq!(clock.arrival_batch(), BatchTime(4000));
        assert_eq!(clock.zero_time(), BatchTime(3000));
    }
}
