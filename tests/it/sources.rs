//! More sources, one manifest (issue 13): Parameter Store (`parameter:`, `parameters_path:`),
//! whole-secret expansion (`keys: all`) and the CI-variable tier (`ci_variable:`,
//! `ci_variable_file:`), end to end: the real binary, the real AWS SDK, moto's SSM and Secrets
//! Manager, and the fault-injecting proxy where moto cannot fail on its own.
//!
//! Governance (policy goldens, lint fixtures) is in `tests/it/sources_governance.rs`; secret
//! prefixes, JSON objects in templates and values shared across sources in
//! `tests/it/sources_secrets.rs`.
//!
//! Every run goes through `support::Credfile`, which fails the test if any seeded value (a
//! canary) appears in stdout or stderr.

use crate::support;
use crate::support::statuses;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{Value, json};
use support::{
    Credfile, Output, ParamSeeder, Proxy, Seeder, assert_no_leak, canary_value, moto_endpoint,
    snapshot, unique_prefix, validate_schema,
};

const FETCH: i32 = 4;
const RENDER: i32 = 5;
const USAGE: i32 = 2;
const DRIFT: i32 = 7;

/// One test's world: a scratch directory with a manifest and a root; secrets and parameters
/// under a unique prefix; an endpoint (moto, or a proxy in front of it).
pub(crate) struct Case {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) prefix: String,
    pub(crate) endpoint: String,
    pub(crate) seeder: Seeder,
    pub(crate) params: ParamSeeder,
}

impl Case {
    pub(crate) fn new(name: &str) -> Case {
        Case::with_endpoint(name, &moto_endpoint())
    }

    pub(crate) fn with_endpoint(name: &str, endpoint: &str) -> Case {
        Case {
            dir: tempfile::Builder::new()
                .prefix("credfile-src-")
                .tempdir()
                .unwrap(),
            prefix: unique_prefix(name),
            endpoint: endpoint.to_string(),
            seeder: Seeder::new(&moto_endpoint()),
            params: ParamSeeder::new(&moto_endpoint()),
        }
    }

