//! The AWS side of `credfile policy`: the least-privilege IAM identity policy for one environment's role, derived from what
//! the manifest makes that environment read, and the trust policy that lets a CI provider's OIDC
//! token assume the role.
//!
//! The identity policy grants exactly what `credfile apply` calls and nothing else:
//! - `secretsmanager:GetSecretValue` on each referenced secret's ARN. A name becomes
//!   `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-??????` (Secrets Manager appends a
//!   dash and six random characters to every secret's ARN); a full ARN is used as written; a
//!   partial ARN (no six-character suffix) gets `-??????` appended.
//! - `secretsmanager:BatchGetSecretValue` on `*` (AWS accepts no narrower resource for it), only
//!   when at least one reference is unpinned: pinned versions are read with GetSecretValue.
//! - For a prefix (`secret: orders/staging/*`): `GetSecretValue` on
//!   `arn:...:secret:orders/staging/*` (every name under it, any suffix), and
//!   `secretsmanager:ListSecrets` on `*`: AWS authorizes ListSecrets on no resource, so it cannot
//!   be scoped to the prefix (it shows the names and metadata of every secret of the account,
//!   never a value).
//! - `kms:Decrypt` on the environment's `kms_keys`, only when some are declared, and only through
//!   Secrets Manager (`kms:ViaService`) for those secrets (`kms:EncryptionContext:SecretARN`).
//!
//! - `ssm:GetParameters` on each referenced parameter's ARN (`arn:P:ssm:R:A:parameter/NAME`,
//!   the leading `/` of a hierarchical name not doubled) and `ssm:GetParametersByPath` on each
//!   `parameters_path` exactly as sent (trailing `/` included: IAM matches the path as given);
//!   `kms:Decrypt` through Systems Manager (`kms:EncryptionContext:PARAMETER_ARN`) when keys are
//!   declared. CI variables need no permission at all.
//!
//! Output is deterministic: statements in a fixed order, lists sorted and deduplicated, keys in a
//! fixed order, so the result can be committed and diffed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{Document, Generated, PolicyError, Statement};
use crate::manifest::{Manifest, ManifestError, Pin, SecretRef, SourceKind};

