//! Fetch: read every value the plan needs, each exactly once, from its source.
//!
//! One seam per source: [`secrets_manager`], [`parameter_store`], [`ci_variable`], [`vault`]. This module
//! deduplicates, dispatches by [`SourceKind`], runs every call under one concurrency bound and
//! collects the outcome all or nothing. A new source is one new file here plus a variant of
//! `manifest::SourceKind`.

pub mod ci_variable;
pub mod parameter_store;
pub mod secrets_manager;
pub mod vault;
pub mod vault_dynamic;

pub use secrets_manager::FetchMode;

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use secrecy::{SecretSlice, SecretString};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws::{Failure, FailureKind, is_throttle};
use crate::manifest::{SecretRef, SourceKind};

/// The one bound on calls in flight over all sources, in permits: enough to overlap latency,
/// small enough to stay far below shared request quotas when a fleet deploys at once. An AWS
/// call takes [`AWS_CALL`] permits (so at most 4 AWS calls, each carrying up to 20 secrets or
/// 10 parameters); a Vault read, which carries one value (Vault has no batch read), takes one,
/// so up to 32 Vault reads overlap their round trips: 100 reads take 4 round trips after the
/// sign-in (docs/src/vault.md, BENCHMARKS.md).
pub const CONCURRENCY: u32 = 32;

/// The permits of one AWS call: 4 AWS calls in flight, as the quota arithmetic assumes
/// (docs/src/fleets.md).
pub const AWS_CALL: u32 = CONCURRENCY / 4;

/// One task per reference, each holding `permits` of the one bound while its `read` runs (the
/// future starts only once it holds them).
fn spawn_each<C, F, Fut>(
    tasks: &mut JoinSet<Step>,
    limit: &Arc<Semaphore>,
    client: &C,
    refs: Vec<SecretRef>,
    permits: u32,
    read: F,
) where
    C: Clone,
    F: Fn(C, SecretRef) -> Fut,
    Fut: std::future::Future<Output = (SecretRef, Result<Fetched, Failure>)> + Send + 'static,
{
    for r in refs {
        let (limit, read) = (limit.clone(), read(client.clone(), r));
        tasks.spawn(async move {
            let _permit = limit.acquire_many_owned(permits).await;
            (vec![read.await], Vec::new())
        });
    }
}

/// A secret's value. Neither variant can be printed: secrecy's types redact Debug.
pub enum SecretValue {
    Text(SecretString),
    Binary(SecretSlice<u8>),
}

