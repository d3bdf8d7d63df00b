//! Runs the compiled credfile binary in a hermetic environment and checks
//! everything it prints for canaries.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::canary::{Canaries, assert_no_leak};

/// The environment every process that talks to moto gets: endpoint, static
/// test keys, us-east-1, IMDS off, config/credentials files that do not exist
/// (inside `home`), `HOME=home`, and the caller's PATH. Nothing else.
pub fn hermetic_env(endpoint: &str, home: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_string(), v.to_string());
    };
    set("AWS_ENDPOINT_URL", endpoint);
    set("AWS_ACCESS_KEY_ID", "testing");
    set("AWS_SECRET_ACCESS_KEY", "testing");
    set("AWS_REGION", "us-east-1");
    set("AWS_EC2_METADATA_DISABLED", "true");
    // Empty, so no profile on this machine is read and aws-config has nothing to warn about.
    set("AWS_CONFIG_FILE", "/dev/null");
    set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    set("HOME", &home.to_string_lossy());
    let tmp = home.join("tmp");
    let _ = std::fs::create_dir_all(&tmp);
    set("TMPDIR", &tmp.to_string_lossy());
    set(
        "PATH",
        &std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string()),
    );
    env
}

/// Result of one run. `status_code` is the exit code, or 128+signal when the
/// process was killed by a signal.
#[derive(Debug, Clone)]
pub struct Output {
    pub status_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status_code == 0
    }

    /// Assert the exit code, showing both streams on mismatch (they were
    /// already checked for canaries, so printing them is safe).
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.status_code, expected,
            "unexpected exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout parsed as JSON (for `--output json`).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A configured invocation of the binary. Builder methods take and return
/// `self`; `run` borrows, so one `Credfile` can run several commands sharing
/// the same HOME.
#[derive(Clone)]
pub struct Credfile {
    program: PathBuf,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    home: Arc<tempfile::TempDir>,
    canaries: Canaries,
    timeout: Duration,
    stdin: Option<Vec<u8>>,
    user: Option<(u32, u32)>,
    on_spawn: Option<Arc<dyn Fn(u32) + Send + Sync>>,
    default_signals: bool,
}

impl Credfile {
    /// The credfile binary with [`hermetic_env`] for `endpoint` (moto or a
    /// [`super::Proxy`]), HOME = a fresh temp dir that is also the default cwd,
    /// canaries = the global registry, timeout 120 s.
    pub fn new(endpoint: &str) -> Self {
        let home = Arc::new(
            tempfile::Builder::new()
                .prefix("credfile-home-")
                .tempdir()
                .expect("temp HOME"),
        );
        Credfile {
            program: PathBuf::from(env!("CARGO_BIN_EXE_credfile")),
            env: hermetic_env(endpoint, home.path()),
            cwd: None,
            home,
            canaries: Canaries::global(),
            timeout: Duration::from_secs(120),
            stdin: None,
            user: None,
            on_spawn: None,
            default_signals: false,
        }
    }

