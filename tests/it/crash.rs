//! SIGKILL at every step of a write, with the crash points of a binary built with the
//! `fault-points` feature (scripts/test.sh builds it aside and names it in
//! CREDFILE_TEST_FAULT_BIN). After a kill, a reader sees the old set or the new set, complete,
//! never a mix; the next run completes the change and sweeps the debris. Also: two concurrent
//! applies to one root serialize on its lock (asserted by the order of the points each process
//! logs, never by timing them).

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use support::{Credfile, Seeder, canary_value, moto_endpoint, unique_prefix};

const KILLED: i32 = 128 + 9;
const NAMES: [&str; 3] = ["a", "sub/b", "c"];

fn fault_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("CREDFILE_TEST_FAULT_BIN")
        .map(PathBuf::from)
        .filter(|p| p.exists());
    if bin.is_none() {
        eprintln!(
            "skipped: CREDFILE_TEST_FAULT_BIN is not set (scripts/test.sh builds credfile with --features fault-points and sets it)"
        );
    }
    bin
}

struct Case {
    dir: tempfile::TempDir,
    prefix: String,
    seeder: Seeder,
}

impl Case {
    fn new(name: &str, layout: &str) -> Case {
        let c = Case {
            dir: tempfile::Builder::new()
                .prefix("credfile-crash-")
                .tempdir()
                .unwrap(),
            prefix: unique_prefix(name),
            seeder: Seeder::new(&moto_endpoint()),
        };
        let mut files = String::new();
        for n in NAMES {
            c.seeder
                .create_string(&c.name(n), &format!("v1-{}", canary_value()));
            files.push_str(&format!("  - path: {n}\n    secret: {}\n", c.name(n)));
        }
        fs::write(
            c.dir.path().join("credfile.yaml"),
            format!(
                "version: 1\napp: crash\nenvironments:\n  test:\n    region: us-east-1\n    root: {}\n    layout: {layout}\nfiles:\n{files}",
                c.root().display()
            ),
        )
        .unwrap();
        c
    }

    fn name(&self, short: &str) -> String {
        format!("{}/{short}", self.prefix.replace('/', "-"))
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn credfile(&self) -> Credfile {
        Credfile::new(&moto_endpoint()).cwd(self.dir.path())
    }

    fn rotate(&self) {
        for n in NAMES {
            self.seeder
                .put_string(&self.name(n), &format!("v2-{}", canary_value()));
        }
    }

    /// Which version each file holds, read through `dir`.
    fn versions_in(&self, dir: &Path) -> Vec<String> {
        NAMES
            .iter()
            .map(|n| {
                let bytes = fs::read(dir.join(n))
                    .unwrap_or_else(|e| panic!("{n} unreadable after the crash: {e}"));
                let value = String::from_utf8(bytes).unwrap();
                let current = self.seeder.get_string(&self.name(n));
                if value == current {
                    "new".to_string()
                } else if value.starts_with("v1-") {
                    "old".to_string()
                } else {
                    panic!("{n} holds neither the old nor the new value (torn?)")
                }
            })
            .collect()
    }
}

/// One set: all old or all new. Read through one resolution of `current`, as consumers must.
fn one_set(c: &Case) -> String {
    let generation = fs::canonicalize(c.root().join("current")).unwrap();
    let through_current = c.versions_in(&generation);
    assert!(
        through_current.windows(2).all(|w| w[0] == w[1]),
        "a mixed set: {through_current:?}"
    );
    let through_links = c.versions_in(&c.root());
    assert_eq!(
        through_links, through_current,
        "the stable names show the same set"
    );
    through_current[0].clone()
}

fn debris(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".credfile") && n.ends_with(".tmp"))
        .collect()
}

fn generations(root: &Path) -> usize {
    fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".credfile-gen-")
        })
        .count()
}

