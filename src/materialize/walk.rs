//! The safe directory walker beneath both layouts: every directory under the root is opened
//! component by component from `/` with `O_NOFOLLOW` (a symlink anywhere is refused, never
//! followed), checked (root's or credfile's user's, not writable by group or others), and created
//! when missing and allowed; what a run created is remembered so a failed run can take it back.
//! Plus the one durability barrier for a set.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fsync, unlinkat};

use super::{Checked, WriteError, file_type, type_name};

/// An open directory and its absolute path.
pub(super) struct Dir {
    pub(super) fd: OwnedFd,
    pub(super) path: PathBuf,
}

/// How many directories a cache ([`Dirs`], the generation layout's trees) keeps open. Past it,
/// only the ancestors of the directory being opened stay: a set of 20,000 files in as many
/// directories runs within a small, fixed number of descriptors.
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
pub(super) struct Dirs<'a> {
    checked: &'a Checked,
    create: bool,
    pub(super) root: Option<Rc<Dir>>,
    cache: HashMap<PathBuf, Option<Rc<Dir>>>,
    /// (absolute parent, name) of each directory this run created, in creation order.
    created: Vec<(PathBuf, PathBuf)>,
}

impl<'a> Dirs<'a> {
    pub(super) fn new(checked: &'a Checked, create: bool) -> Result<Self, WriteError> {
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
        let mut st = st;
        if relaxed && self.checked.unmapped_ancestors == Some(st.st_uid) {
            // credfile run in a user namespace: the host's root shows as "nobody" here.
            st.st_uid = 0;
        }
        check_dir(&st, &path, relaxed, self.checked.euid)?;
        Ok(Some(Rc::new(Dir { fd, path })))
    }

    /// Opens the directory `rel` (relative to the root); `None` when it does not exist and
    /// creating is off.
    pub(super) fn open(&mut self, rel: &Path) -> Result<Option<Rc<Dir>>, WriteError> {
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
    pub(super) fn deepest_existing(&self, rel: &Path) -> Option<(OwnedFd, PathBuf)> {
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
    pub(super) fn find(&mut self, rel: &Path) -> Result<Option<Rc<Dir>>, WriteError> {
        let create = std::mem::replace(&mut self.create, false);
        let found = self.open(rel);
        self.create = create;
        found
    }

    /// Absolute paths of the directories this run created, parents first.
    pub(super) fn created_paths(&self) -> Vec<PathBuf> {
        self.created
            .iter()
            .map(|(parent, name)| parent.join(name))
            .collect()
    }

    /// Removes the directories this run created (after a failure), deepest first. Each parent
    /// is opened again without following links; only an empty directory is removed.
    pub(super) fn undo(&mut self) {
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
pub(super) fn open_nofollow(path: &Path) -> Result<OwnedFd, Errno> {
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

pub(super) fn check_dir(
    st: &FileStat,
    path: &Path,
    relaxed: bool,
    euid: u32,
) -> Result<(), WriteError> {
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
