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
//!
//! Root also reads nothing for the runner that the runner could not read itself: the manifest
//! and its template files must be readable by the invoking user (checked by opening them as
//! that user, before anything else looks at them, so no message says more about a file the
//! user cannot read), and a file the user names (a `ci_variable_file:` variable, the step
//! summary) is opened as that user ([`invoker`]). Variables naming files that a library would
//! read as root (the AWS SDK's config files, TLS roots) are refused.

mod invoker;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use invoker::Denied;
pub use invoker::{HELPER_ARG, Invoker, become_user, helper_main};

/// Variables that make the AWS SDK read a file as root, by name: under sudo they could only
/// come from the invoking user's environment (through `env_keep` or `sudo -E`), so they are
/// refused rather than followed. (`SSL_CERT_FILE`/`SSL_CERT_DIR` are left to sudo's env_reset:
/// hosts set them system-wide to root's own bundle; docs/src/sudo.md says env_keep never holds them.)
pub const FILE_VARIABLES: &[&str] = &[
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
];

/// A file the invoking user names is refused past this size (values are small; a guard).
pub const MAX_USER_FILE_BYTES: u64 = 1 << 20;

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
    #[error("refusing the {what} {} under sudo: {reason}", path.display())]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        /// "not readable by USER" or "not a regular file": nothing the user could not see.
        reason: String,
    },
    #[error(
        "refusing `{variable}` under sudo (invoked by {user}): root would read the file it names"
    )]
    FileVariable {
        variable: &'static str,
        user: String,
    },
    #[error("cannot act as the invoking user {user} (sudo): {reason}")]
    Invoker { user: String, reason: String },
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
            SudoError::Unreadable { .. } => {
                "under sudo, root reads only what the invoking user may read: install the manifest and its template files root-owned, mode 0644, in directories the user may enter".into()
            }
            SudoError::FileVariable { .. } => format!(
                "remove it from the sudoers rule's env_keep (and do not use `sudo -E`): docs/src/sudo.md lists what env_keep may hold ({SUDOERS_EXAMPLE})"
            ),
            SudoError::Invoker { .. } => {
                "run credfile through sudo itself, which sets SUDO_USER, SUDO_UID and SUDO_GID".into()
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

/// The invoking user with the ids to act as them, under sudo; `None` otherwise.
pub fn invoker() -> Result<Option<Invoker>, SudoError> {
    let Some(user) = invoked_by() else {
        return Ok(None);
    };
    Invoker::from_env(user.clone())
        .map(Some)
        .map_err(|reason| SudoError::Invoker { user, reason })
}

/// Before a manifest is read, in every command that reads one: under sudo, no variable may make
/// root read a file the caller names, no flag may move the writes elsewhere, the invoking user
/// must be able to read the manifest, and the manifest must be root's alone. `overrides`:
/// (flag, given) pairs of the command.
pub fn check_invocation(
    manifest: &Path,
    overrides: &[(&'static str, bool)],
) -> Result<(), SudoError> {
    let Some(invoker) = invoker()? else {
        return Ok(());
    };
    let user = invoker.name.clone();
    if let Some(variable) = FILE_VARIABLES
        .iter()
        .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
    {
        return Err(SudoError::FileVariable { variable, user });
    }
    if let Some((flag, _)) = overrides.iter().find(|(_, given)| *given) {
        return Err(SudoError::Override { flag, user });
    }
    // First: until the user is known to be able to read it, nothing about the file is said.
    readable_by(&invoker, manifest).map_err(|reason| SudoError::Unreadable {
        what: "manifest",
        path: manifest.to_path_buf(),
        reason,
    })?;
    trusted(manifest).map_err(|reason| SudoError::UntrustedManifest {
        path: manifest.to_path_buf(),
        user,
        reason,
    })
}

/// `Err(reason)` unless `user` can open `path` for reading (following links, as they would)
/// and it is a regular file. The reason says no more than the user could find out.
fn readable_by(user: &Invoker, path: &Path) -> Result<(), String> {
    user.probe(path).map_err(|e| match e {
        Denied::NotRegular => "it is not a regular file".into(),
        Denied::Helper(reason) => format!("cannot check it as {}: {reason}", user.name),
        Denied::Errno(_) | Denied::TooLarge => format!("it is not readable by {}", user.name),
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

/// Under sudo, why `path` (a template file) is not safe to read as root (the invoking user
/// cannot read it, or it is not root's alone); `None` otherwise.
pub fn untrusted_file(path: &Path) -> Option<String> {
    let invoker = match invoker() {
        Ok(i) => i?,
        Err(e) => return Some(e.to_string()),
    };
    readable_by(&invoker, path)
        .and_then(|()| trusted(path))
        .err()
}

/// The manifest's files as sudo allows them: a template file is read only when the invoking
/// user can read it and root alone can change it (it decides what root writes); outside sudo,
/// plainly.
pub struct Fence;

impl crate::manifest::Files for Fence {
    fn read_text(&self, path: &Path) -> Result<String, crate::manifest::Refused> {
        if let Some(reason) = untrusted_file(path) {
            return Err(crate::manifest::Refused {
                message: format!(
                    "refusing template file {} under sudo: {reason}",
                    path.display()
                ),
                hint: "install template files root-owned and not writable by others, beside the root-owned manifest",
            });
        }
        crate::manifest::PlainFiles.read_text(path)
    }
}

/// Why a file the invoking user named could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UserFileError {
    #[error("{0}")]
    Open(std::io::Error),
    #[error("it is a symbolic link (under sudo, links are not followed in paths the caller gives)")]
    Symlink,
    #[error("it is not a regular file")]
    NotRegular,
    #[error("it is larger than 1 MiB")]
    TooLarge,
    #[error("{0}")]
    Sudo(#[from] SudoError),
    #[error("{0}")]
    Helper(String),
}

/// Reads a file whose path the caller gave (an environment variable, a flag): a regular file
/// of at most [`MAX_USER_FILE_BYTES`], opened without blocking (a FIFO is refused, not waited
/// on). Under sudo it is opened as the invoking user and a final symlink is not followed, so
/// root reads nothing the user could not, and errors are the user's own.
pub fn read_user_file(path: &Path) -> Result<Vec<u8>, UserFileError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(user) = invoker()? {
        return user.read(path, MAX_USER_FILE_BYTES).map_err(|e| match e {
            Denied::Errno(nix::errno::Errno::ELOOP) => UserFileError::Symlink,
            Denied::Errno(errno) => UserFileError::Open(std::io::Error::from(errno)),
            Denied::NotRegular => UserFileError::NotRegular,
            Denied::TooLarge => UserFileError::TooLarge,
            Denied::Helper(reason) => UserFileError::Helper(reason),
        });
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(UserFileError::Open)?;
    if !file.metadata().map_err(UserFileError::Open)?.is_file() {
        return Err(UserFileError::NotRegular);
    }
    let mut bytes = Vec::new();
    file.take(MAX_USER_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(UserFileError::Open)?;
    if bytes.len() as u64 > MAX_USER_FILE_BYTES {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(UserFileError::TooLarge);
    }
    Ok(bytes)
}

/// Appends `bytes` to a file the caller named (GITHUB_STEP_SUMMARY), created when absent.
/// Under sudo as the invoking user: a regular file, no final link followed.
pub fn append_user_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let Some(user) = invoker().map_err(std::io::Error::other)? else {
        return std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes));
    };
    user.append(path, bytes).map_err(|e| match e {
        Denied::Errno(errno) => std::io::Error::from(errno),
        Denied::NotRegular => std::io::Error::other("not a regular file"),
        Denied::TooLarge => std::io::Error::other("too large"),
        Denied::Helper(reason) => std::io::Error::other(reason),
    })
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
