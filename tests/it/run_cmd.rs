//! `credfile run`: the command reads its files at their paths in a private namespace that no
//! other process sees, gets no secret in its environment, and ends with credfile (exit codes,
//! forwarded signals, SIGKILL). Real binary, moto for secrets, real users for the unprivileged
//! runs; every path is the test's own, so two runs of the suite can share a host.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use sha2::Digest;

use crate::support::case::Case;
use crate::support::users::LocalUser;
use crate::support::{
    Canaries, assert_no_leak, canary_value, is_root, random_hex, validate_audit_line,
};

/// Waits (bounded) for `path` to appear: an event the command signals, not a guessed time.
fn wait_for(path: &Path) -> bool {
    for _ in 0..6000 {
        if path.exists() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

fn sha(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// No mount of `credfile run` in this (the host's) mount namespace.
fn host_mounts_of(root: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&root.display().to_string()))
        .map(str::to_string)
        .collect()
}

/// Every regular file under `dir` that holds a canary (names only).
fn files_with_canaries(dir: &Path, canaries: &Canaries) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => found.extend(files_with_canaries(&p, canaries)),
            Ok(t) if t.is_file() && fs::read(&p).is_ok_and(|b| canaries.find(&b).is_some()) => {
                found.push(p)
            }
            _ => {}
        }
    }
    found
}

/// A case with an out directory (outside the root) the command reports to.
struct RunCase {
    c: Case,
    out: PathBuf,
}

impl RunCase {
    fn new(name: &str) -> RunCase {
        let c = Case::new("runcmd", name);
        fs::create_dir(c.root()).unwrap();
        let out = c.path("out");
        fs::create_dir(&out).unwrap();
        RunCase { c, out }
    }

    fn o(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// `credfile run --env test -- sh -c SCRIPT`, `OUT` and `ROOT` substituted.
    fn args(&self, extra: &[&str], script: &str) -> Vec<String> {
        let script = script
            .replace("OUT", &self.out.display().to_string())
            .replace("ROOT", &self.c.root().display().to_string());
        let mut args: Vec<String> = ["run", "--env", "test"].map(String::from).to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--".into(), "sh".into(), "-c".into(), script]);
        args
    }

    /// Cleared root, no mount left, no canary in /dev/shm.
    fn assert_nothing_left(&self) {
        let root = self.c.root();
        assert_eq!(
            fs::read_dir(&root).unwrap().count(),
            0,
            "the host's root stays empty"
        );
        assert!(
            host_mounts_of(&root).is_empty(),
            "{:?}",
            host_mounts_of(&root)
        );
        assert!(
            files_with_canaries(Path::new("/dev/shm"), &Canaries::global()).is_empty(),
            "a canary in /dev/shm"
        );
    }
}

#[test]
fn the_command_reads_its_files_that_no_other_process_sees() {
    if !root_or_skip("needs root (or user namespaces) and a predictable owner") {
        return;
    }
    let r = RunCase::new("reads");
    let value = format!("{}\n\u{1}bytes", canary_value());
    r.c.seeder.create_string(&r.c.name("db"), &value);
    let ci_value = canary_value();
    Canaries::global().add(&ci_value);
    r.c.manifest(
        "",
        "  - path: db/password\n    secret: ${prefix}/db\n  - path: token\n    ci_variable: RUN_CI_TOKEN\n",
    );
    let script = r#"set -e
sha256sum ROOT/db/password | cut -d' ' -f1 > OUT/sha
stat -L -c '%a %u' ROOT/db/password > OUT/stat
tr '\0' '\n' < /proc/self/environ > OUT/environ
grep -c credfile-run /proc/self/mountinfo > OUT/mounts
touch OUT/ready
while [ ! -e OUT/release ]; do sleep 0.05; done
exit 3"#;
    let outside = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&outside);
    let (root, ready, release) = (r.c.root(), r.o("ready"), r.o("release"));
    let out =
        r.c.credfile()
            .env("RUN_CI_TOKEN", &ci_value)
            .on_spawn(move |_| {
                let mut seen = seen.lock().unwrap();
                if !wait_for(&ready) {
                    seen.push("the command never got ready".into());
                }
                // While the command runs and reads them: nothing at the root for anyone else.
                let listed: Vec<_> = fs::read_dir(&root)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                if !listed.is_empty() {
                    seen.push(format!("the host sees {listed:?}"));
                }
                if !host_mounts_of(&root).is_empty() {
                    seen.push(format!(
                        "the host sees a mount: {:?}",
                        host_mounts_of(&root)
                    ));
                }
                for p in files_with_canaries(Path::new("/dev/shm"), &Canaries::global()) {
                    seen.push(format!("a canary in {}", p.display()));
                }
                fs::write(&release, "").unwrap();
            })
            .run(r.args(&[], script));
    assert_eq!(outside.lock().unwrap().as_slice(), &[] as &[String]);
    out.assert_code(3);
    assert_eq!(
        fs::read_to_string(r.o("sha")).unwrap().trim(),
        sha(value.as_bytes())
    );
    assert_eq!(fs::read_to_string(r.o("stat")).unwrap().trim(), "400 0");
    assert_eq!(fs::read_to_string(r.o("mounts")).unwrap().trim(), "1");
    let environ = fs::read(r.o("environ")).unwrap();
    assert_no_leak(&Canaries::global(), &environ, "the command's environment");
    let environ = String::from_utf8(environ).unwrap();
    assert!(
        environ.contains(&format!("CREDFILE_RUN_ROOT={}\n", r.c.root().display())),
        "{environ}"
    );
    for dropped in [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "RUN_CI_TOKEN=",
    ] {
        assert!(!environ.contains(dropped), "{dropped} reached the command");
    }
    r.assert_nothing_left();
}

