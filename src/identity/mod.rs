//! Identity: turn the identity the pipeline or host already has into the session the run uses,
//! and prove it is the right one before any secret is read.
//!
//! Sources, chosen by `identity.web_identity` (default `auto`):
//! - `github` (auto: `GITHUB_ACTIONS=true` and a `role_arn`): a JWT from the Actions token
//!   endpoint, exchanged with `sts:AssumeRoleWithWebIdentity`;
//! - `gitlab` (auto: `GITLAB_CI=true` and a `role_arn`): the `id_tokens` JWT from `token_env`,
//!   exchanged the same way;
//! - otherwise the SDK's default chain (environment, profile/SSO, web identity file, instance
//!   role), then `sts:AssumeRole` into `role_arn` when set.
//!
//! Then an optional second hop (`then_assume`), then the guards: static keys refused inside CI
//! unless allowed, and `sts:GetCallerIdentity` must match `account`. Credentials stay in this
//! process's memory for the run: never exported, never written.

mod oidc;
mod retry;
pub mod vault;
mod vault_aws;

use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use secrecy::{ExposeSecret, SecretString};

use crate::aws::{self, Failure, FailureKind};
use crate::manifest::{IdentitySpec, Plan, WebIdentity, is_session_char};
use retry::{chain_credentials, retry, retry_token};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no AWS region for environment `{env}`")]
    NoRegion { env: String },
    #[error("no AWS credentials found: {reason}")]
    NoCredentials { reason: String },
    #[error("GitHub Actions OIDC: {} not set", missing.join(" and "))]
    GithubVars { missing: Vec<&'static str> },
    #[error("GitHub Actions OIDC token request failed: {reason}")]
    GithubToken { reason: String },
    #[error("GitHub Actions OIDC token endpoint answered HTTP {status}: {body}")]
    GithubTokenStatus { status: u16, body: String },
    #[error("GitLab CI OIDC: the variable {var} holding the job's ID token is not set")]
    GitlabToken { var: String, audience: String },
    #[error("cannot exchange the {provider} token for role {role_arn}: {failure}")]
    WebIdentity {
        provider: &'static str,
        role_arn: String,
        failure: Failure,
    },
    #[error("cannot assume role {role_arn}: {failure}")]
    AssumeRole { role_arn: String, failure: Failure },
    #[error(
        "refusing long-lived AWS keys inside CI ({ci}): the credentials from `{provider}` have no session token"
    )]
    StaticCredentials { ci: &'static str, provider: String },
    #[error(
        "refusing the host's identity for protected environment `{env}`: credfile runs under sudo (invoked by {user}) with `web_identity: auto` and sees no CI variables ({}); sudo removed them, or this is not a CI job",
        stripped.join(", ")
    )]
    SudoStripped {
        env: String,
        user: String,
        stripped: Vec<String>,
    },
    #[error("CREDFILE_WEB_IDENTITY is `{value}`; expected github, gitlab or none")]
    BadOverride { value: String },
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
    #[error(transparent)]
    Vault(#[from] vault::VaultAuthError),
}

impl From<crate::vault::VaultError> for IdentityError {
    fn from(e: crate::vault::VaultError) -> Self {
        IdentityError::Vault(e.into())
    }
}

