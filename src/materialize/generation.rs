//! `layout: generation` (the default): the whole set switches at once (the kubelet / systemd
//! model, prior art section 8.4).
//!
//! ```text
//! <root>/                              flock(LOCK_EX) on the root for the whole run
//!   .credfile-gen-000007-<rand>/       a complete set, built privately, never changed once live
//!   current -> .credfile-gen-000007-<rand>   the commit point: one atomic rename of a symlink
//!   <name> -> current/<name>           stable entry points, one per top-level name
//!   .credfile-state.json               what credfile owns (state.rs)
//! ```
//!
//! A run: lock; sweep generations other than the live one (the previous generation survives
//! until this point, so a reader that opened it before the last flip could finish) and debris of
//! crashed runs; compare every rendered file with `current/<path>`; if anything differs, build a
//! new generation (unchanged files are hard links to the live inode, changed ones are new inodes
//! written 0600, fchown, bytes, fchmod), make it durable (one `syncfs`), and flip `current`; then create missing
//! links and remove links of names that left the set; then record the state.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat, renameat};
use nix::sys::stat::{Mode, fchmod, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, linkat, symlinkat, unlinkat};

use super::seal::Contents;
use super::state::{self, FileRecord, State};
use super::*;

pub const GEN_PREFIX: &str = ".credfile-gen-";
pub const CURRENT: &str = "current";
const CURRENT_TMP_PREFIX: &str = ".credfile-current-";

pub fn link_target(name: &str) -> String {
    format!("{CURRENT}/{name}")
}

fn is_generation_name(name: &[u8]) -> bool {
    name.starts_with(GEN_PREFIX.as_bytes()) && !name.contains(&b'/')
}

/// What `current` is.
pub enum Current {
    Absent,
    /// A valid link to a generation directory, by name.
    Generation(String),
}

/// Reads `current` without following it. Anything but a link to a generation name is refused.
pub fn current(root: &Dir) -> Result<Current, WriteError> {
    let path = root.path.join(CURRENT);
    let st = match fstatat(&root.fd, CURRENT, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(Current::Absent),
        Err(e) => {
            return Err(WriteError::Io {
                path,
                op: "stat",
                errno: e,
            });
        }
    };
    if file_type(&st) != SFlag::S_IFLNK {
        return Err(WriteError::Unsafe {
            path,
            reason: format!(
                "`current` is a {}, not credfile's link to the live generation",
                describe_type(file_type(&st))
            ),
        });
    }
    let target = readlinkat(&root.fd, CURRENT).map_err(|e| WriteError::Io {
        path: path.clone(),
        op: "readlink",
        errno: e,
    })?;
    if !is_generation_name(target.as_bytes()) {
        return Err(WriteError::Unsafe {
            path,
            reason: format!(
                "`current` is a symlink to `{}`, not to a credfile generation ({GEN_PREFIX}*)",
                target.to_string_lossy()
            ),
        });
    }
    Ok(Current::Generation(target.to_string_lossy().into_owned()))
}

fn describe_type(t: SFlag) -> &'static str {
    if t == SFlag::S_IFREG {
        "regular file"
    } else {
        type_name(t)
    }
}

/// The state of one top-level link.
#[derive(Debug, PartialEq, Eq)]
pub enum Link {
    Ours,
    Missing,
}

/// Checks `<root>/<name>`: absent, or credfile's link `current/<name>`; anything else is refused.
pub fn check_link(root: &Dir, name: &str) -> Result<Link, WriteError> {
    check_link_claimed(root, name, false).map(|l| l.unwrap_or(Link::Missing))
}

