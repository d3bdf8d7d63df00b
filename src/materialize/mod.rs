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
mod reach;
pub mod state;
mod verify;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use nix::unistd::{Gid, Group, Uid, UnlinkatFlags, User, fchown, fsync, unlinkat};

pub use clean::{Cleaned, clean};
pub use verify::{Drift, verify};

use crate::manifest::{Layout, Plan, Principal};
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
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Updated => "updated",
            Status::Unchanged => "unchanged",
            Status::Removed => "removed",
        }
    }

    pub fn changed(self) -> bool {
        self != Status::Unchanged
    }
}

/// The checked destination of one file, from [`preflight`].
#[derive(Debug, Clone)]
pub struct Destination {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Every destination checked, owners resolved. Produced before any secret is fetched.
#[derive(Debug)]
pub struct Checked {
    pub root: PathBuf,
    pub layout: Layout,
    app: String,
    env: String,
    dir_mode: u32,
    dir_gid: u32,
    euid: u32,
    egid: u32,
    pub files: Vec<Destination>,
    /// Offline verify: the entries whose files are known only after a fetch (`keys: all`,
    /// `parameters_path:`), each with its directory, mode and owners. Their files are the ones
    /// the state file records below that directory.
    pub open_sets: Vec<Destination>,
    /// What the state file says credfile owns in this root (None: nothing yet).
    pub state: Option<state::State>,
}

impl Checked {
    /// Whether `path` is inside one of the [`Checked::open_sets`].
    fn in_open_set(&self, path: &Path) -> bool {
        self.open_set(path).is_some()
    }

    /// The open set `path` is inside, if any.
    fn open_set(&self, path: &Path) -> Option<&Destination> {
        self.open_sets.iter().find(|d| path.starts_with(&d.path))
    }

