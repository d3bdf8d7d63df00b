//! Opening a file with the rights of the user who ran `sudo`, never root's.
//!
//! credfile runs itself again (`/proc/self/exe __as-invoker MODE PATH`) as a helper: a fresh,
//! single-threaded process that drops to the invoking user (groups, gid, then uid: no way
//! back) before it opens anything, and passes the bytes back on a pipe. Setting ids in this
//! process instead would be wrong either way: glibc's `setresuid` changes every thread (the
//! runtime's too, for good), the raw syscall only the calling thread, and forking a threaded
//! process needs code this crate forbids (`unsafe`).
//!
//! The helper takes the user from sudo's own variables (`SUDO_USER`, `SUDO_UID`, `SUDO_GID`,
//! which sudo sets over anything the caller had), never from its arguments: whoever starts it,
//! through any sudo rule, gets at most what the invoking user could read or write. Its errors
//! are the user's own (what the user would see by trying), so root's view of the filesystem
//! never reaches a message.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

/// argv[1] of the helper; `main` hands such a process to [`helper_main`] before anything else.
pub const HELPER_ARG: &str = "__as-invoker";

/// Helper exit codes; 100 + errno for an open or read that failed as the user.
const NOT_REGULAR: i32 = 64;
const CANNOT_SWITCH: i32 = 65;
const BAD_CALL: i32 = 66;
const TOO_LARGE: i32 = 67;
const ERRNO_BASE: i32 = 100;

/// Who ran sudo, with the ids to act as them.
#[derive(Debug, Clone)]
pub struct Invoker {
    pub name: String,
    uid: u32,
    gid: u32,
}

/// Why the helper could not do what was asked.
#[derive(Debug)]
pub enum Denied {
    /// The open (or read, or write) failed with this errno, as the user.
    Errno(Errno),
    NotRegular,
    TooLarge,
    /// The helper itself failed (could not start, could not switch ids).
    Helper(String),
}

impl Invoker {
    /// From sudo's variables; `Err` says what is missing when `SUDO_USER` is set without them.
    pub fn from_env(name: String) -> Result<Invoker, String> {
        let (uid, gid) = sudo_ids()?;
        Ok(Invoker { name, uid, gid })
    }

    /// The user's uid and primary gid (what `credfile run` drops to).
    pub fn ids(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }

    /// `Ok` when the user can open `path` for reading (following links, as they would) and
    /// it is a regular file.
    pub fn probe(&self, path: &Path) -> Result<(), Denied> {
        self.run("probe", path, None, 0).map(drop)
    }

    /// The bytes of `path` read as the user: a regular file of at most `cap` bytes, opened
    /// without blocking (a FIFO is refused, not waited on) and without following a final link.
    pub fn read(&self, path: &Path, cap: u64) -> Result<Vec<u8>, Denied> {
        self.run("read", path, None, cap)
    }

    /// Appends `bytes` to `path` as the user (created 0644 when absent; a regular file, no
    /// final link followed).
    pub fn append(&self, path: &Path, bytes: &[u8]) -> Result<(), Denied> {
        self.run("append", path, Some(bytes), 0).map(drop)
    }

    fn run(
        &self,
        mode: &str,
        path: &Path,
        input: Option<&[u8]>,
        cap: u64,
    ) -> Result<Vec<u8>, Denied> {
        let mut child = Command::new("/proc/self/exe")
            .arg0("credfile")
            .arg(HELPER_ARG)
            .arg(mode)
            .arg(cap.to_string())
            .arg(path)
            // Nothing of root's environment (a job's tokens) in a process the user will own.
            .env_clear()
            .env("SUDO_USER", &self.name)
            .env("SUDO_UID", self.uid.to_string())
            .env("SUDO_GID", self.gid.to_string())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Denied::Helper(format!("cannot start the helper: {e}")))?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            // A helper that stopped early says why in its exit code.
            let _ = stdin.write_all(bytes);
        }
        let mut out = Vec::with_capacity(usize::try_from(cap).unwrap_or(0).saturating_add(1));
        if let Some(stdout) = child.stdout.take() {
            let _ = stdout.take(cap.saturating_add(1)).read_to_end(&mut out);
        }
        let status = child
            .wait()
            .map_err(|e| Denied::Helper(format!("the helper: {e}")))?;
        let denied = match status.code() {
            Some(0) if out.len() as u64 <= cap => return Ok(out),
            Some(0) | Some(TOO_LARGE) => Denied::TooLarge,
            Some(NOT_REGULAR) => Denied::NotRegular,
            Some(CANNOT_SWITCH) => Denied::Helper(format!(
                "cannot switch to uid {} and gid {}",
                self.uid, self.gid
            )),
            Some(code) if code > ERRNO_BASE => Denied::Errno(Errno::from_raw(code - ERRNO_BASE)),
            _ => Denied::Helper(format!("the helper ended with {status}")),
        };
        zeroize::Zeroize::zeroize(&mut out);
        Err(denied)
    }
}

