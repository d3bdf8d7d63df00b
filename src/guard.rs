//! Seed rules enforced before anything is fetched: secrets never land where `git add` can pick
//! them up, and they belong on a memory filesystem (nothing on disk to survive a reboot, a backup
//! or a snapshot).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sys::statfs::{FsType, TMPFS_MAGIC, statfs};

/// ramfs's magic number (linux/magic.h); nix names tmpfs's but not this one.
const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);

/// Whether a filesystem type is memory-backed (tmpfs or ramfs): nothing there reaches a disk.
pub fn is_memory_fs(t: FsType) -> bool {
    t == TMPFS_MAGIC || t == RAMFS_MAGIC
}

use crate::manifest::Plan;

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("{} (manifest line {line}) is inside the git work tree at {}", path.display(), repo.display())]
    InRepository {
        path: PathBuf,
        line: usize,
        repo: PathBuf,
    },
    #[error("{} (manifest line {line}) is inside the git work tree at {} and git does not ignore it", path.display(), repo.display())]
    NotIgnored {
        path: PathBuf,
        line: usize,
        repo: PathBuf,
    },
    #[error("{}: cannot ask git whether the path is ignored: {reason}", path.display())]
    Git { path: PathBuf, reason: String },
    #[error("root {} is on {fs} filesystem, and environment `{env}` sets require_memory_fs", root.display())]
    NotMemoryFs {
        root: PathBuf,
        fs: String,
        env: String,
    },
}

impl GuardError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            GuardError::InRepository { .. } => "secrets must never be where `git add` can commit them: choose a root outside the repository (for example /run/credfile/APP); or, if the path is git-ignored on purpose, set `allow_in_repository: true` on the entry".into(),
            GuardError::NotIgnored { .. } => "add the path to the repository's .gitignore (allow_in_repository only accepts ignored paths)".into(),
            GuardError::Git { .. } => "install git, or choose a root outside the repository".into(),
            GuardError::NotMemoryFs { root, .. } => format!("{}, or drop require_memory_fs", memory_fs_advice(root)),
        })
    }
}

/// Checks the plan's destinations; returns warnings to log, or the first violation.
pub fn check(plan: &Plan) -> Result<Vec<String>, GuardError> {
    let mut warnings = Vec::new();
    // Each target on its own: a repository may sit below the root as well as above it.
    let mut repos: Vec<PathBuf> = Vec::new();
    for f in &plan.files {
        let path = plan.root.join(&f.path);
        let Some(repo) = enclosing_work_tree(path.parent().unwrap_or(&plan.root)) else {
            continue;
        };
        if !f.allow_in_repository {
            return Err(GuardError::InRepository {
                path,
                line: f.line,
                repo,
            });
        }
        if !git_ignores(&repo, &path)? {
            return Err(GuardError::NotIgnored {
                path,
                line: f.line,
                repo,
            });
        }
        if !repos.contains(&repo) {
            warnings.push(format!(
                "targets inside the git work tree at {} are git-ignored and allowed by allow_in_repository",
                repo.display()
            ));
            repos.push(repo);
        }
    }
    // Sealed credentials are meant to rest on disk (docs/src/systemd-creds.md): only the
    // plaintext delivery is warned about.
    let sealed = matches!(
        plan.delivery,
        crate::manifest::Delivery::SystemdCreds { .. }
    );
    if let Some(fs) = disk_filesystem(&plan.root) {
        if plan.require_memory_fs {
            return Err(GuardError::NotMemoryFs {
                root: plan.root.clone(),
                fs,
                env: plan.env.clone(),
            });
        }
        if sealed {
            return Ok(warnings);
        }
        warnings.push(format!(
            "root {} is on {fs} filesystem, not in memory: the secrets will persist on disk (and in its backups); {}",
            plan.root.display(),
            memory_fs_advice(&plan.root)
        ));
    }
    Ok(warnings)
}

/// The directory holding `.git` (a directory, or a file for worktrees and submodules) at or
/// above `path`, if any. Looks without following symlinks in the name checked.
fn enclosing_work_tree(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|dir| std::fs::symlink_metadata(dir.join(".git")).is_ok())
        .map(Path::to_path_buf)
}

/// Asks git itself, so every ignore source counts (.gitignore files, info/exclude, core.excludesFile).
fn git_ignores(repo: &Path, path: &Path) -> Result<bool, GuardError> {
    let status = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["check-ignore", "-q", "--no-index", "--"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| GuardError::Git {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(GuardError::Git {
            path: path.to_path_buf(),
            reason: format!("git check-ignore exited with {status}"),
        }),
    }
}

/// Where to put a root instead, from what this host really has: /run and /dev/shm are tmpfs on
/// most systems, not on all (a container's /run can be its disk), so each is checked, and a
/// root already under one of them is not told to move there.
fn memory_fs_advice(root: &Path) -> String {
    let on_memory = |p: &Path| statfs(p).is_ok_and(|s| is_memory_fs(s.filesystem_type()));
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
    let candidates = [
        Some(PathBuf::from("/run")),
        Some(PathBuf::from("/dev/shm")),
        runtime,
    ];
    let mut good = Vec::new();
    let mut not_memory = Vec::new();
    for dir in candidates.into_iter().flatten() {
        if !dir.is_dir() || good.contains(&dir) {
            continue;
        }
        if on_memory(&dir) {
            good.push(dir);
        } else if root.starts_with(&dir) {
            not_memory.push(dir);
        }
    }
    let mut out = not_memory
        .iter()
        .map(|d| format!("{} is not a tmpfs on this host; ", d.display()))
        .collect::<String>();
    let list = good
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ");
    if good.is_empty() {
        out.push_str("mount a tmpfs for the root (`mount -t tmpfs -o mode=0700 tmpfs DIR`)");
    } else {
        out.push_str(&format!(
            "use a root under {list} (tmpfs here), or mount a tmpfs for the root"
        ));
    }
    out
}

/// The filesystem type of the root (or its deepest existing ancestor) when it is not in memory.
fn disk_filesystem(root: &Path) -> Option<String> {
    let existing = root.ancestors().find(|p| p.exists())?;
    let st = statfs(existing).ok()?;
    let t = st.filesystem_type();
    if is_memory_fs(t) {
        return None;
    }
    // With its article, for "is on {fs} filesystem".
    Some(match t.0 as u64 {
        0xEF53 => "an ext4".to_string(),
        0x5846_5342 => "an xfs".to_string(),
        0x9123_683E => "a btrfs".to_string(),
        0x794C_7630 => "an overlay".to_string(),
        0x6969 => "an NFS".to_string(),
        other => format!("a disk (type {other:#x})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_enclosing_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
        std::fs::create_dir_all(dir.path().join("repo/a/b")).unwrap();
        assert_eq!(
            enclosing_work_tree(&dir.path().join("repo/a/b/c")),
            Some(dir.path().join("repo"))
        );
        assert_eq!(enclosing_work_tree(&dir.path().join("elsewhere")), None);
    }

    #[test]
    fn dev_shm_is_memory() {
        if Path::new("/dev/shm").exists() {
            assert_eq!(disk_filesystem(Path::new("/dev/shm/credfile-x/y")), None);
        }
    }
}