/// One fetched value version.
pub struct Fetched {
    /// The value's ARN (empty for a CI variable, which has none).
    pub arn: String,
    pub name: String,
    /// Secrets Manager's version id, a parameter's version number; empty for a CI variable.
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

/// What one seam's task produced: a result per reference. (A path reference's children are
/// in the set under their own references, listed by [`Listing`].)
pub type Outcome = Vec<(SecretRef, Result<Fetched, Failure>)>;

/// What one task gives back: its results, and Secrets Manager references that a throttled or
/// denied batch call hands back to be fetched one by one.
pub type Step = (Outcome, Vec<SecretRef>);

/// The values below a `parameters_path` or under a secret prefix: each child is also in the
/// set under its own reference (`SourceKind::Parameter` or `Secret`, `Pin::Current`).
pub type Listing = Vec<SecretRef>;

#[derive(Debug, thiserror::Error)]
#[error("cannot fetch {} secret(s){}:{}", failures.len(), looked_up_in.as_ref().map(|w| format!(" (looked up in {w})")).unwrap_or_default(), failures.iter().map(|(r, f)| format!("\n  {r}: {f}")).collect::<String>())]
pub struct FetchError {
    pub failures: Vec<(SecretRef, Failure)>,
    /// Where the values were looked up (`region R, account A`), filled in by the caller: a
    /// missing secret is most often one looked up in the wrong region or account.
    pub looked_up_in: Option<String>,
}

impl FetchError {
    pub fn hint(&self) -> Option<String> {
        // Vault's failures carry their own hint in their message (path, mount, what to
        // grant); the AWS advice below is for the others.
        let vault = |f: &Failure| {
            f.code
                .as_deref()
                .is_some_and(|c| c.starts_with(vault::CODE_PREFIX))
        };
        if self.failures.iter().all(|(_, f)| vault(f)) {
            return Some(
                if self.failures.iter().any(|(_, f)| f.status == Some(403)) {
                    "`credfile policy --vault --env ENV` prints the Vault policy granting exactly what the environment reads".into()
                } else {
                    "nothing was written; fix the cause named above and run again".into()
                },
            );
        }
        let has = |code: &str| self.failures.iter().any(|(_, f)| f.is_code(code));
        let kinds: std::collections::BTreeSet<SourceKind> =
            self.failures.iter().map(|(r, _)| r.kind).collect();
        let service = match (
            kinds.contains(&SourceKind::Secret),
            kinds.contains(&SourceKind::Parameter) || kinds.contains(&SourceKind::ParameterPath),
        ) {
            (true, true) => "AWS",
            (false, true) => "Parameter Store",
            _ => "Secrets Manager",
        };
        let mut hints = Vec::new();
        if has("ResourceNotFoundException") {
            hints.push("check the secret's name or ARN and the environment's region and account; a secret scheduled for deletion cannot be read".to_string());
        }
        if has("ParameterNotFound") || has("ParameterVersionNotFound") {
            hints.push("check the parameter's name or ARN, its `version` or `label`, and the environment's region and account (a parameter shared from another account needs its full ARN)".to_string());
        }
        if has("AccessDeniedException") {
            hints.push("the identity needs secretsmanager:GetSecretValue on each secret (and secretsmanager:ListSecrets for a prefix), ssm:GetParameters (ssm:GetParametersByPath for a path) on each parameter, and kms:Decrypt on a customer-managed key (`credfile policy` prints them)".to_string());
        }
        if has("DecryptionFailure") || has("InvalidKeyId") || has("KMSAccessDeniedException") {
            hints.push("the value's KMS key refused to decrypt: the identity needs kms:Decrypt on it, and the key must be enabled".to_string());
        }
        for (r, f) in &self.failures {
            if f.is_code(ci_variable::MISSING) {
                hints.push(ci_variable::missing_hint(r));
            }
        }
        if self
            .failures
            .iter()
            .any(|(_, f)| f.kind == FailureKind::Network)
        {
            hints.push(format!("{service} could not be reached at the endpoint named above (connection refused, DNS or TLS): {}", crate::aws::endpoint_advice()));
        }
        if self
            .failures
            .iter()
            .any(|(_, f)| f.kind == FailureKind::Timeout)
        {
            hints.push(format!("{service} did not answer in time: check the network path to it, then retry (see --attempt-timeout)"));
        }
        if self.failures.iter().any(|(_, f)| is_throttle(f)) {
            hints.push(format!("{service} throttled the calls: stagger deploys across hosts (--jitter), use --fetch auto or single (throttled single gets and Parameter Store calls wait their turn), or allow them more time with --call-timeout (batch calls retry within --max-attempts)"));
        }
        if self
            .failures
            .iter()
            .any(|(_, f)| f.status.is_some_and(|s| s >= 500) || f.kind == FailureKind::Response)
        {
            hints.push(format!(
                "{service} failed or answered something unreadable; retry later"
            ));
        }
        if hints.is_empty() {
            hints.push("nothing was written; fix the cause and run again".to_string());
        }
        Some(hints.join("; "))
    }
}

/// The fetched values, by reference.
#[derive(Debug, Default)]
pub struct FetchSet {
    values: HashMap<SecretRef, Fetched>,
    listings: HashMap<SecretRef, Listing>,
}

impl FetchSet {
    /// Adds values fetched elsewhere: a lease's or a certificate's, decided against the state
    /// file before the fetch (`vault_dynamic`).
    pub fn insert(&mut self, r: SecretRef, f: Fetched) {
        self.values.insert(r, f);
    }

    pub fn get(&self, r: &SecretRef) -> Option<&Fetched> {
        self.values.get(r)
    }

    /// The parameters found below a path reference, or the secrets under a prefix, in name
    /// order.
    pub fn listing(&self, r: &SecretRef) -> Option<&Listing> {
        self.listings.get(r)
    }
}

/// A source's client with the run's tuning: each call needs both (its retries, and how long
/// it waits its turn when throttled).
#[derive(Clone)]
pub struct Tuned<C> {
    client: C,
    pub tuning: crate::aws::Tuning,
}

impl<C> Tuned<C> {
    fn new(client: C, aws: &crate::aws::Context) -> Self {
        Tuned {
            client,
            tuning: aws.tuning,
        }
    }
}

impl<C> std::ops::Deref for Tuned<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.client
    }
}

