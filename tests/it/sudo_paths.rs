//! The documented sudo paths match the shipped rule (issue 17, item 4), with Debian's real sudo:
//! every command line the action (`sudo: 'true'`), the GitHub and GitLab examples and the manual
//! runbook run through sudo is extracted from those files and `sudo -l` allows exactly those
//! lines (and nothing near them); and the action's sudo path runs end to end as a runner user
//! would (action/install.sh, then action/run.sh, as action.yml runs them) against moto.
//!
//! Root only; see tests/it/sudo_support.rs for what the host gets and gives back.

use crate::sudo_support;
use crate::support;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sudo_support::*;
use support::{Credfile, Output, Proxy, moto_endpoint, uid_gid};

const MANIFEST_PLACEHOLDER: &str = "/etc/credfile/payments.yaml";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    fs::read_to_string(repo(path)).unwrap()
}

/// The command lines of the rule's Cmnd_Aliases, as written (placeholders included).
fn rule_lines() -> BTreeSet<String> {
    SUDOERS
        .lines()
        .map(|l| l.trim().trim_end_matches('\\').trim().trim_end_matches(','))
        .filter(|l| l.starts_with("/usr/local/bin/credfile ") || l.starts_with("/usr/bin/env "))
        .map(str::to_string)
        .collect()
}

/// The GitLab sudo example's `- sudo -n CMD...` script lines: CMD...
fn gitlab_lines() -> Vec<String> {
    read("pipeline-examples/gitlab/sudo.gitlab-ci.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- sudo -n "))
        .map(str::to_string)
        .collect()
}

/// The runbook's indented `sudo ...credfile...` lines (credfile's; not the service reload).
fn runbook_lines() -> Vec<String> {
    read("pipeline-examples/manual/RUNBOOK.md")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sudo "))
        .filter(|l| l.contains("credfile "))
        .map(str::to_string)
        .collect()
}

/// Every `with:` of a step of the GitHub example that uses the action in sudo mode.
fn github_sudo_inputs() -> Vec<serde_yaml::Mapping> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&read("pipeline-examples/github/deploy.yml")).unwrap();
    let mut found = Vec::new();
    for (_, job) in doc["jobs"].as_mapping().unwrap() {
        for step in job["steps"].as_sequence().unwrap() {
            let uses = step["uses"].as_str().unwrap_or("");
            if uses.contains("/credfile@") && step["with"]["sudo"].as_str() == Some("true") {
                found.push(step["with"].as_mapping().unwrap().clone());
            }
        }
    }
    found
}

