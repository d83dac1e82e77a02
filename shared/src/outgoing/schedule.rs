//! The retry schedule of asynchronous deliveries.

use std::time::Duration;

/// Longest single delay: SQS cannot hide a message for longer than 12 hours.
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);
/// Most retries a schedule may list.
pub const MAX_RETRIES: usize = 20;

/// Delays before each retry, after the first (immediate) attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    /// Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first try.
    fn default() -> Self {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 3600;
        RetrySchedule {
            delays: [
                5,
                5 * MINUTE,
                30 * MINUTE,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ]
            .into_iter()
            .map(Duration::from_secs)
            .collect(),
        }
    }
}

impl RetrySchedule {
    /// Parses `5s,5m,30m,2h` (units ms, s, m, h; a bare number is seconds). An
    /// empty list means no retries.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut delays = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let split = item
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(item.len());
            let (number, unit) = item.split_at(split);
            let n: u64 = number
                .parse()
                .map_err(|_| format!("{item:?} is not a delay like 5s, 5m or 2h"))?;
            let delay = match unit.trim() {
                "ms" => Duration::from_millis(n),
                "" | "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                _ => return Err(format!("{item:?}: the units are ms, s, m and h")),
            };
            if delay > MAX_DELAY {
                return Err(format!("{item:?} is longer than 12h"));
            }
            delays.push(delay);
        }
        if delays.len() > MAX_RETRIES {
            return Err(format!("at most {MAX_RETRIES} retries"));
        }
        Ok(RetrySchedule { delays })
    }

    /// Attempts in all: the first one plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The delay before attempt `attempts_made + 1`, ±10 % jitter; `None` when
    /// the schedule is used up.
    pub fn next_delay(&self, attempts_made: u32) -> Option<Duration> {
        let index = attempts_made.checked_sub(1)? as usize;
        let base = *self.delays.get(index)?;
        Some(crate::random::jittered(base, 0.1).min(MAX_DELAY))
    }

    /// The sum of all delays: how long a delivery may take at most.
    pub fn total(&self) -> Duration {
        self.delays.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_nonsense() {
        let s = RetrySchedule::parse("0, 200ms, 5s, 5m, 2h").unwrap();
        assert_eq!(s.max_attempts(), 6);
        assert_eq!(
            s.total(),
            Duration::from_millis(200 + 5_000 + 300_000 + 7_200_000)
        );
        assert_eq!(RetrySchedule::parse("").unwrap().max_attempts(), 1);
        for bad in ["5x", "soon", "13h", "-1s"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn svix_default_and_jitter_bounds() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 8);
        assert_eq!(s.next_delay(0), None);
        for _ in 0..100 {
            let d = s.next_delay(1).unwrap();
            assert!(
                d >= Duration::from_millis(4500) && d <= Duration::from_millis(5500),
                "{d:?}"
            );
        }
        assert!(s.next_delay(7).is_some());
        assert_eq!(s.next_delay(8), None);
    }
}
