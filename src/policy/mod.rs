//! Policy: what to grant an environment's identity, derived from what the manifest makes that
//! environment read: the least-privilege IAM identity policy and the role's trust policy
//! ([`aws`]), and the Vault policy and JWT role ([`vault`]). docs/src/governance.md and
//! docs/src/vault.md show the output.

mod aws;
pub mod vault;

pub use aws::generate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::manifest::ManifestError;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "{}: environment `{env}` has no `region`, so the ARNs of the secrets it names cannot be written",
        file.display()
    )]
    NoRegion { file: PathBuf, env: String },
    #[error("{}: environment `{env}` reads no secrets; there is nothing to grant", file.display())]
    NoSecrets { file: PathBuf, env: String },
    #[error("{}: environment `{env}` reads only CI variables; its role needs no AWS permission", file.display())]
    OnlyCiVariables { file: PathBuf, env: String },
    #[error("{}: environment `{env}` reads only Vault (and CI variables); its AWS role needs no permission", file.display())]
    OnlyVault { file: PathBuf, env: String },
    #[error("{}: environment `{env}` reads nothing from Vault; there is no Vault policy to write", file.display())]
    NoVault { file: PathBuf, env: String },
    #[error("--vault-role `{spec}`: {reason}")]
    VaultRole { spec: String, reason: String },
    #[error("--trust `{spec}`: {reason}")]
    Trust { spec: String, reason: String },
    #[error("`--only trust` prints the trust policy, but no --trust provider was given")]
    NoTrust,
    #[error(
        "{}: environment `{env}` names no AWS account (`account` or `identity.role_arn`), so the OIDC provider's ARN cannot be written",
        file.display()
    )]
    NoAccount { file: PathBuf, env: String },
    /// The environment cannot be resolved (unknown name, no root).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

impl PolicyError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            PolicyError::Manifest(e) => return e.hint(),
            PolicyError::NoRegion { env, .. } => format!(
                "set `region:` under `defaults` or `environments.{env}`, or reference the secrets by ARN"
            ),
            PolicyError::NoSecrets { .. } => {
                "add files for this environment, or check the entries' `environments:` lists".into()
            }
            PolicyError::OnlyCiVariables { .. } => {
                "CI variables are read from credfile's own environment, without AWS; `lint` suggests moving them to Secrets Manager".into()
            }
            PolicyError::OnlyVault { .. } => {
                "`credfile policy --vault --env ENV` prints the Vault policy it needs".into()
            }
            PolicyError::NoVault { .. } => {
                "add `vault:` entries for this environment, or check the entries' `environments:` lists".into()
            }
            PolicyError::VaultRole { .. } => {
                "use github:OWNER/REPO, github:OWNER/REPO:environment:ENV or gitlab[@HOST]:GROUP/PROJECT".into()
            }
            PolicyError::Trust { .. } => {
                "use github:OWNER/REPO[:ENVIRONMENT], gitlab[@HOST]:GROUP/PROJECT[:BRANCH] or ec2; repeat --trust or separate them with commas".into()
            }
            PolicyError::NoTrust => {
                "add --trust github:OWNER/REPO, gitlab[@HOST]:GROUP/PROJECT or ec2".into()
            }
            PolicyError::NoAccount { env, .. } => format!(
                "set `environments.{env}.account` or `environments.{env}.identity.role_arn`"
            ),
        })
    }
}

/// An IAM policy document. Field order is the output order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    #[serde(rename = "Version")]
    pub(super) version: &'static str,
    #[serde(rename = "Statement")]
    pub(super) statement: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Statement {
    #[serde(rename = "Sid")]
    pub(super) sid: String,
    #[serde(rename = "Effect")]
    pub(super) effect: &'static str,
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none")]
    pub(super) principal: Option<Value>,
    #[serde(rename = "Action")]
    pub(super) action: &'static str,
    #[serde(rename = "Resource", skip_serializing_if = "Option::is_none")]
    pub(super) resource: Option<Value>,
    /// Operator -> condition key -> value(s); BTreeMaps keep the order stable.
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    pub(super) condition: Option<BTreeMap<&'static str, BTreeMap<String, Value>>>,
}

/// What `credfile policy` prints.
#[derive(Debug)]
pub struct Generated {
    pub identity: Document,
    pub trust: Option<Document>,
    /// No account was known, so name references use `*` for the account.
    pub wildcard_account: bool,
}

impl Generated {
    /// Pretty JSON with a final newline: the identity policy document alone, or, with a trust
    /// policy, `{"identity_policy": ..., "trust_policy": ...}`.
    pub fn to_text(&self) -> String {
        // Straight from the structs (not through serde_json::Value, whose maps sort keys), so
        // the fields come out in IAM's customary order.
        let text = match &self.trust {
            None => serde_json::to_string_pretty(&self.identity),
            Some(trust) => serde_json::to_string_pretty(&Both {
                identity_policy: &self.identity,
                trust_policy: trust,
            }),
        };
        let mut text = text.unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Pretty JSON with a final newline, in IAM's customary field order.
pub fn document_text(doc: &Document) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_default();
    text.push('\n');
    text
}

#[derive(Serialize)]
struct Both<'a> {
    identity_policy: &'a Document,
    trust_policy: &'a Document,
}
