//! Signing in to Vault with the identity the pipeline or host already has
//! (docs/src/vault.md, "Signing in"): a pipeline's OIDC token (`jwt`), a pod's service-account
//! token (`kubernetes`), the AWS identity (`aws`, a signed STS GetCallerIdentity), an AppRole
//! (`approle`, the secret id optionally response-wrapped), or by hand a token (`token`, refused
//! in CI and in protected environments like long-lived AWS keys).
//!
//! The token credfile obtains is its own: [`VaultSession::end`] revokes it when the run ends,
//! whatever the outcome; a token the user supplied is never revoked. Files named for sign-in
//! (role and secret id files, `ca_file`, `~/.vault-token`, the service-account token) are read
//! as the invoking user under sudo, never with root's rights.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{IdentityError, Session, ci_name};
use crate::aws;
use crate::manifest::{IdentitySpec, Plan, VaultAuthSpec, VaultMethod, VaultSpec};
use crate::vault::{self, Client, Token, VaultError};

/// A secret file for sign-in is small; anything larger is the wrong file.
const MAX_SECRET_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum VaultAuthError {
    #[error("refusing Vault token sign-in {place}: a long-lived token is a standing credential")]
    TokenRefused { place: String },
    #[error("no Vault token: VAULT_TOKEN is not set and {} does not exist", path.display())]
    NoToken { path: PathBuf },
    #[error("cannot read the {what} {}: {reason}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the variable {var} holding the {what} is not set")]
    Variable { var: String, what: &'static str },
    #[error(
        "Vault jwt sign-in needs a pipeline's ID token, and this is neither GitHub Actions nor GitLab CI"
    )]
    NoPipeline,
    #[error("the wrapped secret id could not be unwrapped: {0}")]
    Unwrap(VaultError),
    #[error("Vault AWS sign-in: {reason}")]
    AwsRequest { reason: String },
    /// Vault refused the identity credfile presented; `presented` says which one (a token's
    /// issuer, subject and audience, or the AWS caller), so the mismatch with the role shows.
    #[error("{source}; credfile presented {presented}")]
    Refused {
        source: VaultError,
        presented: String,
    },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl VaultAuthError {
    pub fn hint(&self) -> String {
        match self {
            VaultAuthError::TokenRefused { .. } => "sign in with the pipeline's identity instead (`vault.auth.method: jwt`, or approle with the secret id from a protected CI variable); if a token is intended here, set `allow_static_credentials: true` on the environment".into(),
            VaultAuthError::NoToken { .. } => "run `vault login` (or `bao login`) first, or export VAULT_TOKEN; or choose another `vault.auth.method`".into(),
            VaultAuthError::File { .. } => "the file must exist and be readable by the user who runs credfile (the invoking user under sudo)".into(),
            VaultAuthError::Variable { var, .. } => format!("set `{var}` on the credfile step only, from a protected CI variable"),
            VaultAuthError::NoPipeline => "set `vault.auth.method` (approle, aws, kubernetes or token) for a run outside CI".into(),
            VaultAuthError::Unwrap(_) => "a wrapping token works once and expires: hand credfile a fresh one (`vault write -wrap-ttl=5m -f auth/approle/role/ROLE/secret-id`); if it was already unwrapped by someone else, treat the secret id as compromised".into(),
            VaultAuthError::AwsRequest { .. } => "the AWS identity must be available (an instance role, AWS_PROFILE, or the environment's `identity:`)".into(),
            VaultAuthError::Refused { source: VaultError::Login { method: "jwt" | "kubernetes", mount, .. }, .. } => format!(
                "the role must accept this token: its `bound_audiences` and `bound_claims` (and `bound_issuer` of the `{mount}` mount) must match the claims above (`credfile policy --vault-role github:OWNER/REPO` or `gitlab:GROUP/PROJECT` prints a matching jwt role)"
            ),
            VaultAuthError::Refused { source: VaultError::Login { method: "aws", mount, .. }, .. } => format!(
                "the `{mount}` mount must accept this request: `vault.auth.server_id` must equal the method's `iam_server_id_header_value`, the role's `bound_iam_principal_arn` must name this AWS identity, and a signature refused means the request was altered on the way (a proxy) or this host's clock is off"
            ),
            VaultAuthError::Refused { source, .. } => source.hint(),
            VaultAuthError::Vault(e) => e.hint(),
        }
    }
}

