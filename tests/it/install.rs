//! Every install path against the release that scripts/dist.sh built, served by a file server
//! of the test on 127.0.0.1: scripts/install.sh under dash and busybox sh and its refusals, the
//! GitHub Action's install and run steps in a runner-like environment, and the GitLab component
//! run by gitlab-ci-local against moto. Skipped (and saying so) without `CREDFILE_TEST_DIST_DIR`.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::dist::*;
use support::{Credfile, Seeder, canary_value, moto_endpoint, unique_prefix};

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

/// No sha256sum, shasum or openssl on PATH: refused before anything is downloaded.
#[test]
fn installer_without_a_checksum_tool_fails_closed() {
    let Some(dist) = dist() else { return };
    let server = FileServer::start(&dist);
    // A PATH holding only what the installer needs besides a hash tool.
    let tools = tempdir("credfile-path-");
    for tool in [
        "curl", "tar", "gzip", "mktemp", "uname", "id", "mkdir", "chmod", "cp", "mv", "rm", "cat",
        "sed", "getconf", "dirname",
    ] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, tools.path().join(tool)).unwrap();
    }
    let path = tools.path().to_str().unwrap().to_string();
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
        assert!(
            out.stderr.contains("no SHA-256 tool found"),
            "{shell:?}: {}",
            out.stderr
        );
        assert_eq!(snapshot(target.path()), before, "{shell:?}");
    }
    assert_eq!(
        server.hits(),
        0,
        "nothing downloaded without a way to check it"
    );
}

/// No mktemp on PATH: refused before anything is downloaded (no way to stage safely).
#[test]
fn installer_without_mktemp_fails_closed() {
    let Some(dist) = dist() else { return };
    let server = FileServer::start(&dist);
    let tools = tempdir("credfile-path-");
    for tool in [
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
    ] {
        let found = ["/usr/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} not found"));
        std::os::unix::fs::symlink(found, tools.path().join(tool)).unwrap();
    }
    let path = tools.path().to_str().unwrap().to_string();
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
        assert!(
            out.stderr.contains("mktemp is not installed"),
            "{shell:?}: {}",
            out.stderr
        );
        assert_eq!(snapshot(target.path()), before, "{shell:?}");
    }
    assert_eq!(server.hits(), 0, "nothing downloaded without mktemp");
}

// --- install.sh as root, against a hostile local user ---------------------------------------

/// A throwaway local user (useradd), removed when dropped.
struct HostileUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl HostileUser {
    fn create() -> HostileUser {
        let name = format!("cfhostile{}", support::random_hex(4));
        run(Command::new("useradd").args(["-M", "-U", "-s", "/usr/sbin/nologin", &name]));
        let id = |flag: &str| -> u32 {
            stdout_of(Command::new("id").args([flag, &name]))
                .trim()
                .parse()
                .unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        HostileUser { name, uid, gid }
    }

    /// `ln -s target link` run as this user: the link is theirs, made with their rights.
    fn plant_link(&self, target: &Path, link: &Path) -> bool {
        use std::os::unix::process::CommandExt;
        Command::new("ln")
            .arg("-s")
            .arg(target)
            .arg(link)
            .uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .output()
            .unwrap()
            .status
            .success()
    }

    /// Links at the names an installer would likely stage under, from its PID.
    fn plant_staging_links(&self, dir: &Path, pid: u32, victim: &Path) -> bool {
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
            all &= self.plant_link(victim, &dir.join(name));
        }
        all
    }
}

impl Drop for HostileUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
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
    let hostile = HostileUser::create();
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
                    assert!(hostile.plant_staging_links(&dir, pid, &victim), "{what}");
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
        assert!(hostile.plant_link(&victims, &dir));
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
            |pid| assert!(!hostile.plant_staging_links(&dir, pid, &victim)),
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
            |pid| assert!(hostile.plant_staging_links(&dir, pid, &victim)),
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

// --- the GitHub Action ------------------------------------------------------------------------

/// A checkout of the action as GitHub would lay it out, with its table filled from dist's
/// SHA256SUMS by scripts/action-checksums.sh (the README's release step).
fn action_checkout(dist: &Path) -> tempfile::TempDir {
    let d = tempdir("credfile-action-");
    fs::create_dir_all(d.path().join("action")).unwrap();
    fs::create_dir_all(d.path().join("scripts")).unwrap();
    for f in [
        "action.yml",
        "action/install.sh",
        "action/run.sh",
        "scripts/install.sh",
    ] {
        fs::copy(repo().join(f), d.path().join(f)).unwrap();
    }
    let rows = stdout_of(
        Command::new("sh")
            .arg(repo().join("scripts/action-checksums.sh"))
            .arg(dist.join("SHA256SUMS")),
    );
    assert!(
        rows.contains(&format!("{VERSION} {TARGET} ")),
        "action-checksums.sh: {rows}"
    );
    let mut table = fs::read_to_string(repo().join("action/checksums.txt")).unwrap();
    table.push_str(&rows);
    fs::write(d.path().join("action/checksums.txt"), table).unwrap();
    d
}