/// Fetches `refs` (already deduplicated). All or nothing: any failure fails the fetch, and every
/// failing value is named. `config` is `None` when the plan needs no AWS identity (CI variables
/// and Vault only); an AWS reference then is an internal error. `vault` is the signed-in Vault
/// client when the plan reads Vault. `mode` is how Secrets Manager is read. Every call of
/// every source runs under the one bound, [`CONCURRENCY`] permits.
pub async fn fetch_sources(
    config: Option<&SdkConfig>,
    vault: Option<&crate::vault::Client>,
    aws: &crate::aws::Context,
    refs: Vec<SecretRef>,
    mode: FetchMode,
) -> Result<FetchSet, FetchError> {
    let limit = Arc::new(Semaphore::new(CONCURRENCY as usize));
    let mut tasks: JoinSet<Step> = JoinSet::new();
    let mut secrets_client = None;
    let mut ssm_client = None;
    let mut by_kind: HashMap<SourceKind, Vec<SecretRef>> = HashMap::new();
    for r in refs {
        by_kind.entry(r.kind).or_default().push(r);
    }
    let mut set = FetchSet::default();
    let mut failures = Vec::new();
    let mut paths = Vec::new();
    // Prefixes are listed first (while the other calls run); the secrets found join the
    // batches of the ones named directly, once each.
    let mut prefixes = None;
    if let Some(config) = config
        && let Some(refs) = by_kind.remove(&SourceKind::SecretPrefix)
    {
        let client = secrets_client
            .get_or_insert_with(|| Tuned::new(crate::aws::secrets_client(config, aws), aws));
        prefixes = Some(secrets_manager::spawn_prefixes(&limit, client, refs));
    }
    let named: std::collections::HashSet<SecretRef> = by_kind
        .get(&SourceKind::Secret)
        .map(|refs| refs.iter().cloned().collect())
        .unwrap_or_default();
    for (kind, refs) in by_kind {
        match (kind, config) {
            (SourceKind::CiVariable | SourceKind::CiVariableFile, _) => {
                for (r, result) in ci_variable::read(refs) {
                    match result {
                        Ok(f) => {
                            set.values.insert(r, f);
                        }
                        Err(failure) => failures.push((r, failure)),
                    }
                }
            }
            (SourceKind::Secret, Some(config)) => {
                let client = secrets_client.get_or_insert_with(|| {
                    Tuned::new(crate::aws::secrets_client(config, aws), aws)
                });
                secrets_manager::spawn(&mut tasks, &limit, client, refs, mode);
            }
            (SourceKind::Parameter, Some(config)) => {
                let client = ssm_client
                    .get_or_insert_with(|| Tuned::new(crate::aws::ssm_client(config, aws), aws));
                parameter_store::spawn(&mut tasks, &limit, client, refs);
            }
            // Taken out of `by_kind` above.
            (SourceKind::SecretPrefix, Some(_)) => {}
            (SourceKind::Vault, _) => match vault {
                Some(client) => vault::spawn(&mut tasks, &limit, client, refs),
                None => failures.extend(refs.into_iter().map(|r| {
                    (
                        r,
                        Failure {
                            code: Some("VaultNoClient".into()),
                            status: None,
                            message: "no Vault sign-in was made (internal error)".into(),
                            kind: FailureKind::Request,
                        },
                    )
                })),
            },
            // Leases and certificates are decided before the fetch (vault_dynamic).
            (SourceKind::VaultLease | SourceKind::VaultPki, _) => {
                failures.extend(refs.into_iter().map(|r| {
                    (
                        r,
                        Failure {
                            code: Some("VaultDynamic".into()),
                            status: None,
                            message: "a lease or certificate reached the fetch (internal error)"
                                .into(),
                            kind: FailureKind::Request,
                        },
                    )
                }))
            }
            (SourceKind::ParameterPath, Some(config)) => {
                let client = ssm_client
                    .get_or_insert_with(|| Tuned::new(crate::aws::ssm_client(config, aws), aws));
                paths.push(parameter_store::spawn_paths(&limit, client, refs));
            }
            (_, None) => {
                for r in refs {
                    failures.push((
                        r,
                        Failure {
                            code: None,
                            status: None,
                            message: "no AWS identity was established (internal error)".into(),
                            kind: FailureKind::Request,
                        },
                    ));
                }
            }
        }
    }
    if let (Some(mut listings), Some(client)) = (prefixes, &secrets_client) {
        let mut found = std::collections::BTreeSet::new();
        while let Some(joined) = listings.join_next().await {
            let (prefix, result) =
                joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            match result {
                Ok(children) => {
                    found.extend(children.iter().filter(|c| !named.contains(c)).cloned());
                    set.listings.insert(prefix, children);
                }
                Err(failure) => failures.push((prefix, failure)),
            }
        }
        secrets_manager::spawn(
            &mut tasks,
            &limit,
            client,
            found.into_iter().collect(),
            mode,
        );
    }
    let mut moved = 0usize;
    while let Some(joined) = tasks.join_next().await {
        let (outcome, singles) =
            joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        if let (false, Some(client)) = (singles.is_empty(), &secrets_client) {
            moved += singles.len();
            secrets_manager::spawn_singles(&mut tasks, &limit, client, singles);
        }
        collect(&mut set, &mut failures, outcome);
    }
    if moved > 0 {
        tracing::info!(
            secrets = moved,
            "BatchGetSecretValue throttled or denied; fetched these with GetSecretValue instead"
        );
    }
    for mut path_tasks in paths {
        while let Some(joined) = path_tasks.join_next().await {
            let (path, result) =
                joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            match result {
                Ok(children) => {
                    let mut listing = Vec::with_capacity(children.len());
                    for (r, f) in children {
                        listing.push(r.clone());
                        set.values.insert(r, f);
                    }
                    listing.sort();
                    set.listings.insert(path, listing);
                }
                Err(failure) => failures.push((path, failure)),
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

fn collect(set: &mut FetchSet, failures: &mut Vec<(SecretRef, Failure)>, outcome: Outcome) {
    for (r, result) in outcome {
        match result {
            Ok(f) => {
                tracing::debug!(source = r.kind.as_str(), id = %r.id, version_id = %f.version_id, "fetched");
                set.values.insert(r, f);
            }
            Err(failure) => failures.push((r, failure)),
        }
    }
}