#[test]
fn a_kill_at_any_step_leaves_the_old_or_the_new_set() {
    let Some(bin) = fault_bin() else { return };
    // (point, the set a reader must see after the kill)
    let points = [
        ("locked", "old"),
        ("generation-file-written", "old"),
        ("generation-built", "old"),
        ("commit-link-made", "old"),
        ("committed", "new"),
        ("linked", "new"),
    ];
    for (point, expected) in points {
        let c = Case::new(&format!("kill-{point}"), "generation");
        c.credfile().run(["apply", "--env", "test"]).assert_code(0);
        c.rotate();
        let out = c
            .credfile()
            .program(&bin)
            .env("CREDFILE_FAULT", format!("kill@{point}"))
            .run(["apply", "--env", "test"]);
        assert_eq!(
            out.status_code, KILLED,
            "{point}: the fault point was reached\n{}",
            out.stderr
        );
        assert_eq!(one_set(&c), expected, "{point}");

        // The next run completes the change and sweeps what the killed run left.
        let out = c.credfile().run(["apply", "--env", "test"]);
        out.assert_code(0);
        assert_eq!(one_set(&c), "new", "{point}: completed");
        assert!(
            debris(&c.root()).is_empty(),
            "{point}: debris {:?}",
            debris(&c.root())
        );
        assert!(
            generations(&c.root()) <= 2,
            "{point}: the live generation and at most the previous one"
        );
        let again = c
            .credfile()
            .run(["apply", "--env", "test", "--output", "json"]);
        again.assert_code(0);
        assert_eq!(
            again.json()["summary"]["unchanged"],
            3,
            "{point}: nothing left to do"
        );
        assert!(generations(&c.root()) <= 2);
    }
}

#[test]
fn a_kill_between_files_in_the_files_layout_leaves_only_whole_files() {
    let Some(bin) = fault_bin() else { return };
    let c = Case::new("kill-files", "files");
    c.credfile().run(["apply", "--env", "test"]).assert_code(0);
    c.rotate();
    let out = c
        .credfile()
        .program(&bin)
        .env("CREDFILE_FAULT", "kill@file-published")
        .run(["apply", "--env", "test"]);
    assert_eq!(out.status_code, KILLED, "{}", out.stderr);
    // Per-file replacement: each file is whole (old or new); the set may be mixed, which is
    // why `generation` is the default layout.
    let versions = c.versions_in(&c.root());
    assert_eq!(
        versions.iter().filter(|v| *v == "new").count(),
        1,
        "exactly the first file was published: {versions:?}"
    );
    c.credfile().run(["apply", "--env", "test"]).assert_code(0);
    assert!(c.versions_in(&c.root()).iter().all(|v| v == "new"));
    assert!(debris(&c.root()).is_empty(), "{:?}", debris(&c.root()));
    let mut stack = vec![c.root()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !(name.starts_with(".credfile-") && name.ends_with(".tmp")),
                "debris {name}"
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// The fault points each process reached, in order: (pid, point), from CREDFILE_FAULT_LOG.
fn events(log: &Path) -> Vec<(u32, String)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pid, point) = l.split_once(' ')?;
            Some((pid.parse().ok()?, point.to_string()))
        })
        .collect()
}

/// Whether the kernel lists `pid` as waiting for a `flock` on the inode `ino` (a `->` line
/// of /proc/locks: `1: -> FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF`).
fn waits_for_flock(pid: u32, ino: u64) -> bool {
    fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"->")
                && f.get(2) == Some(&"FLOCK")
                && f.get(5) == Some(&pid.to_string().as_str())
                && f.get(6)
                    .and_then(|dev| dev.rsplit(':').next())
                    .and_then(|i| i.parse::<u64>().ok())
                    == Some(ino)
        })
}

