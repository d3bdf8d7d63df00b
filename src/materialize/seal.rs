//! What a file's bytes are on disk, and whether a file on disk holds a value: the plaintext, or
//! with `deliver: systemd-creds` a credential sealed by `systemd-creds` (docs/src/systemd-creds.md).
//!
//! Both layouts and `verify` go through here, so a credential set switches with the same
//! generation flip (or staged renames) as plaintext files, and only the bytes differ: a changed
//! file's sealed credential is what gets staged. A credential is compared by decrypting it in
//! memory (the value never touches a disk, and no hash of it is kept); an unchanged one is not
//! written again.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat};
use zeroize::Zeroizing;

use super::{Checked, Destination, WriteError, errno_of, state};
use crate::manifest::Delivery;
use crate::systemd_creds::{self, CredsError};

/// The largest credential file credfile reads to compare (a value is at most 1 MiB for
/// systemd; sealed, base64 and a TPM2's blobs make it larger).
const MAX_CREDENTIAL_FILE: u64 = 4 << 20;

/// How this run puts values on disk and compares them with what is there: plaintext or sealed,
/// whether what is on disk was sealed the same way, and as whom credfile runs.
pub(super) struct Contents<'a> {
    delivery: &'a Delivery,
    pub euid: u32,
    /// The state file records other sealing settings (key, `not_after`): every credential is
    /// sealed again, even when it still decrypts to the same value.
    reseal: bool,
    /// How long one systemd-creds call may take (`--call-timeout`).
    timeout: std::time::Duration,
}

impl<'a> Contents<'a> {
    pub fn new(checked: &'a Checked, old: Option<&state::State>) -> Contents<'a> {
        let reseal = matches!(checked.delivery, Delivery::SystemdCreds { .. })
            && old.is_some_and(|s| s.sealing != label(&checked.delivery));
        Contents {
            delivery: &checked.delivery,
            euid: checked.euid,
            reseal,
            timeout: checked.creds_timeout,
        }
    }

    /// The bytes that go on disk for `value` at `dest`.
    pub fn sealed<'v>(
        &self,
        dest: &Destination,
        value: &'v [u8],
    ) -> Result<Cow<'v, [u8]>, WriteError> {
        match self.delivery {
            Delivery::Plain => Ok(Cow::Borrowed(value)),
            Delivery::SystemdCreds { key, not_after } => Ok(Cow::Owned(systemd_creds::encrypt(
                &credential_name(dest),
                key.as_str(),
                not_after.as_deref(),
                value,
                self.timeout,
            )?)),
        }
    }

    /// Whether the regular file `name` in `dir` (as `st` saw it) holds `value`. A file that was
    /// replaced since `st`, or a credential that does not decrypt under its name, does not.
    pub fn holds(
        &self,
        dir: &OwnedFd,
        name: &Path,
        full: &Path,
        st: &FileStat,
        dest: &Destination,
        value: &[u8],
    ) -> Result<bool, WriteError> {
        let limit = match self.delivery {
            Delivery::Plain if st.st_size as u64 != value.len() as u64 => return Ok(false),
            Delivery::Plain => value.len() as u64,
            Delivery::SystemdCreds { .. } if self.reseal => return Ok(false),
            Delivery::SystemdCreds { .. } => MAX_CREDENTIAL_FILE,
        };
        let io = |op, errno| WriteError::Io {
            path: full.to_path_buf(),
            op,
            errno,
        };
        let fd = openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io("open", e))?;
        let now = fstat(&fd).map_err(|e| io("fstat", e))?;
        if now.st_ino != st.st_ino || now.st_dev != st.st_dev {
            return Ok(false);
        }
        let mut current = Zeroizing::new(Vec::with_capacity(
            (now.st_size.max(0) as u64).min(limit) as usize + 1,
        ));
        File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut current)
            .map_err(|e| io("read", errno_of(&e)))?;
        match self.delivery {
            Delivery::Plain => Ok(current.as_slice() == value),
            Delivery::SystemdCreds { .. } if current.len() as u64 > limit => Ok(false),
            Delivery::SystemdCreds { .. } => {
                match systemd_creds::decrypt(&credential_name(dest), &current, self.timeout) {
                    Ok(plain) => Ok(plain.as_slice() == value),
                    Err(CredsError::Decrypt { stderr, .. }) => {
                        tracing::info!(path = %full.display(), reason = %crate::terminal::Escaped(&stderr), "the credential does not decrypt under its name: it is sealed again");
                        Ok(false)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// A credential's name: its path relative to the root, one component (validation refuses
/// anything else under `deliver: systemd-creds`).
fn credential_name(dest: &Destination) -> String {
    dest.path.to_string_lossy().into_owned()
}

/// What the state file records about sealing: `None` for plaintext, else the settings that
/// change what a credential is without changing its value.
pub(super) fn label(delivery: &Delivery) -> Option<String> {
    match delivery {
        Delivery::Plain => None,
        Delivery::SystemdCreds { key, not_after } => Some(match not_after {
            Some(t) => format!("systemd-creds key={} not_after={t}", key.as_str()),
            None => format!("systemd-creds key={}", key.as_str()),
        }),
    }
}

/// Preflight for the delivery: with `deliver: systemd-creds`, systemd-creds must be here and
/// recent enough before anything is fetched; `--version` answers within `timeout`.
pub(super) fn check(delivery: &Delivery, timeout: std::time::Duration) -> Result<(), WriteError> {
    if let Delivery::SystemdCreds { .. } = delivery {
        let version = systemd_creds::check(timeout)?;
        tracing::debug!(version, "systemd-creds is usable");
    }
    Ok(())
}
