//! `credfile apply` (and its rounds, `--every`): every stage of the pipeline, then write what
//! changed and run the hooks it owes. `plan` is one round that writes nothing.

use std::time::Duration;

use crate::cli::RunArgs;
use crate::error::Error;
use crate::format::Output;
use crate::hooks::{self, HookError, HookResult, HookStatus};
use crate::manifest::{self, Plan};
use crate::output::{self, FetchStats};
use crate::pipeline::{self, FetchOptions, Pipeline, Settings};
use crate::{guard, materialize, sudo};

pub fn run(args: &RunArgs, settings: &Settings) -> Result<(), Error> {
    let plan = args.target().plan()?;
    let mut pipeline = Pipeline::new(settings)?;
    let Some(every) = args.every else {
        return round(args, &plan, Round::default(), &mut pipeline);
    };
    crate::every::catch_signals().map_err(Error::Runtime)?;
    for number in 1u64.. {
        let started = std::time::Instant::now();
        pipeline.settings.aws.take_calls();
        let this = Round {
            number: Some(number),
            ..Round::default()
        };
        match round(args, &plan, this, &mut pipeline) {
            Ok(()) => tracing::info!(round = number, "round done"),
            Err(e) => {
                // The last good set stays; a new session next time, in case this one is why.
                pipeline.forget_session();
                let _held = crate::every::critical();
                eprintln!("{}", e.render());
                tracing::warn!(
                    round = number,
                    exit_code = e.code(),
                    "round failed; the last good set stays in place"
                );
                if args.output == Output::Json {
                    println!("{}", output::RoundFailed::new(&plan, number, &e).to_json());
                }
            }
        }
        let next = every.saturating_sub(started.elapsed());
        tracing::info!(seconds = next.as_secs_f64(), "next round");
        std::thread::sleep(next);
    }
    Ok(())
}

/// Which round this is: `plan` (a dry run, with `--detailed-exitcode` a pending change is
/// [`Error::ChangesPending`]) or apply, once or round `number` of `--every`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Round {
    pub dry_run: bool,
    pub detailed: bool,
    pub number: Option<u64>,
}

/// One apply (or plan), with its report and audit line.
pub fn round(
    args: &RunArgs,
    plan: &Plan,
    round: Round,
    pipeline: &mut Pipeline,
) -> Result<(), Error> {
    let command = if round.dry_run { "plan" } else { "apply" };
    sudo::check_hooks(plan)?;
    let log = pipeline.settings.log_format;
    pipeline::audited(command, plan, args.audit_log.as_deref(), log, |trail| {
        for warning in guard::check(plan)? {
            tracing::warn!("{warning}");
        }
        // systemd-creds calls are bounded like AWS calls (docs/src/systemd-creds.md).
        let creds_timeout = pipeline.settings.aws.tuning.call_timeout;
        let mut checked = materialize::preflight(&plan.without_expansions(), creds_timeout)?;
        // Leases and certificates: kept, renewed or replaced against the state file's records
        // (docs/src/vault-dynamic.md).
        let mut decided = pipeline.dynamic(plan, &checked, round.dry_run)?;
        let extra = decided
            .as_mut()
            .map(|d| std::mem::take(&mut d.values))
            .unwrap_or_default();
        let fetched = pipeline.fetch_and_render(
            plan,
            FetchOptions {
                mode: args.fetch,
                jitter: args.jitter,
                want_caller: args.audit_log.is_some(),
            },
            extra,
        );
        trail.fetch = Some(FetchStats::new(args.fetch, pipeline.settings.aws.calls()));
        let fetched = fetched?;
        trail.caller_arn = fetched.caller_arn;
        if plan
            .files
            .iter()
            .any(|f| matches!(f.content, manifest::Content::Expand { .. }))
        {
            // The expanded files are known now; check their destinations before writing.
            checked = materialize::preflight(&fetched.plan, creds_timeout)?;
        }
        let plan = &fetched.plan;
        let rendered = fetched.rendered;
        checked.vault = decided.as_ref().map(|d| d.records.clone());

        let applied = {
            let _held = crate::every::critical();
            let applied = materialize::write(&checked, &rendered, round.dry_run)?;
            // The token the new leases belong to, kept next to the state file.
            if let Some(token) = decided.as_ref().and_then(|d| d.keep_token.as_ref())
                && !round.dry_run
            {
                materialize::vault::keep_token(&checked, token)?;
            }
            applied
        };
        let selected = hooks::select(plan, &applied);
        let results: Vec<HookResult> = if round.dry_run {
            selected
                .into_iter()
                .map(|hook| HookResult {
                    hook,
                    status: HookStatus::Planned,
                })
                .collect()
        } else {
            let results = hooks::run(plan, selected, Duration::from_secs(args.hook_timeout));
            // A hook that ran is no longer owed; one that failed stays owed to the next run
            // (which runs it even when nothing changed, and exits 8 until it succeeds).
            let owed = hooks::still_owed(plan, &results);
            let hooks_ok = owed.is_empty() && !results.iter().any(|r| r.status.failed());
            if let Err(e) = materialize::hooks_ran(&checked, owed) {
                tracing::warn!(error = %e, "cannot clear the record of pending hooks; the next run will run them again");
            }
            // Old leases are revoked only once the new set's hooks reloaded its consumers.
            if let Some(d) = &decided
                && let Err(e) = pipeline.finish_dynamic(&checked, d, hooks_ok)
            {
                tracing::warn!(error = %e, "cannot record the revoked leases; the next apply or clean revokes them");
            }
            results
        };
        trail.files = applied
            .outcomes
            .into_iter()
            .zip(rendered.into_iter().map(|r| r.sources))
            .chain(applied.removed.into_iter().map(|o| (o, Vec::new())))
            .collect();
        let held = crate::every::critical();
        let mut report = output::RunReport::new(
            plan,
            round.dry_run,
            trail.caller_arn.as_deref(),
            &trail.files,
            &results,
        );
        report.fetch = trail.fetch;
        report.round = round.number;
        report.print(args.output);
        drop(held);
        let hooks_owed = results.len();
        let failed: Vec<HookResult> = results.into_iter().filter(|r| r.status.failed()).collect();
        let files_changing = trail
            .files
            .iter()
            .filter(|(o, _)| o.status.changed())
            .count();
        if !failed.is_empty() {
            Err(HookError { failed }.into())
        } else if round.detailed && files_changing + hooks_owed > 0 {
            Err(Error::ChangesPending {
                files: files_changing,
                hooks: hooks_owed,
                env: plan.env.clone(),
            })
        } else {
            Ok(())
        }
    })
}