/// [`check_link`]; `recorded`: the state file lists `name` among credfile's links, so a symlink
/// elsewhere there is `None` (stray: to be replaced, self-healing; a symlink holds no data and
/// is never followed) instead of an error.
pub fn check_link_claimed(
    root: &Dir,
    name: &str,
    recorded: bool,
) -> Result<Option<Link>, WriteError> {
    let path = root.path.join(name);
    let st = match fstatat(&root.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(Some(Link::Missing)),
        Err(e) => {
            return Err(WriteError::Io {
                path,
                op: "stat",
                errno: e,
            });
        }
    };
    let want = link_target(name);
    let reason = match file_type(&st) {
        SFlag::S_IFLNK => {
            let target = match readlinkat(&root.fd, name) {
                Ok(t) => t,
                // Replaced between the stat and the readlink: someone is racing credfile.
                Err(Errno::EINVAL | Errno::ENOENT) => {
                    return Err(WriteError::Unsafe {
                        path,
                        reason: "the target stopped being a symlink while credfile checked it (another process is changing it); credfile will not replace it".into(),
                    });
                }
                Err(e) => {
                    return Err(WriteError::Io {
                        path: path.clone(),
                        op: "readlink",
                        errno: e,
                    });
                }
            };
            if target.as_bytes() == want.as_bytes() {
                return Ok(Some(Link::Ours));
            }
            if recorded {
                return Ok(None);
            }
            format!(
                "the target is a symlink to `{}`, not credfile's link `{want}`; credfile will not follow or replace it",
                target.to_string_lossy()
            )
        }
        SFlag::S_IFREG => format!(
            "the target is a regular file of uid {}, not credfile's link `{want}`; credfile will not replace a file it did not create",
            st.st_uid
        ),
        other => format!(
            "the target is a {}, not a regular file or credfile's link `{want}`",
            type_name(other)
        ),
    };
    Err(WriteError::Unsafe { path, reason })
}

/// Preflight for an existing root: `current` and every link are credfile's or absent.
pub fn preflight(checked: &Checked, root: &Dir, state: Option<&State>) -> Result<(), WriteError> {
    current(root)?;
    for name in checked.top_names() {
        check_link_claimed(root, &name, recorded_link(state, &name))?;
    }
    Ok(())
}

/// Opens a generation directory (or a directory inside one) without following links, and
/// checks it like any directory credfile writes under.
fn open_dir(
    parent: &OwnedFd,
    name: &Path,
    path: &Path,
    euid: u32,
) -> Result<Option<Dir>, WriteError> {
    match openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => {
            let st = fstat(&fd).map_err(|e| WriteError::Io {
                path: path.to_path_buf(),
                op: "stat",
                errno: e,
            })?;
            check_dir(&st, path, false, euid)?;
            Ok(Some(Dir {
                fd,
                path: path.to_path_buf(),
            }))
        }
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::ELOOP | Errno::ENOTDIR) => Err(WriteError::Unsafe {
            path: path.to_path_buf(),
            reason: "inside the live generation, this is not a directory (tampered with?)".into(),
        }),
        Err(e) => Err(WriteError::Io {
            path: path.to_path_buf(),
            op: "open directory",
            errno: e,
        }),
    }
}

/// Directories inside one generation, opened on demand.
pub struct GenTree {
    pub top: Rc<Dir>,
    cache: HashMap<PathBuf, Option<Rc<Dir>>>,
    euid: u32,
}

impl GenTree {
    pub fn open(root: &Dir, name: &str, euid: u32) -> Result<Option<GenTree>, WriteError> {
        Ok(
            open_dir(&root.fd, Path::new(name), &root.path.join(name), euid)?.map(|d| GenTree {
                top: Rc::new(d),
                cache: HashMap::new(),
                euid,
            }),
        )
    }

    /// The directory `rel` inside the generation, `None` if it does not exist.
    pub fn dir(&mut self, rel: &Path) -> Result<Option<Rc<Dir>>, WriteError> {
        if rel.as_os_str().is_empty() {
            return Ok(Some(self.top.clone()));
        }
        if let Some(hit) = self.cache.get(rel) {
            return Ok(hit.clone());
        }
        trim_cache(&mut self.cache, rel);
        let (parent, name) = split(rel);
        let found = match self.dir(parent)? {
            None => None,
            Some(p) => open_dir(&p.fd, name, &p.path.join(name), self.euid)?.map(Rc::new),
        };
        self.cache.insert(rel.to_path_buf(), found.clone());
        Ok(found)
    }

    /// Every regular file or other non-directory in the generation, relative to it.
    pub fn entries(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.top.fd, Path::new(""), &mut out, 0);
        out
    }
}