impl IdentityError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            IdentityError::NoRegion { env } => format!(
                "set `region:` under `defaults` or `environments.{env}`, or export AWS_REGION"
            ),
            IdentityError::NoCredentials { .. } => "run where an identity is available: an instance role, AWS_PROFILE (aws sso login), or a pipeline's OIDC identity (identity.web_identity)".into(),
            IdentityError::GithubVars { .. } => "add `permissions: { id-token: write, contents: read }` to the job (or workflow); GitHub only then gives the job a token endpoint".into(),
            IdentityError::GithubToken { .. } => "the token endpoint is GitHub's own; retry the job, and check that the job has `permissions: id-token: write`".into(),
            IdentityError::GithubTokenStatus { status: 401 | 403, .. } => "GitHub refused the request token: it is only valid inside the job that received it; do not pass it between jobs".into(),
            IdentityError::GithubTokenStatus { .. } => "GitHub's token endpoint failed; retry the job".into(),
            IdentityError::GitlabToken { var, audience } => format!(
                "add to the job:\n    {}",
                oidc::gitlab_snippet(var, audience)
            ),
            IdentityError::WebIdentity { failure, .. } => web_identity_hint(failure),
            IdentityError::AssumeRole { failure, .. } if failure.is_code("AccessDenied") => {
                "the role's trust policy must allow the caller's identity to sts:AssumeRole; check it, and that the caller has sts:AssumeRole on the role".into()
            }
            IdentityError::AssumeRole { failure, .. }
            | IdentityError::CallerIdentity { failure }
                if failure.kind == crate::aws::FailureKind::Network =>
            {
                unreachable_sts()
            }
            IdentityError::AssumeRole { .. } | IdentityError::CallerIdentity { .. } => {
                "check network access to STS and the credentials in use (`aws sts get-caller-identity`)".into()
            }
            IdentityError::StaticCredentials { .. } => "use the pipeline's OIDC identity (identity.role_arn with web_identity auto/github/gitlab) instead of long-lived IAM user keys; if these keys are intended, set `allow_static_credentials: true` on the environment".into(),
            IdentityError::SudoStripped { .. } => format!(
                "a CI job: install the sudoers rule {} (its env_keep passes exactly these variables through sudo); by hand with the host's instance role: `sudo /usr/bin/env CREDFILE_WEB_IDENTITY=none /usr/local/bin/credfile ...` (the runbook's lines), or set `identity.web_identity: none` for this environment",
                crate::sudo::SUDOERS_EXAMPLE
            ),
            IdentityError::BadOverride { .. } => "unset it, or set it to github, gitlab or none".into(),
            IdentityError::Vault(e) => e.hint(),
            IdentityError::AccountMismatch { env, .. } => format!(
                "you are signed in to the wrong account for `{env}`: use that account's role or profile, or fix `account:` in the manifest"
            ),
        })
    }
}

/// STS never answered: where the request went is in the message; say what to check.
fn unreachable_sts() -> String {
    format!(
        "STS could not be reached at the endpoint named above (connection refused, DNS or TLS): {}",
        crate::aws::endpoint_advice()
    )
}

fn web_identity_hint(failure: &Failure) -> String {
    if failure.kind == crate::aws::FailureKind::Network {
        return unreachable_sts();
    }
    match failure.code.as_deref() {
        Some("InvalidIdentityToken") => "STS rejected the token: the account needs an IAM OIDC identity provider for this issuer (token.actions.githubusercontent.com or your GitLab URL), and its audience must equal `identity.audience` (default sts.amazonaws.com)".into(),
        Some("AccessDenied") => "the role's trust policy does not accept this token: check its `sub` condition (GitHub: repo:OWNER/REPO:environment:NAME or :ref:refs/heads/BRANCH; GitLab: project_path:GROUP/PROJECT:ref_type:branch:ref:BRANCH) and its `aud` condition".into(),
        Some("ExpiredTokenException") => "the token expired before STS saw it; rerun the job (tokens live a few minutes)".into(),
        _ => "STS did not answer after retries; check network access to STS and retry".into(),
    }
}

/// The identity a run uses.
pub struct Session {
    pub config: SdkConfig,
    /// Where the credentials came from: `github-oidc`, `gitlab-oidc`, or the SDK provider's name.
    pub source: String,
    /// The role session name, when credfile created the session.
    pub session_name: Option<String>,
    pub expiry: Option<SystemTime>,
    /// Known when the caller identity was checked.
    pub account: Option<String>,
    pub arn: Option<String>,
    /// The run's tuning and call counters, for every client made from `config`.
    pub aws: aws::Context,
}

/// How the first credentials are obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Github,
    Gitlab,
    DefaultChain,
}