    /// Top-level names of the set, in manifest order, once each (the generation layout's links).
    fn top_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for f in &self.files {
            if let Some(Component::Normal(n)) = f.path.components().next() {
                let n = n.to_string_lossy().into_owned();
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        names
    }
}

/// Checks every destination of the plan without changing anything.
pub fn preflight(plan: &Plan) -> Result<Checked, WriteError> {
    let mut checked = resolve(plan)?;
    reach::check(&checked, plan)?;
    let euid = checked.euid;
    let mut dirs = Dirs::new(&checked, false)?;
    let state = match dirs.root.clone() {
        Some(root) => {
            ensure_writable(&root.fd, &checked.root, euid)?;
            let state = state::read(&root, euid)?;
            if let Some(s) = &state {
                s.check_owner(&checked)?;
            }
            state
        }
        None => None,
    };
    match checked.layout {
        Layout::Files => {
            let recorded = state.as_ref().map(state::State::index).unwrap_or_default();
            for dest in &checked.files {
                let (parent, name) = split(&dest.path);
                match dirs.open(parent)? {
                    Some(dir) => {
                        ensure_writable(&dir.fd, &checked.root.join(parent), euid)?;
                        let claim = Claim::Recorded(recorded.get(dest.path.as_path()).copied());
                        inspect_target(
                            &dir.fd,
                            name,
                            &checked.root.join(&dest.path),
                            dest,
                            euid,
                            claim,
                        )?;
                    }
                    None => {
                        // Missing directories are created at write time; the deepest existing
                        // one must accept them.
                        if let Some((fd, path)) = dirs.deepest_existing(parent) {
                            ensure_writable(&fd, &path, euid)?;
                        }
                    }
                }
            }
        }
        Layout::Generation => match dirs.root.clone() {
            Some(root) => generation::preflight(&checked, &root, state.as_ref())?,
            None => {
                if let Some((fd, path)) = dirs.deepest_existing(Path::new("")) {
                    ensure_writable(&fd, &path, euid)?;
                }
            }
        },
    }
    drop(dirs);
    checked.state = state;
    Ok(checked)
}

/// [`resolve`] for `verify --offline`: the plan's fixed files, and its expanded entries as
/// [`Checked::open_sets`] (what they hold is known only from the state file).
pub fn resolve_offline(plan: &Plan) -> Result<Checked, WriteError> {
    let mut checked = resolve(&plan.without_expansions())?;
    let mut sets = plan.clone();
    sets.files
        .retain(|f| matches!(f.content, crate::manifest::Content::Expand { .. }));
    checked.open_sets = resolve(&sets)?.files;
    Ok(checked)
}

/// Resolves owners and modes for every file of the plan (no disk access but user lookups).
pub fn resolve(plan: &Plan) -> Result<Checked, WriteError> {
    let euid = Uid::effective().as_raw();
    let egid = Gid::effective().as_raw();
    let groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    let root = plan.root.clone();
    let dir_gid = match &plan.dir_group {
        Some(g) => resolve_group(g, &root, plan.dir_group_line)?,
        None => egid,
    };
    let mut files = Vec::with_capacity(plan.files.len());
    for spec in &plan.files {
        let path = root.join(&spec.path);
        let uid = match &spec.owner {
            Some(p) => resolve_user(p, &path, spec.owner_line)?,
            None => euid,
        };
        let gid = match &spec.group {
            Some(p) => resolve_group(p, &path, spec.group_line)?,
            None => egid,
        };
        if euid != 0 && (uid != euid || (gid != egid && !groups.contains(&gid))) {
            return Err(WriteError::ChownDenied {
                path,
                euid,
                uid,
                gid,
            });
        }
        files.push(Destination {
            path: spec.path.clone(),
            mode: spec.mode,
            uid,
            gid,
        });
    }
    Ok(Checked {
        root,
        layout: plan.layout,
        app: plan.app.clone(),
        env: plan.env.clone(),
        dir_mode: plan.dir_mode,
        dir_gid,
        euid,
        egid,
        files,
        open_sets: Vec::new(),
        state: None,
    })
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

/// An open directory and its absolute path.
struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// How many directories a cache ([`Dirs`], the generation layout's trees) keeps open. Past it,
/// only the ancestors of the directory being opened stay: a set of 20,000 files in as many
/// directories runs within a small, fixed number of descriptors (issue 17).
pub(super) const MAX_OPEN_DIRS: usize = 64;

/// Keeps a directory cache within [`MAX_OPEN_DIRS`] before `rel` is added to it.
pub(super) fn trim_cache<T>(cache: &mut HashMap<PathBuf, T>, rel: &Path) {
    if cache.len() >= MAX_OPEN_DIRS {
        cache.retain(|k, _| rel.starts_with(k));
    }
}

/// Opens directories under the root component by component, never following a symlink, checking
/// each, creating missing ones when allowed. Remembers what it created so a failed run can remove
/// it again (by path: nothing here holds a descriptor per directory).
struct Dirs<'a> {
    checked: &'a Checked,
    create: bool,
    root: Option<Rc<Dir>>,
    cache: HashMap<PathBuf, Option<Rc<Dir>>>,
    /// (absolute parent, name) of each directory this run created, in creation order.
    created: Vec<(PathBuf, PathBuf)>,
}

impl<'a> Dirs<'a> {
    fn new(checked: &'a Checked, create: bool) -> Result<Self, WriteError> {
        let mut dirs = Dirs {
            checked,
            create,
            root: None,
            cache: HashMap::new(),
            created: Vec::new(),
        };
        dirs.root = dirs.open_root()?;
        Ok(dirs)
    }

    fn open_root(&mut self) -> Result<Option<Rc<Dir>>, WriteError> {
        let root = self.checked.root.clone();
        let fd = openat(
            AT_FDCWD,
            "/",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| WriteError::Io {
            path: "/".into(),
            op: "open",
            errno: e,
        })?;
        let mut current = Rc::new(Dir {
            fd,
            path: PathBuf::from("/"),
        });
        let mut parts: Vec<&OsStr> = Vec::new();
        for c in root.components() {
            match c {
                Component::Normal(n) => parts.push(n),
                Component::RootDir => {}
                // The manifest and --root refuse these; never drop one silently.
                _ => {
                    return Err(WriteError::Unsafe {
                        path: root.clone(),
                        reason: "the root must be an absolute path without `.` or `..`".into(),
                    });
                }
            }
        }
        for (i, part) in parts.iter().enumerate() {
            let is_root = i + 1 == parts.len();
            match self.step(&current, Path::new(part), !is_root)? {
                Some(next) => current = next,
                None => return Ok(None),
            }
        }
        Ok(Some(current))
    }

