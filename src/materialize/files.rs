//! `layout: files`: per-file atomic replacement at fixed paths.
//!
//! All changed files are staged (anonymous `O_TMPFILE` inodes, complete, owned and moded) before
//! the first one is published, made durable together (one `syncfs`), then each is published with
//! one rename. A failure between two
//! renames is reported with exactly the files already published.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::seal::Contents;
use super::*;
use crate::render::Rendered;
use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstat, fstatat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, linkat, unlinkat};

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
    let recorded = old_state
        .as_ref()
        .map(state::State::index)
        .unwrap_or_default();
    let contents = Contents::new(checked, old_state.as_ref());
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
                    let claim = Claim::Recorded(recorded.get(dest.path.as_path()).copied());
                    compare(&dir.fd, name, &full, dest, &r.bytes, claim, &contents)?
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
                let bytes = contents.sealed(dest, &r.bytes)?;
                staged.push(stage(&dir, parent, name, &full, dest, &bytes)?);
            }
        }
        Ok(())
    })();
    // Files credfile wrote before that are no longer in the set: still the inode it published?
    let in_set: HashSet<&Path> = checked.files.iter().map(|d| d.path.as_path()).collect();
    let mut leftovers = Vec::new();
    let result = result.and_then(|()| {
        for rec in old_state.iter().flat_map(|s| &s.files) {
            if in_set.contains(rec.path.as_path()) {
                continue;
            }
            let (parent, name) = split(&rec.path);
            let Some(dir) = dirs.find(parent)? else {
                continue;
            };
            match fstatat(&dir.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if rec.is_ours(&st) => {
                    leftovers.push((parent, name, rec));
                }
                Ok(_) => {
                    tracing::warn!(path = %checked.root.join(&rec.path).display(), "left the manifest, but is not the file credfile wrote: left in place")
                }
                Err(_) => {}
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        discard(&staged, &mut |rel| open_dir(&mut dirs, rel, &checked.root));
        dirs.undo();
        return Err(e);
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
    if let (true, Some(root)) = (changed, dirs.root.clone())
        && let Err(e) = state::mark_pending(&root, checked, old_state.as_ref(), changing.clone())
    {
        discard(&staged, &mut |rel| open_dir(&mut dirs, rel, &checked.root));
        return Err(e);
    }
    if let Err(e) = publish(staged, &mut |rel| open_dir(&mut dirs, rel, &checked.root)) {
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
    for (parent, name, rec) in &leftovers {
        let gone = |errno| WriteError::AfterCommit {
            path: checked.root.join(&rec.path),
            op: "remove a file that left the manifest",
            errno,
        };
        let dir = dirs.find(parent)?.ok_or_else(|| gone(Errno::ENOENT))?;
        unlinkat(&dir.fd, *name, UnlinkatFlags::NoRemoveDir).map_err(gone)?;
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

/// A complete file, waiting under a private temp name in its directory to be published. It
/// holds no descriptor: a set of any size is staged with a fixed number of them open.
pub(super) struct Staged {
    /// The directory, relative to the root (opened again to publish).
    parent: PathBuf,
    name: PathBuf,
    full: PathBuf,
    temp: PathBuf,
    /// The staged inode, to check that the published name is it.
    dev: u64,
    ino: u64,
}

/// [`Dirs::open`] for [`publish`]: a directory that vanished since staging is an error.
fn open_dir(dirs: &mut Dirs<'_>, rel: &Path, root: &Path) -> Result<Rc<Dir>, WriteError> {
    dirs.open(rel)?.ok_or_else(|| WriteError::Io {
        path: root.join(rel),
        op: "open directory",
        errno: Errno::ENOENT,
    })
}

/// Opens a directory of the set by its path relative to the root.
pub(super) type OpenDir<'a> = dyn FnMut(&Path) -> Result<Rc<Dir>, WriteError> + 'a;

/// Writes a complete file (owner, bytes, mode) as a new inode no one can see (`O_TMPFILE`), then
/// gives it a private temp name in `dir` and closes it. Until then no name leads to it; after,
/// only who may read the directory and the final file could.
pub(super) fn stage(
    dir: &Dir,
    parent: &Path,
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
    let (fd, named) = match openat(
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
    let mut file = File::from(fd);
    let written = (|| {
        fchown(
            &file,
            Some(Uid::from_raw(dest.uid)),
            Some(Gid::from_raw(dest.gid)),
        )
        .map_err(|e| io("fchown", e))?;
        file.write_all(bytes)
            .map_err(|e| io("write", errno_of(&e)))?;
        fchmod(&file, Mode::from_bits_truncate(dest.mode)).map_err(|e| io("fchmod", e))?;
        let st = fstat(&file).map_err(|e| io("fstat", e))?;
        let temp = match &named {
            Some(t) => t.clone(),
            None => {
                let t = temp_name();
                let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
                linkat(
                    AT_FDCWD,
                    proc_path.as_str(),
                    &dir.fd,
                    &t,
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
                .map_err(|e| io("link", e))?;
                t
            }
        };
        Ok(Staged {
            parent: parent.to_path_buf(),
            name: name.to_path_buf(),
            full: full.to_path_buf(),
            temp,
            dev: st.st_dev,
            ino: st.st_ino,
        })
    })();
    if written.is_err()
        && let Some(t) = &named
    {
        let _ = unlinkat(&dir.fd, t, UnlinkatFlags::NoRemoveDir);
    }
    written
}

/// Removes the temp names of files that will not be published (a later step failed).
pub(super) fn discard(staged: &[Staged], open: &mut OpenDir<'_>) {
    for s in staged {
        if let Ok(dir) = open(&s.parent) {
            let _ = unlinkat(&dir.fd, &s.temp, UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Publishes every staged file with one rename each, then fsyncs each directory. Every staged
/// file is durable first: one barrier per filesystem. On a failure, the files not yet published
/// are discarded and the error names the ones that were.
pub(super) fn publish(staged: Vec<Staged>, open: &mut OpenDir<'_>) -> Result<(), WriteError> {
    let mut filesystems: Vec<u64> = Vec::new();
    for s in &staged {
        if !filesystems.contains(&s.dev) {
            let dir = open(&s.parent).inspect_err(|_| discard(&staged, open))?;
            barrier(&dir.fd, &dir.path).inspect_err(|_| discard(&staged, open))?;
            filesystems.push(s.dev);
        }
    }
    let mut published: Vec<PathBuf> = Vec::new();
    // The directory of the last rename: synced once its renames are done (the set is in plan
    // order, so a directory's files are mostly together; a directory seen again is synced again).
    let mut last: Option<Rc<Dir>> = None;
    let sync = |d: &Dir| {
        fsync(&d.fd).map_err(|errno| WriteError::AfterCommit {
            path: d.path.clone(),
            op: "fsync directory",
            errno,
        })
    };
    for (i, s) in staged.iter().enumerate() {
        let partial = |op, errno, published: &Vec<PathBuf>| WriteError::Partial {
            failed: s.full.clone(),
            op,
            errno,
            published: published.clone(),
        };
        let dir = match open(&s.parent) {
            Ok(dir) => dir,
            Err(e) => {
                discard(&staged[i..], open);
                return Err(match e {
                    WriteError::Io { op, errno, .. } => partial(op, errno, &published),
                    other => other,
                });
            }
        };
        if let Some(prev) = last.take()
            && prev.path != dir.path
        {
            sync(&prev)?;
        }
        if let Err(e) = renameat(&dir.fd, &s.temp, &dir.fd, &s.name) {
            discard(&staged[i..], open);
            return Err(partial("rename", e, &published));
        }
        published.push(s.full.clone());
        if s.name != Path::new(state::STATE_NAME) {
            crate::fault::point("file-published");
        }
        // The name must now be our inode: anything else means someone raced us.
        match fstatat(&dir.fd, &s.name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev == s.dev && st.st_ino == s.ino => {}
            _ => {
                discard(&staged[i + 1..], open);
                return Err(WriteError::Tampered {
                    path: s.full.clone(),
                });
            }
        }
        tracing::debug!(path = %s.full.display(), "published");
        last = Some(dir);
    }
    // After the last rename in each directory, so that every rename is durable.
    if let Some(d) = last {
        sync(&d)?;
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
    claim: Claim<'_>,
    contents: &Contents<'_>,
) -> Result<Status, WriteError> {
    let Some(st) = inspect_target(dir, name, full, dest, contents.euid, claim)? else {
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
    if !meta_same || !contents.holds(dir, name, full, &st, dest, bytes)? {
        return Ok(Status::Updated);
    }
    Ok(Status::Unchanged)
}
