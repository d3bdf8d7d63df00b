//! `credfile whoami`: the identity stage alone, said without a credential.

use crate::cli::WhoamiArgs;
use crate::error::Error;
use crate::output;
use crate::pipeline::{self, Pipeline, Settings};

pub fn run(args: &WhoamiArgs, settings: &Settings) -> Result<(), Error> {
    // A placeholder root: whoami touches no file.
    let plan = pipeline::plan(
        &args.manifest.manifest,
        &args.env,
        Some(std::path::Path::new("/")),
        &[],
    )?;
    let session = Pipeline::new(settings)?.identity(&plan)?;
    output::print_identity(&plan, &session, args.output);
    Ok(())
}
