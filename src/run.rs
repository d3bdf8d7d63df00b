//! The flow of a run, stage by stage (see the README): manifest -> preflight -> identity ->
//! fetch -> render -> materialize -> hooks -> report (+ audit line). Nothing touches the target
//! until every secret is fetched and every file is rendered.
//!
//! The governance commands reuse the same stages: `lint` and `policy` stop after the manifest;
//! `audit reuse` runs manifest -> identity -> fetch for each environment and compares values.

use std::path::Path;
use std::time::Duration;

use crate::cli::{
    AuditCommand, CleanArgs, Cli, Command, PolicyArgs, ReuseArgs, RunArgs, ValidateArgs,
    VerifyArgs, WhoamiArgs,
};
use crate::error::Error;
use crate::hooks::{self, HookError, HookResult, HookStatus};
use crate::manifest::{ManifestError, Plan};
use crate::materialize::Outcome;
use crate::render::{Rendered, SourceInfo};
use crate::report::Audit;
use crate::{audit, fetch, guard, identity, lint, manifest, materialize, policy, render, report};

pub fn run(cli: Cli) -> Result<(), Error> {
    crate::aws::configure(cli.tuning());
    match cli.command {
        Command::Apply(args) => deploy(&args, false),
        Command::Plan(args) => deploy(&args, true),
        Command::Validate(args) => validate(&args),
        Command::Whoami(args) => whoami(&args),
        Command::Verify(args) => verify(&args),
        Command::Clean(args) => clean(&args),
        Command::Lint(args) => lint::command(&args).map_err(|e| match e {
            lint::LintCommandError::Manifest(e) => e.into(),
            lint::LintCommandError::Failed(e) => e.into(),
        }),
        Command::Policy(args) => print_policy(&args),
        Command::Audit(args) => match args.command {
            AuditCommand::Reuse(args) => audit_reuse(&args),
        },
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

fn whoami(args: &WhoamiArgs) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let plan = manifest.resolve(&args.env, Some(std::path::Path::new("/")))?;
    let session = runtime()?.block_on(identity::establish(&plan, true))?;
    report::print_identity(&plan, &session, args.output);
    Ok(())
}

/// What the audit line needs, filled in as the run gets there.
#[derive(Default)]
struct Trail {
    caller_arn: Option<String>,
    files: Vec<(Outcome, Vec<SourceInfo>)>,
    drift: Option<usize>,
}

/// Runs `body` and writes the audit line whatever the outcome.
fn audited(
    command: &'static str,
    plan: &Plan,
    audit_log: Option<&Path>,
    body: impl FnOnce(&mut Trail) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut trail = Trail::default();
    let result = body(&mut trail);
    Audit {
        command,
        plan: Some(plan),
        env: &plan.env,
        caller_arn: trail.caller_arn.as_deref(),
        files: &trail.files,
        drift: trail.drift,
        exit_code: result.as_ref().map_or_else(Error::code, |_| 0),
    }
    .write(audit_log);
    result
}

/// Identity, fetch and render: every file's bytes in memory, or an error. `want_caller`: find
/// out the caller's ARN for the audit line even when no account guard asked for it. Returns the
/// plan with its `keys: all` and `parameters_path:` entries expanded into files, which is what
/// `rendered` follows.
fn fetch_and_render(
    plan: &Plan,
    want_caller: bool,
    jitter_max: Option<Duration>,
) -> Result<(Option<String>, Plan, Vec<Rendered>), Error> {
    let (arn, fetched) = runtime()?.block_on(fetch_plan(plan, want_caller, jitter_max))?;
    let expanded = render::expand(plan, &fetched)?;
    let rendered = render::render_all(&expanded.files, &fetched)?;
    drop(fetched);
    Ok((arn, expanded, rendered))
}

/// Identity (only when a file reads from AWS: CI variables need none) and fetch.
async fn fetch_plan(
    plan: &Plan,
    want_caller: bool,
    jitter_max: Option<Duration>,
) -> Result<(Option<String>, fetch::FetchSet), Error> {
    if !plan.needs_aws() {
        tracing::info!("every value comes from CI variables: no AWS identity needed");
        return Ok((None, fetch::fetch_all(None, plan.secret_refs()).await?));
    }
    if let Some(delay) = jitter(jitter_max) {
        tracing::info!(
            seconds = delay.as_secs_f64(),
            "jitter: waiting before the first AWS call"
        );
        tokio::time::sleep(delay).await;
    }
    let session = identity::establish(plan, false).await?;
    let arn = match (&session.arn, want_caller) {
        (Some(arn), _) => Some(arn.clone()),
        (None, true) => identity::caller_arn(&session).await,
        (None, false) => None,
    };
    let fetched = fetch::fetch_all(Some(&session.config), plan.secret_refs()).await?;
    Ok((arn, fetched))
}

fn deploy(args: &RunArgs, dry_run: bool) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    let command = if dry_run { "plan" } else { "apply" };
    audited(command, &plan, args.audit_log.as_deref(), |trail| {
        for warning in guard::check(&plan)? {
            tracing::warn!("{warning}");
        }
        let mut checked = materialize::preflight(&plan.without_expansions())?;
        let (arn, expanded, rendered) =
            fetch_and_render(&plan, args.audit_log.is_some(), args.jitter)?;
        trail.caller_arn = arn;
        if plan
            .files
            .iter()
            .any(|f| matches!(f.content, manifest::Content::Expand { .. }))
        {
            // The expanded files are known now; check their destinations before writing.
            checked = materialize::preflight(&expanded)?;
        }
        let plan = expanded;

        let applied = materialize::write(&checked, &rendered, dry_run)?;
        let selected = hooks::select(&plan, &applied);
        let results: Vec<HookResult> = if dry_run {
            selected
                .into_iter()
                .map(|hook| HookResult {
                    hook,
                    status: HookStatus::Planned,
                })
                .collect()
        } else {
            let results = hooks::run(&plan, selected, Duration::from_secs(args.hook_timeout));
            // Run (or failed, and said so): no longer owed to the next run.
            if let Err(e) = materialize::hooks_ran(&checked) {
                tracing::warn!(error = %e, "cannot clear the record of pending hooks; the next run will run them again");
            }
            results
        };
        trail.files = applied
            .outcomes
            .into_iter()
            .zip(rendered.into_iter().map(|r| r.sources))
            .chain(applied.removed.into_iter().map(|o| (o, Vec::new())))
            .collect();
        report::Report {
            command,
            dry_run,
            plan: &plan,
            caller_arn: trail.caller_arn.as_deref(),
            files: trail.files.clone(),
            hooks: &results,
        }
        .print(args.output);
        let failed: Vec<HookResult> = results.into_iter().filter(|r| r.status.failed()).collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(HookError { failed }.into())
        }
    })
}