/// Builds the policies for environment `env` of `manifest`.
///
/// # Errors
/// An unknown environment, an environment that reads nothing, a name reference without a region,
/// a malformed `--trust`, or a trust policy for an environment with no known account.
pub fn generate(
    manifest: &Manifest,
    env: &str,
    trust: &[String],
) -> Result<Generated, PolicyError> {
    // A placeholder root: the policy depends on the manifest, not on the host.
    let plan = manifest.resolve(env, Some(std::path::Path::new("/")))?;
    let environment = manifest
        .environments
        .iter()
        .find(|e| e.name == env)
        .ok_or_else(|| ManifestError::UnknownEnvironment {
            file: manifest.file.clone(),
            env: env.to_string(),
            known: manifest.environment_names(),
        })?;
    let refs = plan.secret_refs();
    if refs.is_empty() {
        return Err(PolicyError::NoSecrets {
            file: manifest.file.clone(),
            env: env.to_string(),
        });
    }
    let role = plan.identity.role_arn.as_deref().map(ArnParts::parse);
    let partition = role
        .as_ref()
        .map(|r| r.partition.clone())
        .unwrap_or_else(|| partition_of_region(plan.region.as_deref().unwrap_or("")).into());
    let account = plan
        .account
        .clone()
        .or_else(|| role.as_ref().map(|r| r.account.clone()));
    let wildcard_account = account.is_none();

    let no_region = || PolicyError::NoRegion {
        file: manifest.file.clone(),
        env: env.to_string(),
    };
    let account_part = account.as_deref().unwrap_or("*");
    let (secret_refs, other): (Vec<&SecretRef>, Vec<&SecretRef>) = refs
        .iter()
        .partition(|r| matches!(r.kind, SourceKind::Secret | SourceKind::SecretPrefix));
    let lists_secrets = secret_refs
        .iter()
        .any(|r| r.kind == SourceKind::SecretPrefix);
    let mut arns = BTreeSet::new();
    let mut regions = BTreeSet::new();
    for r in &secret_refs {
        let arn = if r.kind == SourceKind::SecretPrefix {
            // Every secret whose name starts with the prefix, whatever its random suffix.
            let Some(region) = plan.region.as_deref() else {
                return Err(no_region());
            };
            format!(
                "arn:{partition}:secretsmanager:{region}:{account_part}:secret:{}*",
                r.prefix()
            )
        } else if r.id.starts_with("arn:") {
            if has_random_suffix(&r.id) {
                r.id.clone()
            } else {
                format!("{}-??????", r.id)
            }
        } else {
            let Some(region) = plan.region.as_deref() else {
                return Err(no_region());
            };
            format!(
                "arn:{partition}:secretsmanager:{region}:{account_part}:secret:{}-??????",
                r.id
            )
        };
        let parts = ArnParts::parse(&arn);
        regions.insert((parts.partition, parts.region));
        arns.insert(arn);
    }
    let arns: Vec<String> = arns.into_iter().collect();
    let mut parameter_arns = BTreeSet::new();
    let mut path_arns = BTreeSet::new();
    let mut ssm_regions = BTreeSet::new();
    for r in &other {
        let set = match r.kind {
            SourceKind::Parameter => &mut parameter_arns,
            SourceKind::ParameterPath => &mut path_arns,
            _ => continue,
        };
        let arn = if r.id.starts_with("arn:") {
            r.id.clone()
        } else {
            let region = plan.region.as_deref().ok_or_else(no_region)?;
            parameter_arn(&partition, region, account_part, &r.id)
        };
        let parts = ArnParts::parse(&arn);
        ssm_regions.insert((parts.partition, parts.region));
        set.insert(arn);
    }
    if arns.is_empty() && parameter_arns.is_empty() && path_arns.is_empty() {
        if refs.iter().any(|r| r.kind == SourceKind::Vault) {
            return Err(PolicyError::OnlyVault {
                file: manifest.file.clone(),
                env: env.to_string(),
            });
        }
        return Err(PolicyError::OnlyCiVariables {
            file: manifest.file.clone(),
            env: env.to_string(),
        });
    }

    let mut statement = Vec::new();
    if !arns.is_empty() {
        statement.push(Statement {
            sid: "CredfileGetSecretValue".into(),
            effect: "Allow",
            principal: None,
            action: "secretsmanager:GetSecretValue",
            resource: Some(json!(arns)),
            condition: None,
        });
    }
    if secret_refs.iter().any(|r| r.pin == Pin::Current) {
        statement.push(Statement {
            sid: "CredfileBatchGetSecretValue".into(),
            effect: "Allow",
            principal: None,
            action: "secretsmanager:BatchGetSecretValue",
            resource: Some(json!("*")),
            condition: None,
        });
    }
    if lists_secrets {
        statement.push(Statement {
            sid: "CredfileListSecrets".into(),
            effect: "Allow",
            principal: None,
            action: "secretsmanager:ListSecrets",
            resource: Some(json!("*")),
            condition: None,
        });
    }
    if !parameter_arns.is_empty() {
        statement.push(Statement {
            sid: "CredfileGetParameters".into(),
            effect: "Allow",
            principal: None,
            action: "ssm:GetParameters",
            resource: Some(json!(parameter_arns)),
            condition: None,
        });
    }
    if !path_arns.is_empty() {
        statement.push(Statement {
            sid: "CredfileGetParametersByPath".into(),
            effect: "Allow",
            principal: None,
            action: "ssm:GetParametersByPath",
            resource: Some(json!(path_arns)),
            condition: None,
        });
    }
    let mut keys = environment.kms_keys.clone();
    keys.sort();
    if !keys.is_empty() && !arns.is_empty() {
        let via: Vec<String> = regions
            .iter()
            .map(|(partition, region)| format!("secretsmanager.{region}.{}", dns_suffix(partition)))
            .collect();
        statement.push(kms_decrypt(
            "CredfileKmsDecrypt",
            &keys,
            &via,
            "kms:EncryptionContext:SecretARN",
            &arns,
        ));
    }
    let reads_parameters = !parameter_arns.is_empty() || !path_arns.is_empty();
    if !keys.is_empty() && reads_parameters {
        let via: Vec<String> = ssm_regions
            .iter()
            .map(|(partition, region)| format!("ssm.{region}.{}", dns_suffix(partition)))
            .collect();
        // A path's parameters are below it: their ARNs start with the path's ARN.
        let contexts: Vec<String> = parameter_arns
            .iter()
            .cloned()
            .chain(path_arns.iter().map(|p| format!("{p}*")))
            .collect();
        statement.push(kms_decrypt(
            "CredfileKmsDecryptParameters",
            &keys,
            &via,
            "kms:EncryptionContext:PARAMETER_ARN",
            &contexts,
        ));
    }

    let trust = match trust {
        [] => None,
        specs => {
            let providers = specs
                .iter()
                .map(|s| Trust::parse(s.trim(), env))
                .collect::<Result<Vec<_>, _>>()?;
            // The OIDC provider lives in the role's account.
            let account = role
                .as_ref()
                .map(|r| r.account.clone())
                .or_else(|| plan.account.clone())
                .ok_or_else(|| PolicyError::NoAccount {
                    file: manifest.file.clone(),
                    env: env.to_string(),
                })?;
            Some(trust_document(
                &providers,
                &partition,
                &account,
                plan.identity.role_arn.as_deref(),
                &plan.identity.audience,
            ))
        }
    };

    Ok(Generated {
        identity: Document {
            version: "2012-10-17",
            statement,
        },
        trust,
        wildcard_account,
    })
}

