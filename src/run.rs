//! The flow of a run, stage by stage (see docs/src/flow.md): manifest -> preflight -> identity ->
//! fetch -> render -> materialize -> hooks -> report (+ audit line). Nothing touches the target
//! until every secret is fetched and every file is rendered.
//!
//! The governance commands reuse the same stages: `lint` and `policy` stop after the manifest;
//! `audit reuse` runs manifest -> identity -> fetch for each environment and compares values.

use std::path::Path;
use std::time::Duration;

use crate::cli::{
    AuditCommand, CleanArgs, Cli, Command, PolicyArgs, PolicyDocument, ReuseArgs, RunArgs,
    ValidateArgs, VerifyArgs, WhoamiArgs,
};
use crate::error::Error;
use crate::hooks::{self, HookError, HookResult, HookStatus};
use crate::manifest::{ManifestError, Plan};
use crate::materialize::Outcome;
use crate::render::{Rendered, SourceInfo};
use crate::report::Audit;
use crate::{
    audit, fetch, guard, identity, lint, manifest, materialize, policy, render, report, sudo,
};

pub fn run(cli: Cli) -> Result<(), Error> {
    crate::aws::configure(cli.tuning());
    match cli.command {
        Command::Apply(args) => deploy(&args, false, false),
        Command::Plan(args) if args.run.every.is_some() => {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    "--every repeats `apply`; `plan` runs once",
                )
                .exit()
        }
        Command::Plan(args) => deploy(&args.run, true, args.detailed_exitcode),
        Command::Validate(args) => validate(&args),
        Command::Whoami(args) => whoami(&args),
        Command::Verify(args) => verify(&args),
        Command::Clean(args) => clean(&args),
        Command::Lint(args) => {
            for manifest in &args.manifests.manifests {
                sudo::check_invocation(manifest, &[])?;
            }
            if args.format.is_some() && args.output.is_none() {
                tracing::warn!(
                    "lint --format (CREDFILE_LINT_FORMAT) is deprecated: use --output, as every command does"
                );
            }
            lint::command(&args.manifests.manifests, args.output(), &sudo::Fence).map_err(|e| {
                match e {
                    lint::LintCommandError::Manifest(e) => e.into(),
                    lint::LintCommandError::Failed(e) => e.into(),
                }
            })
        }
        Command::Policy(args) => print_policy(&args),
        Command::Audit(args) => match args.command {
            AuditCommand::Reuse(args) => audit_reuse(&args),
        },
        // Printed by main (cli::print_generated) before any stage runs.
        Command::Completions(_) | Command::Man => Ok(()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

fn whoami(args: &WhoamiArgs) -> Result<(), Error> {
    sudo::check_invocation(&args.manifest.manifest, &[])?;
    let manifest = manifest::load(&args.manifest.manifest, &sudo::Fence)?;
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
    /// The fetch mode and the AWS calls made (report and audit line).
    fetch: Option<serde_json::Value>,
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
    let _held = crate::every::critical();
    Audit {
        command,
        plan: Some(plan),
        env: &plan.env,
        caller_arn: trail.caller_arn.as_deref(),
        files: &trail.files,
        drift: trail.drift,
        exit_code: result.as_ref().map_or_else(Error::code, |_| 0),
        fetch: trail.fetch.as_ref(),
    }
    .write(audit_log);
    result
}

/// What rounds of `apply --every` share: one runtime, and the session while it is fresh.
pub struct Rounds {
    rt: tokio::runtime::Runtime,
    session: Option<identity::Session>,
}

impl Rounds {
    fn new() -> Result<Self, Error> {
        Ok(Rounds {
            rt: runtime()?,
            session: None,
        })
    }
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
    fetch_and_render_in(
        &mut Rounds::new()?,
        plan,
        want_caller,
        jitter_max,
        fetch::FetchMode::Auto,
    )
}

/// [`fetch_and_render`] in a runtime that outlives the call, reusing its session until it
/// nears expiry.
fn fetch_and_render_in(
    rounds: &mut Rounds,
    plan: &Plan,
    want_caller: bool,
    jitter_max: Option<Duration>,
    mode: fetch::FetchMode,
) -> Result<(Option<String>, Plan, Vec<Rendered>), Error> {
    let (arn, fetched) = rounds.rt.block_on(fetch_plan(
        plan,
        &mut rounds.session,
        want_caller,
        jitter_max,
        mode,
    ))?;
    let expanded = render::expand(plan, &fetched)?;
    let rendered = render::render_all(&expanded.files, &fetched)?;
    drop(fetched);
    Ok((arn, expanded, rendered))
}

/// Identity (only when a file reads from AWS: CI variables need none) and fetch. `cached`: the
/// session of an earlier round, reused until it nears expiry.
async fn fetch_plan(
    plan: &Plan,
    cached: &mut Option<identity::Session>,
    want_caller: bool,
    jitter_max: Option<Duration>,
    mode: fetch::FetchMode,
) -> Result<(Option<String>, fetch::FetchSet), Error> {
    if !plan.needs_aws() {
        tracing::info!("every value comes from CI variables: no AWS identity needed");
        return Ok((
            None,
            fetch::fetch_all(None, plan.secret_refs(), mode).await?,
        ));
    }
    if let Some(delay) = jitter(jitter_max) {
        tracing::info!(
            seconds = delay.as_secs_f64(),
            "jitter: waiting before the first AWS call"
        );
        tokio::time::sleep(delay).await;
    }
    if cached
        .as_ref()
        .is_some_and(|s| crate::every::needs_refresh(s.expiry, std::time::SystemTime::now()))
    {
        tracing::info!("the session nears expiry: establishing a new one");
        *cached = None;
    }
    let session = match cached.take() {
        Some(s) => s,
        None => identity::establish(plan, false).await?,
    };
    let session = &*cached.insert(session);
    let arn = match (&session.arn, want_caller) {
        (Some(arn), _) => Some(arn.clone()),
        (None, true) => identity::caller_arn(session).await,
        (None, false) => None,
    };
    match fetch::fetch_all(Some(&session.config), plan.secret_refs(), mode).await {
        Ok(fetched) => Ok((arn, fetched)),
        Err(mut e) => {
            e.looked_up_in = Some(looked_up_in(session, arn.as_deref(), &e).await);
            Err(e.into())
        }
    }
}

/// `region R, account A` of a session, for a fetch error. When no guard checked the account and
/// a secret is missing (the case where the account is the likely culprit), one STS call finds
/// it, bounded to a few seconds; a network failure does not wait for another call.
async fn looked_up_in(
    session: &identity::Session,
    arn: Option<&str>,
    error: &fetch::FetchError,
) -> String {
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

/// `detailed`: `plan --detailed-exitcode`, a pending change is [`Error::ChangesPending`].
fn deploy(args: &RunArgs, dry_run: bool, detailed: bool) -> Result<(), Error> {
    sudo::check_invocation(
        &args.manifest.manifest,
        &[
            ("--root", args.root.is_some()),
            ("--audit-log", args.audit_log.is_some()),
        ],
    )?;
    let manifest = manifest::load(&args.manifest.manifest, &sudo::Fence)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    let Some(every) = args.every.filter(|_| !dry_run) else {
        return deploy_round(args, &plan, dry_run, detailed, &mut Rounds::new()?, None);
    };
    crate::every::catch_signals().map_err(Error::Runtime)?;
    let mut rounds = Rounds::new()?;
    for round in 1u64.. {
        let started = std::time::Instant::now();
        crate::aws::take_calls();
        match deploy_round(args, &plan, false, false, &mut rounds, Some(round)) {
            Ok(()) => tracing::info!(round, "round done"),
            Err(e) => {
                // The last good set stays; a new session next time, in case this one is why.
                rounds.session = None;
                let _held = crate::every::critical();
                eprintln!("{}", e.render());
                tracing::warn!(
                    round,
                    exit_code = e.code(),
                    "round failed; the last good set stays in place"
                );
                if args.output == crate::cli::Output::Json {
                    println!("{}", report::round_failed(&plan, round, &e));
                }
            }
        }
        let next = every.saturating_sub(started.elapsed());
        tracing::info!(seconds = next.as_secs_f64(), "next round");
        std::thread::sleep(next);
    }
    Ok(())
}

/// One apply (or plan), with its report and audit line.
fn deploy_round(
    args: &RunArgs,
    plan: &Plan,
    dry_run: bool,
    detailed: bool,
    rounds: &mut Rounds,
    round: Option<u64>,
) -> Result<(), Error> {
    let command = if dry_run { "plan" } else { "apply" };
    sudo::check_hooks(plan)?;
    audited(command, plan, args.audit_log.as_deref(), |trail| {
        for warning in guard::check(plan)? {
            tracing::warn!("{warning}");
        }
        let mut checked = materialize::preflight(&plan.without_expansions())?;
        let fetched = fetch_and_render_in(
            rounds,
            plan,
            args.audit_log.is_some(),
            args.jitter,
            args.fetch,
        );
        trail.fetch = Some(serde_json::json!({
            "mode": args.fetch.as_str(),
            "calls": crate::aws::calls().to_json(),
        }));
        let (arn, expanded, rendered) = fetched?;
        trail.caller_arn = arn;
        if plan
            .files
            .iter()
            .any(|f| matches!(f.content, manifest::Content::Expand { .. }))
        {
            // The expanded files are known now; check their destinations before writing.
            checked = materialize::preflight(&expanded)?;
        }
        let plan = &expanded;

        let applied = {
            let _held = crate::every::critical();
            materialize::write(&checked, &rendered, dry_run)?
        };
        let selected = hooks::select(plan, &applied);
        let results: Vec<HookResult> = if dry_run {
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
            if let Err(e) = materialize::hooks_ran(&checked, hooks::still_owed(plan, &results)) {
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
        let _held = crate::every::critical();
        report::Report {
            command,
            dry_run,
            plan,
            caller_arn: trail.caller_arn.as_deref(),
            files: trail.files.clone(),
            hooks: &results,
            fetch: trail.fetch.clone(),
            round,
        }
        .print(args.output);
        drop(_held);
        let hooks_owed = results.len();
        let failed: Vec<HookResult> = results.into_iter().filter(|r| r.status.failed()).collect();
        let files_changing = trail
            .files
            .iter()
            .filter(|(o, _)| o.status.changed())
            .count();
        if !failed.is_empty() {
            Err(HookError { failed }.into())
        } else if detailed && files_changing + hooks_owed > 0 {
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

fn verify(args: &VerifyArgs) -> Result<(), Error> {
    sudo::check_invocation(
        &args.manifest.manifest,
        &[
            ("--root", args.root.is_some()),
            ("--audit-log", args.audit_log.is_some()),
        ],
    )?;
    let manifest = manifest::load(&args.manifest.manifest, &sudo::Fence)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    audited("verify", &plan, args.audit_log.as_deref(), |trail| {
        let (checked, rendered) = if args.offline {
            (materialize::resolve_offline(&plan)?, None)
        } else {
            let (arn, expanded, rendered) =
                fetch_and_render(&plan, args.audit_log.is_some(), None)?;
            trail.caller_arn = arn;
            (materialize::resolve(&expanded)?, Some(rendered))
        };
        let verified = materialize::verify(&checked, rendered.as_deref())?;
        let drift = verified.drift;
        trail.drift = Some(drift.len());
        report::VerifyReport {
            plan: &plan,
            offline: args.offline,
            caller_arn: trail.caller_arn.as_deref(),
            drift: &drift,
            files_checked: verified.files,
            not_checked: &verified.not_checked,
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
    sudo::check_invocation(
        &args.manifest.manifest,
        &[
            ("--root", args.root.is_some()),
            ("--audit-log", args.audit_log.is_some()),
        ],
    )?;
    let manifest = manifest::load(&args.manifest.manifest, &sudo::Fence)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    audited("clean", &plan, args.audit_log.as_deref(), |_| {
        let checked = materialize::resolve(&plan)?;
        let print = |text: &str| {
            let _ = std::io::Write::write_all(
                &mut std::io::stdout().lock(),
                crate::terminal::sanitize_lines(text).as_bytes(),
            );
        };
        // Production by hand: a protected environment is cleaned only when someone says so.
        if plan.protected && !args.yes && !args.dry_run {
            if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err(Error::CleanUnconfirmed {
                    env: plan.env.clone(),
                    root: plan.root.clone(),
                    declined: false,
                });
            }
            let preview = materialize::clean(&checked, true)?;
            print(&clean_text(&plan, &preview, true));
            if preview.nothing_recorded || preview.removed.is_empty() {
                return Ok(());
            }
            if !confirm(&format!(
                "remove these {} path(s) of protected environment `{}`? [y/N] ",
                preview.removed.len(),
                plan.env
            )) {
                return Err(Error::CleanUnconfirmed {
                    env: plan.env.clone(),
                    root: plan.root.clone(),
                    declined: true,
                });
            }
        }
        let done = materialize::clean(&checked, args.dry_run)?;
        print(&clean_text(&plan, &done, args.dry_run));
        Ok(())
    })
}

/// `clean`'s report; `dry_run`: what it would do.
fn clean_text(plan: &Plan, done: &materialize::Cleaned, dry_run: bool) -> String {
    let (removed, kept) = if dry_run {
        ("would remove", "would keep  ")
    } else {
        ("removed ", "kept    ")
    };
    let mut out = format!(
        "credfile clean{}: app {}, environment {}, root {}\n",
        if dry_run { " --dry-run" } else { "" },
        plan.app,
        plan.env,
        plan.root.display()
    );
    if done.nothing_recorded {
        out.push_str("nothing to remove: no credfile state in this root\n");
    }
    let shown = |p: &std::path::Path| crate::terminal::sanitize(&p.display().to_string());
    for p in &done.removed {
        out.push_str(&format!("{removed} {}\n", shown(p)));
    }
    for p in &done.dirs_if_empty {
        out.push_str(&format!("{removed} {} (if empty by then)\n", shown(p)));
    }
    for (p, why) in &done.kept {
        out.push_str(&format!(
            "{kept} {}: {}\n",
            shown(p),
            crate::terminal::Escaped(why)
        ));
    }
    if dry_run {
        out.push_str(&format!(
            "dry run: {} to remove, {} to keep; nothing was removed\n",
            done.removed.len(),
            done.kept.len()
        ));
    } else {
        out.push_str(&format!(
            "{} removed, {} kept\n",
            done.removed.len(),
            done.kept.len()
        ));
    }
    out
}

/// Asks `question` on the controlling terminal (/dev/tty; stdin and stderr when it cannot be
/// opened) and reads a line: only `y` or `yes` is a yes.
fn confirm(question: &str) -> bool {
    use std::io::{BufRead, Write};
    let mut answer = String::new();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(tty) => {
            let _ = (&tty).write_all(question.as_bytes());
            let _ = std::io::BufReader::new(&tty).read_line(&mut answer);
        }
        Err(_) => {
            let _ = std::io::stderr().write_all(question.as_bytes());
            let _ = std::io::stdin().lock().read_line(&mut answer);
        }
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// A uniformly random wait in `[0, max]` (`--jitter`), or `None` when there is nothing to wait.
fn jitter(max: Option<Duration>) -> Option<Duration> {
    let max = max.filter(|m| !m.is_zero())?;
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    Some(max.mul_f64(f64::from(u32::from_le_bytes(r)) / f64::from(u32::MAX)))
}

/// `credfile validate`: with `--output json`, one typed result on stdout whatever happened
/// (`report::Validated::to_json`); the failure itself is also said on stderr.
fn validate(args: &ValidateArgs) -> Result<(), Error> {
    let checked = validate_manifest(args);
    let file = &args.manifest.manifest;
    match (args.output, &checked) {
        (crate::cli::Output::Json, _) => {
            println!("{}", report::Validated::to_json(file, &checked));
        }
        (crate::cli::Output::Human, Ok(v)) => print!("{}", v.to_human(file)),
        (crate::cli::Output::Human, Err(_)) => {}
    }
    checked.map(|_| ())
}

fn validate_manifest(args: &ValidateArgs) -> Result<report::Validated, Error> {
    sudo::check_invocation(&args.manifest.manifest, &[])?;
    let manifest = manifest::load(&args.manifest.manifest, &sudo::Fence)?;
    let names = match &args.env {
        Some(env) => vec![env.clone()],
        None => manifest.environment_names(),
    };
    let mut environments = Vec::new();
    for name in names {
        // A placeholder root: validation checks the manifest, not the host.
        let plan = manifest.resolve(&name, Some(std::path::Path::new("/")))?;
        environments.push((name, plan.files.len()));
    }
    Ok(report::Validated { environments })
}

/// `credfile policy`: offline, from the manifest alone.
fn print_policy(args: &PolicyArgs) -> Result<(), Error> {
    sudo::check_invocation(&args.manifest.manifest, &[])?;
    let manifest = manifest::load(&args.manifest.manifest, &sudo::Fence)?;
    let generated = policy::generate(&manifest, &args.env, &args.trust)?;
    if generated.wildcard_account {
        tracing::warn!(
            env = %args.env,
            "no `account` or `identity.role_arn`: secret ARNs use `*` for the account; pin `account` to narrow them"
        );
    }
    let text = match args.only {
        None => generated.to_text(),
        Some(PolicyDocument::Identity) => policy::document_text(&generated.identity),
        Some(PolicyDocument::Trust) => match &generated.trust {
            Some(trust) => policy::document_text(trust),
            None => return Err(policy::PolicyError::NoTrust.into()),
        },
    };
    print!("{text}");
    Ok(())
}

/// `credfile audit reuse`: every manifest that defines an environment is fetched in it with that
/// environment's identity, and the values are compared by keyed fingerprint.
fn audit_reuse(args: &ReuseArgs) -> Result<(), Error> {
    for path in &args.manifests.manifests {
        sudo::check_invocation(path, &[])?;
    }
    let mut manifests = Vec::new();
    for path in &args.manifests.manifests {
        if !manifests
            .iter()
            .any(|m: &manifest::Manifest| m.file == *path)
        {
            manifests.push(manifest::load(path, &sudo::Fence)?);
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
                let (_, fetched) =
                    fetch_plan(&plan, &mut None, false, None, fetch::FetchMode::Auto).await?;
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
