//! The flow of a run, stage by stage (see the README): manifest -> preflight -> identity ->
//! fetch -> render -> materialize -> report. Nothing touches the target until every secret is
//! fetched and every file is rendered.

use std::time::Duration;

use crate::cli::{Cli, Command, RunArgs, ValidateArgs, WhoamiArgs};
use crate::error::Error;
use crate::{fetch, identity, manifest, materialize, render, report};

pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Apply(args) => deploy(&args, false),
        Command::Plan(args) => deploy(&args, true),
        Command::Validate(args) => validate(&args),
        Command::Whoami(args) => whoami(&args),
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

fn deploy(args: &RunArgs, dry_run: bool) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    let checked = materialize::preflight(&plan)?;

    let (session, fetched) = runtime()?.block_on(async {
        if let Some(delay) = jitter(args.jitter) {
            tracing::info!(
                seconds = delay.as_secs_f64(),
                "jitter: waiting before the first AWS call"
            );
            tokio::time::sleep(delay).await;
        }
        let session = identity::establish(&plan, false).await?;
        let client = crate::aws::secrets_client(&session.config);
        let fetched = fetch::fetch_all(&client, plan.secret_refs()).await?;
        Ok::<_, Error>((session, fetched))
    })?;
    let rendered = render::render_all(&plan.files, &fetched)?;
    drop(fetched);

    let outcomes = materialize::write(&checked, &rendered, dry_run)?;
    let files = outcomes
        .into_iter()
        .zip(rendered.into_iter().map(|r| r.sources))
        .collect();
    report::Report {
        command: if dry_run { "plan" } else { "apply" },
        dry_run,
        plan: &plan,
        caller_arn: session.arn.as_deref(),
        files,
    }
    .print(args.output);
    Ok(())
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
