//! The Secrets Manager seam: `secret:` references.
//!
//! Unpinned references (AWSCURRENT) go through `BatchGetSecretValue` in chunks of at most 20 (the
//! API's limit, which the SDK does not enforce); pinned ones (`version_stage`, `version_id`) need
//! `GetSecretValue`. A role that may not call `BatchGetSecretValue` at all (least privilege:
//! GetSecretValue only) falls back to single gets. Values are moved out of the SDK's responses
//! straight into zeroizing secret types.

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use secrecy::{SecretSlice, SecretString};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Fetched, Outcome, SecretValue};
use crate::aws::{Failure, FailureKind};
use crate::manifest::{Pin, SecretRef};

/// The API's maximum number of ids per BatchGetSecretValue call.
pub const BATCH_SIZE: usize = 20;

/// Starts the calls for `refs` (already deduplicated) on `tasks`, each under `limit`.
pub fn spawn(
    tasks: &mut JoinSet<Outcome>,
    limit: &Arc<Semaphore>,
    client: &Client,
    refs: Vec<SecretRef>,
) {
    let (current, pinned): (Vec<_>, Vec<_>) = refs.into_iter().partition(|r| r.pin == Pin::Current);
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
        Pin::Current | Pin::ParamVersion(_) | Pin::ParamLabel(_) => req,
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
