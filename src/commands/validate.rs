//! `credfile validate`: the manifest stage for every environment (or one), offline. With
//! `--output json`, one typed result on stdout whatever happened; the failure itself is also
//! said on stderr.

use crate::cli::ValidateArgs;
use crate::error::Error;
use crate::format::Output;
use crate::{manifest, report, sudo};

pub fn run(args: &ValidateArgs) -> Result<(), Error> {
    let checked = check(args);
    let file = &args.manifest.manifest;
    match (args.output, &checked) {
        (Output::Json, _) => println!("{}", report::Validated::to_json(file, &checked)),
        (Output::Human, Ok(v)) => print!("{}", v.to_human(file)),
        (Output::Human, Err(_)) => {}
    }
    checked.map(|_| ())
}

fn check(args: &ValidateArgs) -> Result<report::Validated, Error> {
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
