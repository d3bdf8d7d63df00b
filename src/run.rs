//! The flow of a run, stage by stage (see the README): manifest -> preflight -> identity ->
//! fetch -> render -> materialize -> hooks -> report (+ audit line). Nothing touches the target
//! until every secret is fetched and every file is rendered.

use std::path::Path;
use std::time::Duration;

use crate::cli::{CleanArgs, Cli, Command, RunArgs, ValidateArgs, VerifyArgs};
use crate::error::Error;
use crate::hooks::{self, HookError, HookResult, HookStatus};
use crate::manifest::Plan;
use crate::materialize::Outcome;
use crate::render::{Rendered, SourceInfo};
use crate::report::Audit;
use crate::{fetch, identity, manifest, materialize, render, report};

pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Apply(args) => deploy(&args, false),
        Command::Plan(args) => deploy(&args, true),
        Command::Validate(args) => validate(&args),
        Command::Verify(args) => verify(&args),
        Command::Clean(args) => clean(&args),
    }
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
/// out the caller's ARN for the audit line even when no account guard asked for it.
fn fetch_and_render(
    plan: &Plan,
    want_caller: bool,
) -> Result<(Option<String>, Vec<Rendered>), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let (arn, fetched) = runtime.block_on(async {
        let session = identity::establish(plan).await?;
        let arn = match (&session.arn, want_caller) {
            (Some(arn), _) => Some(arn.clone()),
            (None, true) => identity::caller_arn(&session).await,
            (None, false) => None,
        };
        let client = aws_sdk_secretsmanager::Client::new(&session.config);
        let fetched = fetch::fetch_all(&client, plan.secret_refs()).await?;
        Ok::<_, Error>((arn, fetched))
    })?;
    let rendered = render::render_all(&plan.files, &fetched)?;
    drop(fetched);
    Ok((arn, rendered))
}

fn deploy(args: &RunArgs, dry_run: bool) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    let command = if dry_run { "plan" } else { "apply" };
    audited(command, &plan, args.audit_log.as_deref(), |trail| {
        let checked = materialize::preflight(&plan)?;
        let (arn, rendered) = fetch_and_render(&plan, args.audit_log.is_some())?;
        trail.caller_arn = arn;

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
            hooks::run(&plan, selected, Duration::from_secs(args.hook_timeout))
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
        let checked = materialize::resolve(&plan)?;
        let rendered = if args.offline {
            None
        } else {
            let (arn, rendered) = fetch_and_render(&plan, args.audit_log.is_some())?;
            trail.caller_arn = arn;
            Some(rendered)
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
            crate::error::sanitize(&out).as_bytes(),
        );
        Ok(())
    })
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