/// `kms:Decrypt` on the declared keys, only through `via` (the service endpoints) and only for
/// these values (`context_key` is the encryption context the service sets: the secret's or the
/// parameter's ARN).
fn kms_decrypt<T: serde::Serialize>(
    sid: &str,
    keys: &[String],
    via: &[String],
    context_key: &str,
    values: &T,
) -> Statement {
    let condition = BTreeMap::from([
        (
            "StringEquals",
            BTreeMap::from([("kms:ViaService".to_string(), json!(via))]),
        ),
        (
            "StringLike",
            BTreeMap::from([(context_key.to_string(), json!(values))]),
        ),
    ]);
    Statement {
        sid: sid.into(),
        effect: "Allow",
        principal: None,
        action: "kms:Decrypt",
        resource: Some(json!(keys)),
        condition: Some(condition),
    }
}

/// Who may assume the role: a CI provider's OIDC tokens (and which of them), or the EC2
/// instance profile.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trust {
    /// `repo:OWNER/REPO:environment:ENVIRONMENT`, GitHub's default subject for a job that runs in
    /// that GitHub environment (where required reviewers and branch rules apply).
    Github { repo: String, environment: String },
    /// `project_path:GROUP/PROJECT:ref_type:branch:ref:BRANCH`, GitLab's subject; `host` is
    /// gitlab.com or a self-managed instance (its OIDC issuer).
    Gitlab {
        host: String,
        project: String,
        branch: String,
    },
    /// The role is the instance profile's: EC2 may assume it, and so may the role itself, with
    /// credfile's session names (credfile assumes `role_arn` from the host's credentials, and AWS
    /// requires a role to trust itself explicitly for that).
    Ec2,
}

