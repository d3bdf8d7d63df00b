//! `credfile policy` and `credfile audit reuse` end to end, through the compiled binary: golden
//! policies, the generated policy loaded into moto's IAM with enforcement on, and keyed
//! fingerprints across two accounts. `lint` is in governance.rs.

use crate::support;

use std::fs;

use crate::governance::*;
use serde_json::{Value, json};
use support::{Credfile, PrivateMoto, Seeder, canary_value, moto_endpoint, unique_prefix};

// ---------------------------------------------------------------------------------------------
// policy

const POLICY_MANIFEST: &str = r#"version: 1
app: payments
defaults:
  region: eu-west-1
  root: /run/credfile/payments
environments:
  staging:
    account: "111111111111"
    identity: { role_arn: "arn:aws:iam::111111111111:role/payments-staging" }
    vars: { prefix: payments/staging }
  production:
    protected: true
    account: "222222222222"
    identity: { role_arn: "arn:aws:iam::222222222222:role/payments-production", web_identity: auto }
    kms_keys:
      - arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab
    vars: { prefix: payments/production }
  pinned:
    account: "333333333333"
    vars: { prefix: payments/pinned }
files:
  - path: db/password
    secret: ${prefix}/db
    key: password
    environments: [staging, production]
  - path: tls/server.key
    secret: ${prefix}/tls
    version_stage: AWSPREVIOUS
  - path: partners.json
    format: json
    values:
      acme: { secret: "arn:aws:secretsmanager:eu-west-1:222222222222:secret:partner/acme-AbC123" }
      legacy: { secret: "arn:aws:secretsmanager:us-east-1:222222222222:secret:partner/legacy" }
    environments: [production]
    allow_cross_account: true
"#;

const GOLDEN_PRODUCTION: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "CredfileGetSecretValue",
      "Effect": "Allow",
      "Action": "secretsmanager:GetSecretValue",
      "Resource": [
        "arn:aws:secretsmanager:eu-west-1:222222222222:secret:partner/acme-AbC123",
        "arn:aws:secretsmanager:eu-west-1:222222222222:secret:payments/production/db-??????",
        "arn:aws:secretsmanager:eu-west-1:222222222222:secret:payments/production/tls-??????",
        "arn:aws:secretsmanager:us-east-1:222222222222:secret:partner/legacy-??????"
      ]
    },
    {
      "Sid": "CredfileBatchGetSecretValue",
      "Effect": "Allow",
      "Action": "secretsmanager:BatchGetSecretValue",
      "Resource": "*"
    },
    {
      "Sid": "CredfileKmsDecrypt",
      "Effect": "Allow",
      "Action": "kms:Decrypt",
      "Resource": [
        "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
      ],
      "Condition": {
        "StringEquals": {
          "kms:ViaService": [
            "secretsmanager.eu-west-1.amazonaws.com",
            "secretsmanager.us-east-1.amazonaws.com"
          ]
        },
        "StringLike": {
          "kms:EncryptionContext:SecretARN": [
            "arn:aws:secretsmanager:eu-west-1:222222222222:secret:partner/acme-AbC123",
            "arn:aws:secretsmanager:eu-west-1:222222222222:secret:payments/production/db-??????",
            "arn:aws:secretsmanager:eu-west-1:222222222222:secret:payments/production/tls-??????",
            "arn:aws:secretsmanager:us-east-1:222222222222:secret:partner/legacy-??????"
          ]
        }
      }
    }
  ]
}
"#;

const GOLDEN_STAGING_WITH_GITHUB_TRUST: &str = r#"{
  "identity_policy": {
    "Version": "2012-10-17",
    "Statement": [
      {
        "Sid": "CredfileGetSecretValue",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": [
          "arn:aws:secretsmanager:eu-west-1:111111111111:secret:payments/staging/db-??????",
          "arn:aws:secretsmanager:eu-west-1:111111111111:secret:payments/staging/tls-??????"
        ]
      },
      {
        "Sid": "CredfileBatchGetSecretValue",
        "Effect": "Allow",
        "Action": "secretsmanager:BatchGetSecretValue",
        "Resource": "*"
      }
    ]
  },
  "trust_policy": {
    "Version": "2012-10-17",
    "Statement": [
      {
        "Sid": "CredfileGitHubActionsOidc",
        "Effect": "Allow",
        "Principal": {
          "Federated": "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"
        },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
          "StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:acme/payments:environment:staging"
          }
        }
      }
    ]
  }
}
"#;