/// Runs action/run.sh the way action.yml does, with a `sudo` stand-in on the PATH that records
/// its arguments: the command line the action hands to sudo, or its own refusal.
fn action_line(inputs: &serde_yaml::Mapping, command: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("argv");
    let stub = dir.path().join("sudo");
    fs::write(
        &stub,
        format!("#!/bin/sh\nprintf '%s\\n' \"$*\" > {}\n", record.display()),
    )
    .unwrap();
    fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    let input = |k: &str| inputs.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let out = Command::new("sh")
        .arg(repo("action/run.sh"))
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .env("GITHUB_OUTPUT", dir.path().join("out"))
        .env("RUNNER_TEMP", dir.path())
        .env("CREDFILE_BIN", CREDFILE)
        .env("CREDFILE_SUDO", "true")
        .env("INPUT_COMMAND", command)
        .env("INPUT_ENVIRONMENT", input("environment"))
        .env(
            "INPUT_MANIFEST",
            Some(input("manifest"))
                .filter(|m| !m.is_empty())
                .unwrap_or("credfile.yaml"),
        )
        .env("INPUT_ROOT", input("root"))
        .output()
        .unwrap();
    match fs::read_to_string(&record) {
        Ok(line) => Ok(line
            .trim_end()
            .strip_prefix("-n ")
            .expect("the action runs sudo -n")
            .to_string()),
        Err(_) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// `sudo -l -U user CMD...`: whether sudo would let `user` run exactly that.
fn allowed(user: &str, line: &str) -> bool {
    let out = Command::new("sudo")
        .args(["-n", "-l", "-U", user])
        .args(line.split(' '))
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn every_sudo_line_of_the_action_and_examples_is_allowed_by_the_shipped_rule() {
    if sudo_ready("every_sudo_line_of_the_action_and_examples_is_allowed_by_the_shipped_rule")
        .is_none()
    {
        return;
    }
    let host = Host::new();
    let here = |line: &str| line.replace(MANIFEST_PLACEHOLDER, host.manifest.to_str().unwrap());

    // The runner's lines: the GitLab example's, and what the action runs for the GitHub
    // example's inputs, for each of its commands.
    let mut runner: BTreeSet<String> = gitlab_lines().into_iter().collect();
    let github = github_sudo_inputs();
    assert!(!github.is_empty(), "the GitHub example has a sudo job");
    for inputs in &github {
        for command in ["apply", "plan", "verify"] {
            runner.insert(action_line(inputs, command).unwrap_or_else(|e| {
                panic!("the action refused the example's inputs ({command}): {e}")
            }));
        }
    }
    let oncall: BTreeSet<String> = runbook_lines().into_iter().collect();
    assert_eq!(oncall.len(), 3, "{oncall:?}");

    // Exactly the rule's lines, no more and no fewer.
    let used: BTreeSet<String> = runner.union(&oncall).cloned().collect();
    assert_eq!(
        rule_lines(),
        used,
        "the rule and the documented lines differ"
    );

    for line in &runner {
        let line = here(line);
        assert!(
            allowed(&host.runner, &line),
            "the rule refuses the runner: {line}"
        );
        // Each keeps docs/src/sudo.md's rules: the environment given, the root-owned manifest.
        assert!(
            line.contains(" --env production --manifest /etc/credfile/"),
            "{line}"
        );
        // Nothing near it: another flag, another environment, another output.
        for near in [
            format!("{line} --root /tmp"),
            line.replace("production", "staging"),
            line.replace("--output json", "--output human"),
            line.replace(host.manifest.to_str().unwrap(), "/tmp/credfile.yaml"),
        ] {
            if near != line {
                assert!(!allowed(&host.runner, &near), "allowed: {near}");
            }
        }
    }
    for line in &oncall {
        let line = here(line);
        assert!(
            allowed(&host.oncall, &line),
            "the rule refuses on call: {line}"
        );
        // The runner may not pick the host's identity.
        assert!(!allowed(&host.runner, &line), "the runner may: {line}");
    }

    // The action refuses, before sudo, what the rule could never allow.
    let mut inputs = github[0].clone();
    inputs.insert("manifest".into(), "pipeline-examples/credfile.yaml".into());
    let refused = action_line(&inputs, "apply").unwrap_err();
    assert!(
        refused.contains("set the manifest input to that absolute path"),
        "{refused}"
    );
    inputs.insert("manifest".into(), MANIFEST_PLACEHOLDER.into());
    inputs.insert("root".into(), "/tmp/x".into());
    assert!(
        action_line(&inputs, "apply")
            .unwrap_err()
            .contains("takes no root input")
    );
}

/// The runner user's copy of the action, as GitHub checks it out (GITHUB_ACTION_PATH).
fn action_checkout(host: &Host) -> PathBuf {
    let dir = host.dir.path().join("action-checkout");
    for sub in ["action", "scripts"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for f in [
        "action.yml",
        "action/install.sh",
        "action/run.sh",
        "action/checksums.txt",
        "scripts/install.sh",
    ] {
        fs::copy(repo(f), dir.join(f)).unwrap();
    }
    dir
}

#[test]
fn the_actions_sudo_path_runs_end_to_end() {
    if sudo_ready("the_actions_sudo_path_runs_end_to_end").is_none() {
        return;
    }
    let host = Host::new();
    let (secret, value) = seed();
    host.install_manifest(&secret, true);
    let proxy = Proxy::start(&moto_endpoint());
    let endpoint = token_endpoint();
    let action = action_checkout(&host);
    // RUNNER_TEMP and the files GitHub gives each step, the runner's.
    let temp = host.dir.path().join("runner-temp");
    fs::create_dir(&temp).unwrap();
    fs::set_permissions(&temp, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&temp, Some(host.runner_uid), Some(host.gid)).unwrap();
    let step = |script: &str, n: usize, env: &[(&str, &str)]| -> (Output, String, PathBuf) {
        let outputs = temp.join(format!("output-{n}"));
        let summary = temp.join(format!("summary-{n}.md"));
        let mut c = github_job(&endpoint, Credfile::new(&proxy.endpoint()))
            .program("/bin/sh")
            .cwd(&temp)
            .run_as(host.runner_uid, host.gid)
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("GITHUB_ACTION_PATH", action.to_str().unwrap())
            .env("GITHUB_OUTPUT", outputs.to_str().unwrap())
            .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
            .env("RUNNER_TEMP", temp.to_str().unwrap())
            .env("RUNNER_ARCH", "X64");
        for (k, v) in env {
            c = c.env(*k, *v);
        }
        let out = c.run([action.join(script).to_str().unwrap()]);
        (
            out,
            fs::read_to_string(&outputs).unwrap_or_default(),
            summary,
        )
    };

    // The install step (sudo: 'true'): checks the admin's binary, installs nothing.
    let version = env!("CARGO_PKG_VERSION");
    let (out, outputs, _) = step(
        "action/install.sh",
        0,
        &[("INPUT_VERSION", version), ("INPUT_SUDO", "true")],
    );
    out.assert_code(0);
    assert!(
        outputs.contains(&format!("path={CREDFILE}\n")) && outputs.contains("sudo=true\n"),
        "{outputs}"
    );

    // The run step, with the GitHub example's inputs but this host's manifest path.
    let manifest = host.manifest.to_str().unwrap();
    let run = |command: &str, n: usize| {
        step(
            "action/run.sh",
            n,
            &[
                ("CREDFILE_BIN", CREDFILE),
                ("CREDFILE_SUDO", "true"),
                ("INPUT_COMMAND", command),
                ("INPUT_ENVIRONMENT", "production"),
                ("INPUT_MANIFEST", manifest),
                ("INPUT_ROOT", ""),
            ],
        )
    };
    let (out, outputs, summary) = run("apply", 1);
    out.assert_code(0);
    assert!(
        outputs.contains("changed=true\n"),
        "{outputs}\n{}",
        out.stderr
    );
    let report = outputs
        .lines()
        .find_map(|l| l.strip_prefix("report="))
        .map(PathBuf::from)
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["summary"]["created"], 1, "{json}");
    assert_eq!(
        uid_gid(&report),
        (host.runner_uid, host.gid),
        "the runner's report"
    );
    // The files, the app's; the hook, once; the step summary, the runner's.
    let file = host.root().join("db/password");
    assert_eq!(fs::read(&file).unwrap(), value.as_bytes());
    assert_eq!(uid_gid(&file), (host.app_uid, host.app_gid));
    assert_eq!(host.reloads(), 1);
    assert!(fs::read_to_string(&summary).unwrap().contains("payments"));
    assert_eq!(uid_gid(&summary), (host.runner_uid, host.gid));
    assert_eq!(
        proxy.count("AssumeRoleWithWebIdentity"),
        1,
        "the job's role"
    );

    // plan and verify through the same path: nothing to change, no drift.
    let (out, outputs, _) = run("plan", 2);
    out.assert_code(0);
    assert!(outputs.contains("changed=false\n"), "{outputs}");
    let (out, _, _) = run("verify", 3);
    out.assert_code(0);
    assert_eq!(host.reloads(), 1);
}
