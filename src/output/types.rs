//! The published documents, as types: what `--output json` prints (the run, verify and validate
//! reports, a failed `apply --every` round, the failure object), `whoami`'s JSON and the audit
//! line. Each is serialized as it stands, and `docs/report.schema.json` and
//! `docs/audit.schema.json` are generated from these types (`output::schema`), so the published
//! shape and the code cannot drift apart (docs/src/commands.md, "JSON report" and "Audit log").
//!
//! The structs hold names as they are; the renderers (`human`, `markdown`) escape what they
//! show, and the JSON is escaped once, when a document becomes text ([`escaped`]). The failure
//! objects are the exception: their texts are escaped as they are built, as the error line on
//! stderr is, so a message keeps its layout's newlines.
//!
//! Field doc comments are the schema's descriptions.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::words::{
    DriftKind, EveryCommand, FileStatus, HookState, Layout, RunCommand, SchemaVersion,
    ValidateCommand, VerifyCommand,
};
use crate::error::{Error, Stage};
use crate::hooks::HookResult;
use crate::identity::Session;
use crate::manifest::{Diagnostic, Plan};
use crate::materialize::{Drift, Outcome, Status};
use crate::render::SourceInfo;
use crate::terminal::{escape_json, sanitize, sanitize_lines};

/// The document as JSON, every string in it escaped for a terminal ([`escape_json`]).
pub fn escaped<T: Serialize>(doc: &T) -> Value {
    let mut v = plain(doc);
    escape_json(&mut v);
    v
}

/// The document as JSON, its strings as built.
pub fn plain<T: Serialize>(doc: &T) -> Value {
    // Structs of strings, numbers and lists with string keys: serializing cannot fail.
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// The plan's app, environment and root, in every run, verify and round report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct Scope {
    #[cfg_attr(test, schemars(length(min = 1)))]
    pub app: String,
    #[cfg_attr(test, schemars(length(min = 1)))]
    pub environment: String,
    pub protected: bool,
    #[cfg_attr(test, schemars(pattern(r"^/")))]
    pub root: String,
    pub layout: Layout,
    /// set when the caller's identity was checked (account guard) or looked up for the audit log
    pub caller_arn: Option<String>,
}

impl Scope {
    pub fn of(plan: &Plan, caller_arn: Option<&str>) -> Scope {
        Scope {
            app: plan.app.clone(),
            environment: plan.env.clone(),
            protected: plan.protected,
            root: plan.root.display().to_string(),
            layout: plan.layout.into(),
            caller_arn: caller_arn.map(str::to_string),
        }
    }
}

/// One value a file holds: where it came from, never what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Secret {
    /// where the value came from
    #[cfg_attr(test, schemars(schema_with = "super::schema::source"))]
    pub source: &'static str,
    /// the name or ARN as written in the manifest (after ${var}); a parameter's name; a CI variable's name
    pub id: String,
    /// empty for a CI variable, which has none
    #[cfg_attr(test, schemars(pattern(r"^(arn:|$)")))]
    pub arn: String,
    /// Secrets Manager's version id, a parameter's version number, empty for a CI variable
    pub version_id: String,
}

impl From<&SourceInfo> for Secret {
    fn from(s: &SourceInfo) -> Secret {
        Secret {
            source: s.source,
            id: s.id.clone(),
            arn: s.arn.clone(),
            version_id: s.version_id.clone(),
        }
    }
}

/// One file of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct File {
    /// relative to root
    pub path: String,
    pub status: FileStatus,
    #[cfg_attr(test, schemars(pattern(r"^0[0-7]{3}$")))]
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub secrets: Vec<Secret>,
}

impl File {
    fn of((o, sources): &(Outcome, Vec<SourceInfo>)) -> File {
        File {
            path: o.dest.path.display().to_string(),
            status: o.status.into(),
            mode: format!("{:04o}", o.dest.mode),
            uid: o.dest.uid,
            gid: o.dest.gid,
            secrets: sources.iter().map(Secret::from).collect(),
        }
    }
}

/// A change hook the run ran, or would run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Hook {
    #[cfg_attr(test, schemars(length(min = 1)))]
    pub argv: Vec<String>,
    #[cfg_attr(test, schemars(inner(pattern(r"^/"))))]
    pub changed: Vec<String>,
    pub status: HookState,
    pub exit_code: Option<i32>,
}

