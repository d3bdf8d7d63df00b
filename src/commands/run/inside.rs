//! `__run-inside START -- CMD [ARGS...]`: the namespace helper of `credfile run`. A fresh,
//! single-threaded credfile process (so `unshare` of a user namespace is allowed) that dies with
//! its parent (`PR_SET_PDEATHSIG`, checked against a parent that died first). It creates the
//! private namespace and tmpfs ([`crate::namespace::Private`]), then a writer thread applies
//! each set with materialize (the same checks, set-atomic switch and state file as `apply`),
//! and the main thread starts the command after the first set and waits for it. It says what happens on the socket, one JSON event per line.

use std::ffi::OsString;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use serde_json::json;

use super::wire::{self, Start};
use crate::namespace::channel::{self, SET_HEADER, SIGNAL};
use crate::namespace::supervise::{self, Ended, Running};
use crate::namespace::{EXEC_ARG, NsError, OwnIds, Private, tmpfs_size};

/// Exits before the socket is there to say why.
const BAD_CALL: i32 = 125;

/// Never returns.
pub fn main(args: &[OsString]) -> ! {
    std::process::exit(run(args))
}

fn run(args: &[OsString]) -> i32 {
    let Some(split) = args.iter().position(|a| a == "--") else {
        return BAD_CALL;
    };
    let command: Vec<OsString> = args[split + 1..].to_vec();
    let Some(start) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(|a| serde_json::from_str::<Start>(a).ok())
    else {
        return BAD_CALL;
    };
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
        || nix::unistd::getppid().as_raw() as u32 != start.parent
    {
        return BAD_CALL;
    }
    // A terminal's ^C reaches the whole process group: the helper must outlive the command.
    if supervise::block().is_err() {
        return BAD_CALL;
    }
    let Ok(stream) = channel::connect(&start.socket, start.parent) else {
        return BAD_CALL;
    };
    let Ok(up) = stream.try_clone() else {
        return BAD_CALL;
    };
    let up = Arc::new(Mutex::new(up));
    let say = {
        let up = Arc::clone(&up);
        move |event: serde_json::Value| {
            let mut w = up.lock().unwrap_or_else(|e| e.into_inner());
            let _ = channel::send_event(&mut *w, &event);
        }
    };
    let userns = start.userns.map(|(uid, gid)| OwnIds { uid, gid });
    let private = match Private::enter(&start.root, userns, 1 << 20) {
        Ok(p) => p,
        Err(e) => {
            say(failed("namespace", &e.to_string(), &e.hint(), 6));
            return 0;
        }
    };
    say(json!({"event": "ready"}));

    let running: Arc<Mutex<Slot>> = Arc::default();
    let (first_tx, first_rx) = mpsc::channel::<bool>();
    {
        let running = Arc::clone(&running);
        let say = say.clone();
        let unmapped = userns.map(|_| crate::namespace::overflow_uid());
        std::thread::spawn(move || writer(stream, private, running, first_tx, unmapped, say));
    }
    // The writer says whether the first set is in place; nothing runs otherwise.
    if first_rx.recv() != Ok(true) {
        return 0;
    }
    let (user, uid, gid) = match &start.user {
        Some((name, uid, gid)) => (name.clone(), uid.to_string(), gid.to_string()),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let spawned = std::process::Command::new("/proc/self/exe")
        .arg0("credfile")
        .arg(EXEC_ARG)
        .arg(std::process::id().to_string())
        .arg(format!("{:o}", start.umask))
        .args([user, uid, gid])
        .arg("--")
        .args(&command)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            say(failed(
                "run",
                &format!("cannot start the command: {e}"),
                "nothing ran; the files are gone with the namespace",
                1,
            ));
            return 0;
        }
    };
    let running = {
        let mut slot = running.lock().unwrap_or_else(|e| e.into_inner());
        let command = Arc::new(Running::new(&child));
        slot.running = Some(Arc::clone(&command));
        // A signal forwarded while the command was being started is its now.
        if let Some(signal) = slot.pending.take() {
            command.signal(signal);
        }
        command
    };
    say(json!({"event": "started"}));
    let ended = running.wait(&mut child);
    say(match ended {
        Ended::Code(c) => json!({"event": "ended", "code": c}),
        Ended::Signal(n) => json!({"event": "ended", "signal": n}),
    });
    0
}

