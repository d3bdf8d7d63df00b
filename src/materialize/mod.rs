//! Materialize: put rendered files on disk so that no one can redirect, read early, or tear them,
//! and keep track of what credfile owns so that `verify` and `clean` can be exact.
//!
//! Two layouts (docs/src/layouts.md), one set of safety rules:
//! - every path component is opened with `O_NOFOLLOW`, starting at `/`: a symlink anywhere is
//!   refused, never followed; directories must belong to root or to us and must not be group- or
//!   world-writable (a root-owned sticky directory such as /tmp is accepted above the root only);
//! - what is at a target is inspected without following it and refused unless it is what credfile
//!   put there; its mode and owner are never inherited;
//! - a new inode is private until complete: fchown first (an EPERM fails before any secret byte is
//!   on disk), then the bytes, fchmod; one `syncfs` makes the whole set durable before the commit;
//! - an unchanged file is not touched (same inode, same mtime).
//!
//! [`generation`] (the default) builds a hidden generation directory and commits the whole set
//! with one atomic `current` symlink flip; [`files`] replaces each file with one rename. [`state`]
//! records what credfile owns (paths, modes, owners, secret ids, version ids; never a value or a
//! hash of one). [`verify`] compares the host with the manifest; [`clean`] removes what credfile
//! wrote and nothing else.
//!
//! [`preflight`] runs before any secret is fetched and checks every destination, so an unsafe or
//! unwritable target fails the run while no secret is in memory.

mod clean;
mod files;
mod generation;
mod owner;
mod preflight;
mod reach;
mod seal;
pub mod state;
pub mod vault;
mod verify;
mod walk;

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg};
use nix::sys::stat::{FileStat, SFlag, fstat, fstatat};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use nix::unistd::{UnlinkatFlags, unlinkat};

pub use clean::{Cleaned, clean};
pub use verify::{Drift, DriftKind, verify};

pub use preflight::{
    Checked, Destination, SetShape, check_destinations, check_reach, check_root_path, preflight,
    private_root, resolve, resolve_offline,
};
use walk::{Dir, Dirs, barrier, check_dir, trim_cache};

use crate::manifest::Layout;
use crate::render::Rendered;

/// Names credfile creates next to targets while publishing; swept when found later.
const TEMP_PREFIX: &str = ".credfile-";
const TEMP_SUFFIX: &str = ".tmp";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: {reason}", path.display())]
    Unsafe { path: PathBuf, reason: String },
    #[error("{} (manifest line {line}): no {kind} named `{name}` on this host", path.display())]
    UnknownPrincipal {
        path: PathBuf,
        line: usize,
        kind: &'static str,
        name: String,
    },
    #[error("{}: running as uid {euid}, credfile cannot give files to uid {uid} / gid {gid}", path.display())]
    ChownDenied {
        path: PathBuf,
        euid: u32,
        uid: u32,
        gid: u32,
    },
    #[error("{} (manifest line {line}): {reason}", path.display())]
    Unreachable {
        path: PathBuf,
        line: usize,
        reason: String,
        /// The blocking directory exists (else credfile would create it with `dir_mode`).
        existing: bool,
    },
    #[error("{}: the filesystem is read-only", path.display())]
    ReadOnly { path: PathBuf },
    #[error("{}: not writable by uid {euid}", path.display())]
    NotWritable { path: PathBuf, euid: u32 },
    #[error("{}: {op} failed: {errno}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        errno: Errno,
    },
    #[error("{}: {op} failed: {errno}; already published: {}", failed.display(), if published.is_empty() { "none".to_string() } else { published.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ") })]
    Partial {
        failed: PathBuf,
        op: &'static str,
        errno: Errno,
        published: Vec<PathBuf>,
    },
    #[error("{}: after publishing, the name does not point to the file credfile wrote", path.display())]
    Tampered { path: PathBuf },
    #[error("{}: this root belongs to app `{app}`, environment `{env}` (per its state file), not to app `{want_app}`, environment `{want_env}`", root.display())]
    OtherOwner {
        root: PathBuf,
        app: String,
        env: String,
        want_app: String,
        want_env: String,
    },
    #[error("{}: written with `layout: {from}`, but the manifest now says `layout: {to}`", root.display())]
    LayoutChange {
        root: PathBuf,
        from: &'static str,
        to: &'static str,
    },
    #[error("{}: unreadable state file: {reason}", path.display())]
    BadState { path: PathBuf, reason: String },
    #[error("{}: the files are committed, but {op} failed: {errno}", path.display())]
    AfterCommit {
        path: PathBuf,
        op: &'static str,
        errno: Errno,
    },
    /// `deliver: systemd-creds`: systemd-creds is missing, too old, or failed.
    #[error(transparent)]
    Creds(#[from] crate::systemd_creds::CredsError),
}

