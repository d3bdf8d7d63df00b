//! One moto server per test process, or the shared one named by
//! `CREDFILE_TEST_ENDPOINT` (scripts/test.sh starts it and exports it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const HINT: &str = "run scripts/test.sh (it installs moto into .venv)";

/// Endpoint URL of the moto server for this test process, e.g.
/// `http://127.0.0.1:40123` (no trailing slash).
///
/// Uses `CREDFILE_TEST_ENDPOINT` when set; otherwise starts
/// `<repo>/.venv/bin/moto_server` once on a free loopback port. That server gets
/// SIGTERM when the test process exits (PR_SET_PDEATHSIG, set from a thread
/// that lives as long as the process).
///
/// The server is shared by every test in the process (and, with
/// `CREDFILE_TEST_ENDPOINT`, by every test binary): use [`super::unique_prefix`]
/// for secret names and never reset moto's state.
pub fn moto_endpoint() -> String {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            if let Some(ep) = std::env::var("CREDFILE_TEST_ENDPOINT")
                .ok()
                .filter(|e| !e.trim().is_empty())
            {
                let ep = ep.trim().trim_end_matches('/').to_string();
                let addr = ep.strip_prefix("http://").unwrap_or_else(|| {
                    panic!("CREDFILE_TEST_ENDPOINT={ep:?} must be http://127.0.0.1:PORT")
                });
                if let Err(e) = wait_until_answers(addr, Duration::from_secs(10)) {
                    panic!("moto at CREDFILE_TEST_ENDPOINT={ep} does not answer: {e}; {HINT}");
                }
                return ep;
            }
            start_moto()
        })
        .clone()
}

/// The venv python (for tests that need a helper script): `CREDFILE_TEST_PYTHON`
/// or `<repo>/.venv/bin/python`.
pub fn test_python() -> PathBuf {
    match std::env::var_os("CREDFILE_TEST_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

fn start_moto() -> String {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if !bin.is_file() {
        panic!(
            "CREDFILE_TEST_ENDPOINT is not set and {} does not exist; {HINT}",
            bin.display()
        );
    }
    // PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, and
    // each test runs on its own short-lived thread: fork from a keeper thread
    // that parks forever, so the signal comes only when the process dies.
    let (tx, rx) = mpsc::channel::<Result<(u32, mpsc::Receiver<u16>), String>>();
    thread::Builder::new()
        .name("moto-keeper".into())
        .spawn(move || {
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
            unsafe {
                let parent = std::process::id();
                cmd.pre_exec(move || {
                    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                        .map_err(std::io::Error::from)?;
                    // The parent died before prctl took effect: do not linger.
                    if nix::unistd::getppid().as_raw() as u32 != parent {
                        return Err(std::io::Error::other("parent exited"));
                    }
                    Ok(())
                });
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(format!("spawn {}: {e}", bin.display())));
                    return;
                }
            };
            let (port_tx, port_rx) = mpsc::channel::<u16>();
            let stdout = child.stdout.take().expect("piped stdout");
            let stderr = child.stderr.take().expect("piped stderr");
            spawn_log_drain(stdout, port_tx.clone());
            spawn_log_drain(stderr, port_tx);
            let _ = tx.send(Ok((child.id(), port_rx)));
            // Keep `child` (and this thread) alive for the life of the process.
            loop {
                thread::park();
            }
        })
        .expect("spawn moto keeper thread");

    let (pid, port_rx) = match rx.recv() {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("could not start moto: {e}; {HINT}"),
        Err(_) => panic!("moto keeper thread died; {HINT}"),
    };
    let port = match port_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(p) => p,
        Err(_) => panic!(
            "moto_server (pid {pid}) did not report its port within 30s; log:\n{}\n{HINT}",
            log_tail()
        ),
    };
    let addr = format!("127.0.0.1:{port}");
    if let Err(e) = wait_until_answers(&addr, Duration::from_secs(30)) {
        panic!(
            "moto_server on {addr} does not answer: {e}; log:\n{}",
            log_tail()
        );
    }
    format!("http://{addr}")
}

fn log_lines() -> &'static Mutex<Vec<String>> {
    static LOG: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LOG.get_or_init(|| Mutex::new(Vec::new()))
}

fn log_tail() -> String {
    log_lines()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .join("\n")
}

/// Read moto's output forever (so its pipe never fills), report the port from
/// werkzeug's "Running on http://127.0.0.1:PORT" line, keep the first lines.
fn spawn_log_drain(stream: impl Read + Send + 'static, port_tx: mpsc::Sender<u16>) {
    thread::Builder::new()
        .name("moto-log".into())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let text = String::from_utf8_lossy(&line);
                {
                    let mut log = log_lines().lock().unwrap_or_else(|e| e.into_inner());
                    if log.len() < 50 {
                        log.push(text.trim_end().to_string());
                    }
                }
                if let Some(rest) = text.split("Running on http://127.0.0.1:").nth(1) {
                    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                    if let Ok(port) = digits.parse::<u16>() {
                        let _ = port_tx.send(port);
                    }
                }
            }
        })
        .expect("spawn moto log thread");
}

/// Poll `host:port` with a plain HTTP request until it answers with any status.
fn wait_until_answers(addr: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut last_err;
    loop {
        match probe(addr) {
            Ok(()) => return Ok(()),
            Err(e) => last_err = e,
        }
        if Instant::now() >= deadline {
            return Err(last_err);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn probe(addr: &str) -> Result<(), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "GET /moto-api/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).map_err(|e| format!("read: {e}"))?;
    if head.starts_with(b"HTTP/1.") {
        Ok(())
    } else {
        Err("not an HTTP response".into())
    }
}

/// A moto server of one's own, for a test that changes server-wide settings (IAM enforcement
/// through `/moto-api/reset-auth`) which would break every other test on the shared server.
/// Stopped (SIGKILL, then reaped) when dropped.
pub struct PrivateMoto {
    child: std::process::Child,
    endpoint: String,
}

impl PrivateMoto {
    /// Starts `moto_server` from the test venv (next to [`test_python`]) on a free port.
    pub fn start() -> PrivateMoto {
        let python = test_python();
        let bin = python.with_file_name("moto_server");
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: only async-signal-safe calls (prctl) between fork and exec. The signal is a
        // backstop for a test process that dies without unwinding; Drop is the normal path.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}; {HINT}", bin.display()));
        let (port_tx, port_rx) = mpsc::channel::<u16>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for stream in [Box::new(stdout) as Box<dyn Read + Send>, Box::new(stderr)] {
            let tx = port_tx.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if let Some(rest) = line.split("Running on http://127.0.0.1:").nth(1) {
                        let digits: String =
                            rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                        if let Ok(port) = digits.parse::<u16>() {
                            let _ = tx.send(port);
                        }
                    }
                    line.clear();
                }
            });
        }
        let port = match port_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("private moto_server did not report its port within 30s; {HINT}");
            }
        };
        let addr = format!("127.0.0.1:{port}");
        if let Err(e) = wait_until_answers(&addr, Duration::from_secs(30)) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("private moto_server on {addr} does not answer: {e}");
        }
        PrivateMoto {
            child,
            endpoint: format!("http://{addr}"),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
