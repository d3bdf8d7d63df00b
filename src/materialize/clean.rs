//! `credfile clean`: remove every file, link, generation and directory credfile recorded as its
//! own for this app and environment, and nothing else.
//!
//! - The state file says what is ours; without one, nothing is removed.
//! - Generation layout: the top-level links (only while they are the exact `current/<name>`
//!   link), `current` (only while it points at a generation), every `.credfile-gen-*`
//!   directory (a reserved name) with what is inside it.
//! - Files layout: each recorded path, only while it is still the inode credfile published.
//! - Directories credfile created, deepest first, only when empty.
//! - Everything is removed relative to directory descriptors opened without following links:
//!   a symlink is removed, never followed, so nothing outside the root is touched.
//! - What it had to keep (a foreign file at a recorded path) stays in the state file, so the
//!   root is not orphaned: `verify` and the next `clean` still know it.
//! - `dry_run`: the same decisions, nothing removed (`clean --dry-run`).

use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::generation::{self, Current, Link};
use super::state;
use super::*;

/// What clean did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Absolute paths removed.
    pub removed: Vec<PathBuf>,
    /// Absolute paths left in place, and why.
    pub kept: Vec<(PathBuf, String)>,
    /// There was no state file: credfile has not written here (or already cleaned).
    pub nothing_recorded: bool,
    /// The state file was kept, holding the records of what was kept.
    pub state_kept: bool,
    /// `dry_run`: directories credfile created, which clean removes when they are empty by then.
    pub dirs_if_empty: Vec<PathBuf>,
}

