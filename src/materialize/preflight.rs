//! Preflight, the stage before any secret is fetched (docs/src/flow.md): every destination of
//! the plan is resolved (owners and groups looked up, modes fixed) and checked on disk without
//! changing anything, so an unsafe, unreachable or unwritable target fails the run while no
//! secret is in memory. What it returns, [`Checked`], is all the write stage trusts.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::unistd::{Gid, Uid};

use super::owner::{resolve_group, resolve_user};
use super::walk::Dirs;
use super::{Claim, WriteError, ensure_writable, generation, inspect_target, reach, split, state};
use crate::manifest::{Delivery, Layout, Plan};

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
    /// `credfile run` in a user namespace: the owner the root's ancestors show as there, taken
    /// as root's (checked on the host beforehand, [`check_root_path`]).
    pub(super) unmapped_ancestors: Option<u32>,
    pub layout: Layout,
    /// Plaintext, or systemd credentials sealed by systemd-creds (`seal.rs`).
    pub delivery: Delivery,
    pub app: String,
    pub env: String,
    pub dir_mode: u32,
    pub dir_gid: u32,
    pub(super) euid: u32,
    pub(super) egid: u32,
    pub files: Vec<Destination>,
    /// Offline verify: the entries whose files are known only after a fetch (`keys: all`,
    /// `parameters_path:`), each with its directory, mode and owners. Their files are the ones
    /// the state file records below that directory.
    pub open_sets: Vec<Destination>,
    /// What the state file says credfile owns in this root (None: nothing yet).
    pub state: Option<state::State>,
    /// How long one `systemd-creds` call may take (`--call-timeout`; the commands that seal
    /// or open credentials set it, docs/src/systemd-creds.md).
    pub creds_timeout: Duration,
    /// The Vault records the next state file holds (leases and certificates behind the set);
    /// set by the run once it knows them. `None`: none.
    pub vault: Option<crate::fetch::vault_dynamic::records::VaultRecords>,
}

impl Checked {
    /// Whether `path` is inside one of the [`Checked::open_sets`].
    pub(super) fn in_open_set(&self, path: &Path) -> bool {
        self.open_set(path).is_some()
    }

    /// The open set `path` is inside, if any.
    pub(super) fn open_set(&self, path: &Path) -> Option<&Destination> {
        self.open_sets.iter().find(|d| path.starts_with(&d.path))
    }

    /// Top-level names of the set, in manifest order, once each (the generation layout's links).
    pub(super) fn top_names(&self) -> Vec<String> {
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

/// Checks every destination of the plan without changing anything. `creds_timeout` bounds each
/// `systemd-creds` call, this check's and the write's.
pub fn preflight(plan: &Plan, creds_timeout: Duration) -> Result<Checked, WriteError> {
    super::seal::check(&plan.delivery, creds_timeout)?;
    let mut checked = resolve(plan)?;
    checked.creds_timeout = creds_timeout;
    reach::check(&checked, plan)?;
    check_destinations(checked)
}

/// The reach check of [`preflight`] alone: `credfile run` checks the host's directories down
/// to its root (docs/src/run.md), and the files' destinations in its private root.
pub fn check_reach(checked: &Checked, plan: &Plan) -> Result<(), WriteError> {
    reach::check(checked, plan)
}

/// `credfile run`'s destinations in the root of its private namespace, owners resolved on the
/// host beforehand; the process's own ids are the writer's. `unmapped`: in a user namespace,
/// the uid that the root's ancestors show as (their real owners are not mapped there); they
/// were checked on the host first ([`check_root_path`]).
pub fn private_root(
    root: PathBuf,
    unmapped: Option<u32>,
    shape: SetShape,
    files: Vec<Destination>,
) -> Checked {
    Checked {
        root,
        unmapped_ancestors: unmapped,
        layout: shape.layout,
        // Plaintext in a tmpfs only the command's namespace sees: the delivery of `run`.
        delivery: Delivery::Plain,
        app: shape.app,
        env: shape.env,
        dir_mode: shape.dir_mode,
        dir_gid: shape.dir_gid,
        euid: Uid::effective().as_raw(),
        egid: Gid::effective().as_raw(),
        files,
        open_sets: Vec::new(),
        state: None,
        creds_timeout: crate::systemd_creds::DEFAULT_TIMEOUT,
        vault: None,
    }
}

/// What a set is besides its files: its layout, whose it is, and how its directories are made.
pub struct SetShape {
    pub layout: Layout,
    pub app: String,
    pub env: String,
    pub dir_mode: u32,
    pub dir_gid: u32,
}

/// `credfile run`, on the host: the directories from `/` to the root pass the walk's checks
/// (owned by root or credfile's user, not writable by others).
pub fn check_root_path(checked: &Checked) -> Result<(), WriteError> {
    Dirs::new(checked, false).map(drop)
}

/// What [`preflight`] checks after owners and reach: every directory and target as it is now,
/// and the state file of the root.
pub fn check_destinations(mut checked: Checked) -> Result<Checked, WriteError> {
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
        unmapped_ancestors: None,
        layout: plan.layout,
        delivery: plan.delivery.clone(),
        app: plan.app.clone(),
        env: plan.env.clone(),
        dir_mode: plan.dir_mode,
        dir_gid,
        euid,
        egid,
        files,
        open_sets: Vec::new(),
        state: None,
        creds_timeout: crate::systemd_creds::DEFAULT_TIMEOUT,
        vault: None,
    })
}