struct Runner {
    temp: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Runner {
    fn new() -> Runner {
        Runner {
            temp: tempdir("credfile-runner-temp-"),
            cache: tempdir("credfile-tool-cache-"),
        }
    }

    /// Runs the action's install step; returns (exit code, stderr+stdout, GITHUB_OUTPUT).
    fn install(&self, action: &Path, base_url: &str) -> (i32, String, BTreeMap<String, String>) {
        let output = self
            .temp
            .path()
            .join(format!("output-{}", support::random_hex(4)));
        fs::write(&output, "").unwrap();
        let out = Command::new("sh")
            .arg(action.join("action/install.sh"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", self.temp.path())
            .env("RUNNER_TEMP", self.temp.path())
            .env("RUNNER_TOOL_CACHE", self.cache.path())
            .env("RUNNER_ARCH", "X64")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_ACTION_PATH", action)
            .env("INPUT_VERSION", VERSION)
            .env("INPUT_BASE_URL", base_url)
            .env("INPUT_SUDO", "false")
            .env("CREDFILE_REPO", "credfile-test/credfile")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(128), text, read_output(&output))
    }
}

fn read_output(path: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn action_install_step_sets_its_outputs_and_reverifies_the_tool_cache() {
    let Some(dist) = dist() else { return };
    let action = action_checkout(&dist);
    let server = FileServer::start(&dist);
    let runner = Runner::new();

    let (code, text, outputs) = runner.install(action.path(), &server.url());
    assert_eq!(code, 0, "{text}");
    let path = PathBuf::from(&outputs["path"]);
    assert!(path.starts_with(runner.temp.path()), "{path:?}");
    assert_eq!(outputs["version"], VERSION);
    assert_eq!(outputs["sudo"], "false");
    let v = stdout_of(Command::new(&path).arg("--version"));
    assert!(v.starts_with(&format!("credfile {VERSION}\n")));
    let cached = runner
        .cache
        .path()
        .join(format!("credfile/{VERSION}/x86_64"));
    assert!(cached.join(archive_name()).is_file());
    assert!(
        runner
            .cache
            .path()
            .join(format!("credfile/{VERSION}/x86_64.complete"))
            .is_file()
    );

    // Second job on the same runner: the cache, no download.
    let hits = server.hits();
    let (code, text, _) = runner.install(action.path(), &server.url());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("tool cache hit"), "{text}");
    assert_eq!(server.hits(), hits, "a cache hit downloads nothing");

    // A job that poisoned the cache (archive and SHA256SUMS rewritten to agree): the action's
    // own pin refuses it and drops the entry.
    let evil = cached.join(archive_name());
    let mut bytes = fs::read(&evil).unwrap();
    let n = bytes.len() - 10;
    bytes[n] ^= 0xff;
    fs::write(&evil, &bytes).unwrap();
    fs::write(
        cached.join("SHA256SUMS"),
        format!("{}  {}\n", sha256_hex(&bytes), archive_name()),
    )
    .unwrap();
    let (code, text, _) = runner.install(action.path(), &server.url());
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("the pinned --sha256"), "{text}");
    assert!(!cached.exists(), "the poisoned cache entry is removed");
}

#[test]
fn action_refuses_a_version_missing_from_its_table() {
    let Some(dist) = dist() else { return };
    let server = FileServer::start(&dist);
    let runner = Runner::new();
    // The committed table, as a user pinning this commit gets it.
    let action = tempdir("credfile-action-");
    fs::create_dir_all(action.path().join("action")).unwrap();
    fs::create_dir_all(action.path().join("scripts")).unwrap();
    for f in [
        "action/install.sh",
        "action/checksums.txt",
        "scripts/install.sh",
    ] {
        fs::copy(repo().join(f), action.path().join(f)).unwrap();
    }
    let mut table = fs::read_to_string(action.path().join("action/checksums.txt")).unwrap();
    table.retain(|_| true);
    let table: String = table
        .lines()
        .filter(|l| !l.starts_with(&format!("{VERSION} {TARGET} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(action.path().join("action/checksums.txt"), table).unwrap();
    let (code, text, outputs) = runner.install(action.path(), &server.url());
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("has no checksum for credfile"), "{text}");
    assert!(outputs.is_empty());
    assert_eq!(server.hits(), 0);
}

/// The action's run step against moto: `changed` is true on the first apply, false on the
/// second, and `report` is the JSON report.
#[test]
fn action_run_step_reports_changed_and_the_report_path() {
    let Some(dist) = dist() else { return };
    let action = action_checkout(&dist);
    let server = FileServer::start(&dist);
    let runner = Runner::new();
    let (code, text, outputs) = runner.install(action.path(), &server.url());
    assert_eq!(code, 0, "{text}");
    let bin = outputs["path"].clone();

    let endpoint = moto_endpoint();
    let seeder = Seeder::new(&endpoint);
    let prefix = unique_prefix("action-run");
    let value = canary_value();
    seeder.create_string(&format!("{prefix}/db"), &value);
    let work = tempdir("credfile-action-work-");
    let root = work.path().join("secrets");
    fs::write(
        work.path().join("credfile.yaml"),
        format!(
            "version: 1\napp: action\nenvironments:\n  ci:\n    region: us-east-1\n    root: {}\n    identity: {{ web_identity: none }}\nfiles:\n  - path: db\n    secret: {prefix}/db\n",
            root.display()
        ),
    )
    .unwrap();
    let step = |output: &Path| {
        Credfile::new(&endpoint)
            .program("sh")
            .cwd(work.path())
            .env("CREDFILE_BIN", &bin)
            .env("CREDFILE_SUDO", "false")
            .env("INPUT_COMMAND", "apply")
            .env("INPUT_ENVIRONMENT", "ci")
            .env("INPUT_MANIFEST", "credfile.yaml")
            .env("INPUT_ROOT", "")
            .env("RUNNER_TEMP", runner.temp.path().to_str().unwrap())
            .env("GITHUB_OUTPUT", output.to_str().unwrap())
            .run([action.path().join("action/run.sh")])
    };
    for (round, want) in [(1, "true"), (2, "false")] {
        let output = runner.temp.path().join(format!("run-output-{round}"));
        fs::write(&output, "").unwrap();
        step(&output).assert_code(0);
        let outputs = read_output(&output);
        assert_eq!(outputs["changed"], want, "apply #{round}");
        let report: serde_json::Value =
            serde_json::from_slice(&fs::read(&outputs["report"]).unwrap()).unwrap();
        assert_eq!(report["command"], "apply");
        assert!(Path::new(&outputs["report"]).starts_with(runner.temp.path()));
    }
    assert_eq!(fs::read_to_string(root.join("db")).unwrap(), value);
}

// --- the GitLab component -------------------------------------------------------------------

/// gitlab-ci-local runs pipeline-examples/gitlab/component.gitlab-ci.yml (its `component:`
/// include pointed at the local templates/credfile.yml) against moto, installing credfile from
/// the local server through the verified installer.
#[test]
fn gitlab_component_job_installs_from_the_release_and_applies() {
    let Some(dist) = dist() else { return };
    let Some(gcl) = std::env::var_os("CREDFILE_TEST_GITLAB_CI_LOCAL")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    else {
        eprintln!("skipped: CREDFILE_TEST_GITLAB_CI_LOCAL is not set");
        return;
    };
    let server = FileServer::start(&dist);
    let work = tempdir("credfile-gcl-component-");
    let project = work.path().join("repo");
    fs::create_dir_all(project.join("templates")).unwrap();
    fs::copy(
        repo().join("templates/credfile.yml"),
        project.join("templates/credfile.yml"),
    )
    .unwrap();
    let example =
        fs::read_to_string(repo().join("pipeline-examples/gitlab/component.gitlab-ci.yml"))
            .unwrap();
    let mut local = String::new();
    let mut replaced = false;
    for line in example.lines() {
        if let Some(indent) = line
            .strip_suffix(line.trim_start())
            .filter(|_| line.trim_start().starts_with("- component:"))
        {
            local.push_str(&format!("{indent}- local: templates/credfile.yml\n"));
            replaced = true;
        } else if line.trim_start().starts_with("base-url:") {
            // The example's mirror line is where the test server goes.
            let indent = &line[..line.len() - line.trim_start().len()];
            local.push_str(&format!("{indent}base-url: {}\n", server.url()));
        } else {
            local.push_str(line);
            local.push('\n');
        }
    }
    assert!(replaced, "the example includes the component");
    assert!(
        local.contains(&server.url()),
        "the example has a base-url input"
    );
    fs::write(project.join(".gitlab-ci.yml"), &local).unwrap();

    let seeder = Seeder::new(&moto_endpoint());
    let prefix = unique_prefix("component");
    let value = canary_value();
    seeder.create_string(&format!("{prefix}/db"), &value);
    let root = work.path().join("secrets");
    fs::create_dir_all(project.join("pipeline-examples")).unwrap();
    fs::write(
        project.join("pipeline-examples/credfile.yaml"),
        format!(
            "version: 1\napp: component\nenvironments:\n  production:\n    region: us-east-1\n    root: {}\n    identity: {{ web_identity: none }}\nfiles:\n  - path: db\n    secret: {prefix}/db\n",
            root.display()
        ),
    )
    .unwrap();
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args([
                "-c",
                "user.email=ci@example.invalid",
                "-c",
                "user.name=ci",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&project));
    };
    git(&["init", "-q"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://gitlab.example.invalid/acme/payments.git",
    ]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "deploy"]);

    let mut args: Vec<String> = Vec::new();
    let endpoint = moto_endpoint();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ] {
        args.push("--variable".into());
        args.push(format!("{k}={v}"));
    }
    args.push("credfile-production".into());
    let out = Credfile::new(&endpoint)
        .program(&gcl)
        .cwd(&project)
        .timeout(Duration::from_secs(240))
        .run(&args);
    out.assert_code(0);
    // install.sh checked against SHA256SUMS; install.sh itself then verified the archive (its
    // messages are folded into the collapsed multi-line command).
    assert!(out.stdout.contains("install.sh: OK"), "{}", out.stdout);
    assert!(out.stdout.contains("1 created"), "{}", out.stdout);
    assert_eq!(fs::read_to_string(root.join("db")).unwrap(), value);
    let log = server.log.lock().unwrap().clone();
    for want in [
        "/install.sh",
        "/SHA256SUMS",
        &format!("/{}", archive_name()),
    ] {
        assert!(
            log.iter().any(|p| p == want),
            "{want} not requested: {log:?}"
        );
    }
}

