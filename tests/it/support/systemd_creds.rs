//! A `deliver: systemd-creds` case (docs/src/systemd-creds.md): Debian's real systemd-creds,
//! which seals and opens credentials without systemd as PID 1, a host key of the test's own
//! (`SYSTEMD_CREDENTIAL_SECRET` in a private directory), and a PATH shim named `systemd-creds`
//! that records the argv and environment of every child credfile starts, then execs the real
//! program.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Case, Output, canary_value};

pub const REAL: &str = "/usr/bin/systemd-creds";

/// One test: a case (moto, manifest, root), a host key, and a shim directory first in PATH.
pub struct World {
    pub case: Case,
    pub key: PathBuf,
    shim: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl World {
    pub fn new(name: &str) -> Option<World> {
        if !Path::new(REAL).exists() {
            eprintln!(
                "skipped: {REAL} is not installed (scripts/lib.sh credfile_ensure_systemd_creds)"
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("credfile-creds-")
            .tempdir()
            .unwrap();
        let key = dir.path().join("credential.secret");
        let setup = Command::new(REAL)
            .arg("setup")
            .env("SYSTEMD_CREDENTIAL_SECRET", &key)
            .output()
            .unwrap();
        assert!(setup.status.success(), "systemd-creds setup: {setup:?}");
        let shim = dir.path().join("bin");
        let log = dir.path().join("log");
        fs::create_dir_all(&shim).unwrap();
        fs::create_dir_all(&log).unwrap();
        write_script(
            &shim.join("systemd-creds"),
            &format!(
                "#!/bin/sh\n\
                 # Records this process's own argv and environment, then becomes the real one.\n\
                 tr '\\0' '\\n' < /proc/$$/cmdline > '{log}'/$$.argv\n\
                 tr '\\0' '\\n' < /proc/$$/environ > '{log}'/$$.env\n\
                 exec {REAL} \"$@\"\n",
                log = log.display()
            ),
        );
        Some(World {
            case: Case::new("creds", name),
            key,
            shim,
            log,
            _dir: dir,
        })
    }

    pub fn path_env(&self) -> String {
        path_with(&self.shim)
    }

    /// `credfile ARGS --env test` with the host key and the shim in PATH.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--env", "test"]);
        self.case
            .credfile()
            .env("SYSTEMD_CREDENTIAL_SECRET", self.key.to_string_lossy())
            .env("PATH", self.path_env())
            .run(all)
    }

    pub fn decrypt(&self, name: &str, file: &Path) -> std::process::Output {
        Command::new(REAL)
            .args(["decrypt", &format!("--name={name}")])
            .arg(file)
            .arg("-")
            .env("SYSTEMD_CREDENTIAL_SECRET", &self.key)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub fn encrypt(&self, name: &str, value: &str, out: &Path) {
        let mut child = Command::new(REAL)
            .args(["encrypt", &format!("--name={name}"), "--with-key=host", "-"])
            .arg(out)
            .env("SYSTEMD_CREDENTIAL_SECRET", &self.key)
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(value.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    }

    /// The recorded children: (argv, environment) of each.
    pub fn children(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.log).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "argv") {
                let argv = fs::read_to_string(&p).unwrap();
                let env = fs::read_to_string(p.with_extension("env")).unwrap();
                out.push((argv, env));
            }
        }
        out
    }
}

pub fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

impl World {
    /// `systemd-creds decrypt` as if it were `at` (`--timestamp`): whether the credential
    /// still opens then, i.e. which `not_after` it was sealed with.
    pub fn opens_at(&self, name: &str, file: &Path, at: &str) -> bool {
        Command::new(REAL)
            .args([
                "decrypt",
                &format!("--name={name}"),
                &format!("--timestamp={at}"),
            ])
            .arg(file)
            .arg("-")
            .env("SYSTEMD_CREDENTIAL_SECRET", &self.key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl World {
    /// A new canary at `secret/PREFIX/SHORT` upstream (a rotation): the value.
    pub fn rotate(&self, short: &str) -> String {
        let rotated = canary_value();
        self.case.seeder.canaries().add(&rotated);
        self.case
            .seeder
            .put_string(&self.case.name(short), &rotated);
        rotated
    }

    /// `file` opens as credential `name` to exactly `value`, and not under another name.
    #[track_caller]
    pub fn assert_opens_to(&self, name: &str, file: &Path, value: &str) {
        let out = self.decrypt(name, file);
        assert!(out.status.success(), "decrypt {name}: {out:?}");
        assert_eq!(out.stdout, value.as_bytes(), "{name}: not the exact bytes");
        let other = self.decrypt("another-name", file);
        assert!(
            !other.status.success(),
            "{name} decrypted under another name"
        );
    }

    /// A directory `name` of the case's own, for a stand-in `systemd-creds`.
    pub fn bin_dir(&self, name: &str) -> PathBuf {
        let dir = self.case.path(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `clean` with a foreign file at the root: only that file is left.
    #[track_caller]
    pub fn assert_clean_leaves_only_foreign(&self) {
        let root = self.case.root();
        fs::write(root.join("foreign.cred"), "not credfile's").unwrap();
        self.run(&["clean"]).assert_code(0);
        let left: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["foreign.cred".to_string()]);
    }
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}
