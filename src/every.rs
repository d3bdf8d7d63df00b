//! `apply --every DURATION`: the same all-or-nothing apply, round after round, until SIGTERM or
//! SIGINT.
//!
//! Signals are blocked in every thread and taken by one waiter thread (`sigwait`), so no
//! handler and no unsafe code is needed. The waiter ends the process with exit 0 at once,
//! except while a round holds [`critical`] (the commit, the report line, the audit line): then
//! it waits for that to finish, which takes milliseconds. Stopping anywhere else is safe by
//! construction: before the commit nothing is live yet (the next run sweeps a partial
//! generation, as after a crash); after it, pending hooks are recorded and run by the next run.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{SigSet, Signal};

/// The shortest and longest interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A session is re-established when it expires within this margin (or has expired).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

static CRITICAL: Mutex<()> = Mutex::new(());

/// What must happen before a signal ends the process (revoking the run's Vault token,
/// docs/src/vault.md "Signing in"); set and replaced by the pipeline as its sessions change.
type OnStop = Box<dyn FnOnce() + Send>;
static ON_STOP: Mutex<Option<OnStop>> = Mutex::new(None);

/// Sets (or with `None` clears) what the signal thread runs before it ends the process. It
/// runs after any round's critical part, bounded by the caller (it must not hang).
pub fn on_stop(f: Option<OnStop>) {
    *ON_STOP.lock().unwrap_or_else(|e| e.into_inner()) = f;
}

/// Held around what a signal must not cut in half. Uncontended (and so free) outside `--every`.
pub fn critical() -> MutexGuard<'static, ()> {
    CRITICAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Blocks SIGTERM and SIGINT in this thread (and so in every thread started after it; child
/// processes get a clean mask from std) and starts the thread that waits for them. Call before
/// any other thread exists.
pub fn catch_signals() -> std::io::Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.thread_block().map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("credfile-signals".into())
        .spawn(move || {
            let signal = set.wait();
            let name = signal.map_or("a signal", |s| s.as_str());
            tracing::info!(signal = name, "stopping: no round in progress will commit");
            let _held = critical();
            let last = ON_STOP.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(f) = last {
                f();
            }
            use std::io::Write;
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        })?;
    Ok(())
}

/// Whether a session that expires at `expiry` must be re-established before the next round.
pub fn needs_refresh(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    expiry.is_some_and(|t| t <= now + REFRESH_MARGIN)
}

/// `90`, `30s`, `5m`, `1h`, `2d`: whole seconds, minutes, hours or days.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: a whole number, optionally with s, m, h or d (90, 30s, 5m, 1h)"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use s, m, h or d: 90, 30s, 5m, 1h)"
            ));
        }
    };
    let d = Duration::from_secs(n.saturating_mul(scale));
    if d < MIN_INTERVAL || d > MAX_INTERVAL {
        return Err(format!(
            "`{s}`: the interval must be between 1s and {}d",
            MAX_INTERVAL.as_secs() / 86_400
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_take_units() {
        assert_eq!(parse_interval("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "0",
            "0s",
            "1.5s",
            "5x",
            "-3",
            "m",
            "8d",
            "99999999999999999999",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sessions_are_refreshed_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(
            !needs_refresh(None, now),
            "default-chain credentials refresh themselves"
        );
        assert!(!needs_refresh(Some(now + Duration::from_secs(3600)), now));
        assert!(needs_refresh(Some(now + Duration::from_secs(60)), now));
        assert!(needs_refresh(Some(now - Duration::from_secs(1)), now));
    }
}