/// The command once started, and a signal that came before it was.
#[derive(Default)]
struct Slot {
    running: Option<Arc<Running>>,
    pending: Option<Signal>,
}

fn failed(stage: &str, message: &str, hint: &str, code: u8) -> serde_json::Value {
    json!({"event": "failed", "stage": stage, "message": message, "hint": hint, "code": code})
}

/// Applies every set the supervisor sends and forwards its signals, confined to the tmpfs.
/// The end of the stream (the supervisor is gone) ends the helper, and so the command.
fn writer(
    stream: UnixStream,
    private: Private,
    running: Arc<Mutex<Slot>>,
    first: mpsc::Sender<bool>,
    unmapped: Option<u32>,
    say: impl Fn(serde_json::Value),
) {
    let mut size = 1u64 << 20;
    let mut down = BufReader::new(stream);
    let mut applied_once = false;
    loop {
        let frame = match channel::read_frame(&mut down) {
            Ok(Some(f)) => f,
            _ => break,
        };
        match frame {
            (SIGNAL, payload) => {
                let signal = payload
                    .first()
                    .and_then(|&n| Signal::try_from(i32::from(n)).ok());
                let mut slot = running.lock().unwrap_or_else(|e| e.into_inner());
                match (signal, &slot.running) {
                    (Some(signal), Some(command)) => command.signal(signal),
                    (Some(signal), None) => slot.pending = Some(signal),
                    (None, _) => {}
                }
            }
            (SET_HEADER, header) => {
                let set = match wire::read_set(&mut down, &header, &private.root, unmapped) {
                    Ok(s) => s,
                    Err(_) => break,
                };
                let result = apply(&private, &mut size, set);
                match result {
                    Ok(done) => {
                        say(json!({
                            "event": "applied",
                            "changed": done.changed,
                            "statuses": done.statuses,
                            "removed": done.removed,
                        }));
                        if !applied_once {
                            applied_once = true;
                            let _ = first.send(true);
                        }
                    }
                    Err((message, hint)) => {
                        say(failed("materialize", &message, &hint, 6));
                        if !applied_once {
                            let _ = first.send(false);
                            return;
                        }
                    }
                }
            }
            _ => break,
        }
    }
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

/// What one set did, for the supervisor's audit line: how many files changed, each file's
/// status in the set's order, and the paths that left the set. Paths and statuses only.
struct Done {
    changed: usize,
    statuses: Vec<&'static str>,
    removed: Vec<String>,
}

/// One set: the tmpfs grows to hold it if needed, then the same preflight and write as apply.
fn apply(private: &Private, size: &mut u64, set: wire::Set) -> Result<Done, (String, String)> {
    let needed = tmpfs_size(set.bytes()).ok_or_else(|| {
        let e = NsError::Root {
            root: private.root.clone(),
            reason: format!(
                "the set holds {} bytes, over the {} MiB credfile run mounts",
                set.bytes(),
                crate::namespace::MAX_SET_BYTES >> 20
            ),
        };
        (e.to_string(), e.hint())
    })?;
    if needed > *size {
        private
            .resize(needed)
            .map_err(|e| (e.to_string(), e.hint()))?;
        *size = needed;
    }
    let wrote = crate::materialize::check_destinations(set.checked)
        .and_then(|checked| crate::materialize::write(&checked, &set.rendered, false));
    match wrote {
        Ok(applied) => Ok(Done {
            changed: applied
                .outcomes
                .iter()
                .chain(&applied.removed)
                .filter(|o| o.status.changed())
                .count(),
            statuses: applied
                .outcomes
                .iter()
                .map(|o| wire::status_word(o.status))
                .collect(),
            removed: applied
                .removed
                .iter()
                .map(|o| o.dest.path.to_string_lossy().into_owned())
                .collect(),
        }),
        Err(e) => Err((
            format!("in the private namespace: {e}"),
            e.hint().unwrap_or_default(),
        )),
    }
}