impl From<&HookResult> for Hook {
    fn from(h: &HookResult) -> Hook {
        Hook {
            argv: h.hook.argv.clone(),
            changed: h
                .hook
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            status: (&h.status).into(),
            exit_code: h.status.exit_code(),
        }
    }
}

/// The files by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
}

/// Attempts of one kind of AWS call, and how many AWS refused for its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Count {
    pub calls: u64,
    pub throttled: u64,
}

impl From<(u64, u64)> for Count {
    fn from((calls, throttled): (u64, u64)) -> Count {
        Count { calls, throttled }
    }
}

/// attempts sent per kind (a retry is a call: it spends the quota too) and how many AWS refused for its rate (Throttling*, TooManyRequests, HTTP 429); sts counts credfile's own STS client, not the SDK's default chain
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Calls {
    pub batch_get_secret_value: Count,
    pub get_secret_value: Count,
    pub list_secrets: Count,
    pub get_parameters: Count,
    pub get_parameters_by_path: Count,
    pub sts: Count,
}

impl From<crate::aws::Calls> for Calls {
    fn from(c: crate::aws::Calls) -> Calls {
        Calls {
            batch_get_secret_value: c.batch.into(),
            get_secret_value: c.single.into(),
            list_secrets: c.list_secrets.into(),
            get_parameters: c.parameters.into(),
            get_parameters_by_path: c.parameters_by_path.into(),
            sts: c.sts.into(),
        }
    }
}

/// how secrets were read (--fetch) and the AWS calls the run made
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct FetchStats {
    /// `--fetch`
    #[cfg_attr(test, schemars(schema_with = "super::schema::fetch_mode"))]
    pub mode: &'static str,
    pub calls: Calls,
}

impl FetchStats {
    pub fn new(mode: crate::fetch::FetchMode, calls: crate::aws::Calls) -> FetchStats {
        FetchStats {
            mode: mode.as_str(),
            calls: calls.into(),
        }
    }
}

/// `apply` and `plan`: what the run did (or would do), per file and hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "run", deny_unknown_fields)
)]
pub struct RunReport {
    pub schema_version: SchemaVersion,
    pub command: RunCommand,
    pub dry_run: bool,
    #[serde(flatten)]
    pub scope: Scope,
    pub files: Vec<File>,
    pub hooks: Vec<Hook>,
    pub summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(with = "FetchStats"))]
    pub fetch: Option<FetchStats>,
    /// apply --every: the round's number; one report per round, one JSON object per line
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(with = "u64", range(min = 1)))]
    pub round: Option<u64>,
}

impl RunReport {
    /// `files`: each outcome with the values its file holds (none for a removed file).
    pub fn new(
        plan: &Plan,
        dry_run: bool,
        caller_arn: Option<&str>,
        files: &[(Outcome, Vec<SourceInfo>)],
        hooks: &[HookResult],
    ) -> RunReport {
        let count = |s: Status| files.iter().filter(|(o, _)| o.status == s).count();
        RunReport {
            schema_version: SchemaVersion,
            command: if dry_run {
                RunCommand::Plan
            } else {
                RunCommand::Apply
            },
            dry_run,
            scope: Scope::of(plan, caller_arn),
            files: files.iter().map(File::of).collect(),
            hooks: hooks.iter().map(Hook::from).collect(),
            summary: Summary {
                created: count(Status::Created),
                updated: count(Status::Updated),
                unchanged: count(Status::Unchanged),
                removed: count(Status::Removed),
            },
            fetch: None,
            round: None,
        }
    }

    pub fn to_json(&self) -> Value {
        escaped(self)
    }
}

/// One difference between the host and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct DriftEntry {
    pub path: String,
    pub kind: DriftKind,
    pub detail: String,
}

/// `verify`: whether the host holds what the manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "verify", deny_unknown_fields)
)]
pub struct VerifyReport {
    pub schema_version: SchemaVersion,
    pub command: VerifyCommand,
    #[serde(flatten)]
    pub scope: Scope,
    /// metadata only; content not compared
    pub offline: bool,
    pub in_sync: bool,
    /// the files apply would write (expanded sets counted file by file; offline, the files the state file records for them)
    pub files_checked: usize,
    /// what verify could not check: content offline, an expanded set the state file records nothing for
    pub not_checked: Vec<String>,
    pub drift: Vec<DriftEntry>,
}

