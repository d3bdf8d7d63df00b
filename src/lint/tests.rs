//! One fixture per rule that triggers it, and a near miss that does not. Every fixture is the
//! clean manifest [`BASE`] with one change.

use std::path::PathBuf;

use super::*;

const BASE: &str = r#"version: 1
app: payments
defaults:
  region: us-east-1
  mode: "0440"
  dir_mode: "0750"
environments:
  staging:
    account: "111111111111"
    root: /run/credfile/payments
    identity:
      role_arn: arn:aws:iam::111111111111:role/payments-deploy-staging
    vars: { prefix: payments/staging }
  production:
    protected: true
    account: "222222222222"
    root: /dev/shm/payments
    identity: { role_arn: arn:aws:iam::222222222222:role/payments-deploy-production, web_identity: github }
    vars: { prefix: payments/production }
files:
  - path: db/password
    secret: ${prefix}/db
    key: password
  - path: app.env
    format: dotenv
    values:
      API_KEY: { secret: "${prefix}/api-key" }
"#;

const SHARED_ARN: &str = "arn:aws:secretsmanager:us-east-1:111111111111:secret:common/db-AbC123";

fn lint_texts(texts: &[(&str, &str)]) -> Vec<Finding> {
    let inputs: Vec<(PathBuf, String)> = texts
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    check_manifests(&inputs, &crate::manifest::PlainFiles)
}

fn lint(text: &str) -> Vec<Finding> {
    lint_texts(&[("credfile.yaml", text)])
}

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "fixture edit `{from}` does not apply");
    BASE.replacen(from, to, 1)
}

fn rules_of(findings: &[Finding]) -> Vec<(&'static str, Level)> {
    findings.iter().map(|f| (f.rule, f.level)).collect()
}

