//! Governance over the new sources (issue 13): `policy` goldens for parameter names, ARNs and
//! paths (CI variables need none), and `lint`'s sharing, literal, variable and CI-tier rules for
//! `parameter:`, `parameters_path:` and `ci_variable(_file):` references. Offline: no AWS call.

use crate::support;

use std::fs;

use support::{Credfile, moto_endpoint};

#[test]
fn policy_grants_exact_parameter_arns_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("credfile.yaml"),
        r#"version: 1
app: orders
defaults:
  region: eu-west-1
  root: /run/credfile/orders
environments:
  prod:
    account: "222222222222"
    kms_keys: [arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab]
files:
  - path: db
    parameter: /orders/prod/db
  - path: simple
    parameter: simple-name
    version: 3
  - path: shared
    parameter: arn:aws:ssm:eu-west-1:222222222222:parameter/shared/key
  - path: config
    parameters_path: /orders/prod/config/
  - path: token
    ci_variable: DEPLOY_TOKEN
"#,
    )
    .unwrap();
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .run(["policy", "--env", "prod"]);
    out.assert_code(0);
    let golden = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "CredfileGetParameters",
      "Effect": "Allow",
      "Action": "ssm:GetParameters",
      "Resource": [
        "arn:aws:ssm:eu-west-1:222222222222:parameter/orders/prod/db",
        "arn:aws:ssm:eu-west-1:222222222222:parameter/shared/key",
        "arn:aws:ssm:eu-west-1:222222222222:parameter/simple-name"
      ]
    },
    {
      "Sid": "CredfileGetParametersByPath",
      "Effect": "Allow",
      "Action": "ssm:GetParametersByPath",
      "Resource": [
        "arn:aws:ssm:eu-west-1:222222222222:parameter/orders/prod/config/"
      ]
    },
    {
      "Sid": "CredfileKmsDecryptParameters",
      "Effect": "Allow",
      "Action": "kms:Decrypt",
      "Resource": [
        "arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
      ],
      "Condition": {
        "StringEquals": {
          "kms:ViaService": [
            "ssm.eu-west-1.amazonaws.com"
          ]
        },
        "StringLike": {
          "kms:EncryptionContext:PARAMETER_ARN": [
            "arn:aws:ssm:eu-west-1:222222222222:parameter/orders/prod/db",
            "arn:aws:ssm:eu-west-1:222222222222:parameter/shared/key",
            "arn:aws:ssm:eu-west-1:222222222222:parameter/simple-name",
            "arn:aws:ssm:eu-west-1:222222222222:parameter/orders/prod/config/*"
          ]
        }
      }
    }
  ]
}
"#;
    assert!(
        out.stdout == golden,
        "--- expected ---\n{golden}\n--- actual ---\n{}",
        out.stdout
    );

    // CI variables alone need no permission: said plainly, not an empty policy.
    fs::write(
        dir.path().join("ci.yaml"),
        "version: 1\napp: orders\ndefaults:\n  root: /run/credfile/orders\nenvironments:\n  prod: {}\nfiles:\n  - path: token\n    ci_variable: DEPLOY_TOKEN\n",
    )
    .unwrap();
    let out = Credfile::new(&moto_endpoint()).cwd(dir.path()).run([
        "policy",
        "--env",
        "prod",
        "--manifest",
        "ci.yaml",
    ]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("reads only CI variables"),
        "{}",
        out.stderr
    );
}

