//! `credfile validate`: the manifest stage for every environment (or one), offline. With
//! `--output json`, one typed result on stdout whatever happened; the failure itself is also
//! said on stderr.

use crate::cli::ValidateArgs;
use crate::error::Error;
use crate::{manifest, output, sudo};

pub fn run(args: &ValidateArgs) -> Result<(), Error> {
    let checked = check(args);
    output::print_validate(&args.manifest.manifest, &checked, args.output);
    checked.map(|_| ())
}

fn check(args: &ValidateArgs) -> Result<output::Validated, Error> {
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
    Ok(output::Validated { environments })
}