/// Only pinned references: no BatchGetSecretValue; no role, so the account comes from `account`.
const GOLDEN_PINNED_WITH_GITLAB_TRUST: &str = r#"{
  "identity_policy": {
    "Version": "2012-10-17",
    "Statement": [
      {
        "Sid": "CredfileGetSecretValue",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": [
          "arn:aws:secretsmanager:eu-west-1:333333333333:secret:payments/pinned/tls-??????"
        ]
      }
    ]
  },
  "trust_policy": {
    "Version": "2012-10-17",
    "Statement": [
      {
        "Sid": "CredfileGitLabCiOidc",
        "Effect": "Allow",
        "Principal": {
          "Federated": "arn:aws:iam::333333333333:oidc-provider/gitlab.com"
        },
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
          "StringEquals": {
            "gitlab.com:aud": "sts.amazonaws.com",
            "gitlab.com:sub": "project_path:acme/platform/payments:ref_type:branch:ref:release"
          }
        }
      }
    ]
  }
}
"#;

#[track_caller]
fn assert_golden(actual: &str, golden: &str) {
    assert!(
        actual == golden,
        "output differs from the golden text\n--- expected ---\n{golden}\n--- actual ---\n{actual}"
    );
}

#[test]
fn policy_golden_outputs() {
    let dir = scratch();
    write(dir.path(), "credfile.yaml", POLICY_MANIFEST);
    let cf = Credfile::new(&moto_endpoint()).cwd(dir.path());

    let out = cf.run(["policy", "--env", "production"]);
    out.assert_code(0);
    assert_golden(&out.stdout, GOLDEN_PRODUCTION);

    let out = cf.run([
        "policy",
        "--env",
        "staging",
        "--trust",
        "github:acme/payments",
    ]);
    out.assert_code(0);
    assert_golden(&out.stdout, GOLDEN_STAGING_WITH_GITHUB_TRUST);

    let out = cf.run([
        "policy",
        "--env",
        "pinned",
        "--trust",
        "gitlab:acme/platform/payments:release",
    ]);
    out.assert_code(0);
    assert_golden(&out.stdout, GOLDEN_PINNED_WITH_GITLAB_TRUST);

    // Deterministic: the same bytes every time.
    assert_eq!(
        cf.run(["policy", "--env", "production"]).stdout,
        GOLDEN_PRODUCTION
    );

    let bad = cf.run(["policy", "--env", "production", "--trust", "github:acme"]);
    bad.assert_code(USAGE);
    assert!(
        bad.stderr.contains("--trust `github:acme`") && bad.stderr.contains("hint: use github:"),
        "{}",
        bad.stderr
    );
}

#[test]
fn policy_without_account_uses_a_wildcard_and_says_so() {
    let dir = scratch();
    write(
        dir.path(),
        "credfile.yaml",
        "version: 1\napp: a\nenvironments:\n  dev:\n    region: us-east-1\n    root: /run/credfile/a\nfiles:\n  - path: x\n    secret: a/x\n",
    );
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .run(["policy", "--env", "dev"]);
    out.assert_code(0);
    assert_eq!(
        out.json()["Statement"][0]["Resource"],
        json!(["arn:aws:secretsmanager:us-east-1:*:secret:a/x-??????"])
    );
    assert!(
        out.stderr.contains("use `*` for the account"),
        "{}",
        out.stderr
    );
}

