//! The stages every command shares (docs/src/flow.md): manifest -> preflight -> identity ->
//! fetch -> render, then the audit line. Each command (src/commands/) takes from here what it
//! needs and adds its own ending: apply writes and runs hooks, verify compares, clean removes.
//! Nothing touches the target until every secret is fetched and every file is rendered.

use std::path::Path;
use std::time::Duration;

use crate::error::Error;
use crate::fetch::vault_dynamic::{self, Decided, Live};
use crate::fetch::{self, FetchMode, FetchSet};
use crate::format::LogFormat;
use crate::identity::vault::VaultSession;
use crate::identity::{self, Session};
use crate::manifest::{self, Plan};
use crate::materialize::{self, Outcome};
use crate::output::{AuditLine, FetchStats};
use crate::render::{self, Rendered, SourceInfo};
use crate::{aws, sudo};

/// What the command line says about every stage of a run, handed down as values (no
/// process-wide settings): the AWS tuning and call counters, and the log format (the audit
/// line on stderr is a log record with `--log-format json`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub aws: aws::Context,
    pub log_format: LogFormat,
}

/// The manifest stage for one environment: the invoker may read the manifest (under sudo, the
/// flags in `fenced` must be off), it parses and validates, and the environment resolves.
/// `root`: `--root`, else the manifest's.
pub fn plan(
    manifest: &Path,
    env: &str,
    root: Option<&Path>,
    fenced: &[(&'static str, bool)],
) -> Result<Plan, Error> {
    sudo::check_invocation(manifest, fenced)?;
    let manifest = manifest::load(manifest, &sudo::Fence)?;
    Ok(manifest.resolve(env, root)?)
}

/// Where a command that works under a root works: its manifest and environment, and the two
/// flags that pick a root or a file outside it (refused under sudo, docs/src/sudo.md).
pub struct Target<'a> {
    pub manifest: &'a Path,
    pub env: &'a str,
    pub root: Option<&'a Path>,
    pub audit_log: Option<&'a Path>,
}

impl Target<'_> {
    /// [`plan`] for this target.
    pub fn plan(&self) -> Result<Plan, Error> {
        let fenced = [
            ("--root", self.root.is_some()),
            ("--audit-log", self.audit_log.is_some()),
        ];
        plan(self.manifest, self.env, self.root, &fenced)
    }
}

/// Every file's bytes in memory: what identity, fetch and render produced for a plan.
pub struct Fetched {
    /// The caller's ARN, when a guard checked it or the audit line asked for it.
    pub caller_arn: Option<String>,
    /// The plan with its `keys: all`, prefix and `parameters_path` entries expanded into
    /// files: what `rendered` follows, one to one.
    pub plan: Plan,
    pub rendered: Vec<Rendered>,
}

/// The values of a plan, before rendering (`audit reuse` compares them without writing).
pub struct Values {
    pub caller_arn: Option<String>,
    pub fetched: FetchSet,
}

/// How to fetch: the fetch mode, a jitter before the first AWS call, and whether to look up
/// the caller's ARN even when no account guard asked for it (for the audit line).
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchOptions {
    pub mode: FetchMode,
    pub jitter: Option<Duration>,
    pub want_caller: bool,
}

/// One runtime for a command, and the identity session while it is fresh: the rounds of
/// `apply --every` share both.
pub struct Pipeline {
    rt: tokio::runtime::Runtime,
    session: Option<Session>,
    /// The Vault sign-in, while its token may be used (docs/src/vault.md): revoked when the
    /// pipeline is dropped, whatever the outcome.
    vault: Option<VaultSession>,
    pub settings: Settings,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(vault) = self.vault.take() {
            let _held = crate::every::critical();
            crate::every::on_stop(None);
            self.rt.block_on(vault.end());
        }
    }
}