fn verify(args: &VerifyArgs) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    audited("verify", &plan, args.audit_log.as_deref(), |trail| {
        let (checked, rendered) = if args.offline {
            let mut checked = materialize::resolve(&plan.without_expansions())?;
            checked.open_sets = plan
                .files
                .iter()
                .filter(|f| matches!(f.content, manifest::Content::Expand { .. }))
                .map(|f| f.path.clone())
                .collect();
            (checked, None)
        } else {
            let (arn, expanded, rendered) =
                fetch_and_render(&plan, args.audit_log.is_some(), None)?;
            trail.caller_arn = arn;
            (materialize::resolve(&expanded)?, Some(rendered))
        };
        let drift = materialize::verify(&checked, rendered.as_deref())?;
        trail.drift = Some(drift.len());
        report::VerifyReport {
            plan: &plan,
            offline: args.offline,
            caller_arn: trail.caller_arn.as_deref(),
            drift: &drift,
        }
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

fn clean(args: &CleanArgs) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    audited("clean", &plan, args.audit_log.as_deref(), |_| {
        let checked = materialize::resolve(&plan)?;
        let done = materialize::clean(&checked)?;
        let mut out = format!(
            "credfile clean: app {}, environment {}, root {}\n",
            plan.app,
            plan.env,
            plan.root.display()
        );
        if done.nothing_recorded {
            out.push_str("nothing to remove: no credfile state in this root\n");
        }
        for p in &done.removed {
            out.push_str(&format!("removed  {}\n", p.display()));
        }
        for (p, why) in &done.kept {
            out.push_str(&format!("kept     {}: {why}\n", p.display()));
        }
        out.push_str(&format!(
            "{} removed, {} kept\n",
            done.removed.len(),
            done.kept.len()
        ));
        let _ = std::io::Write::write_all(
            &mut std::io::stdout().lock(),
            crate::terminal::sanitize(&out).as_bytes(),
        );
        Ok(())
    })
}

/// A uniformly random wait in `[0, max]` (`--jitter`), or `None` when there is nothing to wait.
fn jitter(max: Option<Duration>) -> Option<Duration> {
    let max = max.filter(|m| !m.is_zero())?;
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    Some(max.mul_f64(f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)))
}

