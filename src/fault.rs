//! Crash points for the kill-at-every-step tests. They exist only in a binary built with the
//! `fault-points` feature (scripts/test.sh builds one aside for those tests); in every other
//! build `point` is empty and reads nothing.
//!
//! `CREDFILE_FAULT=kill@NAME` sends SIGKILL to the process when it reaches point NAME;
//! `CREDFILE_FAULT=pause@NAME=MS` sleeps there (to hold the root's lock in the lock test).

/// Marks a step of a write; see the module doc.
#[cfg(feature = "fault-points")]
pub fn point(name: &str) {
    let Ok(spec) = std::env::var("CREDFILE_FAULT") else {
        return;
    };
    for item in spec.split(',') {
        if item == format!("kill@{name}") {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
        if let Some(ms) = item.strip_prefix(&format!("pause@{name}=")) {
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
        }
    }
}

#[cfg(not(feature = "fault-points"))]
#[inline(always)]
pub fn point(_name: &str) {}
