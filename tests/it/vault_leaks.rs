//! Vault values never leave the files they are written to (docs/src/guarantees.md): not in
//! stdout or stderr (the runner checks every run), the audit line, the GitHub step summary,
//! the state file or a hook's environment; and `audit reuse` finds a Vault value two
//! environments share, by fingerprint.

use std::fs;

use crate::support::vault_case::canary;
use crate::support::{Canaries, Credfile, OpenBao, assert_no_leak, moto_endpoint};

#[test]
fn vault_values_reach_no_output_and_audit_reuse_finds_a_shared_one() {
    let bao = OpenBao::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = crate::support::unique_prefix("vault-leaks");
    let (shared, staging_db, production_db) = (canary(), canary(), canary());
    for (env, db) in [("staging", &staging_db), ("production", &production_db)] {
        bao.kv_put(
            &format!("secret/{prefix}/{env}/api"),
            &[&format!("token={shared}")],
        );
        bao.kv_put(
            &format!("secret/{prefix}/{env}/db"),
            &[&format!("password={db}")],
        );
    }
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/leaks",
        "role_id=leaks-role",
        "token_policies=default,reader",
    ]);
    bao.ok_stdin(
        &["policy", "write", "reader", "-"],
        &format!("path \"secret/data/{prefix}/*\" {{ capabilities = [\"read\"] }}\n"),
    );
    let secret_id = bao.approle_secret_id("leaks");
    let hook_env = dir.path().join("hook.env");
    let root = dir.path().join("root");
    fs::write(
        dir.path().join("credfile.yaml"),
        format!(
            "version: 1\napp: leaks\ndefaults:\n  region: us-east-1\n  root: {root}/staging\n  vault:\n    address: {addr}\n    auth: {{ method: approle, role_id: leaks-role, secret_id_env: LEAKS_SECRET_ID }}\n  on_change: [/bin/sh, -c, 'env > {hook}']\nenvironments:\n  staging:\n    vars: {{ stage: staging }}\n  production:\n    vars: {{ stage: production }}\n    root: {root}/production\nfiles:\n  - path: db.env\n    format: dotenv\n    values:\n      API_TOKEN: {{ vault: \"secret/{prefix}/${{stage}}/api\", key: token }}\n      DB_PASSWORD: {{ vault: \"secret/{prefix}/${{stage}}/db\", key: password }}\n  - path: api\n    vault: \"secret/{prefix}/${{stage}}/api\"\n    keys: all\n",
            root = root.display(),
            addr = bao.addr,
            hook = hook_env.display(),
        ),
    )
    .unwrap();
    let summary = dir.path().join("step-summary.md");
    let audit = dir.path().join("audit.jsonl");
    let cf = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .env("LEAKS_SECRET_ID", &secret_id);
    // A GitHub Actions job (approle is allowed in CI; the summary file is GitHub's).
    let out = cf
        .clone()
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_REPOSITORY", "acme/leaks")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_STEP_SUMMARY", summary.to_string_lossy())
        .run([
            "apply",
            "--env",
            "staging",
            "--audit-log",
            audit.to_str().unwrap(),
        ]);
    out.assert_code(0);
    let written = fs::read_to_string(root.join("staging/current/db.env")).unwrap();
    assert!(written.contains(&shared) && written.contains(&staging_db));
    let canaries = Canaries::global();
    let vault_ref = format!("secret/{prefix}/staging/db");
    for (what, path) in [
        ("the audit line", audit.clone()),
        ("the step summary", summary.clone()),
        ("the state file", root.join("staging/.credfile-state.json")),
        ("the hook's environment", hook_env.clone()),
    ] {
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{what} ({}) was not written: {e}", path.display()));
        assert_no_leak(&canaries, &text, what);
        if what != "the hook's environment" {
            assert!(
                text.contains(&vault_ref),
                "{what} does not name {vault_ref}:\n{text}"
            );
        }
    }
    // The hook ran without the sign-in variable credfile read.
    let env = fs::read_to_string(&hook_env).unwrap();
    assert!(!env.contains("LEAKS_SECRET_ID"), "{env}");

    // `audit reuse` signs in for each environment and finds the shared token, by path only.
    let out = cf.run(["audit", "reuse", "--env", "staging", "--env", "production"]);
    // Not a governance failure: neither environment is protected.
    out.assert_code(0);
    assert!(
        out.stdout.contains("1 pair(s) share a value"),
        "{}",
        out.stdout
    );
    // Each environment signed in on its own (its own role), and each token was revoked.
    assert_eq!(
        out.stderr.matches("signed in to Vault").count(),
        2,
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("revoked the Vault token").count(),
        2,
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains(&format!(
            "`Vault secret secret/{prefix}/staging/api` key `token`"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "`Vault secret secret/{prefix}/production/api` key `token`"
        )),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("/db"),
        "the db passwords differ: {}",
        out.stdout
    );
}