/// Sets up IAM in a private moto (auth still off): a user that may only assume the role, the
/// role with `policy` (resources widened to `*`, see below) as its only inline policy, the
/// generated document as a managed policy (moto checks its grammar), and a second role whose
/// trust policy is the generated one. Then turns IAM enforcement on. Prints the user's keys.
const IAM_SETUP: &str = r#"
import json, sys, urllib.request, boto3
endpoint, role_name, account = sys.argv[1], sys.argv[2], sys.argv[3]
identity, trust = json.loads(sys.argv[4]), json.loads(sys.argv[5])
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
role_arn = f"arn:aws:iam::{account}:role/{role_name}"
iam.create_user(UserName="deployer")
key = iam.create_access_key(UserName="deployer")["AccessKey"]
iam.put_user_policy(UserName="deployer", PolicyName="assume", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}))
iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                   "Principal": {"AWS": f"arn:aws:iam::{account}:user/deployer"}}]}))
# moto authorizes Secrets Manager calls against the resource "*", so a statement scoped to
# secret ARNs never matches there: give moto the same statements with Resource "*" (actions
# are what it can evaluate; the test asserts the exact resources separately).
actions_only = {**identity, "Statement": [{**s, "Resource": "*"} for s in identity["Statement"]]}
iam.put_role_policy(RoleName=role_name, PolicyName="credfile", PolicyDocument=json.dumps(actions_only))
iam.create_policy(PolicyName="credfile-generated", PolicyDocument=json.dumps(identity))
iam.create_role(RoleName="ci-oidc", AssumeRolePolicyDocument=json.dumps(trust))
# text/plain: werkzeug would parse a form body away from request.data.
req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=b"0", method="POST",
                             headers={"Content-Type": "text/plain"})
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=10).read()
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
"#;

