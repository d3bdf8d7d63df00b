//! Per-entry suppressions (`lint: { allow: [{ rule, reason }] }`): which findings they cover.

use std::path::{Path, PathBuf};

use super::Finding;
use crate::manifest::raw::{self, Seg};

/// One `lint.allow` of one entry: findings of `rule` inside the entry are suppressed.
pub(super) struct Allowed {
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
    reason: String,
}

impl Allowed {
    fn covers(&self, f: &Finding) -> bool {
        let at = (f.line, f.column);
        self.file == f.file
            && self.rule == f.rule
            && at >= self.from
            && self.until.is_none_or(|u| at < u)
            && f.line <= self.last_line
    }
}

/// Every entry's suppressions with the part of the text the entry spans. An allow without a
/// reason is validation's error and suppresses nothing.
pub(super) fn suppressions(file: &Path, text: &str, m: &raw::Manifest) -> Vec<Allowed> {
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
    out
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

/// Marks each finding that an entry's `lint.allow` covers with that allow's reason.
pub(super) fn apply(findings: &mut [Finding], allowed: &[Allowed]) {
    for f in findings {
        f.suppressed = allowed
            .iter()
            .find(|a| a.covers(f))
            .map(|a| a.reason.clone());
    }
}
