//! Throwaway local users for the tests that need a second, unprivileged identity (they need
//! root: `useradd`; CI runs as root).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// A local user with a group of its own (`useradd -M -U`, no login shell), removed on drop.
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl LocalUser {
    /// A new user named `PREFIX` and 8 random hex digits.
    pub fn add(prefix: &str) -> LocalUser {
        let name = format!("{prefix}{}", super::random_hex(4));
        let ok = Command::new("useradd")
            .args(["-M", "-U", "-s", "/usr/sbin/nologin", &name])
            .status()
            .expect("useradd")
            .success();
        assert!(ok, "useradd {name}");
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().expect("id");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("id {flag} {name}"))
        };
        let (uid, gid) = (id("-u"), id("-g"));
        LocalUser { name, uid, gid }
    }

    /// `program ARGS` run as this user (uid and gid; std drops root's supplementary groups when
    /// it sets the uid), with an empty environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.uid(self.uid).gid(self.gid).env_clear();
        cmd
    }

    /// What the user reads at `path`, or None when they cannot.
    pub fn reads(&self, path: &Path) -> Option<String> {
        let out = self.command("/bin/cat").arg(path).output().expect("cat");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}
