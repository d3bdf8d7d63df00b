//! Vault's AWS IAM sign-in (docs/src/vault.md, "aws") against a stand-in for the `aws` auth
//! method in front of a real OpenBao (tests/it/support/aws_auth.rs): the signed
//! GetCallerIdentity goes to moto's STS, the ARN is matched, bao mints the token. A wrong
//! server id header and a signature that no longer matches are refused, and say so.

use std::fs;

use crate::support::aws_auth::{AwsAuth, AwsRole};
use crate::support::{Case, OpenBao, moto_endpoint};
use crate::vault::canary;

/// moto's answer to GetCallerIdentity for the hermetic environment's static test keys.
const CALLER: &str = "arn:aws:sts::123456789012:user/moto";

fn world(server_id: &str) -> (OpenBao, AwsAuth, Case, String) {
    let bao = OpenBao::start();
    let case = Case::new("vaultaws", "aws");
    let value = canary();
    bao.ok(&[
        "kv",
        "put",
        &format!("secret/{}/db", case.prefix),
        &format!("password={value}"),
    ]);
    let auth = AwsAuth::start(
        &bao.addr,
        &bao.root_token,
        &moto_endpoint(),
        Some("vault.acme.test"),
        ("testing", "testing"),
    );
    case.manifest(
        &format!(
            "    vault:\n      address: {}\n      auth: {{ method: aws, role: deploy, server_id: {server_id} }}\n",
            auth.addr()
        ),
        "  - path: db.password\n    vault: \"secret/${prefix}/db\"\n    key: password\n",
    );
    let policy = case.credfile().run(["policy", "--vault", "--env", "test"]);
    policy.assert_code(0);
    bao.ok_stdin(
        &["policy", "write", "credfile-vaultaws-test", "-"],
        &policy.stdout,
    );
    auth.role(
        "deploy",
        AwsRole {
            bound_arn: CALLER.into(),
            policies: vec!["credfile-vaultaws-test".into()],
            ttl: "5m".into(),
            renewable: true,
        },
    );
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
    let accessor = out
        .stderr
        .lines()
        .find(|l| l.contains("signed in to Vault"))
        .and_then(|l| l.split("accessor=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .expect("the sign-in line names the accessor")
        .to_string();
    let (code, _, _) = bao.cli(&["token", "lookup", "-accessor", &accessor]);
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
    for want in [
        "Vault sign-in (aws, `aws`) refused: HTTP 400",
        "expected \"vault.acme.test\" but got \"vault.elsewhere.test\"",
        "with X-Vault-AWS-IAM-Server-ID `vault.elsewhere.test`",
        "`iam_server_id_header_value`",
    ] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in {}",
            out.stderr
        );
    }
    assert!(!case.root().exists(), "nothing may be written");

    // The right server id, but the signed request altered on the way.
    let (_bao, auth2, case2, _) = world("vault.acme.test");
    auth2.tamper();
    let out = case2.credfile().run(["apply", "--env", "test"]);
    out.assert_code(3);
    for want in ["SignatureDoesNotMatch", "altered on the way"] {
        assert!(
            out.stderr.contains(want),
            "missing {want:?} in {}",
            out.stderr
        );
    }
    assert!(!case2.root().exists(), "nothing may be written");
    assert_eq!(auth.logins().len(), 1);
}
