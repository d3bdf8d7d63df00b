//! `credfile systemd-dropin`: the drop-in that gives a unit the credentials a
//! `deliver: systemd-creds` environment seals (docs/src/systemd-creds.md). Offline: it reads the
//! manifest only, so it can run where the unit is installed, before the first apply.

use crate::cli::SystemdDropinArgs;
use crate::error::Error;
use crate::pipeline;

pub fn run(args: &SystemdDropinArgs) -> Result<(), Error> {
    let plan = pipeline::Target {
        manifest: &args.manifest.manifest,
        env: &args.env,
        root: args.root.as_deref(),
        audit_log: None,
    }
    .plan()?;
    let text = crate::systemd_creds::dropin(&plan, &args.unit)?;
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    Ok(())
}
