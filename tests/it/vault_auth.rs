//! Signing in to a real OpenBao dev server with the identity a pipeline or a pod has
//! (docs/src/vault.md, "Signing in"): jwt with RS256 tokens from the project's GitHub and GitLab
//! stand-ins (verified offline by bao against the stand-ins' public key), under the role and
//! the policy `credfile policy` prints; kubernetes through bao's own kubernetes auth and a
//! TokenReview stand-in. A refusal names the method, the mount and what bao said.

use std::fs;

use crate::support::oidc::{TestKey, github_claims, gitlab_jwt_signed};
use crate::support::vault_case::{
    DB_FILE as FILES, assert_has_all, seed_db as seed, vault_env, write_policy,
};
use crate::support::{Case, GithubTokenEndpoint, OpenBao, Output, random_hex};

/// A jwt auth mount at `mount` trusting the stand-ins' key for tokens from `issuer`.
fn enable_jwt(bao: &OpenBao, mount: &str, issuer: &str) {
    bao.ok(&["auth", "enable", &format!("-path={mount}"), "jwt"]);
    let config = serde_json::json!({
        "jwt_validation_pubkeys": [TestKey::get().public_pem],
        "bound_issuer": issuer,
    });
    bao.ok_stdin(
        &["write", &format!("auth/{mount}/config"), "-"],
        &config.to_string(),
    );
}

/// Writes the policy `credfile policy --vault` prints and the role `--vault-role SPEC` prints
/// into bao, as they are.
fn policy_and_role(bao: &OpenBao, case: &Case, mount: &str, role: &str, spec: &str) {
    write_policy(bao, case, &format!("credfile-{}-test", case_app(case)));
    let out = case
        .credfile()
        .run(["policy", "--env", "test", "--vault-role", spec]);
    out.assert_code(0);
    bao.ok_stdin(
        &["write", &format!("auth/{mount}/role/{role}"), "-"],
        &out.stdout,
    );
}

fn case_app(case: &Case) -> String {
    let text = fs::read_to_string(case.path("credfile.yaml")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("app: "))
        .unwrap()
        .to_string()
}

fn github_run(case: &Case, endpoint: &GithubTokenEndpoint) -> Output {
    case.credfile()
        .env("GITHUB_ACTIONS", "true")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.url())
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            endpoint.request_token.clone(),
        )
        .env("GITHUB_REPOSITORY", "acme/orders")
        .env("GITHUB_RUN_ID", "4242")
        .run(["apply", "--env", "test"])
}

fn request_token() -> String {
    let t = format!("request-token-{}", random_hex(16));
    crate::support::Canaries::global().add(&t);
    t
}

#[test]
fn jwt_from_a_github_job_under_the_printed_role_and_another_repository_refused() {
    let bao = OpenBao::start();
    let case = Case::new("vaultgh", "jwt-github");
    let value = seed(&bao, &case);
    enable_jwt(&bao, "jwt", "https://token.actions.githubusercontent.com");
    case.manifest(
        &vault_env(
            &bao,
            "      auth: { method: jwt, role: orders, audience: https://bao.test }\n",
        ),
        FILES,
    );
    policy_and_role(
        &bao,
        &case,
        "jwt",
        "orders",
        "github:acme/orders:environment:production",
    );
    let endpoint = GithubTokenEndpoint::start_signed(
        &request_token(),
        github_claims("acme/orders", Some("production")),
    );
    let out = github_run(&case, &endpoint);
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(case.root().join("current/db.password")).unwrap(),
        value
    );
    let asked: Vec<_> = endpoint
        .requests()
        .into_iter()
        .filter_map(|r| r.audience)
        .collect();
    // Asked for the role's audience, percent-encoded in the query as GitHub's toolkit does.
    assert_eq!(asked, ["https%3A%2F%2Fbao.test"]);
    assert!(
        out.stderr.contains("revoked the Vault token"),
        "{}",
        out.stderr
    );

    // A job of another repository (same issuer, same key): the role's bound claims refuse it.
    fs::remove_dir_all(case.root()).unwrap();
    let other = GithubTokenEndpoint::start_signed(
        &request_token(),
        github_claims("acme/other", Some("production")),
    );
    let out = github_run(&case, &other);
    out.assert_code(3);
    assert_has_all(
        &out.stderr,
        &[
            "Vault sign-in (jwt, `jwt`) refused",
            "claim \"repository\" does not match",
            "credfile presented a token with iss=https://token.actions.githubusercontent.com, sub=repo:acme/other:environment:production, aud=https://bao.test",
            "`bound_claims`",
        ],
    );
    assert!(!case.root().exists(), "nothing may be written");
}

