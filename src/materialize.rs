//! Materialize: put rendered files on disk so that no one can redirect, read early, or tear them.
//!
//! The rules (README, "Write guarantees"):
//! - every path component is opened with `O_NOFOLLOW`, starting at `/`: a symlink anywhere is
//!   refused, never followed; directories must belong to root or to us and must not be group- or
//!   world-writable (a root-owned sticky directory such as /tmp is accepted above the root only);
//! - the current target is inspected without following it: a symlink, a non-regular file or a
//!   file owned by someone else is refused; its mode and owner are never inherited;
//! - the new inode is anonymous (`O_TMPFILE`) until it is complete: fchown first (an EPERM fails
//!   before any secret byte is on disk), then the bytes, fsync, fchmod;
//! - all changed files are staged before the first one is published, then each is published
//!   with one rename, each directory is fsynced once, and the published name is checked to be our
//!   inode;
//! - a file whose bytes, mode and owner already match is not touched (same inode, same mtime).
//!
//! [`preflight`] runs before any secret is fetched and checks every destination, so an unsafe or
//! unwritable target fails the run while no secret is in memory.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::sys::statvfs::{FsFlags, fstatvfs};
use nix::unistd::{Gid, Group, Uid, UnlinkatFlags, User, fchown, fsync, linkat, unlinkat};
use zeroize::Zeroizing;

use crate::manifest::{Plan, Principal};
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
}

impl WriteError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            WriteError::Unsafe { .. } => "credfile never writes through symlinks or into directories others can modify; remove the offending entry or fix the ownership and permissions, then run again".into(),
            WriteError::UnknownPrincipal { kind, .. } => format!("create the {kind} on this host, or use a numeric id in the manifest"),
            WriteError::ChownDenied { .. } => "run credfile as root (sudo), or remove `owner`/`group` so files belong to the invoking user".into(),
            WriteError::ReadOnly { .. } => "choose a root on a writable filesystem (for example under /run)".into(),
            WriteError::NotWritable { .. } => "run as the directory's owner or as root, or choose another root".into(),
            WriteError::Io { errno: Errno::ENOSPC | Errno::EDQUOT, .. } => "free space on the target filesystem; nothing was published".into(),
            WriteError::Io { .. } => "nothing was published; fix the cause and run again".into(),
            WriteError::Partial { .. } => "the files listed as published are new, the rest are as before; run again to complete the set".into(),
            WriteError::Tampered { .. } => "another process is changing the target directory while credfile runs; investigate before trusting these files".into(),
        })
    }
}

/// What happened, or would happen, to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Updated,
    Unchanged,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Updated => "updated",
            Status::Unchanged => "unchanged",
        }
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
    root: PathBuf,
    dir_mode: u32,
    dir_gid: u32,
    euid: u32,
    pub files: Vec<Destination>,
}

/// Checks every destination of the plan without changing anything.
pub fn preflight(plan: &Plan) -> Result<Checked, WriteError> {
    let euid = Uid::effective().as_raw();
    let egid = Gid::effective().as_raw();
    let groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    let root = plan.root.clone();
    let dir_gid = match &plan.dir_group {
        Some(g) => resolve_group(g, &root, 0)?,
        None => egid,
    };
    let mut files = Vec::with_capacity(plan.files.len());
    for spec in &plan.files {
        let path = root.join(&spec.path);
        let uid = match &spec.owner {
            Some(p) => resolve_user(p, &path, spec.line)?,
            None => euid,
        };
        let gid = match &spec.group {
            Some(p) => resolve_group(p, &path, spec.line)?,
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
    let checked = Checked {
        root,
        dir_mode: plan.dir_mode,
        dir_gid,
        euid,
        files,
    };
    let mut dirs = Dirs::new(&checked, false)?;
    for dest in &checked.files {
        let (parent, name) = split(&dest.path);
        match dirs.open(parent)? {
            Some(dir) => {
                ensure_writable(&dir.fd, &checked.root.join(parent), euid)?;
                inspect_target(&dir.fd, name, &checked.root.join(&dest.path), dest, euid)?;
            }
            None => {
                // Missing directories are created at write time; the deepest existing one must
                // accept them.
                let deepest = dirs.deepest_existing(parent);
                if let Some((fd, path)) = deepest {
                    ensure_writable(&fd, &path, euid)?;
                }
            }
        }
    }
    Ok(checked)
}

/// The outcome of one file.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub dest: Destination,
}

/// Compares the rendered files with what is on disk and, unless `dry_run`, writes what changed.
/// `rendered` is in the same order as `checked.files`.
pub fn write(
    checked: &Checked,
    rendered: &[Rendered],
    dry_run: bool,
) -> Result<Vec<Outcome>, WriteError> {
    let mut dirs = Dirs::new(checked, !dry_run)?;
    // Serialize concurrent runs on the same root (held until this function returns).
    let _lock = match (&dirs.root, dry_run) {
        (Some(root), false) => Some(lock(root, &checked.root)?),
        _ => None,
    };
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
                    compare(&dir.fd, name, &full, dest, &r.bytes, checked.euid)?
                }
            };
            outcomes.push(Outcome {
                status,
                dest: dest.clone(),
            });
            if status != Status::Unchanged && !dry_run {
                let dir = dirs.open(parent)?.expect("created when writing");
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
    publish(staged)?;
    Ok(outcomes)
}

