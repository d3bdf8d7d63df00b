//! The state file: credfile's record of what it owns in a root, so that `clean` removes exactly
//! that and `verify` can name extra files.
//!
//! `<root>/.credfile-state.json`, mode 0600, owned by credfile's user. It holds paths, modes,
//! owners, inode numbers (files layout), secret ids, ARNs and version ids. Never a value, and
//! never a hash of a value: content is compared in memory, against the live files.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde::{Deserialize, Serialize};

use super::{Checked, Destination, Dir, WriteError, file_type, files};
use crate::fetch::vault_dynamic::records::VaultRecords;
use crate::manifest::Layout;
use crate::render::SourceInfo;

pub const STATE_NAME: &str = ".credfile-state.json";
/// Room for the largest plan (`render::expand::MAX_FILES` files at about 400 bytes each).
const MAX_STATE_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    pub app: String,
    pub environment: String,
    pub layout: String,
    /// Directories credfile created (absolute, parents before children); `clean` removes them
    /// when they are empty.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
    /// Generation layout: the top-level `<name> -> current/<name>` links.
    #[serde(default)]
    pub links: Vec<String>,
    pub files: Vec<FileRecord>,
    /// Paths (relative) whose change is committed or about to be, but whose change hooks have
    /// not run yet. Recorded before the commit and cleared after the hooks ran, so a run killed
    /// in between does not lose a reload: the next run runs those hooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_hooks: Vec<PathBuf>,
    /// `deliver: systemd-creds`: the sealing settings the credentials were written with (key,
    /// `not_after`); other settings seal every credential again (docs/src/systemd-creds.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealing: Option<String>,
    /// Vault's leases and certificates behind the set (docs/src/vault-dynamic.md): ids and
    /// times, never a value.
    #[serde(default, skip_serializing_if = "VaultRecords::is_empty")]
    pub vault: VaultRecords,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub path: PathBuf,
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Files layout: the inode credfile published, so `clean` never removes a file someone else
    /// put at the same path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
    /// With the inode: its modification time in nanoseconds. Filesystems reuse a freed inode
    /// number at once, so the number alone would let a file someone else created later at the
    /// same path pass for credfile's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime_ns: Option<i64>,
    pub secrets: Vec<SecretRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRecord {
    pub id: String,
    pub arn: String,
    pub version_id: String,
}

pub fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::Generation => "generation",
        Layout::Files => "files",
    }
}

impl State {
    /// The state after a run: the set as written, with directories created so far.
    pub fn new(
        checked: &Checked,
        files: Vec<FileRecord>,
        links: Vec<String>,
        created_dirs: Vec<PathBuf>,
    ) -> State {
        State {
            version: 1,
            app: checked.app.clone(),
            environment: checked.env.clone(),
            layout: layout_name(checked.layout).to_string(),
            created_dirs,
            links,
            files,
            pending_hooks: Vec::new(),
            sealing: super::seal::label(&checked.delivery),
            vault: checked.vault.clone().unwrap_or_default(),
        }
    }

    /// Adds `paths` to the pending hooks (once each).
    pub fn add_pending(&mut self, paths: impl IntoIterator<Item = PathBuf>) {
        let mut seen: std::collections::HashSet<PathBuf> =
            self.pending_hooks.iter().cloned().collect();
        for p in paths {
            if seen.insert(p.clone()) {
                self.pending_hooks.push(p);
            }
        }
    }

    /// A root belongs to one app and environment, in one layout.
    pub fn check_owner(&self, checked: &Checked) -> Result<(), WriteError> {
        if self.app != checked.app || self.environment != checked.env {
            return Err(WriteError::OtherOwner {
                root: checked.root.clone(),
                app: self.app.clone(),
                env: self.environment.clone(),
                want_app: checked.app.clone(),
                want_env: checked.env.clone(),
            });
        }
        let want = layout_name(checked.layout);
        if self.layout != want {
            return Err(WriteError::LayoutChange {
                root: checked.root.clone(),
                from: if self.layout == "files" {
                    "files"
                } else {
                    "generation"
                },
                to: want,
            });
        }
        Ok(())
    }

    /// The records by path, for lookups over a whole set (linear, where `file` per file of a
    /// 20,000-file set would be quadratic).
    pub fn index(&self) -> HashMap<&Path, &FileRecord> {
        self.files.iter().map(|f| (f.path.as_path(), f)).collect()
    }
}

