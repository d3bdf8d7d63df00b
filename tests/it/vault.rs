//! The Vault source against a real OpenBao dev server (docs/src/vault.md): KV v1 and v2 told
//! apart by mount, a pinned version after an overwrite, `keys: all`, `values:` in dotenv and
//! template files, AppRole with a response-wrapped secret id and the generated policy, the
//! token revoked after the run, token sign-in refused in CI and protected environments, and
//! the 403 and 404 messages. Canary values never reach any output or the state file.

use std::fs;

use crate::support::vault_case::{
    DB_FILE, assert_has_all, canary, lookup_run_token, vault_case, vault_env,
};
use crate::support::{Canaries, Case, OpenBao, assert_no_leak};

pub(crate) fn state_text(case: &Case) -> String {
    fs::read_to_string(case.root().join(".credfile-state.json")).unwrap()
}

#[test]
fn kv_v1_and_v2_a_pinned_version_keys_all_dotenv_and_template() {
    let bao = OpenBao::start();
    let case = Case::new("vaultkv", "kv");
    let p = &case.prefix;
    let (old, new, api) = (canary(), canary(), canary());
    bao.kv_put(
        &format!("secret/{p}/db"),
        &[&format!("password={old}"), "user=app_user"],
    );
    bao.kv_put(
        &format!("secret/{p}/db"),
        &[&format!("password={new}"), "user=app_user"],
    );
    bao.ok(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    bao.kv_put(&format!("kv1/{p}/api"), &[&format!("token={api}")]);
    case.manifest(
        &vault_env(&bao, "      auth: { method: token }\n"),
        r#"  - path: db.env
    format: dotenv
    values:
      DB_PASSWORD: { vault: "secret/${prefix}/db", key: password }
      OLD_PASSWORD: { vault: "secret/${prefix}/db", key: password, version: 1 }
      API_TOKEN: { vault: "kv1/${prefix}/api", key: token }
  - path: app.conf
    format: template
    template: "user={{ user }} pw={{ pw }}\n"
    values:
      user: { vault: "secret/${prefix}/db", key: user, sensitive: false }
      pw: { vault: "secret/${prefix}/db", key: /password }
  - path: all
    vault: "secret/${prefix}/db"
    keys: all
"#,
    );
    let out = case
        .credfile()
        .env("VAULT_TOKEN", &bao.root_token)
        .run(["apply", "--env", "test"]);
    out.assert_code(0);
    let current = case.root().join("current");
    assert_eq!(
        fs::read_to_string(current.join("db.env")).unwrap(),
        format!("DB_PASSWORD='{new}'\nOLD_PASSWORD='{old}'\nAPI_TOKEN='{api}'\n")
    );
    assert_eq!(
        fs::read_to_string(current.join("app.conf")).unwrap(),
        format!("user=app_user pw={new}\n")
    );
    assert_eq!(
        fs::read_to_string(current.join("all/password")).unwrap(),
        new
    );
    assert_eq!(
        fs::read_to_string(current.join("all/user")).unwrap(),
        "app_user"
    );
    // Path and version, never a value: in the report and the state file.
    assert!(
        out.stdout.contains(&format!("secret/{p}/db@2")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("secret/{p}/db@1")),
        "{}",
        out.stdout
    );
    let state = state_text(&case);
    for want in [
        format!("vault:secret/{p}/db@2"),
        format!("vault:secret/{p}/db@1"),
        format!("vault:kv1/{p}/api"),
    ] {
        assert!(state.contains(&want), "state file lacks {want}");
    }
    assert_no_leak(&Canaries::global(), &state, "the state file");
    // An unchanged second apply changes nothing.
    let again = case
        .credfile()
        .env("VAULT_TOKEN", &bao.root_token)
        .run(["apply", "--env", "test"]);
    again.assert_code(0);
    assert!(
        again.stdout.contains("0 created, 0 updated"),
        "{}",
        again.stdout
    );
}

#[test]
fn approle_with_a_wrapped_secret_id_under_the_generated_policy_and_the_token_revoked() {
    let bao = OpenBao::start();
    let case = Case::new("vaultrole", "approle");
    let p = &case.prefix;
    let (value, other) = (canary(), canary());
    bao.kv_put(&format!("secret/{p}/db"), &[&format!("password={value}")]);
    bao.kv_put(
        &format!("secret/{p}/other"),
        &[&format!("password={other}")],
    );
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/orders",
        "token_policies=credfile-vaultrole-test",
        "token_ttl=5m",
    ]);
    let role_id = bao
        .ok(&["read", "-field=role_id", "auth/approle/role/orders/role-id"])
        .trim()
        .to_string();
    case.manifest(
        &vault_env(
            &bao,
            &format!("      auth:\n        method: approle\n        role_id: {role_id}\n        secret_id_env: ORDERS_SECRET_ID\n        wrapped: true\n"),
        ),
        "  - path: db.password\n    vault: \"secret/${prefix}/db\"\n    key: password\n",
    );
    // The policy credfile prints, written into OpenBao as it is.
    let policy = case.credfile().run(["policy", "--vault", "--env", "test"]);
    policy.assert_code(0);
    assert!(
        policy
            .stdout
            .contains(&format!("path \"secret/data/{p}/db\"")),
        "{}",
        policy.stdout
    );
    bao.ok_stdin(
        &["policy", "write", "credfile-vaultrole-test", "-"],
        &policy.stdout,
    );
    let wrapping = bao
        .ok(&[
            "write",
            "-wrap-ttl=5m",
            "-field=wrapping_token",
            "-f",
            "auth/approle/role/orders/secret-id",
        ])
        .trim()
        .to_string();
    Canaries::global().add(&wrapping);
    let out = case
        .credfile()
        .env("ORDERS_SECRET_ID", &wrapping)
        .run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(case.root().join("current/db.password")).unwrap(),
        value
    );
    // The token credfile obtained is gone: the root token cannot look it up.
    assert!(
        out.stderr.contains("revoked the Vault token"),
        "{}",
        out.stderr
    );
    let (code, err) = lookup_run_token(&bao, &out);
    assert_ne!(code, 0, "the token outlived the run");
    assert!(
        err.contains("invalid accessor") || err.contains("bad token"),
        "{err}"
    );
    // The policy grants what the manifest names and nothing else.
    let token = bao
        .ok(&[
            "token",
            "create",
            "-policy=credfile-vaultrole-test",
            "-field=token",
        ])
        .trim()
        .to_string();
    let (code, _, _) = bao.cli_as(&token, &["kv", "get", &format!("secret/{p}/db")]);
    assert_eq!(code, 0);
    let (code, _, err) = bao.cli_as(&token, &["kv", "get", &format!("secret/{p}/other")]);
    assert_ne!(code, 0);
    assert!(err.contains("permission denied"), "{err}");
    // A wrapping token works once: the second run is refused, and says why.
    let again = case
        .credfile()
        .env("ORDERS_SECRET_ID", &wrapping)
        .run(["apply", "--env", "test"]);
    again.assert_code(3);
    assert!(
        again.stderr.contains("could not be unwrapped"),
        "{}",
        again.stderr
    );
}

