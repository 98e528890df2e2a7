//! The bandwidth cap of a sync run (`[sync] rate-limit`): one token bucket that every
//! connection's received chunks draw from. A connection that must wait stops reading, so TCP's
//! window throttles the sender: the cap is what the site's uplink sees, not a pause after the fact.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much may arrive at once after an idle spell: a quarter second's worth.
const BURST: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct RateLimit {
    bytes_per_sec: f64,
    /// When the bytes taken so far have been paid for (virtual time).
    paid_until: Mutex<Instant>,
}

impl RateLimit {
    pub fn new(bytes_per_sec: u64) -> RateLimit {
        RateLimit { bytes_per_sec: bytes_per_sec.max(1) as f64, paid_until: Mutex::new(Instant::now()) }
    }

    /// Takes `n` bytes' worth, waiting until the rate allows them.
    pub async fn take(&self, n: usize) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Books `n` bytes at `now`; returns how long to wait before using them.
    fn reserve(&self, n: usize, now: Instant) -> Duration {
        let mut paid = self.paid_until.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*paid).max(now.checked_sub(BURST).unwrap_or(now));
        *paid = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
        paid.saturating_duration_since(now + BURST)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limit = RateLimit::new(1000);
        let t0 = Instant::now();
        // After an idle spell, a quarter second's worth passes at once.
        assert_eq!(limit.reserve(250, t0), Duration::ZERO);
        // Then each byte costs a millisecond: 1000 more are 1 s past the burst.
        let wait = limit.reserve(1000, t0);
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-6, "{wait:?}");
        // Time passing pays for it.
        assert_eq!(limit.reserve(0, t0 + Duration::from_secs(2)), Duration::ZERO);
    }
}
