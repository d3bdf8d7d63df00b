//! The seam to `systemd-creds`, the one outside program `deliver: systemd-creds` runs
//! (docs/src/systemd-creds.md).
//!
//! A value crosses to the child on a pipe (its stdin), never in argv, the environment or a file;
//! what comes back is read from a pipe into a buffer that is zeroized when dropped. The child runs
//! with credfile's environment, so `SYSTEMD_CREDENTIAL_SECRET` and the TPM settings apply.
//! Encryption output goes to credfile (stdout), which stages it like any file: the set switches
//! with the generation machinery (docs/src/layouts.md), never file by file behind its back.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use zeroize::Zeroizing;

use crate::terminal::Escaped;

/// The program, found in `PATH`.
const PROGRAM: &str = "systemd-creds";

/// `systemd-creds` and `LoadCredentialEncrypted=` first shipped in systemd 250; every option
/// credfile passes (`--name`, `--with-key=auto|host|tpm2|host+tpm2`, `--not-after`) is there
/// since. (`--tpm2-public-key` needs 252 and user-scoped credentials 256; credfile uses neither.)
pub const MIN_VERSION: u32 = 250;

/// How long one `systemd-creds` call may take when the command line says nothing
/// (`--call-timeout`'s default): a TPM2 answers in well under a second, so a call still running
/// after this is stuck, and the run fails rather than hang (docs/src/systemd-creds.md).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The most `systemd-creds` may write on stderr that credfile keeps (for a message).
const MAX_STDERR: u64 = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error(
        "`deliver: systemd-creds`, but systemd-creds is not installed here (not found in PATH)"
    )]
    Missing,
    #[error(
        "`deliver: systemd-creds` needs systemd-creds {need} or later (LoadCredentialEncrypted= and systemd-creds came with systemd {need}); this host has {found}"
    )]
    TooOld { found: u32, need: u32 },
    #[error(
        "`systemd-creds --version` did not say which version it is: `{}`",
        Escaped(output)
    )]
    NoVersion { output: String },
    #[error("cannot run systemd-creds: {reason}")]
    Run { reason: String },
    #[error(
        "systemd-creds could not encrypt credential `{name}`: {}",
        Escaped(stderr)
    )]
    Encrypt { name: String, stderr: String },
    /// The credential did not decrypt under its name (another name, another key, expired,
    /// damaged): for comparisons this means "differs".
    #[error("credential `{name}` does not decrypt: {}", Escaped(stderr))]
    Decrypt { name: String, stderr: String },
    /// The child did not finish in time; it (and anything it started) was killed.
    #[error("{call} did not finish within {seconds} s and was stopped", call = call.describe())]
    TimedOut { call: Call, seconds: u64 },
}

/// Which `systemd-creds` call a [`CredsError::TimedOut`] was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Version,
    Encrypt { name: String },
    Decrypt { name: String },
}

impl Call {
    fn describe(&self) -> String {
        match self {
            Call::Version => "`systemd-creds --version`".into(),
            Call::Encrypt { name } => {
                format!("systemd-creds sealing credential `{}`", Escaped(name))
            }
            Call::Decrypt { name } => {
                format!("systemd-creds opening credential `{}`", Escaped(name))
            }
        }
    }
}

impl CredsError {
    pub fn hint(&self) -> String {
        match self {
            CredsError::Missing => "install systemd (Debian and Ubuntu: the `systemd` package; systemd-creds runs without systemd as PID 1), or remove `deliver: systemd-creds`; nothing was fetched".into(),
            CredsError::TooOld { .. } | CredsError::NoVersion { .. } => "encrypted credentials need systemd 250 or later on the host that consumes them; upgrade systemd, or deliver plaintext files (remove `deliver: systemd-creds`); nothing was fetched".into(),
            CredsError::Run { .. } => "check that systemd-creds in PATH is executable by credfile's user".into(),
            CredsError::Encrypt { .. } => "systemd-creds needs its key: the host key (/var/lib/systemd/credential.secret, or SYSTEMD_CREDENTIAL_SECRET; `systemd-creds setup` creates it) or a TPM2 for `credential_key: tpm2`; nothing was published".into(),
            CredsError::Decrypt { .. } => "the credential was sealed with another key or name, has expired, or was damaged; apply writes it again".into(),
            CredsError::TimedOut { .. } => "systemd-creds hung: usually a TPM2 that does not answer (check `systemd-creds has-tpm2`, or seal with `credential_key: host`) or a stuck key file; `--call-timeout` sets the limit; nothing was published, the files are as they were".into(),
        }
    }
}