impl WriteError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            WriteError::Unsafe { .. } => "credfile never writes through symlinks, into directories others can modify, or over entries it did not create; remove the offending entry or fix the ownership and permissions, then run again".into(),
            WriteError::UnknownPrincipal { kind, .. } => format!("create the {kind} on this host, or use a numeric id in the manifest"),
            WriteError::ChownDenied { .. } => "run credfile as root (sudo), or remove `owner`/`group` so files belong to the invoking user".into(),
            WriteError::Unreachable { existing: true, .. } => "change that directory's mode or group so the file's owner and group can pass (for example mode 0710 with the app's group), or choose another root; nothing was written".into(),
            WriteError::Unreachable { existing: false, .. } => "set `dir_mode` (for example \"0710\" or \"0750\") and the environment's `group` (the directories credfile creates get it) so the file's owner and group can pass; credfile does not widen directory modes on its own, and nothing was written".into(),
            WriteError::ReadOnly { .. } => "choose a root on a writable filesystem (for example under /run)".into(),
            WriteError::NotWritable { .. } => "run as the directory's owner or as root, or choose another root".into(),
            WriteError::Io { errno: Errno::ENOSPC | Errno::EDQUOT, .. } => "free space on the target filesystem; nothing was published".into(),
            WriteError::Io { .. } => "nothing was published; fix the cause and run again".into(),
            WriteError::Partial { .. } => "the files listed as published are new, the rest are as before; run again to complete the set".into(),
            WriteError::Tampered { .. } => "another process is changing the target directory while credfile runs; investigate before trusting these files".into(),
            WriteError::OtherOwner { env, app, .. } => format!("give each app and environment its own root, or remove the old set first with `credfile clean --env {env}` (manifest of app `{app}`)"),
            WriteError::LayoutChange { .. } => "run `credfile clean --env ENV` with the old layout first (consumers briefly see no files), or keep the old layout".into(),
            WriteError::BadState { .. } => "the state file is credfile's record of what it owns; if it was damaged, inspect the root by hand, remove the file, and apply again".into(),
            WriteError::AfterCommit { .. } => "the new files are live; run again to bring the state file up to date".into(),
            WriteError::Creds(e) => e.hint(),
        })
    }
}

/// What happened, or would happen, to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Updated,
    Unchanged,
    /// In the previous set, no longer in the manifest for this environment.
    Removed,
}

impl Status {
    pub fn changed(self) -> bool {
        self != Status::Unchanged
    }
}

/// The outcome of one file.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub dest: Destination,
}

/// What a write did: one outcome per file of the plan (same order), then the files that left
/// the set (status `Removed`).
#[derive(Debug, Default)]
pub struct Applied {
    pub outcomes: Vec<Outcome>,
    pub removed: Vec<Outcome>,
    /// Paths changed by an earlier run that died before its hooks ran (relative to the root).
    pub pending: Vec<PathBuf>,
}

/// The paths a run changes (created, updated or removed), relative to the root: what change
/// hooks are owed for.
fn changing_paths(outcomes: &[Outcome], removed: &[Outcome]) -> Vec<PathBuf> {
    outcomes
        .iter()
        .chain(removed)
        .filter(|o| o.status.changed())
        .map(|o| o.dest.path.clone())
        .collect()
}

/// The directories credfile created under this root, over all runs (for `clean`).
fn all_created_dirs(old: Option<&state::State>, dirs: &Dirs) -> Vec<PathBuf> {
    let mut created = old.map(|s| s.created_dirs.clone()).unwrap_or_default();
    let mut seen: std::collections::HashSet<PathBuf> = created.iter().cloned().collect();
    for d in dirs.created_paths() {
        if seen.insert(d.clone()) {
            created.push(d);
        }
    }
    created
}

/// After the change hooks of a run have run: the record of pending hooks (see
/// `state::State::pending_hooks`) becomes `still_owed` (relative paths whose hook failed: they
/// stay owed until a hook run for them succeeds), under the root's lock.
pub fn hooks_ran(checked: &Checked, still_owed: Vec<PathBuf>) -> Result<(), WriteError> {
    let dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Ok(());
    };
    let _lock = lock(&root, &checked.root)?;
    state::clear_pending(&root, checked, still_owed)
}

/// Compares the rendered files with what is on disk and, unless `dry_run`, writes what changed,
/// then records the set in the state file. `rendered` is in the same order as `checked.files`.
pub fn write(
    checked: &Checked,
    rendered: &[Rendered],
    dry_run: bool,
) -> Result<Applied, WriteError> {
    match checked.layout {
        Layout::Files => files::write(checked, rendered, dry_run),
        Layout::Generation => generation::write(checked, rendered, dry_run),
    }
}

/// What credfile knows is its own at a target, so that a periodic apply repairs drift there
/// instead of refusing it (self-healing). Nothing is ever followed or opened for writing: an
/// entry credfile may replace is replaced by a rename of a new private inode (or a new
/// generation), never modified.
#[derive(Clone, Copy)]
pub(super) enum Claim<'a> {
    /// Files layout: the state file's record for the path, if any (none: a foreign owner, a
    /// symlink or another type is refused). The inode credfile published
    /// is replaced whatever its owner now is; a symlink or special file put in its place is
    /// replaced too. A regular file that is not that inode, or a directory, is refused.
    Recorded(Option<&'a state::FileRecord>),
    /// Generation layout: inside credfile's own live generation, everything is credfile's.
    Generation,
}

