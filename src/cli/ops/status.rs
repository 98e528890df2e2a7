//! When systemd's sync timer fires next: the one part of `status` and the mount's `/status.json`
//! that runs a command (`systemctl`), so it stays here and is passed to `crate::status`.

use std::path::Path;
use std::process::Command;

/// The timer the packaged units install (scripts/systemd/); its next elapse is `next_schedule`.
pub const SYNC_TIMER: &str = "pmirror-fs-sync.timer";

/// When [`SYNC_TIMER`] elapses next (Unix seconds); `None` without systemd (cron setups), when
/// the timer is not installed or not active.
pub fn next_schedule() -> Option<i64> {
    if !Path::new("/run/systemd/system").exists() {
        return None;
    }
    let out = Command::new("systemctl")
        .args(["show", "--timestamp=unix", "--property=NextElapseUSecRealtime", "--value", SYNC_TIMER])
        .output();
    match out {
        Ok(out) if out.status.success() => parse_unix_timestamp(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            tracing::debug!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "systemctl show failed");
            None
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot run systemctl; next_schedule unknown");
            None
        }
    }
}

/// systemd's `--timestamp=unix` form: `@1704164645`; empty or `n/a` when not scheduled.
fn parse_unix_timestamp(text: &str) -> Option<i64> {
    text.trim().strip_prefix('@')?.parse().ok().filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn systemd_timestamps() {
        let cases = [("@1704164645\n", Some(1_704_164_645)), ("", None), ("n/a", None), ("@0", None), ("@x", None)];
        for (text, want) in cases {
            assert_eq!(super::parse_unix_timestamp(text), want, "{text:?}");
        }
    }
}