#[test]
fn token_sign_in_is_refused_in_ci_and_in_protected_environments() {
    let (bao, case, _) = vault_case("vaulttok", "token");
    let files = DB_FILE;
    case.manifest(&vault_env(&bao, "      auth: { method: token }\n"), files);
    let out = case
        .credfile()
        .env("VAULT_TOKEN", &bao.root_token)
        .env("GITHUB_ACTIONS", "true")
        .run(["apply", "--env", "test"]);
    out.assert_code(3);
    assert!(
        out.stderr
            .contains("refusing Vault token sign-in inside CI (GitHub Actions)"),
        "{}",
        out.stderr
    );
    assert!(!case.root().exists(), "nothing may be written");
    case.manifest(
        &format!(
            "    protected: true\n    account: \"123456789012\"\n{}",
            vault_env(&bao, "      auth: { method: token }\n")
        ),
        files,
    );
    let out = case
        .credfile()
        .env("VAULT_TOKEN", &bao.root_token)
        .run(["apply", "--env", "test"]);
    out.assert_code(3);
    assert!(
        out.stderr
            .contains("refusing Vault token sign-in in protected environment `test`"),
        "{}",
        out.stderr
    );
    // lint says it before any run.
    let lint = case.credfile().run(["lint"]);
    assert!(lint.stdout.contains("vault-token-auth"), "{}", lint.stdout);
}

