//! `credfile lint`: the manifest stage and the rules, offline.

use crate::cli::LintArgs;
use crate::error::Error;
use crate::{lint, sudo};

pub fn run(args: &LintArgs) -> Result<(), Error> {
    for manifest in &args.manifests.manifests {
        sudo::check_invocation(manifest, &[])?;
    }
    if args.format.is_some() && args.output.is_none() {
        tracing::warn!(
            "lint --format (CREDFILE_LINT_FORMAT) is deprecated: use --output, as every command does"
        );
    }
    lint::command(&args.manifests.manifests, args.output(), &sudo::Fence).map_err(|e| match e {
        lint::LintCommandError::Manifest(e) => e.into(),
        lint::LintCommandError::Failed(e) => e.into(),
    })
}
