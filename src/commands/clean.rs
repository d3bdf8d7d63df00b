//! `credfile clean`: remove what credfile wrote for an environment, and nothing else. A
//! protected environment is cleaned only when someone says so (a prompt, or `--yes`).

use crate::cli::CleanArgs;
use crate::error::Error;
use crate::pipeline::{self, Settings};
use crate::{materialize, output};

pub fn run(args: &CleanArgs, settings: &Settings) -> Result<(), Error> {
    let plan = args.target().plan()?;
    let log = settings.log_format;
    pipeline::audited("clean", &plan, args.audit_log.as_deref(), log, |_| {
        let checked = materialize::resolve(&plan)?;
        // Production by hand: a protected environment is cleaned only when someone says so.
        if plan.protected && !args.yes && !args.dry_run {
            if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                return Err(Error::CleanUnconfirmed {
                    env: plan.env.clone(),
                    root: plan.root.clone(),
                    declined: false,
                });
            }
            let preview = materialize::clean(&checked, true)?;
            output::print_clean(&plan, &preview, true);
            if preview.nothing_recorded || preview.removed.is_empty() {
                return Ok(());
            }
            if !confirm(&format!(
                "remove these {} path(s) of protected environment `{}`? [y/N] ",
                preview.removed.len(),
                plan.env
            )) {
                return Err(Error::CleanUnconfirmed {
                    env: plan.env.clone(),
                    root: plan.root.clone(),
                    declined: true,
                });
            }
        }
        if !args.dry_run {
            // Leases die with their token: revoke both before the files go
            // (docs/src/vault-dynamic.md).
            let left = pipeline::Pipeline::new(settings)?.revoke_leases(&plan, &checked)?;
            if !left.is_empty() {
                tracing::warn!(leases = ?left, "could not revoke these leases; they end with their TTL");
            }
        }
        let done = materialize::clean(&checked, args.dry_run)?;
        output::print_clean(&plan, &done, args.dry_run);
        Ok(())
    })
}

/// Asks `question` on the controlling terminal (/dev/tty; stdin and stderr when it cannot be
/// opened) and reads a line: only `y` or `yes` is a yes.
fn confirm(question: &str) -> bool {
    use std::io::{BufRead, Write};
    let mut answer = String::new();
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(tty) => {
            let _ = (&tty).write_all(question.as_bytes());
            let _ = std::io::BufReader::new(&tty).read_line(&mut answer);
        }
        Err(_) => {
            let _ = std::io::stderr().write_all(question.as_bytes());
            let _ = std::io::stdin().lock().read_line(&mut answer);
        }
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
