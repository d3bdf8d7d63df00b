//! Lint: offline checks of one or more manifests against secrets-management practice, each
//! finding tagged with a stable rule id (see [`RULES`]) and a position.
//!
//! Lint never stops at the first problem: it reports validation errors (as `manifest-invalid`,
//! or under the rule they enforce) together with every rule below, so one run shows everything.
//! It reads only the manifests (and, for `path-in-git-tree`, whether directories hold `.git`): no
//! network, no secrets. A finding never quotes a value that looks like a secret.

mod access;
mod env;
mod refs;
mod rules;
mod sarif;

use std::fmt;
use std::path::PathBuf;

use serde_json::json;

use crate::format::LintFormat;
use crate::manifest::ManifestError;
use crate::terminal::sanitize;

pub use crate::manifest::rules::{Level, RULES, rule};
pub use rules::check_manifests;

/// One finding, at a position in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub level: Level,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The reason given by the entry's `lint.allow` for this rule: the finding is reported but
    /// does not count and does not fail the run.
    pub suppressed: Option<String>,
}

impl Finding {
    /// An error that is not suppressed: what fails `credfile lint`.
    pub fn fails(&self) -> bool {
        self.level == Level::Error && self.suppressed.is_none()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.level.as_str(),
            self.rule,
            if self.suppressed.is_some() {
                " (suppressed)"
            } else {
                ""
            },
            self.message
        )
    }
}

/// Lint found at least one error. The findings themselves are on stdout.
#[derive(Debug, thiserror::Error)]
#[error("lint found {errors} error(s) and {warnings} warning(s) in {manifests} manifest(s)")]
pub struct LintFailed {
    pub errors: usize,
    pub warnings: usize,
    pub manifests: usize,
}

impl LintFailed {
    pub fn hint(&self) -> Option<String> {
        Some("fix each finding printed on stdout (its rule id is in brackets; docs/src/governance.md explains every rule)".into())
    }
}

/// Why `credfile lint` failed: its own stage error, so that lint does not depend on the
/// top-level error that depends on it.
#[derive(Debug, thiserror::Error)]
pub enum LintCommandError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Failed(#[from] LintFailed),
}

/// `credfile lint`: read each manifest once, check, print in the chosen format, fail on errors.
///
/// # Errors
/// A manifest that cannot be read (exit 2), or any error-level finding (exit 9).
pub fn command(
    manifests: &[PathBuf],
    format: LintFormat,
    files: &dyn crate::manifest::Files,
) -> Result<(), LintCommandError> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for p in manifests {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    let mut inputs = Vec::new();
    for path in &paths {
        let text = crate::manifest::read_text(path)?;
        inputs.push((path.clone(), text));
    }
    let findings = check_manifests(&inputs, files);
    let errors = findings.iter().filter(|f| f.fails()).count();
    let warnings = findings
        .iter()
        .filter(|f| f.level == Level::Warning && f.suppressed.is_none())
        .count();
    let text = match format {
        LintFormat::Human => human(&findings, paths.len()),
        LintFormat::Json => {
            let mut t =
                serde_json::to_string_pretty(&to_json(&findings, paths.len())).unwrap_or_default();
            t.push('\n');
            t
        }
        LintFormat::Sarif => {
            let mut t =
                serde_json::to_string_pretty(&sarif::to_sarif(&findings)).unwrap_or_default();
            t.push('\n');
            t
        }
    };
    print!("{text}");
    if errors > 0 {
        return Err(LintFailed {
            errors,
            warnings,
            manifests: paths.len(),
        }
        .into());
    }
    Ok(())
}

fn human(findings: &[Finding], manifests: usize) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&sanitize(&f.to_string()));
        out.push('\n');
        if let Some(reason) = &f.suppressed {
            out.push_str("  suppressed: ");
            out.push_str(&sanitize(reason));
            out.push('\n');
        } else if let Some(hint) = &f.hint {
            out.push_str("  hint: ");
            out.push_str(&sanitize(hint));
            out.push('\n');
        }
    }
    let (errors, warnings, suppressed) = counts(findings);
    out.push_str(&format!(
        "lint: {errors} error(s), {warnings} warning(s){} in {manifests} manifest(s)\n",
        if suppressed > 0 {
            format!(", {suppressed} suppressed")
        } else {
            String::new()
        }
    ));
    out
}

/// Errors and warnings that count, and suppressed findings.
fn counts(findings: &[Finding]) -> (usize, usize, usize) {
    let suppressed = findings.iter().filter(|f| f.suppressed.is_some()).count();
    let errors = findings.iter().filter(|f| f.fails()).count();
    (errors, findings.len() - suppressed - errors, suppressed)
}

fn to_json(findings: &[Finding], manifests: usize) -> serde_json::Value {
    let (errors, warnings, suppressed) = counts(findings);
    json!({
        "findings": findings.iter().map(|f| json!({
            "rule": f.rule,
            "level": f.level.as_str(),
            "file": f.file.display().to_string(),
            "line": f.line,
            "column": f.column,
            "message": f.message,
            "hint": f.hint,
            "suppressed": f.suppressed.as_ref().map(|reason| json!({ "reason": reason })),
        })).collect::<Vec<_>>(),
        "summary": {
            "errors": errors,
            "warnings": warnings,
            "suppressed": suppressed,
            "manifests": manifests,
        },
    })
}

/// Sorts findings by file, position and rule, and drops exact duplicates.
fn finish(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.rule, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.rule, &b.message))
    });
    findings.dedup();
    findings
}

#[cfg(test)]
mod tests;
