//! What a command says, in one place: the typed documents ([`types`]) and their renderers: the
//! human text ([`human`]), the GitHub step summary ([`markdown`]), GitLab's collapsible
//! sections, `--output json` (schemas generated from the types, [`schema`]), the JSON log
//! records and the audit line. See docs/src/commands.md ("JSON report", "In CI", "Audit log").
//!
//! Paths, modes, owners, secret ids, ARNs and version ids only: a value never reaches this module.

mod audit_line;
pub mod human;
pub mod markdown;
#[cfg(test)]
mod schema;
mod types;
mod words;

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

pub use audit_line::AuditLine;
pub use types::{
    Failure, FetchStats, RoundFailed, RunReport, ValidateReport, Validated, VerifyReport, Whoami,
};

use crate::error::Error;
use crate::format::Output;
use crate::identity::Session;
use crate::manifest::Plan;
use crate::materialize::Cleaned;
use crate::terminal::sanitize_lines;

impl RunReport {
    pub fn print(&self, output: Output) {
        let text = match output {
            Output::Human => human::run(self),
            Output::Json => format!("{}\n", self.to_json()),
        };
        emit(output, self.command.as_str(), &text, &markdown::run(self));
    }
}

impl VerifyReport {
    pub fn print(&self, output: Output) {
        let text = match output {
            Output::Human => human::verify(self),
            Output::Json => format!("{}\n", self.to_json()),
        };
        emit(output, "verify", &text, &markdown::verify(self));
    }
}

/// `credfile validate`: with `--output json`, one object whatever happened; the human form
/// says only a success (a failure is the error on stderr).
pub fn print_validate(file: &Path, result: &Result<Validated, Error>, output: Output) {
    let report = ValidateReport::new(file, result);
    let text = match output {
        Output::Json => format!("{}\n", report.to_json()),
        Output::Human if result.is_ok() => human::validate(&report),
        Output::Human => return,
    };
    stdout(&text);
}

/// `whoami`: where the identity comes from and who it is. Never a credential.
pub fn print_identity(plan: &Plan, session: &Session, output: Output) {
    let who = Whoami::new(plan, session);
    let text = match output {
        Output::Json => format!("{}\n", who.to_json()),
        Output::Human => human::whoami(&who),
    };
    stdout(&sanitize_lines(&text));
}

/// `clean`'s report; `dry_run`: what it would do.
pub fn print_clean(plan: &Plan, done: &Cleaned, dry_run: bool) {
    stdout(&sanitize_lines(&human::clean(plan, done, dry_run)));
}

/// A closed stdout (`| head`) is not a failure of the deploy.
fn stdout(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Writes the report to stdout (inside a collapsible section in GitLab CI) and appends the
/// Markdown summary to `$GITHUB_STEP_SUMMARY` when GitHub Actions provides one.
fn emit(output: Output, command: &str, text: &str, markdown: &str) {
    let gitlab = output == Output::Human && std::env::var("GITLAB_CI").is_ok_and(|v| v == "true");
    if gitlab {
        stdout(&gitlab_section(command, text));
    } else {
        stdout(text);
    }
    append_summary(markdown);
}

/// Appends to `$GITHUB_STEP_SUMMARY` when it is set (as the invoking user under sudo).
pub fn append_summary(markdown: &str) {
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let written = crate::sudo::append_user_file(Path::new(&path), markdown.as_bytes());
        if let Err(e) = written {
            tracing::warn!(path = %Path::new(&path).display(), error = %e, "cannot append to GITHUB_STEP_SUMMARY");
        }
    }
}

/// GitLab's collapsible section markers around `text`.
pub fn gitlab_section(command: &str, text: &str) -> String {
    let now = unix_now();
    let name = format!("credfile_{command}");
    format!(
        "\x1b[0Ksection_start:{now}:{name}[collapsed=true]\r\x1b[0Kcredfile {command}\n{text}\x1b[0Ksection_end:{now}:{name}\r\x1b[0K\n"
    )
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One log record in the shape `tracing-subscriber`'s JSON formatter writes (`timestamp`,
/// `level`, `fields` with `message`), so a log pipeline reads credfile's own records and the
/// tracing ones alike, with the data as structured fields rather than a string.
pub fn json_record(level: &str, message: &str, fields: Map<String, Value>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = crate::format::rfc3339(now.as_secs());
    let stamp = format!(
        "{}.{:06}Z",
        stamp.trim_end_matches('Z'),
        now.subsec_micros()
    );
    let mut all = Map::new();
    all.insert("message".into(), Value::from(message));
    all.extend(fields);
    json!({"timestamp": stamp, "level": level, "fields": all}).to_string()
}

impl Failure {
    /// `--log-format json`: one error record, the stage, code, hint and the culprit's parts that
    /// apply as its fields.
    pub fn log_record(&self) -> String {
        let e = &self.error;
        let mut fields = Map::new();
        fields.insert("stage".into(), e.stage.to_string().into());
        fields.insert("exit_code".into(), e.exit_code.into());
        fields.insert("hint".into(), e.hint.clone().into());
        if let Value::Object(c) = types::plain(&e.culprit) {
            fields.extend(c.into_iter().filter(|(_, v)| !v.is_null()));
        }
        json_record("ERROR", &e.message, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        use crate::format::rfc3339;
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_785_000_000), "2026-07-25T17:20:00Z");
    }

    #[test]
    fn gitlab_sections_wrap_the_text() {
        let s = gitlab_section("apply", "body\n");
        assert!(s.starts_with("\x1b[0Ksection_start:"));
        assert!(s.contains(":credfile_apply[collapsed=true]\r\x1b[0K"));
        assert!(s.contains("body\n\x1b[0Ksection_end:"));
    }

    #[test]
    fn json_records_have_the_tracing_shape_with_structured_fields() {
        let mut f = Map::new();
        f.insert("exit_code".into(), 4.into());
        let v: Value = serde_json::from_str(&json_record("ERROR", "boom", f)).unwrap();
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["fields"]["message"], "boom");
        assert_eq!(v["fields"]["exit_code"], 4);
        let t = v["timestamp"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.contains('.') && t.len() == 27, "{t}");
    }
}