/// Polls `cond` until it holds; the limit only fails a hung test, it measures nothing.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn concurrent_applies_serialize_on_the_root_lock() {
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex};

    let Some(bin) = fault_bin() else { return };
    let c = Case::new("lock", "generation");
    c.credfile().run(["apply", "--env", "test"]).assert_code(0);
    c.rotate();
    let log = c.dir.path().join("fault.log");
    let go = c.dir.path().join("go");
    let root_ino = fs::metadata(c.root()).unwrap().ino();
    let logged = |cf: Credfile| {
        cf.program(&bin)
            .env("CREDFILE_FAULT_LOG", log.display().to_string())
    };
    let spawn = |cf: Credfile, args: &'static [&'static str]| {
        let pid = Arc::new(Mutex::new(None));
        let seen = pid.clone();
        let cf = cf.on_spawn(move |p| *seen.lock().unwrap() = Some(p));
        (thread::spawn(move || cf.run(args)), move || {
            *pid.lock().unwrap()
        })
    };

    // The first run takes the lock and holds it until the test says so.
    let (first, first_pid) = spawn(
        logged(c.credfile()).env("CREDFILE_FAULT", format!("wait@locked={}", go.display())),
        &["apply", "--env", "test"],
    );
    wait_until("the first run to take the lock", || {
        first_pid().is_some_and(|p| events(&log).contains(&(p, "locked".to_string())))
    });
    // The second run starts and blocks on the root's lock: the kernel shows it waiting.
    let (second, second_pid) = spawn(
        logged(c.credfile()),
        &["apply", "--env", "test", "--output", "json"],
    );
    wait_until("the second run to wait for the root's lock", || {
        second_pid().is_some_and(|p| waits_for_flock(p, root_ino))
    });
    let (a, b) = (first_pid().unwrap(), second_pid().unwrap());
    assert!(
        events(&log).iter().all(|(p, _)| *p == a),
        "only the holder has passed the lock: {:?}",
        events(&log)
    );
    fs::write(&go, "").unwrap();
    let (first, second) = (first.join().unwrap(), second.join().unwrap());
    first.assert_code(0);
    second.assert_code(0);

    // Every step of the first run came before the second run got the lock.
    let events = events(&log);
    let of = |pid: u32| -> Vec<&str> {
        events
            .iter()
            .filter(|(p, _)| *p == pid)
            .map(|(_, e)| e.as_str())
            .collect()
    };
    let last_of_first = events.iter().rposition(|(p, _)| *p == a).unwrap();
    let first_of_second = events.iter().position(|(p, _)| *p == b).unwrap();
    assert!(
        last_of_first < first_of_second,
        "the runs interleaved: {events:?}"
    );
    assert!(
        ["locked", "committed", "linked"]
            .iter()
            .all(|e| of(a).contains(e)),
        "the first run committed under the lock: {:?}",
        of(a)
    );
    assert_eq!(of(b).first(), Some(&"locked"), "{events:?}");
    assert!(!of(b).contains(&"committed"), "{events:?}");
    // The first run wrote the new set; the second found nothing left to do.
    assert_eq!(second.json()["summary"]["unchanged"], 3);
    assert_eq!(one_set(&c), "new");
}

#[test]
fn a_kill_after_the_commit_does_not_lose_the_change_hook() {
    let Some(bin) = fault_bin() else { return };
    for (layout, point) in [
        ("generation", "committed"),
        ("generation", "linked"),
        ("files", "file-published"),
    ] {
        let c = Case::new(&format!("hook-{point}"), layout);
        let log = c.dir.path().join("hook.log");
        let manifest = c.dir.path().join("credfile.yaml");
        let text = fs::read_to_string(&manifest).unwrap().replace(
            "    layout:",
            &format!(
                "    on_change: [/bin/sh, -c, 'echo ran >> {}']\n    layout:",
                log.display()
            ),
        );
        fs::write(&manifest, text).unwrap();
        let runs = || {
            fs::read_to_string(&log)
                .map(|s| s.lines().count())
                .unwrap_or(0)
        };

        c.credfile().run(["apply", "--env", "test"]).assert_code(0);
        assert_eq!(runs(), 1, "{layout}: the first apply ran the hook");
        c.rotate();
        let out = c
            .credfile()
            .program(&bin)
            .env("CREDFILE_FAULT", format!("kill@{point}"))
            .run(["apply", "--env", "test"]);
        assert_eq!(out.status_code, KILLED, "{}", out.stderr);
        assert_eq!(runs(), 1, "{layout}: killed before its hook");

        // The next run finds the change already live, and still owes the reload.
        c.credfile().run(["apply", "--env", "test"]).assert_code(0);
        assert_eq!(runs(), 2, "{layout}@{point}: the owed hook ran");
        c.credfile().run(["apply", "--env", "test"]).assert_code(0);
        assert_eq!(runs(), 2, "{layout}: and only once");
    }
}
