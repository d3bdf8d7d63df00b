//! Vault's AWS IAM sign-in (docs/src/vault.md, "aws") against a stand-in for the `aws` auth
//! method in front of a real OpenBao (tests/it/support/aws_auth.rs): the signed
//! GetCallerIdentity goes to moto's STS, the ARN is matched, bao mints the token. A wrong
//! server id header and a signature that no longer matches are refused, and say so.

use std::fs;

use crate::support::aws_auth::{AwsAuth, AwsRole};
use crate::support::vault_case::{assert_has_all, lookup_run_token, vault_case, write_policy};
use crate::support::{Case, OpenBao, moto_endpoint};

/// The stand-in for the `aws` auth method in front of `bao`, expecting `vault.acme.test`.
fn aws_auth(bao: &OpenBao) -> AwsAuth {
    AwsAuth::start(
        &bao.addr,
        &bao.root_token,
        &moto_endpoint(),
        Some("vault.acme.test"),
        ("testing", "testing"),
    )
}

/// Role `deploy` bound to moto's caller with `policy`, renewable tokens of `ttl`.
fn deploy_role(auth: &AwsAuth, policy: &str, ttl: &str) {
    auth.role(
        "deploy",
        AwsRole {
            bound_arn: CALLER.into(),
            policies: vec![policy.into()],
            ttl: ttl.into(),
            renewable: true,
        },
    );
}

/// moto's answer to GetCallerIdentity for the hermetic environment's static test keys.
const CALLER: &str = "arn:aws:sts::123456789012:user/moto";

fn world(server_id: &str) -> (OpenBao, AwsAuth, Case, String) {
    let (bao, case, value) = vault_case("vaultaws", "aws");
    let auth = aws_auth(&bao);
    case.manifest(
        &format!(
            "    vault:\n      address: {}\n      auth: {{ method: aws, role: deploy, server_id: {server_id} }}\n",
            auth.addr()
        ),
        "  - path: db.password\n    vault: \"secret/${prefix}/db\"\n    key: password\n",
    );
    write_policy(&bao, &case, "credfile-vaultaws-test");
    deploy_role(&auth, "credfile-vaultaws-test", "5m");
    (bao, auth, case, value)
}

#[test]
fn aws_iam_sign_in_is_verified_and_the_token_minted_and_revoked() {
    let (bao, auth, case, value) = world("vault.acme.test");
    let out = case.credfile().run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(case.root().join("current/db.password")).unwrap(),
        value
    );
    assert_eq!(auth.logins(), [("deploy".to_string(), "ok".to_string())]);
    assert!(
        out.stderr.contains("revoked the Vault token"),
        "{}",
        out.stderr
    );
    let (code, _) = lookup_run_token(&bao, &out);
    assert_ne!(code, 0, "the minted token outlived the run");

    // A role bound to another principal refuses this caller.
    auth.role(
        "deploy",
        AwsRole {
            bound_arn: "arn:aws:iam::123456789012:role/other-*".into(),
            policies: vec![],
            ttl: "5m".into(),
            renewable: true,
        },
    );
    fs::remove_dir_all(case.root()).unwrap();
    let out = case.credfile().run(["apply", "--env", "test"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains(&format!(
            "IAM Principal \"{CALLER}\" does not belong to the role"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn aws_sign_in_with_a_wrong_server_id_or_a_tampered_signature_is_refused() {
    let (_bao, auth, case, _) = world("vault.elsewhere.test");
    let out = case.credfile().run(["apply", "--env", "test"]);
    out.assert_code(3);
    assert_has_all(
        &out.stderr,
        &[
            "Vault sign-in (aws, `aws`) refused: HTTP 400",
            "expected \"vault.acme.test\" but got \"vault.elsewhere.test\"",
            "with X-Vault-AWS-IAM-Server-ID `vault.elsewhere.test`",
            "`iam_server_id_header_value`",
        ],
    );
    assert!(!case.root().exists(), "nothing may be written");

    // The right server id, but the signed request altered on the way.
    let (_bao, auth2, case2, _) = world("vault.acme.test");
    auth2.tamper();
    let out = case2.credfile().run(["apply", "--env", "test"]);
    out.assert_code(3);
    assert_has_all(
        &out.stderr,
        &["SignatureDoesNotMatch", "altered on the way"],
    );
    assert!(!case2.root().exists(), "nothing may be written");
    assert_eq!(auth.logins().len(), 1);
}

/// Leases under an AWS IAM sign-in (docs/src/vault-dynamic.md): the lease token is signed in
/// for with the AWS identity like the KV reads' token, kept, and used again by the next apply
/// (one login in all); `clean` revokes the lease, and PostgreSQL drops the role.
#[test]
fn leases_sign_in_through_aws_iam_are_renewed_under_the_kept_token_and_clean_revokes_them() {
    use crate::support::openbao_engines::{Database, lease_lookup};
    use crate::support::postgres::Postgres;
    use crate::support::{Canaries, assert_no_leak};

    let bao = OpenBao::start();
    let pg = Postgres::start();
    let db = Database::enable(&bao.addr, &bao.root_token, &pg, 300, 600);
    let creds = db.creds_path();
    let auth = aws_auth(&bao);
    let case = Case::new("vaultawslease", "lease");
    case.manifest(
        &format!(
            "    vault:\n      address: {}\n      auth: {{ method: aws, role: deploy, server_id: vault.acme.test }}\n",
            auth.addr()
        ),
        &format!("  - path: db\n    vault_lease: {creds}\n"),
    );
    write_policy(&bao, &case, "credfile-vaultawslease-test");
    deploy_role(&auth, "credfile-vaultawslease-test", "10m");

    let first = case.run(&["apply"]);
    first.assert_code(0);
    let user = fs::read_to_string(case.root().join("db/username")).unwrap();
    let pass = fs::read_to_string(case.root().join("db/password")).unwrap();
    Canaries::global().add(pass.as_bytes());
    pg.login(&user, &pass)
        .expect("the written credentials log in");
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(case.root().join(".credfile-state.json")).unwrap())
            .unwrap();
    let lease = state["vault"]["leases"][0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lease_lookup(&bao.addr, &bao.root_token, &lease).is_some());

    // The next apply keeps the lease under the kept token: no new sign-in, same credentials.
    let second = case.run(&["apply"]);
    second.assert_code(0);
    assert_eq!(
        fs::read_to_string(case.root().join("db/username")).unwrap(),
        user
    );
    assert_eq!(auth.logins(), [("deploy".to_string(), "ok".to_string())]);

    let cleaned = case.run(&["clean"]);
    cleaned.assert_code(0);
    assert!(lease_lookup(&bao.addr, &bao.root_token, &lease).is_none());
    assert!(!pg.role_exists(&user), "clean left the role");
    let c = Canaries::global();
    for out in [&first, &second, &cleaned] {
        assert_no_leak(&c, &out.stdout, "stdout");
        assert_no_leak(&c, &out.stderr, "stderr");
    }
}
