//! Tokens: signing in (`auth/<mount>/login`), unwrapping, renewing and revoking
//! (docs/src/vault.md, "Signing in").

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{Client, VaultError};

/// A Vault token and what Vault said about it. Debug never shows the token.
pub struct Token {
    value: SecretString,
    pub accessor: String,
    /// The lease of the token when it was obtained or last renewed (zero: no expiry, a root
    /// token or one the user supplied without looking it up).
    pub ttl: Duration,
    pub renewable: bool,
    pub policies: Vec<String>,
    /// When `ttl` was counted from.
    pub obtained: Instant,
    /// credfile signed in for it, so credfile revokes it when the run ends; a token the user
    /// supplied (`auth.method: token`) is never revoked.
    pub owned: bool,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("accessor", &self.accessor)
            .field("ttl", &self.ttl)
            .field("renewable", &self.renewable)
            .field("owned", &self.owned)
            .finish_non_exhaustive()
    }
}

/// What `auth/token/lookup-self` says about a token.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub accessor: String,
    pub ttl: Duration,
    pub renewable: bool,
    pub policies: Vec<String>,
}

impl Token {
    /// A token the user supplied (`VAULT_TOKEN`, `~/.vault-token`): used, never revoked.
    pub fn supplied(value: SecretString) -> Token {
        Token {
            value,
            accessor: String::new(),
            ttl: Duration::ZERO,
            renewable: false,
            policies: Vec::new(),
            obtained: Instant::now(),
            owned: false,
        }
    }

    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// Whether less than a third of its TTL is left (a token without expiry never is).
    pub fn nears_expiry(&self, now: Instant) -> bool {
        !self.ttl.is_zero() && now.duration_since(self.obtained) >= self.ttl * 2 / 3
    }

    fn from_auth(auth: &serde_json::Value, path: &str) -> Result<Token, VaultError> {
        let value = auth
            .get("client_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| VaultError::Response {
                path: path.to_string(),
                reason: "no `auth.client_token` in the answer".into(),
            })?;
        Ok(Token {
            value: SecretString::from(value.to_string()),
            accessor: str_field(auth, "accessor"),
            ttl: Duration::from_secs(
                auth.get("lease_duration")
                    .and_then(|d| d.as_u64())
                    .unwrap_or(0),
            ),
            renewable: auth
                .get("renewable")
                .and_then(|r| r.as_bool())
                .unwrap_or(false),
            policies: policies(auth.get("policies")),
            obtained: Instant::now(),
            owned: true,
        })
    }
}

fn str_field(v: &serde_json::Value, k: &str) -> String {
    v.get(k).and_then(|s| s.as_str()).unwrap_or("").to_string()
}

fn policies(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Client {
    /// `POST auth/<mount>/login` with `body` (the method's credentials); `method` names the
    /// auth method in messages. A refusal is [`VaultError::Login`], whatever its status.
    pub async fn login(
        &self,
        method: &'static str,
        mount: &str,
        body: &serde_json::Value,
    ) -> Result<Token, VaultError> {
        let path = format!("auth/{}/login", mount.trim_matches('/'));
        let bytes = Zeroizing::new(body.to_string().into_bytes());
        let reply = self
            .call(hyper::Method::POST, &path, Some(&bytes), None, "update")
            .await
            .map_err(|e| match e {
                VaultError::Denied { errors, .. } => VaultError::Login {
                    method,
                    mount: mount.to_string(),
                    status: 403,
                    errors,
                },
                VaultError::NotFound { .. } => VaultError::Login {
                    method,
                    mount: mount.to_string(),
                    status: 404,
                    errors: vec!["no such auth method mounted".into()],
                },
                VaultError::Status { status, errors, .. } if status < 500 => VaultError::Login {
                    method,
                    mount: mount.to_string(),
                    status,
                    errors,
                },
                other => other,
            })?;
        let json = reply.json(&path)?;
        let token = Token::from_auth(json.get("auth").unwrap_or(&serde_json::Value::Null), &path)?;
        tracing::info!(method, mount, accessor = %token.accessor, ttl = token.ttl.as_secs(), "signed in to Vault");
        Ok(token)
    }

    /// `POST sys/wrapping/unwrap` with the wrapping token: the wrapped response's `data`
    /// (a wrapping token works once; a second unwrap is refused, which is the point).
    pub async fn unwrap(&self, wrapping: &SecretString) -> Result<serde_json::Value, VaultError> {
        let path = "sys/wrapping/unwrap";
        let reply = self
            .call(hyper::Method::POST, path, None, Some(wrapping), "update")
            .await?;
        let json = reply.json(path)?;
        Ok(json.get("data").cloned().unwrap_or(serde_json::Value::Null))
    }

    /// `POST auth/token/revoke-self` with the client's token.
    pub async fn revoke_self(&self) -> Result<(), VaultError> {
        self.call(
            hyper::Method::POST,
            "auth/token/revoke-self",
            None,
            self.token.as_deref(),
            "update",
        )
        .await
        .map(|_| ())
    }

    /// `POST auth/token/renew-self`: the token's new TTL (Vault may grant less than asked).
    pub async fn renew_self(&self, increment: Duration) -> Result<Duration, VaultError> {
        let path = "auth/token/renew-self";
        let body = serde_json::json!({ "increment": format!("{}s", increment.as_secs()) });
        let reply = self.write(path, &body).await?;
        let json = reply.json(path)?;
        Ok(Duration::from_secs(
            json.pointer("/auth/lease_duration")
                .and_then(|d| d.as_u64())
                .unwrap_or(0),
        ))
    }

    /// `GET auth/token/lookup-self`.
    pub async fn lookup_self(&self) -> Result<TokenInfo, VaultError> {
        let path = "auth/token/lookup-self";
        let reply = self.read(path).await?;
        let json = reply.json(path)?;
        let data = json.get("data").unwrap_or(&serde_json::Value::Null);
        Ok(TokenInfo {
            accessor: str_field(data, "accessor"),
            ttl: Duration::from_secs(data.get("ttl").and_then(|d| d.as_u64()).unwrap_or(0)),
            renewable: data
                .get("renewable")
                .and_then(|r| r.as_bool())
                .unwrap_or(false),
            policies: policies(data.get("policies")),
        })
    }
}

impl Token {
    /// After a renewal: the new TTL counts from now.
    pub fn renewed(&mut self, ttl: Duration) {
        self.ttl = ttl;
        self.obtained = Instant::now();
    }

    /// Fills in what `lookup-self` said (for a supplied token).
    pub fn learn(&mut self, info: &TokenInfo) {
        self.accessor = info.accessor.clone();
        self.ttl = info.ttl;
        self.renewable = info.renewable;
        self.policies = info.policies.clone();
        self.obtained = Instant::now();
    }
}
