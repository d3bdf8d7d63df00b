//! Hostile targets, disk faults and the seed-rule guards: every write guarantee in
//! docs/src/guarantees.md is attacked here. CI runs as root; tests that need root or a mount
//! namespace say so and skip when they cannot have it.

use crate::support;
use crate::support::is_root;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use support::{
    Canaries, Credfile, Output, Proxy, Seeder, canary_value, moto_endpoint, unique_prefix,
};

const WRITE: i32 = 6;

struct Case {
    dir: tempfile::TempDir,
    prefix: String,
    seeder: Seeder,
    root: PathBuf,
}

impl Case {
    fn new(name: &str) -> Case {
        Case::in_dir(name, None)
    }

    /// `base`: where the scratch directory goes (default: the system temp dir).
    fn in_dir(name: &str, base: Option<&Path>) -> Case {
        let dir = match base {
            Some(b) => tempfile::Builder::new()
                .prefix("credfile-attack-")
                .tempdir_in(b)
                .unwrap(),
            None => tempfile::Builder::new()
                .prefix("credfile-attack-")
                .tempdir()
                .unwrap(),
        };
        let root = dir.path().join("root");
        Case {
            dir,
            prefix: unique_prefix(name),
            seeder: Seeder::new(&moto_endpoint()),
            root,
        }
    }

    fn name(&self, short: &str) -> String {
        format!("{}/{short}", self.prefix)
    }