/// The version `systemd-creds --version` reports (its first line: `systemd 252 (252.38-1)`).
pub fn version(timeout: Duration) -> Result<u32, CredsError> {
    let mut cmd = Command::new(PROGRAM);
    cmd.arg("--version");
    let (_, out, _) = pipe(cmd, b"", 64 * 1024, Call::Version, timeout)?;
    let text = String::from_utf8_lossy(&out);
    let first = text.lines().next().unwrap_or("");
    first
        .strip_prefix("systemd ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| CredsError::NoVersion {
            output: first.chars().take(200).collect(),
        })
}

/// Refuses a host without systemd-creds, or with one older than [`MIN_VERSION`]. Runs in
/// preflight, before anything is fetched.
pub fn check(timeout: Duration) -> Result<u32, CredsError> {
    let found = version(timeout)?;
    if found < MIN_VERSION {
        return Err(CredsError::TooOld {
            found,
            need: MIN_VERSION,
        });
    }
    Ok(found)
}

/// `systemd-creds encrypt --name=NAME --with-key=KEY [--not-after=T] - -`: the value on stdin,
/// the credential (not secret: sealed) from stdout. At most `timeout`.
pub fn encrypt(
    name: &str,
    key: &str,
    not_after: Option<&str>,
    value: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, CredsError> {
    let mut cmd = Command::new(PROGRAM);
    cmd.arg("encrypt")
        .arg(format!("--name={name}"))
        .arg(format!("--with-key={key}"));
    if let Some(t) = not_after {
        cmd.arg(format!("--not-after={t}"));
    }
    cmd.args(["-", "-"]);
    // Base64 of the value plus a header, and a TPM2's sealed blobs.
    let cap = value.len() * 2 + 64 * 1024;
    let call = Call::Encrypt {
        name: name.to_string(),
    };
    let (ok, out, stderr) = pipe(cmd, value, cap, call, timeout)?;
    if !ok || out.is_empty() {
        return Err(CredsError::Encrypt {
            name: name.to_string(),
            stderr,
        });
    }
    Ok(out.to_vec())
}

/// `systemd-creds decrypt --name=NAME - -`: the credential on stdin, the value from stdout into
/// a zeroizing buffer, for a comparison in memory (nothing about the value is kept). At most
/// `timeout`.
pub fn decrypt(
    name: &str,
    credential: &[u8],
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>, CredsError> {
    let mut cmd = Command::new(PROGRAM);
    cmd.arg("decrypt")
        .arg(format!("--name={name}"))
        .args(["-", "-"]);
    // A value is never longer than the credential that seals it.
    let call = Call::Decrypt {
        name: name.to_string(),
    };
    let (ok, out, stderr) = pipe(cmd, credential, credential.len(), call, timeout)?;
    if !ok {
        return Err(CredsError::Decrypt {
            name: name.to_string(),
            stderr,
        });
    }
    Ok(out)
}

fn spawn_error(e: io::Error) -> CredsError {
    if e.kind() == io::ErrorKind::NotFound {
        CredsError::Missing
    } else {
        CredsError::Run {
            reason: e.to_string(),
        }
    }
}

/// Runs `cmd` with `input` on its stdin. Returns whether it succeeded, at most `cap` bytes of
/// its stdout (in a buffer allocated once, so no copy of a value is left behind by a regrowth)
/// and the last line of its stderr. The child gets a process group of its own; after `timeout`
/// the group is killed (a stuck TPM2 call, a wrapper's children), so its pipes close and the
/// readers end, and the call fails as [`CredsError::TimedOut`].
fn pipe(
    mut cmd: Command,
    input: &[u8],
    cap: usize,
    call: Call,
    timeout: Duration,
) -> Result<(bool, Zeroizing<Vec<u8>>, String), CredsError> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (status, out, err) = std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(mut w) = stdin.take() {
                // A child that exits early closes the pipe (EPIPE): its status says why.
                let _ = w.write_all(input);
            }
        });
        let err = s.spawn(move || {
            let mut text = Vec::new();
            if let Some(r) = stderr.take() {
                let _ = r.take(MAX_STDERR).read_to_end(&mut text);
            }
            text
        });
        let out = s.spawn(move || match stdout.take() {
            Some(r) => read_bounded(r, cap),
            None => Ok(Zeroizing::new(Vec::new())),
        });
        let status = wait_bounded(&mut child, timeout);
        let out = out
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reader failed")));
        (status, out, err.join().unwrap_or_default())
    });
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => {
            tracing::warn!(call = %call.describe(), seconds = timeout.as_secs(), "systemd-creds timed out and was killed");
            return Err(CredsError::TimedOut {
                call,
                seconds: timeout.as_secs(),
            });
        }
        Err(e) => {
            return Err(CredsError::Run {
                reason: e.to_string(),
            });
        }
    };
    let out = out.map_err(|e| CredsError::Run {
        reason: format!("reading its output: {e}"),
    })?;
    let text = String::from_utf8_lossy(&err);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string();
    tracing::debug!(stderr = %Escaped(&text), "systemd-creds said");
    Ok((status.success(), out, last))
}

