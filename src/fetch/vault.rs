//! The Vault source: `vault: MOUNT/PATH` KV references (docs/src/vault.md).
//!
//! Vault has no batch read: each distinct path and version is one `GET`, run in parallel under
//! the fetch stage's one concurrency bound, over the client's kept-alive connections. A value
//! flows on like a Secrets Manager JSON secret: the KV object as JSON text, so `key:`,
//! `keys: all`, dotenv and templates work the same. Provenance is `vault:PATH@VERSION`.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Fetched, SecretValue, Step};
use crate::aws::{Failure, FailureKind};
use crate::manifest::{Pin, SecretRef};
use crate::vault::{Client, VaultError};

/// Error codes of Vault failures start with this (`VaultPermissionDenied`, ...).
pub const CODE_PREFIX: &str = "Vault";

/// One read task per reference, each under `limit`.
pub fn spawn(
    tasks: &mut JoinSet<Step>,
    limit: &Arc<Semaphore>,
    client: &Client,
    refs: Vec<SecretRef>,
) {
    super::spawn_each(tasks, limit, client, refs, 1, |client, r| async move {
        let result = read(&client, &r).await;
        (r, result)
    });
}

async fn read(client: &Client, r: &SecretRef) -> Result<Fetched, Failure> {
    let version = match r.pin {
        Pin::KvVersion(v) => Some(v),
        _ => None,
    };
    let secret = client
        .kv_read(&r.id, version)
        .await
        .map_err(|e| failure(&e))?;
    tracing::debug!(path = %r.id, mount = %secret.mount, kv = ?secret.kv, "read a Vault KV secret");
    let version_id = secret.version.map(|v| v.to_string()).unwrap_or_default();
    Ok(Fetched {
        arn: provenance(&r.id, secret.version),
        name: r.id.clone(),
        version_id,
        value: SecretValue::Text(secret.data),
    })
}

/// How a Vault value is named in the report, the state file and the audit line:
/// `vault:secret/orders/db@3` (KV v2), `vault:kv1/orders/db` (KV v1). Never a value.
pub fn provenance(path: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("vault:{path}@{v}"),
        None => format!("vault:{path}"),
    }
}

/// A Vault error as the fetch stage's failure: its code, its status, and a message that names
/// the path and mount and says what to grant or fix.
pub fn failure(e: &VaultError) -> Failure {
    let kind = match e {
        VaultError::Network { .. } => FailureKind::Network,
        VaultError::Timeout { .. } => FailureKind::Timeout,
        VaultError::Response { .. } => FailureKind::Response,
        VaultError::Config { .. } => FailureKind::Request,
        _ => FailureKind::Service,
    };
    Failure {
        code: Some(e.code().to_string()),
        status: e.status(),
        message: format!("{e}; {}", e.hint()),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_names_path_and_version() {
        assert_eq!(
            provenance("secret/orders/db", Some(3)),
            "vault:secret/orders/db@3"
        );
        assert_eq!(provenance("kv1/orders/db", None), "vault:kv1/orders/db");
    }

    #[test]
    fn a_denial_says_what_to_grant() {
        let f = failure(&VaultError::Denied {
            path: "secret/data/orders/db".into(),
            mount: Some("secret/".into()),
            capability: "read",
            errors: vec!["permission denied".into()],
        });
        assert_eq!(f.status, Some(403));
        let text = f.to_string();
        for want in [
            "secret/data/orders/db",
            "mount `secret/`",
            "capabilities = [\"read\"]",
        ] {
            assert!(text.contains(want), "{text}");
        }
    }
}
