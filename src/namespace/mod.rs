//! The seam to the kernel for `credfile run` (docs/src/run.md): a private mount namespace (in a
//! user namespace of the caller's own ids when credfile is not root), a fresh size-capped tmpfs
//! at the environment's root, and the processes that live in it.
//!
//! No `unsafe`: the processes that enter the namespace are credfile itself, started again as
//! small single-threaded helpers (`__run-inside`, `__run-exec`), the way `sudo::invoker` does
//! it, so every kernel call here is one of nix's safe wrappers:
//! - `credfile run` (the supervisor) fetches and renders, then starts `__run-inside`;
//! - `__run-inside` unshares, mounts the tmpfs, writes the files there (materialize, as
//!   apply does) and starts `__run-exec`;
//! - `__run-exec` drops to the user the command runs as, arms `PR_SET_PDEATHSIG` (checked
//!   against a parent that died first) and `exec`s the command.

pub mod channel;
pub mod env;
pub mod exec;
pub mod supervise;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::stat::{Mode, fstat};
use nix::sys::statfs::{TMPFS_MAGIC, fstatfs};

/// argv[1] of the helper that creates the namespace and writes the files.
pub const INSIDE_ARG: &str = "__run-inside";
/// argv[1] of the helper that becomes the command.
pub const EXEC_ARG: &str = "__run-exec";

/// The largest set `credfile run` mounts (its files' bytes); the tmpfs is sized from the set.
pub const MAX_SET_BYTES: u64 = 256 << 20;

/// The umask credfile was started with, before `main` set its own: the command gets it back.
static STARTED_UMASK: OnceLock<u32> = OnceLock::new();

/// Called once by `main` with what `umask(077)` returned.
pub fn remember_umask(previous: Mode) {
    let _ = STARTED_UMASK.set(previous.bits());
}

/// The caller's umask (022 when `main` did not say).
pub fn started_umask() -> u32 {
    STARTED_UMASK.get().copied().unwrap_or(0o022)
}

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    /// The kernel refused an unprivileged user namespace: `setting` names why.
    #[error("cannot create a private namespace as uid {uid}: {step} failed ({errno}): {setting}")]
    UserNamespaceDenied {
        uid: u32,
        step: &'static str,
        errno: Errno,
        setting: String,
    },
    #[error("{}: {step} failed: {errno}", root.display())]
    Kernel {
        root: PathBuf,
        step: &'static str,
        errno: Errno,
    },
    #[error("{}: {reason}", root.display())]
    Root { root: PathBuf, reason: String },
    #[error("the namespace helper: {0}")]
    Helper(String),
    /// What the namespace helper reported (its errors cross the socket as text).
    #[error("{message}")]
    Inside {
        stage: String,
        message: String,
        hint: String,
        code: u8,
    },
    #[error("--run-as {user}: {reason}")]
    RunAs { user: String, reason: String },
    /// `--every` with a lease or a certificate: a refresh would replace them every round.
    #[error(
        "{}:{line}: `{}` (`{key}:`) cannot be refreshed by `credfile run --every`",
        file.display(),
        path.display()
    )]
    EveryWithDynamic {
        file: PathBuf,
        line: usize,
        path: PathBuf,
        key: &'static str,
    },
    /// The manifest's `run_as` names no user of this host.
    #[error("{}:{line}: `run_as: {user}`: no such user on this host", file.display())]
    RunAsUnknown {
        user: String,
        file: PathBuf,
        line: usize,
    },
}

impl NsError {
    pub fn hint(&self) -> String {
        match self {
            NsError::UserNamespaceDenied { .. } => "allow unprivileged user namespaces on this host (the setting named above), or run `credfile run` as root (sudo); credfile never falls back to writing the files to a disk directory".into(),
            NsError::Kernel { .. } => "credfile run needs mount namespaces and tmpfs (as root, or in a user namespace); nothing was written".into(),
            NsError::Root { .. } => "the root must be an existing directory reached without symlinks (it stays empty on the host: the files exist only inside the run); create it, or choose another root".into(),
            NsError::Helper(_) => "this is a bug or a killed helper; nothing was written to disk".into(),
            NsError::Inside { hint, .. } => hint.clone(),
            NsError::RunAsUnknown { .. } => "create the user, or name another in `run_as` (a user name or uid of this host); `--run-as` overrides it; nothing was fetched".into(),
            NsError::EveryWithDynamic { .. } => "run the command without --every: it gets fresh credentials and certificates for itself, revoked when it exits; a long-running consumer keeps a lease renewed in place with `credfile apply --every` instead; nothing was fetched".into(),
            NsError::RunAs { .. } => "--run-as takes a user of this host (name or uid), and only when credfile runs as root without sudo (under sudo the command runs as you)".into(),
        }
    }

