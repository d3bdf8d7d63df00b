//! The Vault (and OpenBao) seam: every call credfile makes to Vault's HTTP API goes through
//! [`Client`] (docs/src/vault.md).
//!
//! HTTP/1.1 over the hyper/rustls stack the AWS SDK already links, one pooled client per run
//! (kept-alive connections: Vault has no batch read, so many small reads share a few TCP and TLS
//! handshakes). `address` is https, or http on loopback only (a dev server). A 429 (a rate-limit
//! quota) or a 5xx waits its turn like an AWS throttle until the call timeout; the network and
//! timeouts get the attempt budget; refusals fail at once, with the path, the mount and the
//! capability to grant. Tokens are secret types; response bodies are zeroized when dropped.

mod error;
pub mod kv;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub use error::VaultError;
pub use kv::Mount;
pub use token::Token;

/// A response larger than this is not a secret or a token (Vault's own default request limit
/// is 32 MiB; a KV secret is at most a few hundred KiB in practice).
const MAX_BODY: usize = 4 << 20;

/// How hard a call tries: the run's AWS tuning, passed in by the caller (the same numbers for
/// every outside call, docs/src/flow.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_attempts: u32,
    pub attempt_timeout: Duration,
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(20),
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// Where Vault is and how to trust it: an environment's `vault:` block, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub address: String,
    pub namespace: Option<String>,
    /// PEM roots from `ca_file` (read by the caller, as the invoker under sudo); `None`: the
    /// system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub limits: Limits,
}

type Http = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Inner {
    http: Http,
    /// What the client was made from (for [`Client::detached`]).
    settings: Settings,
    /// `https://vault.example:8200`, without a trailing slash.
    base: String,
    namespace: Option<String>,
    limits: Limits,
    /// Mount metadata by mount path (`secret/`), for the run.
    mounts: Mutex<HashMap<String, Mount>>,
    /// Held while a mount is looked up, so concurrent reads on one mount make one lookup;
    /// inside, the lookups that failed for good, by first path component.
    mount_lookups: tokio::sync::Mutex<HashMap<String, VaultError>>,
}

/// A connection pool to one Vault, optionally carrying a token. Cloning is cheap and shares
/// the pool and the mount cache.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    token: Option<Arc<SecretString>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("vault::Client")
            .field("address", &self.inner.base)
            .field("namespace", &self.inner.namespace)
            .finish_non_exhaustive()
    }
}

/// An answer: the status and the body, zeroized when dropped (it may hold a value or a token).
pub struct Reply {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
}

impl Reply {
    /// The body as JSON (the caller keeps what it needs and drops the rest).
    pub fn json(&self, path: &str) -> Result<serde_json::Value, VaultError> {
        serde_json::from_slice(&self.body).map_err(|_| VaultError::Response {
            path: path.to_string(),
            reason: "not JSON".into(),
        })
    }
}

/// Whether `address` may carry a token (the manifest's rule, checked again here).
pub fn check_address(address: &str) -> Result<(), String> {
    match crate::manifest::vault::check_address(address) {
        None => Ok(()),
        Some(why) => Err(why.to_string()),
    }
}

