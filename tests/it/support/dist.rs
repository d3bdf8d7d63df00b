//! Shared by tests/it/release.rs, install.rs and action.rs: where scripts/dist.sh put the release, the
//! names of its artifacts, small process helpers, and a static file server on 127.0.0.1 that
//! stands in for the release host.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// dist/ of scripts/dist.sh, or None (the test then says why it did nothing).
pub fn dist() -> Option<PathBuf> {
    match std::env::var_os("CREDFILE_TEST_DIST_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            assert!(
                d.join("SHA256SUMS").is_file(),
                "CREDFILE_TEST_DIST_DIR={} has no SHA256SUMS: scripts/dist.sh did not finish",
                d.display()
            );
            Some(d)
        }
        None => {
            eprintln!(
                "skipped: CREDFILE_TEST_DIST_DIR is not set (scripts/test.sh runs scripts/dist.sh and sets it)"
            );
            None
        }
    }
}

pub fn archive_name() -> String {
    format!("credfile-{VERSION}-{TARGET}.tar.gz")
}

pub fn deb_name() -> String {
    format!("credfile_{VERSION}-1_amd64.deb")
}

pub fn rpm_name() -> String {
    format!("credfile-{VERSION}-1.x86_64.rpm")
}

#[track_caller]
pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("utf-8 output")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The tarball's binary, extracted once per call into `dir`.
pub fn extract_binary(dist: &Path, dir: &Path) -> PathBuf {
    run(Command::new("tar")
        .arg("-xzf")
        .arg(dist.join(archive_name()))
        .arg("-C")
        .arg(dir));
    dir.join(format!("credfile-{VERSION}-{TARGET}/credfile"))
}

pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

// --- a static file server on 127.0.0.1 ------------------------------------------------------

/// Serves the files of one directory (GET /NAME, no subdirectories) on 127.0.0.1, counting
/// requests, until dropped.
pub struct FileServer {
    port: u16,
    hits: Arc<AtomicUsize>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    pub fn start(dir: &Path) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (dir, h, l) = (dir.to_path_buf(), hits.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (dir, h, l) = (dir.clone(), h.clone(), l.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &dir, &h, &l);
                });
            }
        });
        FileServer { port, hits, log }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn serve(
    stream: TcpStream,
    dir: &Path,
    hits: &AtomicUsize,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let name = path.trim_start_matches('/');
    let file = (!name.is_empty() && !name.contains('/') && !name.starts_with('.'))
        .then(|| fs::read(dir.join(name)).ok())
        .flatten();
    let mut stream = stream;
    match file {
        Some(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        None => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
    }
    stream.flush()
}

/// A copy of dist/ that a bad case may then damage.
pub fn served_copy(dist: &Path) -> tempfile::TempDir {
    let d = tempdir("credfile-served-");
    for e in fs::read_dir(dist).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            fs::copy(e.path(), d.path().join(e.file_name())).unwrap();
        }
    }
    d
}

/// Every entry under `dir` with its mode, size, mtime and content hash: "left exactly as it was".
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, i64, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let m = fs::symlink_metadata(&d).unwrap();
        out.insert(
            d.clone(),
            (m.mode(), m.size(), m.mtime(), m.mtime_nsec(), String::new()),
        );
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let hash = sha256_hex(&fs::read(&p).unwrap_or_default());
                out.insert(p, (m.mode(), m.size(), m.mtime(), m.mtime_nsec(), hash));
            }
        }
    }
    out
}

/// The shells install.sh must work under, by absolute path (a test may narrow PATH).
/// busybox is optional only outside scripts/test.sh.
pub fn shells() -> Vec<Vec<String>> {
    let find = |name: &str| {
        ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.exists())
            .map(|p| p.display().to_string())
    };
    let mut shells = vec![vec![
        find("dash").expect("dash (scripts/test.sh installs it)"),
    ]];
    match find("busybox") {
        Some(b) => shells.push(vec![b, "sh".to_string()]),
        None => assert!(
            std::env::var_os("CREDFILE_TEST_DIST_DIR").is_none(),
            "busybox is missing: scripts/test.sh installs it"
        ),
    }
    shells
}

pub struct Install {
    pub code: i32,
    pub stderr: String,
}

pub fn install(shell: &[String], args: &[&str], path: Option<&str>) -> Install {
    install_stopped(shell, args, path, |_| {})
}

/// [`install`], with install.sh stopped before its first line: `before(pid)` runs while it is
/// stopped, knowing the PID the script's `$$` will be (a SIGSTOP before `exec` keeps it). An
/// attacker watching /proc knows it too; here it is known without a race.
pub fn install_stopped(
    shell: &[String],
    args: &[&str],
    path: Option<&str>,
    before: impl FnOnce(u32),
) -> Install {
    let home = tempdir("credfile-install-home-");
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "kill -STOP $$; exec \"$@\"", "sh"])
        .args(shell)
        .arg(repo().join("scripts/install.sh"))
        .args(args)
        .env_clear()
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .env(
            "PATH",
            path.map(str::to_string)
                .unwrap_or_else(|| std::env::var("PATH").unwrap()),
        );
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Stopped is state T in /proc/PID/stat (after the command name in parentheses).
    loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
        // Z: it exited before stopping (the wait below reports how).
        if matches!(state, Some("T") | Some("Z")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    before(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    Install {
        code: out.status.code().unwrap_or(128),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
