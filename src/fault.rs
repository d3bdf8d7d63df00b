//! Crash points for the kill-at-every-step tests. They exist only in a binary built with the
//! `fault-points` feature (scripts/test.sh builds one aside for those tests); in every other
//! build `point` is empty and reads nothing.
//!
//! `CREDFILE_FAULT=kill@NAME` sends SIGKILL to the process when it reaches point NAME;
//! `CREDFILE_FAULT=pause@NAME=MS` sleeps there; `CREDFILE_FAULT=wait@NAME=FILE` blocks there
//! until FILE exists (to hold the root's lock exactly as long as the lock test needs, whatever
//! the host's load; it gives up after two minutes so that a broken test cannot hang a run).
//! `CREDFILE_FAULT_LOG=FILE` appends `PID NAME` to FILE at every point reached, so that a test
//! can assert the order of events across processes instead of timing them.

/// Marks a step of a write; see the module doc.
#[cfg(feature = "fault-points")]
pub fn point(name: &str) {
    if let Some(log) = std::env::var_os("CREDFILE_FAULT_LOG") {
        use std::io::Write;
        // One write of one line with O_APPEND: lines of concurrent processes never interleave,
        // and their order is the order the points were reached.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = f.write_all(format!("{} {name}\n", std::process::id()).as_bytes());
        }
    }
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
        if let Some(file) = item.strip_prefix(&format!("wait@{name}=")) {
            let path = std::path::Path::new(file);
            for _ in 0..12_000 {
                if path.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

#[cfg(not(feature = "fault-points"))]
#[inline(always)]
pub fn point(_name: &str) {}