/// Every script in scripts/ that is run by its path (a shebang) is committed with its run bit:
/// the README and the release workflow run `scripts/dist.sh`, not `bash scripts/dist.sh`.
/// lib.sh is sourced, never run.
#[test]
fn scripts_are_committed_with_their_run_bit() {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["ls-files", "-s", "--", "scripts", ".ci"])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("skipped: not a git checkout");
        return;
    }
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    for line in listing.lines() {
        let (meta, path) = line.split_once('\t').unwrap();
        let text = fs::read(repo().join(path)).unwrap();
        if !text.starts_with(b"#!") || path == "scripts/lib.sh" {
            continue;
        }
        checked += 1;
        assert!(
            meta.starts_with("100755 "),
            "{path} is committed without its run bit ({meta}): git update-index --chmod=+x {path}"
        );
    }
    assert!(checked >= 5, "{listing}");
}

/// Two test runs on one host (a developer's and CI's, in two checkouts) must not share a path:
/// every temporary directory the scripts use comes from `mktemp`, never a fixed name under /tmp,
/// $TMPDIR or /dev/shm that one run could remove under the other.
#[test]
fn scripts_use_no_fixed_shared_paths() {
    let mut checked = 0;
    let mut dirs = vec![repo().join("scripts"), repo().join(".ci")];
    let mut fixed = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            checked += 1;
            for (i, line) in text.lines().enumerate() {
                let code = line.split(" #").next().unwrap_or(line);
                let shared = ["/tmp/", "/dev/shm/", "}/"].iter().any(|root| {
                    code.match_indices(root).any(|(at, _)| {
                        let before = &code[..at];
                        let after = &code[at + root.len()..];
                        let named = after.starts_with(|c: char| c.is_ascii_alphabetic());
                        let tmp_var = *root != "}/"
                            || before.ends_with("TMPDIR:-/tmp")
                            || before.ends_with("{TMPDIR");
                        named && tmp_var
                    })
                });
                if shared && !code.contains("mktemp") && !code.trim_start().starts_with('#') {
                    fixed.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(checked >= 8, "scripts read: {checked}");
    assert!(
        fixed.is_empty(),
        "fixed shared paths (use mktemp -d):\n{}",
        fixed.join("\n")
    );
}

/// The version every install path defaults to is the crate's.
#[test]
fn install_paths_default_to_this_version() {
    let install = fs::read_to_string(repo().join("scripts/install.sh")).unwrap();
    assert!(install.contains(&format!("\ndefault_version={VERSION}\n")));
    for f in ["action.yml", "templates/credfile.yml"] {
        let text = fs::read_to_string(repo().join(f)).unwrap();
        assert!(text.contains(&format!("default: {VERSION}\n")), "{f}");
    }
    let mut buf = String::new();
    fs::File::open(repo().join("LICENSE"))
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert!(buf.contains("Apache License") && buf.contains("Version 2.0, January 2004"));
}
