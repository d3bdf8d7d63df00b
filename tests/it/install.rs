//! scripts/install.sh against the release that scripts/dist.sh built, served by a file server of
//! the test on 127.0.0.1: under dash and busybox sh, its refusals, and a hostile local user.
//! Skipped (and saying so) without `CREDFILE_TEST_DIST_DIR`. The action and the GitLab component
//! install the same way (action.rs).

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::dist::*;
use support::users::LocalUser;

// --- install.sh ------------------------------------------------------------------------------

#[test]
fn installer_installs_a_binary_that_runs_under_dash_and_busybox() {
    let Some(dist) = dist() else { return };
    let server = FileServer::start(&dist);
    for shell in shells() {
        let target = tempdir("credfile-target-");
        let dir = target.path().join("bin");
        let out = install(
            &shell,
            &[
                "--version",
                VERSION,
                "--dir",
                dir.to_str().unwrap(),
                "--base-url",
                &server.url(),
            ],
            None,
        );
        assert_eq!(out.code, 0, "{shell:?}: {}", out.stderr);
        assert!(out.stderr.contains("checksum verified"), "{}", out.stderr);
        let bin = dir.join("credfile");
        assert_eq!(fs::metadata(&bin).unwrap().mode() & 0o777, 0o755);
        let v = stdout_of(Command::new(&bin).arg("--version"));
        assert!(v.starts_with(&format!("credfile {VERSION}\n")), "{v}");
        // Nothing but the binary is left behind (no staging file).
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["credfile"], "{shell:?}");
    }
    assert!(server.hits() >= 4, "downloads went to the local server");
}

/// Each bad case: non-zero exit, a message naming the cause, the target directory exactly as
/// it was (an older binary in it stays).
#[test]
fn installer_refuses_every_bad_case_and_leaves_the_target_as_it_was() {
    let Some(dist) = dist() else { return };
    let archive = archive_name();
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "flipped byte",
            Box::new({
                let archive = archive.clone();
                move |d: &Path| {
                    let p = d.join(&archive);
                    let mut b = fs::read(&p).unwrap();
                    let i = b.len() / 2;
                    b[i] ^= 0x01;
                    fs::write(&p, b).unwrap();
                }
            }),
            "checksum mismatch",
        ),
        (
            "wrong line",
            Box::new({
                let sums = sums.clone();
                let archive = archive.clone();
                move |d: &Path| {
                    let wrong: String = sums
                        .lines()
                        .map(|l| {
                            if l.ends_with(&format!("  {archive}")) {
                                format!("{}{}\n", "0".repeat(64), &l[64..])
                            } else {
                                format!("{l}\n")
                            }
                        })
                        .collect();
                    fs::write(d.join("SHA256SUMS"), wrong).unwrap();
                }
            }),
            "checksum mismatch",
        ),
        (
            "missing line",
            Box::new({
                let sums = sums.clone();
                let archive = archive.clone();
                move |d: &Path| {
                    let without: String = sums
                        .lines()
                        .filter(|l| !l.ends_with(&format!("  {archive}")))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    fs::write(d.join("SHA256SUMS"), without).unwrap();
                }
            }),
            "has no line for",
        ),
        (
            "missing SHA256SUMS",
            Box::new(|d: &Path| fs::remove_file(d.join("SHA256SUMS")).unwrap()),
            "cannot download SHA256SUMS",
        ),
    ];
    for shell in shells() {
        for (what, damage, message) in &cases {
            let served = served_copy(&dist);
            damage(served.path());
            let server = FileServer::start(served.path());
            let target = tempdir("credfile-target-");
            let dir = target.path().join("bin");
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("credfile"), b"#!/bin/sh\necho old credfile\n").unwrap();
            fs::set_permissions(dir.join("credfile"), fs::Permissions::from_mode(0o755)).unwrap();
            let before = snapshot(target.path());
            let out = install(
                &shell,
                &["--dir", dir.to_str().unwrap(), "--base-url", &server.url()],
                None,
            );
            assert_ne!(
                out.code, 0,
                "{shell:?} {what}: installed anyway\n{}",
                out.stderr
            );
            assert!(
                out.stderr.contains(message),
                "{shell:?} {what}: expected '{message}' in\n{}",
                out.stderr
            );
            assert_eq!(
                snapshot(target.path()),
                before,
                "{shell:?} {what}: the target changed"
            );
        }
    }
}