#[test]
fn credfile_returns_the_commands_exit_code() {
    if !root_or_skip("needs root") {
        return;
    }
    let (r, v) = ci_var_case("codes");
    for (script, code) in [("exit 0", 0), ("exit 3", 3), ("kill -USR1 $$", 128 + 10)] {
        let out = r.c.credfile().env("RUN_A", &v).run(r.args(&[], script));
        out.assert_code(code);
    }
    // A command that cannot start: the shells' 127, and still nothing left.
    let out =
        r.c.credfile()
            .env("RUN_A", &v)
            .run(["run", "--env", "test", "--", "/nonexistent/cmd"]);
    out.assert_code(127);
    r.assert_nothing_left();
}

#[test]
fn sigterm_sigint_and_sighup_reach_the_command() {
    if !root_or_skip("needs root") {
        return;
    }
    let (r, v) = ci_var_case("signals");
    for sig in ["TERM", "INT", "HUP"] {
        let _ = fs::remove_file(r.o("ready"));
        let script = format!(
            "trap 'echo {sig} > OUT/got; kill $! 2>/dev/null; exit 40' {sig}\ntouch OUT/ready\nsleep 60 &\nwait $!"
        );
        let out =
            r.c.credfile()
                .env("RUN_A", &v)
                .default_signals()
                .on_spawn(kill_when_ready(r.o("ready"), sig))
                .run(r.args(&[], &script));
        out.assert_code(40);
        assert_eq!(fs::read_to_string(r.o("got")).unwrap().trim(), sig);
    }
    // Without a trap the command dies of the signal: 128+15.
    let _ = fs::remove_file(r.o("ready"));
    let out =
        r.c.credfile()
            .env("RUN_A", &v)
            .default_signals()
            .on_spawn(kill_when_ready(r.o("ready"), "TERM"))
            .run(r.args(&[], "touch OUT/ready; exec sleep 60"));
    out.assert_code(143);
    r.assert_nothing_left();
}