impl Pipeline {
    pub fn new(settings: &Settings) -> Result<Pipeline, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Pipeline {
            rt,
            session: None,
            vault: None,
            settings: settings.clone(),
        })
    }

    /// The next call signs in again (after a failed round, in case the session is why; or for
    /// another environment, which has its own identity and Vault role): the AWS session is
    /// dropped, the Vault token revoked.
    pub fn forget_session(&mut self) {
        self.session = None;
        if let Some(vault) = self.vault.take() {
            crate::every::on_stop(None);
            self.rt.block_on(vault.end());
        }
    }

    /// Identity on its own (`whoami`): `check_caller` asks STS who we are.
    pub fn identity(&mut self, plan: &Plan) -> Result<Session, Error> {
        let aws = self.settings.aws.clone();
        Ok(self.rt.block_on(identity::establish(plan, true, &aws))?)
    }

    /// Identity, fetch and render; `extra`: values decided before, the leases' and
    /// certificates' of [`Pipeline::dynamic`] (empty: none).
    pub fn fetch_and_render(
        &mut self,
        plan: &Plan,
        opts: FetchOptions,
        extra: Vec<(manifest::SecretRef, fetch::Fetched)>,
    ) -> Result<Fetched, Error> {
        let Values {
            caller_arn,
            mut fetched,
        } = self.fetch(plan, opts)?;
        for (r, value) in extra {
            fetched.insert(r, value);
        }
        let expanded = render::expand(plan, &fetched)?;
        let rendered = render::render_all(&expanded.files, &fetched)?;
        drop(fetched);
        Ok(Fetched {
            caller_arn,
            plan: expanded,
            rendered,
        })
    }

    /// Identity (only when a file reads from AWS: CI variables need none; Vault only when a
    /// file reads Vault) and fetch, reusing the sessions of an earlier call while they last.
    pub fn fetch(&mut self, plan: &Plan, opts: FetchOptions) -> Result<Values, Error> {
        let aws = &self.settings.aws;
        let cached = &mut self.session;
        let vault = &mut self.vault;
        self.rt.block_on(async {
            let needs_vault = plan.needs_vault();
            let vault_aws = needs_vault && vault_signs_in_with_aws(plan);
            if !plan.needs_aws() && !vault_aws {
                if needs_vault {
                    vault_session(vault, plan, aws, None).await?;
                } else {
                    tracing::info!("every value comes from CI variables: no AWS identity needed");
                }
                let client = vault.as_ref().map(|v| &v.client);
                let fetched =
                    fetch::fetch_sources(None, client, aws, fetched_refs(plan), opts.mode).await?;
                return Ok(Values {
                    caller_arn: None,
                    fetched,
                });
            }
            if let Some(delay) = jitter(opts.jitter) {
                tracing::info!(
                    seconds = delay.as_secs_f64(),
                    "jitter: waiting before the first AWS call"
                );
                tokio::time::sleep(delay).await;
            }
            let session = aws_session(cached, plan, aws).await?;
            let caller_arn = match (&session.arn, opts.want_caller) {
                (Some(arn), _) => Some(arn.clone()),
                (None, true) => identity::caller_arn(session).await,
                (None, false) => None,
            };
            if needs_vault {
                vault_session(vault, plan, aws, Some(session)).await?;
            }
            let client = vault.as_ref().map(|v| &v.client);
            let config = plan.needs_aws().then_some(&session.config);
            match fetch::fetch_sources(config, client, aws, fetched_refs(plan), opts.mode).await {
                Ok(fetched) => Ok(Values {
                    caller_arn,
                    fetched,
                }),
                Err(mut e) => {
                    e.looked_up_in = Some(looked_up_in(session, caller_arn.as_deref(), &e).await);
                    Err(e.into())
                }
            }
        })
    }
}

/// Whether the environment signs in to Vault through AWS IAM (`auth.method: aws`): the AWS
/// identity comes first then, for KV reads, leases and certificates alike.
fn vault_signs_in_with_aws(plan: &Plan) -> bool {
    plan.vault.as_ref().is_some_and(|v| {
        identity::vault::method(&v.auth, &|k| std::env::var(k).ok()) == manifest::VaultMethod::Aws
    })
}

