//! The GitHub Action's install and run steps in a runner-like environment, and the GitLab
//! component run by gitlab-ci-local against moto, both installing from the release that
//! scripts/dist.sh built, served on 127.0.0.1. Skipped (and saying so) without
//! `CREDFILE_TEST_DIST_DIR`.

use crate::support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::dist::*;
use support::{Credfile, Seeder, canary_value, moto_endpoint, unique_prefix};

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