#[test]
fn a_sigkilled_credfile_takes_the_command_and_its_namespace_along() {
    if !root_or_skip("needs root") {
        return;
    }
    let r = RunCase::new("sigkill");
    r.c.seeder.create_string(&r.c.name("a"), &canary_value());
    r.c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let out =
        r.c.credfile()
            .on_spawn(kill_when_ready(r.o("ready"), "KILL"))
            // Not holding credfile's output open: the runner returns when credfile is gone.
            .run(r.args(
                &[],
                "echo $$ > OUT/pid; touch OUT/ready; exec sleep 60 </dev/null >/dev/null 2>&1",
            ));
    out.assert_code(128 + 9);
    let pid = fs::read_to_string(r.o("pid")).unwrap().trim().to_string();
    let proc = PathBuf::from(format!("/proc/{pid}"));
    // PR_SET_PDEATHSIG: the helper dies with credfile, the command with the helper.
    for _ in 0..3000 {
        let zombie_or_gone = fs::read_to_string(proc.join("stat"))
            .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
            .unwrap_or(true);
        if zombie_or_gone {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let cmdline = fs::read(proc.join("cmdline")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("sleep"),
        "the command outlived credfile"
    );
    // No helper left either: theirs is the only argv naming this root.
    let root = r.c.root().display().to_string();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(
                !(cmd.contains("__run-") && cmd.contains(&root)),
                "a helper survived: {cmd}"
            );
        }
    }
    r.assert_nothing_left();
}

/// Whether this runs as root; if not, says the test is skipped and `why`.
fn root_or_skip(why: &str) -> bool {
    if !is_root() {
        eprintln!("skipped: {why}");
    }
    is_root()
}

/// A [`RunCase`] whose one file `a` is the CI variable `RUN_A`, and its value (a canary).
fn ci_var_case(name: &str) -> (RunCase, String) {
    let r = RunCase::new(name);
    let v = canary_value();
    Canaries::global().add(&v);
    r.c.manifest("", "  - path: a\n    ci_variable: RUN_A\n");
    (r, v)
}

/// An `on_spawn` hook: once `ready` exists, `kill -SIG` credfile.
fn kill_when_ready(ready: PathBuf, sig: &str) -> impl Fn(u32) + Send + Sync + 'static {
    let sig = format!("-{sig}");
    move |pid| {
        assert!(wait_for(&ready));
        Command::new("kill")
            .args([sig.as_str(), &pid.to_string()])
            .status()
            .unwrap();
    }
}

/// A case (app `runcmd`) with a canary at `${prefix}/a`, and the value.
fn case_with_a(name: &str) -> (Case, String) {
    let c = Case::new("runcmd", name);
    let value = canary_value();
    c.seeder.create_string(&c.name("a"), &value);
    (c, value)
}

/// A throwaway local user with a directory of their own, removed when dropped.
struct Throwaway {
    user: LocalUser,
    dir: tempfile::TempDir,
}

impl Throwaway {
    fn add() -> Throwaway {
        let user = LocalUser::add("cfrun");
        let dir = tempfile::Builder::new()
            .prefix("credfile-runu-")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["root", "out"] {
            let p = dir.path().join(sub);
            fs::create_dir(&p).unwrap();
            nix::unistd::chown(&p, Some(user.uid.into()), Some(user.gid.into())).unwrap();
        }
        Throwaway { user, dir }
    }

