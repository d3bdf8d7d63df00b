//! What Vault's leases need from the root (docs/src/vault-dynamic.md):
//!
//! - the kept token: a lease dies with the token that created it, so an environment with
//!   `vault_lease:` entries keeps that token in `<root>/.credfile-vault-token` (mode 0600,
//!   credfile's user, next to the state file; as Vault Agent's token sink does), never in the
//!   state file or a log;
//! - the live bytes of a set, read back when a renewed lease or a certificate that is not due
//!   keeps its files: the values exist nowhere else (the state file holds none), and an
//!   unchanged set must render to exactly what is live, so nothing is touched;
//! - the state file's Vault records, updated after the hooks ran (retired leases revoked).

use std::fs::File;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use zeroize::Zeroizing;

use super::generation::{Current, GenTree, current};
use super::state;
use super::walk::Dirs;
use super::{Checked, Destination, WriteError, file_type, files, lock, split};
use crate::fetch::vault_dynamic::records::VaultRecords;
use crate::manifest::Layout;

/// The kept token's file name in the root (`.credfile` names are credfile's own).
pub const TOKEN_NAME: &str = ".credfile-vault-token";
/// A token is far smaller; a larger file is not one.
const MAX_TOKEN_BYTES: u64 = 16 << 10;
/// A set's file read back: the same bound as a CI file variable.
const MAX_LIVE_BYTES: u64 = 1 << 20;

fn io(path: PathBuf, op: &'static str) -> impl Fn(Errno) -> WriteError {
    move |errno| WriteError::Io {
        path: path.clone(),
        op,
        errno,
    }
}

/// A file's bytes and its metadata.
type Read = (Zeroizing<Vec<u8>>, nix::sys::stat::FileStat);

/// Reads a regular file `name` in `dir` without following a link, at most `max` bytes; `None`
/// when it does not exist. `owner`: the uids it may belong to (empty: any).
fn read_at(
    dir: &OwnedFd,
    name: &Path,
    full: &Path,
    max: u64,
    owners: &[u32],
) -> Result<Option<Read>, WriteError> {
    let fd = match openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => {
            return Err(WriteError::Unsafe {
                path: full.to_path_buf(),
                reason: "it is a symlink".into(),
            });
        }
        Err(e) => return Err(io(full.to_path_buf(), "open")(e)),
    };
    let st = fstat(&fd).map_err(io(full.to_path_buf(), "fstat"))?;
    if file_type(&st) != SFlag::S_IFREG {
        return Err(WriteError::Unsafe {
            path: full.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    if !owners.is_empty() && !owners.contains(&st.st_uid) {
        return Err(WriteError::Unsafe {
            path: full.to_path_buf(),
            reason: format!("it belongs to uid {}, not to credfile's user", st.st_uid),
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    File::from(fd)
        .take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| io(full.to_path_buf(), "read")(super::errno_of(&e)))?;
    Ok(Some((bytes, st)))
}

/// The kept token, if there is one. A token file that is a link, not a regular file, or not
/// credfile's (or root's) is refused: it would be someone else's token.
pub fn read_token(checked: &Checked) -> Result<Option<Zeroizing<String>>, WriteError> {
    let dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Ok(None);
    };
    let full = root.path.join(TOKEN_NAME);
    let Some((bytes, st)) = read_at(
        &root.fd,
        Path::new(TOKEN_NAME),
        &full,
        MAX_TOKEN_BYTES,
        &[0, checked.euid],
    )?
    else {
        return Ok(None);
    };
    if st.st_mode & 0o077 != 0 {
        return Err(WriteError::Unsafe {
            path: full,
            reason: format!(
                "mode {:04o}: a token file must be readable by its owner only",
                st.st_mode & 0o7777
            ),
        });
    }
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| WriteError::Unsafe {
        path: full.clone(),
        reason: "not a token (not UTF-8)".into(),
    })?;
    let token = Zeroizing::new(text.trim().to_string());
    drop(Zeroizing::new(text));
    Ok((!token.is_empty()).then_some(token))
}

/// Keeps `token` in the root (atomically, mode 0600, credfile's user), under the root's lock.
pub fn keep_token(checked: &Checked, token: &str) -> Result<(), WriteError> {
    let dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Err(io(checked.root.clone(), "open")(Errno::ENOENT));
    };
    let _lock = lock(&root, &checked.root)?;
    let dest = Destination {
        path: PathBuf::from(TOKEN_NAME),
        mode: 0o600,
        uid: checked.euid,
        gid: checked.egid,
    };
    let bytes = Zeroizing::new(token.as_bytes().to_vec());
    let staged = files::stage(
        &root,
        Path::new(""),
        Path::new(TOKEN_NAME),
        &root.path.join(TOKEN_NAME),
        &dest,
        &bytes,
    )?;
    files::publish(vec![staged], &mut |_| Ok(root.clone()))
}

/// Removes the kept token file (after it was revoked, or when it is dead). Whether one was there.
pub fn forget_token(checked: &Checked) -> Result<bool, WriteError> {
    let dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Ok(false);
    };
    let full = root.path.join(TOKEN_NAME);
    match fstatat(&root.fd, TOKEN_NAME, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => return Ok(false),
        Ok(st) if file_type(&st) == SFlag::S_IFREG => {}
        Ok(_) => {
            return Err(WriteError::Unsafe {
                path: full,
                reason: "not a regular file".into(),
            });
        }
        Err(e) => return Err(io(full, "stat")(e)),
    }
    unlinkat(&root.fd, TOKEN_NAME, UnlinkatFlags::NoRemoveDir).map_err(io(full, "unlink"))?;
    Ok(true)
}

