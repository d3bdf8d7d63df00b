//! A failed run, said in every form the command line asked for: the `error:`/`hint:` lines on
//! stderr (or one JSON log record with `--log-format json`), one JSON object on stdout with
//! `--output json` (`docs/report.schema.json`, `$defs/failure`), and a section in
//! `$GITHUB_STEP_SUMMARY` saying what failed and what to do. The object and its renderers are
//! in `output`. Never a value: error texts hold ids, paths and AWS messages.

use std::path::PathBuf;

use crate::error::Error;
use crate::format::{LogFormat, Output};
use crate::output::{self, Failure};
use crate::terminal::LogStderr;

/// What the failure report needs to know about the command line ([`crate::cli::Cli::failure_context`]).
pub struct Context {
    pub command: &'static str,
    pub env: Option<String>,
    pub manifest: Option<PathBuf>,
    pub output: Option<Output>,
    /// The command writes a GitHub step summary (on success, its report; on failure, this).
    pub summary: bool,
    /// `--log-format`: with `json`, the failure is one JSON log record on stderr.
    pub log_format: LogFormat,
}

/// Says that the run failed, in every form the command line asked for.
pub fn report(ctx: &Context, err: &Error) {
    if let Error::ChangesPending { .. } = err {
        // Not a failure: the plan's report already says what would change.
        return;
    }
    let failure = Failure::new(ctx.command, ctx.env.clone(), ctx.manifest.as_deref(), err);
    match ctx.log_format {
        LogFormat::Json => LogStderr::record(&failure.log_record()),
        LogFormat::Text => eprintln!("{}", err.render()),
    }
    if ctx.output == Some(Output::Json) && !err.reported() {
        let _ = std::io::Write::write_all(
            &mut std::io::stdout().lock(),
            format!("{}\n", failure.to_json()).as_bytes(),
        );
    }
    if ctx.summary {
        output::append_summary(&output::markdown::failure(&failure));
    }
}