    fn manifest(&self, prefix: &str, files: &str) -> PathBuf {
        let path = self.dir.path().join("credfile.yaml");
        fs::write(
            &path,
            format!(
                "version: 1\napp: runu\ndefaults:\n  region: us-east-1\n  root: {}\nenvironments:\n  test:\n    vars: {{ prefix: {prefix} }}\nfiles:\n{files}",
                self.dir.path().join("root").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }
}

#[test]
fn an_unprivileged_user_gets_a_user_namespace_of_their_own() {
    if !root_or_skip("useradd needs root") {
        return;
    }
    let max = fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        eprintln!("skipped: user namespaces are off on this host (the refusal test covers it)");
        return;
    }
    let u = Throwaway::add();
    let (c, value) = case_with_a("userns");
    u.manifest(&c.prefix, "  - path: a\n    secret: ${prefix}/a\n");
    let out_dir = u.dir.path().join("out");
    let script = format!(
        "id -u > {o}/uid; sha256sum $CREDFILE_RUN_ROOT/a | cut -d' ' -f1 > {o}/sha; stat -L -c '%a %u' $CREDFILE_RUN_ROOT/a > {o}/stat",
        o = out_dir.display()
    );
    let out = c
        .credfile()
        .cwd(u.dir.path())
        .run_as(u.user.uid, u.user.gid)
        .run(["run", "--env", "test", "--", "sh", "-c", &script]);
    out.assert_code(0);
    let read = |n: &str| {
        fs::read_to_string(out_dir.join(n))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        read("uid"),
        u.user.uid.to_string(),
        "the command runs as the user"
    );
    assert_eq!(read("sha"), sha(value.as_bytes()));
    assert_eq!(read("stat"), format!("400 {}", u.user.uid));
    assert_eq!(fs::read_dir(u.dir.path().join("root")).unwrap().count(), 0);
    assert!(host_mounts_of(&u.dir.path().join("root")).is_empty());
}

/// Runs `argv` under a seccomp filter that makes `unshare(2)` fail with EPERM (what a container
/// runtime's profile does): Python's ctypes, no compiler needed, in this one process tree only.
const DENY_UNSHARE: &str = r#"
import ctypes, os, platform, struct, sys
arch, nr = {"x86_64": (0xC000003E, 272), "aarch64": (0xC00000B7, 97)}[platform.machine()]
ins = lambda code, jt, jf, k: struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    ins(0x20, 0, 0, 4), ins(0x15, 0, 3, arch),
    ins(0x20, 0, 0, 0), ins(0x15, 0, 1, nr),
    ins(0x06, 0, 0, 0x00050000 | 1), ins(0x06, 0, 0, 0x7FFF0000),
])
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("HxxxxxxP", len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
assert libc.prctl(38, 1, 0, 0, 0) == 0, "no_new_privs"
fbuf = ctypes.create_string_buffer(fprog)
assert libc.prctl(22, 2, ctypes.addressof(fbuf), 0, 0) == 0, os.strerror(ctypes.get_errno())
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn a_host_that_denies_user_namespaces_is_refused_by_name() {
    if !root_or_skip("useradd needs root") {
        return;
    }
    let u = Throwaway::add();
    let c = Case::new("runcmd", "denied");
    u.manifest(
        &c.prefix,
        "  - path: a\n    secret: ${prefix}/never-fetched\n",
    );
    let script = u.dir.path().join("deny_unshare.py");
    fs::write(&script, DENY_UNSHARE).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    // The binary where the user can run it (the checkout may be closed to them).
    let bin = u.dir.path().join("credfile");
    fs::copy(env!("CARGO_BIN_EXE_credfile"), &bin).unwrap();
    let out = c
        .credfile()
        .program("/usr/bin/python3")
        .cwd(u.dir.path())
        .run_as(u.user.uid, u.user.gid)
        .run([
            script.to_str().unwrap(),
            bin.to_str().unwrap(),
            "run",
            "--env",
            "test",
            "--",
            "touch",
            u.dir.path().join("out/ran").to_str().unwrap(),
        ]);
    out.assert_code(6);
    assert!(
        out.stderr.contains("seccomp filter") && out.stderr.contains("EPERM"),
        "the refusal names what denied it: {}",
        out.stderr
    );
    assert!(out.stderr.contains("never falls back"), "{}", out.stderr);
    assert!(
        !u.dir.path().join("out/ran").exists(),
        "the command never ran"
    );
    assert_eq!(fs::read_dir(u.dir.path().join("root")).unwrap().count(), 0);
}

#[test]
fn every_refreshes_the_set_inside_and_signals_the_command() {
    if !root_or_skip("needs root") {
        return;
    }
    let r = RunCase::new("every");
    let (v1, v2) = (canary_value(), canary_value());
    r.c.seeder.create_string(&r.c.name("a"), &v1);
    r.c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let script = r#"n=0
trap 'n=$((n+1)); sha256sum < ROOT/a | cut -d" " -f1 > OUT/after-$n' USR1
sha256sum < ROOT/a | cut -d" " -f1 > OUT/before
touch OUT/ready
while [ ! -e OUT/release ]; do sleep 0.05 & wait $!; done
exit 0"#;
    let (ready, after, release) = (r.o("ready"), r.o("after-1"), r.o("release"));
    let name = r.c.name("a");
    let seeder = Arc::new(Mutex::new(crate::support::seed::Seeder::new(
        &crate::support::moto::moto_endpoint(),
    )));
    let v2c = v2.clone();
    let out =
        r.c.credfile()
            .on_spawn(move |_| {
                assert!(wait_for(&ready));
                seeder.lock().unwrap().put_string(&name, &v2c);
                wait_for(&after);
                fs::write(&release, "").unwrap();
            })
            .run(r.args(&["--every", "1s", "--reload-signal", "USR1"], script));
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(r.o("before")).unwrap().trim(),
        sha(v1.as_bytes())
    );
    assert_eq!(
        fs::read_to_string(r.o("after-1")).unwrap().trim(),
        sha(v2.as_bytes()),
        "after the signal the command reads the new value at the same path"
    );
    r.assert_nothing_left();
}

