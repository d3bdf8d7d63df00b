//! A real OpenSSH server on 127.0.0.1 for the Ansible test: Debian's sshd on a free port, with a
//! throwaway host key, a throwaway user (key authentication only) and a known_hosts file, so the
//! controller checks the host key as it would in production. Everything is removed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd and the user it lets in.
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    log: PathBuf,
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port (bound and released: sshd takes it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn id_of(user: &str, flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, user])
        .output()
        .expect("spawn id");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("id {flag} {user}"))
}

impl Sshd {
    /// Starts sshd with its files under `dir` (which must be traversable by every user) and a new
    /// user whose home is `dir/home`. Needs root (useradd, sshd).
    pub fn start(dir: &Path) -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: run scripts/test.sh (it installs Debian's openssh-server)"
        );
        let user = format!("cfans{}", crate::support::random_hex(4));
        let home = dir.join("home");
        let host_key = dir.join("host_key");
        let client_key = dir.join("client_key");
        for key in [&host_key, &client_key] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(key));
        }
        run(Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&user));
        // '*': no password, but not locked ('!'), which sshd would refuse even for key auth.
        run(Command::new("usermod").args(["-p", "*", &user]));
        let uid = id_of(&user, "-u");
        let gid = id_of(&user, "-g");
        std::fs::create_dir(&home).expect("mkdir home");
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).expect("chown home");
        std::fs::copy(
            client_key.with_extension("pub"),
            dir.join("authorized_keys"),
        )
        .expect("authorized_keys");
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");

        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 UsePAM no\nStrictModes no\nPidFile none\nAllowUsers {user}\nPermitRootLogin no\n\
                 Subsystem sftp internal-sftp\n",
                host_key.display(),
                dir.join("authorized_keys").display()
            ),
        )
        .expect("write sshd_config");
        let log = dir.join("sshd.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("sshd log");
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().expect("dup log"))
                .stderr(log_file)
                .spawn()
                .expect("spawn sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Server listening") {
                    let known_hosts = dir.join("known_hosts");
                    let host_pub =
                        std::fs::read_to_string(host_key.with_extension("pub")).expect("host key");
                    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}"))
                        .expect("known_hosts");
                    return Sshd {
                        child,
                        port,
                        user,
                        uid,
                        gid,
                        home,
                        client_key,
                        known_hosts,
                        log,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    last = text;
                    break;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = text;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = Command::new("userdel").arg(&user).status();
        panic!("sshd did not start: {last}");
    }

    /// sshd's log (connections, refusals): for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The listener's sessions outlive it (the controller's ControlPersist keeps them open):
        // end the processes running as the throwaway user, found by uid, each by its pid.
        for pid in pids_of_uid(self.uid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // -f: a session of the user may linger for a moment after the server is gone.
        let _ = Command::new("userdel")
            .args(["-f", &self.user])
            .stderr(Stdio::null())
            .status();
    }
}

/// Pids of the processes whose real uid is `uid` (from /proc/PID/status).
fn pids_of_uid(uid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        if real == Some(uid) {
            out.push(pid);
        }
    }
    out
}