/// Looks at the current target without following it. `None`: it does not exist. A non-regular
/// entry is returned only when `claim` lets credfile replace it.
fn inspect_target(
    dir: &OwnedFd,
    name: &Path,
    full: &Path,
    dest: &Destination,
    euid: u32,
    claim: Claim<'_>,
) -> Result<Option<FileStat>, WriteError> {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => {
            return Err(WriteError::Io {
                path: full.to_path_buf(),
                op: "stat",
                errno: e,
            });
        }
    };
    let unsafe_target = |reason: String| {
        Err(WriteError::Unsafe {
            path: full.to_path_buf(),
            reason,
        })
    };
    let recorded = matches!(claim, Claim::Recorded(Some(_)));
    match (file_type(&st), claim) {
        (SFlag::S_IFREG, _) => {}
        (_, Claim::Generation) => return Ok(Some(st)),
        (SFlag::S_IFDIR, _) => {
            return unsafe_target(
                "the target is a directory, not a regular file; credfile will not remove a directory it did not create: move it away".into(),
            );
        }
        (_, _) if recorded => return Ok(Some(st)),
        (SFlag::S_IFLNK, _) => {
            return unsafe_target(
                "the target is a symlink; credfile will not write through or replace it".into(),
            );
        }
        (other, _) => {
            return unsafe_target(format!(
                "the target is a {}, not a regular file",
                type_name(other)
            ));
        }
    }
    let ours = match claim {
        Claim::Generation => true,
        Claim::Recorded(Some(rec)) => rec.is_ours(&st),
        Claim::Recorded(None) => false,
    };
    if !ours && st.st_uid != 0 && st.st_uid != euid && st.st_uid != dest.uid {
        return unsafe_target(format!(
            "the target belongs to uid {}, not to root, credfile's user or the manifest's owner, and is not the file credfile wrote",
            st.st_uid
        ));
    }
    Ok(Some(st))
}

fn ensure_writable(dir: &OwnedFd, path: &Path, euid: u32) -> Result<(), WriteError> {
    if let Ok(vfs) = fstatvfs(dir)
        && vfs.flags().contains(FsFlags::ST_RDONLY)
    {
        return Err(WriteError::ReadOnly {
            path: path.to_path_buf(),
        });
    }
    let st = fstat(dir).map_err(|e| WriteError::Io {
        path: path.to_path_buf(),
        op: "stat",
        errno: e,
    })?;
    if euid != 0 && (st.st_uid != euid || st.st_mode & 0o200 == 0) {
        return Err(WriteError::NotWritable {
            path: path.to_path_buf(),
            euid,
        });
    }
    Ok(())
}

fn lock(root: &Dir, path: &Path) -> Result<Flock<OwnedFd>, WriteError> {
    let fd = root.fd.try_clone().map_err(|e| WriteError::Io {
        path: path.to_path_buf(),
        op: "dup",
        errno: errno_of(&e),
    })?;
    Flock::lock(fd, FlockArg::LockExclusive).map_err(|(_, e)| WriteError::Io {
        path: path.to_path_buf(),
        op: "lock",
        errno: e,
    })
}

/// Removes temp names left by a run that was killed between link and rename.
fn sweep(dir: &Dir, euid: u32) {
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", dir.fd.as_fd().as_raw_fd()))
    else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let bytes = name.as_bytes();
        if !(bytes.starts_with(TEMP_PREFIX.as_bytes()) && bytes.ends_with(TEMP_SUFFIX.as_bytes())) {
            continue;
        }
        if let Ok(st) = fstatat(&dir.fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            && file_type(&st) == SFlag::S_IFREG
            && (st.st_uid == euid || euid == 0)
        {
            tracing::info!(dir = %dir.path.display(), "removing debris of an interrupted run");
            let _ = unlinkat(&dir.fd, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

fn temp_name() -> PathBuf {
    let mut random = [0u8; 16];
    // getrandom only fails without any entropy source; a fixed name then still gets O_EXCL.
    let _ = getrandom::fill(&mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("{TEMP_PREFIX}{hex}{TEMP_SUFFIX}"))
}

fn split(path: &Path) -> (&Path, &Path) {
    let parent = path.parent().unwrap_or(Path::new(""));
    let name = path.file_name().map(Path::new).unwrap_or(path);
    (parent, name)
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn type_name(t: SFlag) -> &'static str {
    match t {
        SFlag::S_IFDIR => "directory",
        SFlag::S_IFIFO => "FIFO",
        SFlag::S_IFSOCK => "socket",
        SFlag::S_IFCHR => "character device",
        SFlag::S_IFBLK => "block device",
        SFlag::S_IFLNK => "symlink",
        _ => "special file",
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}