/// Which CI runs us, from the standard variables each sets.
fn ci_name(var: &dyn Fn(&str) -> Option<String>) -> Option<&'static str> {
    if var("GITHUB_ACTIONS").as_deref() == Some("true") {
        Some("GitHub Actions")
    } else if var("GITLAB_CI").as_deref() == Some("true") {
        Some("GitLab CI")
    } else {
        None
    }
}

fn choose(spec: &IdentitySpec, var: &dyn Fn(&str) -> Option<String>) -> Origin {
    match spec.web_identity {
        WebIdentity::Github => Origin::Github,
        WebIdentity::Gitlab => Origin::Gitlab,
        WebIdentity::None => Origin::DefaultChain,
        WebIdentity::Auto if spec.role_arn.is_none() => Origin::DefaultChain,
        WebIdentity::Auto => match ci_name(var) {
            Some("GitHub Actions") => Origin::Github,
            Some(_) => Origin::Gitlab,
            None => Origin::DefaultChain,
        },
    }
}

/// The role session name: the manifest's, else one that ties CloudTrail entries to the pipeline
/// run (repository and run id), else `credfile-<app>-<env>`; always valid for STS.
pub fn session_name(
    spec: &IdentitySpec,
    app: &str,
    env: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> String {
    if let Some(name) = &spec.session_name {
        return name.clone();
    }
    let (what, run) = match ci_name(var) {
        Some("GitHub Actions") => (var("GITHUB_REPOSITORY"), var("GITHUB_RUN_ID")),
        Some(_) => (var("CI_PROJECT_PATH"), var("CI_PIPELINE_ID")),
        None => (None, None),
    };
    let (what, run) = match (what, run) {
        (Some(w), Some(r)) => (w, format!("-{r}")),
        _ => (format!("{app}-{env}"), String::new()),
    };
    let run: String = run
        .chars()
        .map(|c| if is_session_char(c) { c } else { '-' })
        .take(30)
        .collect();
    let mut name: String = format!("credfile-{what}")
        .chars()
        .map(|c| if is_session_char(c) { c } else { '-' })
        .collect();
    name.truncate(64 - run.len());
    name.push_str(&run);
    name
}

/// Establishes the session for a plan; see the module doc. `check_caller` asks STS who we are
/// even without an account guard (for `whoami`).
pub async fn establish(
    plan: &Plan,
    check_caller: bool,
    aws: &aws::Context,
) -> Result<Session, IdentityError> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let overridden;
    let spec = match web_identity_override(&plan.identity, &var)? {
        Some(web) => {
            overridden = IdentitySpec {
                web_identity: web,
                ..plan.identity.clone()
            };
            &overridden
        }
        None => &plan.identity,
    };
    sudo_check(plan, spec, &var)?;
    let origin = choose(spec, &var);
    let session = session_name(spec, &plan.app, &plan.env, &var);
    let region = plan.region.as_deref();

    let (base, mut out) = match origin {
        Origin::Github | Origin::Gitlab => {
            // The pipeline token is the identity: the default chain is never consulted, so no
            // instance metadata probe and no stray keys in the environment are used.
            let base = aws::load_config(region, false, aws.tuning).await;
            ensure_region(&base, plan)?;
            let (provider, token) = if origin == Origin::Github {
                (
                    "GitHub Actions",
                    github_token(aws.tuning, spec, &var).await?,
                )
            } else {
                ("GitLab CI", gitlab_token(spec, &var)?)
            };
            let role_arn = spec
                .role_arn
                .clone()
                .expect("validated: web identity has a role");
            let creds =
                assume_with_web_identity(aws, &base, &role_arn, &session, spec.duration, &token)
                    .await
                    .map_err(|failure| IdentityError::WebIdentity {
                        provider,
                        role_arn: role_arn.clone(),
                        failure,
                    })?;
            let source = if origin == Origin::Github {
                "github-oidc"
            } else {
                "gitlab-oidc"
            };
            let expiry = creds.expiry();
            (
                base.clone(),
                session_from(aws, &base, creds, source, Some(session.clone()), expiry),
            )
        }
        Origin::DefaultChain => {
            let base = aws::load_config(region, true, aws.tuning).await;
            ensure_region(&base, plan)?;
            let provider =
                base.credentials_provider()
                    .ok_or_else(|| IdentityError::NoCredentials {
                        reason: "no credential provider".into(),
                    })?;
            let creds = chain_credentials(&provider, aws.tuning).await?;
            if let Some(ci) = ci_name(&var)
                && creds.session_token().is_none()
                && !spec.allow_static_credentials
            {
                return Err(IdentityError::StaticCredentials {
                    ci,
                    provider: chain_source(&var).to_string(),
                });
            }
            // Every later call of the run signs with these credentials: otherwise each client's
            // identity cache asks the chain again (a second IMDS round trip, SSO call, or
            // AssumeRoleWithWebIdentity for a token file).
            let base = base
                .to_builder()
                .credentials_provider(SharedCredentialsProvider::new(creds.clone()))
                .build();
            match &spec.role_arn {
                None => {
                    let expiry = creds.expiry();
                    let source = chain_source(&var).to_string();
                    (
                        base.clone(),
                        Session {
                            config: base,
                            source,
                            session_name: None,
                            expiry,
                            account: None,
                            arn: None,
                            aws: aws.clone(),
                        },
                    )
                }
                Some(role_arn) => {
                    let creds = assume_role(aws, &base, role_arn, &session, spec.duration).await?;
                    let expiry = creds.expiry();
                    (
                        base.clone(),
                        session_from(
                            aws,
                            &base,
                            creds,
                            "assume-role",
                            Some(session.clone()),
                            expiry,
                        ),
                    )
                }
            }
        }
    };
    if let Some(next) = &spec.then_assume {
        let hop_name = spec
            .then_session_name
            .clone()
            .unwrap_or_else(|| session.clone());
        let creds = assume_role(aws, &out.config, next, &hop_name, spec.duration).await?;
        let expiry = creds.expiry();
        out = session_from(
            aws,
            &base,
            creds,
            "assume-role (chained)",
            Some(hop_name),
            expiry,
        );
    }

    if plan.account.is_some() || check_caller {
        let sts = aws::sts_client(&out.config, aws);
        let me = retry(aws.tuning, "GetCallerIdentity", || async {
            sts.get_caller_identity()
                .send()
                .await
                .map_err(|e| Failure::from_sdk(&e))
        })
        .await
        .map_err(|failure| IdentityError::CallerIdentity { failure })?;
        let actual = me.account().unwrap_or_default().to_string();
        let arn = me.arn().unwrap_or_default().to_string();
        if let Some(expected) = &plan.account {
            if actual != *expected {
                return Err(IdentityError::AccountMismatch {
                    env: plan.env.clone(),
                    expected: expected.clone(),
                    actual,
                    arn,
                });
            }
            tracing::info!(account = %actual, arn = %arn, "account guard passed");
        }
        out.account = Some(actual);
        out.arn = Some(arn);
    }
    Ok(out)
}

