//! Lint: offline checks of one or more manifests against secrets-management practice, each
//! finding tagged with a stable rule id (see [`RULES`]) and a position.
//!
//! Lint never stops at the first problem: it reports validation errors (as `manifest-invalid`,
//! or under the rule they enforce) together with every rule below, so one run shows everything.
//! It reads only the manifests (and, for `path-in-git-tree`, whether directories hold `.git`): no
//! network, no secrets. A finding never quotes a value that looks like a secret.

mod access;
mod env;
mod literal;
mod refs;
mod rules;
mod sarif;
pub mod suppress;

use std::fmt;
use std::path::PathBuf;

use serde_json::json;

use crate::format::LintFormat;
use crate::manifest::ManifestError;
use crate::terminal::sanitize;

pub use literal::{literal_candidates, message as literal_message};
pub use rules::check_manifests;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One lint rule: its id (stable, used in output and SARIF), its level when it is not decided per
/// finding, and what it checks.
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub summary: &'static str,
    pub help: &'static str,
}

/// Every rule lint knows, in the order docs/src/governance.md lists them.
pub const RULES: &[Rule] = &[
    Rule {
        id: "manifest-invalid",
        level: Level::Error,
        summary: "The manifest parses and validates.",
        help: "Fix the manifest error at the position given; `credfile validate` reports the same problems.",
    },
    Rule {
        id: "env-shared-secret",
        level: Level::Warning,
        summary: "Each environment reads its own secrets.",
        help: "The same secret is referenced by two environments: a leak or a mistake in one becomes a leak in the other. Give each environment its own secret (for example `${prefix}/db` with a per-environment `prefix`). An error when either environment is protected.",
    },
    Rule {
        id: "app-shared-secret",
        level: Level::Warning,
        summary: "Each app (system) reads its own secrets.",
        help: "Two manifests (two apps) reference the same secret: every system should have its own credentials so that one can be rotated or revoked without the other. An error when either environment is protected.",
    },
    Rule {
        id: "protected-no-account",
        level: Level::Error,
        summary: "A protected environment pins its AWS account.",
        help: "Add `account: \"123456789012\"` so credfile refuses to fetch with credentials from any other account.",
    },
    Rule {
        id: "protected-no-role",
        level: Level::Error,
        summary: "A protected environment names the role it reads with.",
        help: "Set `identity.role_arn` to a role that can read only this environment's secrets; `credfile policy --env ENV` prints its policy.",
    },
    Rule {
        id: "protected-web-identity",
        level: Level::Error,
        summary: "A protected environment names how it gets its identity.",
        help: "Set `identity.web_identity` to `github`, `gitlab`, `none` (the host's role) or, deliberately, `auto`: under sudo, which strips CI variables, credfile then refuses rather than switch to the host's identity.",
    },
    Rule {
        id: "mode-writable",
        level: Level::Error,
        summary: "No mode lets the group or others write.",
        help: "A secret file or a directory credfile creates must not be group- or world-writable: use \"0400\" or \"0440\" for files and \"0700\" or \"0750\" for directories.",
    },
    Rule {
        id: "mode-other-read",
        level: Level::Error,
        summary: "No file mode lets others read.",
        help: "Grant read to the owner (\"0400\") or to a group (\"0440\" with `group:`), never to every user on the host.",
    },
    Rule {
        id: "root-not-memory",
        level: Level::Warning,
        summary: "A protected environment writes to a memory filesystem.",
        help: "Put `root` under /run or /dev/shm (tmpfs) so secrets never reach a disk, its backups or its snapshots.",
    },
    Rule {
        id: "path-in-git-tree",
        level: Level::Error,
        summary: "No secret file lands in a git work tree.",
        help: "A file inside a repository's work tree is one `git add` away from source control: choose a root outside any checkout.",
    },
    Rule {
        id: "path-in-web-root",
        level: Level::Error,
        summary: "No secret file lands where a web server or a client build would publish it.",
        help: "Directories such as public/, static/, dist/, www/ or /var/www are served or shipped to clients: choose a root outside them.",
    },
    Rule {
        id: "literal-value",
        level: Level::Error,
        summary: "The manifest holds references only, never a value.",
        help: "Something in the manifest looks like a secret (a high-entropy string, an AWS access key id, a PEM block, a token, a password or a passphrase): move it to Secrets Manager, reference it with `secret:`, and rotate it, since it is in version control now.",
    },
    Rule {
        id: "var-unknown",
        level: Level::Error,
        summary: "Every `${var}` is defined.",
        help: "Define the variable under the environment's `vars`, or limit the entry with `environments:`.",
    },
    Rule {
        id: "var-unused",
        level: Level::Warning,
        summary: "Every variable is used.",
        help: "A variable no entry uses is dead configuration, or a sign that an entry references the wrong variable: remove it or use it.",
    },
    Rule {
        id: "ci-variable-tier",
        level: Level::Warning,
        summary: "Values come from a secret manager, not from CI variables.",
        help: "A CI variable (`ci_variable:`, `ci_variable_file:`) is the weaker tier: no AWS audit trail of who read it, no per-environment IAM, rotation by hand. Move the value to Secrets Manager and reference it with `secret:`.",
    },
];

/// Looks up a rule by id. Every id used is a constant listed in [`RULES`] (a unit test checks
/// the ones validation uses), so a miss is a bug: debug builds stop on it, release builds report
/// the finding as `manifest-invalid` rather than crash.
pub fn rule(id: &str) -> &'static Rule {
    let found = RULES.iter().find(|r| r.id == id);
    debug_assert!(found.is_some(), "unknown lint rule `{id}`");
    found.unwrap_or(&RULES[0])
}

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
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
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
