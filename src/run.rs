//! The flow of a run, stage by stage (see the README): manifest -> preflight -> identity ->
//! fetch -> render -> materialize -> report. Nothing touches the target until every secret is
//! fetched and every file is rendered.

use crate::cli::{Cli, Command, RunArgs, ValidateArgs, WhoamiArgs};
use crate::error::Error;
use crate::{fetch, guard, identity, manifest, materialize, render, report};

pub fn run(cli: Cli) -> Result<(), Error> {
    crate::aws::configure(cli.tuning());
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
    for warning in guard::check(&plan)? {
        tracing::warn!("{warning}");
    }
    let checked = materialize::preflight(&plan)?;

    let (session, fetched) = runtime()?.block_on(async {
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
