//! The flow of a run, stage by stage (see the README): manifest -> preflight -> identity ->
//! fetch -> render -> materialize -> report. Nothing touches the target until every secret is
//! fetched and every file is rendered.
//!
//! The governance commands `lint` and `policy` stop after the manifest.

use crate::cli::{Cli, Command, PolicyArgs, RunArgs, ValidateArgs};
use crate::error::Error;
use crate::{fetch, identity, lint, manifest, materialize, policy, render, report};

pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Apply(args) => deploy(&args, false),
        Command::Plan(args) => deploy(&args, true),
        Command::Validate(args) => validate(&args),
        Command::Lint(args) => lint::command(&args),
        Command::Policy(args) => print_policy(&args),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}

fn deploy(args: &RunArgs, dry_run: bool) -> Result<(), Error> {
    let manifest = manifest::load(&args.manifest.manifest)?;
    let plan = manifest.resolve(&args.env, args.root.as_deref())?;
    let checked = materialize::preflight(&plan)?;

    let runtime = runtime()?;
    let (session, fetched) = runtime.block_on(async {
        let session = identity::establish(&plan).await?;
        let client = aws_sdk_secretsmanager::Client::new(&session.config);
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
