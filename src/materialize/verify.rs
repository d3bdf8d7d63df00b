//! `credfile verify`: what is on the host against what the manifest (and, online, the current
//! secret values) would produce. Read-only; takes a shared lock so it never sees a run half-way.
//!
//! Drift kinds: a file missing, an extra file, changed content, wrong mode, owner or group, and
//! the wrong type (a symlink, a directory or anything else where credfile put a file or a link).
//! Content is compared in memory with the freshly rendered bytes; nothing about a value is kept.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg};
use nix::sys::stat::fstatat;

use super::generation::{self, Current, GenTree, Link};
use super::seal::{self, Contents};
use super::state::{self, STATE_NAME};
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftKind {
    Missing,
    Extra,
    Content,
    Mode,
    Owner,
    Group,
    Type,
}

/// One difference, at a path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub path: PathBuf,
    pub kind: DriftKind,
    pub detail: String,
}

fn drift(path: impl Into<PathBuf>, kind: DriftKind, detail: impl Into<String>) -> Drift {
    Drift {
        path: path.into(),
        kind,
        detail: detail.into(),
    }
}

/// What verify found, and what it could not check.
#[derive(Debug, Default)]
pub struct Verified {
    pub drift: Vec<Drift>,
    /// Files checked: the plan's, and offline every file the state file records for an
    /// expanded set (the same count apply reports).
    pub files: usize,
    /// What was not checked, in words: content offline, an expanded set nothing is recorded for.
    pub not_checked: Vec<String>,
}

