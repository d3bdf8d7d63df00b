//! The GitHub step summary (`$GITHUB_STEP_SUMMARY`): a Markdown section per report or failure,
//! shown on the job's summary page (docs/src/commands.md, "In CI"). Cells are escaped so no
//! name can break the table or become Markdown.

use super::human::{group_name, source_label, status_word, user_name};
use super::types::{Failure, RunReport, VerifyReport};
use crate::terminal::sanitize;

/// `apply` and `plan`: a heading and one table row per file, then the hooks.
pub fn run(r: &RunReport) -> String {
    let mut out = format!(
        "### credfile {}: `{}` / `{}`\n\n| path | status | mode | owner | secret | version |\n| --- | --- | --- | --- | --- | --- |\n",
        r.command.as_str(),
        md(&r.scope.app),
        md(&r.scope.environment)
    );
    for f in &r.files {
        out.push_str(&format!(
            "| `{}` | {} | {} | {}:{} | {} | {} |\n",
            md(&f.path),
            status_word(r.dry_run, f.status),
            f.mode,
            md(&user_name(f.uid)),
            md(&group_name(f.gid)),
            md(&f
                .secrets
                .iter()
                .map(source_label)
                .collect::<Vec<_>>()
                .join(", ")),
            md(&f
                .secrets
                .iter()
                .map(|s| s.version_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")),
        ));
    }
    for h in &r.hooks {
        out.push_str(&format!(
            "\nhook `{}`: {}\n",
            md(&h.argv.join(" ")),
            h.status.as_str()
        ));
    }
    out.push('\n');
    out
}

/// `verify`: in sync, or a table of the differences.
pub fn verify(r: &VerifyReport) -> String {
    let mut out = format!(
        "### credfile verify: `{}` / `{}`: {}\n\n",
        md(&r.scope.app),
        md(&r.scope.environment),
        if r.drift.is_empty() {
            "in sync"
        } else {
            "drift"
        }
    );
    if !r.drift.is_empty() {
        out.push_str("| path | drift | detail |\n| --- | --- | --- |\n");
        for d in &r.drift {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                md(&d.path),
                d.kind.as_str(),
                md(&d.detail)
            ));
        }
    }
    out.push('\n');
    out
}

/// A failed run: what failed, where, and what to do.
pub fn failure(f: &Failure) -> String {
    let e = &f.error;
    let mut out = format!(
        "### credfile {} failed{}\n\n**{}** stage, exit code {}:\n\n",
        f.command,
        f.environment
            .as_deref()
            .map(|e| format!(": `{}`", sanitize(e).replace('`', "'")))
            .unwrap_or_default(),
        e.stage,
        e.exit_code
    );
    // An indented code block: nothing in the message can end it or become Markdown.
    for line in e.message.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    let c = &e.culprit;
    let quoted = |label: &str, s: &Option<String>| {
        s.as_ref()
            .map(|s| format!("{label} `{}`", s.replace('`', "'")))
    };
    let parts: Vec<String> = [
        quoted("manifest", &c.file),
        c.line.map(|l| format!("line {l}")),
        quoted("secret", &c.secret),
        quoted("path", &c.path),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !parts.is_empty() {
        out.push_str(&format!("\nCulprit: {}\n", parts.join(", ")));
    }
    if let Some(hint) = &e.hint {
        out.push_str(&format!("\n**What to do:** {}\n", hint.replace('\n', " ")));
    }
    out.push('\n');
    out
}

/// Markdown table cell text: no pipes or backticks that would break the table, and no line
/// break or format character ([`sanitize`] escapes them).
fn md(text: &str) -> String {
    sanitize(text).replace('|', "\\|").replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(md("a|b`c\nd\u{202e}"), "a\\|b'c\\nd\\u{202e}");
    }
}
