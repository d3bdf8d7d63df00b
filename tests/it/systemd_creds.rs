//! `deliver: systemd-creds` (docs/src/systemd-creds.md) against Debian's real systemd-creds,
//! which seals and opens credentials without systemd as PID 1: each test has its own host key
//! (`SYSTEMD_CREDENTIAL_SECRET` in a private directory) and moto for the secrets. A PATH shim
//! named `systemd-creds` records the argv and environment of every child credfile starts, then
//! execs the real program.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::systemd_creds::{REAL, World, path_with, write_script};
use crate::support::{canary_value, inode_of, mtime_of, statuses};

const ENV: &str = "    deliver: systemd-creds\n    credential_key: host\n";

fn two_files(w: &World) -> (String, String) {
    let db = canary_value();
    let api = canary_value();
    w.case.seeder.create_string(&w.case.name("db"), &db);
    w.case.seeder.create_string(&w.case.name("api"), &api);
    w.case.manifest(
        ENV,
        "  - path: db-password\n    secret: ${prefix}/db\n  - path: api.key\n    secret: ${prefix}/api\n",
    );
    (db, api)
}

#[test]
fn credentials_decrypt_to_the_exact_bytes_under_their_own_names_only() {
    let Some(w) = World::new("creds-exact") else {
        return;
    };
    let (db, api) = two_files(&w);
    w.run(&["apply"]).assert_code(0);
    let root = w.case.root();
    for (name, value) in [("db-password", &db), ("api.key", &api)] {
        let file = root.join(name);
        let sealed = fs::read(&file).unwrap();
        assert!(
            !sealed
                .windows(value.len())
                .any(|win| win == value.as_bytes()),
            "{name} holds the value in plaintext"
        );
        w.assert_opens_to(name, &file, value);
    }
    // Every child credfile started: the values were in no argv and no environment.
    let children = w.children();
    assert!(
        children.iter().any(|(argv, _)| argv.contains("encrypt")),
        "the shim saw no encrypt: {children:?}"
    );
    for (argv, env) in &children {
        for value in [&db, &api] {
            assert!(!argv.contains(value.as_str()), "a value in argv");
            assert!(
                !env.contains(value.as_str()),
                "a value in a child's environment"
            );
        }
        assert!(
            env.contains("SYSTEMD_CREDENTIAL_SECRET="),
            "systemd-creds does not get credfile's environment"
        );
    }
    // No temp file anywhere credfile may write one (its TMPDIR and HOME are checked by the
    // runner for every run) nor in the root: only sealed files there.
    for e in walk(&root) {
        let bytes = fs::read(&e).unwrap_or_default();
        for value in [&db, &api] {
            assert!(
                !bytes
                    .windows(value.len())
                    .any(|win| win == value.as_bytes()),
                "a value in plaintext at {}",
                e.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            out.extend(walk(&p));
        } else if t.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_unchanged_apply_writes_nothing_and_a_rotation_replaces_the_set() {
    let Some(w) = World::new("creds-rotate") else {
        return;
    };
    let (_db, api) = two_files(&w);
    w.run(&["apply"]).assert_code(0);
    let root = w.case.root();
    let live = |n: &str| root.join("current").join(n);
    let before: Vec<(u64, i128)> = ["db-password", "api.key"]
        .iter()
        .map(|n| (inode_of(live(n)), mtime_of(live(n))))
        .collect();
    let generation = fs::read_link(root.join("current")).unwrap();
    let again = w.run(&["apply", "--output", "json"]);
    again.assert_code(0);
    let s = statuses(&again);
    assert_eq!(s["db-password"], "unchanged", "{s:?}");
    assert_eq!(s["api.key"], "unchanged", "{s:?}");
    let after: Vec<(u64, i128)> = ["db-password", "api.key"]
        .iter()
        .map(|n| (inode_of(live(n)), mtime_of(live(n))))
        .collect();
    assert_eq!(before, after, "an unchanged apply touched a credential");
    assert_eq!(fs::read_link(root.join("current")).unwrap(), generation);

    // Rotation upstream: a new generation with the new credential; the other is carried over.
    let rotated = w.rotate("db");
    let out = w.run(&["apply", "--output", "json"]);
    out.assert_code(0);
    let s = statuses(&out);
    assert_eq!(s["db-password"], "updated", "{s:?}");
    assert_eq!(s["api.key"], "unchanged", "{s:?}");
    assert_ne!(fs::read_link(root.join("current")).unwrap(), generation);
    let db_now = w.decrypt("db-password", &root.join("db-password"));
    assert_eq!(db_now.stdout, rotated.as_bytes());
    let api_now = w.decrypt("api.key", &root.join("api.key"));
    assert_eq!(api_now.stdout, api.as_bytes());
    assert_eq!(
        inode_of(live("api.key")),
        before[1].0,
        "the unchanged one is a link"
    );
}

#[test]
fn verify_names_content_and_metadata_drift_and_clean_removes_only_ours() {
    let Some(w) = World::new("creds-verify") else {
        return;
    };
    two_files(&w);
    w.run(&["apply"]).assert_code(0);
    w.run(&["verify"]).assert_code(0);
    let root = w.case.root();
    let live = root.join("current");
    // Content: a valid credential of the same name, sealed with another value.
    let forged = live.join("db-password.new");
    w.encrypt("db-password", "other-value-not-secret", &forged);
    fs::rename(&forged, live.join("db-password")).unwrap();
    fs::set_permissions(live.join("db-password"), fs::Permissions::from_mode(0o400)).unwrap();
    // Metadata: a mode change.
    fs::set_permissions(live.join("api.key"), fs::Permissions::from_mode(0o444)).unwrap();
    let out = w.run(&["verify", "--output", "json"]);
    out.assert_code(7);
    let doc = out.json();
    let drift = doc["drift"].as_array().expect("drift list");
    let kinds: Vec<(String, String)> = drift
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap_or_default().to_string(),
                d["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("db-password".into(), "content".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("api.key".into(), "mode".into())),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 2, "{kinds:?}");

    // Clean: what credfile wrote goes, a file it did not write stays.
    w.assert_clean_leaves_only_foreign();
}

#[test]
fn the_dropin_loads_every_credential_and_passes_systemd_analyze_verify() {
    let Some(w) = World::new("creds-dropin") else {
        return;
    };
    two_files(&w);
    let out = w.run(&["systemd-dropin", "--unit", "credfile-demo"]);
    out.assert_code(0);
    let root = w.case.root();
    for name in ["db-password", "api.key"] {
        let line = format!(
            "LoadCredentialEncrypted={name}:{}\n",
            root.join(name).display()
        );
        assert!(out.stdout.contains(&line), "{}", out.stdout);
    }
    let units = w.case.path("units");
    let dropin = units.join("credfile-demo.service.d");
    fs::create_dir_all(&dropin).unwrap();
    fs::write(
        units.join("credfile-demo.service"),
        "[Unit]\nDescription=reads credfile's credentials\n[Service]\nExecStart=/bin/sh -c 'test -r \"$CREDENTIALS_DIRECTORY/db-password\"'\n",
    )
    .unwrap();
    fs::write(dropin.join("credfile.conf"), &out.stdout).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("credfile-demo.service"))
        .env("SYSTEMD_LOG_LEVEL", "debug")
        .output()
        .unwrap();
    // The unit dump (stdout) lists the drop-ins read; warnings go to stderr.
    let dump = String::from_utf8_lossy(&verify.stdout);
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{said}");
    assert!(
        dump.contains("credfile.conf"),
        "the drop-in was not read: {dump}"
    );
    let objections: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("credfile.conf:"))
        .collect();
    assert!(
        objections.is_empty(),
        "systemd-analyze objects to the drop-in: {objections:?}"
    );

    // Without a root the credentials go to /etc/credstore.encrypted, which systemd searches
    // by name: the lines name the credential only.
    let text = fs::read_to_string(w.case.path("credfile.yaml")).unwrap();
    let no_root: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("root:"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(w.case.path("credfile.yaml"), no_root).unwrap();
    let out = w.run(&["systemd-dropin", "--unit", "credfile-demo.service"]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("\nLoadCredentialEncrypted=db-password\n"),
        "{}",
        out.stdout
    );

    // A plaintext environment has no credentials to load.
    w.case
        .manifest("", "  - path: x\n    secret: ${prefix}/db\n");
    let out = w.run(&["systemd-dropin", "--unit", "credfile-demo"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("deliver: systemd-creds"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_host_without_systemd_creds_or_with_an_old_one_is_refused_before_anything_is_fetched() {
    let Some(w) = World::new("creds-preflight") else {
        return;
    };
    // The secret does not exist: a fetch would fail with exit 4, so exit 6 shows that the
    // refusal came first.
    w.case
        .manifest(ENV, "  - path: db-password\n    secret: ${prefix}/absent\n");
    let empty = w.bin_dir("empty-bin");
    let missing = w
        .case
        .credfile()
        .env("PATH", empty.to_string_lossy())
        .run(["apply", "--env", "test"]);
    missing.assert_code(6);
    assert!(
        missing.stderr.contains("systemd-creds is not installed"),
        "{}",
        missing.stderr
    );
    assert!(!w.case.root().exists(), "the root was created");

    let old = w.bin_dir("old-bin");
    write_script(
        &old.join("systemd-creds"),
        &format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'systemd 249 (249.11-0ubuntu3)'; exit 0; fi\nexec {REAL} \"$@\"\n"
        ),
    );
    let too_old = w
        .case
        .credfile()
        .env("PATH", path_with(&old))
        .run(["apply", "--env", "test"]);
    too_old.assert_code(6);
    assert!(
        too_old.stderr.contains("needs systemd-creds 250") && too_old.stderr.contains("has 249"),
        "{}",
        too_old.stderr
    );
    assert!(!w.case.root().exists(), "the root was created");
}

#[test]
fn a_path_that_is_no_credential_name_is_refused_at_validate_with_its_line() {
    let Some(w) = World::new("creds-names") else {
        return;
    };
    w.case.manifest(
        ENV,
        "  - path: ok-name\n    secret: ${prefix}/a\n  - path: db/password\n    secret: ${prefix}/b\n",
    );
    let out = w.case.credfile().run(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("credfile.yaml:14:")
            && out
                .stderr
                .contains("`db/password` is not a systemd credential name")
            && out.stderr.contains("db-password"),
        "{}",
        out.stderr
    );
}

/// Waits (bounded) until `pid` is gone or a zombie: the killed child must not linger.
fn gone(pid: &str) -> bool {
    for _ in 0..1000 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// The names in `dir`, sorted, with where each link points.
fn listing(dir: &Path) -> Vec<(String, Option<PathBuf>)> {
    let mut names: Vec<(String, Option<PathBuf>)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_link(e.path()).ok(),
            )
        })
        .collect();
    names.sort();
    names
}

#[test]
fn a_hanging_systemd_creds_is_stopped_at_the_call_timeout_and_the_set_stays() {
    let Some(w) = World::new("creds-hang") else {
        return;
    };
    let (db, _api) = two_files(&w);
    w.run(&["apply"]).assert_code(0);
    let root = w.case.root();
    let before = listing(&root);
    let inode = inode_of(root.join("current").join("db-password"));
    let rotated = w.rotate("db");

    // A systemd-creds that hangs on one call (in a child of its own, as a wrapper would), and
    // is itself otherwise the real one.
    let hang = w.bin_dir("hang-bin");
    let pids = w.bin_dir("hang-pids");
    write_script(
        &hang.join("systemd-creds"),
        &format!(
            "#!/bin/sh\nif [ \"$1\" = \"$HANG_ON\" ]; then\n  sleep 600 &\n  echo $! > '{pids}'/$1.pid\n  wait\nfi\nexec {REAL} \"$@\"\n",
            pids = pids.display()
        ),
    );
    let path = path_with(&hang);
    for (hang_on, said) in [
        ("encrypt", "systemd-creds sealing credential `db-password`"),
        ("decrypt", "systemd-creds opening credential `"),
        ("--version", "`systemd-creds --version`"),
    ] {
        let out = w
            .case
            .credfile()
            .env("SYSTEMD_CREDENTIAL_SECRET", w.key.to_string_lossy())
            .env("PATH", &path)
            .env("HANG_ON", hang_on)
            .run(["apply", "--env", "test", "--call-timeout", "1"]);
        out.assert_code(6);
        assert!(
            out.stderr.contains(said)
                && out.stderr.contains("did not finish within 1 s")
                && out.stderr.contains("--call-timeout"),
            "{hang_on}: {}",
            out.stderr
        );
        // The hung child and what it started were killed, not left behind.
        let pid = fs::read_to_string(pids.join(format!("{hang_on}.pid"))).unwrap();
        assert!(
            gone(pid.trim()),
            "{hang_on}: the hung child is still running"
        );
        // The target is as it was: same names, same links, the old credential in place.
        assert_eq!(listing(&root), before, "{hang_on}: the root changed");
        assert_eq!(inode_of(root.join("current").join("db-password")), inode);
        let now = w.decrypt("db-password", &root.join("db-password"));
        assert_eq!(now.stdout, db.as_bytes(), "{hang_on}");
    }
    // Once systemd-creds answers again, the rotation goes through.
    w.run(&["apply"]).assert_code(0);
    let now = w.decrypt("db-password", &root.join("db-password"));
    assert_eq!(now.stdout, rotated.as_bytes());
}

#[test]
fn layout_files_seals_in_place_writes_nothing_unchanged_rotates_and_cleans() {
    let Some(w) = World::new("creds-files") else {
        return;
    };
    let (db, api) = two_files(&w);
    let text = fs::read_to_string(w.case.path("credfile.yaml")).unwrap();
    fs::write(
        w.case.path("credfile.yaml"),
        text.replace(ENV, &format!("{ENV}    layout: files\n")),
    )
    .unwrap();
    w.run(&["apply"]).assert_code(0);
    let root = w.case.root();
    assert!(
        !root.join("current").exists(),
        "a generation in layout: files"
    );
    for (name, value) in [("db-password", &db), ("api.key", &api)] {
        let file = root.join(name);
        assert!(fs::symlink_metadata(&file).unwrap().is_file(), "{name}");
        w.assert_opens_to(name, &file, value);
    }
    let stamp = |n: &str| (inode_of(root.join(n)), mtime_of(root.join(n)));
    let before = [stamp("db-password"), stamp("api.key")];

    let again = w.run(&["apply", "--output", "json"]);
    again.assert_code(0);
    let s = statuses(&again);
    assert_eq!(
        (s["db-password"].as_str(), s["api.key"].as_str()),
        ("unchanged", "unchanged"),
        "{s:?}"
    );
    assert_eq!(
        [stamp("db-password"), stamp("api.key")],
        before,
        "an unchanged apply wrote"
    );

    let rotated = w.rotate("db");
    let out = w.run(&["apply", "--output", "json"]);
    out.assert_code(0);
    let s = statuses(&out);
    assert_eq!(
        (s["db-password"].as_str(), s["api.key"].as_str()),
        ("updated", "unchanged"),
        "{s:?}"
    );
    assert_ne!(
        stamp("db-password").0,
        before[0].0,
        "replaced by a rename, a new inode"
    );
    assert_eq!(stamp("api.key"), before[1], "the unchanged one was touched");
    assert_eq!(
        w.decrypt("db-password", &root.join("db-password")).stdout,
        rotated.as_bytes()
    );
    w.run(&["verify"]).assert_code(0);

    w.assert_clean_leaves_only_foreign();
}

#[test]
fn changing_not_after_or_the_key_seals_every_credential_again_once() {
    let Some(w) = World::new("creds-reseal") else {
        return;
    };
    let (db, api) = two_files(&w);
    w.run(&["apply"]).assert_code(0);
    let root = w.case.root();
    let live = |n: &str| root.join("current").join(n);
    let names = ["db-password", "api.key"];
    let inodes = || names.map(|n| inode_of(live(n)));
    let far = "2200-01-01";
    assert!(w.opens_at("db-password", &live("db-password"), far));

    for (env, until) in [
        (
            "    deliver: systemd-creds\n    credential_key: host\n    not_after: \"2099-12-31\"\n",
            true,
        ),
        (
            "    deliver: systemd-creds\n    credential_key: auto\n    not_after: \"2099-12-31\"\n",
            true,
        ),
        (ENV, false),
    ] {
        let text = fs::read_to_string(w.case.path("credfile.yaml")).unwrap();
        let (head, files) = text.split_once("files:\n").unwrap();
        let head = head
            .lines()
            .filter(|l| {
                !["deliver:", "credential_key:", "not_after:"]
                    .iter()
                    .any(|k| l.trim_start().starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        fs::write(
            w.case.path("credfile.yaml"),
            format!("{head}{env}files:\n{files}"),
        )
        .unwrap();
        let old = inodes();
        let out = w.run(&["apply", "--output", "json"]);
        out.assert_code(0);
        let s = statuses(&out);
        for n in names {
            assert_eq!(s[n], "updated", "{env}: {s:?}");
        }
        let new = inodes();
        assert!(
            old.iter().zip(&new).all(|(a, b)| a != b),
            "{env}: not every credential was rewritten"
        );
        for (n, value) in names.iter().zip([&db, &api]) {
            let out = w.decrypt(n, &live(n));
            assert_eq!(out.stdout, value.as_bytes(), "{env}: {n}");
            // Sealed with the new settings: with not_after, it stops opening after that date.
            assert_eq!(w.opens_at(n, &live(n), far), !until, "{env}: {n}");
        }
        // The same settings again: nothing is written.
        let again = w.run(&["apply", "--output", "json"]);
        again.assert_code(0);
        let s = statuses(&again);
        for n in names {
            assert_eq!(s[n], "unchanged", "{env}: {s:?}");
        }
        assert_eq!(inodes(), new, "{env}: an unchanged apply rewrote");
    }
}