    /// The exit code from the table (docs/src/exit-codes.md): the root and the namespace are
    /// the target of `credfile run`, so they fail as writes do.
    pub fn code(&self) -> u8 {
        match self {
            NsError::Inside { code, .. } => *code,
            NsError::RunAs { .. } | NsError::EveryWithDynamic { .. } => crate::exit::USAGE,
            NsError::Helper(_) => crate::exit::INTERNAL,
            _ => crate::exit::WRITE,
        }
    }
}

/// Which ids map into the user namespace (`None`: credfile is root, no user namespace).
#[derive(Debug, Clone, Copy)]
pub struct OwnIds {
    pub uid: u32,
    pub gid: u32,
}

/// The private root: a tmpfs mounted at the environment's root in this process's new mount
/// namespace. Dropped with the namespace when the last process in it exits.
pub struct Private {
    pub root: PathBuf,
    /// The tmpfs's own top directory.
    dir: OwnedFd,
}

impl Private {
    /// Unshares (a user namespace too when `userns` is given), makes every mount private so
    /// nothing propagates back to the host, and mounts a tmpfs of `size` bytes over `root`,
    /// with the root's mode, owned by this process's ids. Call in a single-threaded process.
    pub fn enter(root: &Path, userns: Option<OwnIds>, size: u64) -> Result<Private, NsError> {
        let kernel = |step: &'static str| {
            let root = root.to_path_buf();
            move |errno| NsError::Kernel { root, step, errno }
        };
        if let Some(ids) = userns {
            // A process writes its own id maps only while /proc/self is its own: `main` made
            // it undumpable (root's); no secret is in this process yet, and it is made
            // undumpable again right after.
            let _ = nix::sys::prctl::set_dumpable(true);
            let entered = enter_userns(ids);
            let _ = nix::sys::prctl::set_dumpable(false);
            entered?;
            make_private().map_err(denied(ids, "making mounts private"))?;
        } else {
            unshare(CloneFlags::CLONE_NEWNS).map_err(kernel("unshare(CLONE_NEWNS)"))?;
            make_private().map_err(kernel("making mounts private"))?;
        }
        // The mount point is opened component by component without following a link, and the
        // tmpfs goes on that very directory (through its descriptor), not on whatever the path
        // names by the time mount(2) resolves it.
        let mountpoint = walk(root)?;
        let st = fstat(&mountpoint).map_err(kernel("stat"))?;
        let options = format!(
            "size={size},nr_inodes={},mode={:o},uid={},gid={}",
            65_536,
            st.st_mode & 0o7777,
            nix::unistd::Uid::effective(),
            nix::unistd::Gid::effective()
        );
        let at = fd_path(&mountpoint);
        let mounted = mount(
            Some("credfile-run"),
            at.as_path(),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(options.as_str()),
        );
        if let Err(errno) = mounted {
            return Err(match userns {
                Some(ids) if errno == Errno::EPERM => denied(ids, "mount(tmpfs)")(errno),
                _ => kernel("mount(tmpfs)")(errno),
            });
        }
        drop(mountpoint);
        let dir = walk(root)?;
        match fstatfs(&dir) {
            Ok(fs) if fs.filesystem_type() == TMPFS_MAGIC => {}
            _ => {
                return Err(NsError::Root {
                    root: root.to_path_buf(),
                    reason: "after mounting, the root is not the new tmpfs".into(),
                });
            }
        }
        Ok(Private {
            root: root.to_path_buf(),
            dir,
        })
    }

    /// The tmpfs's new size limit (a set grew).
    pub fn resize(&self, size: u64) -> Result<(), NsError> {
        let at = fd_path(&self.dir);
        mount(
            None::<&str>,
            at.as_path(),
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("size={size}").as_str()),
        )
        .map_err(|errno| NsError::Kernel {
            root: self.root.clone(),
            step: "remount(tmpfs size)",
            errno,
        })
    }
}

/// The uid that owners outside a user namespace show as inside it (`kernel.overflowuid`).
pub fn overflow_uid() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_534)
}

/// The tmpfs size for a set of `bytes`: room for two generations of it during a refresh, its
/// state file and directories. `None`: over [`MAX_SET_BYTES`].
pub fn tmpfs_size(bytes: u64) -> Option<u64> {
    (bytes <= MAX_SET_BYTES).then(|| bytes.saturating_mul(2).saturating_add(1 << 20))
}

/// A user and mount namespace with the caller's own uid and gid mapped to themselves.
fn enter_userns(ids: OwnIds) -> Result<(), NsError> {
    let denied = |step| denied(ids, step);
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .map_err(denied("unshare(CLONE_NEWUSER|CLONE_NEWNS)"))?;
    write_proc("/proc/self/setgroups", "deny").map_err(denied("writing /proc/self/setgroups"))?;
    write_proc("/proc/self/uid_map", &format!("{0} {0} 1\n", ids.uid))
        .map_err(denied("writing /proc/self/uid_map"))?;
    write_proc("/proc/self/gid_map", &format!("{0} {0} 1\n", ids.gid))
        .map_err(denied("writing /proc/self/gid_map"))
}

