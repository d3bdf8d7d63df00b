//! Supervision: the supervisor takes SIGINT, SIGTERM and SIGHUP on a `signalfd` (no handler,
//! no unsafe code) to forward them, and the namespace helper signals the command only while it
//! is not yet reaped, so a forwarded signal can never reach a recycled pid.

use std::process::Child;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

/// The signals `credfile run` forwards to the command.
pub const FORWARDED: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// `si_code` of a signal the kernel sent (a terminal's ^C, a hangup): the command, in the same
/// process group, got it too, so it is not forwarded a second time.
const SI_KERNEL: i32 = 0x80;

fn forwarded_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in FORWARDED {
        set.add(s);
    }
    set
}

/// Blocks the forwarded signals in the calling thread (and every thread it starts later; a
/// child gets a clean mask from std). Call before any other thread exists.
pub fn block() -> Result<SigSet, Errno> {
    let set = forwarded_set();
    set.thread_block()?;
    Ok(set)
}

/// The supervisor's queue of caught signals.
pub struct Caught(SignalFd);

/// One caught signal; `from_terminal`: sent by the kernel to the whole foreground group.
pub struct Arrived {
    pub signal: Signal,
    pub from_terminal: bool,
}

impl Caught {
    pub fn new() -> Result<Caught, Errno> {
        SignalFd::new(&block()?).map(Caught)
    }

    /// Blocks until one of the forwarded signals arrives.
    pub fn next(&self) -> Result<Arrived, Errno> {
        loop {
            if let Some(info) = self.0.read_signal()? {
                let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                return Ok(Arrived {
                    signal,
                    from_terminal: info.ssi_code == SI_KERNEL,
                });
            }
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
}

impl Ended {
    /// The exit code `credfile run` returns: the command's, or 128+N after signal N.
    pub fn exit_code(self) -> i32 {
        match self {
            Ended::Code(c) => c,
            Ended::Signal(n) => 128 + n,
        }
    }
}

/// The command, as the namespace helper holds it.
pub struct Running {
    pid: Pid,
    /// Whether it has ended (a zombie still holds its pid until it is reaped after this is set).
    ended: Mutex<bool>,
}

impl Running {
    pub fn new(child: &Child) -> Running {
        Running {
            pid: Pid::from_raw(child.id() as i32),
            ended: Mutex::new(false),
        }
    }

    /// Sends `signal` unless the command has ended.
    pub fn signal(&self, signal: Signal) {
        let ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if !*ended {
            let _ = kill(self.pid, signal);
        }
    }

    /// Waits for the end without reaping, marks it, then reaps (`child.wait`).
    pub fn wait(&self, child: &mut Child) -> Ended {
        while let Err(Errno::EINTR) = waitid(
            Id::Pid(self.pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        ) {}
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = true;
        use std::os::unix::process::ExitStatusExt;
        match child.wait() {
            Ok(status) => match (status.code(), status.signal()) {
                (Some(c), _) => Ended::Code(c),
                (None, Some(n)) => Ended::Signal(n),
                _ => Ended::Code(1),
            },
            Err(_) => Ended::Code(1),
        }
    }
}

/// Parses `--reload-signal`: a name (`HUP`, `SIGHUP`, `usr1`) or a number.
pub fn parse_signal(s: &str) -> Result<Signal, String> {
    let upper = s.trim().to_ascii_uppercase();
    if let Ok(n) = upper.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("`{s}` is not a signal number"));
    }
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>()
        .map_err(|_| format!("`{s}` is not a signal name (HUP, USR1, TERM...)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_or_number() {
        assert_eq!(parse_signal("HUP"), Ok(Signal::SIGHUP));
        assert_eq!(parse_signal("sigusr1"), Ok(Signal::SIGUSR1));
        assert_eq!(parse_signal("10"), Ok(Signal::SIGUSR1));
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
        assert_eq!(Ended::Signal(15).exit_code(), 143);
        assert_eq!(Ended::Code(3).exit_code(), 3);
    }
}
