//! `__run-exec PARENT UMASK USER UID GID -- CMD [ARGS...]`: the last credfile process of a
//! run, inside the namespace. It drops to the user the command runs as (`-`: stays who it is,
//! as in a user namespace), then arms `PR_SET_PDEATHSIG` (after the switch: a credential change
//! clears it) and checks that its parent is still the one that started it (a parent that died
//! before `prctl` would never send the signal), restores the caller's umask, and `exec`s the
//! command: the pid the namespace helper waits on and forwards signals to is the command's.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

/// Exit codes before the command runs, as shells use them.
const CANNOT_RUN: i32 = 126;
const NOT_FOUND: i32 = 127;
const BAD_CALL: i32 = 125;

/// Never returns: the command replaces this process, or it exits.
pub fn main(args: &[OsString]) -> ! {
    std::process::exit(run(args))
}

fn run(args: &[OsString]) -> i32 {
    let Some(split) = args.iter().position(|a| a == "--") else {
        return BAD_CALL;
    };
    let (head, command) = (&args[..split], &args[split + 1..]);
    let text: Vec<&str> = head.iter().filter_map(|a| a.to_str()).collect();
    let [parent, umask, user, uid, gid] = text[..] else {
        return BAD_CALL;
    };
    let (Ok(parent), Ok(umask)) = (parent.parse::<i32>(), u32::from_str_radix(umask, 8)) else {
        return BAD_CALL;
    };
    if command.is_empty() {
        return BAD_CALL;
    }
    if user != "-" {
        let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
            return BAD_CALL;
        };
        if let Err(e) = crate::sudo::become_user(user, Uid::from_raw(uid), Gid::from_raw(gid)) {
            eprintln!(
                "credfile run: cannot switch to user {} (uid {uid}, gid {gid}): {e}",
                crate::terminal::Escaped(user)
            );
            return CANNOT_RUN;
        }
    }
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
        || nix::unistd::getppid().as_raw() != parent
    {
        // The helper is gone already: nothing would stop the command when it goes.
        return CANNOT_RUN;
    }
    nix::sys::stat::umask(Mode::from_bits_truncate(umask));
    // std's exec, not execvp: it gives the command default signal dispositions (Rust ignores
    // SIGPIPE, and an ignored signal survives execve) and an empty signal mask.
    let error = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    eprintln!(
        "credfile run: cannot run `{}`: {error}",
        crate::terminal::Escaped(&command[0].to_string_lossy())
    );
    match error.kind() {
        std::io::ErrorKind::NotFound => NOT_FOUND,
        _ => CANNOT_RUN,
    }
}