#[test]
fn jwt_from_a_gitlab_job_under_the_printed_role() {
    let bao = OpenBao::start();
    let case = Case::new("vaultgl", "jwt-gitlab");
    let value = seed(&bao, &case);
    enable_jwt(&bao, "gitlab", "https://git.acme.test");
    case.manifest(
        &vault_env(
            &bao,
            "      auth: { method: jwt, mount: gitlab, role: orders, audience: https://bao.test, token_env: BAO_ID_TOKEN }\n",
        ),
        FILES,
    );
    policy_and_role(
        &bao,
        &case,
        "gitlab",
        "orders",
        "gitlab@git.acme.test:acme/orders",
    );
    let run = |jwt: &str| {
        case.credfile()
            .env("GITLAB_CI", "true")
            .env("CI_PROJECT_PATH", "acme/orders")
            .env("CI_PIPELINE_ID", "77")
            .env("BAO_ID_TOKEN", jwt)
            .run(["apply", "--env", "test"])
    };
    let jwt = gitlab_jwt_signed(
        "git.acme.test",
        "acme/orders",
        "main",
        "https://bao.test",
        false,
    );
    let out = run(&jwt);
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(case.root().join("current/db.password")).unwrap(),
        value
    );
    // Another project's token, and a token for another audience, are refused.
    fs::remove_dir_all(case.root()).unwrap();
    let other = gitlab_jwt_signed(
        "git.acme.test",
        "acme/other",
        "main",
        "https://bao.test",
        false,
    );
    let out = run(&other);
    out.assert_code(3);
    assert!(
        out.stderr.contains("claim \"project_path\" does not match"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("sub=project_path:acme/other:"),
        "{}",
        out.stderr
    );
    let wrong_aud = gitlab_jwt_signed(
        "git.acme.test",
        "acme/orders",
        "main",
        "https://else",
        false,
    );
    let out = run(&wrong_aud);
    out.assert_code(3);
    assert!(out.stderr.contains("aud"), "{}", out.stderr);
    assert!(!case.root().exists(), "nothing may be written");
}

#[test]
fn kubernetes_through_bao_and_a_token_review_and_a_wrong_token_refused() {
    use crate::support::k8s::{TokenReviewer, service_account_token};
    let bao = OpenBao::start();
    let case = Case::new("vaultk8s", "k8s");
    let value = seed(&bao, &case);
    let reviewer = TokenReviewer::start("shop", "orders");
    bao.ok(&["auth", "enable", "kubernetes"]);
    let config = serde_json::json!({
        "kubernetes_host": reviewer.url(),
        "kubernetes_ca_cert": crate::support::k8s::ca_cert_pem(),
        "disable_local_ca_jwt": true,
    });
    bao.ok_stdin(
        &["write", "auth/kubernetes/config", "-"],
        &config.to_string(),
    );
    let token_file = case.path("sa-token");
    fs::write(&token_file, &reviewer.token).unwrap();
    case.manifest(
        &vault_env(
            &bao,
            &format!(
                "      auth: {{ method: kubernetes, role: orders, token_file: {} }}\n",
                token_file.display()
            ),
        ),
        FILES,
    );
    write_policy(&bao, &case, "credfile-vaultk8s-test");
    bao.ok(&[
        "write",
        "auth/kubernetes/role/orders",
        "bound_service_account_names=orders",
        "bound_service_account_namespaces=shop",
        "token_policies=credfile-vaultk8s-test",
        "token_ttl=5m",
    ]);
    let out = case.credfile().run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert_eq!(
        fs::read_to_string(case.root().join("current/db.password")).unwrap(),
        value
    );
    assert_eq!(reviewer.verdicts(), [true], "bao asked the reviewer once");

    // Another pod's token (well-formed, same account name, unknown to the API server).
    fs::remove_dir_all(case.root()).unwrap();
    let wrong = service_account_token("shop", "orders", "00000000-0000-4000-8000-000000000000");
    crate::support::Canaries::global().add(&wrong);
    fs::write(&token_file, &wrong).unwrap();
    let out = case.credfile().run(["apply", "--env", "test"]);
    out.assert_code(3);
    assert_has_all(
        &out.stderr,
        &[
            "Vault sign-in (kubernetes, `kubernetes`) refused",
            "sub=system:serviceaccount:shop:orders",
        ],
    );
    assert_eq!(reviewer.verdicts(), [true, false]);
    assert!(!case.root().exists(), "nothing may be written");
}