    /// A manifest with environment `test` (extra lines under it) and files `files`.
    fn manifest(&self, env_extra: &str, files: &str) {
        let text = format!(
            "version: 1\napp: attack\nenvironments:\n  test:\n    region: us-east-1\n    root: {}\n    vars: {{ p: {} }}\n{env_extra}files:\n{files}",
            self.root.display(),
            self.prefix
        );
        fs::write(self.dir.path().join("credfile.yaml"), text).unwrap();
        // Readable by the unprivileged user some tests run credfile as.
        fs::set_permissions(
            self.dir.path().join("credfile.yaml"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }

    /// For runs as uid 65534: the scratch directory readable, the root created and owned by it.
    fn hand_root_to_nobody(&self) {
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(&self.root).unwrap();
        let nobody = (
            nix::unistd::Uid::from_raw(65534),
            nix::unistd::Gid::from_raw(65534),
        );
        nix::unistd::chown(&self.root, Some(nobody.0), Some(nobody.1)).unwrap();
    }

    fn credfile(&self) -> Credfile {
        Credfile::new(&moto_endpoint()).cwd(self.dir.path())
    }

    fn apply(&self) -> Output {
        self.credfile().run(["apply", "--env", "test"])
    }
}

fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            let bytes = if m.is_file() {
                fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            out.push((e.path(), bytes, m.ino()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_symlink_swapped_in_during_the_write_is_never_followed() {
    let c = Case::new("race");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${p}/a\n");
    c.apply().assert_code(0);
    let victim = c.dir.path().join("victim");
    fs::write(&victim, b"not yours").unwrap();
    let target = c.root.join("a");

    let stop = Arc::new(AtomicBool::new(false));
    let racer = {
        let (stop, target, victim) = (stop.clone(), target.clone(), victim.clone());
        thread::spawn(move || {
            let mut swaps = 0u64;
            // Alternate a plain file and a symlink at the target, with pauses of varying length,
            // so that some runs pass the checks and meet the symlink at publish time.
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let tmp = target.with_file_name(".racer");
                let _ = fs::remove_file(&tmp);
                let plant_link = !n.is_multiple_of(2);
                if !plant_link {
                    let _ = fs::write(&tmp, b"decoy");
                } else {
                    let _ = symlink(&victim, &tmp);
                }
                if fs::rename(&tmp, &target).is_ok() && plant_link {
                    swaps += 1;
                }
                thread::sleep(Duration::from_micros(n * 7919 % 3000));
            }
            swaps
        })
    };
    let (mut refused, mut written) = (0, 0);
    for _ in 0..40 {
        c.seeder.put_string(&c.name("a"), &canary_value());
        let out = c.apply();
        match out.status_code {
            0 => written += 1,
            WRITE => {
                assert!(
                    out.stderr.contains("symlink")
                        || out.stderr.contains("ELOOP")
                        || out
                            .stderr
                            .contains("does not point to the file credfile wrote"),
                    "{}",
                    out.stderr
                );
                refused += 1;
            }
            other => panic!("unexpected exit {other}: {}", out.stderr),
        }
        assert_eq!(
            fs::read(&victim).unwrap(),
            b"not yours",
            "the symlink's target was written"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 0, "the racer ran");
    eprintln!("race: {written} runs wrote, {refused} refused, {swaps} symlink swaps");
    let outside: Vec<_> = fs::read_dir(c.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        outside.len(),
        3,
        "nothing new next to the root: {outside:?}"
    );
}

#[test]
fn a_hard_linked_target_is_replaced_with_a_warning() {
    let c = Case::new("hardlink");
    let old = canary_value();
    c.seeder.create_string(&c.name("a"), &old);
    // Per-file replacement (`layout: files`) is where a hard link keeps an old secret alive.
    c.manifest("    layout: files\n", "  - path: a\n    secret: ${p}/a\n");
    c.apply().assert_code(0);
    let elsewhere = c.dir.path().join("copy");
    fs::hard_link(c.root.join("a"), &elsewhere).unwrap();
    let new = canary_value();
    c.seeder.put_string(&c.name("a"), &new);
    let out = c.apply();
    out.assert_code(0);
    assert!(
        out.stderr.contains("other hard links")
            && out.stderr.contains("old content stays readable"),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read(c.root.join("a")).unwrap(), new.as_bytes());
    assert_eq!(
        fs::read(&elsewhere).unwrap(),
        old.as_bytes(),
        "the other name keeps the old inode"
    );
}

#[test]
fn an_unprivileged_run_cannot_give_files_away_and_fails_before_fetching() {
    if !is_root() {
        eprintln!("skipped: needs root to run credfile as another user");
        return;
    }
    let c = Case::new("unpriv");
    c.hand_root_to_nobody();
    c.manifest(
        "",
        "  - path: a\n    secret: ${p}/never-fetched\n    owner: root\n",
    );
    let proxy = Proxy::start(&moto_endpoint());
    let out = Credfile::new(&proxy.endpoint())
        .cwd(c.dir.path())
        .run_as(65534, 65534)
        .run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(
        out.stderr.contains("cannot give files to uid 0"),
        "{}",
        out.stderr
    );
    assert_eq!(
        proxy.total(),
        0,
        "no AWS call before the write is known to be possible"
    );
    assert_eq!(fs::read_dir(&c.root).unwrap().count(), 0);
}

#[test]
fn a_running_credfile_holds_no_secret_in_environ_or_cmdline_and_is_not_dumpable() {
    if !is_root() {
        eprintln!("skipped: needs root to run credfile as another user");
        return;
    }
    let c = Case::new("proc");
    c.hand_root_to_nobody();
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.seeder.create_string(&c.name("b"), &canary_value());
    // `a` comes in the batch at once; `b` is pinned and its GetSecretValue is held, so the
    // process is inspected with `a` in memory.
    c.manifest("", "  - path: a\n    secret: ${p}/a\n  - path: b\n    secret: ${p}/b\n    version_stage: AWSPREVIOUS\n");
    let proxy = Arc::new(Proxy::start(&moto_endpoint()));
    proxy.delay("GetSecretValue", Duration::from_secs(3));
    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen2 = seen.clone();
    let held = proxy.clone();
    let out = Credfile::new(&proxy.endpoint())
        .cwd(c.dir.path())
        .run_as(65534, 65534)
        .on_spawn(move |pid| {
            // Inspected once `b`'s call is held at the proxy (`a` is in memory by then): an
            // event, not a guessed time.
            for _ in 0..6000 {
                if held.count("GetSecretValue") >= 1 {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
            let owner = fs::metadata(format!("/proc/{pid}/environ"))
                .map(|m| m.uid())
                .ok();
            *seen2.lock().unwrap() = Some((environ, cmdline, limits, owner));
        })
        .run(["apply", "--env", "test"]);
    // AWSPREVIOUS does not exist for a fresh secret: the run fails, which is fine here.
    assert!(
        out.status_code == 4 || out.status_code == 0,
        "{}",
        out.stderr
    );
    let (environ, cmdline, limits, owner) = seen.lock().unwrap().take().expect("inspected");
    assert!(
        !environ.is_empty() && !cmdline.is_empty(),
        "read the live process"
    );
    assert!(
        Canaries::global().find(&environ).is_none(),
        "no secret in /proc/<pid>/environ"
    );
    assert!(
        Canaries::global().find(&cmdline).is_none(),
        "no secret in /proc/<pid>/cmdline"
    );
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_default()
        .to_string();
    assert!(
        core.split_whitespace().filter(|w| *w == "0").count() >= 2,
        "core dumps off: {core}"
    );
    assert_eq!(
        owner,
        Some(0),
        "a non-dumpable process's /proc files belong to root, not to uid 65534"
    );
}

/// Runs a shell script inside a new mount namespace (to mount a tmpfs or remount read-only);
/// `None` when the namespace or the mount is not permitted here.
fn in_mount_namespace(c: &Case, script: &str) -> Option<Output> {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "skipped: cannot unshare a mount namespace and mount here (needs root / CAP_SYS_ADMIN)"
        );
        return None;
    }
    let out = c
        .credfile()
        .program("unshare")
        .env("CREDFILE", env!("CARGO_BIN_EXE_credfile"))
        .env("ROOT", c.root.display().to_string())
        .env("REF", c.dir.path().join("ref").display().to_string())
        .run(["-m", "sh", "-c", script]);
    Some(out)
}

#[test]
fn enospc_leaves_the_previous_files_and_no_debris() {
    let c = Case::new("enospc");
    c.seeder.create_string(&c.name("small"), &canary_value());
    // Three values of 40 KB: together far more than the 64 KiB tmpfs.
    for n in ["big1", "big2", "big3"] {
        let v = format!("{}{}", canary_value(), "x".repeat(40_000));
        c.seeder.create_string(&c.name(n), &v);
    }
    for layout in ["generation", "files"] {
        let manifest = |files: &str| {
            format!(
                "version: 1\napp: attack\nenvironments:\n  test:\n    region: us-east-1\n    root: {}\n    layout: {layout}\nfiles:\n{files}",
                c.root.display()
            )
        };
        let small = manifest(&format!("  - path: a\n    secret: {}\n", c.name("small")));
        let big = manifest(&format!(
            "  - path: a\n    secret: {}\n  - path: b\n    secret: {}\n  - path: c\n    secret: {}\n",
            c.name("big1"),
            c.name("big2"),
            c.name("big3")
        ));
        fs::write(c.dir.path().join("credfile.yaml"), small).unwrap();
        fs::write(c.dir.path().join("big.yaml"), big).unwrap();
        let _ = fs::remove_dir_all(&c.root);
        fs::create_dir(&c.root).unwrap();
        // First the small set fits; then the big set cannot: the small set must survive whole.
        let script = r#"
            mount -t tmpfs -o size=64k,mode=0700 tmpfs "$ROOT" || exit 77
            "$CREDFILE" apply --env test >/dev/null 2>&1 || exit 78
            cp -L "$ROOT/a" "$REF"
            before="$(ls -A "$ROOT" | tr '\n' ' ')"
            "$CREDFILE" apply --env test --manifest big.yaml
            echo "rc=$?"
            cmp -s "$ROOT/a" "$REF" && echo "a: unchanged" || echo "a: CHANGED"
            after="$(ls -A "$ROOT" | tr '\n' ' ')"
            [ "$before" = "$after" ] && echo "entries: same" || echo "entries: before [$before] after [$after]"
        "#;
        let Some(out) = in_mount_namespace(&c, script) else {
            return;
        };
        out.assert_code(0);
        assert!(
            out.stdout.contains("rc=6"),
            "{layout}: ENOSPC is a write error: {}\n{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr.contains("No space left on device") || out.stderr.contains("ENOSPC"),
            "{layout}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("free space"),
            "{layout}: the hint: {}",
            out.stderr
        );
        assert!(
            out.stdout.contains("a: unchanged"),
            "{layout}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains("entries: same"),
            "{layout}: no debris, nothing half-published: {}",
            out.stdout
        );
    }
}

#[test]
fn a_read_only_target_fails_in_preflight() {
    let c = Case::new("readonly");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${p}/a\n");
    c.apply().assert_code(0);
    c.seeder.put_string(&c.name("a"), &canary_value());
    let before = tree(&c.root);
    let proxy_free = r#"
        mount --bind "$ROOT" "$ROOT" && mount -o remount,bind,ro "$ROOT" || exit 77
        "$CREDFILE" apply --env test
        echo "rc=$?"
    "#;
    let Some(out) = in_mount_namespace(&c, proxy_free) else {
        return;
    };
    out.assert_code(0);
    assert!(
        out.stdout.contains("rc=6") && out.stderr.contains("read-only"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(tree(&c.root), before);
}

#[test]
fn git_work_trees_are_refused_unless_ignored_and_allowed() {
    let c = Case::new("git");
    c.seeder.create_string(&c.name("a"), &canary_value());
    let git = |args: &[&str]| {
        assert!(
            Command::new("git")
                .args(args)
                .current_dir(c.dir.path())
                .output()
                .unwrap()
                .status
                .success(),
            "git {args:?}"
        )
    };
    git(&["init", "-q"]);
    c.manifest("", "  - path: a\n    secret: ${p}/a\n");
    let out = c.credfile().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(
        out.stderr.contains("inside the git work tree") && out.stderr.contains("manifest line 9"),
        "{}",
        out.stderr
    );
    assert!(!c.root.exists());

    c.manifest(
        "",
        "  - path: a\n    secret: ${p}/a\n    allow_in_repository: true\n",
    );
    let out = c.credfile().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(out.stderr.contains("does not ignore it"), "{}", out.stderr);

    fs::write(c.dir.path().join(".gitignore"), "/root/\n").unwrap();
    let out = c.credfile().run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert!(out.stderr.contains("git-ignored"), "{}", out.stderr);

    // A repository below the root counts too: a target inside it is refused.
    let d = Case::new("git-below");
    d.seeder.create_string(&d.name("a"), &canary_value());
    fs::create_dir_all(d.root.join("myapp")).unwrap();
    assert!(
        Command::new("git")
            .args(["init", "-q"])
            .current_dir(d.root.join("myapp"))
            .output()
            .unwrap()
            .status
            .success()
    );
    d.manifest("", "  - path: myapp/.env\n    secret: ${p}/a\n");
    let out = d.credfile().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(
        out.stderr.contains("inside the git work tree") && out.stderr.contains("myapp"),
        "{}",
        out.stderr
    );
    assert!(!d.root.join("myapp/.env").exists());
}

#[test]
fn memory_filesystem_is_warned_about_or_required() {
    let c = Case::new("memfs");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${p}/a\n");
    let disk = nix::sys::statfs::statfs(c.dir.path())
        .unwrap()
        .filesystem_type()
        != nix::sys::statfs::TMPFS_MAGIC;
    if disk {
        let out = c.apply();
        out.assert_code(0);
        assert!(out.stderr.contains("not in memory"), "{}", out.stderr);
        c.manifest(
            "    require_memory_fs: true\n",
            "  - path: a\n    secret: ${p}/a\n",
        );
        let out = c.credfile().run(["apply", "--env", "test"]);
        out.assert_code(WRITE);
        assert!(out.stderr.contains("require_memory_fs"), "{}", out.stderr);
    }
    if Path::new("/dev/shm").is_dir() {
        let m = Case::in_dir("memfs-shm", Some(Path::new("/dev/shm")));
        m.seeder.create_string(&m.name("a"), &canary_value());
        m.manifest(
            "    require_memory_fs: true\n",
            "  - path: a\n    secret: ${p}/a\n",
        );
        let out = m.apply();
        out.assert_code(0);
        assert!(!out.stderr.contains("not in memory"), "{}", out.stderr);
    }
}

/// Whether `text` holds a line that a name forged: `error: forged` at a line's start (what the
/// Ansible module and a person read as credfile's own), or a raw U+202E.
fn forged(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("error: forged") || l.starts_with("::"))
        || text.contains('\u{202e}')
}

#[test]
fn hostile_key_names_are_refused_and_shown_escaped_in_every_output() {
    let c = Case::new("hostile-names");
    let name = c.name("db");
    c.seeder.create_json(
        &name,
        &serde_json::json!({
            "user": canary_value(),
            "a\nerror: forged\n::warning::forged": canary_value(),
            "invoice\u{202e}fdp.exe": canary_value(),
        }),
    );
    // GitHub-like (for the step summary), with moto's static keys.
    c.manifest(
        "    allow_static_credentials: true\n",
        "  - path: db\n    secret: ${p}/db\n    keys: all\n",
    );
    let summary = c.dir.path().join("summary.md");
    let run = |extra: &[&str]| {
        let mut args = vec!["apply", "--env", "test"];
        args.extend_from_slice(extra);
        c.credfile()
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
            .run(args)
    };
    for extra in [
        &[][..],
        &["--output", "json"][..],
        &["--log-format", "json", "--output", "json"][..],
    ] {
        let out = run(extra);
        out.assert_code(5);
        for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(!forged(text), "{extra:?} {what}: {text}");
        }
        // Refused by name, escaped: the person sees which key and what is wrong with it.
        let named = |text: &str| {
            text.contains("a\\nerror: forged\\n::warning::forged")
                && text.contains("invoice\\u{202e}fdp.exe")
                && text.contains("cannot be a file name")
        };
        if extra.contains(&"json") {
            let v = out.json();
            let message = v["error"]["message"].as_str().unwrap();
            assert!(named(message) && !forged(message), "{message}");
        } else {
            assert!(named(&out.stderr), "{}", out.stderr);
        }
        if extra.contains(&"--log-format") {
            for line in out.stderr.lines() {
                let record: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not one JSON record per line ({e}): {line}"));
                assert!(!forged(&record.to_string()), "{record}");
            }
        }
    }
    let summary = fs::read_to_string(&summary).unwrap();
    assert!(!forged(&summary), "{summary}");
    assert!(summary.contains("invoice\\u{202e}fdp.exe"), "{summary}");
    assert!(!c.root.join("db").exists(), "nothing was written");
}

#[test]
fn the_ansible_module_message_cannot_be_forged_by_a_key() {
    let c = Case::new("hostile-ansible");
    c.seeder.create_json(
        &c.name("db"),
        &serde_json::json!({"k\nerror: forged \u{202e}": canary_value()}),
    );
    c.manifest("", "  - path: db\n    secret: ${p}/db\n    keys: all\n");
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "pipeline-examples/ansible/ansible_collections/credfile/deploy/plugins/modules/credfile.py",
    );
    let args = c.dir.path().join("args.json");
    fs::write(
        &args,
        serde_json::json!({"ANSIBLE_MODULE_ARGS": {
            "env": "test",
            "manifest": c.dir.path().join("credfile.yaml"),
            "binary": env!("CARGO_BIN_EXE_credfile"),
        }})
        .to_string(),
    )
    .unwrap();
    // The module as Ansible runs it on a host: a Python program given its arguments file.
    let out = c
        .credfile()
        .program(support::test_python())
        .run([module.to_str().unwrap(), args.to_str().unwrap()]);
    let result: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("module output is not JSON ({e}): {}", out.stdout));
    assert_eq!(result["failed"], true, "{result}");
    assert_eq!(result["rc"], 5, "{result}");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("k\\nerror: forged \\u{202e}") && !forged(msg) && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(
        msg.matches("error: ").count(),
        2,
        "one error, escaped name inside: {msg}"
    );
}

#[test]
fn format_characters_in_manifest_paths_and_secret_arns_are_refused_or_escaped() {
    let c = Case::new("hostile-manifest");
    c.manifest(
        "",
        "  - path: \"report\\u202Efdp.exe\"\n    secret: ${p}/a\n",
    );
    let out = c.credfile().run(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("report\\u{202e}fdp.exe")
            && out.stderr.contains("format character")
            && !forged(&out.stderr),
        "{}",
        out.stderr
    );
    // A secret named by ARN: its name part is not checked for characters, so it is escaped.
    c.manifest(
        "",
        "  - path: a\n    secret: \"arn:aws:secretsmanager:us-east-1:123456789012:secret:x\\nerror: forged\\u202E-AbCdEf\"\n",
    );
    let out = c.apply();
    out.assert_code(4);
    assert!(!forged(&out.stderr), "{}", out.stderr);
    assert!(
        out.stderr.contains("x\\nerror: forged\\u{202e}-AbCdEf"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_root_under_a_disk_backed_run_is_not_told_to_move_to_run() {
    let on_memory = |p: &str| {
        nix::sys::statfs::statfs(p).is_ok_and(|s| {
            let t = s.filesystem_type();
            t == nix::sys::statfs::TMPFS_MAGIC || t.0 as u64 == 0x8584_58f6
        })
    };
    if on_memory("/run") || !Path::new("/run").is_dir() || !is_root() {
        eprintln!("skipped: /run is a tmpfs here (or absent, or not root): nothing to mislead");
        return;
    }
    let c = Case::in_dir("memfs-run", Some(Path::new("/run")));
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${p}/a\n");
    let out = c.apply();
    out.assert_code(0);
    let warning = out
        .stderr
        .lines()
        .find(|l| l.contains("not in memory"))
        .unwrap_or_else(|| panic!("no warning: {}", out.stderr));
    assert!(
        warning.contains("/run is not a tmpfs on this host") && !warning.contains("under /run"),
        "{warning}"
    );
    if on_memory("/dev/shm") {
        assert!(warning.contains("under /dev/shm"), "{warning}");
    }
}
