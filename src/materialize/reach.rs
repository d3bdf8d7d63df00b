//! Every file's owner (and group, when its mode gives the group read access) must be able to
//! reach it: search permission on every directory from `/` down to it. A run that wrote a file
//! its owner cannot open would "succeed" and leave the app failing later (`owner:
//! app` under the default `dir_mode` 0700, in directories owned by root).
//!
//! Checked in preflight, before any secret is fetched (and again for expanded sets), from the
//! directories as they are and as credfile would create them (owned by credfile's user, with the
//! environment's `group` and `dir_mode`). credfile does not widen modes on its own: it refuses,
//! and the error says which directory blocks whom and what to set.

use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags};
use nix::sys::stat::fstatat;
use nix::unistd::{Uid, User, getgrouplist};

use super::{Checked, Destination, WriteError};
use crate::manifest::{Layout, Plan};

/// A directory on the way to a file: its owner, group and mode, and whether credfile would
/// create it (so `dir_mode` decides its mode).
#[derive(Clone, Copy)]
struct DirMeta {
    uid: u32,
    gid: u32,
    mode: u32,
    created: bool,
}

/// Who must get through: a file's owner (with their groups) or the members of its group.
#[derive(Clone, Copy)]
enum Who<'a> {
    Owner(u32, &'a [u32]),
    Group(u32),
}

impl DirMeta {
    fn lets_through(&self, who: Who<'_>) -> bool {
        match who {
            Who::Owner(uid, _) if uid == self.uid => self.mode & 0o100 != 0,
            Who::Owner(_, groups) if groups.contains(&self.gid) => self.mode & 0o010 != 0,
            Who::Group(gid) if gid == self.gid => self.mode & 0o010 != 0,
            _ => self.mode & 0o001 != 0,
        }
    }
}

/// Checks every file of `checked` (from `plan`, same order, for the manifest lines).
pub fn check(checked: &Checked, plan: &Plan) -> Result<(), WriteError> {
    let mut dirs: HashMap<PathBuf, DirMeta> = HashMap::new();
    let mut groups: HashMap<u32, Vec<u32>> = HashMap::new();
    let new_dir = DirMeta {
        uid: checked.euid,
        gid: checked.dir_gid,
        mode: checked.dir_mode,
        created: true,
    };
    for (dest, spec) in checked.files.iter().zip(&plan.files) {
        let group_reads = dest.mode & 0o040 != 0 && dest.gid != 0;
        if dest.uid == 0 && !group_reads {
            continue;
        }
        let owner_groups = groups
            .entry(dest.uid)
            .or_insert_with(|| groups_of(dest.uid));
        let mut whos = Vec::with_capacity(2);
        if dest.uid != 0 {
            whos.push(Who::Owner(dest.uid, owner_groups));
        }
        if group_reads {
            whos.push(Who::Group(dest.gid));
        }
        for (dir, meta) in chain(checked, dest, &mut dirs, new_dir) {
            for who in &whos {
                if !meta.lets_through(*who) {
                    return Err(refusal(checked, dest, spec.line, &dir, meta, *who));
                }
            }
        }
    }
    Ok(())
}

/// The directories on the way to `dest`, from `/`, with what they are (or will be).
fn chain(
    checked: &Checked,
    dest: &Destination,
    cache: &mut HashMap<PathBuf, DirMeta>,
    new_dir: DirMeta,
) -> Vec<(PathBuf, DirMeta)> {
    let mut out = Vec::new();
    let mut created = false;
    let mut visit = |path: PathBuf, created: &mut bool| {
        let meta = if *created {
            new_dir
        } else if let Some(m) = cache.get(&path) {
            *m
        } else {
            let m = match fstatat(AT_FDCWD, &path, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => DirMeta {
                    uid: st.st_uid,
                    gid: st.st_gid,
                    mode: st.st_mode & 0o7777,
                    created: false,
                },
                // Missing: credfile creates it and everything below it.
                Err(Errno::ENOENT) => new_dir,
                // Anything else is preflight's to report (a symlink, a permission problem).
                Err(_) => return,
            };
            cache.insert(path.clone(), m);
            m
        };
        *created |= meta.created;
        out.push((path, meta));
    };
    let mut path = PathBuf::from("/");
    for part in checked.root.components().skip(1) {
        path.push(part);
        visit(path.clone(), &mut created);
    }
    let parent = dest.path.parent().unwrap_or(Path::new(""));
    match checked.layout {
        Layout::Files => {
            for part in parent.components() {
                path.push(part);
                visit(path.clone(), &mut created);
            }
        }
        Layout::Generation => {
            // A new generation and its directories, created by credfile, whatever exists now.
            path.push(".credfile-gen-*");
            out.push((path.clone(), new_dir));
            for part in parent.components() {
                path.push(part);
                out.push((path.clone(), new_dir));
            }
        }
    }
    out
}

/// The groups of `uid` (its primary group and supplementary ones), from the user database.
fn groups_of(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = CString::new(user.name.as_bytes()) else {
        return vec![user.gid.as_raw()];
    };
    getgrouplist(&name, user.gid)
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()])
}

fn refusal(
    checked: &Checked,
    dest: &Destination,
    line: usize,
    dir: &Path,
    meta: DirMeta,
    who: Who<'_>,
) -> WriteError {
    let whom = match who {
        Who::Owner(uid, _) => format!("its owner (uid {uid})"),
        Who::Group(gid) => format!("its group (gid {gid}, which the file's mode lets read it)"),
    };
    let dir_text = if meta.created {
        format!(
            "credfile would create {} with `dir_mode` {:04o}, owner uid {}, group gid {}",
            dir.display(),
            meta.mode,
            meta.uid,
            meta.gid
        )
    } else {
        format!(
            "{} exists with mode {:04o}, owner uid {}, group gid {}",
            dir.display(),
            meta.mode,
            meta.uid,
            meta.gid
        )
    };
    WriteError::Unreachable {
        path: checked.root.join(&dest.path),
        line,
        reason: format!("{whom} could not open it: {dir_text}, which does not let it through"),
        existing: !meta.created,
    }
}