/// The kernel refused a step of an unprivileged namespace: say which setting did.
fn denied(ids: OwnIds, step: &'static str) -> impl FnOnce(Errno) -> NsError {
    move |errno| NsError::UserNamespaceDenied {
        uid: ids.uid,
        step,
        errno,
        setting: denial(errno),
    }
}

fn make_private() -> Result<(), Errno> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

fn write_proc(path: &str, text: &str) -> Result<(), Errno> {
    std::fs::write(path, text).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// Opens the directory `root` from `/`, one component at a time, never following a link.
fn walk(root: &Path) -> Result<OwnedFd, NsError> {
    let refuse = |reason: String| NsError::Root {
        root: root.to_path_buf(),
        reason,
    };
    if !root.is_absolute() {
        return Err(refuse("not an absolute path".into()));
    }
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut dir = open("/", flags, Mode::empty()).map_err(|e| refuse(format!("open /: {e}")))?;
    let mut so_far = PathBuf::from("/");
    for part in root.components() {
        match part {
            Component::RootDir => continue,
            Component::Normal(name) => {
                so_far.push(name);
                dir = openat(&dir, name, flags, Mode::empty()).map_err(|e| {
                    refuse(match e {
                        Errno::ENOENT => format!("{} does not exist", so_far.display()),
                        Errno::ELOOP | Errno::ENOTDIR => format!(
                            "{} is a symlink or not a directory; credfile mounts only on a real directory",
                            so_far.display()
                        ),
                        e => format!("{}: {e}", so_far.display()),
                    })
                })?;
            }
            _ => return Err(refuse("`.` and `..` are not allowed in the root".into())),
        }
    }
    Ok(dir)
}

/// Which kernel setting explains a refused user namespace (or mount in one): the first of the
/// known ones that is set, or what was seen when none is.
pub fn denial(errno: Errno) -> String {
    denial_from(errno, |p| std::fs::read_to_string(p).ok())
}

fn denial_from(errno: Errno, read: impl Fn(&str) -> Option<String>) -> String {
    let value = |p: &str| read(p).map(|v| v.trim().to_string());
    if value("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return "user.max_user_namespaces = 0 (/proc/sys/user/max_user_namespaces): user namespaces are disabled on this host".into();
    }
    if value("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return "kernel.unprivileged_userns_clone = 0 (/proc/sys/kernel/unprivileged_userns_clone): unprivileged user namespaces are disabled".into();
    }
    if value("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return "kernel.apparmor_restrict_unprivileged_userns = 1: AppArmor confines unprivileged user namespaces (no capabilities inside)".into();
    }
    let seccomp = read("/proc/self/status").and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_string()))
    });
    match seccomp.as_deref() {
        Some("2") => format!(
            "a seccomp filter on credfile's process (Seccomp: 2 in /proc/self/status) refuses it with {errno}: the container runtime or service manager that started credfile denies namespaces"
        ),
        _ => format!(
            "{errno}, and neither user.max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns nor a seccomp filter explains it (a container runtime or LSM may deny it)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |p| files.iter().find(|(k, _)| k == p).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_refusal_names_the_setting_that_explains_it() {
        let max = denial_from(
            Errno::ENOSPC,
            with(&[("/proc/sys/user/max_user_namespaces", "0\n")]),
        );
        assert!(max.starts_with("user.max_user_namespaces = 0"), "{max}");
        let clone = denial_from(
            Errno::EPERM,
            with(&[
                ("/proc/sys/user/max_user_namespaces", "1000\n"),
                ("/proc/sys/kernel/unprivileged_userns_clone", "0\n"),
            ]),
        );
        assert!(
            clone.starts_with("kernel.unprivileged_userns_clone = 0"),
            "{clone}"
        );
        let apparmor = denial_from(
            Errno::EPERM,
            with(&[(
                "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
                "1",
            )]),
        );
        assert!(
            apparmor.contains("apparmor_restrict_unprivileged_userns = 1"),
            "{apparmor}"
        );
        let seccomp = denial_from(
            Errno::EPERM,
            with(&[("/proc/self/status", "Name:\tx\nSeccomp:\t2\n")]),
        );
        assert!(
            seccomp.contains("seccomp filter") && seccomp.contains("EPERM"),
            "{seccomp}"
        );
        let none = denial_from(Errno::EPERM, with(&[]));
        assert!(none.contains("neither"), "{none}");
    }

    #[test]
    fn the_tmpfs_is_sized_from_the_set_and_capped() {
        assert_eq!(tmpfs_size(0), Some(1 << 20));
        assert_eq!(tmpfs_size(1000), Some(2000 + (1 << 20)));
        assert_eq!(tmpfs_size(MAX_SET_BYTES + 1), None);
    }
}