/// A file's modification time in nanoseconds since the epoch.
pub fn mtime_ns(st: &FileStat) -> i64 {
    st.st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec)
}

impl FileRecord {
    /// Whether `st` is the regular file credfile published at this path (files layout).
    pub fn is_ours(&self, st: &FileStat) -> bool {
        file_type(st) == SFlag::S_IFREG
            && Some(st.st_ino) == self.inode
            && self.mtime_ns.is_none_or(|t| t == mtime_ns(st))
    }

    /// `st`: the published file (files layout), `None` otherwise.
    pub fn new(dest: &Destination, sources: &[SourceInfo], st: Option<&FileStat>) -> FileRecord {
        FileRecord {
            path: dest.path.clone(),
            mode: format!("{:04o}", dest.mode),
            uid: dest.uid,
            gid: dest.gid,
            inode: st.map(|st| st.st_ino),
            mtime_ns: st.map(mtime_ns),
            secrets: sources
                .iter()
                .map(|s| SecretRecord {
                    id: s.id.clone(),
                    arn: s.arn.clone(),
                    version_id: s.version_id.clone(),
                })
                .collect(),
        }
    }
}

fn bad(root: &Dir, reason: impl Into<String>) -> WriteError {
    WriteError::BadState {
        path: root.path.join(STATE_NAME),
        reason: reason.into(),
    }
}

/// Reads the state file of an open root; `None` when there is none.
pub(super) fn read(root: &Dir, euid: u32) -> Result<Option<State>, WriteError> {
    let fd = match openat(
        &root.fd,
        STATE_NAME,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(bad(root, "it is a symlink")),
        Err(e) => return Err(bad(root, format!("open failed: {e}"))),
    };
    let st = fstat(&fd).map_err(|e| bad(root, format!("stat failed: {e}")))?;
    if file_type(&st) != nix::sys::stat::SFlag::S_IFREG {
        return Err(bad(root, "not a regular file"));
    }
    if st.st_uid != 0 && st.st_uid != euid {
        return Err(bad(
            root,
            format!(
                "it belongs to uid {}, not to root or credfile's user",
                st.st_uid
            ),
        ));
    }
    let mut text = Vec::new();
    File::from(fd)
        .take(MAX_STATE_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| bad(root, format!("read failed: {e}")))?;
    let state: State = serde_json::from_slice(&text)
        .map_err(|e| bad(root, format!("not credfile state JSON ({e})")))?;
    state.check_paths().map_err(|why| bad(root, why))?;
    Ok(Some(state))
}

impl State {
    /// Paths in a state file stay where credfile writes: files and links relative to the root
    /// without `..`, created directories absolute without `..`. A state file that says
    /// otherwise is refused, so `clean` can never be pointed outside the root.
    fn check_paths(&self) -> Result<(), String> {
        use std::path::Component;
        let plain = |p: &Path| {
            !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
        };
        for f in &self.files {
            if !plain(&f.path) {
                return Err(format!("file path `{}` leaves the root", f.path.display()));
            }
        }
        for p in &self.pending_hooks {
            if !plain(p) {
                return Err(format!("pending path `{}` leaves the root", p.display()));
            }
        }
        for l in &self.links {
            if !plain(Path::new(l)) || l.contains('/') {
                return Err(format!("link `{l}` is not a name in the root"));
            }
        }
        for d in &self.created_dirs {
            let ok = d.is_absolute()
                && d.components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
            if !ok {
                return Err(format!(
                    "directory `{}` is not a plain absolute path",
                    d.display()
                ));
            }
        }
        Ok(())
    }
}

/// Writes the state file atomically (same mechanism as a `files` layout file), unless it already
/// holds exactly this.
pub(super) fn write(root: &Rc<Dir>, state: &State, euid: u32, egid: u32) -> Result<(), WriteError> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|e| bad(root, e.to_string()))?;
    bytes.push(b'\n');
    if let Ok(Some(old)) = read(root, euid)
        && old == *state
    {
        return Ok(());
    }
    let dest = Destination {
        path: PathBuf::from(STATE_NAME),
        mode: 0o600,
        uid: euid,
        gid: egid,
    };
    let staged = files::stage(
        root,
        Path::new(""),
        Path::new(STATE_NAME),
        &root.path.join(STATE_NAME),
        &dest,
        &bytes,
    )?;
    files::publish(vec![staged], &mut |_| Ok(root.clone()))
}