/// A signed-in client and its token, for one run (or while renewable, for `apply --every`).
#[derive(Debug)]
pub struct VaultSession {
    /// The client carrying the token.
    pub client: Client,
    pub token: Token,
    pub method: VaultMethod,
}

impl VaultSession {
    /// Ends the session: revokes the token credfile obtained (never a supplied one). A failure
    /// is logged, not fatal: the token still expires with its TTL.
    pub async fn end(self) {
        if !self.token.owned {
            return;
        }
        match self.client.revoke_self().await {
            Ok(()) => tracing::info!(accessor = %self.token.accessor, "revoked the Vault token"),
            Err(e) => {
                tracing::warn!(accessor = %self.token.accessor, error = %e, "cannot revoke the Vault token; it expires with its TTL")
            }
        }
    }

    /// What revokes this session's token from the signal thread of `apply --every` (which
    /// ends the process without unwinding): a blocking call on its own runtime and pool,
    /// bounded to a few seconds. `None` for a token credfile does not own.
    pub fn revoker(&self) -> Option<Box<dyn FnOnce() + Send>> {
        if !self.token.owned {
            return None;
        }
        let client = self.client.detached().ok()?;
        let accessor = self.token.accessor.clone();
        Some(Box::new(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let revoked = rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.revoke_self()).await
            });
            match revoked {
                Ok(Ok(())) => tracing::info!(accessor = %accessor, "revoked the Vault token"),
                Ok(Err(e)) => {
                    tracing::warn!(accessor = %accessor, error = %e, "cannot revoke the Vault token; it expires with its TTL")
                }
                Err(_) => {
                    tracing::warn!(accessor = %accessor, "Vault did not answer the revocation in time; the token expires with its TTL")
                }
            }
        }))
    }

    /// For the next round of `apply --every`: whether the token may be used again, renewing
    /// it when a third or less of its TTL is left. `false`: sign in anew (and [`Self::end`]
    /// this one).
    pub async fn keep(&mut self) -> bool {
        if !self.token.owned {
            return true;
        }
        if !self.token.nears_expiry(std::time::Instant::now()) {
            return true;
        }
        if !self.token.renewable {
            return false;
        }
        match self
            .client
            .renew_self(self.token.ttl.max(Duration::from_secs(60)))
            .await
        {
            Ok(ttl) if !ttl.is_zero() => {
                tracing::info!(accessor = %self.token.accessor, ttl = ttl.as_secs(), "renewed the Vault token");
                self.token.renewed(ttl);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::info!(error = %e, "cannot renew the Vault token; signing in again");
                false
            }
        }
    }
}

/// The Vault client for a plan's settings, before sign-in: `ca_file` is read as the invoker.
pub fn client(spec: &VaultSpec, tuning: aws::Tuning) -> Result<Client, VaultAuthError> {
    let ca_pem = match &spec.ca_file {
        Some(path) => Some(read_file("CA file (`vault.ca_file`)", path)?.to_vec()),
        None => None,
    };
    Ok(Client::new(vault::Settings {
        address: spec.address.clone(),
        namespace: spec.namespace.clone(),
        ca_pem,
        limits: vault::Limits {
            max_attempts: tuning.max_attempts,
            attempt_timeout: tuning.attempt_timeout,
            call_timeout: tuning.call_timeout,
        },
    })?)
}

/// Which method a run uses: the manifest's, else `jwt` inside CI and `token` by hand.
pub fn method(auth: &VaultAuthSpec, var: &dyn Fn(&str) -> Option<String>) -> VaultMethod {
    auth.method.unwrap_or(if ci_name(var).is_some() {
        VaultMethod::Jwt
    } else {
        VaultMethod::Token
    })
}