/// Lists non-directories under `dir` without following links.
pub(super) fn walk(dir: &OwnedFd, rel: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 64 {
        return;
    }
    for name in list(dir) {
        let Ok(st) = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let child = rel.join(&name);
        if file_type(&st) == SFlag::S_IFDIR {
            if let Ok(fd) = openat(
                dir,
                name.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                walk(&fd, &child, out, depth + 1);
            }
        } else {
            out.push(child);
        }
    }
}

/// Names in an open directory (through /proc/self/fd: the fd was opened without following links).
pub fn list(dir: &OwnedFd) -> Vec<OsString> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) else {
        return Vec::new();
    };
    let mut names: Vec<OsString> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    names
}

/// Removes `name` under `parent` and everything below it, never following a link (a link is
/// removed, not its target).
pub fn remove_tree(parent: &OwnedFd, name: &OsStr, depth: usize) -> Result<(), Errno> {
    let st = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    if file_type(&st) == SFlag::S_IFDIR && depth < 64 {
        let fd = openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        for child in list(&fd) {
            remove_tree(&fd, &child, depth + 1)?;
        }
        unlinkat(parent, name, UnlinkatFlags::RemoveDir)
    } else {
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir)
    }
}

/// Removes every generation except `keep`, stale `current` temp links and temp files.
pub fn sweep_root(root: &Dir, keep: Option<&str>, euid: u32) {
    for name in list(&root.fd) {
        let bytes = name.as_bytes();
        let Ok(st) = fstatat(&root.fd, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let ours = st.st_uid == euid || st.st_uid == 0;
        let t = file_type(&st);
        if is_generation_name(bytes)
            && t == SFlag::S_IFDIR
            && ours
            && keep.is_none_or(|k| k.as_bytes() != bytes)
        {
            tracing::debug!(generation = %name.to_string_lossy(), "removing an old generation");
            if let Err(e) = remove_tree(&root.fd, &name, 0) {
                tracing::warn!(generation = %name.to_string_lossy(), error = %e, "cannot remove an old generation");
            }
        } else if bytes.starts_with(CURRENT_TMP_PREFIX.as_bytes()) && t == SFlag::S_IFLNK && ours {
            let _ = unlinkat(&root.fd, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
    sweep(root, euid);
}

fn next_name(old: Option<&str>) -> String {
    let seq = old
        .and_then(|o| o.strip_prefix(GEN_PREFIX))
        .and_then(|rest| rest.split('-').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    let mut random = [0u8; 4];
    let _ = getrandom::fill(&mut random);
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("{GEN_PREFIX}{seq:06}-{hex}")
}

/// Outcomes in plan order, the files that left the set, and the live generation if any.
type Compared = (Vec<Outcome>, Vec<Outcome>, Option<GenTree>);

/// Compares the rendered set with the live generation. Returns the outcomes (plan order), the
/// files that left the set, and the live generation (when there is one).
fn compare_set(
    checked: &Checked,
    root: &Dir,
    rendered: &[Rendered],
    state: Option<&State>,
) -> Result<Compared, WriteError> {
    let live = match current(root)? {
        Current::Absent => None,
        Current::Generation(name) => GenTree::open(root, &name, checked.euid)?,
    };
    let Some(mut live) = live else {
        let outcomes = checked
            .files
            .iter()
            .map(|d| Outcome {
                status: Status::Created,
                dest: d.clone(),
            })
            .collect();
        return Ok((outcomes, Vec::new(), None));
    };
    let contents = Contents::new(checked, state);
    let mut outcomes = Vec::with_capacity(checked.files.len());
    for (dest, r) in checked.files.iter().zip(rendered) {
        let (parent, name) = split(&dest.path);
        let full = checked.root.join(&dest.path);
        let status = match live.dir(parent)? {
            None => Status::Created,
            Some(dir) => {
                let claim = Claim::Generation;
                files::compare(&dir.fd, name, &full, dest, &r.bytes, claim, &contents)?
            }
        };
        outcomes.push(Outcome {
            status,
            dest: dest.clone(),
        });
    }
    let in_set: std::collections::HashSet<&Path> =
        checked.files.iter().map(|d| d.path.as_path()).collect();
    let recorded = state.map(State::index).unwrap_or_default();
    let removed = live
        .entries()
        .into_iter()
        .filter(|p| !in_set.contains(p.as_path()))
        .map(|path| {
            let rec = recorded.get(path.as_path()).copied();
            Outcome {
                status: Status::Removed,
                dest: Destination {
                    mode: rec
                        .and_then(|r| u32::from_str_radix(&r.mode, 8).ok())
                        .unwrap_or(0),
                    uid: rec.map_or(checked.euid, |r| r.uid),
                    gid: rec.map_or(checked.egid, |r| r.gid),
                    path,
                },
            }
        })
        .collect();
    Ok((outcomes, removed, Some(live)))
}

pub fn write(
    checked: &Checked,
    rendered: &[Rendered],
    dry_run: bool,
) -> Result<Applied, WriteError> {
    let euid = checked.euid;
    if dry_run {
        let dirs = Dirs::new(checked, false)?;
        let Some(root) = dirs.root.clone() else {
            return Ok(Applied {
                outcomes: checked
                    .files
                    .iter()
                    .map(|d| Outcome {
                        status: Status::Created,
                        dest: d.clone(),
                    })
                    .collect(),
                removed: Vec::new(),
                pending: Vec::new(),
            });
        };
        let state = state::read(&root, euid)?;
        let (outcomes, removed, _) = compare_set(checked, &root, rendered, state.as_ref())?;
        let pending = state.map(|s| s.pending_hooks).unwrap_or_default();
        return Ok(Applied {
            outcomes,
            removed,
            pending,
        });
    }

    let mut dirs = Dirs::new(checked, true)?;
    let root = match dirs.root.clone() {
        Some(root) => root,
        None => {
            return Err(WriteError::Io {
                path: checked.root.clone(),
                op: "open",
                errno: Errno::ENOENT,
            });
        }
    };
    let result = (|| {
        let _lock = lock(&root, &checked.root)?;
        crate::fault::point("locked");
        // Everything again under the lock: another run may have committed since preflight.
        let old_state = state::read(&root, euid)?;
        if let Some(s) = &old_state {
            s.check_owner(checked)?;
        }
        preflight(checked, &root, old_state.as_ref())?;
        let keep = match current(&root)? {
            Current::Generation(name) => Some(name),
            Current::Absent => None,
        };
        sweep_root(&root, keep.as_deref(), euid);

        let (outcomes, removed, live) = compare_set(checked, &root, rendered, old_state.as_ref())?;
        let changed =
            live.is_none() || !removed.is_empty() || outcomes.iter().any(|o| o.status.changed());
        let pending: Vec<PathBuf> = old_state
            .as_ref()
            .map(|s| s.pending_hooks.clone())
            .unwrap_or_default();
        let changing = changing_paths(&outcomes, &removed);
        if changed {
            // Hooks owed for this change survive a kill after the commit (see pending_hooks).
            state::mark_pending(&root, checked, old_state.as_ref(), changing.clone())?;
            let name = next_name(keep.as_deref());
            let committed =
                build(checked, &root, &name, rendered, &outcomes, live).and_then(|()| {
                    crate::fault::point("generation-built");
                    flip(&root, &name)
                });
            if let Err(e) = committed {
                // Nothing was published: the state goes back to what it was.
                let _ = match &old_state {
                    Some(old) => state::write(&root, old, euid, checked.egid),
                    None => state::remove(&root).map(|_| ()),
                };
                return Err(e);
            }
            crate::fault::point("committed");
            tracing::info!(root = %checked.root.display(), generation = %name, "committed a new generation");
        }
        let links = relink(checked, &root, old_state.as_ref())?;
        crate::fault::point("linked");
        let created_dirs = all_created_dirs(old_state.as_ref(), &dirs);
        let records = checked
            .files
            .iter()
            .zip(rendered)
            .map(|(d, r)| FileRecord::new(d, &r.sources, None))
            .collect();
        let mut new_state = State::new(checked, records, links, created_dirs);
        new_state.add_pending(pending.iter().cloned().chain(changing));
        state::write(&root, &new_state, euid, checked.egid).map_err(after_commit(changed))?;
        Ok(Applied {
            outcomes,
            removed,
            pending,
        })
    })();
    if result.is_err() && !root_has_entries(&root) {
        // A first run that failed left an empty root it created: remove it again.
        dirs.undo();
    }
    result
}

fn root_has_entries(root: &Dir) -> bool {
    !list(&root.fd).is_empty()
}

/// Errors after the flip mean the new set is live: say so.
fn after_commit(committed: bool) -> impl Fn(WriteError) -> WriteError {
    move |e| match e {
        WriteError::Io { path, op, errno } if committed => {
            WriteError::AfterCommit { path, op, errno }
        }
        other => other,
    }
}

/// Builds the new generation `name` completely, privately. On failure it is removed again and
/// nothing is published.
fn build(
    checked: &Checked,
    root: &Dir,
    name: &str,
    rendered: &[Rendered],
    outcomes: &[Outcome],
    mut live: Option<GenTree>,
) -> Result<(), WriteError> {
    let gen_path = root.path.join(name);
    let io = |path: &Path, op: &'static str| {
        let path = path.to_path_buf();
        move |errno| WriteError::Io { path, op, errno }
    };
    mkdirat(&root.fd, name, Mode::from_bits_truncate(0o700)).map_err(io(&gen_path, "mkdir"))?;
    let result = (|| {
        let top = openat(
            &root.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io(&gen_path, "open"))?;
        // Directories made so far (all of them), and a bounded cache of open ones.
        let mut made = NewTree {
            top: Rc::new(top),
            open: HashMap::new(),
            path: gen_path.clone(),
        };
        let mut exists: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        let mut order: Vec<PathBuf> = vec![PathBuf::new()];
        for ((dest, r), outcome) in checked.files.iter().zip(rendered).zip(outcomes) {
            let (parent, fname) = split(&dest.path);
            // Create the parent chain inside the new generation (private until the end).
            let mut walked = PathBuf::new();
            for part in parent.components() {
                let next = walked.join(part);
                if !exists.contains(&next) {
                    let p = made.dir(&walked)?;
                    let dpath = gen_path.join(&next);
                    mkdirat(&*p, part.as_os_str(), Mode::from_bits_truncate(0o700))
                        .map_err(io(&dpath, "mkdir"))?;
                    exists.insert(next.clone());
                    order.push(next.clone());
                }
                walked = next;
            }
            let dir = made.dir(parent)?;
            let full = checked.root.join(&dest.path);
            // An unchanged file keeps its inode: a hard link to the live one.
            if outcome.status == Status::Unchanged
                && let Some(live) = live.as_mut()
                && let Some(old) = live.dir(parent)?
            {
                linkat(&old.fd, fname, &*dir, fname, AtFlags::empty())
                    .map_err(io(&full, "link unchanged file"))?;
                continue;
            }
            let fd = openat(
                &*dir,
                fname,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(io(&full, "create"))?;
            let mut file = File::from(fd);
            fchown(
                &file,
                Some(Uid::from_raw(dest.uid)),
                Some(Gid::from_raw(dest.gid)),
            )
            .map_err(io(&full, "fchown"))?;
            let bytes = Contents::new(checked, None).sealed(dest, &r.bytes)?;
            file.write_all(&bytes)
                .map_err(|e| io(&full, "write")(errno_of(&e)))?;
            fchmod(&file, Mode::from_bits_truncate(dest.mode)).map_err(io(&full, "fchmod"))?;
            crate::fault::point("generation-file-written");
        }
        // Directories get their final owner and mode last, deepest first.
        for rel in order.iter().rev() {
            let fd = made.dir(rel)?;
            let dpath = gen_path.join(rel);
            fchown(
                &*fd,
                Some(Uid::from_raw(checked.euid)),
                Some(Gid::from_raw(checked.dir_gid)),
            )
            .map_err(io(&dpath, "fchown"))?;
            fchmod(&*fd, Mode::from_bits_truncate(checked.dir_mode))
                .map_err(io(&dpath, "fchmod"))?;
        }
        // The whole generation, files and directories, durable before the commit.
        barrier(&root.fd, &gen_path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = remove_tree(&root.fd, OsStr::new(name), 0);
    }
    result
}

/// The directories of a generation being built, opened on demand (at most [`MAX_OPEN_DIRS`] at
/// once): it is private (mode 0700, under the root's lock) until the flip.
struct NewTree {
    top: Rc<OwnedFd>,
    open: HashMap<PathBuf, Rc<OwnedFd>>,
    path: PathBuf,
}

impl NewTree {
    fn dir(&mut self, rel: &Path) -> Result<Rc<OwnedFd>, WriteError> {
        if rel.as_os_str().is_empty() {
            return Ok(self.top.clone());
        }
        if let Some(fd) = self.open.get(rel) {
            return Ok(fd.clone());
        }
        trim_cache(&mut self.open, rel);
        let (parent, name) = split(rel);
        let p = self.dir(parent)?;
        let fd = openat(
            &*p,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| WriteError::Io {
            path: self.path.join(rel),
            op: "open",
            errno,
        })?;
        let fd = Rc::new(fd);
        self.open.insert(rel.to_path_buf(), fd.clone());
        Ok(fd)
    }
}

/// The commit point: `current` now names generation `name`, atomically.
fn flip(root: &Dir, name: &str) -> Result<(), WriteError> {
    let tmp = format!(
        "{CURRENT_TMP_PREFIX}{}{TEMP_SUFFIX}",
        temp_name()
            .to_string_lossy()
            .trim_start_matches(TEMP_PREFIX)
            .trim_end_matches(TEMP_SUFFIX)
    );
    let path = root.path.join(CURRENT);
    symlinkat(name, &root.fd, tmp.as_str()).map_err(|e| WriteError::Io {
        path: path.clone(),
        op: "symlink",
        errno: e,
    })?;
    crate::fault::point("commit-link-made");
    if let Err(e) = renameat(&root.fd, tmp.as_str(), &root.fd, CURRENT) {
        let _ = unlinkat(&root.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
        let _ = remove_tree(&root.fd, OsStr::new(name), 0);
        return Err(WriteError::Io {
            path,
            op: "rename",
            errno: e,
        });
    }
    fsync(&root.fd).map_err(|e| WriteError::AfterCommit {
        path: root.path.clone(),
        op: "fsync directory",
        errno: e,
    })
}

/// Whether the state file records `name` as one of credfile's stable links.
fn recorded_link(state: Option<&State>, name: &str) -> bool {
    state.is_some_and(|s| s.links.iter().any(|l| l == name))
}

/// After the commit: a link for every top-level name; links of names that left the set removed.
/// Returns the links the root now has.
fn relink(checked: &Checked, root: &Dir, old: Option<&State>) -> Result<Vec<String>, WriteError> {
    let names = checked.top_names();
    let fail = |name: &str, op: &'static str| {
        let path = root.path.join(name);
        move |errno| WriteError::AfterCommit { path, op, errno }
    };
    for name in &names {
        match check_link_claimed(root, name, recorded_link(old, name))? {
            Some(Link::Ours) => {}
            Some(Link::Missing) => {
                symlinkat(link_target(name).as_str(), &root.fd, name.as_str())
                    .map_err(fail(name, "symlink"))?;
            }
            None => {
                // A new link under a private name, renamed over the stray one: never a moment
                // without a link, and the stray target is never touched.
                let tmp = format!(".credfile-link-{name}");
                let _ = unlinkat(&root.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
                symlinkat(link_target(name).as_str(), &root.fd, tmp.as_str())
                    .map_err(fail(name, "symlink"))?;
                renameat(&root.fd, tmp.as_str(), &root.fd, name.as_str())
                    .map_err(fail(name, "rename"))?;
                tracing::info!(link = %root.path.join(name).display(), "replaced a link that pointed elsewhere");
            }
        }
    }
    for name in old.map(|s| s.links.clone()).unwrap_or_default() {
        if names.contains(&name) {
            continue;
        }
        if let Ok(Link::Ours) = check_link(root, &name) {
            unlinkat(&root.fd, name.as_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(fail(&name, "unlink"))?;
        }
    }
    fsync(&root.fd).map_err(fail("", "fsync directory"))?;
    Ok(names)
}