/// The installer under a PATH of only `tools` (symlinks to the system's) must refuse before it
/// downloads anything, saying `expect`, and leave the target as it was, under every shell.
fn fails_closed_without_a_tool(tools: &[&str], expect: &str) {
    let Some(dist) = dist() else { return };
    let server = FileServer::start(&dist);
    let bin = tempdir("credfile-path-");
    for tool in tools {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, bin.path().join(tool)).unwrap();
    }
    let path = bin.path().to_str().unwrap().to_string();
    for shell in shells() {
        let target = tempdir("credfile-target-");
        let dir = target.path().join("bin");
        let before = snapshot(target.path());
        let out = install(
            &shell,
            &["--dir", dir.to_str().unwrap(), "--base-url", &server.url()],
            Some(&path),
        );
        assert_ne!(out.code, 0, "{shell:?}: {}", out.stderr);
        assert!(out.stderr.contains(expect), "{shell:?}: {}", out.stderr);
        assert_eq!(snapshot(target.path()), before, "{shell:?}");
    }
    assert_eq!(server.hits(), 0, "nothing downloaded before refusing");
}

/// No sha256sum, shasum or openssl on PATH: refused before anything is downloaded.
#[test]
fn installer_without_a_checksum_tool_fails_closed() {
    fails_closed_without_a_tool(
        &[
            "curl", "tar", "gzip", "mktemp", "uname", "id", "mkdir", "chmod", "cp", "mv", "rm",
            "cat", "sed", "getconf", "dirname",
        ],
        "no SHA-256 tool found",
    );
}

/// No mktemp on PATH: refused before anything is downloaded (no way to stage safely).
#[test]
fn installer_without_mktemp_fails_closed() {
    fails_closed_without_a_tool(
        &[
            "curl",
            "tar",
            "gzip",
            "uname",
            "id",
            "mkdir",
            "chmod",
            "cp",
            "mv",
            "rm",
            "cat",
            "sed",
            "getconf",
            "dirname",
            "sha256sum",
            "ls",
        ],
        "mktemp is not installed",
    );
}

// --- install.sh as root, against a hostile local user ---------------------------------------

/// `ln -s target link` run as `user`: the link is theirs, made with their rights.
fn plant_link(user: &LocalUser, target: &Path, link: &Path) -> bool {
    user.command("ln")
        .arg("-s")
        .arg(target)
        .arg(link)
        .output()
        .unwrap()
        .status
        .success()
}

/// Links at the names an installer would likely stage under, from its PID.
fn plant_staging_links(user: &LocalUser, dir: &Path, pid: u32, victim: &Path) -> bool {
    let mut all = true;
    for name in [
        format!(".credfile.install.{pid}"),
        format!(".credfile.install.{}", pid + 1),
        format!(".credfile.{pid}"),
        format!("credfile.{pid}"),
        ".credfile.install".to_string(),
        "credfile.new".to_string(),
        ".credfile.tmp".to_string(),
    ] {
        all &= plant_link(user, victim, &dir.join(name));
    }
    all
}

/// Root-owned scratch the hostile user can traverse, with a root-owned victim file in
/// `victims/` that the user cannot write.
fn hostile_setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let base = tempdir("credfile-hostile-");
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let victims = base.path().join("victims");
    fs::create_dir(&victims).unwrap();
    fs::set_permissions(&victims, fs::Permissions::from_mode(0o755)).unwrap();
    let victim = victims.join("victim");
    fs::write(&victim, VICTIM).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    (base, victims, victim)
}

const VICTIM: &[u8] = b"root's file: only root writes it\n";

fn intact(victim: &Path) -> bool {
    fs::read(victim).unwrap() == VICTIM
}

fn mkdir_mode(dir: &Path, mode: u32, uid: u32, gid: u32) {
    fs::create_dir(dir).unwrap();
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
}