impl Trust {
    fn parse(spec: &str, env: &str) -> Result<Trust, PolicyError> {
        let fail = |reason: &str| PolicyError::Trust {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        if spec == "ec2" {
            return Ok(Trust::Ec2);
        }
        let (provider, rest) = spec
            .split_once(':')
            .ok_or_else(|| fail("expected PROVIDER:PATH, or `ec2`"))?;
        let (path, qualifier) = match rest.split_once(':') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let segments: Vec<&str> = path.split('/').collect();
        if !segments.iter().all(|s| segment_ok(s)) {
            return Err(fail(
                "the path segments may hold only letters, digits, `-`, `_` and `.`",
            ));
        }
        if let Some(q) = qualifier
            && (q.is_empty()
                || q.contains(['*', '?', '"', '\\'])
                || q.chars().any(char::is_control))
        {
            return Err(fail(
                "the qualifier after the path must be a name, without wildcards",
            ));
        }
        let (provider, host) = match provider.split_once('@') {
            Some((p, h)) => (p, Some(h)),
            None => (provider, None),
        };
        match provider {
            "github" if host.is_none() => {
                if segments.len() != 2 {
                    return Err(fail("a GitHub path is OWNER/REPO"));
                }
                Ok(Trust::Github {
                    repo: path.to_string(),
                    environment: qualifier.unwrap_or(env).to_string(),
                })
            }
            "gitlab" => {
                if segments.len() < 2 {
                    return Err(fail("a GitLab path is GROUP/PROJECT (subgroups allowed)"));
                }
                let host = host.unwrap_or("gitlab.com");
                let host_ok = !host.is_empty()
                    && host.contains('.')
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
                if !host_ok {
                    return Err(fail(
                        "the GitLab host is a DNS name such as gitlab.example.com (no scheme, port or path)",
                    ));
                }
                Ok(Trust::Gitlab {
                    host: host.to_ascii_lowercase(),
                    project: path.to_string(),
                    branch: qualifier.unwrap_or("main").to_string(),
                })
            }
            _ => Err(fail(
                "the provider must be `github`, `gitlab` (or `gitlab@HOST`) or `ec2`",
            )),
        }
    }

    /// The statements for this provider. `audience`: the `aud` credfile requests (GitHub) and
    /// tells the GitLab job to request (`identity.audience`).
    fn statements(
        &self,
        partition: &str,
        account: &str,
        role_arn: Option<&str>,
        audience: &str,
    ) -> Vec<Statement> {
        let oidc = |sid: &str, host: &str, sub: String| {
            let condition = BTreeMap::from([(
                "StringEquals",
                BTreeMap::from([
                    (format!("{host}:aud"), json!(audience)),
                    (format!("{host}:sub"), json!(sub)),
                ]),
            )]);
            Statement {
                sid: sid.to_string(),
                effect: "Allow",
                principal: Some(json!({
                    "Federated": format!("arn:{partition}:iam::{account}:oidc-provider/{host}")
                })),
                action: "sts:AssumeRoleWithWebIdentity",
                resource: None,
                condition: Some(condition),
            }
        };
        match self {
            Trust::Github { repo, environment } => vec![oidc(
                "CredfileGitHubActionsOidc",
                "token.actions.githubusercontent.com",
                format!("repo:{repo}:environment:{environment}"),
            )],
            Trust::Gitlab {
                host,
                project,
                branch,
            } => vec![oidc(
                "CredfileGitLabCiOidc",
                host,
                format!("project_path:{project}:ref_type:branch:ref:{branch}"),
            )],
            Trust::Ec2 => {
                let mut out = vec![Statement {
                    sid: "CredfileEc2InstanceProfile".into(),
                    effect: "Allow",
                    principal: Some(json!({ "Service": "ec2.amazonaws.com" })),
                    action: "sts:AssumeRole",
                    resource: None,
                    condition: None,
                }];
                if let Some(role) = role_arn {
                    out.push(Statement {
                        sid: "CredfileInstanceRoleAssumesItself".into(),
                        effect: "Allow",
                        principal: Some(json!({ "AWS": role })),
                        action: "sts:AssumeRole",
                        resource: None,
                        condition: Some(BTreeMap::from([(
                            "StringLike",
                            BTreeMap::from([(
                                "sts:RoleSessionName".to_string(),
                                json!("credfile-*"),
                            )]),
                        )])),
                    });
                }
                out
            }
        }
    }
}

/// One trust policy for every provider, in the order given; a provider named twice is one
/// statement, and Sids stay unique (`...2`, `...3`).
fn trust_document(
    providers: &[Trust],
    partition: &str,
    account: &str,
    role_arn: Option<&str>,
    audience: &str,
) -> Document {
    let mut statement: Vec<Statement> = Vec::new();
    let mut seen: Vec<&Trust> = Vec::new();
    for p in providers {
        if seen.contains(&p) {
            continue;
        }
        seen.push(p);
        for mut s in p.statements(partition, account, role_arn, audience) {
            let same = statement
                .iter()
                .filter(|t| t.sid.trim_end_matches(|c: char| c.is_ascii_digit()) == s.sid)
                .count();
            if same > 0 {
                s.sid = format!("{}{}", s.sid, same + 1);
            }
            statement.push(s);
        }
    }
    Document {
        version: "2012-10-17",
        statement,
    }
}

/// The fields of an ARN credfile needs; missing fields are empty.
struct ArnParts {
    partition: String,
    region: String,
    account: String,
}

impl ArnParts {
    fn parse(arn: &str) -> ArnParts {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let get = |i: usize| parts.get(i).copied().unwrap_or_default().to_string();
        ArnParts {
            partition: get(1),
            region: get(3),
            account: get(4),
        }
    }
}

/// Whether a secret ARN ends with the dash and six characters Secrets Manager appends. A partial
/// ARN whose name itself ends that way cannot be told apart: write it as a full ARN or a name.
pub fn has_random_suffix(arn: &str) -> bool {
    let name = arn.splitn(7, ':').nth(6).unwrap_or_default();
    let bytes = name.as_bytes();
    bytes.len() > 7
        && bytes[bytes.len() - 7] == b'-'
        && bytes[bytes.len() - 6..]
            .iter()
            .all(u8::is_ascii_alphanumeric)
}

/// A parameter's ARN: `...:parameter` + `/app/db` for a hierarchical name (never `//`),
/// `...:parameter/` + `db` for a simple one. A path keeps its trailing `/`.
pub fn parameter_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    let sep = if name.starts_with('/') { "" } else { "/" };
    format!("arn:{partition}:ssm:{region}:{account}:parameter{sep}{name}")
}

fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

fn dns_suffix(partition: &str) -> &'static str {
    if partition == "aws-cn" {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_suffix_is_recognised() {
        let base = "arn:aws:secretsmanager:us-east-1:123456789012:secret:";
        assert!(has_random_suffix(&format!("{base}app/db-AbC123")));
        assert!(!has_random_suffix(&format!("{base}app/db")));
        assert!(!has_random_suffix(&format!("{base}-AbC123")));
        assert!(!has_random_suffix(&format!("{base}app/db-Ab_123")));
    }

    #[test]
    fn trust_specs_parse() {
        assert_eq!(
            Trust::parse("github:acme/pay", "production").unwrap(),
            Trust::Github {
                repo: "acme/pay".into(),
                environment: "production".into()
            }
        );
        assert_eq!(
            Trust::parse("github:acme/pay:prod-eu", "production").unwrap(),
            Trust::Github {
                repo: "acme/pay".into(),
                environment: "prod-eu".into()
            }
        );
        assert_eq!(
            Trust::parse("gitlab:grp/sub/proj", "x").unwrap(),
            Trust::Gitlab {
                host: "gitlab.com".into(),
                project: "grp/sub/proj".into(),
                branch: "main".into()
            }
        );
        assert_eq!(
            Trust::parse("gitlab@git.Example.org:grp/proj:prod", "x").unwrap(),
            Trust::Gitlab {
                host: "git.example.org".into(),
                project: "grp/proj".into(),
                branch: "prod".into()
            }
        );
        assert_eq!(Trust::parse("ec2", "x").unwrap(), Trust::Ec2);
        for bad in [
            "github",
            "github:acme",
            "github:acme/pay/x",
            "github:acme/*",
            "github:acme/pay:*",
            "github:acme/pay:",
            "bitbucket:a/b",
            "gitlab:proj",
            "gitlab@:g/p",
            "gitlab@https://h.example:g/p",
            "gitlab@localhost:g/p",
            "github@x.example:a/b",
            "ec2:x",
        ] {
            assert!(Trust::parse(bad, "e").is_err(), "{bad}");
        }
    }

    #[test]
    fn one_statement_per_provider_with_unique_sids() {
        let providers: Vec<Trust> = [
            "gitlab:g/p",
            "gitlab@git.example.com:g/p",
            "gitlab:g/p",
            "ec2",
        ]
        .iter()
        .map(|s| Trust::parse(s, "prod").unwrap())
        .collect();
        let role = "arn:aws:iam::123456789012:role/r";
        let doc = trust_document(
            &providers,
            "aws",
            "123456789012",
            Some(role),
            "sts.amazonaws.com",
        );
        let sids: Vec<&str> = doc.statement.iter().map(|s| s.sid.as_str()).collect();
        assert_eq!(
            sids,
            [
                "CredfileGitLabCiOidc",
                "CredfileGitLabCiOidc2",
                "CredfileEc2InstanceProfile",
                "CredfileInstanceRoleAssumesItself"
            ]
        );
        // Without a role there is nothing to assume itself.
        let doc = trust_document(&[Trust::Ec2], "aws", "123456789012", None, "x");
        assert_eq!(doc.statement.len(), 1);
    }

    #[test]
    fn parameter_arns_follow_the_leading_slash_rule() {
        assert_eq!(
            parameter_arn("aws", "us-east-1", "1", "/app/db"),
            "arn:aws:ssm:us-east-1:1:parameter/app/db"
        );
        assert_eq!(
            parameter_arn("aws", "us-east-1", "1", "db"),
            "arn:aws:ssm:us-east-1:1:parameter/db"
        );
        assert_eq!(
            parameter_arn("aws", "us-east-1", "1", "/app/"),
            "arn:aws:ssm:us-east-1:1:parameter/app/"
        );
    }

    #[test]
    fn partitions_follow_regions() {
        assert_eq!(partition_of_region("cn-north-1"), "aws-cn");
        assert_eq!(partition_of_region("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of_region("eu-west-1"), "aws");
        assert_eq!(dns_suffix("aws-cn"), "amazonaws.com.cn");
    }
}
