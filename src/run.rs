//! The flow of a run, stage by stage (see the README): manifest -> preflight -> identity ->
//! fetch -> render -> materialize -> report. Nothing touches the target until every secret is
//! fetched and every file is rendered.
//!
//! The governance commands reuse the same stages: `lint` and `policy` stop after the manifest;
//! `audit reuse` runs manifest -> identity -> fetch for each environment and compares values.

use crate::cli::{
    AuditCommand, Cli, Command, PolicyArgs, ReuseArgs, RunArgs, ValidateArgs, WhoamiArgs,
};
use crate::error::Error;
use crate::manifest::ManifestError;
use crate::{audit, fetch, guard, identity, lint, manifest, materialize, policy, render, report};

pub fn run(cli: Cli) -> Result<(), Error> {
    crate::aws::configure(cli.tuning());
    match cli.command {
        Command::Apply(args) => deploy(&args, false),
        Command::Plan(args) => deploy(&args, true),
        Command::Validate(args) => validate(&args),
        Command::Whoami(args) => whoami(&args),
        Command::Lint(args) => lint::command(&args),
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
                let session = identity::establish(&plan, false).await?;
                let client = crate::aws::secrets_client(&session.config);
                let fetched = fetch::fetch_all(&client, plan.secret_refs()).await?;
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
