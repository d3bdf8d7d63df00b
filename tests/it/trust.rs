//! Trust policies have one source of truth: `credfile policy`. The example IAM documents in
//! pipeline-examples/iam are its output byte for byte, and each generated condition is evaluated
//! (IAM's StringEquals / StringLike) against the claims of the tokens the test token servers hand
//! out: the right repository, branch and environment match, a wrong one does not. The `aud` in
//! the policy is the one credfile really requests.

use crate::support;

use std::fs;
use std::path::Path;

use serde_json::Value;
use support::oidc::{gitlab_jwt, jwt_claims};
use support::{Canaries, Credfile, GithubTokenEndpoint, Proxy, moto_endpoint};

const EXAMPLE: &str = "pipeline-examples/credfile.yaml";

/// Each example file and the `policy` arguments that produce it (the README shows the same).
const EXAMPLES: &[(&str, &[&str])] = &[
    ("deploy-role-permissions.json", &["--only", "identity"]),
    (
        "github-trust-policy.json",
        &["--trust", "github:acme/payments", "--only", "trust"],
    ),
    (
        "gitlab-trust-policy.json",
        &["--trust", "gitlab:acme/payments", "--only", "trust"],
    ),
    (
        "host-trust-policy.json",
        &["--trust", "ec2", "--only", "trust"],
    ),
    (
        "trust-policy.json",
        &[
            "--trust",
            "github:acme/payments,gitlab:acme/payments",
            "--trust",
            "ec2",
            "--only",
            "trust",
        ],
    ),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn policy(args: &[&str]) -> String {
    let out = Credfile::new(&moto_endpoint()).cwd(repo()).run(
        [
            &["policy", "--env", "production", "--manifest", EXAMPLE][..],
            args,
        ]
        .concat(),
    );
    out.assert_code(0);
    out.stdout
}

#[test]
fn the_example_iam_documents_are_the_output_of_policy() {
    let dir = repo().join("pipeline-examples/iam");
    for (file, args) in EXAMPLES {
        let want = policy(args);
        let have = fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            have == want,
            "pipeline-examples/iam/{file} differs from `credfile policy --env production --manifest {EXAMPLE} {}`; regenerate it\n--- file ---\n{have}\n--- policy ---\n{want}",
            args.join(" ")
        );
    }
    let mut listed: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut generated: Vec<String> = EXAMPLES.iter().map(|(f, _)| f.to_string()).collect();
    generated.sort();
    assert_eq!(listed, generated, "every IAM example is generated");
}