#[test]
fn denied_and_missing_paths_name_the_path_the_mount_and_the_grant() {
    let bao = OpenBao::start();
    let case = Case::new("vaultdeny", "deny");
    let p = &case.prefix;
    let value = canary();
    bao.kv_put(&format!("secret/{p}/db"), &[&format!("password={value}")]);
    bao.kv_put(
        &format!("secret/{p}/forbidden"),
        &[&format!("password={}", canary())],
    );
    bao.ok_stdin(
        &["policy", "write", "narrow", "-"],
        &format!("path \"secret/data/{p}/db\" {{ capabilities = [\"read\"] }}\n"),
    );
    let narrow = bao
        .ok(&["token", "create", "-policy=narrow", "-field=token"])
        .trim()
        .to_string();
    case.manifest(
        &vault_env(&bao, "      auth: { method: token }\n"),
        "  - path: a\n    vault: \"secret/${prefix}/db\"\n    key: password\n  - path: b\n    vault: \"secret/${prefix}/forbidden\"\n    key: password\n",
    );
    let out = case
        .credfile()
        .env("VAULT_TOKEN", &narrow)
        .run(["apply", "--env", "test"]);
    out.assert_code(4);
    assert_has_all(
        &out.stderr,
        &[
            format!(
                "permission denied (HTTP 403) on `secret/data/{p}/forbidden` (mount `secret/`)"
            ),
            format!("path \"secret/data/{p}/forbidden\" {{ capabilities = [\"read\"] }}"),
            "credfile policy --vault".to_string(),
        ],
    );
    assert!(!case.root().exists(), "nothing may be written");
    case.manifest(
        &vault_env(&bao, "      auth: { method: token }\n"),
        "  - path: a\n    vault: \"secret/${prefix}/missing\"\n  - path: b\n    vault: \"secret/${prefix}/db\"\n    version: 9\n",
    );
    let out = case
        .credfile()
        .env("VAULT_TOKEN", &bao.root_token)
        .run(["apply", "--env", "test"]);
    out.assert_code(4);
    assert_has_all(
        &out.stderr,
        &[
            format!("nothing at `secret/data/{p}/missing` (HTTP 404) (mount `secret/`)"),
            format!("nothing at `secret/data/{p}/db` (HTTP 404) (mount `secret/`), version 9"),
            "without `data/`".to_string(),
        ],
    );
}