/// The AWS session of an earlier call while it is fresh, else a new one (kept in `cached`).
async fn aws_session<'a>(
    cached: &'a mut Option<Session>,
    plan: &Plan,
    aws: &aws::Context,
) -> Result<&'a Session, Error> {
    if cached
        .as_ref()
        .is_some_and(|s| crate::every::needs_refresh(s.expiry, std::time::SystemTime::now()))
    {
        tracing::info!("the session nears expiry: establishing a new one");
        *cached = None;
    }
    let session = match cached.take() {
        Some(s) => s,
        None => identity::establish(plan, false, aws).await?,
    };
    Ok(&*cached.insert(session))
}

/// The references the fetch stage reads: all but leases and certificates, which
/// [`Pipeline::dynamic`] decided before.
fn fetched_refs(plan: &Plan) -> Vec<manifest::SecretRef> {
    plan.secret_refs()
        .into_iter()
        .filter(|r| {
            !matches!(
                r.kind,
                manifest::SourceKind::VaultLease | manifest::SourceKind::VaultPki
            )
        })
        .collect()
}

impl Pipeline {
    /// Leases and certificates (docs/src/vault-dynamic.md), decided against the state file's
    /// records and the live set before the fetch. `dry_run` (`plan`): nothing changes in
    /// Vault. `None` when the plan has none.
    pub fn dynamic(
        &mut self,
        plan: &Plan,
        checked: &materialize::Checked,
        dry_run: bool,
    ) -> Result<Option<Decided>, Error> {
        if !plan.has_dynamic() {
            return Ok(None);
        }
        let read;
        let state = match &checked.state {
            Some(s) => Some(s),
            None => {
                read = materialize::vault::read_state(checked)?;
                read.as_ref()
            }
        };
        let old = state.map(|s| s.vault.clone()).unwrap_or_default();
        let kept_token = materialize::vault::read_token(checked)?;
        let live = |dir: &Path| -> Option<Live> {
            let paths: Vec<std::path::PathBuf> = state?
                .files
                .iter()
                .filter(|f| f.path.parent() == Some(dir))
                .map(|f| f.path.clone())
                .collect();
            if paths.is_empty() {
                return None;
            }
            let bytes = materialize::vault::read_live(checked, &paths).ok()??;
            Some(
                paths
                    .iter()
                    .zip(bytes)
                    .filter_map(|(p, b)| Some((p.file_name()?.to_str()?.to_string(), b)))
                    .collect(),
            )
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let needs_pki = plan.files.iter().any(|f| {
            f.dynamic()
                .is_some_and(|r| r.kind == manifest::SourceKind::VaultPki)
        });
        let aws = self.settings.aws.clone();
        let vault = &mut self.vault;
        let cached = &mut self.session;
        self.rt.block_on(async {
            // A sign-in through AWS IAM needs the AWS identity first, for the leases' token
            // as for the certificates' (docs/src/vault-dynamic.md).
            let session = match !dry_run && vault_signs_in_with_aws(plan) {
                true => Some(aws_session(cached, plan, &aws).await?),
                false => None,
            };
            if needs_pki && !dry_run {
                vault_session(vault, plan, &aws, session).await?;
            }
            let pki = vault.as_ref().map(|v| v.client.clone());
            let inputs = vault_dynamic::Inputs {
                plan,
                old,
                kept_token,
                live: &live,
                now,
                dry_run,
                for_run: false,
            };
            vault_dynamic::decide(inputs, pki.as_ref(), session, aws.tuning)
                .await
                .map(Some)
                .map_err(dynamic_error)
        })
    }

    /// `credfile run`: fresh leases and certificates for the one command, under the run's own
    /// Vault token (no state, no kept token; docs/src/run.md). `None` when the plan has none.
    pub fn fresh_dynamic(&mut self, plan: &Plan) -> Result<Option<Decided>, Error> {
        if !plan.has_dynamic() {
            return Ok(None);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aws = self.settings.aws.clone();
        let vault = &mut self.vault;
        let cached = &mut self.session;
        self.rt.block_on(async {
            let session = match vault_signs_in_with_aws(plan) {
                true => Some(aws_session(cached, plan, &aws).await?),
                false => None,
            };
            vault_session(vault, plan, &aws, session).await?;
            let client = vault.as_ref().map(|v| v.client.clone());
            let inputs = vault_dynamic::Inputs {
                plan,
                old: Default::default(),
                kept_token: None,
                live: &|_| None,
                now,
                dry_run: false,
                for_run: true,
            };
            vault_dynamic::decide(inputs, client.as_ref(), session, aws.tuning)
                .await
                .map(Some)
                .map_err(dynamic_error)
        })
    }

    /// After `credfile run`'s command: revokes the leases [`Pipeline::fresh_dynamic`] took (the
    /// run's token, revoked when the pipeline ends, would take them along; a token the user
    /// supplied would not).
    pub fn revoke_run(&mut self, decided: &Decided) {
        let Some(client) = &decided.lease_client else {
            return;
        };
        self.rt.block_on(async {
            for l in &decided.records.leases {
                vault_dynamic::revoke(client, &l.lease_id).await;
            }
        });
    }

    /// `verify`: what the token kept with the leases says of itself (`None`: no token kept).
    pub fn kept_token(
        &mut self,
        plan: &Plan,
        checked: &materialize::Checked,
    ) -> Result<Option<vault_dynamic::records::KeptToken>, Error> {
        let Some(token) = materialize::vault::read_token(checked)? else {
            return Ok(None);
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let tuning = self.settings.aws.tuning;
        self.rt
            .block_on(vault_dynamic::look_up_kept(plan, &token, tuning, now))
            .map(Some)
            .map_err(dynamic_error)
    }

    /// After the hooks of an apply with leases: revokes what was retired (when every hook
    /// succeeded) and records what is left.
    pub fn finish_dynamic(
        &mut self,
        checked: &materialize::Checked,
        decided: &Decided,
        hooks_ok: bool,
    ) -> Result<(), Error> {
        let records = self.rt.block_on(vault_dynamic::finish(decided, hooks_ok));
        Ok(materialize::vault::set_records(checked, records)?)
    }

    /// `clean`: revokes the recorded leases and the kept token; the lease ids it could not
    /// revoke.
    pub fn revoke_leases(
        &mut self,
        plan: &Plan,
        checked: &materialize::Checked,
    ) -> Result<Vec<String>, Error> {
        let records = materialize::vault::read_records(checked)?.unwrap_or_default();
        let kept = materialize::vault::read_token(checked)?;
        if records.leases.is_empty() && records.retired.is_empty() && kept.is_none() {
            return Ok(Vec::new());
        }
        let aws = self.settings.aws.clone();
        let cached = &mut self.session;
        let left = self.rt.block_on(async {
            // Without the kept token, revoking signs in: through AWS IAM, with the identity.
            let session = match kept.is_none() && vault_signs_in_with_aws(plan) {
                true => aws_session(cached, plan, &aws).await.ok(),
                false => None,
            };
            vault_dynamic::revoke_all(&records, kept, plan, session, aws.tuning).await
        });
        materialize::vault::forget_token(checked)?;
        Ok(left)
    }
}

/// A lease or certificate failure as the stage it belongs to: sign-in or fetch.
fn dynamic_error(e: vault_dynamic::DynamicError) -> Error {
    match e {
        vault_dynamic::DynamicError::SignIn(e) => Error::Identity(e),
        other => Error::Fetch(other.into_fetch()),
    }
}

/// Signs in to Vault, or keeps the earlier round's token while it may be used (renewing it
/// before it expires); a token that may not be kept is revoked and a new one obtained.
async fn vault_session(
    cached: &mut Option<VaultSession>,
    plan: &Plan,
    aws: &aws::Context,
    session: Option<&Session>,
) -> Result<(), Error> {
    if let Some(current) = cached.as_mut() {
        if current.keep().await {
            return Ok(());
        }
        crate::every::on_stop(None);
        if let Some(old) = cached.take() {
            old.end().await;
        }
    }
    let signed_in = identity::vault::sign_in(plan, aws.tuning, session).await?;
    // A signal between rounds ends the process without unwinding: it revokes the token first.
    crate::every::on_stop(signed_in.revoker());
    tracing::info!(
        method = signed_in.method.name(),
        address = signed_in.client.address(),
        namespace = signed_in.client.namespace().unwrap_or(""),
        "Vault session"
    );
    *cached = Some(signed_in);
    Ok(())
}

/// `region R, account A` of a session, for a fetch error. When no guard checked the account and
/// a secret is missing (the case where the account is the likely culprit), one STS call finds
/// it, bounded to a few seconds; a network failure does not wait for another call.
async fn looked_up_in(session: &Session, arn: Option<&str>, error: &fetch::FetchError) -> String {
    let region = session
        .config
        .region()
        .map_or_else(|| "(none)".to_string(), ToString::to_string);
    let missing = error
        .failures
        .iter()
        .any(|(_, f)| f.is_code("ResourceNotFoundException") || f.is_code("ParameterNotFound"));
    let arn = match arn {
        Some(a) => Some(a.to_string()),
        None if session.account.is_none() && missing => {
            tokio::time::timeout(Duration::from_secs(5), identity::caller_arn(session))
                .await
                .ok()
                .flatten()
        }
        None => None,
    };
    let account = session
        .account
        .clone()
        .or_else(|| arn.and_then(|a| a.split(':').nth(4).map(str::to_string)))
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("region {region}, account {account}")
}

/// A uniformly random wait in `[0, max]` (`--jitter`), or `None` when there is nothing to wait.
fn jitter(max: Option<Duration>) -> Option<Duration> {
    let max = max.filter(|m| !m.is_zero())?;
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    Some(max.mul_f64(f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)))
}

/// What the audit line says, filled in as the run gets there.
#[derive(Default)]
pub struct Trail {
    pub caller_arn: Option<String>,
    /// Each file's outcome and the values it was made from (ids and versions, never a value).
    pub files: Vec<(Outcome, Vec<SourceInfo>)>,
    /// `verify`: how many drift findings.
    pub drift: Option<usize>,
    /// The fetch mode and the AWS calls made (report and audit line).
    pub fetch: Option<FetchStats>,
}

/// Runs `body` and writes the audit line (`--audit-log`) whatever the outcome.
pub fn audited(
    command: &'static str,
    plan: &Plan,
    audit_log: Option<&Path>,
    log: LogFormat,
    body: impl FnOnce(&mut Trail) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut trail = Trail::default();
    let result = body(&mut trail);
    let _held = crate::every::critical();
    let exit_code = result.as_ref().map_or_else(Error::code, |_| 0);
    let mut line = AuditLine::new(
        command,
        plan,
        trail.caller_arn.as_deref(),
        &trail.files,
        exit_code,
    );
    line.drift = trail.drift;
    line.fetch = trail.fetch;
    line.write(audit_log, log);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_bound() {
        assert_eq!(jitter(None), None);
        assert_eq!(jitter(Some(Duration::ZERO)), None);
        let max = Duration::from_millis(1500);
        let waits: Vec<Duration> = (0..200).map(|_| jitter(Some(max)).unwrap()).collect();
        assert!(waits.iter().all(|w| *w <= max), "{waits:?}");
        // Spread over the range, not one fixed value.
        assert!(waits.iter().any(|w| *w < max / 2) && waits.iter().any(|w| *w > max / 2));
    }
}