/// Replaces the role's inline policy (with enforcement paused), then re-enables enforcement.
const IAM_REPLACE_POLICY: &str = r#"
import json, sys, urllib.request, boto3
endpoint, role_name, doc = sys.argv[1], sys.argv[2], sys.argv[3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
def auth(count):
    req = urllib.request.Request(endpoint + "/moto-api/reset-auth", data=count, method="POST",
                                 headers={"Content-Type": "text/plain"})
    opener.open(req, timeout=10).read()
auth(b"inf")
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
iam.put_role_policy(RoleName=role_name, PolicyName="credfile", PolicyDocument=doc)
auth(b"0")
print("ok")
"#;

#[test]
fn generated_policy_lets_apply_through_moto_iam_enforcement() {
    let moto = PrivateMoto::start();
    let seeder = Seeder::new(moto.endpoint());
    let prefix = unique_prefix("policy-iam");
    let account = seeder.account().to_string();
    let (db_v, tls_old, tls_new, ext_v) = (
        canary_value(),
        canary_value(),
        canary_value(),
        canary_value(),
    );
    seeder.create_json(&format!("{prefix}/db"), &json!({ "password": db_v }));
    seeder.create_string(&format!("{prefix}/tls"), &tls_old);
    seeder.put_string(&format!("{prefix}/tls"), &tls_new);
    let (ext_arn, _) = seeder.create_string(&format!("{prefix}/external"), &ext_v);

    let dir = scratch();
    let root = dir.path().join("root");
    let role = "credfile-policy-test";
    write(
        dir.path(),
        "credfile.yaml",
        &format!(
            "version: 1\napp: it\nenvironments:\n  test:\n    region: us-east-1\n    root: {root}\n    account: \"{account}\"\n    identity: {{ role_arn: \"arn:aws:iam::{account}:role/{role}\" }}\n    vars: {{ prefix: {prefix} }}\nfiles:\n  - path: db\n    secret: ${{prefix}}/db\n    key: password\n  - path: tls\n    secret: ${{prefix}}/tls\n    version_stage: AWSPREVIOUS\n  - path: external\n    secret: {ext_arn}\n",
            root = root.display()
        ),
    );
    let cf = Credfile::new(moto.endpoint()).cwd(dir.path());
    let out = cf.run(["policy", "--env", "test", "--trust", "github:acme/it"]);
    out.assert_code(0);
    let both = out.json();
    let identity = &both["identity_policy"];

    // moto evaluates actions only, so the resources are asserted exactly here.
    let mut expected = vec![
        ext_arn.clone(),
        format!("arn:aws:secretsmanager:us-east-1:{account}:secret:{prefix}/db-??????"),
        format!("arn:aws:secretsmanager:us-east-1:{account}:secret:{prefix}/tls-??????"),
    ];
    expected.sort();
    assert_eq!(identity["Statement"][0]["Resource"], json!(expected));
    let actions: Vec<&str> = identity["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "secretsmanager:GetSecretValue",
            "secretsmanager:BatchGetSecretValue"
        ]
    );
    assert_eq!(identity["Statement"][1]["Resource"], "*");

    let keys: Value = serde_json::from_str(&python(
        IAM_SETUP,
        &[
            moto.endpoint(),
            role,
            &account,
            &identity.to_string(),
            &both["trust_policy"].to_string(),
        ],
    ))
    .unwrap();
    let deployer = cf
        .clone()
        .env("AWS_ACCESS_KEY_ID", keys["id"].as_str().unwrap())
        .env("AWS_SECRET_ACCESS_KEY", keys["secret"].as_str().unwrap())
        .fail_fast();

    // The ambient `testing` keys are no IAM user: with enforcement on they are refused.
    cf.clone()
        .fail_fast()
        .run(["apply", "--env", "test"])
        .assert_code(3);

    let out = deployer.run(["apply", "--env", "test", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(fs::read(root.join("db")).unwrap(), db_v.as_bytes());
    assert_eq!(fs::read(root.join("tls")).unwrap(), tls_old.as_bytes());
    assert_eq!(fs::read(root.join("external")).unwrap(), ext_v.as_bytes());
    assert!(
        out.json()["caller_arn"]
            .as_str()
            .unwrap()
            .contains(&format!("assumed-role/{role}/")),
        "read as the role"
    );

    // Control: the same policy without GetSecretValue does not let apply through.
    let mut reduced = identity.clone();
    reduced["Statement"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["Action"] != "secretsmanager:GetSecretValue");
    for s in reduced["Statement"].as_array_mut().unwrap() {
        s["Resource"] = json!("*");
    }
    python(
        IAM_REPLACE_POLICY,
        &[moto.endpoint(), role, &reduced.to_string()],
    );
    fs::remove_dir_all(&root).unwrap();
    let out = deployer.run(["apply", "--env", "test"]);
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains(&format!("{prefix}/tls")),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// audit reuse

struct AuditCase {
    dir: tempfile::TempDir,
    prefix: String,
    shared: String,
}

/// staging (account 111111111111), production (protected, 222222222222) and dev
/// (333333333333), each reading through its own role. `api` holds the same value in all three;
/// `db`'s password differs in each.
fn audit_case(name: &str) -> AuditCase {
    let prefix = unique_prefix(name);
    let shared = canary_value();
    let mut envs = String::new();
    for (env, account, protected) in [
        ("staging", "111111111111", false),
        ("production", "222222222222", true),
        ("dev", "333333333333", false),
    ] {
        let seeder = Seeder::in_account(&moto_endpoint(), account);
        seeder.create_string(&format!("{prefix}/{env}/api"), &shared);
        seeder.create_json(
            &format!("{prefix}/{env}/db"),
            &json!({ "password": canary_value() }),
        );
        envs.push_str(&format!(
            "  {env}:\n{}    account: \"{account}\"\n    identity: {{ role_arn: \"arn:aws:iam::{account}:role/audit-{env}\" }}\n    vars: {{ prefix: {prefix}/{env} }}\n",
            if protected { "    protected: true\n" } else { "" }
        ));
    }
    let dir = scratch();
    write(
        dir.path(),
        "credfile.yaml",
        &format!(
            "version: 1\napp: shop\ndefaults:\n  region: us-east-1\n  root: /run/credfile/shop\nenvironments:\n{envs}files:\n  - path: api\n    secret: ${{prefix}}/api\n  - path: db\n    secret: ${{prefix}}/db\n    key: password\n"
        ),
    );
    AuditCase {
        dir,
        prefix,
        shared,
    }
}

/// Every run of 16 or more hex digits in `text`.
fn hex_runs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            if run.len() >= 16 {
                out.push(run.clone());
            }
            run.clear();
        }
    }
    out
}