impl VerifyReport {
    pub fn new(
        plan: &Plan,
        offline: bool,
        caller_arn: Option<&str>,
        drift: &[Drift],
        files_checked: usize,
        not_checked: &[String],
    ) -> VerifyReport {
        VerifyReport {
            schema_version: SchemaVersion,
            command: VerifyCommand::Verify,
            scope: Scope::of(plan, caller_arn),
            offline,
            in_sync: drift.is_empty(),
            files_checked,
            not_checked: not_checked.to_vec(),
            drift: drift
                .iter()
                .map(|d| DriftEntry {
                    path: d.path.display().to_string(),
                    kind: d.kind.into(),
                    detail: d.detail.clone(),
                })
                .collect(),
        }
    }

    pub fn to_json(&self) -> Value {
        escaped(self)
    }
}

/// A round's error: its texts escaped as on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct RoundError {
    #[cfg_attr(test, schemars(range(min = 1)))]
    pub exit_code: u8,
    pub message: String,
    pub hint: Option<String>,
}

/// apply --every: a round that failed; the last good set stays in place and the next round tries again
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "round_failed", deny_unknown_fields)
)]
pub struct RoundFailed {
    pub schema_version: SchemaVersion,
    pub command: EveryCommand,
    #[serde(flatten)]
    pub scope: Scope,
    #[cfg_attr(test, schemars(range(min = 1)))]
    pub round: u64,
    pub error: RoundError,
}

impl RoundFailed {
    pub fn new(plan: &Plan, round: u64, err: &Error) -> RoundFailed {
        RoundFailed {
            schema_version: SchemaVersion,
            command: EveryCommand::Apply,
            scope: Scope::of(plan, None),
            round,
            error: RoundError {
                exit_code: err.code(),
                message: sanitize_lines(&err.to_string()),
                hint: err.hint().map(|h| sanitize_lines(&h)),
            },
        }
    }

    /// As built: the message is escaped already, keeping its newlines.
    pub fn to_json(&self) -> Value {
        plain(self)
    }
}

/// `credfile validate`'s result: the environments checked, each with its number of file
/// entries. A manifest has no warnings: what validate finds (a literal secret included) is an
/// error.
pub struct Validated {
    pub environments: Vec<(String, usize)>,
}

/// An environment validate checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Environment {
    #[cfg_attr(test, schemars(length(min = 1)))]
    pub name: String,
    pub files: usize,
}

/// One problem validate found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "validate_item", deny_unknown_fields)
)]
pub struct ValidateItem {
    /// the manifest file
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    #[cfg_attr(test, schemars(length(min = 1)))]
    pub message: String,
    pub hint: Option<String>,
    /// the lint rule id when validation enforces one
    pub rule: Option<&'static str>,
}

/// `validate --output json`: one object whether the manifest is valid or not; its exit code is exit_code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "validate", deny_unknown_fields)
)]
pub struct ValidateReport {
    pub schema_version: SchemaVersion,
    pub command: ValidateCommand,
    pub manifest: String,
    pub ok: bool,
    pub exit_code: u8,
    pub environments: Vec<Environment>,
    pub errors: Vec<ValidateItem>,
}

impl ValidateReport {
    /// The same object whether the manifest is valid or not, so a pull-request check reads `ok`
    /// and the errors with their file and line.
    pub fn new(file: &Path, result: &Result<Validated, Error>) -> ValidateReport {
        let (environments, errors, exit_code) = match result {
            Ok(v) => (
                v.environments
                    .iter()
                    .map(|(name, files)| Environment {
                        name: name.clone(),
                        files: *files,
                    })
                    .collect(),
                Vec::new(),
                crate::exit::OK,
            ),
            Err(err) => (Vec::new(), validate_items(file, err), err.code()),
        };
        ValidateReport {
            schema_version: SchemaVersion,
            command: ValidateCommand::Validate,
            manifest: file.display().to_string(),
            ok: result.is_ok(),
            exit_code,
            environments,
            errors,
        }
    }

    pub fn to_json(&self) -> Value {
        escaped(self)
    }
}