/// Records, before a commit, that `paths` are changing and their hooks have yet to run. Keeps
/// the rest of the state as it was (it still describes the live set).
pub(super) fn mark_pending(
    root: &Rc<Dir>,
    checked: &Checked,
    old: Option<&State>,
    paths: Vec<PathBuf>,
) -> Result<(), WriteError> {
    let mut state = old
        .cloned()
        .unwrap_or_else(|| State::new(checked, Vec::new(), Vec::new(), Vec::new()));
    state.add_pending(paths);
    write(root, &state, checked.euid, checked.egid)
}

/// After the hooks ran: the pending paths become `still_owed` (those a failed hook covers).
pub(super) fn clear_pending(
    root: &Rc<Dir>,
    checked: &Checked,
    still_owed: Vec<PathBuf>,
) -> Result<(), WriteError> {
    let Some(mut state) = read(root, checked.euid)? else {
        return Ok(());
    };
    if state.pending_hooks == still_owed {
        return Ok(());
    }
    state.pending_hooks = still_owed;
    write(root, &state, checked.euid, checked.egid)
}

/// Removes the state file (clean). A missing one is fine.
pub(super) fn remove(root: &Dir) -> Result<bool, WriteError> {
    match fstatat(&root.fd, STATE_NAME, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(false),
        Ok(st) if file_type(&st) == nix::sys::stat::SFlag::S_IFREG => {}
        _ => return Err(bad(root, "not a regular file")),
    }
    unlinkat(&root.fd, STATE_NAME, UnlinkatFlags::NoRemoveDir).map_err(|e| WriteError::Io {
        path: root.path.join(STATE_NAME),
        op: "unlink",
        errno: e,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_inode_number_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"ours").unwrap();
        let st = nix::sys::stat::stat(&path).unwrap();
        let dest = Destination {
            path: "f".into(),
            mode: 0o400,
            uid: 0,
            gid: 0,
        };
        let rec = FileRecord::new(&dest, &[], Some(&st));
        assert!(rec.is_ours(&st));
        // Same inode number, written at another time: someone else's file.
        let mut later = st;
        later.st_mtime_nsec = (st.st_mtime_nsec + 1) % 1_000_000_000;
        assert!(!rec.is_ours(&later));
        let mut other = st;
        other.st_ino += 1;
        assert!(!rec.is_ours(&other));
    }

    fn state(files: &[&str], links: &[&str], dirs: &[&str]) -> State {
        State {
            version: 1,
            app: "a".into(),
            environment: "e".into(),
            layout: "files".into(),
            created_dirs: dirs.iter().map(PathBuf::from).collect(),
            links: links.iter().map(|l| l.to_string()).collect(),
            files: files
                .iter()
                .map(|p| FileRecord {
                    path: PathBuf::from(p),
                    mode: "0400".into(),
                    uid: 0,
                    gid: 0,
                    inode: Some(1),
                    mtime_ns: None,
                    secrets: Vec::new(),
                })
                .collect(),
            pending_hooks: Vec::new(),
            sealing: None,
            vault: VaultRecords::default(),
        }
    }

    #[test]
    fn paths_that_leave_the_root_are_refused() {
        assert!(
            state(&["a", "d/b"], &["a", "d"], &["/run/x"])
                .check_paths()
                .is_ok()
        );
        assert!(state(&["../etc/passwd"], &[], &[]).check_paths().is_err());
        assert!(state(&["/etc/passwd"], &[], &[]).check_paths().is_err());
        assert!(state(&[], &["a/b"], &[]).check_paths().is_err());
        assert!(state(&[], &[".."], &[]).check_paths().is_err());
        assert!(state(&[], &[], &["relative"]).check_paths().is_err());
        assert!(state(&[], &[], &["/run/../etc"]).check_paths().is_err());
    }

    #[test]
    fn the_state_never_holds_a_value() {
        let mut s = state(&["a"], &[], &[]);
        s.files[0].secrets.push(SecretRecord {
            id: "app/db".into(),
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf".into(),
            version_id: "v1".into(),
        });
        let text = serde_json::to_string(&s).unwrap();
        for field in ["value", "hash", "sha", "digest"] {
            assert!(!text.contains(field), "{text}");
        }
    }
}