pub fn clean(checked: &Checked, dry_run: bool) -> Result<Cleaned, WriteError> {
    let mut dirs = Dirs::new(checked, false)?;
    let mut done = Cleaned::default();
    let Some(root) = dirs.root.clone() else {
        done.nothing_recorded = true;
        return Ok(done);
    };
    let _lock = lock(&root, &checked.root)?;
    let Some(st) = state::read(&root, checked.euid)? else {
        done.nothing_recorded = true;
        return Ok(done);
    };
    if st.app != checked.app || st.environment != checked.env {
        return Err(WriteError::OtherOwner {
            root: checked.root.clone(),
            app: st.app,
            env: st.environment,
            want_app: checked.app.clone(),
            want_env: checked.env.clone(),
        });
    }
    let io = |path: PathBuf, op: &'static str| move |errno| WriteError::Io { path, op, errno };
    let mut kept_links: Vec<String> = Vec::new();
    let mut kept_files: Vec<state::FileRecord> = Vec::new();
    if st.layout == state::layout_name(Layout::Generation) {
        let mut names = st.links.clone();
        for n in checked.top_names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        for name in &names {
            let path = root.path.join(name);
            match generation::check_link(&root, name) {
                Ok(Link::Ours) => {
                    if !dry_run {
                        unlinkat(&root.fd, name.as_str(), UnlinkatFlags::NoRemoveDir)
                            .map_err(io(path.clone(), "unlink"))?;
                    }
                    done.removed.push(path);
                }
                Ok(Link::Missing) => {}
                Err(_) => {
                    kept_links.push(name.clone());
                    done.kept
                        .push((path, "not credfile's link (someone replaced it)".into()))
                }
            }
        }
        match generation::current(&root) {
            Ok(Current::Generation(_)) => {
                if !dry_run {
                    unlinkat(&root.fd, generation::CURRENT, UnlinkatFlags::NoRemoveDir)
                        .map_err(io(root.path.join(generation::CURRENT), "unlink"))?;
                }
                done.removed.push(root.path.join(generation::CURRENT));
            }
            Ok(Current::Absent) => {}
            Err(_) => done.kept.push((
                root.path.join(generation::CURRENT),
                "not a link to a credfile generation".into(),
            )),
        }
        for name in generation::list(&root.fd) {
            let bytes = name.as_encoded_bytes();
            if !bytes.starts_with(generation::GEN_PREFIX.as_bytes()) {
                continue;
            }
            let path = root.path.join(&name);
            match fstatat(&root.fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(s)
                    if file_type(&s) == SFlag::S_IFDIR
                        && (s.st_uid == checked.euid || s.st_uid == 0) =>
                {
                    if !dry_run {
                        generation::remove_tree(&root.fd, &name, 0)
                            .map_err(io(path.clone(), "remove generation"))?;
                    }
                    done.removed.push(path);
                }
                _ => done
                    .kept
                    .push((path, "not a directory credfile created".into())),
            }
        }
        if !dry_run {
            generation::sweep_root(&root, None, checked.euid);
        }
    } else {
        for rec in &st.files {
            let (parent, name) = split(&rec.path);
            let path = root.path.join(&rec.path);
            let dir = match dirs.find(parent) {
                Ok(Some(dir)) => dir,
                Ok(None) => continue,
                Err(e) => {
                    kept_files.push(rec.clone());
                    done.kept.push((path, e.to_string()));
                    continue;
                }
            };
            match fstatat(&dir.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(s) if rec.is_ours(&s) => {
                    if !dry_run {
                        unlinkat(&dir.fd, name, UnlinkatFlags::NoRemoveDir)
                            .map_err(io(path.clone(), "unlink"))?;
                    }
                    done.removed.push(path);
                }
                Ok(_) => {
                    kept_files.push(rec.clone());
                    done.kept.push((
                        path,
                        "not the file credfile wrote (replaced since); left in place".into(),
                    ))
                }
                Err(_) => {}
            }
        }
        if !dry_run {
            sweep(&root, checked.euid);
        }
    }
    let state_path = root.path.join(state::STATE_NAME);
    if !kept_links.is_empty() || !kept_files.is_empty() {
        // Keep the record of what could not be removed instead of orphaning the root.
        if !dry_run {
            let mut rest = st.clone();
            rest.links = kept_links;
            rest.files = kept_files;
            rest.pending_hooks.clear();
            state::write(&root, &rest, checked.euid, checked.egid)?;
        }
        done.state_kept = true;
        done.kept.push((
            state_path,
            "kept: it records what was left in place, so the next `clean` or `verify` still knows it"
                .into(),
        ));
    } else if dry_run || state::remove(&root)? {
        done.removed.push(state_path);
    }
    // Directories credfile created, deepest first, while empty.
    let mut created = st.created_dirs.clone();
    created.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    drop(dirs);
    if dry_run {
        // Removed only if empty by then: listed, not probed.
        done.dirs_if_empty = created.into_iter().filter(|d| d.exists()).collect();
        return Ok(done);
    }
    for dir in created {
        match remove_empty_dir(&dir) {
            Ok(true) => done.removed.push(dir),
            Ok(false) => {}
            Err(reason) => done.kept.push((dir, reason)),
        }
    }
    Ok(done)
}

/// Removes the directory at the absolute `path` if it is empty, walking to its parent without
/// following links. `Ok(false)`: it is already gone.
fn remove_empty_dir(path: &Path) -> Result<bool, String> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(false);
    };
    let mut fd = openat(
        AT_FDCWD,
        "/",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| e.to_string())?;
    for part in parent.components() {
        let Component::Normal(part) = part else {
            continue;
        };
        fd = match openat(
            &fd,
            part,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(next) => next,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(format!("not removed: {e} on the way to it")),
        };
    }
    match fstatat(&fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(s) if file_type(&s) == SFlag::S_IFDIR => {}
        Ok(_) => return Err("no longer a directory; left in place".into()),
        Err(_) => return Ok(false),
    }
    match unlinkat(&fd, name, UnlinkatFlags::RemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(Errno::ENOTEMPTY | Errno::EEXIST) => {
            Err("created by credfile, but holds other files now; left in place".into())
        }
        Err(e) => Err(format!("not removed: {e}")),
    }
}
