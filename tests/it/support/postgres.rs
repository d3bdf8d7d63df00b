//! A throwaway PostgreSQL server for the dynamic-credential tests: OpenBao's database engine
//! creates and drops real roles in it, and a test logs in with what credfile wrote.
//!
//! `initdb` into a `mktemp -d` directory, then `pg_ctl start` on a free 127.0.0.1 port with no
//! Unix socket; as root both run as the `postgres` user (initdb refuses root). Dropping the
//! value stops the server (`immediate`) and removes the directory, so each test owns its server
//! and two runs on one host never meet. `scripts/test.sh` installs Debian's package
//! (`credfile_ensure_postgresql` in scripts/lib.sh).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const HINT: &str = "run scripts/test.sh (it installs Debian's postgresql-15)";

/// One running server; stopped and removed on drop.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Who runs the server's programs: `Some((uid, gid))` of `postgres` when the tests run as
    /// root, `None` (ourselves) otherwise.
    run_as: Option<(u32, u32)>,
    admin_user: String,
    admin_password: String,
}

/// The directory holding initdb, pg_ctl and psql: `CREDFILE_TEST_PG_BIN`, else Debian's
/// `/usr/lib/postgresql/<major>/bin` (15 first).
fn pg_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CREDFILE_TEST_PG_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let fixed = Path::new("/usr/lib/postgresql/15/bin");
    if fixed.join("initdb").is_file() {
        return fixed.to_path_buf();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no PostgreSQL server binaries (initdb) found; {HINT}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

impl Postgres {
    /// Starts a new server and waits until it accepts connections.
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let run_as = if nix::unistd::geteuid().is_root() {
            let pw = nix::unistd::User::from_name("postgres")
                .expect("getpwnam postgres")
                .unwrap_or_else(|| panic!("no `postgres` user; {HINT}"));
            Some((pw.uid.as_raw(), pw.gid.as_raw()))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("credfile-pg.")
            .tempdir()
            .expect("mktemp -d");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut pg = Postgres {
            dir,
            bin,
            port: 0,
            run_as,
            admin_user: "credfile_admin".into(),
            admin_password: format!("pgadmin-{}", super::random_hex(16)),
        };
        let pwfile = pg.dir.path().join("pwfile");
        std::fs::write(&pwfile, &pg.admin_password).unwrap();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let data = pg.data_dir();
        let out = pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                pg.admin_user.as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--auth=scram-sha-256".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
            &[],
        );
        std::fs::remove_file(&pwfile).unwrap();
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        // A free port can be taken between the probe and the server's bind: try a few.
        let log = pg.dir.path().join("server.log");
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories='' \
                 -c fsync=off -c max_connections=50"
            );
            let out = pg.run(
                "pg_ctl",
                &[
                    "start".as_ref(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    "60".as_ref(),
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-o".as_ref(),
                    opts.as_ref(),
                ],
                &[],
            );
            if out.status.success() {
                pg.port = port;
                return pg;
            }
        }
        panic!(
            "pg_ctl start failed five times; server log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs as the server's user.
    fn run(&self, prog: &str, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(self.bin.join(prog));
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some((uid, gid)) = self.run_as {
            // std drops supplementary groups itself when root sets a uid.
            cmd.uid(uid).gid(gid);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("run {prog}: {e}; {HINT}"))
    }

    /// The superuser OpenBao's database engine connects as.
    pub fn admin_user(&self) -> &str {
        &self.admin_user
    }

    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `connection_url` for OpenBao's postgresql plugin (it fills in username and password).
    pub fn connection_url(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Runs one SQL statement as `user` with `password` (psql over TCP, the password through
    /// `PGPASSWORD` of psql's own environment); the output, whether it worked or not.
    pub fn psql_as(&self, user: &str, password: &str, sql: &str) -> Output {
        let port = self.port.to_string();
        self.run(
            "psql",
            &[
                "-X".as_ref(),
                "-w".as_ref(),
                "-At".as_ref(),
                "-v".as_ref(),
                "ON_ERROR_STOP=1".as_ref(),
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                user.as_ref(),
                "-d".as_ref(),
                "postgres".as_ref(),
                "-c".as_ref(),
                sql.as_ref(),
            ],
            &[("PGPASSWORD", password), ("PGCONNECT_TIMEOUT", "10")],
        )
    }

    /// Whether `user` can log in with `password`; `Err` carries psql's message.
    pub fn login(&self, user: &str, password: &str) -> Result<(), String> {
        let out = self.psql_as(user, password, "SELECT current_user");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && said == user {
            Ok(())
        } else {
            Err(text(&out))
        }
    }

    /// Whether a role named `name` exists (asked as the superuser).
    pub fn role_exists(&self, name: &str) -> bool {
        let lit = name.replace('\'', "''");
        let out = self.psql_as(
            &self.admin_user,
            &self.admin_password,
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{lit}'"),
        );
        assert!(out.status.success(), "psql as admin: {}", text(&out));
        match String::from_utf8_lossy(&out.stdout).trim() {
            "0" => false,
            "1" => true,
            other => panic!("pg_roles count for {name}: {other}"),
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.data_dir();
            let _ = self.run(
                "pg_ctl",
                &[
                    "stop".as_ref(),
                    "-w".as_ref(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-D".as_ref(),
                    data.as_os_str(),
                ],
                &[],
            );
        }
        // The TempDir removes the directory (root can; as the same user, we own it).
    }
}

/// The server starts, a password login works, a wrong one does not, and roles can be asked
/// about: what the lease tests rely on.
#[test]
fn a_throwaway_server_answers_logins_and_role_questions() {
    let pg = Postgres::start();
    assert!(pg.login(pg.admin_user(), pg.admin_password()).is_ok());
    assert!(pg.login(pg.admin_user(), "not-the-password").is_err());
    assert!(pg.role_exists(pg.admin_user()));
    assert!(!pg.role_exists("no_such_role"));
    let dir = pg.dir.path().to_path_buf();
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}