#[track_caller]
fn assert_only(findings: &[Finding], rule: &str, level: Level) {
    assert!(
        !findings.is_empty() && findings.iter().all(|f| f.rule == rule && f.level == level),
        "expected only {rule} ({level:?}), got:\n{}",
        findings
            .iter()
            .map(|f| format!("{f}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[track_caller]
fn assert_clean(findings: &[Finding]) {
    assert!(
        findings.is_empty(),
        "expected no findings, got:\n{}",
        findings
            .iter()
            .map(|f| format!("{f}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_base_fixture_is_clean() {
    assert_clean(&lint(BASE));
}

#[test]
fn every_rule_has_help_and_a_unique_id() {
    let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RULES.len());
    assert!(
        RULES
            .iter()
            .all(|r| !r.help.is_empty() && !r.summary.is_empty())
    );
}

#[test]
fn rules_that_validation_enforces_exist() {
    for id in [
        crate::manifest::RULE_PROTECTED_NO_ACCOUNT,
        crate::manifest::RULE_VAR_UNKNOWN,
    ] {
        assert!(RULES.iter().any(|r| r.id == id), "{id}");
    }
}

#[test]
fn manifest_invalid() {
    let bad = lint(&with(
        "    key: password\n",
        "    key: password\n    mdoe: \"0400\"\n",
    ));
    assert_only(&bad, "manifest-invalid", Level::Error);
    assert_eq!((bad[0].line, bad[0].column), (24, 5));
}

#[test]
fn env_shared_secret() {
    // One ARN read by both environments, one of them protected: an error.
    let bad = lint(&with(
        "    key: password\n",
        &format!(
            "    key: password\n  - path: common\n    secret: {SHARED_ARN}\n    allow_cross_account: true\n"
        ),
    ));
    assert_only(&bad, "env-shared-secret", Level::Error);
    assert!(
        bad[0].message.contains("`production` (protected)"),
        "{}",
        bad[0].message
    );
    // Between unprotected environments: a warning.
    let warn = lint(&with("    protected: true\n", "").replace(
        "    key: password\n",
        &format!("    key: password\n  - path: common\n    secret: {SHARED_ARN}\n    allow_cross_account: true\n"),
    ));
    assert_only(&warn, "env-shared-secret", Level::Warning);
    // The same ARN in one environment only: fine.
    let ok = lint(&with(
        "    key: password\n",
        &format!(
            "    key: password\n  - path: common\n    secret: {SHARED_ARN}\n    environments: [staging]\n"
        ),
    ));
    assert_clean(&ok);
    // The same name in two accounts is two secrets.
    let ok = lint(&with("${prefix}/db", "common/db"));
    assert_clean(&ok);
}

#[test]
fn env_shared_secret_when_an_account_is_unknown() {
    let text = with("    account: \"111111111111\"\n", "")
        .replace(
            "      role_arn: arn:aws:iam::111111111111:role/payments-deploy-staging\n",
            "      web_identity: auto\n",
        )
        .replace("${prefix}/db", "common/db");
    let found = lint(&text);
    assert_only(&found, "env-shared-secret", Level::Error);
    assert!(
        found[0].message.contains("may be read by"),
        "{}",
        found[0].message
    );
}

#[test]
fn app_shared_secret() {
    let billing = |secret: &str| {
        format!(
            "version: 1\napp: billing\ndefaults: {{ region: us-east-1 }}\nenvironments:\n  production:\n    protected: true\n    account: \"111111111111\"\n    root: /run/credfile/billing\n    identity: {{ role_arn: arn:aws:iam::111111111111:role/billing, web_identity: github }}\nfiles:\n  - path: db\n    secret: {secret}\n"
        )
    };
    let payments = with(
        "    key: password\n",
        &format!(
            "    key: password\n  - path: common\n    secret: {SHARED_ARN}\n    environments: [staging]\n"
        ),
    );
    let bad = lint_texts(&[
        ("payments.yaml", &payments),
        ("billing.yaml", &billing("common/db")),
    ]);
    assert_only(&bad, "app-shared-secret", Level::Error);
    assert_eq!(bad.len(), 2, "reported in both manifests");
    assert_eq!(bad[0].file, PathBuf::from("billing.yaml"));
    assert_eq!(bad[1].file, PathBuf::from("payments.yaml"));
    assert!(
        bad[1].message.contains("app `billing`"),
        "{}",
        bad[1].message
    );

    let ok = lint_texts(&[
        ("payments.yaml", &payments),
        ("billing.yaml", &billing("billing/db")),
    ]);
    assert_clean(&ok);
}

#[test]
fn protected_no_account() {
    let bad = lint(&with("    account: \"222222222222\"\n", ""));
    assert_only(&bad, "protected-no-account", Level::Error);
    // Unprotected environments need not pin an account.
    let ok = lint(&with("    account: \"111111111111\"\n", ""));
    assert_clean(&ok);
}

#[test]
fn protected_no_role() {
    let bad = lint(&with(
        "    identity: { role_arn: arn:aws:iam::222222222222:role/payments-deploy-production, web_identity: github }\n",
        "",
    ));
    assert_only(&bad, "protected-no-role", Level::Error);
    let ok = lint(&with(
        "    identity:\n      role_arn: arn:aws:iam::111111111111:role/payments-deploy-staging\n",
        "",
    ));
    assert_clean(&ok);
}

#[test]
fn protected_web_identity() {
    let bad = lint(&with(", web_identity: github }", " }"));
    assert_only(&bad, "protected-web-identity", Level::Error);
    // Not protected: `auto` by default is fine.
    assert_clean(&lint(&with("    protected: true\n", "")));
}

#[test]
fn mode_writable() {
    assert_only(
        &lint(&with("  mode: \"0440\"\n", "  mode: \"0460\"\n")),
        "mode-writable",
        Level::Error,
    );
    assert_only(
        &lint(&with("  dir_mode: \"0750\"\n", "  dir_mode: \"0777\"\n")),
        "mode-writable",
        Level::Error,
    );
    assert_clean(&lint(&with("  mode: \"0440\"\n", "  mode: \"0600\"\n")));
}

#[test]
fn mode_other_read_judges_effective_access() {
    let readable = |t: &str| {
        t.replacen(
            "    key: password\n",
            "    key: password\n    mode: \"0444\"\n",
            1,
        )
    };
    // The issue's case: 0444 under the 0750 directories credfile creates; others cannot
    // enter them, so nobody but the owner and the directory group can read it.
    assert_clean(&lint(&readable(BASE)));
    let open = BASE.replacen("  dir_mode: \"0750\"\n", "  dir_mode: \"0755\"\n", 1);
    let bad = lint(&readable(&open));
    assert_only(&bad, "mode-other-read", Level::Error);
    assert_eq!(bad[0].line, 24);
    assert!(
        bad[0]
            .message
            .contains("`staging` (its directory mode `0755` lets others enter"),
        "{}",
        bad[0].message
    );
    // Only the environments whose directories are open.
    let prod_closed = open.replacen(
        "    root: /dev/shm/payments\n",
        "    root: /dev/shm/payments\n    dir_mode: \"0700\"\n",
        1,
    );
    let bad = lint(&readable(&prod_closed));
    assert_only(&bad, "mode-other-read", Level::Error);
    assert!(
        !bad[0].message.contains("`production`"),
        "{}",
        bad[0].message
    );
    // `layout: files` puts a top-level file straight into the root, whose mode credfile
    // does not set; a file in a subdirectory stays behind `dir_mode`.
    let files_layout = BASE.replacen(
        "  dir_mode: \"0750\"\n",
        "  dir_mode: \"0750\"\n  layout: files\n",
        1,
    );
    assert_clean(&lint(&readable(&files_layout)));
    let top = files_layout.replacen("  - path: db/password\n", "  - path: password\n", 1);
    let bad = lint(&readable(&top));
    assert_only(&bad, "mode-other-read", Level::Error);
    assert!(
        bad[0].message.contains("layout: files"),
        "{}",
        bad[0].message
    );
    // Directories may be traversable by others: their names are not secrets.
    assert_clean(&lint(&open));
}

#[test]
fn root_not_memory() {
    let bad = lint(&with(
        "    root: /dev/shm/payments\n",
        "    root: /srv/payments\n",
    ));
    assert_only(&bad, "root-not-memory", Level::Warning);
    // Only protected environments are held to it.
    assert_clean(&lint(&with(
        "    root: /run/credfile/payments\n",
        "    root: /srv/payments\n",
    )));
}

#[test]
fn path_in_git_tree() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let inside = dir.path().join("config/secrets");
    let manifest = dir.path().join("deploy/credfile.yaml");
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    let text = with(
        "    root: /run/credfile/payments\n",
        &format!("    root: {}\n", inside.display()),
    );
    let bad = check_manifests(&[(manifest.clone(), text)], &crate::manifest::PlainFiles);
    assert_only(&bad, "path-in-git-tree", Level::Error);
    let bad = lint(&with("  - path: app.env\n", "  - path: .git/app.env\n"));
    assert_only(&bad, "path-in-git-tree", Level::Error);
    // The same manifest outside any work tree is clean.
    let outside = tempfile::tempdir().unwrap();
    let text = with(
        "    root: /run/credfile/payments\n",
        &format!("    root: {}\n", outside.path().join("secrets").display()),
    );
    assert_clean(&check_manifests(
        &[(outside.path().join("credfile.yaml"), text)],
        &crate::manifest::PlainFiles,
    ));
}

#[test]
fn path_in_web_root() {
    let bad = lint(&with(
        "    root: /run/credfile/payments\n",
        "    root: /var/www/payments\n",
    ));
    assert_only(&bad, "path-in-web-root", Level::Error);
    let bad = lint(&with("  - path: app.env\n", "  - path: public/app.env\n"));
    assert_only(&bad, "path-in-web-root", Level::Error);
    assert_clean(&lint(&with(
        "  - path: app.env\n",
        "  - path: publication/app.env\n",
    )));
}

#[test]
fn literal_value() {
    let bad = lint(&with(
        "    vars: { prefix: payments/staging }\n",
        "    vars: { prefix: payments/staging }\n    # token: AKIAIOSFODNN7EXAMPLE\n",
    ));
    assert_only(&bad, "literal-value", Level::Error);
    assert_eq!((bad[0].line, bad[0].column), (14, 14));
    // Only the key id's public prefix is shown, never the rest.
    assert!(
        bad[0].message.contains("`AKIA…`, 20 characters"),
        "{}",
        bad[0].message
    );
    assert!(!bad[0].message.contains("AKIAI"), "never quote the value");
    // A literal pasted as a variable value is found too (and is an unused variable).
    let bad = lint(&with(
        "{ prefix: payments/staging }",
        "{ prefix: payments/staging, key: \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\" }",
    ));
    let mut found = rules_of(&bad);
    found.sort();
    assert_eq!(
        found,
        vec![
            ("literal-value", Level::Error),
            ("var-unused", Level::Warning)
        ]
    );
    // Version ids are UUIDs by design.
    let ok = lint(&with(
        "    key: password\n",
        "    key: password\n    version_id: 3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b\n",
    ));
    assert_clean(&ok);
}

#[test]
fn var_unknown() {
    let bad = lint(&with("${prefix}/api-key", "${prefx}/api-key"));
    // Both environments lack `prefx`; `prefix` is still used by db/password.
    assert_eq!(
        rules_of(&bad),
        vec![("var-unknown", Level::Error), ("var-unknown", Level::Error)]
    );
}

#[test]
fn var_unused() {
    let bad = lint(&with(
        "{ prefix: payments/staging }",
        "{ prefix: payments/staging, team: core }",
    ));
    assert_only(&bad, "var-unused", Level::Warning);
    // A variable used only by an entry limited to another environment is unused here.
    let text = BASE
        .replace("{ prefix: payments/staging }", "{ prefix: payments/staging, tls: x }")
        .replace(
            "      API_KEY: { secret: \"${prefix}/api-key\" }\n",
            "      API_KEY: { secret: \"${prefix}/api-key\" }\n  - path: tls\n    secret: ${prefix}/${tls}\n    environments: [production]\n",
        );
    let found = lint(&text);
    assert!(
        rules_of(&found).contains(&("var-unused", Level::Warning)),
        "{found:?}"
    );
}

#[test]
fn sarif_has_every_rule_and_positions() {
    let findings = lint(&with("  mode: \"0440\"\n", "  mode: \"0666\"\n").replacen(
        "  dir_mode: \"0750\"\n",
        "  dir_mode: \"0755\"\n",
        1,
    ));
    let log = sarif::to_sarif(&findings);
    let run = &log["runs"][0];
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(
        run["tool"]["driver"]["rules"].as_array().unwrap().len(),
        RULES.len()
    );
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let r = &results[0];
    assert_eq!(r["ruleId"], "mode-other-read");
    assert_eq!(
        run["tool"]["driver"]["rules"][r["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "mode-other-read"
    );
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        5
    );
    assert_eq!(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "credfile.yaml"
    );
}

#[test]
fn not_sensitive_values_may_be_shared() {
    // A host shared by both environments (one protected): not a finding once marked.
    let shared = |extra: &str| {
        with(
            "      API_KEY: { secret: \"${prefix}/api-key\" }\n",
            &format!(
                "      API_KEY: {{ secret: \"${{prefix}}/api-key\" }}\n      DB_HOST: {{ secret: \"{SHARED_ARN}\", key: host, allow_cross_account: true{extra} }}\n"
            ),
        )
    };
    assert_only(&lint(&shared("")), "env-shared-secret", Level::Error);
    assert_clean(&lint(&shared(", sensitive: false")));
    // On the entry, for all its values.
    let entry = shared("").replace(
        "    format: dotenv\n",
        "    format: dotenv\n    sensitive: false\n",
    );
    assert_clean(&lint(&entry));
}

#[test]
fn suppressions_cover_their_own_entry_only() {
    let allow = "    lint: { allow: [{ rule: literal-value, reason: \"a test fixture\" }] }\n";
    let text = with(
        "    key: password\n",
        &format!("    key: password\n    # db_password: hunter2x\n{allow}"),
    );
    let found = lint(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, "literal-value");
    assert_eq!(found[0].suppressed.as_deref(), Some("a test fixture"));
    assert!(!found[0].fails());
    // The same line in the next entry is not covered.
    let text = with(
        "    key: password\n",
        &format!("    key: password\n{allow}"),
    )
    .replace(
        "      API_KEY: { secret: \"${prefix}/api-key\" }\n",
        "      API_KEY: { secret: \"${prefix}/api-key\" }\n    # db_password: hunter2x\n",
    );
    let found = lint(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].fails(), "{found:?}");
}

#[test]
fn suppressions_keep_flow_style_entries_apart() {
    let text = "version: 1\napp: a\ndefaults: { root: /run/credfile/a, dir_mode: \"0755\", region: us-east-1 }\nenvironments: { test: { vars: { p: a/test } } }\nfiles: [ { path: ca.pem, secret: \"${p}/ca\", mode: \"0444\", lint: { allow: [ { rule: mode-other-read, reason: \"public CA\" } ] } }, { path: b.pem, secret: \"${p}/b\", mode: \"0444\" } ]\n";
    let found = lint(text);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].suppressed.as_deref(), Some("public CA"));
    assert!(
        found[1].fails(),
        "the second entry is not covered: {found:?}"
    );
}
