//! Randomness, in one place: jitter for retry delays from a fast RNG, and
//! secret bytes from the operating system's.

use std::time::Duration;

/// `delay` scaled by a uniform factor in `1 - spread ..= 1 + spread`
/// (`spread` 0.2 is ±20 %), so retries of many jobs that failed together do
/// not all come back at the same moment.
pub fn jittered(delay: Duration, spread: f64) -> Duration {
    let spread = spread.clamp(0.0, 1.0);
    delay.mul_f64(1.0 - spread + 2.0 * spread * fastrand::f64())
}

/// `N` bytes from the operating system's secure RNG, for secrets and tokens.
///
/// # Panics
/// When the operating system has no randomness to give, which leaves nothing
/// safe to make a secret from.
pub fn secret_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes
}

/// [`secret_bytes`] as lowercase hex (`2 × N` characters).
pub fn secret_hex<const N: usize>() -> String {
    secret_bytes::<N>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_spread_and_varies() {
        let base = Duration::from_millis(1000);
        let delays: Vec<Duration> = (0..1000).map(|_| jittered(base, 0.2)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(800) && *d <= Duration::from_millis(1200)),
            "{delays:?}"
        );
        let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(*max - *min > Duration::from_millis(200), "{min:?}..{max:?}");
        assert_eq!(jittered(base, 0.0), base);
    }

    #[test]
    fn secrets_are_hex_of_their_length_and_never_repeat() {
        let a = secret_hex::<32>();
        let b = secret_hex::<32>();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
