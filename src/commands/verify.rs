//! `credfile verify`: drift between the host and what the manifest and the secrets produce;
//! `--offline` compares metadata only, with no AWS call.

use crate::cli::VerifyArgs;
use crate::error::Error;
use crate::pipeline::{self, FetchOptions, Pipeline, Settings};
use crate::{materialize, output};

pub fn run(args: &VerifyArgs, settings: &Settings) -> Result<(), Error> {
    let plan = args.target().plan()?;
    let log = settings.log_format;
    pipeline::audited("verify", &plan, args.audit_log.as_deref(), log, |trail| {
        let (checked, rendered) = if args.offline {
            (materialize::resolve_offline(&plan)?, None)
        } else {
            let fetched = Pipeline::new(settings)?.fetch_and_render(
                &plan,
                FetchOptions {
                    want_caller: args.audit_log.is_some(),
                    ..FetchOptions::default()
                },
            )?;
            trail.caller_arn = fetched.caller_arn;
            (materialize::resolve(&fetched.plan)?, Some(fetched.rendered))
        };
        let mut checked = checked;
        // systemd-creds calls are bounded like AWS calls (docs/src/systemd-creds.md).
        checked.creds_timeout = settings.aws.tuning.call_timeout;
        let verified = materialize::verify(&checked, rendered.as_deref())?;
        let drift = verified.drift;
        trail.drift = Some(drift.len());
        output::VerifyReport::new(
            &plan,
            args.offline,
            trail.caller_arn.as_deref(),
            &drift,
            verified.files,
            &verified.not_checked,
        )
        .print(args.output);
        if drift.is_empty() {
            Ok(())
        } else {
            Err(Error::Drift {
                count: drift.len(),
                env: plan.env.clone(),
            })
        }
    })
}