/// `lint` on a manifest (written as `credfile.yaml` in a fresh directory): (rule, level, message).
fn lint(text: &str) -> Vec<(String, String, String)> {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("credfile.yaml"), text).unwrap();
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .run(["lint", "--format", "json"]);
    // `var-unused` is beside the point here (most fixtures spell names out).
    out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] != "var-unused")
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["level"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const LINT_BASE: &str = r#"version: 1
app: orders
defaults:
  region: us-east-1
environments:
  staging:
    account: "111111111111"
    root: /run/credfile/orders
    identity: { role_arn: "arn:aws:iam::111111111111:role/orders-staging" }
    vars: { prefix: orders/staging }
  production:
    protected: true
    account: "222222222222"
    root: /run/credfile/orders-prod
    identity: { role_arn: "arn:aws:iam::222222222222:role/orders-production", web_identity: auto }
    vars: { prefix: orders/production }
files:
"#;

#[test]
fn lint_rules_cover_the_new_references() {
    let rules = |files: &str| -> Vec<(String, String)> {
        lint(&format!("{LINT_BASE}{files}"))
            .into_iter()
            .map(|(r, l, _)| (r, l))
            .collect()
    };
    // Per-environment parameters and path entries: clean.
    assert_eq!(
        rules(
            "  - path: db\n    parameter: /${prefix}/db\n  - path: config\n    parameters_path: /${prefix}/config/\n"
        ),
        []
    );
    // One parameter for both environments of one account: env-shared-secret, an error
    // (production is protected).
    let one_account = LINT_BASE.replace("111111111111", "222222222222");
    let shared = lint(&format!(
        "{one_account}  - path: db\n    parameter: /orders/shared/db\n"
    ));
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(
        (shared[0].0.as_str(), shared[0].1.as_str()),
        ("env-shared-secret", "error")
    );
    assert!(
        shared[0].2.starts_with("parameter `/orders/shared/db`"),
        "{shared:?}"
    );
    // In two accounts the same name is two parameters.
    assert_eq!(
        rules("  - path: db\n    parameter: /orders/shared/db\n"),
        []
    );
    // A shared path entry as well.
    let shared_path = lint(&format!(
        "{one_account}  - path: config\n    parameters_path: /orders/config/\n"
    ));
    assert_eq!(shared_path.len(), 1, "{shared_path:?}");
    assert_eq!(shared_path[0].0, "env-shared-secret");
    // A parameter and a secret of the same name are different things: no finding.
    assert_eq!(
        lint(&format!(
            "{one_account}  - path: a\n    secret: orders/x\n    environments: [staging]\n  - path: b\n    parameter: /orders/x\n    environments: [production]\n"
        )),
        []
    );
    // A CI variable: the weaker tier, a warning per reference; never "shared".
    let ci = lint(&format!(
        "{LINT_BASE}  - path: token\n    ci_variable: DEPLOY_TOKEN\n  - path: app.env\n    format: dotenv\n    values:\n      KEY: {{ ci_variable_file: API_KEY }}\n"
    ));
    assert_eq!(
        ci.iter()
            .map(|(r, l, _)| (r.as_str(), l.as_str()))
            .collect::<Vec<_>>(),
        [
            ("ci-variable-tier", "warning"),
            ("ci-variable-tier", "warning")
        ],
        "{ci:?}"
    );
    assert!(ci[0].2.contains("no AWS audit trail"), "{ci:?}");
    // A value pasted where a parameter name goes: literal-value (and validation refuses it).
    let pasted = rules("  - path: a\n    parameter: ghp_0123456789abcdefghijABCDEFGHIJ012345\n");
    assert!(
        pasted.contains(&("literal-value".to_string(), "error".to_string())),
        "{pasted:?}"
    );
    // A `${var}` in a parameter counts as used; an undefined one is var-unknown.
    let unknown = rules("  - path: a\n    parameter: /${nope}/a\n");
    assert!(
        unknown.contains(&("var-unknown".to_string(), "error".to_string())),
        "{unknown:?}"
    );
    // The cross-app rule: the same parameter ARN in two apps.
    let dir = tempfile::tempdir().unwrap();
    let arn = "arn:aws:ssm:us-east-1:222222222222:parameter/common/db";
    for (file, app) in [("a.yaml", "orders"), ("b.yaml", "billing")] {
        fs::write(
            dir.path().join(file),
            format!(
                "{}  - path: db\n    parameter: {arn}\n    environments: [production]\n",
                LINT_BASE.replace("app: orders", &format!("app: {app}"))
            ),
        )
        .unwrap();
    }
    let out = Credfile::new(&moto_endpoint()).cwd(dir.path()).run([
        "lint",
        "--format",
        "json",
        "--manifest",
        "a.yaml",
        "--manifest",
        "b.yaml",
    ]);
    let found: Vec<String> = out.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .filter(|r| r != "var-unused")
        .collect();
    assert_eq!(
        found,
        ["app-shared-secret", "app-shared-secret"],
        "{}",
        out.stdout
    );
}

/// Issue 17, item 14: a secret prefix gets GetSecretValue on every name under it (any random
/// suffix), BatchGetSecretValue and ListSecrets on `*` (neither can be scoped to a resource),
/// and kms:Decrypt through Secrets Manager for the names under it.
#[test]
fn policy_grants_a_secret_prefix_and_list_secrets() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("credfile.yaml"),
        r#"version: 1
app: orders
defaults:
  region: eu-west-1
  root: /run/credfile/orders
environments:
  staging:
    account: "111111111111"
    kms_keys: [arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab]
    vars: { prefix: orders/staging }
files:
  - path: staging
    secret: ${prefix}/*
  - path: db
    secret: ${prefix}/db
    version_stage: AWSPREVIOUS
"#,
    )
    .unwrap();
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .run(["policy", "--env", "staging"]);
    out.assert_code(0);
    let golden = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "CredfileGetSecretValue",
      "Effect": "Allow",
      "Action": "secretsmanager:GetSecretValue",
      "Resource": [
        "arn:aws:secretsmanager:eu-west-1:111111111111:secret:orders/staging/*",
        "arn:aws:secretsmanager:eu-west-1:111111111111:secret:orders/staging/db-??????"
      ]
    },
    {
      "Sid": "CredfileBatchGetSecretValue",
      "Effect": "Allow",
      "Action": "secretsmanager:BatchGetSecretValue",
      "Resource": "*"
    },
    {
      "Sid": "CredfileListSecrets",
      "Effect": "Allow",
      "Action": "secretsmanager:ListSecrets",
      "Resource": "*"
    },
    {
      "Sid": "CredfileKmsDecrypt",
      "Effect": "Allow",
      "Action": "kms:Decrypt",
      "Resource": [
        "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
      ],
      "Condition": {
        "StringEquals": {
          "kms:ViaService": [
            "secretsmanager.eu-west-1.amazonaws.com"
          ]
        },
        "StringLike": {
          "kms:EncryptionContext:SecretARN": [
            "arn:aws:secretsmanager:eu-west-1:111111111111:secret:orders/staging/*",
            "arn:aws:secretsmanager:eu-west-1:111111111111:secret:orders/staging/db-??????"
          ]
        }
      }
    }
  ]
}
"#;
    assert!(
        out.stdout == golden,
        "--- expected ---\n{golden}\n--- actual ---\n{}",
        out.stdout
    );
}

/// Issue 17, item 14: lint compares a secret prefix like a path, and a prefix that covers
/// another environment's names (or prefix) is that environment's secret too.
#[test]
fn lint_sharing_rules_cover_secret_prefixes() {
    let one_account = LINT_BASE.replace("111111111111", "222222222222");
    // Per environment: clean.
    assert_eq!(
        lint(&format!(
            "{one_account}  - path: all\n    secret: ${{prefix}}/*\n"
        )),
        []
    );
    // The same prefix in both environments of one account: env-shared-secret.
    let shared = lint(&format!(
        "{one_account}  - path: all\n    secret: orders/shared/*\n"
    ));
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(
        (shared[0].0.as_str(), shared[0].1.as_str()),
        ("env-shared-secret", "error")
    );
    assert!(
        shared[0].2.starts_with("secret `orders/shared/*`"),
        "{shared:?}"
    );
    // Staging's prefix covers production's secret: shared as well.
    let covering = lint(&format!(
        "{one_account}  - path: all\n    secret: orders/*\n    environments: [staging]\n  - path: db\n    secret: orders/production/db\n    environments: [production]\n"
    ));
    assert_eq!(covering.len(), 1, "{covering:?}");
    assert_eq!(covering[0].0, "env-shared-secret", "{covering:?}");
    // In two accounts they are different secrets.
    assert_eq!(
        lint(&format!(
            "{LINT_BASE}  - path: all\n    secret: orders/*\n    environments: [staging]\n  - path: db\n    secret: orders/production/db\n    environments: [production]\n"
        )),
        []
    );
}
