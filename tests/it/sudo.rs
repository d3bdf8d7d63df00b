//! Unprivileged CI runners through Debian's real sudo, with the shipped sudoers rule
//! (pipeline-examples/sudo/credfile.sudoers): the new user's path end to end (runner user ->
//! sudo -> the job's OIDC role -> files owned by the app's user -> the reload hook once), what
//! the rule refuses, and what credfile itself refuses under sudo.
//!
//! These tests change the host (users, a group, /etc/sudoers.d, /usr/local/bin/credfile,
//! /etc/credfile) and undo every change when they end, pass or fail; they run one at a time and
//! only as root (otherwise they say so and pass).

use crate::sudo_support;
use crate::support;
use crate::support::is_root;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use sudo_support::*;
use support::{Credfile, Output, Proxy, moto_endpoint, uid_gid};

/// What sudo sets besides SUDO_USER, for the runs that stand in for `sudo credfile` by hand;
/// and no config-file variables (the harness sets them; credfile refuses them under sudo).
fn by_hand(c: Credfile, user: &str) -> Credfile {
    c.env("SUDO_USER", user)
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
}

#[test]
fn the_shipped_sudoers_rule_parses() {
    if sudo_ready("the_shipped_sudoers_rule_parses").is_none() {
        return;
    }
    let out = Command::new("visudo")
        .args(["-cf", "pipeline-examples/sudo/credfile.sudoers"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nine command lines, each spelled out in full: the runner's six (the action's three with
    // `--output json`, the GitLab example's three), on-call's three through `env`.
    let commands: Vec<&str> = SUDOERS
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("/usr/local/bin/credfile ") || l.starts_with("/usr/bin/env "))
        .collect();
    assert_eq!(commands.len(), 9, "{commands:?}");
    for verb in ["validate", "plan", "apply", "verify", "whoami"] {
        assert!(
            commands
                .iter()
                .any(|c| c.contains(&format!("credfile {verb} --env ")))
        );
    }
    assert!(
        !SUDOERS
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .any(|l| l.contains('*')),
        "a wildcard in the rule"
    );
}

/// The "done when": an unprivileged runner user, sudo with the shipped rule, the job's
/// OIDC role, files owned by the app's user, the reload hook run once.
#[test]
fn a_runner_user_deploys_through_sudo_with_the_jobs_oidc_role() {
    if sudo_ready("a_runner_user_deploys_through_sudo_with_the_jobs_oidc_role").is_none() {
        return;
    }
    let host = Host::new();
    let (secret, value) = seed();
    host.install_manifest(&secret, true);
    let proxy = Proxy::start(&moto_endpoint());
    let endpoint = token_endpoint();

    // What a runner might also have set: sudo must not pass it (under sudo credfile refuses
    // `--root`/CREDFILE_ROOT, so a success shows it was stripped).
    let job = github_job(&endpoint, host.sudo(&proxy)).env("CREDFILE_ROOT", "/tmp/elsewhere");
    let out = job.run(host.args("apply"));
    out.assert_code(0);

    // The job's role, through the job's token: one exchange, no other identity.
    assert_eq!(endpoint.requests().len(), 1, "one token request");
    assert!(endpoint.requests()[0].bearer_ok);
    assert_eq!(proxy.count("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(proxy.count("AssumeRole"), 0, "no host-role hop");
    let body = sts_body(&proxy, "AssumeRoleWithWebIdentity");
    assert!(
        body.contains(&format!("WebIdentityToken={}", endpoint.jwt))
            && body.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Fpayments-deploy")
            && body.contains("RoleSessionName=credfile-acme-payments-4242"),
        "the job's token, for the manifest's role, named after the run: {}",
        body.replace(&endpoint.jwt, "<jwt>")
    );

    // Files owned by the app's user, with the manifest's mode, byte for byte.
    let file = host.root().join("db/password");
    assert_eq!(fs::read(&file).unwrap(), value.as_bytes());
    assert_eq!(uid_gid(&file), (host.app_uid, host.app_gid));
    assert_eq!(support::mode_of(&file), 0o440);
    assert!(!Path::new("/tmp/elsewhere").exists());
    // The reload hook, once.
    assert_eq!(host.reloads(), 1, "{}", out.stderr);

    // The next run of the same job changes nothing and reloads nothing.
    let again = github_job(&endpoint, host.sudo(&proxy)).run(host.args("apply"));
    again.assert_code(0);
    assert_eq!(host.reloads(), 1, "no change, no reload");
    // The other commands the rule allows work the same way.
    github_job(&endpoint, host.sudo(&proxy))
        .run([host.args("verify"), vec!["--output", "json"]].concat())
        .assert_code(0);
    github_job(&endpoint, host.sudo(&proxy))
        .run(host.args("validate"))
        .assert_code(0);
}

#[test]
fn the_rule_allows_nothing_but_its_command_lines() {
    if sudo_ready("the_rule_allows_nothing_but_its_command_lines").is_none() {
        return;
    }
    let host = Host::new();
    let (secret, _) = seed();
    host.install_manifest(&secret, true);
    let proxy = Proxy::start(&moto_endpoint());
    let elsewhere = host.dir.path().join("elsewhere");
    let other = host.dir.path().join("other.yaml");
    fs::copy(&host.manifest, &other).unwrap();
    let m = host.manifest.to_str().unwrap();
    let refused: Vec<Vec<&str>> = vec![
        // another root, another manifest, another environment, another command, a shell
        [
            host.args("apply"),
            vec!["--root", elsewhere.to_str().unwrap()],
        ]
        .concat(),
        vec![
            "-n",
            CREDFILE,
            "apply",
            "--env",
            "production",
            "--manifest",
            other.to_str().unwrap(),
        ],
        vec!["-n", CREDFILE, "apply", "--env", "staging", "--manifest", m],
        vec![
            "-n",
            CREDFILE,
            "clean",
            "--env",
            "production",
            "--manifest",
            m,
        ],
        vec![
            "-n",
            CREDFILE,
            "apply",
            "--manifest",
            m,
            "--env",
            "production",
        ],
        vec!["-n", "/bin/sh", "-c", "id"],
    ];
    for args in refused {
        let out = host.sudo(&proxy).run(&args);
        assert_eq!(
            out.status_code, 1,
            "sudo must refuse {args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("sudo:"), "{args:?}: {}", out.stderr);
    }
    assert_eq!(proxy.total(), 0, "credfile never ran");
    assert!(!elsewhere.exists() && !host.root().exists());
}

#[test]
fn under_sudo_without_ci_variables_a_protected_environment_refuses_and_others_warn() {
    if sudo_ready("under_sudo_without_ci_variables").is_none() {
        return;
    }
    let host = Host::new();
    let (secret, value) = seed();
    host.install_manifest(&secret, true);
    let proxy = Proxy::start(&moto_endpoint());

    // A job whose variables sudo dropped looks like this: no CI variables at all; the host has
    // an identity of its own (here static keys standing in for the instance role).
    let out = host.sudo(&proxy).run(host.args("apply"));
    out.assert_code(IDENTITY);
    for needle in [
        "refusing the host's identity for protected environment `production`",
        &format!("invoked by {}", host.runner),
        "GITHUB_ACTIONS, ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN, GITLAB_CI, AWS_ID_TOKEN",
        "hint: a CI job: install the sudoers rule pipeline-examples/sudo/credfile.sudoers",
    ] {
        assert!(out.stderr.contains(needle), "{needle}\n{}", out.stderr);
    }
    assert_eq!(
        proxy.total(),
        0,
        "no AWS call: not even the host's identity was used"
    );
    assert!(!host.root().exists(), "nothing written");

    // The runner cannot resolve `auto` itself: sudo drops the variable from its environment
    // and refuses it on the command line (the rule has no SETENV).
    let out = host
        .sudo(&proxy)
        .env("CREDFILE_WEB_IDENTITY", "none")
        .run(host.args("apply"));
    out.assert_code(IDENTITY);
    let mut with_var = host.args("apply");
    with_var.insert(1, "CREDFILE_WEB_IDENTITY=none");
    let out = host.sudo(&proxy).run(&with_var);
    assert_eq!(out.status_code, 1, "sudo refuses it: {}", out.stderr);
    assert_eq!(proxy.total(), 0);
    // Someone on call who may run anything as root says it for the run (as the runbook does).
    let out = by_hand(Credfile::new(&proxy.endpoint()), "oncall")
        .env("CREDFILE_WEB_IDENTITY", "none")
        .cwd("/")
        .fail_fast()
        .run(&host.args("apply")[2..]);
    out.assert_code(0);
    assert_eq!(
        proxy.count("AssumeRole"),
        1,
        "the host's identity assumed the role"
    );
    assert_eq!(host.reloads(), 1);
    fs::remove_dir_all(host.root()).unwrap();
    fs::remove_file(host.hook_record()).unwrap();

    // Not protected: it goes ahead with the host's identity, and says so.
    host.install_manifest(&secret, false);
    let out = host.sudo(&proxy).run(host.args("apply"));
    out.assert_code(0);
    assert!(
        out.stderr
            .contains("running under sudo with `web_identity: auto` and none of GITHUB_ACTIONS")
            && out
                .stderr
                .contains("install pipeline-examples/sudo/credfile.sudoers")
            && out.stderr.contains(&host.runner),
        "{}",
        out.stderr
    );
    assert_eq!(proxy.count("AssumeRoleWithWebIdentity"), 0);
    assert_eq!(
        proxy.count("AssumeRole"),
        2,
        "the host's identity assumed the role"
    );
    assert_eq!(
        fs::read(host.root().join("db/password")).unwrap(),
        value.as_bytes()
    );
}

/// credfile's own fence, for rules written with wildcards and for `sudo credfile` by hand: run
/// as root with SUDO_USER set, as sudo leaves it.
#[test]
fn under_sudo_credfile_refuses_a_manifest_others_control_and_root_overrides() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("credfile-sudo-self-")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("root");
    let manifest = dir.path().join("credfile.yaml");
    let text = format!(
        "version: 1\napp: a\nenvironments:\n  test:\n    region: us-east-1\n    root: {}\nfiles:\n  - path: x\n    format: template\n    template_file: x.j2\n    values: {{ v: {{ secret: never/read }} }}\n",
        root.display()
    );
    fs::write(&manifest, &text).unwrap();
    fs::set_permissions(&manifest, fs::Permissions::from_mode(0o644)).unwrap();
    let template = dir.path().join("x.j2");
    fs::write(&template, "{{ v }}\n").unwrap();
    let proxy = Proxy::start(&moto_endpoint());
    let cf = by_hand(Credfile::new(&proxy.endpoint()), "ci-runner")
        .cwd(dir.path())
        .fail_fast();
    let nobody = nix::unistd::Uid::from_raw(65534);

    let check = |out: &Output, code: i32, needles: &[&str]| {
        out.assert_code(code);
        for n in needles {
            assert!(out.stderr.contains(n), "{n}\n{}", out.stderr);
        }
    };

    // A manifest the runner owns.
    nix::unistd::chown(&manifest, Some(nobody), None).unwrap();
    let out = cf.run(["apply", "--env", "test"]);
    check(
        &out,
        USAGE,
        &[
            "is not root's alone",
            "owned by uid 65534",
            "hint: install the manifest",
        ],
    );
    nix::unistd::chown(&manifest, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    // A manifest its group may write.
    fs::set_permissions(&manifest, fs::Permissions::from_mode(0o664)).unwrap();
    check(
        &cf.run(["validate"]),
        USAGE,
        &["is writable by its group (mode 0664)"],
    );
    fs::set_permissions(&manifest, fs::Permissions::from_mode(0o644)).unwrap();
    // A directory others may write, up the chain.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    check(
        &cf.run(["plan", "--env", "test"]),
        USAGE,
        &["writable by others"],
    );
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // A template file the runner owns.
    nix::unistd::chown(&template, Some(nobody), None).unwrap();
    check(
        &cf.run(["validate"]),
        USAGE,
        &["refusing template file", "x.j2", "owned by uid 65534"],
    );
    nix::unistd::chown(&template, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    // Flags and their environment twins that move the writes.
    let elsewhere = dir.path().join("elsewhere");
    check(
        &cf.run([
            "apply",
            "--env",
            "test",
            "--root",
            elsewhere.to_str().unwrap(),
        ]),
        USAGE,
        &["refusing `--root` under sudo (invoked by ci-runner)"],
    );
    check(
        &cf.clone()
            .env("CREDFILE_AUDIT_LOG", "/etc/passwd")
            .run(["apply", "--env", "test"]),
        USAGE,
        &["refusing `--audit-log`"],
    );
    // A hook root would run that the runner can change.
    let hook = dir.path().join("reload.sh");
    fs::write(&hook, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o757)).unwrap();
    fs::write(
        &manifest,
        text.replace(
            "files:\n",
            &format!("    on_change: [{}]\nfiles:\n", hook.display()),
        ),
    )
    .unwrap();
    check(
        &cf.run(["apply", "--env", "test"]),
        USAGE,
        &[
            "refusing to run the change hook",
            "reload.sh",
            "writable by others",
        ],
    );
    fs::write(&manifest, &text).unwrap();
    // All root's again: accepted.
    check(&cf.run(["validate"]), 0, &[]);
    assert_eq!(proxy.total(), 0);
    assert!(!root.exists() && !elsewhere.exists());
    // Without SUDO_USER, nothing of this applies.
    nix::unistd::chown(&manifest, Some(nobody), None).unwrap();
    check(
        &cf.clone().env_remove("SUDO_USER").run(["validate"]),
        0,
        &[],
    );
}

#[test]
fn lint_asks_protected_environments_to_name_their_web_identity() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = |web: &str| {
        format!(
            "version: 1\napp: a\nenvironments:\n  production:\n    protected: true\n    region: us-east-1\n    root: /run/credfile/a\n    account: \"{ACCOUNT}\"\n    identity:\n      role_arn: {ROLE}\n{web}  staging:\n    region: us-east-1\n    root: /run/credfile/a-staging\n    identity:\n      role_arn: arn:aws:iam::333333333333:role/s\nfiles:\n  - path: x\n    secret: a/${{env}}/x\n    environments: [production]\n  - path: y\n    secret: a/staging/y\n    environments: [staging]\n"
        )
        .replace("${env}", "production")
    };
    let path = dir.path().join("credfile.yaml");
    let cf = Credfile::new(&moto_endpoint()).cwd(dir.path());

    fs::write(&path, manifest("")).unwrap();
    let out = cf.run(["lint", "--format", "json"]);
    assert!(
        out.stdout.contains("protected-web-identity")
            && out.stdout.contains(
                "protected environment `production` does not name its `identity.web_identity`"
            ),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        out.stdout.matches("\"protected-web-identity\"").count(),
        1,
        "staging is not protected: {}",
        out.stdout
    );
    for web in ["auto", "github", "none"] {
        fs::write(&path, manifest(&format!("      web_identity: {web}\n"))).unwrap();
        let out = cf.run(["lint", "--format", "json"]);
        assert!(
            !out.stdout.contains("protected-web-identity"),
            "{web}: {}",
            out.stdout
        );
    }
}