/// Waits for `child` at most `timeout`; then kills its process group and reaps it (`None`).
/// The group is killed only while the child is unreaped, so its id cannot have been reused.
fn wait_bounded(
    child: &mut std::process::Child,
    timeout: Duration,
) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            let group = Pid::from_raw(child.id() as i32);
            let _ = killpg(group, Signal::SIGKILL);
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Reads all of `r` into one zeroizing buffer of `cap + 1` bytes; more than `cap` is an error.
fn read_bounded(mut r: impl Read, cap: usize) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; cap + 1]);
    let mut n = 0;
    loop {
        if n == buf.len() {
            return Err(io::Error::other("more output than expected"));
        }
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Why no drop-in can be printed.
#[derive(Debug, thiserror::Error)]
pub enum DropinError {
    #[error(
        "environment `{env}` does not set `deliver: systemd-creds`: its files are plaintext, not credentials"
    )]
    NotSealed { env: String },
    #[error("`{}` is not a systemd unit name", Escaped(unit))]
    BadUnit { unit: String },
    #[error(
        "root {} holds characters a unit file would read differently",
        Escaped(root)
    )]
    BadRoot { root: String },
}

impl DropinError {
    pub fn hint(&self) -> String {
        match self {
            DropinError::NotSealed { .. } => "add `deliver: systemd-creds` to the environment (docs: systemd credentials), or use `LoadCredential=` for plaintext files".into(),
            DropinError::BadUnit { .. } => "give the unit's name, such as `payments.service` (letters, digits and `:_.@-`; without a suffix `.service` is assumed)".into(),
            DropinError::BadRoot { .. } => "use a root of letters, digits and `/._@+-`, or the default /etc/credstore.encrypted".into(),
        }
    }
}

/// The unit name, with `.service` when it has no type suffix.
fn unit_name(unit: &str) -> Result<String, DropinError> {
    let ok = !unit.is_empty()
        && unit.len() <= 250
        && !unit.starts_with('.')
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":_.\\@-".contains(&b))
        && !unit.contains('\\');
    if !ok {
        return Err(DropinError::BadUnit {
            unit: unit.to_string(),
        });
    }
    Ok(if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    })
}

/// The drop-in that gives `unit` the environment's credentials: one `LoadCredentialEncrypted=`
/// line per file (docs/src/systemd-creds.md). Under the default root the name alone (systemd
/// searches /etc/credstore.encrypted); elsewhere `NAME:PATH`. Names were checked by validation.
pub fn dropin(plan: &crate::manifest::Plan, unit: &str) -> Result<String, DropinError> {
    use crate::manifest::{CREDSTORE_ENCRYPTED, Delivery};
    let Delivery::SystemdCreds { .. } = plan.delivery else {
        return Err(DropinError::NotSealed {
            env: plan.env.clone(),
        });
    };
    let unit = unit_name(unit)?;
    let root = plan.root.to_string_lossy();
    if !root
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._@+-".contains(&b))
    {
        return Err(DropinError::BadRoot {
            root: root.into_owned(),
        });
    }
    let default_root = plan.root == std::path::Path::new(CREDSTORE_ENCRYPTED);
    let mut out = format!(
        "# /etc/systemd/system/{unit}.d/credfile-{env}.conf\n\
         # From `credfile systemd-dropin --env {env} --unit {unit}` (app {app}).\n\
         # `credfile apply` seals the credentials; {unit} reads each at $CREDENTIALS_DIRECTORY/NAME.\n\
         # Restart it when they change: on_change: [systemctl, restart, {unit}]\n\
         [Service]\n",
        env = plan.env,
        app = plan.app,
    );
    for f in &plan.files {
        let name = f.path.to_string_lossy();
        if default_root {
            out.push_str(&format!("LoadCredentialEncrypted={name}\n"));
        } else {
            let path = plan.root.join(&f.path);
            out.push_str(&format!(
                "LoadCredentialEncrypted={name}:{}\n",
                path.display()
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("payments").unwrap(), "payments.service");
        assert_eq!(unit_name("web@1.service").unwrap(), "web@1.service");
        for bad in ["", "a b", "a/b", ".x", "a\\x2d", "a\nb", "a%i"] {
            assert!(unit_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn read_bounded_refuses_more_than_its_cap() {
        assert_eq!(&read_bounded(&b"abc"[..], 3).unwrap()[..], b"abc");
        assert!(read_bounded(&b"abcd"[..], 3).is_err());
    }
}
