//! Flow control of a sync run's transfers. The bandwidth cap (`[sync] rate-limit`): one token
//! bucket that every connection's received chunks draw from; a connection that must wait stops
//! reading, so TCP's window throttles the sender — the cap is what the site's uplink sees. The
//! slow-transfer guard (`[sync] slow-rate`, `slow-time`): a transfer that receives less than
//! the rate over that long (time spent waiting on the cap not counted) is abandoned, and the
//! request retried like any transient failure.

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

    /// Takes `n` bytes' worth, waiting until the rate allows them; returns how long it waited.
    pub async fn take(&self, n: usize) -> Duration {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Books `n` bytes at `now`; returns how long to wait before using them.
    fn reserve(&self, n: usize, now: Instant) -> Duration {
        let mut paid = self.paid_until.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*paid).max(now.checked_sub(BURST).unwrap_or(now));
        *paid = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
        paid.saturating_duration_since(now + BURST)
    }
}

/// What a run's transfers are held to: the shared cap and the slow-transfer guard.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Requests in flight per host at the start, and how far plain http may grow (`concurrency`,
    /// `max-concurrency`).
    pub slots: (usize, usize),
    /// `[sync] ca-file`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Bytes per second for the whole run.
    pub rate: Option<u64>,
    /// Abandon a transfer below this many bytes per second over this long.
    pub slow: Option<(u64, Duration)>,
}

/// One transfer's view of the limits: waits on the cap, watches its own rate.
pub(super) struct Flow<'a> {
    limit: Option<&'a RateLimit>,
    slow: Option<(u64, Duration)>,
    since: Instant,
    bytes: u64,
    waited: Duration,
}

impl<'a> Flow<'a> {
    pub(super) fn new(limit: Option<&'a RateLimit>, slow: Option<(u64, Duration)>) -> Flow<'a> {
        Flow { limit, slow, since: Instant::now(), bytes: 0, waited: Duration::ZERO }
    }

    /// A chunk of `n` bytes arrived: wait for the cap, then `Err(bytes per second)` when the
    /// transfer has been slower than the guard allows for its whole window.
    pub(super) async fn chunk(&mut self, n: usize) -> Result<(), u64> {
        if let Some(limit) = self.limit {
            self.waited += limit.take(n).await;
        }
        let Some((min, window)) = self.slow else { return Ok(()) };
        self.bytes += n as u64;
        let active = self.since.elapsed().saturating_sub(self.waited);
        if active < window {
            return Ok(());
        }
        let rate = (self.bytes as f64 / active.as_secs_f64()) as u64;
        if rate < min {
            return Err(rate);
        }
        (self.since, self.bytes, self.waited) = (Instant::now(), 0, Duration::ZERO);
        Ok(())
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
        // (within a millisecond: the limit's clock started when it was made, just before t0)
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-3, "{wait:?}");
        // Time passing pays for it.
        assert_eq!(limit.reserve(0, t0 + Duration::from_secs(2)), Duration::ZERO);
    }
}
