//! `credfile audit reuse`: every manifest that defines an environment is fetched in it with that
//! environment's identity, and the values are compared by keyed fingerprint.

use crate::cli::ReuseArgs;
use crate::error::Error;
use crate::manifest::{self, ManifestError};
use crate::pipeline::{FetchOptions, Pipeline, Settings};
use crate::{audit, render, sudo};

pub fn reuse(args: &ReuseArgs, settings: &Settings) -> Result<(), Error> {
    for path in &args.manifests.manifests {
        sudo::check_invocation(path, &[])?;
    }
    let mut manifests: Vec<manifest::Manifest> = Vec::new();
    for path in &args.manifests.manifests {
        if !manifests.iter().any(|m| m.file == *path) {
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
    let mut pipeline = Pipeline::new(settings)?;
    let mut units = Vec::new();
    for env in &envs {
        for m in manifests
            .iter()
            .filter(|m| m.environment_names().contains(env))
        {
            let plan = m.resolve(env, Some(std::path::Path::new("/")))?;
            // Each environment signs in with its own identity.
            pipeline.forget_session();
            let values = pipeline.fetch(&plan, FetchOptions::default())?;
            let plan = render::expand(&plan, &values.fetched)?;
            units.extend(audit::fingerprint_plan(
                &plan,
                &values.fetched,
                &fingerprinter,
            )?);
            tracing::info!(app = %plan.app, env = %plan.env, "fingerprinted");
        }
    }
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
