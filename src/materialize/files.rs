//! `layout: files`: per-file atomic replacement at fixed paths.
//!
//! All changed files are staged (anonymous `O_TMPFILE` inodes, complete, owned and moded) before
//! the first one is published, made durable together (one `syncfs`), then each is published with
//! one rename. A failure between two
//! renames is reported with exactly the files already published.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, linkat, unlinkat};
use zeroize::Zeroizing;

use super::*;
use crate::render::Rendered;

/// Compares the rendered files with what is on disk and, unless `dry_run`, writes what changed,
/// removes files that left the set (only the inode credfile published), and records the set.
/// `rendered` is in the same order as `checked.files`.
pub fn write(
    checked: &Checked,
    rendered: &[Rendered],
    dry_run: bool,
) -> Result<Applied, WriteError> {
    let mut dirs = Dirs::new(checked, !dry_run)?;
    // Serialize concurrent runs on the same root (held until this function returns).
    let _lock = match (&dirs.root, dry_run) {
        (Some(root), false) => Some(lock(root, &checked.root)?),
        _ => None,
    };
    let old_state = match &dirs.root {
        Some(root) => state::read(root, checked.euid)?,
        None => None,
    };
    if let Some(s) = &old_state {
        s.check_owner(checked)?;
    }
    let mut outcomes = Vec::with_capacity(rendered.len());
    let mut staged: Vec<Staged> = Vec::new();
    let mut swept: BTreeSet<PathBuf> = BTreeSet::new();
    let result = (|| {
        for (dest, r) in checked.files.iter().zip(rendered) {
            let (parent, name) = split(&dest.path);
            let full = checked.root.join(&dest.path);
            let status = match dirs.open(parent)? {
                None => Status::Created,
                Some(dir) => {
                    if !dry_run && swept.insert(dir.path.clone()) {
                        sweep(&dir, checked.euid);
                    }
                    let claim =
                        Claim::Recorded(old_state.as_ref().and_then(|s| s.file(&dest.path)));
                    compare(&dir.fd, name, &full, dest, &r.bytes, checked.euid, claim)?
                }
            };
            outcomes.push(Outcome {
                status,
                dest: dest.clone(),
            });
            if status != Status::Unchanged && !dry_run {
                let Some(dir) = dirs.open(parent)? else {
                    return Err(WriteError::Io {
                        path: checked.root.join(parent),
                        op: "create directory",
                        errno: Errno::ENOENT,
                    });
                };
                staged.push(stage(dir, name, &full, dest, &r.bytes)?);
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        drop(staged);
        dirs.undo();
        return Err(e);
    }
    // Files credfile wrote before that are no longer in the set: still the inode it published?
    let mut leftovers = Vec::new();
    for rec in old_state.iter().flat_map(|s| &s.files) {
        if checked.files.iter().any(|d| d.path == rec.path) {
            continue;
        }
        let (parent, name) = split(&rec.path);
        let Some(dir) = dirs.find(parent)? else {
            continue;
        };
        match fstatat(&dir.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if rec.is_ours(&st) => {
                leftovers.push((dir, name.to_path_buf(), rec));
            }
            Ok(_) => {
                tracing::warn!(path = %checked.root.join(&rec.path).display(), "left the manifest, but is not the file credfile wrote: left in place")
            }
            Err(_) => {}
        }
    }
    let removed: Vec<Outcome> = leftovers
        .iter()
        .map(|(_, _, rec)| Outcome {
            status: Status::Removed,
            dest: Destination {
                path: rec.path.clone(),
                mode: u32::from_str_radix(&rec.mode, 8).unwrap_or(0),
                uid: rec.uid,
                gid: rec.gid,
            },
        })
        .collect();
    let pending: Vec<PathBuf> = old_state
        .as_ref()
        .map(|s| s.pending_hooks.clone())
        .unwrap_or_default();
    if dry_run {
        return Ok(Applied {
            outcomes,
            removed,
            pending,
        });
    }
    let changed = !staged.is_empty() || !removed.is_empty();
    let changing = changing_paths(&outcomes, &removed);
    if let (true, Some(root)) = (changed, dirs.root.clone()) {
        state::mark_pending(&root, checked, old_state.as_ref(), changing.clone())?;
    }
    if let Err(e) = publish(staged) {
        // Nothing published: the state goes back to what it was. (A failure between renames
        // keeps the pending mark: some files did change.)
        let nothing_published = match &e {
            WriteError::Io { .. } => true,
            WriteError::Partial { published, .. } => published.is_empty(),
            _ => false,
        };
        if let (true, Some(root)) = (nothing_published, dirs.root.clone()) {
            let _ = match &old_state {
                Some(old) => state::write(&root, old, checked.euid, checked.egid),
                None => state::remove(&root).map(|_| ()),
            };
        }
        return Err(e);
    }
    for (dir, name, rec) in &leftovers {
        unlinkat(&dir.fd, name, UnlinkatFlags::NoRemoveDir).map_err(|errno| {
            WriteError::AfterCommit {
                path: checked.root.join(&rec.path),
                op: "remove a file that left the manifest",
                errno,
            }
        })?;
    }
    // Record the set: the inode at every path is the one credfile published (or kept).
    let mut records = Vec::with_capacity(checked.files.len());
    for (dest, r) in checked.files.iter().zip(rendered) {
        let (parent, name) = split(&dest.path);
        let st = match dirs.find(parent)? {
            Some(dir) => fstatat(&dir.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok(),
            None => None,
        };
        records.push(state::FileRecord::new(dest, &r.sources, st.as_ref()));
    }
    let created_dirs = all_created_dirs(old_state.as_ref(), &dirs);
    if let Some(root) = dirs.root.clone() {
        let mut new_state = state::State::new(checked, records, Vec::new(), created_dirs);
        new_state.add_pending(pending.iter().cloned().chain(changing));
        state::write(&root, &new_state, checked.euid, checked.egid).map_err(|e| match e {
            WriteError::Io { path, op, errno } if changed => {
                WriteError::AfterCommit { path, op, errno }
            }
            other => other,
        })?;
    }
    Ok(Applied {
        outcomes,
        removed,
        pending,
    })
}

/// A complete file, not yet visible under its name.
pub(super) struct Staged {
    dir: Rc<Dir>,
    name: PathBuf,
    full: PathBuf,
    file: File,
    /// `Some` when O_TMPFILE was unavailable and a named temp in the directory was used.
    temp_name: Option<PathBuf>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        // A named temp that was never published is removed; an anonymous one vanishes by itself.
        if let Some(t) = self.temp_name.take() {
            let _ = unlinkat(&self.dir.fd, &t, UnlinkatFlags::NoRemoveDir);
        }
    }
}

pub(super) fn stage(
    dir: Rc<Dir>,
    name: &Path,
    full: &Path,
    dest: &Destination,
    bytes: &[u8],
) -> Result<Staged, WriteError> {
    let io = |op, errno| WriteError::Io {
        path: full.to_path_buf(),
        op,
        errno,
    };
    let (fd, temp_name) = match openat(
        &dir.fd,
        ".",
        OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    ) {
        Ok(fd) => (fd, None),
        Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
            let t = temp_name();
            let fd = openat(
                &dir.fd,
                &t,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| io("create temporary file", e))?;
            (fd, Some(t))
        }
        Err(e) => return Err(io("create temporary file", e)),
    };
    let mut staged = Staged {
        dir,
        name: name.to_path_buf(),
        full: full.to_path_buf(),
        file: File::from(fd),
        temp_name,
    };
    fchown(
        &staged.file,
        Some(Uid::from_raw(dest.uid)),
        Some(Gid::from_raw(dest.gid)),
    )
    .map_err(|e| io("fchown", e))?;
    staged
        .file
        .write_all(bytes)
        .map_err(|e| io("write", errno_of(&e)))?;
    fchmod(&staged.file, Mode::from_bits_truncate(dest.mode)).map_err(|e| io("fchmod", e))?;
    Ok(staged)
}

/// Publishes every staged file with one rename each, then fsyncs each directory once.
pub(super) fn publish(staged: Vec<Staged>) -> Result<(), WriteError> {
    let mut published: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<Rc<Dir>> = Vec::new();
    // Every staged file's bytes durable before the first rename (one barrier per directory).
    let mut barriers: Vec<&Path> = Vec::new();
    for s in &staged {
        if !barriers.contains(&s.dir.path.as_path()) {
            barrier(&s.dir.fd, &s.dir.path)?;
            barriers.push(&s.dir.path);
        }
    }
    for mut s in staged {
        let partial = |op, errno, published: &Vec<PathBuf>| WriteError::Partial {
            failed: s.full.clone(),
            op,
            errno,
            published: published.clone(),
        };
        let temp = match s.temp_name.clone() {
            Some(t) => t,
            None => {
                let t = temp_name();
                let proc_path = format!("/proc/self/fd/{}", s.file.as_raw_fd());
                linkat(
                    AT_FDCWD,
                    proc_path.as_str(),
                    &s.dir.fd,
                    &t,
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
                .map_err(|e| partial("link", e, &published))?;
                s.temp_name = Some(t.clone());
                t
            }
        };
        renameat(&s.dir.fd, &temp, &s.dir.fd, &s.name)
            .map_err(|e| partial("rename", e, &published))?;
        s.temp_name = None;
        published.push(s.full.clone());
        if s.name != Path::new(state::STATE_NAME) {
            crate::fault::point("file-published");
        }
        // The name must now be our inode: anything else means someone raced us.
        let ours = fstat(&s.file).map_err(|e| partial("fstat", e, &published))?;
        match fstatat(&s.dir.fd, &s.name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev == ours.st_dev && st.st_ino == ours.st_ino => {}
            _ => {
                return Err(WriteError::Tampered {
                    path: s.full.clone(),
                });
            }
        }
        if !dirs.iter().any(|d| d.path == s.dir.path) {
            dirs.push(s.dir.clone());
        }
        tracing::debug!(path = %s.full.display(), "published");
    }
    // After the last rename in each directory, so that every rename is durable.
    for d in &dirs {
        fsync(&d.fd).map_err(|errno| WriteError::AfterCommit {
            path: d.path.clone(),
            op: "fsync directory",
            errno,
        })?;
    }
    Ok(())
}

/// Decides whether a target needs writing, reading it without following links.
pub(super) fn compare(
    dir: &OwnedFd,
    name: &Path,
    full: &Path,
    dest: &Destination,
    bytes: &[u8],
    euid: u32,
    claim: Claim<'_>,
) -> Result<Status, WriteError> {
    let Some(st) = inspect_target(dir, name, full, dest, euid, claim)? else {
        return Ok(Status::Created);
    };
    if file_type(&st) != SFlag::S_IFREG {
        // A symlink or special file where credfile's file was: replaced, never read.
        return Ok(Status::Updated);
    }
    let warn_links = !matches!(claim, Claim::Generation);
    if warn_links && st.st_nlink > 1 {
        tracing::warn!(path = %full.display(), links = st.st_nlink, "the target has other hard links: its old content stays readable under them after the update");
    }
    let meta_same =
        st.st_mode & 0o7777 == dest.mode && st.st_uid == dest.uid && st.st_gid == dest.gid;
    if !meta_same || st.st_size as u64 != bytes.len() as u64 {
        return Ok(Status::Updated);
    }
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| WriteError::Io {
        path: full.to_path_buf(),
        op: "open",
        errno: e,
    })?;
    let now = fstat(&fd).map_err(|e| WriteError::Io {
        path: full.to_path_buf(),
        op: "fstat",
        errno: e,
    })?;
    if now.st_ino != st.st_ino || now.st_dev != st.st_dev {
        return Ok(Status::Updated);
    }
    let mut current = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
    File::from(fd)
        .take(bytes.len() as u64 + 1)
        .read_to_end(&mut current)
        .map_err(|e| WriteError::Io {
            path: full.to_path_buf(),
            op: "read",
            errno: errno_of(&e),
        })?;
    Ok(if current.as_slice() == bytes {
        Status::Unchanged
    } else {
        Status::Updated
    })
}