    /// A parameter name under the test's prefix: `/t-name-hex/short`.
    pub(crate) fn param(&self, short: &str) -> String {
        format!("/{}/{short}", self.prefix)
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// One environment `test` (root, region, `prefix` var) plus `env_extra` lines, and `files`.
    pub(crate) fn manifest(&self, env_extra: &str, files: &str) {
        let text = format!(
            "version: 1\napp: src\ndefaults:\n  region: us-east-1\n  root: {root}\nenvironments:\n  test:\n    vars: {{ prefix: {prefix} }}\n{env_extra}files:\n{files}",
            root = self.root().display(),
            prefix = self.prefix,
        );
        fs::write(self.dir.path().join("credfile.yaml"), text).unwrap();
    }

    pub(crate) fn credfile(&self) -> Credfile {
        Credfile::new(&self.endpoint).cwd(self.dir.path())
    }

    pub(crate) fn apply(&self) -> Output {
        self.credfile()
            .run(["apply", "--env", "test", "--output", "json"])
    }

    pub(crate) fn file(&self, rel: &str) -> Vec<u8> {
        fs::read(self.root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

#[test]
fn parameter_values_of_every_type_are_byte_exact() {
    let c = Case::new("param-kinds");
    let plain = canary_value();
    let list = format!("{},{},third item", canary_value(), canary_value());
    let secure = format!("{}\nsecond line ", canary_value());
    let json_doc = json!({"password": canary_value(), "nested": {"port": 5432}}).to_string();
    let bytes: Vec<u8> = (0u8..=255).collect();
    c.params.put(&c.param("plain"), &plain, "String");
    c.params.put(&c.param("list"), &list, "StringList");
    c.params.put(&c.param("secure"), &secure, "SecureString");
    c.params.put(&c.param("db"), &json_doc, "SecureString");
    c.params.put(
        &c.param("blob"),
        &base64::engine::general_purpose::STANDARD.encode(&bytes),
        "SecureString",
    );
    let arn_of_plain = format!(
        "arn:aws:ssm:us-east-1:123456789012:parameter{}",
        c.param("plain")
    );
    c.manifest(
        "",
        &format!(
            r#"  - path: plain
    parameter: /${{prefix}}/plain
  - path: list
    parameter: /${{prefix}}/list
  - path: secure
    parameter: /${{prefix}}/secure
    mode: "0440"
  - path: db/password
    parameter: /${{prefix}}/db
    key: password
  - path: db/port
    parameter: /${{prefix}}/db
    key: /nested/port
  - path: blob.bin
    parameter: /${{prefix}}/blob
    encoding: base64
  - path: by-arn
    parameter: {arn_of_plain}
  - path: app.env
    format: dotenv
    values:
      PLAIN: {{ parameter: "/${{prefix}}/plain" }}
      PASSWORD: {{ parameter: "/${{prefix}}/db", key: password }}
"#
        ),
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(c.file("plain"), plain.as_bytes());
    assert_eq!(c.file("list"), list.as_bytes(), "StringList as stored");
    assert_eq!(
        c.file("secure"),
        secure.as_bytes(),
        "SecureString decrypted"
    );
    let doc: Value = serde_json::from_str(&json_doc).unwrap();
    assert_eq!(
        c.file("db/password"),
        doc["password"].as_str().unwrap().as_bytes()
    );
    assert_eq!(c.file("db/port"), b"5432");
    assert_eq!(c.file("blob.bin"), bytes);
    assert_eq!(c.file("by-arn"), plain.as_bytes());
    assert_eq!(
        String::from_utf8(c.file("app.env")).unwrap(),
        format!(
            "PLAIN='{plain}'\nPASSWORD='{}'\n",
            doc["password"].as_str().unwrap()
        )
    );
    let report = out.json();
    validate_schema(&report);
    let first = &report["files"][0]["secrets"][0];
    assert_eq!(first["source"], "ssm");
    assert_eq!(first["id"], c.param("plain"));
    assert_eq!(first["arn"], arn_of_plain.as_str());
    assert_eq!(first["version_id"], "1");
    assert_eq!(report["summary"]["created"], 8);
}

#[test]
fn version_and_label_select_their_value_after_an_overwrite() {
    let c = Case::new("param-selectors");
    let (v1, v2, v3) = (canary_value(), canary_value(), canary_value());
    let name = c.param("rotating");
    assert_eq!(c.params.put(&name, &v1, "SecureString"), 1);
    c.params.label(&name, 1, "blue");
    assert_eq!(c.params.put(&name, &v2, "SecureString"), 2);
    assert_eq!(c.params.put(&name, &v3, "SecureString"), 3);
    c.manifest(
        "",
        r#"  - path: latest
    parameter: /${prefix}/rotating
  - path: second
    parameter: /${prefix}/rotating
    version: 2
  - path: blue
    parameter: /${prefix}/rotating
    label: blue
"#,
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(c.file("latest"), v3.as_bytes());
    assert_eq!(c.file("second"), v2.as_bytes());
    assert_eq!(c.file("blue"), v1.as_bytes());
    let report = out.json();
    let versions: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["secrets"][0]["version_id"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["3", "2", "1"]);

    // A version or label that does not exist is an error naming it, never another version.
    let before = snapshot(c.root());
    c.manifest(
        "",
        r#"  - path: latest
    parameter: /${prefix}/rotating
  - path: gone
    parameter: /${prefix}/rotating
    version: 9
  - path: green
    parameter: /${prefix}/rotating
    label: green
"#,
    );
    let out = c.apply();
    out.assert_code(FETCH);
    assert!(
        out.stderr
            .contains(&format!("parameter {name} (version 9)")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("parameter {name} (label green)")),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before, "the target is byte-identical");
}

#[test]
fn throttled_parameter_store_calls_wait_their_turn_beyond_max_attempts() {
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("param-throttle", &proxy.endpoint());
    let (one, a) = (canary_value(), canary_value());
    c.params.put(&c.param("one"), &one, "SecureString");
    c.params.put(&c.param("config/a"), &a, "String");
    c.manifest(
        "",
        "  - path: one\n    parameter: /${prefix}/one\n  - path: config\n    parameters_path: /${prefix}/config/\n",
    );
    // The account's Parameter Store quota answers ThrottlingException; the calls wait their
    // turn instead of spending --max-attempts 2.
    proxy.fail_next("GetParameters", 4, 400, "ThrottlingException");
    proxy.fail_next("GetParametersByPath", 3, 400, "ThrottlingException");
    let out = c.credfile().run([
        "apply",
        "--env",
        "test",
        "--output",
        "json",
        "--max-attempts",
        "2",
    ]);
    out.assert_code(0);
    let calls = &out.json()["fetch"]["calls"];
    assert_eq!(calls["get_parameters"]["calls"], 5, "{calls}");
    assert_eq!(calls["get_parameters"]["throttled"], 4, "{calls}");
    assert_eq!(calls["get_parameters_by_path"]["calls"], 4, "{calls}");
    assert_eq!(c.file("one"), one.as_bytes());
    assert_eq!(c.file("config/a"), a.as_bytes());
}

#[test]
fn twenty_five_parameters_take_three_get_parameters_calls() {
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("param-batch", &proxy.endpoint());
    let mut files = String::new();
    for i in 0..25 {
        c.params.put(
            &c.param(&format!("p{i:02}")),
            &canary_value(),
            "SecureString",
        );
        files.push_str(&format!(
            "  - path: p{i:02}\n    parameter: /${{prefix}}/p{i:02}\n"
        ));
    }
    // The same parameter twice is fetched once.
    files.push_str("  - path: again\n    parameter: /${prefix}/p00\n");
    c.manifest("", &files);
    proxy.reset_counts();
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(proxy.count("GetParameters"), 3, "{:?}", proxy.requests());
    // The report counts the same calls the proxy saw.
    let calls = &out.json()["fetch"]["calls"];
    assert_eq!(calls["get_parameters"]["calls"], 3, "{calls}");
    assert_eq!(calls["get_secret_value"]["calls"], 0, "{calls}");
    let bodies = proxy.json_bodies("GetParameters");
    let mut sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["Names"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [5, 10, 10]);
    assert!(bodies.iter().all(|b| b["WithDecryption"] == true));
    assert_eq!(
        proxy.count("GetSecretValue") + proxy.count("BatchGetSecretValue"),
        0
    );
    assert_eq!(c.file("again"), c.file("p00"));
}

#[test]
fn a_missing_parameter_and_a_denied_decryption_fail_naming_them() {
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("param-missing", &proxy.endpoint());
    c.params.put(&c.param("here"), &canary_value(), "String");
    c.manifest("", "  - path: here\n    parameter: /${prefix}/here\n");
    c.apply().assert_code(0);
    let before = snapshot(c.root());

    c.manifest(
        "",
        "  - path: here\n    parameter: /${prefix}/here\n  - path: missing\n    parameter: /${prefix}/missing\n",
    );
    let out = c.apply();
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains(&format!(
            "parameter {}: ParameterNotFound",
            c.param("missing")
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("InvalidParameters"), "{}", out.stderr);
    assert_eq!(snapshot(c.root()), before);

    c.params
        .put(&c.param("secure"), &canary_value(), "SecureString");
    c.manifest(
        "",
        "  - path: here\n    parameter: /${prefix}/here\n  - path: secure\n    parameter: /${prefix}/secure\n",
    );
    proxy.fail_next_with_message(
        "GetParameters",
        usize::MAX,
        400,
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/x is not authorized to perform: kms:Decrypt on the resource associated with this ciphertext because the resource does not exist in this Region, no resource-based policies allow access, or a resource-based policy explicitly denies access",
    );
    let out = c.credfile().env("AWS_MAX_ATTEMPTS", "1").run([
        "apply",
        "--env",
        "test",
        "--max-attempts",
        "1",
    ]);
    proxy.clear_rules();
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains(&format!(
            "parameter {}: AccessDeniedException",
            c.param("secure")
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("kms:Decrypt"), "{}", out.stderr);
    assert_eq!(snapshot(c.root()), before, "the target is byte-identical");
}

#[test]
fn a_path_entry_follows_the_parameters_below_it() {
    let c = Case::new("param-path");
    let (a, b, d) = (canary_value(), canary_value(), canary_value());
    c.params.put(&c.param("config/a"), &a, "String");
    c.params.put(&c.param("config/sub/b"), &b, "SecureString");
    c.params.put(&c.param("other"), &canary_value(), "String");
    c.manifest(
        "",
        "  - path: config\n    parameters_path: /${prefix}/config/\n    mode: \"0440\"\n",
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(c.file("config/a"), a.as_bytes());
    assert_eq!(c.file("config/sub/b"), b.as_bytes());
    assert!(!c.root().join("config/other").exists());
    assert_eq!(
        statuses(&out),
        BTreeMap::from([
            ("config/a".to_string(), "created".to_string()),
            ("config/sub/b".to_string(), "created".to_string()),
        ])
    );
    assert_eq!(out.json()["files"][0]["mode"], "0440");

    let verify = |c: &Case| {
        c.credfile()
            .run(["verify", "--env", "test", "--output", "json"])
    };
    verify(&c).assert_code(0);
    // Offline, the set below the path is unknown: its files are neither missing nor extra.
    c.credfile()
        .run(["verify", "--env", "test", "--offline"])
        .assert_code(0);

    // Upstream: one added, one deleted. `verify` sees both, `plan` says what apply would do
    // without doing it, and the next apply creates and removes, and says so.
    c.params.put(&c.param("config/d"), &d, "String");
    c.params.delete(&c.param("config/a"));
    let drift = verify(&c);
    drift.assert_code(DRIFT);
    let drift_text = drift.stdout.clone();
    assert!(
        drift_text.contains("config/a") && drift_text.contains("config/d"),
        "{drift_text}"
    );
    let before = snapshot(c.root());
    let planned = c
        .credfile()
        .run(["plan", "--env", "test", "--output", "json"]);
    planned.assert_code(0);
    assert_eq!(statuses(&planned)["config/a"], "removed");
    assert_eq!(statuses(&planned)["config/d"], "created");
    assert_eq!(snapshot(c.root()), before, "plan writes nothing");
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(
        statuses(&out),
        BTreeMap::from([
            ("config/a".to_string(), "removed".to_string()),
            ("config/d".to_string(), "created".to_string()),
            ("config/sub/b".to_string(), "unchanged".to_string()),
        ])
    );
    assert!(!c.root().join("config/a").exists());
    assert_eq!(c.file("config/d"), d.as_bytes());
    verify(&c).assert_code(0);

    // A name below the path that cannot be a file name is refused; nothing changes.
    let before = snapshot(c.root());
    c.params
        .put(&c.param("config/x/.."), &canary_value(), "String");
    let out = c.apply();
    out.assert_code(RENDER);
    assert!(
        out.stderr.contains("cannot be a file name"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before);
}

#[test]
fn keys_all_writes_one_file_per_key_and_follows_the_set() {
    let c = Case::new("keys-all");
    let name = format!("{}/db", c.prefix);
    let (user, pass, host) = (canary_value(), canary_value(), canary_value());
    c.seeder.create_json(
        &name,
        &json!({"username": user, "password": pass, "port": 5432}),
    );
    c.manifest(
        "",
        "  - path: db\n    secret: ${prefix}/db\n    keys: all\n",
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(c.file("db/username"), user.as_bytes());
    assert_eq!(c.file("db/password"), pass.as_bytes());
    assert_eq!(c.file("db/port"), b"5432");
    assert_eq!(statuses(&out).len(), 3);

    c.seeder.put_string(
        &name,
        &json!({"username": user, "host": host, "port": 5432}).to_string(),
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(
        statuses(&out),
        BTreeMap::from([
            ("db/host".to_string(), "created".to_string()),
            ("db/password".to_string(), "removed".to_string()),
            ("db/port".to_string(), "unchanged".to_string()),
            ("db/username".to_string(), "unchanged".to_string()),
        ])
    );
    assert!(!c.root().join("db/password").exists());
    assert_eq!(c.file("db/host"), host.as_bytes());

    // A key that is no valid file name is refused, the target left as it was.
    let before = snapshot(c.root());
    for bad in ["../escape", "a/b", "bell\u{7}", ".."] {
        c.seeder.put_string(
            &name,
            &json!({"username": user, bad: canary_value()}).to_string(),
        );
        let out = c.apply();
        out.assert_code(RENDER);
        assert!(
            out.stderr.contains("cannot be a file name"),
            "{bad:?}: {}",
            out.stderr
        );
        assert_eq!(snapshot(c.root()), before, "{bad:?}");
    }
}

/// A hook that writes its whole environment to `dump`.
fn env_hook(dump: &std::path::Path) -> String {
    format!(
        "    on_change: [/bin/sh, -c, 'env > \"$0\"', '{}']\n",
        dump.display()
    )
}

#[test]
fn ci_variables_in_a_github_like_job_need_no_aws_and_never_leak() {
    // Every AWS call would go to the proxy: there must be none.
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("ci-github", &proxy.endpoint());
    let value = canary_value();
    support::Canaries::global().add(&value);
    let dump = c.dir.path().join("hook-env");
    let audit = c.dir.path().join("audit.log");
    let summary = c.dir.path().join("summary.md");
    c.manifest(
        "    identity: { role_arn: \"arn:aws:iam::123456789012:role/deploy\" }\n",
        &format!(
            "  - path: db/password\n    ci_variable: DB_PASSWORD\n{}  - path: app.env\n    format: dotenv\n    values:\n      DB_PASSWORD: {{ ci_variable: DB_PASSWORD }}\n",
            env_hook(&dump)
        ),
    );
    let out = c
        .credfile()
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .env("DB_PASSWORD", &value)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .run([
            "apply",
            "--env",
            "test",
            "--output",
            "json",
            "--audit-log",
            &audit.display().to_string(),
        ]);
    out.assert_code(0);
    assert_eq!(proxy.total(), 0, "no AWS call: {:?}", proxy.requests());
    assert_eq!(c.file("db/password"), value.as_bytes());
    assert_eq!(
        String::from_utf8(c.file("app.env")).unwrap(),
        format!("DB_PASSWORD='{value}'\n")
    );
    let report = out.json();
    validate_schema(&report);
    assert_eq!(report["files"][0]["secrets"][0]["source"], "ci_variable");
    assert_eq!(report["files"][0]["secrets"][0]["id"], "DB_PASSWORD");
    let canaries = support::Canaries::global();
    let hook_env = fs::read(&dump).expect("the hook ran");
    assert!(!hook_env.is_empty());
    assert_no_leak(&canaries, &hook_env, "the hook's environment");
    assert!(!String::from_utf8_lossy(&hook_env).contains("DB_PASSWORD="));
    let audit_line = fs::read(&audit).unwrap();
    assert!(String::from_utf8_lossy(&audit_line).contains("\"ci_variable\""));
    assert_no_leak(&canaries, &audit_line, "the audit line");
    let md = fs::read(&summary).unwrap();
    assert!(
        String::from_utf8_lossy(&md).contains("ci:DB_PASSWORD"),
        "{}",
        String::from_utf8_lossy(&md)
    );
    assert_no_leak(&canaries, &md, "the step summary");

    // Not set: an error naming it, with the YAML to add; nothing written.
    let before = snapshot(c.root());
    let out = c
        .credfile()
        .env("GITHUB_ACTIONS", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .run(["apply", "--env", "test"]);
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains("CI variable DB_PASSWORD"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("DB_PASSWORD: ${{ secrets.DB_PASSWORD }}"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("GitLab"), "{}", out.stderr);
    assert_eq!(snapshot(c.root()), before);
    assert_eq!(proxy.total(), 0);
}

#[test]
fn ci_file_variables_in_a_gitlab_like_job() {
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("ci-gitlab", &proxy.endpoint());
    let key = format!(
        "-----BEGIN KEY-----\n{}\n-----END KEY-----\n",
        canary_value()
    );
    let token = canary_value();
    support::Canaries::global().add(&key);
    support::Canaries::global().add(&token);
    // GitLab writes a file-type variable to a temporary file and passes its path.
    let var_file = c.dir.path().join("TLS_KEY.var");
    fs::write(&var_file, &key).unwrap();
    let dump = c.dir.path().join("hook-env");
    c.manifest(
        "",
        &format!(
            "  - path: tls/server.key\n    ci_variable_file: TLS_KEY\n{}  - path: token\n    ci_variable: DEPLOY_TOKEN\n",
            env_hook(&dump)
        ),
    );
    let out = c
        .credfile()
        .env("GITLAB_CI", "true")
        .env("TLS_KEY", var_file.display().to_string())
        .env("DEPLOY_TOKEN", &token)
        .env_remove("AWS_ACCESS_KEY_ID")
        .run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert_eq!(proxy.total(), 0);
    assert_eq!(c.file("tls/server.key"), key.as_bytes());
    assert_eq!(c.file("token"), token.as_bytes());
    assert!(out.stdout.contains("ci-file:TLS_KEY"), "{}", out.stdout);
    let hook_env = fs::read(&dump).expect("the hook ran");
    assert_no_leak(
        &support::Canaries::global(),
        &hook_env,
        "the hook's environment",
    );
    let hook_env = String::from_utf8_lossy(&hook_env);
    assert!(
        !hook_env.contains("TLS_KEY=") && !hook_env.contains("DEPLOY_TOKEN="),
        "{hook_env}"
    );

    // A file variable whose file is gone: an error naming the variable.
    fs::remove_file(&var_file).unwrap();
    let before = snapshot(c.root());
    let out = c
        .credfile()
        .env("GITLAB_CI", "true")
        .env("TLS_KEY", var_file.display().to_string())
        .env("DEPLOY_TOKEN", &token)
        .run(["apply", "--env", "test"]);
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains("CI file variable TLS_KEY"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before);
}

#[test]
fn manifest_errors_for_the_new_sources() {
    let c = Case::new("src-validate");
    let check = |files: &str, expect: &str| {
        c.manifest("", files);
        let out = c.credfile().run(["validate"]);
        out.assert_code(USAGE);
        assert!(out.stderr.contains(expect), "{files}\n{}", out.stderr);
    };
    check(
        "  - path: a\n    secret: x\n    parameter: /x\n",
        "give one source, not `secret` and `parameter`",
    );
    check(
        "  - path: a\n    parameter: app/db\n",
        "a hierarchical parameter name starts with `/`",
    );
    check(
        "  - path: a\n    parameter: /x\n    version: 1\n    label: blue\n",
        "give `version` or `label`, not both",
    );
    check(
        "  - path: a\n    parameter: /x\n    label: 1st\n",
        "cannot start with a digit",
    );
    check(
        "  - path: a\n    parameter: /x\n    version_stage: AWSPREVIOUS\n",
        "`version_stage` belongs to `secret:`",
    );
    check(
        "  - path: a\n    ci_variable: not-a-name\n",
        "CI variable reference (environment `test`) is not valid",
    );
    check(
        "  - path: a\n    ci_variable: HOME\n",
        "the name is one hooks inherit",
    );
    check(
        "  - path: a\n    parameters_path: /x\n",
        "a path starts and ends with `/`",
    );
    check(
        "  - path: a\n    parameter: /x\n    keys: all\n",
        "`keys: all` needs `secret:`",
    );
    // Secret prefixes (issue 17, item 14): one `*`, at the end, of a name; an entry of its own.
    check(
        "  - path: a\n    secret: orders/*/db\n",
        "only one `*`, at the end, is allowed",
    );
    check(
        "  - path: a\n    secret: \"*\"\n",
        "`*` alone would read every secret",
    );
    check(
        "  - path: a\n    secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:orders/*\n",
        "not an ARN",
    );
    check(
        "  - path: a\n    secret: orders/*\n    keys: all\n",
        "`keys` cannot be combined with a secret prefix",
    );
    check(
        "  - path: a\n    secret: orders/*\n    version_stage: AWSPREVIOUS\n",
        "`version_stage` cannot be combined with a secret prefix",
    );
    check(
        "  - path: a\n    secret: orders/*\n    key: host\n",
        "`key` cannot be combined",
    );
    check(
        "  - path: a.env\n    format: dotenv\n    values:\n      A: { secret: orders/* }\n",
        "is a directory entry of its own",
    );
}