/// `CREDFILE_WEB_IDENTITY` resolves a manifest's `auto` for one run (github, gitlab, none): the
/// way to say "by hand, with the host's role" under sudo. sudo passes it only when the caller
/// may set variables (a rule for ALL commands), never through credfile's sudoers rule.
fn web_identity_override(
    spec: &IdentitySpec,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<WebIdentity>, IdentityError> {
    let Some(value) = var("CREDFILE_WEB_IDENTITY") else {
        return Ok(None);
    };
    let web = match value.as_str() {
        "github" => WebIdentity::Github,
        "gitlab" => WebIdentity::Gitlab,
        "none" => WebIdentity::None,
        _ => return Err(IdentityError::BadOverride { value }),
    };
    Ok((spec.web_identity == WebIdentity::Auto).then_some(web))
}

/// The CI variables `auto` looks for, as named in the sudoers rule's env_keep.
fn ci_vars(spec: &IdentitySpec) -> Vec<String> {
    let mut v: Vec<String> = ["GITHUB_ACTIONS"]
        .into_iter()
        .chain(oidc::GITHUB_VARS)
        .chain(["GITLAB_CI"])
        .map(str::to_string)
        .collect();
    v.push(spec.token_env.clone());
    v
}

/// Under sudo, `auto` with no CI variables would quietly become the host's instance role:
/// refused in a protected environment, said out loud elsewhere.
fn sudo_check(
    plan: &Plan,
    spec: &IdentitySpec,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(), IdentityError> {
    let Some(user) = crate::sudo::invoked_by() else {
        return Ok(());
    };
    if spec.web_identity != WebIdentity::Auto || spec.role_arn.is_none() || ci_name(var).is_some() {
        return Ok(());
    }
    let stripped = ci_vars(spec);
    if plan.protected {
        return Err(IdentityError::SudoStripped {
            env: plan.env.clone(),
            user,
            stripped,
        });
    }
    tracing::warn!(
        env = %plan.env,
        sudo_user = %user,
        "running under sudo with `web_identity: auto` and none of {} set: using the host's identity (default chain), not a CI job's; if this is a CI job, sudo removed them: install {}",
        stripped.join(", "),
        crate::sudo::SUDOERS_EXAMPLE
    );
    Ok(())
}

/// Which link of the SDK's default chain is in use, judged the way the chain orders them.
fn chain_source(var: &dyn Fn(&str) -> Option<String>) -> &'static str {
    if var("AWS_ACCESS_KEY_ID").is_some() {
        "environment (AWS_ACCESS_KEY_ID)"
    } else if var("AWS_PROFILE").is_some() {
        "profile (AWS_PROFILE)"
    } else if var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        "web identity token file"
    } else if var("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
        || var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
    {
        "container credentials"
    } else {
        "default chain (profile or instance role)"
    }
}

/// The caller's ARN, best effort (for the audit line): `None` when STS cannot be reached.
pub async fn caller_arn(session: &Session) -> Option<String> {
    if let Some(arn) = &session.arn {
        return Some(arn.clone());
    }
    match aws::sts_client(&session.config, &session.aws)
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

fn ensure_region(config: &SdkConfig, plan: &Plan) -> Result<(), IdentityError> {
    match config.region() {
        Some(_) => Ok(()),
        None => Err(IdentityError::NoRegion {
            env: plan.env.clone(),
        }),
    }
}

fn session_from(
    aws: &aws::Context,
    base: &SdkConfig,
    creds: Credentials,
    source: &str,
    session_name: Option<String>,
    expiry: Option<SystemTime>,
) -> Session {
    let config = base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build();
    Session {
        config,
        source: source.to_string(),
        session_name,
        expiry,
        account: None,
        arn: None,
        aws: aws.clone(),
    }
}

async fn github_token(
    tuning: aws::Tuning,
    spec: &IdentitySpec,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, IdentityError> {
    let url = var(oidc::GITHUB_VARS[0]);
    let bearer = var(oidc::GITHUB_VARS[1]).map(SecretString::from);
    let (Some(url), Some(bearer)) = (url.clone(), bearer) else {
        let missing = oidc::GITHUB_VARS
            .iter()
            .copied()
            .filter(|v| var(v).is_none())
            .collect();
        return Err(IdentityError::GithubVars { missing });
    };
    let token = retry_token(tuning, || {
        oidc::github_token(&url, bearer.expose_secret(), &spec.audience)
    })
    .await?;
    tracing::info!("received a GitHub Actions OIDC token");
    Ok(token)
}

fn gitlab_token(
    spec: &IdentitySpec,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, IdentityError> {
    var(&spec.token_env)
        .map(SecretString::from)
        .ok_or_else(|| IdentityError::GitlabToken {
            var: spec.token_env.clone(),
            audience: spec.audience.clone(),
        })
}

async fn assume_with_web_identity(
    aws: &aws::Context,
    base: &SdkConfig,
    role_arn: &str,
    session: &str,
    duration: u32,
    token: &SecretString,
) -> Result<Credentials, Failure> {
    let sts = aws::sts_client(base, aws);
    let out = retry(aws.tuning, "AssumeRoleWithWebIdentity", || async {
        sts.assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session)
            .duration_seconds(duration as i32)
            .web_identity_token(token.expose_secret())
            .send()
            .await
            .map_err(|e| Failure::from_sdk(&e))
    })
    .await?;
    tracing::info!(role_arn, session, "assumed role with web identity");
    to_credentials(out.credentials(), "credfile-web-identity")
}

async fn assume_role(
    aws: &aws::Context,
    base: &SdkConfig,
    role_arn: &str,
    session: &str,
    duration: u32,
) -> Result<Credentials, IdentityError> {
    let fail = |failure| IdentityError::AssumeRole {
        role_arn: role_arn.to_string(),
        failure,
    };
    let sts = aws::sts_client(base, aws);
    let out = retry(aws.tuning, "AssumeRole", || async {
        sts.assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            .duration_seconds(duration as i32)
            .send()
            .await
            .map_err(|e| Failure::from_sdk(&e))
    })
    .await
    .map_err(fail)?;
    tracing::info!(role_arn, session, "assumed role");
    to_credentials(out.credentials(), "credfile-assume-role").map_err(fail)
}

fn to_credentials(
    c: Option<&aws_sdk_sts::types::Credentials>,
    provider: &'static str,
) -> Result<Credentials, Failure> {
    let c = c.ok_or_else(|| Failure {
        code: None,
        status: None,
        message: "STS returned no credentials".into(),
        kind: FailureKind::Response,
    })?;
    Ok(Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        SystemTime::try_from(*c.expiration()).ok(),
        provider,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec(role: Option<&str>, web: WebIdentity) -> IdentitySpec {
        IdentitySpec {
            role_arn: role.map(str::to_string),
            web_identity: web,
            audience: "sts.amazonaws.com".into(),
            token_env: "AWS_ID_TOKEN".into(),
            session_name: None,
            duration: 900,
            then_assume: None,
            then_session_name: None,
            allow_static_credentials: false,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn auto_follows_the_ci() {
        let role = Some("arn:aws:iam::111111111111:role/r");
        let gh = env(&[("GITHUB_ACTIONS", "true")]);
        let gl = env(&[("GITLAB_CI", "true")]);
        let host = env(&[]);
        assert_eq!(choose(&spec(role, WebIdentity::Auto), &gh), Origin::Github);
        assert_eq!(choose(&spec(role, WebIdentity::Auto), &gl), Origin::Gitlab);
        assert_eq!(
            choose(&spec(role, WebIdentity::Auto), &host),
            Origin::DefaultChain
        );
        assert_eq!(
            choose(&spec(None, WebIdentity::Auto), &gh),
            Origin::DefaultChain,
            "no role to exchange for"
        );
        assert_eq!(
            choose(&spec(role, WebIdentity::None), &gh),
            Origin::DefaultChain
        );
        assert_eq!(
            choose(&spec(role, WebIdentity::Gitlab), &host),
            Origin::Gitlab
        );
    }

    #[test]
    fn session_names_follow_sts_rules() {
        let s = spec(None, WebIdentity::Auto);
        assert_eq!(
            session_name(&s, "payments", "staging", &env(&[])),
            "credfile-payments-staging"
        );
        let gh = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/pay ments"),
            ("GITHUB_RUN_ID", "123456"),
        ]);
        assert_eq!(
            session_name(&s, "a", "b", &gh),
            "credfile-acme-pay-ments-123456"
        );
        let gl = env(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_PATH", &"g/".repeat(60)),
            ("CI_PIPELINE_ID", "987"),
        ]);
        let name = session_name(&s, "a", "b", &gl);
        assert!(name.len() <= 64 && name.ends_with("-987"), "{name}");
        assert!(name.chars().all(is_session_char));
        let long = session_name(&s, &"a".repeat(100), "x y/z", &env(&[]));
        assert_eq!(long.len(), 64);
    }
}