/// Each diagnostic of an invalid manifest, or the one error that stopped validation (a culprit
/// line without a file is in `file`).
fn validate_items(file: &Path, err: &Error) -> Vec<ValidateItem> {
    let item = |file: Option<&Path>, d: &Diagnostic| ValidateItem {
        file: file.map(|f| f.display().to_string()),
        line: Some(d.line),
        column: Some(d.column),
        message: d.message.clone(),
        hint: d.hint.clone(),
        rule: d.rule,
    };
    match err {
        Error::Manifest(crate::manifest::ManifestError::Invalid { file, diagnostics }) => {
            diagnostics.iter().map(|d| item(Some(file), d)).collect()
        }
        other => {
            let c = other.culprit();
            let at = c.file.or_else(|| c.line.map(|_| file.to_path_buf()));
            vec![ValidateItem {
                file: at.map(|f| f.display().to_string()),
                line: c.line,
                column: None,
                message: other.to_string(),
                hint: other.hint(),
                rule: None,
            }]
        }
    }
}

/// what the error is about, each part null when it does not apply
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct Culprit {
    /// the manifest file
    pub file: Option<String>,
    /// the manifest line
    pub line: Option<usize>,
    /// the secret id (name or ARN) as the manifest resolves it
    pub secret: Option<String>,
    /// the path on the host
    pub path: Option<String>,
}

/// What failed, escaped as on stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema), schemars(deny_unknown_fields))]
pub struct FailureError {
    pub stage: Stage,
    /// the process exit code (docs/src/exit-codes.md)
    #[cfg_attr(test, schemars(range(min = 1)))]
    pub exit_code: u8,
    /// the error text printed after `error:`
    #[cfg_attr(test, schemars(length(min = 1)))]
    pub message: String,
    /// what to do about it, when known
    pub hint: Option<String>,
    pub culprit: Culprit,
}

/// A run that failed before printing its report. A run whose report was printed (failed hooks, drift, reuse findings, plan --detailed-exitcode) prints that report instead; its exit code says the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(
    test,
    derive(schemars::JsonSchema),
    schemars(rename = "failure", deny_unknown_fields)
)]
pub struct Failure {
    pub schema_version: SchemaVersion,
    #[cfg_attr(test, schemars(schema_with = "super::schema::failure_command"))]
    pub command: &'static str,
    /// the --env given (the first one for audit reuse)
    pub environment: Option<String>,
    pub error: FailureError,
}

impl Failure {
    /// `manifest`: the command's manifest, where a culprit line without a file is.
    pub fn new(
        command: &'static str,
        environment: Option<String>,
        manifest: Option<&Path>,
        err: &Error,
    ) -> Failure {
        let c = err.culprit();
        let file = c
            .file
            .or_else(|| c.line.and(manifest.map(Path::to_path_buf)));
        let shown = |p: Option<std::path::PathBuf>| p.map(|p| sanitize(&p.display().to_string()));
        Failure {
            schema_version: SchemaVersion,
            command,
            environment,
            error: FailureError {
                stage: err.stage(),
                exit_code: err.code(),
                message: sanitize_lines(&err.to_string()),
                hint: err.hint().map(|h| sanitize_lines(&h)),
                culprit: Culprit {
                    file: shown(file),
                    line: c.line,
                    secret: c.secret.map(|s| sanitize(&s)),
                    path: shown(c.path),
                },
            },
        }
    }

    /// As built: the texts are escaped already, the message keeping its newlines.
    pub fn to_json(&self) -> Value {
        plain(self)
    }
}

/// `whoami --output json`: where the identity comes from and who it is. Never a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Whoami {
    pub app: String,
    pub environment: String,
    pub source: String,
    pub account: Option<String>,
    pub arn: Option<String>,
    pub session_name: Option<String>,
    /// RFC 3339; none for credentials that do not expire.
    pub expires: Option<String>,
}

impl Whoami {
    pub fn new(plan: &Plan, session: &Session) -> Whoami {
        Whoami {
            app: plan.app.clone(),
            environment: plan.env.clone(),
            source: session.source.clone(),
            account: session.account.clone(),
            arn: session.arn.clone(),
            session_name: session.session_name.clone(),
            expires: session.expiry.map(|t| {
                aws_smithy_types::DateTime::from(t)
                    .fmt(aws_smithy_types::date_time::Format::DateTime)
                    .unwrap_or_default()
            }),
        }
    }

    pub fn to_json(&self) -> Value {
        escaped(self)
    }
}