#[test]
fn audit_reuse_names_exactly_the_shared_pair() {
    let c = audit_case("audit-reuse");
    let cf = Credfile::new(&moto_endpoint()).cwd(c.dir.path());
    let out = cf.run([
        "audit",
        "reuse",
        "--env",
        "staging",
        "--env",
        "production",
        "--output",
        "json",
    ]);
    out.assert_code(GOVERNANCE);
    let report = out.json();
    assert_eq!(report["compared"], 4, "api and db in two environments");
    let pairs = report["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{report:#}");
    let p = &pairs[0];
    assert_eq!(
        p["a"],
        json!({"app": "shop", "environment": "staging", "protected": false,
               "secret": format!("{}/staging/api", c.prefix), "key": null})
    );
    assert_eq!(
        p["b"],
        json!({"app": "shop", "environment": "production", "protected": true,
               "secret": format!("{}/production/api", c.prefix), "key": null})
    );
    assert_eq!(p["protected"], true);
    assert_eq!(report["summary"], json!({"pairs": 1, "protected_pairs": 1}));
    assert!(
        out.stderr
            .contains("1 of 1 shared value pair(s) involve a protected environment"),
        "{}",
        out.stderr
    );

    // Human output, twice: the pair again, no value (the harness checks every seeded value),
    // no plain hash of the value, and no digest that repeats across runs.
    let args = ["audit", "reuse", "--env", "staging", "--env", "production"];
    let first = cf.run(args);
    let second = cf.run(args);
    first.assert_code(GOVERNANCE);
    second.assert_code(GOVERNANCE);
    assert!(
        first.stdout.contains(&format!(
            "SHARED (protected) shop/staging `{p}/staging/api` == shop/production `{p}/production/api` (protected)",
            p = c.prefix
        )),
        "{}",
        first.stdout
    );
    let plain_sha256 = python(
        "import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
        &[&c.shared],
    );
    let plain_sha256 = plain_sha256.trim();
    // The secret names hold the test's random (hex) prefix: leave it out.
    let printed = |o: &support::Output| (o.stdout.clone() + &o.stderr).replace(&c.prefix, "PREFIX");
    let (runs1, runs2) = (hex_runs(&printed(&first)), hex_runs(&printed(&second)));
    assert_eq!(runs1.len(), 1, "one fingerprint shown: {}", first.stdout);
    assert!(
        runs1
            .iter()
            .all(|r| !r.is_empty() && !plain_sha256.contains(r.as_str()))
    );
    assert!(
        runs1.iter().all(|r| !runs2.contains(r)),
        "a fingerprint repeated across runs:\n{}\n{}",
        first.stdout,
        second.stdout
    );
}

#[test]
fn audit_reuse_between_unprotected_environments_reports_but_passes() {
    let c = audit_case("audit-unprotected");
    let out = Credfile::new(&moto_endpoint()).cwd(c.dir.path()).run([
        "audit", "reuse", "--env", "staging", "--env", "dev", "--output", "json",
    ]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(report["summary"], json!({"pairs": 1, "protected_pairs": 0}));
    assert_eq!(report["pairs"][0]["a"]["environment"], "staging");
    assert_eq!(report["pairs"][0]["b"]["environment"], "dev");

    // An environment no manifest defines is a usage error, before anything is fetched.
    let out = Credfile::new(&moto_endpoint())
        .cwd(c.dir.path())
        .run(["audit", "reuse", "--env", "staging", "--env", "qa"]);
    out.assert_code(USAGE);
    assert!(out.stderr.contains("no environment `qa`"), "{}", out.stderr);
}

#[test]
fn audit_reuse_skips_values_marked_not_sensitive() {
    let c = audit_case("audit-not-sensitive");
    let manifest = c.dir.path().join("credfile.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "    secret: ${prefix}/api\n",
            "    secret: ${prefix}/api\n    sensitive: false\n",
        ),
    )
    .unwrap();
    let out = Credfile::new(&moto_endpoint()).cwd(c.dir.path()).run([
        "audit",
        "reuse",
        "--env",
        "staging",
        "--env",
        "production",
        "--output",
        "json",
    ]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(
        report["compared"], 2,
        "only db, in two environments: {report:#}"
    );
    assert_eq!(report["summary"], json!({"pairs": 0, "protected_pairs": 0}));
}