/// Signs in to Vault for `plan` (which has a `vault:` block). `aws_session`: the AWS identity,
/// needed by `method: aws` only (the caller establishes it then).
pub async fn sign_in(
    plan: &Plan,
    tuning: aws::Tuning,
    aws_session: Option<&Session>,
) -> Result<VaultSession, IdentityError> {
    let spec = plan
        .vault
        .as_ref()
        .ok_or_else(|| VaultAuthError::AwsRequest {
            reason: "the environment has no `vault:` block (internal error)".into(),
        })?;
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let base = client(spec, tuning)?;
    let auth = &spec.auth;
    let method = method(auth, &var);
    let mount = auth.mount_for(method);
    let role = auth.role.clone().unwrap_or_default();
    let token = match method {
        VaultMethod::Token => {
            let place = match ci_name(&var) {
                Some(ci) => Some(format!("inside CI ({ci})")),
                None if plan.protected => Some(format!("in protected environment `{}`", plan.env)),
                None => None,
            };
            if let Some(place) = place
                && !plan.identity.allow_static_credentials
            {
                return Err(VaultAuthError::TokenRefused { place }.into());
            }
            let mut token = Token::supplied(supplied_token(&var)?);
            // What the token is (its TTL, for `apply --every`); a token that cannot look
            // itself up still reads what its policy allows.
            match base.with_token(&token).lookup_self().await {
                Ok(info) => token.learn(&info),
                Err(e) => {
                    tracing::debug!(error = %e, "the supplied Vault token cannot look itself up")
                }
            }
            token
        }
        VaultMethod::Jwt => {
            let jwt = pipeline_jwt(plan, auth, tuning, &var).await?;
            let body = serde_json::json!({ "role": role, "jwt": jwt.expose_secret() });
            base.login("jwt", &mount, &body)
                .await
                .map_err(|e| refused(e, || presented_jwt(jwt.expose_secret())))?
        }
        VaultMethod::Kubernetes => {
            let jwt = read_file("service-account token", &auth.token_file)?;
            let jwt = std::str::from_utf8(&jwt).map_err(|_| VaultAuthError::File {
                what: "service-account token",
                path: auth.token_file.clone(),
                reason: "not text".into(),
            })?;
            let body = serde_json::json!({ "role": role, "jwt": jwt.trim() });
            base.login("kubernetes", &mount, &body)
                .await
                .map_err(|e| refused(e, || presented_jwt(jwt.trim())))?
        }
        VaultMethod::Approle => {
            let role_id = match (&auth.role_id, &auth.role_id_file) {
                (Some(id), _) => id.clone(),
                (None, Some(path)) => text(read_file("role id file", path)?, "role id file", path)?,
                (None, None) => String::new(),
            };
            let secret_id = secret_id(auth, &var)?;
            let secret_id = match (secret_id, auth.wrapped) {
                (Some(wrapping), true) => Some(unwrap_secret_id(&base, &wrapping).await?),
                (other, _) => other,
            };
            let mut body = serde_json::json!({ "role_id": role_id });
            if let Some(s) = &secret_id {
                body["secret_id"] = serde_json::Value::String(s.expose_secret().to_string());
            }
            base.login("approle", &mount, &body)
                .await
                .map_err(VaultAuthError::from)?
        }
        VaultMethod::Aws => {
            let session = aws_session.ok_or_else(|| VaultAuthError::AwsRequest {
                reason: "no AWS identity was established (internal error)".into(),
            })?;
            let (body, url) =
                super::vault_aws::login_body(session, &role, auth.server_id.as_deref()).await?;
            let presented = match &auth.server_id {
                Some(id) => format!(
                    "a GetCallerIdentity request signed for {url} with X-Vault-AWS-IAM-Server-ID `{}`",
                    crate::terminal::sanitize(id)
                ),
                None => format!(
                    "a GetCallerIdentity request signed for {url} without X-Vault-AWS-IAM-Server-ID (no `server_id`)"
                ),
            };
            base.login("aws", &mount, &body)
                .await
                .map_err(|e| refused(e, || Some(presented)))?
        }
    };
    Ok(VaultSession {
        client: base.with_token(&token),
        token,
        method,
    })
}

/// A refused sign-in ([`VaultError::Login`]) names what was presented; other errors pass.
fn refused(e: VaultError, presented: impl FnOnce() -> Option<String>) -> VaultAuthError {
    match (&e, presented()) {
        (VaultError::Login { .. }, Some(presented)) => VaultAuthError::Refused {
            source: e,
            presented,
        },
        _ => VaultAuthError::Vault(e),
    }
}

