//! The lifecycle after "files written": set-atomic rotation, verify (drift), clean, change hooks,
//! templates, and the CI-native reports. The real binary against moto, like integration.rs.

use crate::support;
use crate::support::is_root;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{Canaries, Case, Credfile, Output, assert_no_leak, canary_value, snapshot};

pub(crate) const USAGE: i32 = 2;
pub(crate) const RENDER: i32 = 5;
pub(crate) const WRITE: i32 = 6;
pub(crate) const DRIFT: i32 = 7;
pub(crate) const HOOK: i32 = 8;

/// The manifest's app name in these tests.
pub(crate) const APP: &str = "lc";

/// What only the lifecycle tests need of a case.
impl Case {
    pub(crate) fn apply(&self) -> Output {
        self.run(&["apply", "--output", "json"])
    }

    /// The live generation's directory.
    pub(crate) fn live(&self) -> PathBuf {
        self.root()
            .join(fs::read_link(self.root().join("current")).unwrap())
    }
}

pub(crate) fn drift_kinds(out: &Output) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = out.json()["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_string(),
                d["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Set-atomic rotation

/// A reader that reads the set through one open of `current` (the consumer contract) while
/// credfile rotates every secret 200 times never sees two generations mixed, and a reader that
/// opens each file by its stable name never finds one missing.
#[test]
fn reader_never_sees_a_mixed_set_during_200_rotations() {
    let c = Case::new(APP, "rotate");
    let names = ["a", "b", "c"];
    for n in names {
        c.seeder
            .create_string(&c.name(n), &format!("0:{}", canary_value()));
    }
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n  - path: b\n    secret: ${prefix}/b\n  - path: sub/c\n    secret: ${prefix}/c\n",
    );
    c.apply().assert_code(0);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let root = c.root();
    let reader = {
        let (stop, reads, root) = (stop.clone(), reads.clone(), root.clone());
        std::thread::spawn(move || -> Result<(), String> {
            let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC;
            while !stop.load(Ordering::Relaxed) {
                // A consistent set: open `current` once, then everything relative to it.
                let set = fs::File::open(root.join("current"))
                    .map_err(|e| format!("open current: {e}"))?;
                let mut seen = Vec::new();
                for rel in ["a", "b", "sub/c"] {
                    let fd =
                        nix::fcntl::openat(set.as_fd(), rel, flags, nix::sys::stat::Mode::empty())
                            .map_err(|e| format!("{rel} missing in an open generation: {e}"))?;
                    let text = std::io::read_to_string(fs::File::from(fd))
                        .map_err(|e| format!("read {rel}: {e}"))?;
                    seen.push(text.split(':').next().unwrap_or_default().to_string());
                }
                if seen.iter().any(|g| *g != seen[0]) {
                    return Err(format!("mixed generations: {seen:?}"));
                }
                // Stable names: each one always resolves to a complete file.
                for rel in ["a", "b", "sub/c"] {
                    let text = fs::read_to_string(root.join(rel))
                        .map_err(|e| format!("{rel} missing through its link: {e}"))?;
                    if !text.contains(':') || text.len() < 10 {
                        return Err(format!("{rel} incomplete"));
                    }
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    for i in 1..=200 {
        for n in names {
            c.seeder
                .put_string(&c.name(n), &format!("{i}:{}", canary_value()));
        }
        let out = c.credfile().run(["apply", "--env", "test"]);
        out.assert_code(0);
        assert!(!reader.is_finished(), "the reader stopped at rotation {i}");
    }
    stop.store(true, Ordering::Relaxed);
    let result = reader.join().unwrap();
    assert_eq!(result, Ok(()), "the reader saw a broken set");
    assert!(
        reads.load(Ordering::Relaxed) > 200,
        "the reader kept reading"
    );
    // Rotation 200 is live, and at most the previous generation is kept.
    assert!(
        fs::read_to_string(c.root().join("sub/c"))
            .unwrap()
            .starts_with("200:")
    );
    let generations = fs::read_dir(c.root())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".credfile-gen-")
        })
        .count();
    assert_eq!(generations, 2, "the live generation and the previous one");
}

#[test]
fn generation_layout_on_disk_and_files_layout_side_by_side() {
    let c = Case::new(APP, "layouts");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n  - path: d/e/f\n    secret: ${prefix}/a\n",
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(out.json()["layout"], "generation");
    for top in ["a", "d"] {
        assert_eq!(
            fs::read_link(c.root().join(top)).unwrap(),
            Path::new("current").join(top)
        );
    }
    let live = c.live();
    assert!(
        live.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".credfile-gen-000001-")
    );
    assert_eq!(
        fs::metadata(live.join("d/e/f")).unwrap().mode() & 0o7777,
        0o400
    );
    let state: Value =
        serde_json::from_slice(&fs::read(c.root().join(".credfile-state.json")).unwrap()).unwrap();
    assert_eq!(state["layout"], "generation");
    assert_eq!(state["files"][1]["path"], "d/e/f");
    assert_eq!(
        fs::metadata(c.root().join(".credfile-state.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );

    // A file that leaves the manifest is removed with its link; the set switches at once.
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(out.json()["summary"]["removed"], 1);
    assert!(fs::symlink_metadata(c.root().join("d")).is_err());
    assert!(c.live().join("a").exists() && !c.live().join("d").exists());

    // The same root cannot silently switch layouts.
    c.manifest(
        "    layout: files\n",
        "  - path: a\n    secret: ${prefix}/a\n",
    );
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(out.stderr.contains("layout: generation"), "{}", out.stderr);
    c.run(&["clean"]).assert_code(0);
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(out.json()["layout"], "files");
    let m = fs::symlink_metadata(c.root().join("a")).unwrap();
    assert!(m.is_file(), "files layout: a regular file at the path");
}

#[test]
fn current_is_a_reserved_name_in_the_generation_layout() {
    let c = Case::new(APP, "reserved");
    c.manifest("", "  - path: current\n    secret: ${prefix}/a\n");
    let out = c.credfile().run(["validate"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains("credfile.yaml:10:11: path `current`"),
        "{}",
        out.stderr
    );
    c.manifest(
        "    layout: files\n",
        "  - path: current\n    secret: ${prefix}/a\n",
    );
    c.credfile().run(["validate"]).assert_code(0);
}

// ---------------------------------------------------------------------------------------------
// verify

pub(crate) fn applied_for_verify(name: &str) -> Case {
    let c = Case::new(APP, name);
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.seeder.create_string(&c.name("b"), &canary_value());
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n  - path: b\n    secret: ${prefix}/b\n  - path: sub/c\n    secret: ${prefix}/b\n",
    );
    c.apply().assert_code(0);
    c
}

#[test]
fn verify_is_in_sync_after_apply_and_names_each_drift_kind() {
    let c = applied_for_verify("verify");
    let verify = || c.run(&["verify", "--output", "json"]);
    let out = verify();
    out.assert_code(0);
    assert_eq!(out.json()["in_sync"], true);
    let human = c.run(&["verify"]);
    human.assert_code(0);
    assert!(human.stdout.contains("in sync"), "{}", human.stdout);

    // content: the live file rewritten in place.
    let live_a = c.live().join("a");
    fs::write(&live_a, b"tampered-content").unwrap();
    let out = verify();
    out.assert_code(DRIFT);
    assert_eq!(drift_kinds(&out), [("a".into(), "content".into())]);
    assert!(out.stderr.contains("1 difference"), "{}", out.stderr);
    // apply restores it (a new generation), and verify agrees again.
    c.apply().assert_code(0);
    verify().assert_code(0);

    // mode
    let live_b = c.live().join("b");
    fs::set_permissions(&live_b, fs::Permissions::from_mode(0o644)).unwrap();
    let out = verify();
    out.assert_code(DRIFT);
    assert_eq!(drift_kinds(&out), [("b".into(), "mode".into())]);
    fs::set_permissions(&live_b, fs::Permissions::from_mode(0o400)).unwrap();

    // owner and group
    if is_root() {
        nix::unistd::chown(
            &live_b,
            Some(nix::unistd::Uid::from_raw(4242)),
            Some(nix::unistd::Gid::from_raw(4243)),
        )
        .unwrap();
        let out = verify();
        out.assert_code(DRIFT);
        assert_eq!(
            drift_kinds(&out),
            [("b".into(), "group".into()), ("b".into(), "owner".into())]
        );
        nix::unistd::chown(
            &live_b,
            Some(nix::unistd::Uid::from_raw(0)),
            Some(nix::unistd::Gid::from_raw(0)),
        )
        .unwrap();
    }
    verify().assert_code(0);

    // missing: a stable link removed, and a file removed from the live generation.
    fs::remove_file(c.root().join("a")).unwrap();
    fs::remove_file(c.live().join("sub/c")).unwrap();
    let out = verify();
    out.assert_code(DRIFT);
    assert_eq!(
        drift_kinds(&out),
        [
            ("a".into(), "missing".into()),
            ("sub/c".into(), "missing".into())
        ]
    );
    c.apply().assert_code(0);
    verify().assert_code(0);

    // extra: a file planted in the root and one in the live generation.
    fs::write(c.root().join("stray"), b"x").unwrap();
    fs::write(c.live().join("sub/extra"), b"x").unwrap();
    let out = verify();
    out.assert_code(DRIFT);
    assert_eq!(
        drift_kinds(&out),
        [
            ("stray".into(), "extra".into()),
            ("sub/extra".into(), "extra".into())
        ]
    );
    fs::remove_file(c.root().join("stray")).unwrap();
    fs::remove_file(c.live().join("sub/extra")).unwrap();

    // type: a stable link swapped for a link elsewhere, a live file swapped for a symlink.
    let outside = c.path("outside");
    fs::write(&outside, b"elsewhere").unwrap();
    fs::remove_file(c.root().join("b")).unwrap();
    symlink(&outside, c.root().join("b")).unwrap();
    let out = verify();
    out.assert_code(DRIFT);
    assert_eq!(drift_kinds(&out), [("b".into(), "type".into())]);
    fs::remove_file(c.root().join("b")).unwrap();
    symlink("current/b", c.root().join("b")).unwrap();
    fs::remove_file(c.live().join("a")).unwrap();
    symlink(&outside, c.live().join("a")).unwrap();
    let out = verify();
    out.assert_code(DRIFT);
    assert_eq!(drift_kinds(&out), [("a".into(), "type".into())]);
    assert_eq!(fs::read(&outside).unwrap(), b"elsewhere");

    // A live generation others could write to is reported, not trusted.
    let live = c.live();
    fs::set_permissions(&live, fs::Permissions::from_mode(0o777)).unwrap();
    let out = verify();
    out.assert_code(DRIFT);
    let generation = live.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(drift_kinds(&out), [(generation, "type".into())]);
    assert!(
        out.stdout.contains("writable by group or others"),
        "{}",
        out.stdout
    );
}

#[test]
fn verify_offline_makes_no_network_call() {
    let c = applied_for_verify("verify-offline");
    // No endpoint is reachable: port 9 (discard) on loopback refuses connections.
    let offline = Credfile::new("http://127.0.0.1:9")
        .cwd(c.dir.path())
        .fail_fast();
    let out = offline.run(["verify", "--env", "test", "--offline", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(out.json()["offline"], true);
    // Content drift is invisible offline; metadata drift is not.
    fs::write(c.live().join("a"), b"tampered").unwrap();
    offline
        .run(["verify", "--env", "test", "--offline"])
        .assert_code(0);
    fs::set_permissions(c.live().join("a"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = offline.run(["verify", "--env", "test", "--offline", "--output", "json"]);
    out.assert_code(DRIFT);
    assert_eq!(drift_kinds(&out), [("a".into(), "mode".into())]);
    // Without --offline the same environment needs the network (and fails without it).
    let out = offline.run(["verify", "--env", "test"]);
    assert_ne!(out.status_code, 0);
    assert_ne!(out.status_code, DRIFT);
}

#[test]
fn verify_in_the_files_layout() {
    let c = Case::new(APP, "verify-files");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest(
        "    layout: files\n",
        "  - path: a\n    secret: ${prefix}/a\n  - path: d/b\n    secret: ${prefix}/a\n",
    );
    c.apply().assert_code(0);
    c.run(&["verify"]).assert_code(0);
    fs::write(c.root().join("a"), b"changed").unwrap();
    fs::remove_file(c.root().join("d/b")).unwrap();
    let out = c.run(&["verify", "--output", "json"]);
    out.assert_code(DRIFT);
    assert_eq!(
        drift_kinds(&out),
        [
            ("a".into(), "content".into()),
            ("d/b".into(), "missing".into())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// clean

#[test]
fn clean_removes_exactly_what_apply_created() {
    let c = Case::new(APP, "clean");
    c.seeder.create_string(&c.name("a"), &canary_value());
    // The parent of the root exists; the root does not: credfile creates it.
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n  - path: x/y/z\n    secret: ${prefix}/a\n",
    );
    let outside = c.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"keep me").unwrap();
    let before = snapshot(c.dir.path());

    c.apply().assert_code(0);
    // Rotate once so there is a previous generation too.
    c.seeder.put_string(&c.name("a"), &canary_value());
    c.apply().assert_code(0);
    let out = c.run(&["clean"]);
    out.assert_code(0);
    assert!(out.stdout.contains("removed"), "{}", out.stdout);
    assert_eq!(
        snapshot(c.dir.path()),
        before,
        "everything apply created is gone, the root included, nothing else changed"
    );
    // Clean again: nothing recorded, nothing to do.
    let again = c.run(&["clean"]);
    again.assert_code(0);
    assert!(
        again.stdout.contains("nothing to remove"),
        "{}",
        again.stdout
    );
}

#[test]
fn clean_leaves_foreign_files_and_symlink_targets_alone() {
    let c = Case::new(APP, "clean-foreign");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n  - path: b\n    secret: ${prefix}/a\n",
    );
    let outside = c.path("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"keep me").unwrap();
    c.apply().assert_code(0);

    // Planted after apply: a foreign file, a link out of the root, and credfile's link `b`
    // replaced by a link to a file outside.
    fs::write(c.root().join("foreign"), b"not credfile's").unwrap();
    symlink(&outside, c.root().join("escape")).unwrap();
    fs::remove_file(c.root().join("b")).unwrap();
    symlink(outside.join("victim"), c.root().join("b")).unwrap();
    let outside_before = snapshot(&outside);

    let out = c.run(&["clean"]);
    out.assert_code(0);
    assert!(out.stdout.contains("kept"), "{}", out.stdout);
    let mut left: Vec<String> = fs::read_dir(c.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [".credfile-state.json", "b", "escape", "foreign"],
        "only what credfile did not create, and its record of the link it kept"
    );
    assert_eq!(
        fs::read(c.root().join("foreign")).unwrap(),
        b"not credfile's"
    );
    assert_eq!(
        fs::read_link(c.root().join("b")).unwrap(),
        outside.join("victim")
    );
    assert_eq!(
        snapshot(&outside),
        outside_before,
        "nothing outside the root touched"
    );
}

#[test]
fn clean_in_the_files_layout_removes_only_the_inodes_it_wrote() {
    let c = Case::new(APP, "clean-files");
    c.seeder.create_string(&c.name("a"), &canary_value());
    fs::create_dir(c.root()).unwrap();
    fs::write(c.root().join("preexisting"), b"mine").unwrap();
    c.manifest(
        "    layout: files\n",
        "  - path: a\n    secret: ${prefix}/a\n  - path: d/b\n    secret: ${prefix}/a\n  - path: e/c\n    secret: ${prefix}/a\n",
    );
    let before = snapshot(c.dir.path());
    c.apply().assert_code(0);
    // `a` replaced by someone else's file at the same path; a foreign file inside `d`.
    fs::remove_file(c.root().join("a")).unwrap();
    fs::write(c.root().join("a"), b"someone else's").unwrap();
    fs::write(c.root().join("d/foreign"), b"x").unwrap();
    let out = c.run(&["clean"]);
    out.assert_code(0);
    assert_eq!(fs::read(c.root().join("a")).unwrap(), b"someone else's");
    assert_eq!(fs::read(c.root().join("d/foreign")).unwrap(), b"x");
    assert!(!c.root().join("d/b").exists() && !c.root().join("e").exists());
    // The kept file stays recorded (the root is not orphaned); once it is gone, so is the record.
    assert!(c.root().join(".credfile-state.json").exists());
    fs::remove_file(c.root().join("a")).unwrap();
    c.run(&["clean"]).assert_code(0);
    assert!(!c.root().join(".credfile-state.json").exists());
    fs::remove_file(c.root().join("d/foreign")).unwrap();
    fs::remove_dir(c.root().join("d")).unwrap();
    assert_eq!(snapshot(c.dir.path()), before);
}

#[test]
fn a_root_belongs_to_one_environment() {
    let c = Case::new(APP, "owner");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    c.apply().assert_code(0);
    let text = fs::read_to_string(c.dir.path().join("credfile.yaml"))
        .unwrap()
        .replace("  test:\n", "  other:\n");
    fs::write(c.dir.path().join("credfile.yaml"), text).unwrap();
    for cmd in ["apply", "clean"] {
        let out = c.credfile().fail_fast().run([cmd, "--env", "other"]);
        out.assert_code(WRITE);
        assert!(out.stderr.contains("environment `test`"), "{}", out.stderr);
    }
    assert!(c.root().join("a").exists());
}

// ---------------------------------------------------------------------------------------------
// hooks

#[test]
fn hooks_run_after_commit_only_on_change_once_in_order_with_a_scrubbed_environment() {
    let c = Case::new(APP, "hooks");
    let va = canary_value();
    c.seeder.create_string(&c.name("a"), &va);
    c.seeder.create_string(&c.name("b"), &canary_value());
    let log = c.path("order.log");
    let env_dump = c.path("env.dump");
    let seen = c.path("seen-a");
    let hook = |tag: &str, extra: &str| {
        format!(
            "[/bin/sh, -c, 'echo {tag} >> {log}{extra}']",
            log = log.display()
        )
    };
    let dump = format!(
        "; env > {}; cat {}/a > {}",
        env_dump.display(),
        c.root().display(),
        seen.display()
    );
    c.manifest(
        &format!("    on_change: {}\n", hook("env", "")),
        &format!(
            "  - path: a\n    secret: ${{prefix}}/a\n    on_change: {}\n  - path: b\n    secret: ${{prefix}}/b\n    on_change: {}\n  - path: b2\n    secret: ${{prefix}}/b\n    on_change: {}\n",
            hook("A", &dump),
            hook("B", ""),
            hook("B", ""),
        ),
    );
    let out = c
        .credfile()
        .env("CREDFILE_TEST_SHOULD_NOT_PASS", "x")
        .run(["apply", "--env", "test", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "A\nB\nenv\n",
        "file hooks in manifest order, the duplicate once, then the environment's"
    );
    // After the commit: the hook saw the new value through the stable name.
    assert_eq!(fs::read_to_string(&seen).unwrap(), va);
    // The scrubbed environment: the allow-list plus credfile's variables, nothing else.
    let env = fs::read_to_string(&env_dump).unwrap();
    assert_no_leak(&Canaries::global(), &env, "the hook's environment");
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .filter(|k| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k))
        .collect();
    for n in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "CREDFILE_CHANGED",
                "CREDFILE_ROOT",
                "CREDFILE_APP",
                "CREDFILE_ENV"
            ]
            .contains(n),
            "unexpected variable {n} in\n{env}"
        );
    }
    assert!(
        env.contains(&format!("CREDFILE_CHANGED={}/a\n", c.root().display())),
        "{env}"
    );
    assert!(!env.contains("AWS_"), "{env}");
    let report = out.json();
    assert_eq!(report["hooks"].as_array().unwrap().len(), 3);
    assert_eq!(report["hooks"][1]["changed"].as_array().unwrap().len(), 2);
    assert_eq!(report["hooks"][2]["status"], "ok");

    // Unchanged: no hook.
    fs::remove_file(&log).unwrap();
    c.apply().assert_code(0);
    assert!(!log.exists(), "no hook on an unchanged apply");

    // One file rotated: its hook and the environment's, nothing else.
    c.seeder.put_string(&c.name("a"), &canary_value());
    c.apply().assert_code(0);
    assert_eq!(fs::read_to_string(&log).unwrap(), "A\nenv\n");

    // plan lists what would run and runs nothing.
    c.seeder.put_string(&c.name("b"), &canary_value());
    fs::remove_file(&log).unwrap();
    let out = c.run(&["plan", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(out.json()["hooks"][0]["status"], "planned");
    assert!(!log.exists());
}

#[test]
fn a_failing_hook_exits_8_after_the_files_are_committed() {
    let c = Case::new(APP, "hook-fail");
    let v = canary_value();
    c.seeder.create_string(&c.name("a"), &v);
    let after = c.path("after");
    c.manifest(
        "",
        &format!(
            "  - path: a\n    secret: ${{prefix}}/a\n    on_change: [/bin/sh, -c, 'exit 3']\n  - path: b\n    secret: ${{prefix}}/a\n    on_change: [/bin/sh, -c, 'touch {}']\n",
            after.display()
        ),
    );
    let out = c.apply();
    out.assert_code(HOOK);
    assert_eq!(
        fs::read_to_string(c.root().join("a")).unwrap(),
        v,
        "committed"
    );
    assert!(after.exists(), "later hooks still run");
    assert!(
        out.stderr.contains("exited with status 3") && out.stderr.contains("committed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.json()["hooks"][0]["exit_code"], 3);
    assert_eq!(out.json()["hooks"][0]["status"], "failed");

    // A hook that outlives its timeout is killed, with everything it started. It would sleep
    // far beyond the runner's timeout, so a run that waited for it fails there; the processes
    // it started (pids it wrote down) are gone afterwards. Order, not time.
    c.seeder.put_string(&c.name("a"), &canary_value());
    let pids = c.path("pids");
    c.manifest(
        "",
        &format!(
            "  - path: a\n    secret: ${{prefix}}/a\n    on_change: [/bin/sh, -c, 'sleep 600 & echo $$ $! > {}; sleep 600']\n",
            pids.display()
        ),
    );
    let out = c.run(&["apply", "--hook-timeout", "1"]);
    out.assert_code(HOOK);
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    let pids: Vec<u32> = fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "the shell and its background sleep");
    // Gone, or a zombie waiting for init to reap it.
    let alive = |pid: &u32| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
    };
    for _ in 0..3000 {
        if !pids.iter().any(alive) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!pids.iter().any(alive), "left running: {pids:?}");
}