/// The case: root installs into a directory another user can write, and that user has
/// planted links at the staging names pointing at a root-owned file. Every such directory is
/// refused before anything is written (the victim and the directory stay exactly as they were);
/// a 0755 root directory installs; a sticky directory of root's (others may write, nobody may
/// replace root's entries) installs too, through a staging name nobody could plant.
#[test]
fn installer_as_root_is_not_turned_against_root_by_a_hostile_user() {
    let Some(dist) = dist() else { return };
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root (creates a local user, installs as root)");
        return;
    }
    let server = FileServer::start(&dist);
    let hostile = LocalUser::add("cfhostile");
    let url = server.url();
    for shell in shells() {
        // (what, mode, owner, group, the message)
        let (h, g) = (hostile.uid, hostile.gid);
        let refused = [
            ("world-writable", 0o777, 0, 0, "writable by group or others"),
            ("group-writable", 0o775, 0, g, "writable by group or others"),
            ("sticky, another user's", 0o1777, h, g, "is owned by uid"),
        ];
        for (what, mode, uid, gid, message) in refused {
            let (base, _, victim) = hostile_setup();
            let dir = base.path().join("bin");
            mkdir_mode(&dir, mode, uid, gid);
            let mut before = BTreeMap::new();
            let out = install_stopped(
                &shell,
                &["--dir", dir.to_str().unwrap(), "--base-url", &url],
                None,
                |pid| {
                    assert!(plant_staging_links(&hostile, &dir, pid, &victim), "{what}");
                    before = snapshot(base.path());
                },
            );
            assert!(
                intact(&victim),
                "{shell:?} {what}: the victim was overwritten"
            );
            assert_ne!(out.code, 0, "{shell:?} {what}: installed\n{}", out.stderr);
            assert!(
                out.stderr.contains(message) && out.stderr.contains(dir.to_str().unwrap()),
                "{shell:?} {what}: expected '{message}' naming the directory in\n{}",
                out.stderr
            );
            assert_eq!(
                snapshot(base.path()),
                before,
                "{shell:?} {what}: something changed"
            );
        }

        // A missing target under a directory the user can write, where they put a link to a
        // root-only directory at the target's name: refused, nothing lands there.
        let (base, victims, _) = hostile_setup();
        let parent = base.path().join("shared");
        mkdir_mode(&parent, 0o777, 0, 0);
        let dir = parent.join("bin");
        assert!(plant_link(&hostile, &victims, &dir));
        let before = snapshot(base.path());
        let out = install(
            &shell,
            &["--dir", dir.to_str().unwrap(), "--base-url", &url],
            None,
        );
        assert_ne!(
            out.code, 0,
            "{shell:?} redirected: installed\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("refusing to install"), "{}", out.stderr);
        assert_eq!(snapshot(base.path()), before, "{shell:?} redirected");

        // 0755 root's: the user cannot plant anything, and the install goes through.
        let (base, _, victim) = hostile_setup();
        let dir = base.path().join("bin");
        mkdir_mode(&dir, 0o755, 0, 0);
        let out = install_stopped(
            &shell,
            &["--dir", dir.to_str().unwrap(), "--base-url", &url],
            None,
            |pid| assert!(!plant_staging_links(&hostile, &dir, pid, &victim)),
        );
        assert_eq!(out.code, 0, "{shell:?} 0755: {}", out.stderr);
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["credfile"], "{shell:?}");
        let v = stdout_of(Command::new(dir.join("credfile")).arg("--version"));
        assert!(v.starts_with(&format!("credfile {VERSION}\n")), "{v}");

        // Sticky and root's (the installer's): others may write, so the user plants links at
        // every name they can guess; the install stages under one they could not.
        let (base, _, victim) = hostile_setup();
        let dir = base.path().join("bin");
        mkdir_mode(&dir, 0o1777, 0, 0);
        let out = install_stopped(
            &shell,
            &["--dir", dir.to_str().unwrap(), "--base-url", &url],
            None,
            |pid| assert!(plant_staging_links(&hostile, &dir, pid, &victim)),
        );
        assert_eq!(out.code, 0, "{shell:?} sticky root's: {}", out.stderr);
        assert!(
            intact(&victim),
            "{shell:?} sticky root's: the victim was overwritten"
        );
        let bin = dir.join("credfile");
        let m = fs::symlink_metadata(&bin).unwrap();
        assert!(m.file_type().is_file() && m.uid() == 0 && m.mode() & 0o7777 == 0o755);
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !fs::symlink_metadata(p).unwrap().file_type().is_symlink())
            .collect();
        assert_eq!(left, [bin], "{shell:?}: no staging file left");
    }
}
