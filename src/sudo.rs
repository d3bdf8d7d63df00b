//! Runs through `sudo` (pipeline-examples/sudo/credfile.sudoers): an unprivileged CI runner may
//! run credfile as root so that files can be owned by the app's user. The sudoers rule fixes the
//! command line; this module is the second fence, for rules written with wildcards and for
//! `sudo credfile ...` by hand.
//!
//! Whoever can change the manifest (or a template file, or choose `--root`) decides what root
//! writes where, and a hook is a program root runs. So under sudo (`SUDO_USER` set, running as
//! root) the manifest and every template file must be root-owned and writable by nobody else, all
//! the way up the directory chain, and the flags that pick another place to write (`--root`,
//! `--audit-log`) are refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The sudoers file this project ships, for messages.
pub const SUDOERS_EXAMPLE: &str = "pipeline-examples/sudo/credfile.sudoers";

#[derive(Debug, thiserror::Error)]
pub enum SudoError {
    #[error(
        "refusing to run as root for {user} (sudo): the manifest {} is not root's alone: {reason}",
        path.display()
    )]
    UntrustedManifest {
        path: PathBuf,
        user: String,
        reason: String,
    },
    #[error(
        "refusing to run the change hook {} as root for {user} (sudo): {reason}",
        program.display()
    )]
    UntrustedHook {
        program: PathBuf,
        user: String,
        reason: String,
    },
    #[error(
        "refusing `{flag}` under sudo (invoked by {user}): it would let the caller choose where root writes"
    )]
    Override { flag: &'static str, user: String },
}

impl SudoError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            SudoError::UntrustedManifest { .. } => format!(
                "install the manifest (and its template files) root-owned and not writable by others, e.g. `install -o root -g root -m 0644 credfile.yaml /etc/credfile/APP.yaml`, and name that path in the sudoers rule ({SUDOERS_EXAMPLE})"
            ),
            SudoError::UntrustedHook { .. } => {
                "a hook root runs must be root's alone: install it root-owned (0755) outside any checkout, or name a program on the PATH".into()
            }
            SudoError::Override { .. } => {
                "set `root:` in the root-owned manifest instead; under sudo the manifest alone decides where files go".into()
            }
        })
    }
}

/// The invoking user when credfile runs as root through sudo.
pub fn invoked_by() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return None;
    }
    std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty())
}

/// Before the manifest is read: under sudo, the manifest must be root's alone and no flag may
/// move the writes elsewhere. `overrides`: (flag, given) pairs of the command.
pub fn check_invocation(
    manifest: &Path,
    overrides: &[(&'static str, bool)],
) -> Result<(), SudoError> {
    let Some(user) = invoked_by() else {
        return Ok(());
    };
    if let Some((flag, _)) = overrides.iter().find(|(_, given)| *given) {
        return Err(SudoError::Override { flag, user });
    }
    trusted(manifest).map_err(|reason| SudoError::UntrustedManifest {
        path: manifest.to_path_buf(),
        user,
        reason,
    })
}

/// Under sudo, every change hook given by path must be root's alone: root runs it. (A bare
/// name is found through sudo's `secure_path`.)
pub fn check_hooks(plan: &crate::manifest::Plan) -> Result<(), SudoError> {
    let Some(user) = invoked_by() else {
        return Ok(());
    };
    let programs = std::iter::once(&plan.on_change)
        .chain(plan.files.iter().map(|f| &f.on_change))
        .filter_map(|argv| argv.first())
        .filter(|p| p.contains('/'));
    for program in programs {
        let path = PathBuf::from(program);
        if let Err(reason) = trusted(&path) {
            return Err(SudoError::UntrustedHook {
                program: path,
                user,
                reason,
            });
        }
    }
    Ok(())
}

/// Under sudo, why `path` (a template file) is not safe to read as root; `None` otherwise.
pub fn untrusted_file(path: &Path) -> Option<String> {
    invoked_by()?;
    trusted(path).err()
}

/// `path` and every directory above it, both as written and with symlinks resolved, are owned
/// by root and not writable by group or others (a sticky directory such as /tmp is fine: only
/// root may rename what root owns there).
fn trusted(path: &Path) -> Result<(), String> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot resolve the working directory: {e}"))?
            .join(path)
    };
    let resolved = std::fs::canonicalize(&absolute)
        .map_err(|e| format!("cannot resolve {}: {e}", absolute.display()))?;
    for p in [&absolute, &resolved] {
        for step in p.ancestors() {
            let meta = std::fs::symlink_metadata(step)
                .map_err(|e| format!("cannot inspect {}: {e}", step.display()))?;
            if meta.uid() != 0 {
                return Err(format!("{} is owned by uid {}", step.display(), meta.uid()));
            }
            let symlink = meta.file_type().is_symlink();
            let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
            if !symlink && !sticky_dir && meta.mode() & 0o022 != 0 {
                return Err(format!(
                    "{} is writable by {} (mode {:04o})",
                    step.display(),
                    if meta.mode() & 0o002 != 0 {
                        "others"
                    } else {
                        "its group"
                    },
                    meta.mode() & 0o7777
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_file_others_can_write_is_not_trusted() {
        if !nix::unistd::Uid::effective().is_root() {
            return; // ownership by root is the point; needs root to set up
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = dir.path().join("m.yaml");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        // The temp dir's parents (/tmp: sticky) are fine; the file is root's.
        assert_eq!(trusted(&f), Ok(()));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert!(trusted(&f).unwrap_err().contains("writable by its group"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(trusted(&f).unwrap_err().contains("owned by uid 65534"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        assert!(trusted(&f).unwrap_err().contains("writable by others"));
    }
}
