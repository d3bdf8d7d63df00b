//! The Ansible collection end to end: ansible-playbook over a real sshd to throwaway hosts,
//! the role and module installing and running credfile against moto, --check --diff, and a
//! rotation. The other engines (systemd, Kubernetes, SSM) are in engines.rs.

use crate::support;
use crate::support::is_root;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Canaries, Credfile, Seeder, assert_no_leak, moto_endpoint, test_python};

use crate::engines::sshd;
use crate::engines::*;

// ---------------------------------------------------------------------------------------------
// Ansible

/// A plain HTTP file server on 127.0.0.1 (python's http.server): the role downloads the binary
/// from it with get_url and a checksum, as it would from a release URL.
struct FileServer {
    child: Child,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        for _ in 0..5 {
            let port = sshd::free_port();
            let mut child = Command::new(test_python())
                .args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(dir)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn http.server");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return FileServer { child, port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("http.server did not start");
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).expect("read binary"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `host -> (ok, changed, failed)` from the PLAY RECAP of the default callback.
fn recap(stdout: &str) -> BTreeMap<String, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let Some(at) = stdout.rfind("PLAY RECAP") else {
        return out;
    };
    for line in stdout[at..].lines().skip(1) {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let get = |key: &str| {
            counts
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(0)
        };
        out.insert(
            host.trim().to_string(),
            (get("ok"), get("changed"), get("failed")),
        );
    }
    out
}

/// Every file under `dir` (not following links), checked for canaries.
fn scan_for_canaries(canaries: &Canaries, dir: &Path, what: &str) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() && meta.len() < 4 << 20 {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                assert_no_leak(
                    canaries,
                    &bytes,
                    &format!("{} ({what})", e.path().display()),
                );
            }
        }
    }
}

