//! Identity: turn the credentials the host or pipeline already has into the session the run
//! uses, and prove it is the right AWS account before any secret is read.
//!
//! Order: the SDK's default chain (environment, SSO/profile, web identity file, instance role),
//! then `sts:AssumeRole` into `identity.role_arn` when set, then `sts:GetCallerIdentity` when the
//! environment pins an `account`. Credentials stay in memory; nothing is exported or written.

use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::aws::{Failure, load_config};
use crate::manifest::Plan;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no AWS region for environment `{env}`")]
    NoRegion { env: String },
    #[error("no AWS credentials found: {reason}")]
    NoCredentials { reason: String },
    #[error("cannot assume role {role_arn}: {failure}")]
    AssumeRole { role_arn: String, failure: Failure },
    #[error("cannot confirm the AWS account (sts:GetCallerIdentity): {failure}")]
    CallerIdentity { failure: Failure },
    #[error(
        "refusing to fetch: environment `{env}` requires AWS account {expected}, but the credentials belong to account {actual} ({arn})"
    )]
    AccountMismatch {
        env: String,
        expected: String,
        actual: String,
        arn: String,
    },
}

impl IdentityError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            IdentityError::NoRegion { env } => format!(
                "set `region:` under `defaults` or `environments.{env}`, or export AWS_REGION"
            ),
            IdentityError::NoCredentials { .. } => "run where an identity is available: an instance role, AWS_PROFILE (aws sso login), or a pipeline's web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN)".into(),
            IdentityError::AssumeRole { failure, .. } if failure.is_code("AccessDenied") => {
                "the role's trust policy must allow the caller's identity to sts:AssumeRole; check it, and that the caller has sts:AssumeRole on the role".into()
            }
            IdentityError::AssumeRole { .. } | IdentityError::CallerIdentity { .. } => {
                "check network access to STS and the credentials in use (`aws sts get-caller-identity`)".into()
            }
            IdentityError::AccountMismatch { env, .. } => format!(
                "you are signed in to the wrong account for `{env}`: use that account's role or profile, or fix `account:` in the manifest"
            ),
        })
    }
}

/// The identity a run uses.
pub struct Session {
    pub config: SdkConfig,
    /// Known when an account guard was checked.
    pub account: Option<String>,
    pub arn: Option<String>,
}

/// Establishes the session for a plan; see the module doc for the order.
pub async fn establish(plan: &Plan) -> Result<Session, IdentityError> {
    let base = load_config(plan.region.as_deref()).await;
    if base.region().is_none() {
        return Err(IdentityError::NoRegion {
            env: plan.env.clone(),
        });
    }
    let provider = base
        .credentials_provider()
        .ok_or_else(|| IdentityError::NoCredentials {
            reason: "no credential provider".into(),
        })?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| IdentityError::NoCredentials {
            reason: DisplayErrorContext(&e).to_string(),
        })?;

    let config = match &plan.role_arn {
        None => base,
        Some(role_arn) => assume_role(&base, role_arn, &session_name(&plan.app, &plan.env)).await?,
    };

    let mut session = Session {
        config,
        account: None,
        arn: None,
    };
    if let Some(expected) = &plan.account {
        let sts = aws_sdk_sts::Client::new(&session.config);
        let me =
            sts.get_caller_identity()
                .send()
                .await
                .map_err(|e| IdentityError::CallerIdentity {
                    failure: Failure::from_sdk(&e),
                })?;
        let actual = me.account().unwrap_or_default().to_string();
        let arn = me.arn().unwrap_or_default().to_string();
        if actual != *expected {
            return Err(IdentityError::AccountMismatch {
                env: plan.env.clone(),
                expected: expected.clone(),
                actual,
                arn,
            });
        }
        tracing::info!(account = %actual, arn = %arn, "account guard passed");
        session.account = Some(actual);
        session.arn = Some(arn);
    }
    Ok(session)
}

/// The caller's ARN, best effort (for the audit line): `None` when STS cannot be reached.
pub async fn caller_arn(session: &Session) -> Option<String> {
    match aws_sdk_sts::Client::new(&session.config)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(me) => me.arn().map(str::to_string),
        Err(e) => {
            tracing::warn!(error = %Failure::from_sdk(&e), "cannot find the caller's ARN for the audit line");
            None
        }
    }
}

async fn assume_role(
    base: &SdkConfig,
    role_arn: &str,
    session: &str,
) -> Result<SdkConfig, IdentityError> {
    let fail = |failure| IdentityError::AssumeRole {
        role_arn: role_arn.to_string(),
        failure,
    };
    let out = aws_sdk_sts::Client::new(base)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name(session)
        .duration_seconds(900)
        .send()
        .await
        .map_err(|e| fail(Failure::from_sdk(&e)))?;
    let c = out.credentials().ok_or_else(|| {
        fail(Failure {
            code: None,
            message: "STS returned no credentials".into(),
            kind: crate::aws::FailureKind::Response,
        })
    })?;
    tracing::info!(role_arn, session, "assumed role");
    let creds = Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        SystemTime::try_from(*c.expiration()).ok(),
        "credfile-assume-role",
    );
    Ok(base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build())
}

/// A role session name from app and environment, valid for STS: 2-64 of `[\w+=,.@-]`.
pub fn session_name(app: &str, env: &str) -> String {
    let mut name: String = format!("credfile-{app}-{env}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_sts_rules() {
        assert_eq!(
            session_name("payments", "staging"),
            "credfile-payments-staging"
        );
        let long = session_name(&"a".repeat(100), "x y/z");
        assert_eq!(long.len(), 64);
        let odd = session_name("app", "x y/z");
        assert_eq!(odd, "credfile-app-x-y-z");
    }
}