/// Compares the host with the plan. `rendered` is `None` offline (metadata only).
pub fn verify(checked: &Checked, rendered: Option<&[Rendered]>) -> Result<Verified, WriteError> {
    let mut verified = Verified {
        files: checked.files.len(),
        ..Verified::default()
    };
    if rendered.is_some() {
        seal::check(&checked.delivery, checked.creds_timeout)?;
    }
    if rendered.is_none() {
        verified
            .not_checked
            .push("content: offline, nothing was fetched or compared".into());
    }
    let dirs = Dirs::new(checked, false);
    let mut dirs = match dirs {
        Ok(d) => d,
        Err(WriteError::Unsafe { path, reason }) => {
            verified.drift = vec![drift(path, DriftKind::Type, reason)];
            return Ok(verified);
        }
        Err(e) => return Err(e),
    };
    let Some(root) = dirs.root.clone() else {
        verified.drift = checked
            .files
            .iter()
            .map(|d| drift(&d.path, DriftKind::Missing, "the root does not exist"))
            .collect();
        verified.not_checked.extend(unrecorded_sets(checked, &[]));
        return Ok(verified);
    };
    let fd = root.fd.try_clone().map_err(|e| WriteError::Io {
        path: checked.root.clone(),
        op: "dup",
        errno: errno_of(&e),
    })?;
    let _shared = Flock::lock(fd, FlockArg::LockShared).map_err(|(_, e)| WriteError::Io {
        path: checked.root.clone(),
        op: "lock",
        errno: e,
    })?;
    let state = state::read(&root, checked.euid)?;
    let contents = Contents::new(checked, state.as_ref());
    // Offline, an expanded set's files are what the state file recorded for it, with the
    // mode and owners the manifest's entry gives them.
    let recorded_in_sets: Vec<Destination> = state
        .iter()
        .flat_map(|s| &s.files)
        .filter_map(|rec| {
            checked.open_set(&rec.path).map(|set| Destination {
                path: rec.path.clone(),
                ..set.clone()
            })
        })
        .collect();
    verified.files += recorded_in_sets.len();
    verified
        .not_checked
        .extend(unrecorded_sets(checked, &recorded_in_sets));
    let expected: Vec<&Destination> = checked.files.iter().chain(&recorded_in_sets).collect();
    let known: HashSet<&Path> = expected.iter().map(|d| d.path.as_path()).collect();
    // Below a set the state records, anything else is extra; below one it does not, unknown.
    let known_sets: Vec<&Path> = checked
        .open_sets
        .iter()
        .filter(|set| {
            recorded_in_sets
                .iter()
                .any(|d| d.path.starts_with(&set.path))
        })
        .map(|set| set.path.as_path())
        .collect();
    let in_known_set = |p: &Path| known_sets.iter().any(|s| p.starts_with(s));
    let mut out = Vec::new();
    match checked.layout {
        Layout::Files => {
            for (i, dest) in expected.iter().enumerate() {
                let (parent, name) = split(&dest.path);
                match dirs.find(parent) {
                    Ok(Some(dir)) => {
                        let bytes = rendered.and_then(|r| r.get(i)).map(|r| &r.bytes[..]);
                        check_file(&dir.fd, name, dest, bytes, &contents, &mut out);
                    }
                    Ok(None) => out.push(drift(&dest.path, DriftKind::Missing, "does not exist")),
                    Err(WriteError::Unsafe { reason, .. }) => {
                        out.push(drift(parent, DriftKind::Type, reason));
                    }
                    Err(e) => return Err(e),
                }
            }
            for rec in state.iter().flat_map(|s| &s.files) {
                if known.contains(rec.path.as_path()) || checked.in_open_set(&rec.path) {
                    continue;
                }
                let (parent, name) = split(&rec.path);
                if let Ok(Some(dir)) = dirs.find(parent)
                    && fstatat(&dir.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
                {
                    out.push(drift(
                        &rec.path,
                        DriftKind::Extra,
                        "written by credfile, no longer in the manifest",
                    ));
                }
            }
            // What else is in the directories of the expanded sets credfile recorded.
            for set in &known_sets {
                let Ok(Some(dir)) = dirs.find(set) else {
                    continue;
                };
                let mut found = Vec::new();
                generation::walk(&dir.fd, set, &mut found, 0);
                for extra in found {
                    let debris = extra.file_name().is_some_and(|n| {
                        let n = n.as_bytes();
                        n.starts_with(TEMP_PREFIX.as_bytes()) && n.ends_with(TEMP_SUFFIX.as_bytes())
                    });
                    if !debris && !known.contains(extra.as_path()) {
                        out.push(drift(extra, DriftKind::Extra, EXTRA_IN_SET));
                    }
                }
            }
        }
        Layout::Generation => {
            let expected = Expected {
                files: &expected,
                known: &known,
                in_known_set: &in_known_set,
                contents: &contents,
            };
            verify_generation(checked, &root, rendered, &expected, &mut out)?
        }
    }
    verified.drift = out;
    Ok(verified)
}

const EXTRA_IN_SET: &str =
    "in an expanded set's directory, not among the files credfile recorded for that set";

/// The expanded sets (offline) for which the state file records no file: what belongs there
/// is unknown, so nothing below them was checked.
fn unrecorded_sets(checked: &Checked, recorded: &[Destination]) -> Vec<String> {
    checked
        .open_sets
        .iter()
        .filter(|set| !recorded.iter().any(|d| d.path.starts_with(&set.path)))
        .map(|set| {
            format!(
                "`{}`: an expanded set (`keys: all` or `parameters_path:`) the state file records no file of; run verify online to check it",
                set.path.display()
            )
        })
        .collect()
}

/// What a generation must hold: the files to check (plan order, then recorded set files), all
/// their paths, and which paths lie in an expanded set the state records.
struct Expected<'a> {
    files: &'a [&'a Destination],
    known: &'a HashSet<&'a Path>,
    in_known_set: &'a dyn Fn(&Path) -> bool,
    /// How content is compared (plaintext or sealed credentials).
    contents: &'a Contents<'a>,
}