    /// Opens (or creates) one directory below `parent`. `relaxed`: an ancestor of the root,
    /// where a root-owned sticky world-writable directory (/tmp) is acceptable.
    fn step(
        &mut self,
        parent: &Rc<Dir>,
        name: &Path,
        relaxed: bool,
    ) -> Result<Option<Rc<Dir>>, WriteError> {
        let path = parent.path.join(name);
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(&parent.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if self.create => {
                mkdirat(
                    &parent.fd,
                    name,
                    Mode::from_bits_truncate(self.checked.dir_mode),
                )
                .map_err(|e| WriteError::Io {
                    path: path.clone(),
                    op: "mkdir",
                    errno: e,
                })?;
                let fd =
                    openat(&parent.fd, name, flags, Mode::empty()).map_err(|e| WriteError::Io {
                        path: path.clone(),
                        op: "open",
                        errno: e,
                    })?;
                self.created.push((parent.path.clone(), name.to_path_buf()));
                fchown(
                    &fd,
                    Some(Uid::from_raw(self.checked.euid)),
                    Some(Gid::from_raw(self.checked.dir_gid)),
                )
                .map_err(|e| WriteError::Io {
                    path: path.clone(),
                    op: "fchown",
                    errno: e,
                })?;
                fchmod(&fd, Mode::from_bits_truncate(self.checked.dir_mode)).map_err(|e| {
                    WriteError::Io {
                        path: path.clone(),
                        op: "fchmod",
                        errno: e,
                    }
                })?;
                fsync(&parent.fd).map_err(|e| WriteError::Io {
                    path: parent.path.clone(),
                    op: "fsync directory",
                    errno: e,
                })?;
                fd
            }
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let what = match fstatat(&parent.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) if file_type(&st) == SFlag::S_IFLNK => "is a symlink; credfile does not follow symlinks in paths (use the real path)".to_string(),
                    Ok(st) => format!("is a {}, not a directory", type_name(file_type(&st))),
                    Err(_) => "is not a directory".to_string(),
                };
                return Err(WriteError::Unsafe { path, reason: what });
            }
            Err(e) => {
                return Err(WriteError::Io {
                    path,
                    op: "open directory",
                    errno: e,
                });
            }
        };
        let st = fstat(&fd).map_err(|e| WriteError::Io {
            path: path.clone(),
            op: "stat",
            errno: e,
        })?;
        check_dir(&st, &path, relaxed, self.checked.euid)?;
        Ok(Some(Rc::new(Dir { fd, path })))
    }

    /// Opens the directory `rel` (relative to the root); `None` when it does not exist and
    /// creating is off.
    fn open(&mut self, rel: &Path) -> Result<Option<Rc<Dir>>, WriteError> {
        if let Some(hit) = self.cache.get(rel)
            && (hit.is_some() || !self.create)
        {
            return Ok(hit.clone());
        }
        trim_cache(&mut self.cache, rel);
        let Some(root) = self.root.clone() else {
            if self.create {
                self.root = self.open_root()?;
                return self.open(rel);
            }
            return Ok(None);
        };
        let mut current = root;
        let mut walked = PathBuf::new();
        for part in rel.components() {
            walked.push(part);
            if let Some(Some(hit)) = self.cache.get(&walked) {
                current = hit.clone();
                continue;
            }
            match self.step(&current, Path::new(part.as_os_str()), false)? {
                Some(next) => {
                    self.cache.insert(walked.clone(), Some(next.clone()));
                    current = next;
                }
                None => {
                    self.cache.insert(rel.to_path_buf(), None);
                    return Ok(None);
                }
            }
        }
        self.cache.insert(rel.to_path_buf(), Some(current.clone()));
        Ok(Some(current))
    }

    /// The deepest existing directory on the way to `rel`, for preflight checks.
    fn deepest_existing(&self, rel: &Path) -> Option<(OwnedFd, PathBuf)> {
        let mut best = self.root.as_ref().map(|r| (r.clone(), PathBuf::new()));
        let mut walked = PathBuf::new();
        for part in rel.components() {
            walked.push(part);
            if let Some(Some(d)) = self.cache.get(&walked) {
                best = Some((d.clone(), walked.clone()));
            }
        }
        if let Some((d, _)) = best {
            return d.fd.try_clone().ok().map(|fd| (fd, d.path.clone()));
        }
        // The root itself is missing: check the deepest existing ancestor of the root.
        let mut path = self.checked.root.clone();
        while path.pop() {
            if let Ok(fd) = openat(
                AT_FDCWD,
                &path,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                return Some((fd, path));
            }
        }
        None
    }