#[test]
fn the_vault_role_and_the_manifest_rules() {
    let bao = OpenBao::start();
    let case = Case::new("vaultgov", "gov");
    case.manifest(
        &vault_env(
            &bao,
            "      auth: { method: jwt, role: orders, audience: vault.example }\n",
        ),
        "  - path: a\n    vault: \"secret/${prefix}/db\"\n    key: password\n",
    );
    let out = case.credfile().run([
        "policy",
        "--env",
        "test",
        "--vault-role",
        "github:acme/orders:environment:production",
    ]);
    out.assert_code(0);
    let role: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        role["bound_audiences"],
        serde_json::json!(["vault.example"])
    );
    assert_eq!(role["bound_claims"]["repository"], "acme/orders");
    assert_eq!(role["bound_claims"]["environment"], "production");
    assert_eq!(
        role["token_policies"],
        serde_json::json!(["credfile-vaultgov-test"])
    );
    // OpenBao takes it as written.
    bao.ok(&["auth", "enable", "jwt"]);
    bao.ok_stdin(&["write", "auth/jwt/role/orders", "-"], &out.stdout);
    let back = bao.ok(&["read", "-format=json", "auth/jwt/role/orders"]);
    let back: serde_json::Value = serde_json::from_str(&back).unwrap();
    assert_eq!(back["data"]["bound_claims"]["repository"], "acme/orders");
    assert_eq!(back["data"]["token_ttl"], 600);

    // Plain http to another host is refused, and a pasted Vault token is a literal.
    case.manifest(
        "    vault:\n      address: http://vault.internal.example:8200\n",
        "  - path: a\n    vault: \"secret/${prefix}/db\"\n",
    );
    let out = case.credfile().run(["validate"]);
    out.assert_code(2);
    assert!(out.stderr.contains("clear text"), "{}", out.stderr);
    let lint = case.credfile().run(["lint"]);
    assert!(lint.stdout.contains("vault-plain-http"), "{}", lint.stdout);
    case.manifest(
        &format!(
            "{}    # hvs.CAESIJxq2b7AzXk4Y9pQw8sLmN3rT5vU1eF0gH6jK\n",
            vault_env(&bao, "")
        ),
        "  - path: a\n    vault: \"secret/${prefix}/db\"\n",
    );
    let out = case.credfile().run(["validate"]);
    out.assert_code(2);
    // A Vault token (`hvs.` and a long random run) is caught as a high-entropy literal.
    assert!(
        out.stderr.contains("looks like a literal secret"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_pipeline_example_manifest_validates_and_prints_its_policy() {
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/pipeline-examples/vault/credfile.yaml"
    );
    let run = crate::support::Credfile::new("http://127.0.0.1:9");
    run.run(["validate", "--manifest", manifest]).assert_code(0);
    let out = run.run([
        "policy",
        "--vault",
        "--env",
        "production",
        "--manifest",
        manifest,
    ]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("path \"secret/data/payments/production/db\""),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("staging"), "{}", out.stdout);
}

#[test]
fn a_429_waits_its_turn_and_a_failing_server_ends_at_the_call_timeout() {
    use crate::support::Proxy;
    let bao = OpenBao::start();
    let proxy = Proxy::start(&bao.addr);
    let case = Case::new("vault429", "throttle");
    let mut files = String::new();
    let mut values = Vec::new();
    for i in 0..4 {
        let value = canary();
        bao.kv_put(
            &format!("secret/{}/s{i}", case.prefix),
            &[&format!("password={value}")],
        );
        files.push_str(&format!(
            "  - path: s{i}\n    vault: \"secret/${{prefix}}/s{i}\"\n    key: password\n"
        ));
        values.push(value);
    }
    case.manifest(
        &format!(
            "    vault:\n      address: {}\n      auth: {{ method: token }}\n",
            proxy.endpoint()
        ),
        &files,
    );
    let run = |extra: &[&str]| {
        let mut args = vec!["apply", "--env", "test"];
        args.extend(extra);
        case.credfile()
            .env("VAULT_TOKEN", &bao.root_token)
            .run(args)
    };
    // Vault's rate-limit quota answers 429 to the next 5 requests: credfile waits its turn.
    proxy.fail_next("Vault", 5, 429, "rate limit quota exceeded");
    let out = run(&[]);
    out.assert_code(0);
    for (i, value) in values.iter().enumerate() {
        assert_eq!(
            &fs::read_to_string(case.root().join(format!("current/s{i}"))).unwrap(),
            value
        );
    }
    // lookup-self, one mount lookup, four reads: each answered once, after the 5 refusals.
    let seen = proxy.count("Vault");
    assert_eq!(seen, 5 + 6, "{:?}", proxy.requests());
    let reads = proxy
        .requests()
        .iter()
        .filter(|(_, r)| r.contains(&format!("/v1/secret/data/{}/s", case.prefix)))
        .count();
    assert_eq!(reads, 4, "{:?}", proxy.requests());

    // A sealed server (503 forever) ends at --call-timeout, and says so.
    fs::remove_dir_all(case.root()).unwrap();
    proxy.reset_counts();
    proxy.fail_next_with_message("Vault", usize::MAX, 503, "", "Vault is sealed");
    let out = run(&["--call-timeout", "2"]);
    assert_ne!(out.status_code, 0);
    for want in [
        "Vault kept failing",
        "HTTP 503: Vault is sealed for 2s, until the call timeout",
        "`vault status`",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in {}",
            out.stderr
        );
    }
    assert!(
        proxy.count("Vault") > 2,
        "it waited its turn, more than once"
    );
    // The mount lookup is waited out once, not once per path on the mount.
    let mut looked_up: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|(_, r)| r.contains("/sys/internal/ui/mounts/"))
        .map(|(_, r)| r)
        .collect();
    looked_up.dedup();
    assert_eq!(looked_up.len(), 1, "{looked_up:?}");
    assert!(!case.root().exists(), "nothing may be written");
}
