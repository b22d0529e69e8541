//! Time values of the data path: [`BatchTime`] (a point on the batch grid, in
//! milliseconds) and [`Interval`] (a positive duration in milliseconds), with the
//! duration syntax users write (`500ms`, `5s`, `1m`, `2h`, `10d`, `5 seconds`).
//!
//! Pure: nothing here reads the clock (that is `clock.rs`).

use std::fmt;

/// The end of a batch interval, in milliseconds since the Unix epoch (manual clock:
/// since 0). The batch that ends at `t` holds the records received in `(t - T, t]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BatchTime(pub i64);

impl BatchTime {
    pub fn millis(self) -> i64 {
        self.0
    }

    /// The grid point at or just before `ms` for the interval `t`.
    pub fn floor(ms: i64, t: Interval) -> BatchTime {
        BatchTime(ms.div_euclid(t.0) * t.0)
    }

    /// The end of the interval that holds the instant `ms`: `ms` in `(b - T, b]` gives `b`.
    pub fn containing(ms: i64, t: Interval) -> BatchTime {
        let floor = Self::floor(ms, t);
        if floor.0 == ms {
            floor
        } else {
            BatchTime(floor.0 + t.0)
        }
    }

    pub fn next(self, t: Interval) -> BatchTime {
        BatchTime(self.0 + t.0)
    }
}

impl fmt::Display for BatchTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A positive duration in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval(i64);

impl Interval {
    /// Largest accepted duration: 1000 days, far beyond any sensible window, and far
    /// from overflowing any millisecond arithmetic.
    pub const MAX_MS: i64 = 1000 * 86_400_000;

    pub fn from_millis(ms: i64) -> Result<Interval, DurationError> {
        if ms <= 0 {
            return Err(DurationError::NotPositive(ms));
        }
        if ms > Self::MAX_MS {
            return Err(DurationError::TooLong);
        }
        Ok(Interval(ms))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0 as u64)
    }

    /// Whether `self` is a whole multiple of `base`.
    pub fn is_multiple_of(self, base: Interval) -> bool {
        self.0 % base.0 == 0
    }
}

/// Prints the shortest exact form: `500ms`, `5s`, `1m`, `2h`, `10d`.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms % size == 0 {
                return write!(f, "{}{}", ms / size, unit);
            }
        }
        write!(f, "{ms}ms")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration '{0}': expected a number and a unit, as in 500ms, 5s, 1m, 2h, 10d or '5 seconds'")]
    Syntax(String),
    #[error("unknown duration unit '{0}': use ms, s, m, h or d (or milliseconds, seconds, minutes, hours, days)")]
    Unit(String),
    #[error("a duration must be positive, got {0} ms")]
    NotPositive(i64),
    #[error("duration too long: the maximum is 1000 days")]
    TooLong,
}

/// Milliseconds in one `unit`, for the unit names the dialect accepts.
pub fn unit_millis(unit: &str) -> Result<i64, DurationError> {
    Ok(match unit.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        other => return Err(DurationError::Unit(other.to_string())),
    })
}

/// Parses `500ms`, `5s`, `1m`, `2h`, `10d`, `5 seconds`, `1.5s` (whole milliseconds only).
pub fn parse_duration(text: &str) -> Result<Interval, DurationError> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::Syntax(text.to_string()))?;
    let (number, unit) = s.split_at(split);
    let unit = unit.trim();
    if number.is_empty() || unit.is_empty() {
        return Err(DurationError::Syntax(text.to_string()));
    }
    let per_unit = unit_millis(unit)?;
    duration_from_parts(number, per_unit).ok_or_else(|| DurationError::Syntax(text.to_string()))?
}

/// `number` (decimal text) times `per_unit` milliseconds; None if `number` is not a
/// number or the product is not a whole number of milliseconds.
pub fn duration_from_parts(number: &str, per_unit: i64) -> Option<Result<Interval, DurationError>> {
    let ms = if let Ok(n) = number.parse::<i64>() {
        n.checked_mul(per_unit).unwrap_or(i64::MAX)
    } else {
        let f: f64 = number.parse().ok()?;
        let ms = f * per_unit as f64;
        if !ms.is_finite() || ms.fract() != 0.0 {
            return None;
        }
        if ms > i64::MAX as f64 {
            i64::MAX
        } else {
            ms as i64
        }
    };
    Some(Interval::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_form() {
        let cases = [
            ("500ms", 500),
            ("5s", 5000),
            ("1m", 60_000),
            ("2h", 7_200_000),
            ("10d", 864_000_000),
            ("5 seconds", 5000),
            ("1 minute", 60_000),
            ("1.5s", 1500),
            (" 3 hours ", 10_800_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_duration(text).map(Interval::millis), Ok(ms), "{text}");
        }
    }

    #[test]
    fn rejects_bad_durations_with_reasons() {
        assert_eq!(parse_duration("5x"), Err(DurationError::Unit("x".into())));
        assert_eq!(parse_duration("s"), Err(DurationError::Syntax("s".into())));
        assert_eq!(parse_duration("5"), Err(DurationError::Syntax("5".into())));
        assert_eq!(parse_duration("0s"), Err(DurationError::NotPositive(0)));
        assert_eq!(
            parse_duration("0.5ms"),
            Err(DurationError::Syntax("0.5ms".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999d"),
            Err(DurationError::TooLong)
        );
    }

    #[test]
    fn displays_shortest_exact_form() {
        let show = |ms| Interval::from_millis(ms).unwrap().to_string();
        assert_eq!(show(500), "500ms");
        assert_eq!(show(2000), "2s");
        assert_eq!(show(90_000), "90s");
        assert_eq!(show(120_000), "2m");
        assert_eq!(show(86_400_000), "1d");
    }

    #[test]
    fn grid_math() {
        let t = Interval::from_millis(1000).unwrap();
        assert_eq!(BatchTime::floor(2500, t), BatchTime(2000));
        assert_eq!(BatchTime::floor(2000, t), BatchTime(2000));
        assert_eq!(BatchTime::containing(2000, t), BatchTime(2000));
        assert_eq!(BatchTime::containing(2001, t), BatchTime(3000));
        assert_eq!(BatchTime::containing(0, t), BatchTime(0));
        assert_eq!(BatchTime(2000).next(t), BatchTime(3000));
    }
}
