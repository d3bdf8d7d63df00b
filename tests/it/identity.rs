//! Pipeline identity end to end: GitHub Actions and GitLab CI OIDC exchanged for a role through
//! moto's STS, the guards, retries, and `whoami`. GitHub's token endpoint is a local stand-in that
//! speaks its protocol; STS errors moto cannot produce come from the fault proxy in AWS's XML shape.

use crate::support;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use support::{
    Canaries, Credfile, GithubTokenEndpoint, Output, Proxy, Seeder, canary_value, moto_endpoint,
    unique_prefix,
};

const IDENTITY: i32 = 3;
const ACCOUNT: &str = "111111111111";
const ROLE: &str = "arn:aws:iam::111111111111:role/payments-deploy";

/// A scratch directory, a secret in account 111111111111 under a unique name, a proxy in front
/// of moto, and a manifest whose `test` environment uses `identity_yaml`.
struct World {
    dir: tempfile::TempDir,
    proxy: Proxy,
    secret: String,
    value: String,
}

impl World {
    fn new(name: &str, env_yaml: &str) -> World {
        let proxy = Proxy::start(&moto_endpoint());
        let dir = tempfile::Builder::new()
            .prefix("credfile-id-")
            .tempdir()
            .unwrap();
        let secret = format!("{}/db", unique_prefix(name));
        let value = canary_value();
        Seeder::in_account(&moto_endpoint(), ACCOUNT).create_string(&secret, &value);
        let w = World {
            dir,
            proxy,
            secret,
            value,
        };
        w.manifest(env_yaml);
        w
    }

