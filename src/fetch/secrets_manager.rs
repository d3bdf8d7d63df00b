//! The Secrets Manager seam: `secret:` references, and `secret: PREFIX*` directories (listed
//! with ListSecrets, then fetched with the other references).
//!
//! Unpinned references (AWSCURRENT) go through `BatchGetSecretValue` in chunks of at most 20 (the
//! API's limit, which the SDK does not enforce); pinned ones (`version_stage`, `version_id`) need
//! `GetSecretValue`. Calls run under the fetch stage's concurrency bound. A role that may not
//! call `BatchGetSecretValue` at all (least privilege: GetSecretValue only) falls back to single
//! gets. Values are moved out of the SDK's responses straight into zeroizing secret types.
//!
//! `--fetch` ([`FetchMode`]): a fleet starting at once exhausts the account's batch quota (100
//! calls/s) long before the per-secret one (10,000/s). In `auto` a throttled batch call is not
//! retried: its references move to `GetSecretValue` (same concurrency bound, the SDK's retries),
//! and so do the chunks not yet sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use secrecy::{SecretSlice, SecretString};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Fetched, SecretValue, Step, Tuned};
use crate::aws::{Failure, FailureKind, is_throttle};
use crate::manifest::{Pin, SecretRef, SourceKind};

type Client = Tuned<aws_sdk_secretsmanager::Client>;

/// The API's maximum number of ids per BatchGetSecretValue call.
pub const BATCH_SIZE: usize = 20;

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

/// Starts the calls for `refs` (already deduplicated) on `tasks`, each under `limit`. In auto
/// mode a throttled batch call hands its references back (a [`Step`]'s second part) for the
/// caller to pass to [`spawn_singles`].
pub fn spawn(
    tasks: &mut JoinSet<Step>,
    limit: &Arc<Semaphore>,
    client: &Client,
    refs: Vec<SecretRef>,
    mode: FetchMode,
) {
    let (current, pinned): (Vec<_>, Vec<_>) = match mode {
        FetchMode::Single => (Vec::new(), refs),
        _ => refs.into_iter().partition(|r| r.pin == Pin::Current),
    };
    // Set by the first throttled batch call (auto): the account's batch quota is spent, so the
    // chunks still waiting go straight to GetSecretValue.
    let batch_throttled = Arc::new(AtomicBool::new(false));
    for chunk in current.chunks(BATCH_SIZE) {
        let (client, limit, chunk) = (client.clone(), limit.clone(), chunk.to_vec());
        let throttled = batch_throttled.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_many_owned(super::AWS_CALL).await;
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
    spawn_singles(tasks, limit, client, pinned);
}

/// One `GetSecretValue` task per reference, each under `limit`.
pub fn spawn_singles(
    tasks: &mut JoinSet<Step>,
    limit: &Arc<Semaphore>,
    client: &Client,
    refs: Vec<SecretRef>,
) {
    super::spawn_each(
        tasks,
        limit,
        client,
        refs,
        super::AWS_CALL,
        |client, r| async move {
            let result = get_one(&client, &r).await;
            (r, result)
        },
    );
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
        let budget = client.tuning.max_attempts;
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

/// One GetSecretValue; a throttled call waits its turn ([`crate::aws::call_waiting_turn`]).
async fn get_one(client: &Client, r: &SecretRef) -> Result<Fetched, Failure> {
    let out = crate::aws::call_waiting_turn(client.tuning, |attempts| {
        let req = client.get_secret_value().secret_id(&r.id);
        let req = match &r.pin {
            Pin::Current | Pin::ParamVersion(_) | Pin::ParamLabel(_) | Pin::KvVersion(_) => req,
            Pin::Stage(stage) => req.version_stage(stage),
            Pin::VersionId(id) => req.version_id(id),
        };
        req.customize()
            .config_override(
                aws_sdk_secretsmanager::config::Builder::default()
                    .retry_config(crate::aws::retry_config(attempts)),
            )
            .send()
    })
    .await?;
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

/// ListSecrets' maximum page size.
const LIST_PAGE_SIZE: i32 = 100;
/// A prefix with more secrets than a set may hold is refused while it is listed, as a
/// `parameters_path` is.
pub const MAX_PREFIX_SECRETS: usize = crate::manifest::MAX_SET_FILES;

/// The names under one prefix, each as a `secret:` reference (AWSCURRENT).
pub type PrefixOutcome = (SecretRef, Result<Vec<SecretRef>, Failure>);

/// Starts one task per prefix; each pages through ListSecrets, one page under `limit`. The
/// values are fetched afterwards with the other secrets ([`spawn`]: batches of 20).
pub fn spawn_prefixes(
    limit: &Arc<Semaphore>,
    client: &Client,
    refs: Vec<SecretRef>,
) -> JoinSet<PrefixOutcome> {
    let mut tasks = JoinSet::new();
    for r in refs {
        let (client, limit) = (client.clone(), limit.clone());
        tasks.spawn(async move {
            let result = list_prefix(&client, &limit, r.prefix()).await;
            (r, result)
        });
    }
    tasks
}

/// The names of the secrets under `prefix`, sorted: ListSecrets filtered by name (a prefix
/// match on AWS), checked again here case for case; secrets scheduled for deletion are left
/// out (they cannot be read).
async fn list_prefix(
    client: &Client,
    limit: &Semaphore,
    prefix: &str,
) -> Result<Vec<SecretRef>, Failure> {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values(prefix)
        .build();
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = {
            let _permit = limit.acquire_many(super::AWS_CALL).await;
            let token = token.take();
            crate::aws::call_waiting_turn(client.tuning, |attempts| {
                client
                    .list_secrets()
                    .filters(filter.clone())
                    .include_planned_deletion(false)
                    .max_results(LIST_PAGE_SIZE)
                    .set_next_token(token.clone())
                    .customize()
                    .config_override(
                        aws_sdk_secretsmanager::config::Builder::default()
                            .retry_config(crate::aws::retry_config(attempts)),
                    )
                    .send()
            })
            .await?
        };
        for entry in page.secret_list.unwrap_or_default() {
            match entry.name {
                Some(name) if entry.deleted_date.is_none() && name.starts_with(prefix) => {
                    names.push(name);
                }
                _ => {}
            }
        }
        if names.len() > MAX_PREFIX_SECRETS {
            return Err(Failure {
                code: None,
                status: None,
                message: format!("more than {MAX_PREFIX_SECRETS} secrets under the prefix"),
                kind: FailureKind::Response,
            });
        }
        match page.next_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|id| SecretRef {
            kind: SourceKind::Secret,
            id,
            pin: Pin::Current,
        })
        .collect())
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
