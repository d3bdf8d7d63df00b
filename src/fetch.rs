//! Fetch: read every secret version the plan needs, each exactly once.
//!
//! Unpinned references (AWSCURRENT) go through `BatchGetSecretValue` in chunks of at most 20 (the
//! API's limit, which the SDK does not enforce); pinned ones (`version_stage`, `version_id`) need
//! `GetSecretValue`. Calls run concurrently under a small bound. A role that may not call
//! `BatchGetSecretValue` at all (least privilege: GetSecretValue only) falls back to single gets.
//! Values are moved out of the SDK's responses straight into zeroizing secret types.
//!
//! `--fetch` ([`FetchMode`]): a fleet starting at once exhausts the account's batch quota (100
//! calls/s) long before the per-secret one (10,000/s). In `auto` a throttled batch call is not
//! retried: its references move to `GetSecretValue` (same concurrency bound, the SDK's retries),
//! and so do the chunks not yet sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// How references are fetched (`--fetch`, `CREDFILE_FETCH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FetchMode {
    /// Batches, and moves to GetSecretValue what a throttled batch call could not fetch.
    #[default]
    Auto,
    /// Batches only (a throttled batch call is retried as a batch call).
    Batch,
    /// GetSecretValue for every reference.
    Single,
}

impl FetchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchMode::Auto => "auto",
            FetchMode::Batch => "batch",
            FetchMode::Single => "single",
        }
    }
}

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
        if self.failures.iter().any(|(_, f)| is_throttle(f)) {
            hints.push("Secrets Manager throttled the calls: stagger deploys across hosts (--jitter), use --fetch auto or single, or allow more attempts with --max-attempts (AWS_RETRY_MODE=adaptive adds a client-side rate limiter)");
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

/// What one task gives back: results, and references to fetch one by one instead.
type Step = (Outcome, Vec<SecretRef>);

/// Fetches `refs` (already deduplicated) in the default mode, [`FetchMode::Auto`].
pub async fn fetch_all(client: &Client, refs: Vec<SecretRef>) -> Result<FetchSet, FetchError> {
    fetch_with(client, refs, FetchMode::Auto).await
}

/// Fetches `refs` (already deduplicated). All or nothing: any failure fails the fetch, and every
/// failing secret is named.
pub async fn fetch_with(
    client: &Client,
    refs: Vec<SecretRef>,
    mode: FetchMode,
) -> Result<FetchSet, FetchError> {
    let (current, pinned): (Vec<_>, Vec<_>) = match mode {
        FetchMode::Single => (Vec::new(), refs),
        _ => refs.into_iter().partition(|r| r.pin == Pin::Current),
    };
    let limit = Arc::new(Semaphore::new(CONCURRENCY));
    // Set by the first throttled batch call (auto): the account's batch quota is spent, so the
    // chunks still waiting go straight to GetSecretValue.
    let batch_throttled = Arc::new(AtomicBool::new(false));
    let mut tasks: JoinSet<Step> = JoinSet::new();
    let spawn_single = |tasks: &mut JoinSet<Step>, r: SecretRef| {
        let (client, limit) = (client.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let result = get_one(&client, &r).await;
            (vec![(r, result)], Vec::new())
        });
    };
    for chunk in current.chunks(BATCH_SIZE) {
        let (client, limit, chunk) = (client.clone(), limit.clone(), chunk.to_vec());
        let throttled = batch_throttled.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            if mode == FetchMode::Auto && throttled.load(Ordering::Relaxed) {
                return (Vec::new(), chunk);
            }
            let step = batch(&client, chunk, mode == FetchMode::Auto).await;
            if !step.1.is_empty() && mode == FetchMode::Auto {
                throttled.store(true, Ordering::Relaxed);
            }
            step
        });
    }
    for r in pinned {
        spawn_single(&mut tasks, r);
    }
    let mut set = FetchSet::default();
    let mut failures = Vec::new();
    let mut moved = 0usize;
    while let Some(joined) = tasks.join_next().await {
        let (outcome, singles) =
            joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        moved += singles.len();
        for r in singles {
            spawn_single(&mut tasks, r);
        }
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
    if moved > 0 {
        tracing::info!(
            secrets = moved,
            "BatchGetSecretValue throttled or denied; fetched these with GetSecretValue instead"
        );
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

/// Whether AWS refused the call for its rate: these codes, or HTTP 429.
pub fn is_throttle(f: &Failure) -> bool {
    f.status == Some(429)
        || matches!(
            f.code.as_deref(),
            Some(
                "ThrottlingException"
                    | "Throttling"
                    | "TooManyRequestsException"
                    | "RequestLimitExceeded"
                    | "RequestThrottled"
                    | "RequestThrottledException"
                    | "SlowDown"
            )
        )
}

/// One chunk through BatchGetSecretValue. `fall_back`: a throttled call is tried once, and its
/// references come back to be fetched one by one (auto mode).
async fn batch(client: &Client, chunk: Vec<SecretRef>, fall_back: bool) -> Step {
    let ids: Vec<String> = chunk.iter().map(|r| r.id.clone()).collect();
    let mut found: Vec<Fetched> = Vec::new();
    let mut errors: Vec<(String, Failure)> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // `Some(n)`: at most n attempts for this call instead of the client's setting.
        let send = |attempts: Option<u32>, token: Option<String>| {
            let req = client
                .batch_get_secret_value()
                .set_secret_id_list(Some(ids.clone()))
                .set_next_token(token);
            async move {
                match attempts {
                    Some(n) => {
                        req.customize()
                            .config_override(
                                aws_sdk_secretsmanager::config::Builder::default()
                                    .retry_config(crate::aws::retry_config(n)),
                            )
                            .send()
                            .await
                    }
                    None => req.send().await,
                }
            }
        };
        let budget = crate::aws::tuning().max_attempts;
        let mut sent = send(fall_back.then_some(1), token.clone()).await;
        if fall_back
            && budget > 1
            && let Err(e) = &sent
            && let failure = Failure::from_sdk(e)
            && !is_throttle(&failure)
            && !failure.is_code("AccessDeniedException")
        {
            // Not the quota: the rest of the attempt budget, as in batch mode.
            sent = send(Some(budget - 1), token.take()).await;
        }
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let failure = Failure::from_sdk(&e);
                let denied = failure.is_code("AccessDeniedException") && found.is_empty();
                if denied || (fall_back && is_throttle(&failure)) {
                    if denied {
                        tracing::info!(
                            "BatchGetSecretValue denied; falling back to GetSecretValue per secret"
                        );
                    }
                    // What earlier pages returned is kept; the rest goes one by one.
                    let (done, rest) = settle(chunk, found, &[], true);
                    return (done, rest);
                }
                return (
                    chunk
                        .into_iter()
                        .map(|r| (r, Err(failure.clone())))
                        .collect(),
                    Vec::new(),
                );
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
    settle(chunk, found, &errors, false)
}

/// Matches a chunk's references with what BatchGetSecretValue returned. `partial`: the rest is
/// not an error but to be fetched one by one.
fn settle(
    chunk: Vec<SecretRef>,
    mut found: Vec<Fetched>,
    errors: &[(String, Failure)],
    partial: bool,
) -> Step {
    let mut done = Vec::new();
    let mut rest = Vec::new();
    for r in chunk {
        if let Some(pos) = found
            .iter()
            .position(|f| same_secret(&r.id, &f.name, &f.arn))
        {
            let f = found.swap_remove(pos);
            done.push((r, Ok(f)));
            continue;
        }
        if partial {
            rest.push(r);
            continue;
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
        done.push((r, Err(failure)));
    }
    (done, rest)
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