/// Signals forwarded while `--every` sends a set down to the helper: each signal's frame must
/// wait for the set's last one (sent in between, it would cut the set and end the helper, and the
/// command with it). The set is large (12 files of 100 KB) so that sending it takes a while, and
/// SIGHUP comes every 0.2 ms across several rounds.
#[test]
fn signals_sent_while_a_set_goes_down_leave_it_whole() {
    if !root_or_skip("needs root") {
        return;
    }
    let r = RunCase::new("sigset");
    let names: Vec<String> = (0..12).map(|i| format!("RUN_BIG_{i}")).collect();
    let files: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("  - path: f{i}\n    ci_variable: {n}\n"))
        .collect();
    r.c.manifest("", &files);
    let script = "trap 'n=$((n+1))' HUP\nn=0\ntouch OUT/ready\nwhile [ ! -e OUT/stop ]; do sleep 0.05; done\necho $n > OUT/count\nsha256sum ROOT/f11 | cut -d' ' -f1 > OUT/sha\nexit 7";
    let (ready, stop) = (r.o("ready"), r.o("stop"));
    let mut credfile = r.c.credfile().default_signals();
    let mut last = String::new();
    for n in &names {
        last = random_hex(50_000);
        Canaries::global().add(&last);
        credfile = credfile.env(n, &last);
    }
    let out = credfile
        .on_spawn(move |pid| {
            assert!(wait_for(&ready));
            let until = std::time::Instant::now() + Duration::from_millis(4500);
            while std::time::Instant::now() < until {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGHUP,
                );
                thread::sleep(Duration::from_micros(200));
            }
            fs::write(&stop, "").unwrap();
        })
        .run(r.args(&["--every", "1s"], script));
    out.assert_code(7);
    let rounds = out.stderr.matches("round done").count();
    assert!(
        rounds >= 2,
        "sets were sent while signals came: {rounds}\n{}",
        out.stderr
    );
    let count: u32 = fs::read_to_string(r.o("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(count > 0, "the command got the forwarded signals");
    assert_eq!(
        fs::read_to_string(r.o("sha")).unwrap().trim(),
        sha(last.as_bytes()),
        "the last file of the set reads whole after the rounds"
    );
    r.assert_nothing_left();
}

#[test]
fn the_environments_run_as_is_who_the_command_runs_as_unless_the_flag_says_otherwise() {
    if !root_or_skip("run_as applies when credfile runs as root") {
        return;
    }
    let u = Throwaway::add();
    let (c, value) = case_with_a("runas");
    // A root that root owns (the check of the path to it), the out directory the user's.
    let root = u.dir.path().join("r");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let out_dir = u.dir.path().join("out");
    let manifest = |run_as: &str, secret: &str| {
        fs::write(
            u.dir.path().join("credfile.yaml"),
            format!(
                "version: 1\napp: runu\ndefaults:\n  region: us-east-1\n  root: {}\nenvironments:\n  test:\n    vars: {{ prefix: {} }}\n    run_as: {run_as}\n    layout: files\nfiles:\n  - path: a\n    secret: ${{prefix}}/{secret}\n",
                root.display(),
                c.prefix
            ),
        )
        .unwrap();
    };
    let script = format!(
        "id -u > {o}/uid; echo \"$USER\" > {o}/user; sha256sum $CREDFILE_RUN_ROOT/a | cut -d' ' -f1 > {o}/sha; stat -L -c '%u' $CREDFILE_RUN_ROOT/a > {o}/owner",
        o = out_dir.display()
    );
    let read = |n: &str| {
        fs::read_to_string(out_dir.join(n))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let run = |extra: &[&str]| {
        for n in ["uid", "user", "sha", "owner"] {
            let _ = fs::remove_file(out_dir.join(n));
        }
        let mut args = vec!["run", "--env", "test"];
        args.extend(extra);
        args.extend(["--", "sh", "-c", &script]);
        c.credfile().cwd(u.dir.path()).run(args)
    };
    // By name and by uid: the command is the user's, and so are the files.
    for run_as in [u.user.name.clone(), u.user.uid.to_string()] {
        manifest(&run_as, "a");
        run(&[]).assert_code(0);
        assert_eq!(read("uid"), u.user.uid.to_string(), "run_as: {run_as}");
        assert_eq!(read("user"), u.user.name, "run_as: {run_as}");
        assert_eq!(read("owner"), u.user.uid.to_string(), "run_as: {run_as}");
        assert_eq!(read("sha"), sha(value.as_bytes()));
    }
    // The flag wins over the manifest.
    run(&["--run-as", "0"]).assert_code(0);
    assert_eq!((read("uid"), read("owner")), ("0".into(), "0".into()));
    // A user the host does not have: refused by file and line before anything is fetched
    // (the secret does not exist: a fetch would fail with exit 4).
    manifest(&format!("cfnone{}", random_hex(4)), "never-fetched");
    let out = run(&[]);
    out.assert_code(6);
    assert!(
        out.stderr.contains("credfile.yaml:9: `run_as: cfnone")
            && out.stderr.contains("no such user"),
        "{}",
        out.stderr
    );
    assert_eq!(read("uid"), "", "the command ran");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    assert!(host_mounts_of(&root).is_empty());
}

#[test]
fn audit_log_records_the_files_their_sources_and_the_commands_exit_code() {
    if !root_or_skip("needs root") {
        return;
    }
    let r = RunCase::new("audit");
    let value = canary_value();
    r.c.seeder.create_string(&r.c.name("db"), &value);
    let ci_value = canary_value();
    Canaries::global().add(&ci_value);
    r.c.manifest(
        "",
        "  - path: db/password\n    secret: ${prefix}/db\n  - path: token\n    ci_variable: RUN_AUDIT_TOKEN\n",
    );
    let log = r.c.path("audit.log");
    let log_arg = log.display().to_string();
    let out = r.c.credfile().env("RUN_AUDIT_TOKEN", &ci_value).run(r.args(
        &["--audit-log", &log_arg],
        "test -r ROOT/db/password && exit 5",
    ));
    out.assert_code(5);
    let text = fs::read(&log).unwrap();
    assert_no_leak(&Canaries::global(), &text, "the audit log");
    let lines: Vec<serde_json::Value> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    validate_audit_line(line);
    assert_eq!(line["command"], "run");
    assert_eq!(line["environment"], "test");
    assert_eq!(line["exit_code"], 5, "the command's exit code");
    let files = line["files"].as_array().unwrap();
    let summary: Vec<(String, String, String, bool)> = files
        .iter()
        .map(|f| {
            let s = &f["secrets"][0];
            (
                f["path"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
                s["id"].as_str().unwrap().to_string(),
                !s["version_id"].as_str().unwrap().is_empty(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("db/password".into(), "created".into(), r.c.name("db"), true),
            (
                "token".into(),
                "created".into(),
                "RUN_AUDIT_TOKEN".into(),
                false
            ),
        ]
    );

    // A run that fails before the command starts still writes its line, with credfile's code.
    r.c.manifest("", "  - path: a\n    secret: ${prefix}/absent\n");
    let out =
        r.c.credfile()
            .run(r.args(&["--audit-log", &log_arg], "touch OUT/ran"));
    out.assert_code(4);
    assert!(!r.o("ran").exists());
    let text = fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(text.lines().count(), 2);
    validate_audit_line(&last);
    assert_eq!(
        (&last["command"], &last["exit_code"]),
        (&"run".into(), &4.into())
    );
    r.assert_nothing_left();
}