#[test]
fn ansible_module_documentation_parses() {
    let tmp = tempdir("credfile-ansible-doc-");
    let out = run(Command::new(venv_tool("ansible-doc"))
        .arg("credfile.deploy.credfile")
        .env("ANSIBLE_COLLECTIONS_PATH", examples().join("ansible"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("HOME", tmp.path())
        .env("LC_ALL", "C.UTF-8"));
    assert_eq!(out.code, 0, "ansible-doc: {}{}", out.stdout, out.stderr);
    for option in ["env", "manifest", "root", "binary", "state", "jitter"] {
        let listed = out.stdout.lines().any(|l| {
            (l.starts_with("- ") || l.starts_with("= "))
                && l[2..].split_whitespace().next() == Some(option)
        });
        assert!(
            listed,
            "ansible-doc does not list option {option}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn ansible_playbook_applies_over_ssh_idempotently_and_plans_a_rotation_without_writing() {
    if !is_root() {
        eprintln!("skipped: needs root (a throwaway user for sshd); CI runs as root");
        return;
    }
    let endpoint = moto_endpoint();
    let base = tempdir("credfile-ansible-");
    let server = sshd::Sshd::start(base.path());
    let seeder = Seeder::new(&endpoint);
    let canaries = seeder.canaries().clone();
    let prefix = support::unique_prefix("ansible");
    let (manifest, expected) = fleet_manifest(&seeder, base.path(), &prefix);

    // The "release": the binary served over HTTP, with its SHA-256.
    let dist = base.path().join("dist");
    std::fs::create_dir(&dist).unwrap();
    let bin = dist.join("credfile");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_credfile"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_credfile"), &bin).unwrap();
    }
    // A release archive as scripts/dist.sh lays it out (the binary in its top directory), for h3.
    let stem = "credfile-0.1.0-x86_64-unknown-linux-gnu";
    std::fs::create_dir(dist.join(stem)).unwrap();
    // A copy, not a link: other tests link the same binary, which changes its ctime, and tar
    // then fails with "file changed as we read it".
    std::fs::copy(&bin, dist.join(stem).join("credfile")).unwrap();
    let tar = run(Command::new("tar")
        .arg("-C")
        .arg(&dist)
        .args(["-czf", &format!("{stem}.tar.gz"), stem])
        .current_dir(&dist));
    assert_eq!(tar.code, 0, "tar: {}", tar.stderr);
    let archive = dist.join(format!("{stem}.tar.gz"));
    let files = FileServer::start(&dist);

    // Three inventory hosts on the one sshd, each with its own prefix (binary, manifest, units,
    // root) owned by the throwaway user.
    let hosts_dir = base.path().join("hosts");
    std::fs::create_dir(&hosts_dir).unwrap();
    let mut hosts = serde_json::Map::new();
    let mut roots = Vec::new();
    for h in ["h1", "h2", "h3"] {
        let hd = hosts_dir.join(h);
        std::fs::create_dir(&hd).unwrap();
        std::os::unix::fs::chown(&hd, Some(server.uid), Some(server.gid)).unwrap();
        let root = hd.join("secrets");
        hosts.insert(
            h.to_string(),
            json!({
                "credfile_root": root,
                "credfile_binary_path": hd.join("bin/credfile"),
                "credfile_manifest_path": hd.join("etc/credfile.yaml"),
                "credfile_systemd_dir": hd.join("systemd"),
                "credfile_download_dir": hd.join("cache"),
            }),
        );
        if h == "h3" {
            let vars = hosts[h].as_object_mut().unwrap();
            vars.insert(
                "credfile_binary_url".into(),
                json!(format!("http://127.0.0.1:{}/{stem}.tar.gz", files.port)),
            );
            vars.insert("credfile_binary_sha256".into(), json!(sha256_hex(&archive)));
        }
        std::fs::create_dir(hd.join("systemd")).unwrap();
        std::os::unix::fs::chown(hd.join("systemd"), Some(server.uid), Some(server.gid)).unwrap();
        roots.push(root);
    }
    let env = support::hermetic_env(&endpoint, &server.home);
    let aws_env: serde_json::Map<String, Value> = env
        .iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let inventory = base.path().join("inventory.yml");
    std::fs::write(
        &inventory,
        serde_json::to_string_pretty(&json!({
            "credfile_hosts": {
                "hosts": hosts,
                "vars": {
                    "ansible_host": "127.0.0.1",
                    "ansible_port": server.port,
                    "ansible_user": server.user,
                    "ansible_ssh_private_key_file": server.client_key,
                    "ansible_ssh_common_args": format!(
                        "-o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
                        server.known_hosts.display()
                    ),
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "credfile_env": "fleet",
                    "credfile_binary_url": format!("http://127.0.0.1:{}/credfile", files.port),
                    "credfile_binary_sha256": sha256_hex(&bin),
                    "credfile_manifest_src": manifest,
                    "credfile_install_owner": "",
                    "credfile_install_group": "",
                    "credfile_timer_enable": false,
                    "credfile_environment_vars": aws_env,
                }
            }
        }))
        .unwrap(),
    )
    .unwrap();

    let playbook_dir = examples().join("ansible");
    let controller = Credfile::new(&endpoint)
        .program(venv_tool("ansible-playbook"))
        .canaries(canaries.clone())
        .cwd(&playbook_dir)
        .timeout(Duration::from_secs(600))
        .env(
            "ANSIBLE_CONFIG",
            playbook_dir.join("ansible.cfg").to_str().unwrap(),
        )
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("LC_ALL", "C.UTF-8")
        .env("LANG", "C.UTF-8");
    let playbook = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "-i".into(),
            inventory.to_str().unwrap().into(),
            "deploy.yml".into(),
            "-vvv".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = controller.run(&args);
        // Nothing the remote side kept (ansible's temp files) holds a value either.
        scan_for_canaries(&canaries, &server.home, "the remote user's home");
        out
    };
    let ssh_log = || server.log();

    // The shipped serial (25%: one host at a time here) is exercised by the failure run; the
    // others take the three hosts in one batch, as `-e credfile_serial=100%` documents.
    let all = ["-e", "credfile_serial=100%"];
    // 1. First run: installs and writes on all three.
    let first = playbook(&all);
    assert_eq!(
        first.status_code,
        0,
        "first run failed:\n{}\n{}\nsshd: {}",
        first.stdout,
        first.stderr,
        ssh_log()
    );
    let r = recap(&first.stdout);
    assert_eq!(r.len(), 3, "recap: {r:?}");
    for (host, (_, changed, failed)) in &r {
        assert!(*changed > 0 && *failed == 0, "{host}: {r:?}");
    }
    for (i, root) in roots.iter().enumerate() {
        let installed = hosts_dir.join(format!("h{}", i + 1)).join("bin/credfile");
        assert_eq!(
            sha256_hex(&installed),
            sha256_hex(&bin),
            "{}",
            installed.display()
        );
        assert_eq!(support::mode_of(&installed), 0o755);
        assert_files(root, &expected);
        assert_eq!(
            support::uid_gid(root.join("db/password")),
            (server.uid, server.gid)
        );
        assert_eq!(support::mode_of(root.join("current/db/password")), 0o400);
    }
    assert_eq!(
        first
            .stdout
            .matches("TASK [credfile.deploy.credfile : Write the secret files")
            .count(),
        1
    );

    // 2. Second run: nothing changes anywhere.
    let before = roots.iter().map(support::snapshot).collect::<Vec<_>>();
    let second = playbook(&all);
    assert_eq!(
        second.status_code, 0,
        "second run failed:\n{}",
        second.stdout
    );
    let r = recap(&second.stdout);
    assert_eq!(r.len(), 3, "recap: {r:?}");
    for (host, (_, changed, failed)) in &r {
        assert_eq!(
            (*changed, *failed),
            (0, 0),
            "{host} changed on the second run: {r:?}"
        );
    }
    assert_eq!(
        roots.iter().map(support::snapshot).collect::<Vec<_>>(),
        before
    );

    // 3. A rotation, then --check --diff: changed on every host, nothing written, the diff names
    //    the new version (metadata) and never the value.
    let new_version = seeder.put_string(
        &format!("{prefix}/db"),
        &json!({ "username": "fleet-db-user", "password": support::canary_value() }).to_string(),
    );
    let check = playbook(&["--check", "--diff", all[0], all[1]]);
    assert_eq!(check.status_code, 0, "check run failed:\n{}", check.stdout);
    let r = recap(&check.stdout);
    assert_eq!(r.len(), 3, "recap: {r:?}");
    for (host, (_, changed, failed)) in &r {
        assert_eq!(
            (*changed, *failed),
            (1, 0),
            "{host}: only the credfile task may change: {r:?}"
        );
    }
    assert!(
        check.stdout.matches(&format!("@{new_version}")).count() >= 3,
        "the diff does not show the new version on each host:\n{}",
        check.stdout
    );
    assert_eq!(
        roots.iter().map(support::snapshot).collect::<Vec<_>>(),
        before,
        "--check wrote"
    );

    // 4. A failure carries credfile's message and exit code, the target stays as it was, and the
    //    shipped serial + max_fail_percentage stop the rollout after the first slice.
    let failed = playbook(&["-e", "credfile_env=nosuch"]);
    assert_ne!(failed.status_code, 0);
    let r = recap(&failed.stdout);
    assert_eq!(
        r.keys().collect::<Vec<_>>(),
        ["h1"],
        "the rollout went on: {r:?}"
    );
    assert_eq!(r["h1"].2, 1, "{r:?}");
    assert!(
        failed
            .stdout
            .contains("credfile apply failed with exit code 2: error:")
            && failed.stdout.contains("\"rc\": 2"),
        "no credfile message and exit code in:\n{}",
        failed.stdout
    );
    assert!(
        failed.stdout.contains("no environment `nosuch`"),
        "{}",
        failed.stdout
    );
    assert_eq!(
        roots.iter().map(support::snapshot).collect::<Vec<_>>(),
        before
    );
}