fn validate(args: &ValidateArgs) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let names = match &args.env {
        Some(env) => vec![env.clone()],
        None => manifest.environment_names(),
    };
    let mut summary = Vec::new();
    for name in &names {
        // A placeholder root: validation checks the manifest, not the host.
        let plan = manifest.resolve(name, Some(std::path::Path::new("/")))?;
        summary.push(format!("{name} ({} files)", plan.files.len()));
    }
    println!(
        "{}: valid; environments: {}",
        args.manifest.manifest.display(),
        summary.join(", ")
    );
    Ok(())
}

/// `credfile policy`: offline, from the manifest alone.
fn print_policy(args: &PolicyArgs) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let generated = policy::generate(&manifest, &args.env, args.trust.as_deref())?;
    if generated.wildcard_account {
        tracing::warn!(
            env = %args.env,
            "no `account` or `identity.role_arn`: secret ARNs use `*` for the account; pin `account` to narrow them"
        );
    }
    print!("{}", generated.to_text());
    Ok(())
}

/// `credfile audit reuse`: every manifest that defines an environment is fetched in it with that
/// environment's identity, and the values are compared by keyed fingerprint.
fn audit_reuse(args: &ReuseArgs) -> Result<(), Error> {
    let mut manifests = Vec::new();
    for path in &args.manifests.manifests {
        if !manifests
            .iter()
            .any(|m: &manifest::Manifest| m.file == *path)
        {
            manifests.push(manifest::load(path)?);
        }
    }
    let mut envs: Vec<String> = Vec::new();
    for env in &args.envs {
        if !manifests
            .iter()
            .any(|m| m.environment_names().contains(env))
        {
            let mut known: Vec<String> = manifests
                .iter()
                .flat_map(|m| m.environment_names())
                .collect();
            known.sort();
            known.dedup();
            return Err(ManifestError::UnknownEnvironment {
                file: manifests[0].file.clone(),
                env: env.clone(),
                known,
            }
            .into());
        }
        if !envs.contains(env) {
            envs.push(env.clone());
        }
    }
    let fingerprinter = audit::Fingerprinter::new()?;
    let units = runtime()?.block_on(async {
        let mut units = Vec::new();
        for env in &envs {
            for m in manifests
                .iter()
                .filter(|m| m.environment_names().contains(env))
            {
                let plan = m.resolve(env, Some(std::path::Path::new("/")))?;
                let (_, fetched) = fetch_plan(&plan, false, None).await?;
                let plan = render::expand(&plan, &fetched)?;
                units.extend(audit::fingerprint_plan(&plan, &fetched, &fingerprinter)?);
                tracing::info!(app = %plan.app, env = %plan.env, "fingerprinted");
            }
        }
        Ok::<_, Error>(units)
    })?;
    let report = audit::Report::new(envs, units);
    report.print(args.output);
    if report.protected_pairs() > 0 {
        return Err(audit::AuditError::Shared {
            pairs: report.pairs.len(),
            protected: report.protected_pairs(),
        }
        .into());
    }
    Ok(())
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