/// The live bytes of `paths` (relative to the root), in order, when every one of them is the
/// file credfile published there (the live generation's, or in the files layout the inode the
/// state file records). `None` when any is missing or not credfile's: the set is then written
/// anew.
pub fn read_live(
    checked: &Checked,
    paths: &[PathBuf],
) -> Result<Option<Vec<Zeroizing<Vec<u8>>>>, WriteError> {
    let mut dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Ok(None);
    };
    let Some(state) = state::read(&root, checked.euid)? else {
        return Ok(None);
    };
    let recorded = state.index();
    let mut out = Vec::with_capacity(paths.len());
    match checked.layout {
        Layout::Generation => {
            let Current::Generation(name) = current(&root)? else {
                return Ok(None);
            };
            let Some(mut tree) = GenTree::open(&root, &name, checked.euid)? else {
                return Ok(None);
            };
            for path in paths {
                let (parent, file) = split(path);
                let Some(dir) = tree.dir(parent)? else {
                    return Ok(None);
                };
                if !recorded.contains_key(path.as_path()) {
                    return Ok(None);
                }
                match read_at(&dir.fd, file, &dir.path.join(file), MAX_LIVE_BYTES, &[])? {
                    Some((bytes, _)) => out.push(bytes),
                    None => return Ok(None),
                }
            }
        }
        Layout::Files => {
            for path in paths {
                let Some(rec) = recorded.get(path.as_path()) else {
                    return Ok(None);
                };
                let (parent, file) = split(path);
                let Some(dir) = dirs.find(parent)? else {
                    return Ok(None);
                };
                match read_at(&dir.fd, file, &dir.path.join(file), MAX_LIVE_BYTES, &[]) {
                    Ok(Some((bytes, st))) if rec.is_ours(&st) => out.push(bytes),
                    Ok(_) | Err(WriteError::Unsafe { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(Some(out))
}

/// The state file (for commands that do not preflight: `verify`, `clean`). `None`: none.
pub fn read_state(checked: &Checked) -> Result<Option<state::State>, WriteError> {
    let dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Ok(None);
    };
    state::read(&root, checked.euid)
}

/// The state file's Vault records, under a shared lock (`clean` and `verify`, which do not
/// preflight). `None`: no state file.
pub fn read_records(checked: &Checked) -> Result<Option<VaultRecords>, WriteError> {
    let dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Ok(None);
    };
    Ok(state::read(&root, checked.euid)?.map(|s| s.vault))
}

/// Replaces the state file's Vault records (after the hooks ran and retired leases were
/// revoked), under the root's lock. Nothing to do without a state file.
pub fn set_records(checked: &Checked, records: VaultRecords) -> Result<(), WriteError> {
    let dirs = Dirs::new(checked, false)?;
    let Some(root) = dirs.root.clone() else {
        return Ok(());
    };
    let _lock = lock(&root, &checked.root)?;
    let Some(mut state) = state::read(&root, checked.euid)? else {
        return Ok(());
    };
    if state.vault == records {
        return Ok(());
    }
    state.vault = records;
    state::write(&root, &state, checked.euid, checked.egid)
}