    fn manifest(&self, env_yaml: &str) {
        let text = format!(
            "version: 1\napp: payments\ndefaults:\n  region: us-east-1\n  root: {}\nenvironments:\n  test:\n{env_yaml}files:\n  - path: db\n    secret: {}\n",
            self.root().display(),
            self.secret
        );
        fs::write(self.dir.path().join("credfile.yaml"), text).unwrap();
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A runner as inside a pipeline: no AWS keys at all, only what the CI provides.
    fn pipeline(&self) -> Credfile {
        Credfile::new(&self.proxy.endpoint())
            .cwd(self.dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
    }

    fn secret_calls(&self) -> usize {
        self.proxy.count("GetSecretValue") + self.proxy.count("BatchGetSecretValue")
    }

    fn assert_nothing_written(&self, out: &Output) {
        assert!(
            !self.root().exists(),
            "nothing may be written: {}",
            out.stderr
        );
        assert_eq!(self.secret_calls(), 0, "no secret may be read");
    }

    fn sts_body(&self, action: &str) -> String {
        self.proxy
            .requests()
            .into_iter()
            .find(|(a, _)| a == action)
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

fn github(endpoint: &GithubTokenEndpoint, c: Credfile) -> Credfile {
    c.env("GITHUB_ACTIONS", "true")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.url())
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            endpoint.request_token.clone(),
        )
        .env("GITHUB_REPOSITORY", "acme/payments")
        .env("GITHUB_RUN_ID", "4242")
}

/// A JWT-shaped token registered as a canary (a bearer credential: it must never be printed).
fn gitlab_jwt() -> String {
    let jwt = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.{}",
        support::random_hex(24),
        support::random_hex(24)
    );
    Canaries::global().add(&jwt);
    jwt
}

fn token_endpoint() -> GithubTokenEndpoint {
    let endpoint =
        GithubTokenEndpoint::start(&format!("request-token-{}", support::random_hex(16)));
    Canaries::global().add(&endpoint.request_token);
    Canaries::global().add(&endpoint.jwt);
    endpoint
}

fn role_env(extra: &str) -> String {
    format!("    account: \"{ACCOUNT}\"\n    identity:\n      role_arn: {ROLE}\n{extra}")
}

#[test]
fn github_oidc_assumes_the_role_and_writes_files() {
    let w = World::new("gh", &role_env(""));
    let endpoint = token_endpoint();
    let out = github(&endpoint, w.pipeline()).run(["apply", "--env", "test", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(fs::read(w.root().join("db")).unwrap(), w.value.as_bytes());

    let seen = endpoint.requests();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].bearer_ok && seen[0].audience.as_deref() == Some("sts.amazonaws.com"),
        "{seen:?}"
    );
    assert!(
        seen[0].path_and_query.contains("api-version=2.0&audience="),
        "{seen:?}"
    );

    assert_eq!(w.proxy.count("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(w.proxy.count("AssumeRole"), 0, "no default-chain hop");
    let body = w.sts_body("AssumeRoleWithWebIdentity");
    assert!(
        body.contains(&format!("WebIdentityToken={}", endpoint.jwt)),
        "the token went to STS"
    );
    assert!(
        body.contains("RoleSessionName=credfile-acme-payments-4242")
            && body.contains("DurationSeconds=900"),
        "{body}"
    );
    let arn = out.json()["caller_arn"].as_str().unwrap().to_string();
    assert_eq!(
        arn,
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/payments-deploy/credfile-acme-payments-4242")
    );
    let agents = w.proxy.user_agents();
    assert!(
        !agents.is_empty() && agents.iter().all(|ua| ua.contains("credfile/")),
        "{agents:?}"
    );

    // whoami: the same identity, and never a credential.
    let who = github(&endpoint, w.pipeline()).run(["whoami", "--env", "test", "--output", "json"]);
    who.assert_code(0);
    let j = who.json();
    assert_eq!(j["source"], "github-oidc");
    assert_eq!(j["account"], ACCOUNT);
    assert_eq!(j["arn"], arn.as_str());
    assert_eq!(j["session_name"], "credfile-acme-payments-4242");
    assert!(j["expires"].as_str().unwrap().ends_with('Z'));
    assert!(
        !who.stdout.contains("ASIA") && !who.stderr.contains("ASIA"),
        "no access key id in output"
    );
}

#[test]
fn github_audience_and_session_name_are_configurable() {
    let w = World::new(
        "gh-aud",
        &role_env(
            "      audience: my-audience\n      session_name: deploy-by-hand\n      duration: 3600\n",
        ),
    );
    let endpoint = token_endpoint();
    github(&endpoint, w.pipeline())
        .run(["apply", "--env", "test"])
        .assert_code(0);
    assert_eq!(
        endpoint.requests()[0].audience.as_deref(),
        Some("my-audience")
    );
    let body = w.sts_body("AssumeRoleWithWebIdentity");
    assert!(
        body.contains("RoleSessionName=deploy-by-hand") && body.contains("DurationSeconds=3600"),
        "{body}"
    );
}

#[test]
fn github_without_token_permission_says_what_to_add() {
    let w = World::new("gh-missing", &role_env(""));
    let out = w
        .pipeline()
        .env("GITHUB_ACTIONS", "true")
        .run(["apply", "--env", "test"]);
    out.assert_code(IDENTITY);
    assert!(
        out.stderr
            .contains("ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN not set"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("id-token: write"), "{}", out.stderr);
    w.assert_nothing_written(&out);
    assert_eq!(w.proxy.total(), 0, "not even STS was called");
}

#[test]
fn github_wrong_bearer_is_reported() {
    let w = World::new("gh-bearer", &role_env(""));
    let endpoint = token_endpoint();
    let out = github(&endpoint, w.pipeline())
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-request-token")
        .fail_fast()
        .run(["apply", "--env", "test"]);
    out.assert_code(IDENTITY);
    assert!(out.stderr.contains("HTTP 401"), "{}", out.stderr);
    assert!(!endpoint.requests()[0].bearer_ok);
    w.assert_nothing_written(&out);
}

#[test]
fn gitlab_token_from_the_default_and_a_custom_variable() {
    let w = World::new("gl", &role_env(""));
    let jwt = gitlab_jwt();
    let gitlab = |c: Credfile| {
        c.env("GITLAB_CI", "true")
            .env("CI_PROJECT_PATH", "acme/payments")
            .env("CI_PIPELINE_ID", "77")
    };
    gitlab(w.pipeline())
        .env("AWS_ID_TOKEN", &jwt)
        .run(["apply", "--env", "test"])
        .assert_code(0);
    assert_eq!(fs::read(w.root().join("db")).unwrap(), w.value.as_bytes());
    let body = w.sts_body("AssumeRoleWithWebIdentity");
    assert!(
        body.contains(&format!("WebIdentityToken={jwt}"))
            && body.contains("RoleSessionName=credfile-acme-payments-77"),
        "{body}"
    );

    w.manifest(&role_env(
        "      web_identity: gitlab\n      token_env: GITLAB_OIDC_TOKEN\n",
    ));
    w.proxy.reset_counts();
    let other = gitlab_jwt();
    // `web_identity: gitlab` does not need GITLAB_CI; the token comes from the named variable.
    w.pipeline()
        .env("GITLAB_OIDC_TOKEN", &other)
        .run(["apply", "--env", "test"])
        .assert_code(0);
    assert!(
        w.sts_body("AssumeRoleWithWebIdentity")
            .contains(&format!("WebIdentityToken={other}"))
    );
}

#[test]
fn gitlab_without_token_shows_the_id_tokens_block() {
    let w = World::new("gl-missing", &role_env(""));
    let out = w
        .pipeline()
        .env("GITLAB_CI", "true")
        .run(["apply", "--env", "test"]);
    out.assert_code(IDENTITY);
    assert!(
        out.stderr.contains("id_tokens:")
            && out.stderr.contains("AWS_ID_TOKEN:")
            && out.stderr.contains("aud: sts.amazonaws.com"),
        "{}",
        out.stderr
    );
    w.assert_nothing_written(&out);
}

#[test]
fn sts_refusals_explain_the_usual_cause() {
    let w = World::new("sts-refuse", &role_env(""));
    let jwt = gitlab_jwt();
    for (code, status, expect) in [
        ("AccessDenied", 403, "`sub` condition"),
        ("InvalidIdentityToken", 400, "audience"),
        ("ExpiredTokenException", 400, "expired"),
    ] {
        w.proxy.clear_rules();
        w.proxy.reset_counts();
        w.proxy
            .sts_error("AssumeRoleWithWebIdentity", code, status, usize::MAX);
        let out = w
            .pipeline()
            .env("GITLAB_CI", "true")
            .env("AWS_ID_TOKEN", &jwt)
            .run(["apply", "--env", "test"]);
        out.assert_code(IDENTITY);
        assert!(
            out.stderr.contains(code) && out.stderr.contains(expect),
            "{code}: {}",
            out.stderr
        );
        assert_eq!(
            w.proxy.count("AssumeRoleWithWebIdentity"),
            1,
            "{code} is not retried"
        );
        w.assert_nothing_written(&out);
    }
}

#[test]
fn a_throttled_sts_exchange_waits_its_turn_beyond_max_attempts() {
    let w = World::new("sts-throttle", &role_env(""));
    let jwt = gitlab_jwt();
    w.proxy
        .sts_error("AssumeRoleWithWebIdentity", "Throttling", 400, 4);
    let out = w
        .pipeline()
        .env("GITLAB_CI", "true")
        .env("AWS_ID_TOKEN", &jwt)
        .run(["apply", "--env", "test", "--max-attempts", "2"]);
    out.assert_code(0);
    assert_eq!(w.proxy.count("AssumeRoleWithWebIdentity"), 5);
    assert!(w.root().join("db").exists());
}

#[test]
fn transient_sts_failures_are_retried_and_bounded() {
    let w = World::new("sts-retry", &role_env(""));
    let jwt = gitlab_jwt();
    let run = |w: &World| {
        w.pipeline()
            .env("GITLAB_CI", "true")
            .env("AWS_ID_TOKEN", &jwt)
            .run(["apply", "--env", "test"])
    };

    w.proxy
        .fail_next("AssumeRoleWithWebIdentity", 2, 503, "ServiceUnavailable");
    run(&w).assert_code(0);
    assert_eq!(w.proxy.count("AssumeRoleWithWebIdentity"), 3);
    assert!(w.root().join("db").exists());

    fs::remove_dir_all(w.root()).unwrap();
    w.proxy.reset_counts();
    w.proxy
        .sts_error("AssumeRoleWithWebIdentity", "IDPCommunicationError", 400, 2);
    run(&w).assert_code(0);
    assert_eq!(w.proxy.count("AssumeRoleWithWebIdentity"), 3);

    fs::remove_dir_all(w.root()).unwrap();
    w.proxy.reset_counts();
    w.proxy.sts_error(
        "AssumeRoleWithWebIdentity",
        "IDPCommunicationError",
        400,
        usize::MAX,
    );
    let out = run(&w);
    out.assert_code(IDENTITY);
    // Bounded by the retry budget: a count, not a time.
    assert_eq!(
        w.proxy.count("AssumeRoleWithWebIdentity"),
        3,
        "the default attempt budget (3)"
    );
    assert!(
        out.stderr.contains("IDPCommunicationError"),
        "{}",
        out.stderr
    );
    w.assert_nothing_written(&out);
}

#[test]
fn account_guard_refuses_a_role_in_another_account() {
    let w = World::new(
        "gh-guard",
        "    account: \"222222222222\"\n    identity:\n      role_arn: arn:aws:iam::111111111111:role/payments-deploy\n",
    );
    let jwt = gitlab_jwt();
    let out = w
        .pipeline()
        .env("GITLAB_CI", "true")
        .env("AWS_ID_TOKEN", &jwt)
        .run(["apply", "--env", "test"]);
    out.assert_code(IDENTITY);
    assert!(
        out.stderr.contains("222222222222") && out.stderr.contains("111111111111"),
        "{}",
        out.stderr
    );
    assert_eq!(w.proxy.count("GetCallerIdentity"), 1);
    w.assert_nothing_written(&out);
}

#[test]
fn static_keys_in_ci_are_refused_unless_allowed() {
    // No role: the host's own (static) keys would be used directly.
    let w = World::new("static", "");
    let seeder = Seeder::new(&moto_endpoint());
    seeder.create_string(&w.secret, &w.value);
    let host = || Credfile::new(&w.proxy.endpoint()).cwd(w.dir.path());

    let out = host()
        .env("GITHUB_ACTIONS", "true")
        .run(["apply", "--env", "test"]);
    out.assert_code(IDENTITY);
    assert!(
        out.stderr.contains("long-lived") && out.stderr.contains("allow_static_credentials"),
        "{}",
        out.stderr
    );
    w.assert_nothing_written(&out);

    host().run(["apply", "--env", "test"]).assert_code(0);
    fs::remove_dir_all(w.root()).unwrap();

    w.manifest("    allow_static_credentials: true\n");
    host()
        .env("GITLAB_CI", "true")
        .run(["apply", "--env", "test"])
        .assert_code(0);

    // Session credentials (a session token) are fine in CI.
    w.manifest("");
    host()
        .env("GITHUB_ACTIONS", "true")
        .env("AWS_SESSION_TOKEN", "session-token")
        .run(["apply", "--env", "test"])
        .assert_code(0);
}

#[test]
fn then_assume_chains_into_another_account() {
    let w = World::new("chain", "");
    let third = Seeder::in_account(&moto_endpoint(), "333333333333");
    let v = canary_value();
    third.create_string(&w.secret, &v);
    w.manifest("    account: \"333333333333\"\n    identity:\n      role_arn: arn:aws:iam::111111111111:role/hop\n      then_assume: arn:aws:iam::333333333333:role/target\n      then_session_name: second-hop\n");
    let out = Credfile::new(&w.proxy.endpoint())
        .cwd(w.dir.path())
        .run(["apply", "--env", "test", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(fs::read(w.root().join("db")).unwrap(), v.as_bytes());
    assert_eq!(w.proxy.count("AssumeRole"), 2);
    assert!(
        out.json()["caller_arn"]
            .as_str()
            .unwrap()
            .ends_with("assumed-role/target/second-hop")
    );
}

#[test]
fn cross_account_arns_need_an_explicit_opt_in() {
    let w = World::new("xacct", "");
    let arn = "arn:aws:secretsmanager:us-east-1:999999999999:secret:shared/db-AbCdEf";
    let text = format!(
        "version: 1\napp: payments\nenvironments:\n  test:\n    account: \"{ACCOUNT}\"\n    region: us-east-1\n    root: /tmp/x\nfiles:\n  - path: db\n    secret: {arn}\n"
    );
    fs::write(w.dir.path().join("credfile.yaml"), &text).unwrap();
    let out = Credfile::new(&w.proxy.endpoint())
        .cwd(w.dir.path())
        .run(["validate"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("credfile.yaml:10:13:") && out.stderr.contains("account 999999999999"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("allow_cross_account"), "{}", out.stderr);
    fs::write(
        w.dir.path().join("credfile.yaml"),
        format!("{text}    allow_cross_account: true\n"),
    )
    .unwrap();
    Credfile::new(&w.proxy.endpoint())
        .cwd(w.dir.path())
        .run(["validate"])
        .assert_code(0);
}

/// The GitLab example job, run by gitlab-ci-local with its shell executor against moto: the real
/// `.gitlab-ci.yml` and manifest from pipeline-examples/, with the ID token passed as a variable.
#[test]
fn gitlab_example_job_runs_locally() {
    let Some(gcl) = std::env::var_os("CREDFILE_TEST_GITLAB_CI_LOCAL")
        .map(PathBuf::from)
        .filter(|p| p.exists())
    else {
        eprintln!(
            "skipped: CREDFILE_TEST_GITLAB_CI_LOCAL is not set (scripts/test.sh installs gitlab-ci-local and sets it)"
        );
        return;
    };
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipeline-examples");
    let work = tempfile::Builder::new()
        .prefix("credfile-gcl-")
        .tempdir()
        .unwrap();
    let repo = work.path().join("repo");
    fs::create_dir_all(repo.join("pipeline-examples")).unwrap();
    fs::copy(
        examples.join("gitlab/.gitlab-ci.yml"),
        repo.join(".gitlab-ci.yml"),
    )
    .unwrap();
    fs::copy(
        examples.join("credfile.yaml"),
        repo.join("pipeline-examples/credfile.yaml"),
    )
    .unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args([
                "-c",
                "user.email=ci@example.invalid",
                "-c",
                "user.name=ci",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
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

    // The production environment of the example: account 222222222222, eu-west-1.
    let seeder = Seeder::with_options(&moto_endpoint(), Some("222222222222"), "eu-west-1");
    let password = canary_value();
    let api_key = canary_value();
    for (name, value) in [
        ("demo/production/db", serde_json::json!({ "username": "payments_app", "password": password, "host": "db.internal" }).to_string()),
        ("demo/production/api-key", api_key.clone()),
        ("demo/production/tls", "dGxzLWtleS1ieXRlcw==".to_string()),
    ] {
        let _ = seeder.block_on(seeder.client().delete_secret().secret_id(name).force_delete_without_recovery(true).send());
        seeder.create_string(name, &value);
    }

    let proxy = Proxy::start(&moto_endpoint());
    let root = work.path().join("root");
    let jwt = gitlab_jwt();
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_credfile"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut args: Vec<String> = Vec::new();
    for (k, v) in [
        ("GITLAB_CI", "true".to_string()),
        ("AWS_ID_TOKEN", jwt.clone()),
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_CONFIG_FILE", "/dev/null".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
        ("CREDFILE_ROOT", root.display().to_string()),
    ] {
        args.push("--variable".into());
        args.push(format!("{k}={v}"));
    }
    // A real job always has GITLAB_CI=true; gitlab-ci-local sets it false unless told.
    args.push("--ignore-predefined-vars".into());
    args.push("GITLAB_CI".into());
    args.push("deploy-payments-production".into());
    let out = Credfile::new(&proxy.endpoint())
        .program(&gcl)
        .cwd(&repo)
        .env("PATH", path)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .timeout(Duration::from_secs(180))
        .run(&args);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("5 created, 0 updated, 0 unchanged, 0 removed"),
        "{}",
        out.stdout
    );
    let db: serde_json::Value = serde_json::json!({ "password": password });
    assert_eq!(
        fs::read(root.join("db/password")).unwrap(),
        db["password"].as_str().unwrap().as_bytes()
    );
    assert_eq!(
        fs::read(root.join("tls/server.key")).unwrap(),
        b"tls-key-bytes"
    );
    let env_file = fs::read_to_string(root.join("app.env")).unwrap();
    assert!(
        env_file.contains(&format!("API_KEY='{api_key}'"))
            && env_file.contains("DB_USER='payments_app'")
    );
    assert_eq!(
        proxy.count("AssumeRoleWithWebIdentity"),
        2,
        "plan and apply each exchange the token"
    );
    let body = proxy
        .requests()
        .into_iter()
        .find(|(a, _)| a == "AssumeRoleWithWebIdentity")
        .unwrap()
        .1;
    assert!(
        body.contains(&format!("WebIdentityToken={jwt}"))
            && body.contains("RoleSessionName=credfile-acme-payments-"),
        "{body}"
    );
}