/// A JWT's `iss`, `sub` and `aud`, unverified and escaped: who the token says it is (claims
/// name a repository or a service account, never a secret; the signature stays out).
fn presented_jwt(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let field = |k: &str| match claims.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    };
    let parts: Vec<String> = ["iss", "sub", "aud"]
        .iter()
        .filter_map(|k| field(k).map(|v| format!("{k}={}", crate::terminal::sanitize(&v))))
        .collect();
    (!parts.is_empty()).then(|| format!("a token with {}", parts.join(", ")))
}

/// The pipeline's ID token for Vault: GitHub's token endpoint with `audience`, or GitLab's
/// `id_tokens` variable `token_env`.
async fn pipeline_jwt(
    plan: &Plan,
    auth: &VaultAuthSpec,
    tuning: aws::Tuning,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<SecretString, IdentityError> {
    let spec = IdentitySpec {
        audience: auth.audience.clone(),
        token_env: auth.token_env.clone(),
        ..plan.identity.clone()
    };
    match ci_name(var) {
        Some("GitHub Actions") => super::github_token(tuning, &spec, var).await,
        Some(_) => super::gitlab_token(&spec, var),
        None => Err(VaultAuthError::NoPipeline.into()),
    }
}

/// `VAULT_TOKEN`, else the invoker's `~/.vault-token` (what `vault login` writes).
fn supplied_token(var: &dyn Fn(&str) -> Option<String>) -> Result<SecretString, VaultAuthError> {
    if let Some(t) = var("VAULT_TOKEN") {
        return Ok(SecretString::from(t));
    }
    let home = match crate::sudo::invoked_by() {
        Some(user) => nix::unistd::User::from_name(&user)
            .ok()
            .flatten()
            .map(|u| u.dir),
        None => std::env::var_os("HOME").map(PathBuf::from),
    };
    let path = home.unwrap_or_default().join(".vault-token");
    if !path.exists() {
        return Err(VaultAuthError::NoToken { path });
    }
    let bytes = read_file("token file", &path)?;
    Ok(SecretString::from(text(bytes, "token file", &path)?))
}

/// The AppRole secret id, from its variable or file; `None` when the role binds none.
fn secret_id(
    auth: &VaultAuthSpec,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SecretString>, VaultAuthError> {
    if let Some(name) = &auth.secret_id_env {
        return var(name)
            .map(|v| Some(SecretString::from(v.trim().to_string())))
            .ok_or_else(|| VaultAuthError::Variable {
                var: name.clone(),
                what: "AppRole secret id",
            });
    }
    if let Some(path) = &auth.secret_id_file {
        let bytes = read_file("secret id file", path)?;
        return Ok(Some(SecretString::from(text(
            bytes,
            "secret id file",
            path,
        )?)));
    }
    Ok(None)
}

async fn unwrap_secret_id(
    client: &Client,
    wrapping: &SecretString,
) -> Result<SecretString, VaultAuthError> {
    let data = client
        .unwrap(wrapping)
        .await
        .map_err(VaultAuthError::Unwrap)?;
    data.get("secret_id")
        .and_then(|s| s.as_str())
        .map(|s| SecretString::from(s.to_string()))
        .ok_or_else(|| {
            VaultAuthError::Unwrap(VaultError::Response {
                path: "sys/wrapping/unwrap".into(),
                reason: "the wrapped response holds no `secret_id`".into(),
            })
        })
}

/// A file named for sign-in, read as the invoking user under sudo (never with root's rights).
fn read_file(what: &'static str, path: &Path) -> Result<Zeroizing<Vec<u8>>, VaultAuthError> {
    let bytes = crate::sudo::read_user_file(path).map_err(|e| VaultAuthError::File {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(VaultAuthError::File {
            what,
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_SECRET_FILE} bytes"),
        });
    }
    Ok(Zeroizing::new(bytes))
}

fn text(
    bytes: Zeroizing<Vec<u8>>,
    what: &'static str,
    path: &Path,
) -> Result<String, VaultAuthError> {
    std::str::from_utf8(&bytes)
        .map(|s| s.trim().to_string())
        .map_err(|_| VaultAuthError::File {
            what,
            path: path.to_path_buf(),
            reason: "not text".into(),
        })
}

/// base64 of `bytes`, as Vault's aws login wants every field of the signed request.
pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
