//! The time arithmetic of sliding and tumbling windows (Spark Streaming's
//! semantics, as in its WindowOperationsSuite). Pure.
//!
//! For a query with zero time z, batch interval T, window length L and slide S
//! (all multiples of T):
//! - it emits at the times t = z + k·S, k ≥ 1, and at no other batch time;
//! - the window at t covers the batches ending in (t − L, t] (and after z);
//! - panes are P = gcd(L, S) long and aligned on z, so every window is a whole
//!   number of panes; the pane that holds batch b ends at the first z + k·P ≥ b.

use crate::time::{BatchTime, Interval};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub length: Interval,
    pub slide: Interval,
    /// The query's zero time.
    pub zero: BatchTime,
}

/// Why a window cannot run at this batch interval.
pub fn check_multiple(what: &str, d: Interval, batch: Interval) -> Result<(), String> {
    if d.is_multiple_of(batch) {
        Ok(())
    } else {
        Err(format!(
            "{what} {d} is not a multiple of the batch interval {batch}"
        ))
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WindowSpec {
    /// Pane length: gcd(L, S).
    pub fn pane_ms(&self) -> i64 {
        gcd(self.length.millis(), self.slide.millis())
    }

    fn since_zero(&self, t: BatchTime) -> i64 {
        t.millis() - self.zero.millis()
    }

    /// Whether a window is emitted at batch time `t`.
    pub fn emits_at(&self, t: BatchTime) -> bool {
        let d = self.since_zero(t);
        d > 0 && d % self.slide.millis() == 0
    }

    /// Whether batch `t` is the last batch of its pane.
    pub fn closes_pane(&self, t: BatchTime) -> bool {
        let d = self.since_zero(t);
        d > 0 && d % self.pane_ms() == 0
    }

    /// `(window_start, window_end)` of the window emitted at `t`: it covers (start, end].
    pub fn bounds(&self, t: BatchTime) -> (BatchTime, BatchTime) {
        (BatchTime(t.millis() - self.length.millis()), t)
    }

    /// Whether a pane (or batch) ending at `end` is inside the window emitted at `t`.
    pub fn covers(&self, t: BatchTime, end: BatchTime) -> bool {
        let (start, stop) = self.bounds(t);
        end > start && end <= stop
    }

    /// Whether data ending at `end` can still be part of a window emitted at or after `t`.
    pub fn still_needed(&self, t: BatchTime, end: BatchTime) -> bool {
        end.millis() > t.millis() - self.length.millis()
    }

    /// Panes in one window: L / P.
    pub fn panes_per_window(&self) -> i64 {
        self.length.millis() / self.pane_ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(l: i64, s: i64) -> WindowSpec {
        WindowSpec {
            length: Interval::from_millis(l * 1000).unwrap(),
            slide: Interval::from_millis(s * 1000).unwrap(),
            zero: BatchTime(0),
        }
    }

    fn emissions(w: &WindowSpec, last: i64) -> Vec<i64> {
        (1..=last)
            .filter(|b| w.emits_at(BatchTime(b * 1000)))
            .collect()
    }

    /// The batches (in seconds) each emission covers, over batches 1..=last.
    fn windows(w: &WindowSpec, last: i64) -> Vec<(i64, Vec<i64>)> {
        emissions(w, last)
            .into_iter()
            .map(|t| {
                (
                    t,
                    (1..=last)
                        .filter(|b| w.covers(BatchTime(t * 1000), BatchTime(b * 1000)))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn two_second_window_every_second() {
        let w = spec(2, 1);
        assert_eq!(w.pane_ms(), 1000);
        assert_eq!(
            windows(&w, 4),
            vec![
                (1, vec![1]),
                (2, vec![1, 2]),
                (3, vec![2, 3]),
                (4, vec![3, 4])
            ]
        );
    }

    #[test]
    fn four_second_window_every_two_emits_four_times_over_eight_batches() {
        let w = spec(4, 2);
        assert_eq!(w.pane_ms(), 2000);
        assert_eq!(
            windows(&w, 8),
            vec![
                (2, vec![1, 2]),
                (4, vec![1, 2, 3, 4]),
                (6, vec![3, 4, 5, 6]),
                (8, vec![5, 6, 7, 8])
            ]
        );
    }

    #[test]
    fn a_window_shorter_than_its_slide_skips_batches() {
        let w = spec(2, 3);
        assert_eq!(w.pane_ms(), 1000);
        assert_eq!(
            windows(&w, 9),
            vec![(3, vec![2, 3]), (6, vec![5, 6]), (9, vec![8, 9])]
        );
    }

    #[test]
    fn panes_align_on_the_zero_time() {
        let w = WindowSpec {
            zero: BatchTime(3000),
            ..spec(6, 4)
        };
        assert_eq!(w.pane_ms(), 2000);
        assert!(!w.emits_at(BatchTime(3000)));
        assert!(w.emits_at(BatchTime(7000)));
        assert!(w.closes_pane(BatchTime(5000)));
        assert!(!w.closes_pane(BatchTime(6000)));
        assert_eq!(
            w.bounds(BatchTime(7000)),
            (BatchTime(1000), BatchTime(7000))
        );
        assert_eq!(w.panes_per_window(), 3);
    }

    #[test]
    fn lengths_must_be_multiples_of_the_interval() {
        let t = Interval::from_millis(2000).unwrap();
        assert_eq!(
            check_multiple("window length", Interval::from_millis(7000).unwrap(), t),
            Err("window length 7s is not a multiple of the batch interval 2s".into())
        );
        assert!(check_multiple("slide", Interval::from_millis(4000).unwrap(), t).is_ok());
    }
}
