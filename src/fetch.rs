//! Fetch: read every secret version the plan needs, each exactly once.
//!
//! Unpinned references (AWSCURRENT) go through `BatchGetSecretValue` in chunks of at most 20 (the
//! API's limit, which the SDK does not enforce); pinned ones (`version_stage`, `version_id`) need
//! `GetSecretValue`. Calls run concurrently under a small bound. A role that may not call
//! `BatchGetSecretValue` at all (least privilege: GetSecretValue only) falls back to single gets.
//! Values are moved out of the SDK's responses straight into zeroizing secret types.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use secrecy::{SecretSlice, SecretString};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws::{Failure, FailureKind};
use crate::manifest::{Pin, SecretRef};

/// The API's maximum number of ids per BatchGetSecretValue call.
pub const BATCH_SIZE: usize = 20;
/// How many calls are in flight at once: enough to overlap latency, small enough to stay far
/// below the account's request quotas when a fleet deploys at once.
pub const CONCURRENCY: usize = 4;

/// A secret's value. Neither variant can be printed: secrecy's types redact Debug.
pub enum SecretValue {
    Text(SecretString),
    Binary(SecretSlice<u8>),
}

/// One fetched secret version.
pub struct Fetched {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub value: SecretValue,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("arn", &self.arn)
            .field("version_id", &self.version_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot fetch {} secret(s){}:{}", failures.len(), looked_up_in.as_ref().map(|w| format!(" (looked up in {w})")).unwrap_or_default(), failures.iter().map(|(r, f)| format!("\n  {r}: {f}")).collect::<String>())]
pub struct FetchError {
    pub failures: Vec<(SecretRef, Failure)>,
    /// Where the secrets were looked up (`region R, account A`), filled in by the caller: a
    /// missing secret is most often one looked up in the wrong region or account.
    pub looked_up_in: Option<String>,
}

impl FetchError {
    pub fn hint(&self) -> Option<String> {
        let has = |code: &str| self.failures.iter().any(|(_, f)| f.is_code(code));
        let mut hints = Vec::new();
        if has("ResourceNotFoundException") {
            hints.push("check the secret's name or ARN and the environment's region and account; a secret scheduled for deletion cannot be read");
        }
        if has("AccessDeniedException") {
            hints.push("the identity needs secretsmanager:GetSecretValue on each secret (and kms:Decrypt on a customer-managed key)");
        }
        if has("DecryptionFailure") {
            hints.push("the secret's KMS key refused to decrypt: the identity needs kms:Decrypt on it, and the key must be enabled");
        }
        if self
            .failures
            .iter()
            .any(|(_, f)| matches!(f.kind, FailureKind::Network | FailureKind::Timeout))
        {
            hints.push("Secrets Manager did not answer in time: check the network path to it, then retry (see --attempt-timeout)");
        }
        if self.failures.iter().any(|(_, f)| {
            matches!(
                f.code.as_deref(),
                Some("ThrottlingException" | "TooManyRequestsException" | "Throttling")
            )
        }) {
            hints.push("Secrets Manager throttled the calls: stagger deploys across hosts, or allow more attempts with --max-attempts");
        }
        if self
            .failures
            .iter()
            .any(|(_, f)| f.status.is_some_and(|s| s >= 500) || f.kind == FailureKind::Response)
        {
            hints.push("Secrets Manager failed or answered something unreadable; retry later");
        }
        if hints.is_empty() {
            hints.push("nothing was written; fix the cause and run again");
        }
        Some(hints.join("; "))
    }
}

/// The fetched values, by reference.
#[derive(Debug, Default)]
pub struct FetchSet {
    values: HashMap<SecretRef, Fetched>,
}

impl FetchSet {
    pub fn get(&self, r: &SecretRef) -> Option<&Fetched> {
        self.values.get(r)
    }
}

type Outcome = Vec<(SecretRef, Result<Fetched, Failure>)>;

/// Fetches `refs` (already deduplicated). All or nothing: any failure fails the fetch, and every
/// failing secret is named.
pub async fn fetch_all(client: &Client, refs: Vec<SecretRef>) -> Result<FetchSet, FetchError> {
    let (current, pinned): (Vec<_>, Vec<_>) = refs.into_iter().partition(|r| r.pin == Pin::Current);
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    for chunk in current.chunks(BATCH_SIZE) {
        let (client, limit, chunk) = (client.clone(), limit.clone(), chunk.to_vec());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            batch(&client, chunk).await
        });
    }
    for r in pinned {
        let (client, limit) = (client.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let result = get_one(&client, &r).await;
            vec![(r, result)]
        });
    }
    let mut set = FetchSet::default();
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        for (r, result) in outcome {
            match result {
                Ok(f) => {
                    tracing::debug!(secret = %r, version_id = %f.version_id, "fetched");
                    set.values.insert(r, f);
                }
                Err(failure) => failures.push((r, failure)),
            }
        }
    }
    if failures.is_empty() {
        Ok(set)
    } else {
        failures.sort_by(|a, b| a.0.cmp(&b.0));
        Err(FetchError {
            failures,
            looked_up_in: None,
        })
    }
}