/// IAM's StringLike: `*` any run of characters (also none), `?` exactly one; case-sensitive.
fn string_like(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // Classic wildcard matching with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[test]
fn string_like_follows_iam() {
    assert!(string_like("repo:acme/*", "repo:acme/payments"));
    assert!(string_like("repo:acme/*", "repo:acme/"));
    assert!(string_like("a?c", "abc") && !string_like("a?c", "ac"));
    assert!(string_like(
        "*:ref:refs/heads/main",
        "repo:a/b:ref:refs/heads/main"
    ));
    assert!(
        !string_like("repo:acme/*", "repo:Acme/payments"),
        "case-sensitive"
    );
    assert!(!string_like("repo:acme/pay", "repo:acme/payments"));
}

/// Whether `statement` lets a token with `claims` assume the role: its federated principal is
/// the token's issuer, and every condition holds (a list value: any of them).
fn allows(statement: &Value, claims: &Value) -> bool {
    let iss = claims["iss"]
        .as_str()
        .unwrap()
        .trim_start_matches("https://");
    let Some(provider) = statement["Principal"]["Federated"].as_str() else {
        return false;
    };
    if !provider.ends_with(&format!(":oidc-provider/{iss}")) {
        return false;
    }
    assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
    let conditions = statement["Condition"].as_object().expect("conditions");
    assert!(
        !conditions.is_empty(),
        "a trust statement with no condition"
    );
    conditions.iter().all(|(op, keys)| {
        keys.as_object().unwrap().iter().all(|(key, want)| {
            let (host, claim) = key.rsplit_once(':').unwrap();
            assert_eq!(host, iss, "condition key {key} of another provider");
            let have = claims[claim].as_str().unwrap_or_default();
            let wants: Vec<&str> = match want {
                Value::Array(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
                v => vec![v.as_str().unwrap()],
            };
            wants.iter().any(|w| match op.as_str() {
                "StringEquals" => *w == have,
                "StringLike" => string_like(w, have),
                other => panic!("operator {other} is not evaluated here"),
            })
        })
    })
}

fn statements(doc: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(doc).unwrap();
    v["Statement"].as_array().unwrap().clone()
}

fn any_allows(doc: &str, jwt: &str) -> bool {
    let claims = jwt_claims(jwt);
    statements(doc).iter().any(|s| allows(s, &claims))
}

/// A GitHub job's token, from the stand-in endpoint, with this subject.
fn github_token(sub: &str) -> GithubTokenEndpoint {
    let e = GithubTokenEndpoint::start_with_sub("request-token", sub);
    Canaries::global().add(&e.jwt);
    e
}

#[test]
fn the_combined_trust_policy_admits_exactly_the_right_jobs() {
    let doc = fs::read_to_string(repo().join("pipeline-examples/iam/trust-policy.json")).unwrap();
    // GitHub: the repository's production environment (the example workflow's job).
    let right = github_token("repo:acme/payments:environment:production");
    assert!(any_allows(&doc, &right.jwt));
    for wrong in [
        "repo:acme/other:environment:production",
        "repo:acme/payments:environment:staging",
        "repo:acme/payments:ref:refs/heads/main",
        "repo:acme/payments:pull_request",
        "repo:acme/payments-fork:environment:production",
    ] {
        assert!(!any_allows(&doc, &github_token(wrong).jwt), "{wrong}");
    }
    // GitLab: the project's default branch, with the audience the example job requests.
    let job = include_str!("../../pipeline-examples/gitlab/.gitlab-ci.yml");
    assert!(
        job.contains("aud: sts.amazonaws.com"),
        "the example job requests aud sts.amazonaws.com"
    );
    let ok = gitlab_jwt("gitlab.com", "acme/payments", "main", "sts.amazonaws.com");
    assert!(any_allows(&doc, &ok));
    for (host, project, branch, aud) in [
        (
            "gitlab.com",
            "acme/payments",
            "feature",
            "sts.amazonaws.com",
        ),
        ("gitlab.com", "acme/other", "main", "sts.amazonaws.com"),
        ("gitlab.com", "acme/payments", "main", "https://gitlab.com"),
        (
            "gitlab.example.com",
            "acme/payments",
            "main",
            "sts.amazonaws.com",
        ),
    ] {
        let jwt = gitlab_jwt(host, project, branch, aud);
        assert!(!any_allows(&doc, &jwt), "{host} {project} {branch} {aud}");
    }
    // The EC2 instance profile, and the role assuming itself only with credfile's session names.
    let all = statements(&doc);
    assert!(all.iter().any(
        |s| s["Principal"]["Service"] == "ec2.amazonaws.com" && s["Action"] == "sts:AssumeRole"
    ));
    let own = all
        .iter()
        .find(|s| s["Principal"]["AWS"].is_string())
        .expect("the self-assume statement");
    let pattern = own["Condition"]["StringLike"]["sts:RoleSessionName"]
        .as_str()
        .unwrap();
    assert!(string_like(pattern, "credfile-payments-production"));
    assert!(!string_like(pattern, "someone-else"));
}

#[test]
fn a_self_managed_gitlab_and_a_branch_are_named_in_the_policy() {
    let doc = policy(&[
        "--trust",
        "gitlab@git.example.com:platform/payments:release",
        "--only",
        "trust",
    ]);
    assert!(doc.contains("oidc-provider/git.example.com"), "{doc}");
    let ok = gitlab_jwt(
        "git.example.com",
        "platform/payments",
        "release",
        "sts.amazonaws.com",
    );
    assert!(any_allows(&doc, &ok));
    for jwt in [
        gitlab_jwt(
            "gitlab.com",
            "platform/payments",
            "release",
            "sts.amazonaws.com",
        ),
        gitlab_jwt(
            "git.example.com",
            "platform/payments",
            "main",
            "sts.amazonaws.com",
        ),
    ] {
        assert!(!any_allows(&doc, &jwt));
    }
    // A GitHub environment other than --env's.
    let doc = policy(&["--trust", "github:acme/payments:prod-eu", "--only", "trust"]);
    assert!(any_allows(
        &doc,
        &github_token("repo:acme/payments:environment:prod-eu").jwt
    ));
    assert!(!any_allows(
        &doc,
        &github_token("repo:acme/payments:environment:production").jwt
    ));
}

#[test]
fn only_trust_needs_a_provider_and_bad_providers_are_named() {
    let cf = Credfile::new(&moto_endpoint()).cwd(repo());
    let out = cf.run([
        "policy",
        "--env",
        "production",
        "--manifest",
        EXAMPLE,
        "--only",
        "trust",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("no --trust provider was given"),
        "{}",
        out.stderr
    );
    let out = cf.run([
        "policy",
        "--env",
        "production",
        "--manifest",
        EXAMPLE,
        "--trust",
        "github:acme/payments,bitbucket:a/b",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("--trust `bitbucket:a/b`") && out.stderr.contains("hint: use github:"),
        "{}",
        out.stderr
    );
}

/// The `aud` the policy demands is the one credfile asks GitHub for, with the example manifest.
#[test]
fn the_policy_audience_is_what_credfile_requests() {
    let endpoint = github_token("repo:acme/payments:environment:production");
    let proxy = Proxy::start(&moto_endpoint());
    let out = Credfile::new(&proxy.endpoint())
        .cwd(repo())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("GITHUB_ACTIONS", "true")
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", endpoint.url())
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token")
        .fail_fast()
        .run(["whoami", "--env", "production", "--manifest", EXAMPLE]);
    out.assert_code(0);
    let asked = endpoint.requests();
    assert_eq!(asked.len(), 1);
    let doc =
        fs::read_to_string(repo().join("pipeline-examples/iam/github-trust-policy.json")).unwrap();
    let st = &statements(&doc)[0];
    assert_eq!(
        asked[0].audience.as_deref(),
        st["Condition"]["StringEquals"]["token.actions.githubusercontent.com:aud"].as_str()
    );
}