    /// Like [`Dirs::open`], but never creates anything.
    fn find(&mut self, rel: &Path) -> Result<Option<Rc<Dir>>, WriteError> {
        let create = std::mem::replace(&mut self.create, false);
        let found = self.open(rel);
        self.create = create;
        found
    }

    /// Absolute paths of the directories this run created, parents first.
    fn created_paths(&self) -> Vec<PathBuf> {
        self.created
            .iter()
            .map(|(parent, name)| parent.join(name))
            .collect()
    }

    /// Removes the directories this run created (after a failure), deepest first. Each parent
    /// is opened again without following links; only an empty directory is removed.
    fn undo(&mut self) {
        self.cache.clear();
        self.root = None;
        while let Some((parent, name)) = self.created.pop() {
            if let Ok(fd) = open_nofollow(&parent) {
                let _ = unlinkat(&fd, &name, UnlinkatFlags::RemoveDir);
            }
        }
    }
}

/// Opens the absolute directory `path` component by component, never following a link.
fn open_nofollow(path: &Path) -> Result<OwnedFd, Errno> {
    let mut fd = openat(
        AT_FDCWD,
        "/",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    for part in path.components() {
        if let Component::Normal(part) = part {
            fd = openat(
                &fd,
                part,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
        }
    }
    Ok(fd)
}

fn check_dir(st: &FileStat, path: &Path, relaxed: bool, euid: u32) -> Result<(), WriteError> {
    let unsafe_dir = |reason: String| {
        Err(WriteError::Unsafe {
            path: path.to_path_buf(),
            reason,
        })
    };
    if st.st_uid != 0 && st.st_uid != euid {
        return unsafe_dir(format!(
            "the directory belongs to uid {}, not to root or credfile's user (uid {euid})",
            st.st_uid
        ));
    }
    let others_write = st.st_mode & 0o022 != 0;
    let sticky_root = st.st_mode & 0o1000 != 0 && st.st_uid == 0;
    if others_write && !(relaxed && sticky_root) {
        return unsafe_dir(format!(
            "the directory is writable by group or others (mode {:04o})",
            st.st_mode & 0o7777
        ));
    }
    Ok(())
}

/// One durability barrier for everything written on `dir`'s filesystem: `syncfs` once, however
/// many files, instead of an fsync per file (N serial stalls on a disk). Nothing on a memory
/// filesystem, where there is no disk to reach. Callers run it before the commit point, so the
/// crash guarantee is unchanged: what a commit publishes is on disk first.
pub(super) fn barrier(dir: &OwnedFd, path: &Path) -> Result<(), WriteError> {
    if nix::sys::statfs::fstatfs(dir)
        .is_ok_and(|st| crate::guard::is_memory_fs(st.filesystem_type()))
    {
        return Ok(());
    }
    nix::unistd::syncfs(dir).map_err(|errno| WriteError::Io {
        path: path.to_path_buf(),
        op: "syncfs",
        errno,
    })
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

fn resolve_user(p: &Principal, path: &Path, line: usize) -> Result<u32, WriteError> {
    match p {
        Principal::Id(id) => Ok(*id),
        Principal::Name(name) => match User::from_name(name) {
            Ok(Some(u)) => Ok(u.uid.as_raw()),
            _ => Err(WriteError::UnknownPrincipal {
                path: path.to_path_buf(),
                line,
                kind: "user",
                name: name.clone(),
            }),
        },
    }
}

fn resolve_group(p: &Principal, path: &Path, line: usize) -> Result<u32, WriteError> {
    match p {
        Principal::Id(id) => Ok(*id),
        Principal::Name(name) => match Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            _ => Err(WriteError::UnknownPrincipal {
                path: path.to_path_buf(),
                line,
                kind: "group",
                name: name.clone(),
            }),
        },
    }
}