    /// Run another program with the same environment and checks (harness tests).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// `AWS_MAX_ATTEMPTS=1`: for runs where a failure is expected.
    pub fn fail_fast(self) -> Self {
        self.env("AWS_MAX_ATTEMPTS", "1")
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn canaries(mut self, canaries: Canaries) -> Self {
        self.canaries = canaries;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Bytes to feed on stdin (default: /dev/null).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Run as this uid and gid (the test must be root).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Called with the child's pid right after it starts, on the test's thread, while the child
    /// runs (to inspect /proc/<pid>); the output is collected afterwards as usual.
    pub fn on_spawn(mut self, f: impl Fn(u32) + Send + Sync + 'static) -> Self {
        self.on_spawn = Some(Arc::new(f));
        self
    }

    /// Start the child with SIGHUP, SIGINT and SIGTERM at their default handling (through
    /// `env --default-signal`, which execs it under the same pid): a suite started under `nohup`
    /// or as a background job of a script has some of them ignored, and an ignored signal stays
    /// ignored through every exec, so a test of forwarding them would test its launcher.
    pub fn default_signals(mut self) -> Self {
        self.default_signals = true;
        self
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn envs(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Run with `args`, wait (killing it after the timeout), check stdout and
    /// stderr for canaries, and return the output.
    #[track_caller]
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        // Names the run in messages; an argument holding a canary is redacted.
        let label = format!(
            "`{} {}`",
            self.program
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            args.iter()
                .map(|a| match self.canaries.find(a.as_encoded_bytes()) {
                    Some(_) => "<redacted>".into(),
                    None => a.to_string_lossy(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        );
        // A run as another user cannot exec the binary inside a checkout it cannot enter (root's
        // home is 0700): it gets a link to the same inode in a directory anyone can traverse.
        let reachable = (self.user.is_some()
            && self.program == Path::new(env!("CARGO_BIN_EXE_credfile")))
        .then(|| reachable_copy(&self.program));
        let program = reachable
            .as_ref()
            .map_or(self.program.clone(), |(_, p)| p.clone());
        let mut cmd = if self.default_signals {
            let mut env = Command::new("/usr/bin/env");
            env.arg("--default-signal=HUP,INT,TERM").arg(&program);
            env
        } else {
            Command::new(&program)
        };
        cmd.args(&args)
            .env_clear()
            .envs(&self.env)
            .current_dir(self.cwd.as_deref().unwrap_or(self.home.path()))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group, so a timeout kills any children too (they
            // would otherwise hold the output pipes open).
            .process_group(0);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        if let Some(f) = &self.on_spawn {
            f(child.id());
        }

        let feeder = self.stdin.clone().map(|data| {
            let mut pipe = child.stdin.take().expect("piped stdin");
            thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })
        });
        let mut out_pipe = child.stdout.take().expect("piped stdout");
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let out_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out_pipe.read_to_end(&mut buf);
            buf
        });
        let err_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf);
            buf
        });

        let deadline = Instant::now() + self.timeout;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait().expect("wait for child") {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    timed_out = true;
                    // nix's killpg needs a feature the crate does not enable;
                    // the shell's builtin kill does the same.
                    let _ = Command::new("/bin/sh")
                        .args(["-c", &format!("kill -9 -{}", child.id())])
                        .stderr(Stdio::null())
                        .status();
                    let _ = child.kill();
                    break child.wait().expect("wait after kill");
                }
                None => thread::sleep(Duration::from_millis(5)),
            }
        };
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let stdout = out_reader.join().expect("stdout reader");
        let stderr = err_reader.join().expect("stderr reader");

        // Always, before anything prints the output.
        assert_no_leak(&self.canaries, &stdout, &format!("stdout of {label}"));
        assert_no_leak(&self.canaries, &stderr, &format!("stderr of {label}"));
        // Nothing may be left in the run's HOME and TMPDIR (temp files, caches, logs).
        scan_tree(&self.canaries, self.home.path(), &label);

        let output = Output {
            status_code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        };
        if timed_out {
            panic!(
                "{label} did not finish within {:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.timeout, output.stdout, output.stderr
            );
        }
        output
    }
}

/// Fails if any file under `dir` (not following symlinks) holds a canary.
fn scan_tree(canaries: &Canaries, dir: &Path, label: &str) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file()
                && meta.len() < 4 << 20
                && let Ok(bytes) = std::fs::read(e.path())
            {
                assert_no_leak(
                    canaries,
                    &bytes,
                    &format!("{} after {label}", e.path().display()),
                );
            }
        }
    }
}

/// `program` hard-linked (copied across filesystems) into a fresh 0755 directory under the
/// system temp dir, for runs as another user; the directory goes when the guard drops.
fn reachable_copy(program: &Path) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("credfile-bin-")
        .tempdir_in(std::env::temp_dir())
        .expect("temp dir for the binary");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the binary's dir");
    let name = program.file_name().unwrap_or(OsStr::new("program"));
    let copy = dir.path().join(name);
    if std::fs::hard_link(program, &copy).is_err() {
        std::fs::copy(program, &copy)
            .unwrap_or_else(|e| panic!("copy {} for another user: {e}", program.display()));
    }
    (dir, copy)
}
