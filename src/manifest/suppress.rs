//! Suppressions: which findings are accepted, and why. `credfile lint` reports a suppressed
//! finding with its reason; `credfile validate` does not fail on it.
//!
//! Two forms, one record ([`Allowed`]): an entry's `lint: { allow: [{ rule, reason }] }` covers
//! the entry's own text; a `# credfile: allow literal-value reason: ...` comment covers one line
//! (its own, or, standing alone, the next), for a literal outside any entry (a variable, a
//! comment), where no `lint.allow` can be written.

use std::path::{Path, PathBuf};

use crate::manifest::RULE_LITERAL_VALUE;
use crate::manifest::raw::{self, Seg};

/// The comment that starts a line allowance.
const DIRECTIVE: &str = "# credfile: allow";

/// One accepted rule over a part of one manifest's text.
#[derive(Debug)]
pub struct Allowed {
    file: PathBuf,
    /// The entry's first position (line, column) ...
    from: (usize, usize),
    /// ... up to the next entry's first position (exclusive), so that two flow-style entries on
    /// one line stay apart ...
    until: Option<(usize, usize)>,
    /// ... and at most to this line ([`raw::entry_spans`]: the last entry ends before the next
    /// top-level key).
    last_line: usize,
    rule: String,
    pub reason: String,
}

impl Allowed {
    /// Whether a finding of `rule` at `line`:`column` of `file` is accepted.
    pub fn covers(&self, file: &Path, rule: &str, line: usize, column: usize) -> bool {
        let at = (line, column);
        self.file == file
            && self.rule == rule
            && at >= self.from
            && self.until.is_none_or(|u| at < u)
            && line <= self.last_line
    }
}

/// A `# credfile: allow` comment that allows nothing: validation reports it, so that a typo
/// never leaves a literal unreported in silence.
#[derive(Debug, PartialEq, Eq)]
pub struct BadDirective {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every suppression of one manifest: each entry's `lint.allow` with a reason, and each valid
/// line allowance. An allow without a reason is validation's error and suppresses nothing.
pub fn suppressions(file: &Path, text: &str, m: &raw::Manifest) -> Vec<Allowed> {
    let spans = raw::entry_spans(text, m.files.len());
    let position = |i: usize| raw::locate(text, &[Seg::Key("files".into()), Seg::Index(i)]);
    let mut out = Vec::new();
    for (i, (f, span)) in m.files.iter().zip(spans).enumerate() {
        let Some(lint) = &f.lint else { continue };
        let from = position(i);
        let until = (i + 1 < m.files.len()).then(|| position(i + 1));
        for a in &lint.allow {
            if let Some(reason) = a.reason.as_deref().filter(|r| !r.trim().is_empty()) {
                out.push(Allowed {
                    file: file.to_path_buf(),
                    from: (from.0, from.1.min(column_floor(text, from.0))),
                    until,
                    last_line: *span.end(),
                    rule: a.rule.clone(),
                    reason: reason.to_string(),
                });
            }
        }
    }
    out.extend(line_allowances(file, text).0);
    out
}

/// The `# credfile: allow literal-value reason: TEXT` comments: what each allows, and those
/// that allow nothing (another rule, no reason).
pub fn line_allowances(file: &Path, text: &str) -> (Vec<Allowed>, Vec<BadDirective>) {
    let mut allowed = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(at) = line.find(DIRECTIVE) else {
            continue;
        };
        let rest = line[at + DIRECTIVE.len()..].trim_start();
        let (rule, reason) = match rest.split_once(char::is_whitespace) {
            Some((rule, after)) => (rule, after.trim_start().strip_prefix("reason:")),
            None => (rest, None),
        };
        let column = line[..at].chars().count() + 1;
        let problem = if rule != RULE_LITERAL_VALUE {
            Some(format!(
                "`{DIRECTIVE}` accepts only `{RULE_LITERAL_VALUE}`, not `{rule}`: other rules are accepted per entry with `lint.allow`"
            ))
        } else if reason.is_none_or(|r| r.trim().is_empty()) {
            Some(format!(
                "`{DIRECTIVE} {RULE_LITERAL_VALUE}` has no `reason:`"
            ))
        } else {
            None
        };
        if let Some(message) = problem {
            bad.push(BadDirective {
                line: i + 1,
                column,
                message,
            });
            continue;
        }
        // Alone on its line it covers the next line (a block scalar's first line cannot hold
        // a comment); after something else, its own.
        let target = if line[..at].trim().is_empty() {
            i + 2
        } else {
            i + 1
        };
        allowed.push(Allowed {
            file: file.to_path_buf(),
            from: (target, 1),
            until: None,
            last_line: target,
            rule: RULE_LITERAL_VALUE.to_string(),
            reason: reason.unwrap_or_default().trim().to_string(),
        });
    }
    (allowed, bad)
}

/// In block style an entry's first line also holds its `- ` (a finding may sit left of the
/// first key): the entry starts at the line's first non-blank column there; in flow style
/// (`[ {...}, {...} ]`) at its first key.
fn column_floor(text: &str, line: usize) -> usize {
    let l = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
    let trimmed = l.trim_start();
    if trimmed.starts_with('-') {
        l.len() - trimmed.len() + 1
    } else {
        usize::MAX
    }
}