async fn batch(client: &Client, chunk: Vec<SecretRef>) -> Outcome {
    let ids: Vec<String> = chunk.iter().map(|r| r.id.clone()).collect();
    let mut found: Vec<Fetched> = Vec::new();
    let mut errors: Vec<(String, Failure)> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let sent = client
            .batch_get_secret_value()
            .set_secret_id_list(Some(ids.clone()))
            .set_next_token(token.take())
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let failure = Failure::from_sdk(&e);
                if failure.is_code("AccessDeniedException") && found.is_empty() {
                    tracing::info!(
                        "BatchGetSecretValue denied; falling back to GetSecretValue per secret"
                    );
                    return singles(client, chunk).await;
                }
                return chunk
                    .into_iter()
                    .map(|r| (r, Err(failure.clone())))
                    .collect();
            }
        };
        for entry in out.secret_values.unwrap_or_default() {
            let value = match (entry.secret_string, entry.secret_binary) {
                (Some(s), _) => SecretValue::Text(SecretString::from(s)),
                (None, Some(b)) => SecretValue::Binary(SecretSlice::from(b.into_inner())),
                (None, None) => continue,
            };
            found.push(Fetched {
                arn: entry.arn.unwrap_or_default(),
                name: entry.name.unwrap_or_default(),
                version_id: entry.version_id.unwrap_or_default(),
                value,
            });
        }
        for e in out.errors.unwrap_or_default() {
            let failure = Failure {
                code: e.error_code,
                message: e.message.unwrap_or_else(|| "no message".into()),
                status: None,
                kind: FailureKind::Service,
            };
            errors.push((e.secret_id.unwrap_or_default(), failure));
        }
        match out.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    chunk
        .into_iter()
        .map(|r| {
            if let Some(pos) = found
                .iter()
                .position(|f| same_secret(&r.id, &f.name, &f.arn))
            {
                let f = found.swap_remove(pos);
                return (r, Ok(f));
            }
            let failure = errors
                .iter()
                .find(|(id, _)| *id == r.id)
                .map(|(_, f)| f.clone())
                .unwrap_or_else(|| Failure {
                    code: None,
                    status: None,
                    message: "not returned by BatchGetSecretValue (no value and no error)".into(),
                    kind: FailureKind::Response,
                });
            (r, Err(failure))
        })
        .collect()
}

async fn singles(client: &Client, chunk: Vec<SecretRef>) -> Outcome {
    let mut out = Vec::with_capacity(chunk.len());
    for r in chunk {
        let result = get_one(client, &r).await;
        out.push((r, result));
    }
    out
}

async fn get_one(client: &Client, r: &SecretRef) -> Result<Fetched, Failure> {
    let mut req = client.get_secret_value().secret_id(&r.id);
    req = match &r.pin {
        Pin::Current => req,
        Pin::Stage(stage) => req.version_stage(stage),
        Pin::VersionId(id) => req.version_id(id),
    };
    let out = req.send().await.map_err(|e| Failure::from_sdk(&e))?;
    let value = match (out.secret_string, out.secret_binary) {
        (Some(s), _) => SecretValue::Text(SecretString::from(s)),
        (None, Some(b)) => SecretValue::Binary(SecretSlice::from(b.into_inner())),
        (None, None) => {
            return Err(Failure {
                code: None,
                status: None,
                message: "the secret version has neither SecretString nor SecretBinary".into(),
                kind: FailureKind::Response,
            });
        }
    };
    Ok(Fetched {
        arn: out.arn.unwrap_or_default(),
        name: out.name.unwrap_or_default(),
        version_id: out.version_id.unwrap_or_default(),
        value,
    })
}

/// Whether a requested id (name, full ARN, or partial ARN without the 6-character suffix that
/// Secrets Manager appends) names the secret with this name and ARN.
fn same_secret(requested: &str, name: &str, arn: &str) -> bool {
    if requested == name || requested == arn {
        return true;
    }
    requested.starts_with("arn:")
        && arn
            .strip_prefix(requested)
            .is_some_and(|rest| rest.len() == 7 && rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_names_and_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";
        assert!(same_secret("app/db", "app/db", arn));
        assert!(same_secret(arn, "app/db", arn));
        assert!(same_secret(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db",
            "app/db",
            arn
        ));
        assert!(!same_secret("app/d", "app/db", arn));
        assert!(!same_secret(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:app",
            "app/db",
            arn
        ));
    }

    #[test]
    fn fetched_debug_shows_no_value() {
        let f = Fetched {
            arn: "arn".into(),
            name: "n".into(),
            version_id: "v".into(),
            value: SecretValue::Text(SecretString::from("canary-value-123".to_string())),
        };
        assert!(!format!("{f:?}").contains("canary"));
    }
}
