//! `credfile verify`: drift between the host and what the manifest and the secrets produce;
//! `--offline` compares metadata only, with no AWS call.

use crate::cli::VerifyArgs;
use crate::error::Error;
use crate::fetch::vault_dynamic::records::{KeptToken, VaultRecords};
use crate::pipeline::{self, FetchOptions, Pipeline, Settings};
use crate::{materialize, output};

pub fn run(args: &VerifyArgs, settings: &Settings) -> Result<(), Error> {
    let plan = args.target().plan()?;
    let log = settings.log_format;
    pipeline::audited("verify", &plan, args.audit_log.as_deref(), log, |trail| {
        let (checked, rendered) = if args.offline {
            (materialize::resolve_offline(&plan)?, None)
        } else {
            let mut pipeline = Pipeline::new(settings)?;
            // Leases and certificates: compared as they are live, nothing renewed or issued;
            // those that expired or are due are named (docs/src/vault-dynamic.md).
            let fixed = materialize::resolve(&plan.without_expansions())?;
            let mut decided = pipeline.dynamic(&plan, &fixed, true)?;
            if let Some(d) = &decided {
                warn_due(&d.records);
                if let Some(token) = pipeline.kept_token(&plan, &fixed)? {
                    warn_token(&token, &d.records);
                }
            }
            let extra = decided
                .as_mut()
                .map(|d| std::mem::take(&mut d.values))
                .unwrap_or_default();
            let fetched = pipeline.fetch_and_render(
                &plan,
                FetchOptions {
                    want_caller: args.audit_log.is_some(),
                    ..FetchOptions::default()
                },
                extra,
            )?;
            trail.caller_arn = fetched.caller_arn;
            (materialize::resolve(&fetched.plan)?, Some(fetched.rendered))
        };
        let mut checked = checked;
        // systemd-creds calls are bounded like AWS calls (docs/src/systemd-creds.md).
        checked.creds_timeout = settings.aws.tuning.call_timeout;
        let verified = materialize::verify(&checked, rendered.as_deref())?;
        let drift = verified.drift;
        trail.drift = Some(drift.len());
        output::VerifyReport::new(
            &plan,
            args.offline,
            trail.caller_arn.as_deref(),
            &drift,
            verified.files,
            &verified.not_checked,
        )
        .print(args.output);
        if drift.is_empty() {
            Ok(())
        } else {
            Err(Error::Drift {
                count: drift.len(),
                env: plan.env.clone(),
            })
        }
    })
}

/// Leases that expired, or whose next apply must replace them (less than a third of their TTL
/// left), and certificates past their renewal point: warned about, by lease id or serial.
fn warn_due(records: &VaultRecords) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for l in &records.leases {
        if l.lease_id.is_empty() {
            continue;
        }
        if l.ends_before(now) {
            tracing::warn!(path = %l.path.display(), lease_id = %l.lease_id, "the lease has expired: its credentials no longer work; apply to get new ones");
        } else if l.ends_before(now + l.ttl / 3) {
            tracing::warn!(path = %l.path.display(), lease_id = %l.lease_id, seconds_left = l.expires_at - now, "the lease ends soon: apply renews or replaces it");
        }
    }
    for c in &records.certificates {
        if !c.serial.is_empty() && c.expires_at <= now {
            tracing::warn!(path = %c.path.display(), serial = %c.serial, "the certificate has expired; apply issues a new one");
        }
    }
}

/// The token the leases belong to: Vault revokes them with it, so a token that is gone, or
/// whose end (as far as its lookup says) comes before a lease's, is warned about.
fn warn_token(token: &KeptToken, records: &VaultRecords) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match token {
        KeptToken::Gone => tracing::warn!(
            "the kept Vault token is gone (expired or revoked): Vault revoked its leases with it, so their credentials no longer work; apply signs in anew and replaces them"
        ),
        KeptToken::Lives { ends_at, why } => {
            let outlived = token.outlived(&records.leases);
            for l in &outlived {
                tracing::warn!(
                    path = %l.path.display(),
                    lease_id = %l.lease_id,
                    token_seconds_left = ends_at.unwrap_or(now).saturating_sub(now),
                    lease_seconds_left = l.expires_at.saturating_sub(now),
                    "the kept Vault token ends before the lease ({why}): Vault revokes the lease with it, so its credentials stop working early; give the sign-in role a token_max_ttl (and token_explicit_max_ttl) above the leases' TTL plus the time between applies"
                );
            }
            if outlived.is_empty() {
                match ends_at {
                    Some(end) => tracing::info!(
                        token_seconds_left = end.saturating_sub(now),
                        "the kept Vault token lives until after its leases end"
                    ),
                    None => tracing::info!(
                        "the kept Vault token lives until its TTL, renewed by each apply (its lookup shows no maximum)"
                    ),
                }
            }
        }
    }
}
