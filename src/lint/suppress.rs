//! Per-entry suppressions (`lint: { allow: [{ rule, reason }] }`): which findings they cover.

use std::path::{Path, PathBuf};

use super::Finding;
use crate::manifest::raw;

/// One `lint.allow` of one entry: findings of `rule` on the entry's lines are suppressed.
pub(super) struct Allowed {
    file: PathBuf,
    lines: std::ops::RangeInclusive<usize>,
    rule: String,
    reason: String,
}

/// Every entry's suppressions with the lines the entry spans ([`raw::entry_spans`]). An
/// allow without a reason is validation's error and suppresses nothing.
pub(super) fn suppressions(file: &Path, text: &str, m: &raw::Manifest) -> Vec<Allowed> {
    let spans = raw::entry_spans(text, m.files.len());
    let mut out = Vec::new();
    for (f, span) in m.files.iter().zip(spans) {
        let Some(lint) = &f.lint else { continue };
        for a in &lint.allow {
            if let Some(reason) = a.reason.as_deref().filter(|r| !r.trim().is_empty()) {
                out.push(Allowed {
                    file: file.to_path_buf(),
                    lines: span.clone(),
                    rule: a.rule.clone(),
                    reason: reason.to_string(),
                });
            }
        }
    }
    out
}

/// Marks each finding that an entry's `lint.allow` covers with that allow's reason.
pub(super) fn apply(findings: &mut [Finding], allowed: &[Allowed]) {
    for f in findings {
        f.suppressed = allowed
            .iter()
            .find(|a| a.file == f.file && a.rule == f.rule && a.lines.contains(&f.line))
            .map(|a| a.reason.clone());
    }
}