fn verify_generation(
    checked: &Checked,
    root: &Dir,
    rendered: Option<&[Rendered]>,
    expected: &Expected<'_>,
    out: &mut Vec<Drift>,
) -> Result<(), WriteError> {
    let mut names = checked.top_names();
    for set in &checked.open_sets {
        if let Some(std::path::Component::Normal(n)) = set.path.components().next() {
            let n = n.to_string_lossy().into_owned();
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    // Links.
    for name in &names {
        match generation::check_link(root, name) {
            Ok(Link::Ours) => {}
            Ok(Link::Missing) => out.push(drift(
                name,
                DriftKind::Missing,
                format!(
                    "the link `{name} -> {}` is missing",
                    generation::link_target(name)
                ),
            )),
            Err(WriteError::Unsafe { reason, .. }) => {
                out.push(drift(name, DriftKind::Type, reason))
            }
            Err(e) => return Err(e),
        }
    }
    // The live generation.
    let live = match generation::current(root) {
        Ok(Current::Generation(name)) => match GenTree::open(root, &name, checked.euid) {
            Ok(tree) => tree,
            Err(WriteError::Unsafe { reason, .. }) => {
                out.push(drift(name, DriftKind::Type, reason));
                return Ok(());
            }
            Err(e) => return Err(e),
        },
        Ok(Current::Absent) => None,
        Err(WriteError::Unsafe { reason, .. }) => {
            out.push(drift(generation::CURRENT, DriftKind::Type, reason));
            None
        }
        Err(e) => return Err(e),
    };
    let Some(mut live) = live else {
        for d in expected.files {
            out.push(drift(
                &d.path,
                DriftKind::Missing,
                "there is no live generation (`current`)",
            ));
        }
        return Ok(());
    };
    for (i, dest) in expected.files.iter().enumerate() {
        let (parent, name) = split(&dest.path);
        match live.dir(parent) {
            Ok(Some(dir)) => {
                let bytes = rendered.and_then(|r| r.get(i)).map(|r| &r.bytes[..]);
                check_file(&dir.fd, name, dest, bytes, expected.contents, out);
            }
            Ok(None) => out.push(drift(&dest.path, DriftKind::Missing, "does not exist")),
            Err(WriteError::Unsafe { reason, .. }) => {
                out.push(drift(parent, DriftKind::Type, reason));
            }
            Err(e) => return Err(e),
        }
    }
    for extra in live.entries() {
        if expected.known.contains(extra.as_path()) {
            continue;
        }
        if (expected.in_known_set)(&extra) {
            out.push(drift(extra, DriftKind::Extra, EXTRA_IN_SET));
        } else if !checked.in_open_set(&extra) {
            out.push(drift(
                extra,
                DriftKind::Extra,
                "in the live generation, not in the manifest",
            ));
        }
    }
    // Anything else in the root that credfile did not put there.
    for entry in generation::list(&root.fd) {
        let bytes = entry.as_bytes();
        let known = bytes.starts_with(TEMP_PREFIX.as_bytes())
            || bytes == generation::CURRENT.as_bytes()
            || bytes == STATE_NAME.as_bytes()
            || names.iter().any(|n| n.as_bytes() == bytes);
        if !known {
            out.push(drift(
                PathBuf::from(&entry),
                DriftKind::Extra,
                "in the root, not in the manifest",
            ));
        }
    }
    Ok(())
}

/// One file: exists, is a regular file, has the manifest's mode, owner and group, and (online)
/// the rendered bytes.
fn check_file(
    dir: &OwnedFd,
    name: &Path,
    dest: &Destination,
    bytes: Option<&[u8]>,
    contents: &Contents<'_>,
    out: &mut Vec<Drift>,
) {
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => {
            out.push(drift(&dest.path, DriftKind::Missing, "does not exist"));
            return;
        }
        Err(e) => {
            out.push(drift(
                &dest.path,
                DriftKind::Missing,
                format!("cannot stat: {e}"),
            ));
            return;
        }
    };
    let t = file_type(&st);
    if t != SFlag::S_IFREG {
        out.push(drift(
            &dest.path,
            DriftKind::Type,
            format!("is a {}, not a regular file", type_name(t)),
        ));
        return;
    }
    if st.st_mode & 0o7777 != dest.mode {
        out.push(drift(
            &dest.path,
            DriftKind::Mode,
            format!(
                "mode {:04o}, manifest says {:04o}",
                st.st_mode & 0o7777,
                dest.mode
            ),
        ));
    }
    if st.st_uid != dest.uid {
        out.push(drift(
            &dest.path,
            DriftKind::Owner,
            format!("owner uid {}, manifest says {}", st.st_uid, dest.uid),
        ));
    }
    if st.st_gid != dest.gid {
        out.push(drift(
            &dest.path,
            DriftKind::Group,
            format!("group gid {}, manifest says {}", st.st_gid, dest.gid),
        ));
    }
    let Some(bytes) = bytes else { return };
    // A file that cannot be read or a credential that cannot be decrypted is drift as well.
    let same = contents
        .holds(dir, name, &dest.path, &st, dest, bytes)
        .unwrap_or(false);
    if !same {
        out.push(drift(
            &dest.path,
            DriftKind::Content,
            "content differs from what the manifest and the current secret values produce",
        ));
    }
}