/// A complete file, not yet visible under its name.
struct Staged {
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

fn stage(
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
    fsync(&staged.file).map_err(|e| io("fsync", e))?;
    fchmod(&staged.file, Mode::from_bits_truncate(dest.mode)).map_err(|e| io("fchmod", e))?;
    Ok(staged)
}

/// Publishes every staged file with one rename each, then fsyncs each directory once.
fn publish(staged: Vec<Staged>) -> Result<(), WriteError> {
    let mut published: Vec<PathBuf> = Vec::new();
    let mut synced: BTreeSet<PathBuf> = BTreeSet::new();
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
        if synced.insert(s.dir.path.clone()) {
            fsync(&s.dir.fd).map_err(|e| partial("fsync directory", e, &published))?;
        }
        tracing::debug!(path = %s.full.display(), "published");
    }
    Ok(())
}

/// Decides whether a target needs writing, reading it without following links.
fn compare(
    dir: &OwnedFd,
    name: &Path,
    full: &Path,
    dest: &Destination,
    bytes: &[u8],
    euid: u32,
) -> Result<Status, WriteError> {
    let Some(st) = inspect_target(dir, name, full, dest, euid)? else {
        return Ok(Status::Created);
    };
    if st.st_nlink > 1 {
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

/// Looks at the current target without following it. `None`: it does not exist.
fn inspect_target(
    dir: &OwnedFd,
    name: &Path,
    full: &Path,
    dest: &Destination,
    euid: u32,
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
    match file_type(&st) {
        SFlag::S_IFREG => {}
        SFlag::S_IFLNK => {
            return unsafe_target(
                "the target is a symlink; credfile will not write through or replace it".into(),
            );
        }
        other => {
            return unsafe_target(format!(
                "the target is a {}, not a regular file",
                type_name(other)
            ));
        }
    }
    if st.st_uid != 0 && st.st_uid != euid && st.st_uid != dest.uid {
        return unsafe_target(format!(
            "the target belongs to uid {}, not to root, credfile's user or the manifest's owner",
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

/// Opens directories under the root component by component, never following a symlink, checking
/// each, creating missing ones when allowed. Remembers what it created so a failed run can remove
/// it again.
struct Dirs<'a> {
    checked: &'a Checked,
    create: bool,
    root: Option<Rc<Dir>>,
    cache: HashMap<PathBuf, Option<Rc<Dir>>>,
    created: Vec<(Rc<Dir>, PathBuf)>,
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
        let parts: Vec<&OsStr> = root
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
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
                self.created.push((parent.clone(), name.to_path_buf()));
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

    /// Removes the directories this run created (after a failure), deepest first.
    fn undo(&mut self) {
        self.cache.clear();
        self.root = None;
        while let Some((parent, name)) = self.created.pop() {
            let _ = unlinkat(&parent.fd, &name, UnlinkatFlags::RemoveDir);
        }
    }
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
