//! The audit line (`--audit-log`, docs/src/commands.md "Audit log"): one record per run,
//! success or failure, appended to a file or written to stderr as a log record. Its schema is
//! `docs/audit.schema.json`, generated from [`AuditLine`].

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::types::{FetchStats, Secret, escaped};
use super::words::FileStatus;
use crate::format::{LogFormat, rfc3339};
use crate::manifest::Plan;
use crate::materialize::Outcome;
use crate::render::SourceInfo;
use crate::terminal::LogStderr;

/// A file in the audit line: no mode or owner, the report has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "audit_file", deny_unknown_fields)
)]
pub struct AuditFile {
    pub path: String,
    pub status: FileStatus,
    pub secrets: Vec<Secret>,
}

/// One audit record per run, success or failure (`--audit-log`, docs/src/commands.md "Audit log"). Never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "audit", deny_unknown_fields)
)]
pub struct AuditLine {
    /// RFC 3339 UTC, seconds
    #[cfg_attr(test, schemars(pattern(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")))]
    pub time: String,
    #[cfg_attr(test, schemars(schema_with = "super::schema::audit_command"))]
    pub command: &'static str,
    pub app: Option<String>,
    pub environment: String,
    pub root: Option<String>,
    /// set when an account guard checked the caller or STS was asked for it (best effort)
    pub caller_arn: Option<String>,
    /// the role session of an assumed-role caller
    pub session_name: Option<String>,
    /// credfile's exit code; for `run`, the command's (128+N after signal N) once it started
    pub exit_code: u8,
    /// verify: the number of differences
    pub drift: Option<usize>,
    pub files: Vec<AuditFile>,
    /// apply and plan: the report's `fetch`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(with = "FetchStats"))]
    pub fetch: Option<FetchStats>,
}

impl AuditLine {
    /// The record of a run of `command` on `plan`, now; `drift` and `fetch` as the run got there.
    pub fn new(
        command: &'static str,
        plan: &Plan,
        caller_arn: Option<&str>,
        files: &[(Outcome, Vec<SourceInfo>)],
        exit_code: u8,
    ) -> AuditLine {
        let session = caller_arn
            .filter(|a| a.contains(":assumed-role/"))
            .and_then(|a| a.rsplit('/').next());
        AuditLine {
            time: rfc3339(super::unix_now()),
            command,
            app: Some(plan.app.clone()),
            environment: plan.env.clone(),
            root: Some(plan.root.display().to_string()),
            caller_arn: caller_arn.map(str::to_string),
            session_name: session.map(str::to_string),
            exit_code,
            drift: None,
            files: files
                .iter()
                .map(|(o, sources)| AuditFile {
                    path: o.dest.path.display().to_string(),
                    status: o.status.into(),
                    secrets: sources.iter().map(Secret::from).collect(),
                })
                .collect(),
            fetch: None,
        }
    }

    pub fn to_json(&self) -> Value {
        escaped(self)
    }
}

impl AuditLine {
    /// Appends the line to `path` (created 0600, never through a symlink). `-` is stderr: the
    /// JSON line itself, or with `--log-format json` a log record whose fields are the audit
    /// record's. Without `--audit-log` there is no audit line (a run by hand stays quiet).
    pub fn write(&self, path: Option<&Path>, log: LogFormat) {
        let Some(path) = path else {
            return;
        };
        let record = self.to_json();
        if path == Path::new("-") {
            let text = match record {
                Value::Object(fields) if log == LogFormat::Json => {
                    super::json_record("INFO", "audit", fields)
                }
                other => other.to_string(),
            };
            LogStderr::record(&text);
            return;
        }
        let line = record.to_string();
        use std::os::unix::fs::OpenOptionsExt;
        let result = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = result {
            tracing::error!(path = %path.display(), error = %e, "cannot append the audit line");
        }
    }
}