impl Client {
    /// A client for `settings` (no request is made yet).
    pub fn new(settings: Settings) -> Result<Client, VaultError> {
        let config = |reason: String| VaultError::Config { reason };
        check_address(&settings.address).map_err(|why| config(format!("`address` {why}")))?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &settings.ca_pem {
            None => builder
                .with_native_roots()
                .map_err(|e| config(format!("cannot load the system's CA certificates: {e}")))?,
            Some(pem) => builder.with_tls_config(tls_with_roots(pem).map_err(config)?),
        };
        let connector = builder.https_or_http().enable_http1().build();
        let kept = settings.clone();
        let http: Http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                settings: kept,
                base: settings.address.trim_end_matches('/').to_string(),
                namespace: settings.namespace.filter(|n| !n.is_empty()),
                limits: settings.limits,
                mounts: Mutex::new(HashMap::new()),
                mount_lookups: tokio::sync::Mutex::new(HashMap::new()),
            }),
            token: None,
        })
    }

    /// The same pool, sending `token` with each call.
    pub fn with_token(&self, token: &Token) -> Client {
        Client {
            inner: self.inner.clone(),
            token: Some(Arc::new(SecretString::from(token.expose().to_string()))),
        }
    }

    /// The same settings and token over a new connection pool: for a call made on another
    /// runtime than the one the pool's connections live on (the signal thread's revocation).
    pub fn detached(&self) -> Result<Client, VaultError> {
        Ok(Client {
            token: self.token.clone(),
            ..Client::new(self.inner.settings.clone())?
        })
    }

    pub fn address(&self) -> &str {
        &self.inner.base
    }

    pub fn namespace(&self) -> Option<&str> {
        self.inner.namespace.as_deref()
    }

    /// `GET /v1/<path>` with the client's token. `capability` names what a 403 asks to grant.
    pub async fn read(&self, path: &str) -> Result<Reply, VaultError> {
        self.call(
            hyper::Method::GET,
            path,
            None,
            self.token.as_deref(),
            "read",
        )
        .await
    }

    /// `POST /v1/<path>` with a JSON body and the client's token (`update` in a policy;
    /// `create` too when the path is new, which Vault's engines here never need).
    pub async fn write(&self, path: &str, body: &serde_json::Value) -> Result<Reply, VaultError> {
        let bytes = Zeroizing::new(body.to_string().into_bytes());
        self.call(
            hyper::Method::POST,
            path,
            Some(&bytes),
            self.token.as_deref(),
            "update",
        )
        .await
    }

    /// One call: a 2xx reply, or the error. 429 and 5xx wait their turn until the call
    /// timeout; network faults and timeouts are tried again within the attempt budget.
    pub async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
        capability: &'static str,
    ) -> Result<Reply, VaultError> {
        let limits = self.inner.limits;
        let deadline = tokio::time::Instant::now() + limits.call_timeout;
        let (mut throttled, mut attempts) = (0u32, 0u32);
        loop {
            attempts += 1;
            let outcome = self.once(method.clone(), path, body, token).await;
            let error = match outcome {
                Ok(reply) if (200..300).contains(&reply.status) => return Ok(reply),
                Ok(reply) => self.status_error(path, &reply, capability),
                Err(e) => e,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let status = error.status().unwrap_or(0);
            let waits_turn = status == 429 || (status >= 500 && status != 501);
            if waits_turn {
                if left.is_zero() {
                    let errors = match error {
                        VaultError::Status { errors, .. } => errors,
                        _ => Vec::new(),
                    };
                    return Err(VaultError::Throttled {
                        path: path.to_string(),
                        status,
                        errors,
                        seconds: limits.call_timeout.as_secs(),
                    });
                }
                tokio::time::sleep(crate::aws::throttle_wait(throttled).min(left)).await;
                throttled += 1;
                tracing::debug!(
                    path,
                    status,
                    throttled,
                    "Vault asked to wait; waiting for a turn"
                );
                continue;
            }
            if error.transient() && attempts < limits.max_attempts && !left.is_zero() {
                tracing::debug!(path, attempts, error = %error, "Vault call failed; trying again");
                tokio::time::sleep(crate::aws::throttle_wait(attempts).min(left)).await;
                continue;
            }
            return Err(error);
        }
    }

    async fn once(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&[u8]>,
        token: Option<&SecretString>,
    ) -> Result<Reply, VaultError> {
        let inner = &*self.inner;
        let url = format!("{}/v1/{}", inner.base, path.trim_start_matches('/'));
        let bad = |reason: String| VaultError::Config { reason };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| bad(format!("`{path}` does not make a valid URL")))?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("user-agent", crate::aws::USER_AGENT)
            .header("x-vault-request", "true");
        if let Some(ns) = &inner.namespace {
            request = request.header("x-vault-namespace", ns.as_str());
        }
        if let Some(token) = token {
            let mut value = hyper::header::HeaderValue::from_str(token.expose_secret())
                .map_err(|_| bad("the Vault token is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request.header("x-vault-token", value);
        }
        let payload = match body {
            Some(b) => {
                request = request.header("content-type", "application/json");
                Bytes::copy_from_slice(b)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(payload))
            .map_err(|e| bad(format!("cannot build the request: {e}")))?;
        let timeout = inner.limits.attempt_timeout;
        let timed_out = || VaultError::Timeout {
            path: path.to_string(),
            seconds: timeout.as_secs(),
        };
        let response = tokio::time::timeout(timeout, inner.http.request(request))
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| VaultError::Network {
                address: inner.base.clone(),
                reason: crate::aws::error_chain(&e),
            })?;
        let status = response.status().as_u16();
        let collected = tokio::time::timeout(
            timeout,
            Limited::new(response.into_body(), MAX_BODY).collect(),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|_| VaultError::Response {
            path: path.to_string(),
            reason: "the body was cut off or larger than 4 MiB".into(),
        })?;
        Ok(Reply {
            status,
            body: Zeroizing::new(collected.to_bytes().to_vec()),
        })
    }

    /// The error for a non-2xx answer; the mount is named when it is known.
    fn status_error(&self, path: &str, reply: &Reply, capability: &'static str) -> VaultError {
        let errors = vault_errors(&reply.body);
        let mount = self.cached_mount_of(path).map(|m| m.path);
        match reply.status {
            403 => VaultError::Denied {
                path: path.to_string(),
                mount,
                capability,
                errors,
            },
            404 => VaultError::NotFound {
                path: path.to_string(),
                mount,
                version: None,
            },
            status => VaultError::Status {
                path: path.to_string(),
                status,
                errors,
            },
        }
    }

    fn cached_mount_of(&self, path: &str) -> Option<Mount> {
        let mounts = self.inner.mounts.lock().unwrap_or_else(|e| e.into_inner());
        mounts
            .values()
            .filter(|m| path.starts_with(&m.path))
            .max_by_key(|m| m.path.len())
            .cloned()
    }

    fn remember_mount(&self, mount: Mount) {
        let mut mounts = self.inner.mounts.lock().unwrap_or_else(|e| e.into_inner());
        mounts.insert(mount.path.clone(), mount);
    }
}

/// Vault's `{"errors": [...]}`, sanitized and bounded (they name paths and reasons).
fn vault_errors(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors)
        .unwrap_or_default()
        .into_iter()
        .take(3)
        .map(|e| {
            let short: String = e.chars().take(200).collect();
            crate::terminal::sanitize(&short)
        })
        .collect()
}

/// A TLS configuration trusting only the PEM certificates in `pem`.
fn tls_with_roots(pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("`ca_file` is not PEM certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("`ca_file` holds a certificate rustls refuses: {e}"))?;
    }
    if roots.is_empty() {
        return Err("`ca_file` holds no PEM certificate".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_sanitized_and_bounded() {
        let body = br#"{"errors":["permission denied\u001b[31m","b","c","d"]}"#;
        let e = vault_errors(body);
        assert_eq!(e.len(), 3);
        assert!(!e[0].contains('\u{1b}'), "{e:?}");
        assert!(vault_errors(b"not json").is_empty());
    }
}