#[test]
fn ansible_module_verifies_drift_and_cleans_only_in_earnest() {
    let endpoint = moto_endpoint();
    let tmp = tempdir("credfile-ansible-module-");
    let seeder = Seeder::new(&endpoint);
    let prefix = support::unique_prefix("module");
    let (manifest, expected) = fleet_manifest(&seeder, tmp.path(), &prefix);
    let root = tmp.path().join("root");
    let controller = Credfile::new(&endpoint)
        .program(venv_tool("ansible"))
        .env(
            "ANSIBLE_COLLECTIONS_PATH",
            examples().join("ansible").to_str().unwrap(),
        )
        .env("ANSIBLE_NOCOLOR", "1")
        .env(
            "ANSIBLE_PYTHON_INTERPRETER",
            test_python().to_str().unwrap(),
        )
        .env("LC_ALL", "C.UTF-8");
    // One module call on localhost over the local connection, with the hermetic AWS env.
    let module = |state: &str, extra: &[&str]| {
        let args = format!(
            "env=fleet manifest={} root={} binary={} state={state}",
            manifest.display(),
            root.display(),
            env!("CARGO_BIN_EXE_credfile")
        );
        let mut argv = vec![
            "localhost",
            "-c",
            "local",
            "-m",
            "credfile.deploy.credfile",
            "-a",
        ];
        argv.push(&args);
        argv.extend_from_slice(extra);
        controller.run(&argv)
    };
    let applied = module("applied", &[]);
    assert_eq!(
        applied.status_code, 0,
        "{}\n{}",
        applied.stdout, applied.stderr
    );
    assert!(applied.stdout.contains("CHANGED"), "{}", applied.stdout);
    assert_files(&root, &expected);

    let verified = module("verified", &[]);
    assert_eq!(
        verified.status_code, 0,
        "{}\n{}",
        verified.stdout, verified.stderr
    );
    assert!(verified.stdout.contains("SUCCESS"), "{}", verified.stdout);
    // Drift (a mode) fails the task with exit code 7 and names the file, never a value.
    set_mode(&root.join("current/db/password"), 0o444);
    let drift = module("verified", &[]);
    assert_ne!(drift.status_code, 0);
    assert!(
        drift
            .stdout
            .contains("has drifted (exit code 7): mode db/password")
            && drift.stdout.contains("\"rc\": 7"),
        "{}",
        drift.stdout
    );
    set_mode(&root.join("current/db/password"), 0o400);

    // absent under --check: reports the change and removes nothing.
    let before = support::snapshot(&root);
    let check = module("absent", &["--check"]);
    assert_eq!(check.status_code, 0, "{}\n{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("CHANGED"), "{}", check.stdout);
    assert_eq!(
        support::snapshot(&root),
        before,
        "--check removed something"
    );
    let clean = module("absent", &[]);
    assert_eq!(clean.status_code, 0, "{}\n{}", clean.stdout, clean.stderr);
    assert!(clean.stdout.contains("CHANGED"), "{}", clean.stdout);
    assert!(!root.exists(), "clean left the root");
    let again = module("absent", &[]);
    assert_eq!(again.status_code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("SUCCESS"),
        "clean of nothing reported a change: {}",
        again.stdout
    );
}
