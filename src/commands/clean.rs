//! `credfile clean`: remove what credfile wrote for an environment, and nothing else. A
//! protected environment is cleaned only when someone says so (a prompt, or `--yes`).

use crate::cli::CleanArgs;
use crate::error::Error;
use crate::manifest::Plan;
use crate::materialize::{self, Cleaned};
use crate::pipeline;
use crate::terminal::{Escaped, sanitize, sanitize_lines};

pub fn run(args: &CleanArgs) -> Result<(), Error> {
    let plan = args.target().plan()?;
    pipeline::audited("clean", &plan, args.audit_log.as_deref(), |_| {
        let checked = materialize::resolve(&plan)?;
        let print = |text: &str| {
            let _ = std::io::Write::write_all(
                &mut std::io::stdout().lock(),
                sanitize_lines(text).as_bytes(),
            );
        };
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
            print(&text(&plan, &preview, true));
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
        let done = materialize::clean(&checked, args.dry_run)?;
        print(&text(&plan, &done, args.dry_run));
        Ok(())
    })
}

/// `clean`'s report; `dry_run`: what it would do.
fn text(plan: &Plan, done: &Cleaned, dry_run: bool) -> String {
    let (removed, kept) = if dry_run {
        ("would remove", "would keep  ")
    } else {
        ("removed ", "kept    ")
    };
    let mut out = format!(
        "credfile clean{}: app {}, environment {}, root {}\n",
        if dry_run { " --dry-run" } else { "" },
        plan.app,
        plan.env,
        plan.root.display()
    );
    if done.nothing_recorded {
        out.push_str("nothing to remove: no credfile state in this root\n");
    }
    let shown = |p: &std::path::Path| sanitize(&p.display().to_string());
    for p in &done.removed {
        out.push_str(&format!("{removed} {}\n", shown(p)));
    }
    for p in &done.dirs_if_empty {
        out.push_str(&format!("{removed} {} (if empty by then)\n", shown(p)));
    }
    for (p, why) in &done.kept {
        out.push_str(&format!("{kept} {}: {}\n", shown(p), Escaped(why)));
    }
    if dry_run {
        out.push_str(&format!(
            "dry run: {} to remove, {} to keep; nothing was removed\n",
            done.removed.len(),
            done.kept.len()
        ));
    } else {
        out.push_str(&format!(
            "{} removed, {} kept\n",
            done.removed.len(),
            done.kept.len()
        ));
    }
    out
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