/// `SUDO_UID` and `SUDO_GID` as numbers.
fn sudo_ids() -> Result<(u32, u32), String> {
    let id = |k: &str| -> Result<u32, String> {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("SUDO_USER is set but {k} is not a number"))
    };
    Ok((id("SUDO_UID")?, id("SUDO_GID")?))
}

/// The helper process: `__as-invoker MODE CAP PATH`. Never returns.
pub fn helper_main(args: &[std::ffi::OsString]) -> ! {
    let code = match args {
        [mode, cap, path] => match (mode.to_str(), cap.to_str().and_then(|c| c.parse().ok())) {
            (Some(mode), Some(cap)) => helper(mode, cap, Path::new(path)),
            _ => BAD_CALL,
        },
        _ => BAD_CALL,
    };
    std::process::exit(code)
}

fn helper(mode: &str, cap: u64, path: &Path) -> i32 {
    if !Uid::effective().is_root() {
        return BAD_CALL;
    }
    let Ok(user) = std::env::var("SUDO_USER") else {
        return BAD_CALL;
    };
    let Ok((uid, gid)) = sudo_ids() else {
        return BAD_CALL;
    };
    if become_user(&user, Uid::from_raw(uid), Gid::from_raw(gid)).is_err() {
        return CANNOT_SWITCH;
    }
    let errno = |e: Errno| ERRNO_BASE + e as i32;
    let base = OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let (flags, write) = match mode {
        "probe" => (OFlag::O_RDONLY, false),
        "read" => (OFlag::O_RDONLY | OFlag::O_NOFOLLOW, false),
        "append" => (
            OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_NOFOLLOW,
            true,
        ),
        _ => return BAD_CALL,
    };
    let fd = match open(path, base | flags, Mode::from_bits_truncate(0o644)) {
        Ok(fd) => fd,
        Err(e) => return errno(e),
    };
    let mut file = std::fs::File::from(fd);
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return NOT_REGULAR,
        Err(e) => return errno(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
    }
    let io_errno = |e: std::io::Error| errno(Errno::from_raw(e.raw_os_error().unwrap_or(5)));
    match mode {
        "probe" => 0,
        _ if write => {
            let mut bytes = Vec::new();
            if let Err(e) = std::io::stdin()
                .lock()
                .take(1 << 24)
                .read_to_end(&mut bytes)
            {
                return io_errno(e);
            }
            file.write_all(&bytes).map_or_else(io_errno, |()| 0)
        }
        _ => {
            let mut bytes = Vec::new();
            if let Err(e) = (&mut file).take(cap + 1).read_to_end(&mut bytes) {
                return io_errno(e);
            }
            if bytes.len() as u64 > cap {
                zeroize::Zeroize::zeroize(&mut bytes);
                return TOO_LARGE;
            }
            let written = std::io::stdout().lock().write_all(&bytes);
            zeroize::Zeroize::zeroize(&mut bytes);
            written.map_or_else(io_errno, |()| 0)
        }
    }
}

/// The user's login groups (the primary one alone when the name is unknown here: fewer rights,
/// never more), then the gid, then the uid; checked afterwards. Only for a helper process that
/// does one thing as the user: glibc switches every thread of the process, for good.
pub fn become_user(name: &str, uid: Uid, gid: Gid) -> Result<(), Errno> {
    let groups = std::ffi::CString::new(name)
        .ok()
        .and_then(|n| nix::unistd::getgrouplist(&n, gid).ok())
        .unwrap_or_else(|| vec![gid]);
    nix::unistd::setgroups(&groups)?;
    nix::unistd::setresgid(gid, gid, gid)?;
    nix::unistd::setresuid(uid, uid, uid)?;
    if Uid::effective() != uid || Gid::effective() != gid {
        return Err(Errno::EPERM);
    }
    Ok(())
}
