//! Report: what a run did, per file, for people (a table) or machines (`--output json`, schema
//! in `docs/report.schema.json`), plus the CI-native forms: a Markdown table appended to
//! `$GITHUB_STEP_SUMMARY` in GitHub Actions, collapsible log sections in GitLab CI, and one audit
//! line per run (`--audit-log FILE`, JSON lines).
//!
//! Paths, modes, owners, secret ids, ARNs and version ids only: a value never reaches this module.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::unistd::{Gid, Group, Uid, User};
use serde_json::{Value, json};

use crate::format::Output;
use crate::format::{SCHEMA_VERSION, rfc3339};
use crate::hooks::HookResult;
use crate::identity::Session;
use crate::manifest::{Diagnostic, Plan};
use crate::materialize::state::layout_name;
use crate::materialize::{Drift, Outcome, Status};
use crate::render::SourceInfo;
use crate::terminal::{Escaped, escape_json, sanitize, sanitize_lines};

pub struct Report<'a> {
    pub command: &'static str,
    pub dry_run: bool,
    pub plan: &'a Plan,
    pub caller_arn: Option<&'a str>,
    pub files: Vec<(Outcome, Vec<SourceInfo>)>,
    pub hooks: &'a [HookResult],
    /// `{"mode", "calls"}`: how secrets were read and the AWS calls it took.
    pub fetch: Option<Value>,
    /// `apply --every`: the round's number, from 1.
    pub round: Option<u64>,
}

impl Report<'_> {
    fn count(&self, status: Status) -> usize {
        self.files
            .iter()
            .filter(|(o, _)| o.status == status)
            .count()
    }

    pub fn to_json(&self) -> Value {
        let mut out = self.to_json_base();
        if let Some(fetch) = &self.fetch {
            out["fetch"] = fetch.clone();
        }
        if let Some(round) = self.round {
            out["round"] = round.into();
        }
        escape_json(&mut out);
        out
    }

    fn to_json_base(&self) -> Value {
        json!({
            "schema_version": SCHEMA_VERSION,
            "command": self.command,
            "dry_run": self.dry_run,
            "app": self.plan.app,
            "environment": self.plan.env,
            "protected": self.plan.protected,
            "root": self.plan.root.display().to_string(),
            "layout": layout_name(self.plan.layout),
            "caller_arn": self.caller_arn,
            "files": self.files.iter().map(|(o, sources)| json!({
                "path": o.dest.path.display().to_string(),
                "status": o.status.as_str(),
                "mode": format!("{:04o}", o.dest.mode),
                "uid": o.dest.uid,
                "gid": o.dest.gid,
                "secrets": sources.iter().map(|s| json!({
                    "source": s.source, "id": s.id, "arn": s.arn, "version_id": s.version_id,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "hooks": self.hooks.iter().map(|h| json!({
                "argv": h.hook.argv,
                "changed": h.hook.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "status": h.status.as_str(),
                "exit_code": h.status.exit_code(),
            })).collect::<Vec<_>>(),
            "summary": {
                "created": self.count(Status::Created),
                "updated": self.count(Status::Updated),
                "unchanged": self.count(Status::Unchanged),
                "removed": self.count(Status::Removed),
            },
        })
    }

    pub fn to_human(&self) -> String {
        let mut rows = vec![[
            "STATUS".to_string(),
            "MODE".to_string(),
            "OWNER".to_string(),
            "PATH".to_string(),
            "SECRET@VERSION".to_string(),
        ]];
        // One passwd/group lookup per distinct id, not two per file (each is an NSS query).
        let mut owners: HashMap<(u32, u32), String> = HashMap::new();
        for (o, sources) in &self.files {
            rows.push([
                self.status_word(o.status).to_string(),
                format!("{:04o}", o.dest.mode),
                owners
                    .entry((o.dest.uid, o.dest.gid))
                    .or_insert_with(|| {
                        format!("{}:{}", user_name(o.dest.uid), group_name(o.dest.gid))
                    })
                    .clone(),
                sanitize(&o.dest.path.display().to_string()),
                sanitize(&secrets_cell(sources, 8)),
            ]);
        }
        let mut out = format!(
            "credfile {}: app {}, environment {}, root {} (layout {})\n",
            self.command,
            Escaped(&self.plan.app),
            Escaped(&self.plan.env),
            Escaped(&self.plan.root.display().to_string()),
            layout_name(self.plan.layout)
        );
        if let Some(arn) = self.caller_arn {
            out.push_str(&format!("identity: {}\n", Escaped(arn)));
        }
        out.push_str(&table(&rows));
        let (c, u, n, r) = (
            self.count(Status::Created),
            self.count(Status::Updated),
            self.count(Status::Unchanged),
            self.count(Status::Removed),
        );
        if self.dry_run {
            out.push_str(&format!(
                "plan: {c} to create, {u} to update, {n} unchanged, {r} to remove; nothing was written\n"
            ));
        } else {
            out.push_str(&format!(
                "{c} created, {u} updated, {n} unchanged, {r} removed\n"
            ));
        }
        for h in self.hooks {
            out.push_str(&format!(
                "hook {}: {}\n",
                h.status.as_str(),
                Escaped(&h.hook.argv.join(" "))
            ));
        }
        sanitize_lines(&out)
    }

    fn status_word(&self, status: Status) -> &'static str {
        match (self.dry_run, status) {
            (true, Status::Created) => "create",
            (true, Status::Updated) => "update",
            (true, Status::Removed) => "remove",
            (_, s) => s.as_str(),
        }
    }

    /// A GitHub step summary: a heading and one table row per file.
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "### credfile {}: `{}` / `{}`\n\n| path | status | mode | owner | secret | version |\n| --- | --- | --- | --- | --- | --- |\n",
            self.command,
            md(&self.plan.app),
            md(&self.plan.env)
        );
        for (o, sources) in &self.files {
            out.push_str(&format!(
                "| `{}` | {} | {:04o} | {}:{} | {} | {} |\n",
                md(&o.dest.path.display().to_string()),
                self.status_word(o.status),
                o.dest.mode,
                md(&user_name(o.dest.uid)),
                md(&group_name(o.dest.gid)),
                md(&sources
                    .iter()
                    .map(source_label)
                    .collect::<Vec<_>>()
                    .join(", ")),
                md(&sources
                    .iter()
                    .map(|s| s.version_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")),
            ));
        }
        for h in self.hooks {
            out.push_str(&format!(
                "\nhook `{}`: {}\n",
                md(&h.hook.argv.join(" ")),
                h.status.as_str()
            ));
        }
        out.push('\n');
        out
    }

    pub fn print(&self, output: Output) {
        let text = match output {
            Output::Human => self.to_human(),
            Output::Json => format!("{}\n", self.to_json()),
        };
        emit(output, self.command, &text, &self.to_markdown());
    }
}

/// `credfile verify`'s report.
pub struct VerifyReport<'a> {
    pub plan: &'a Plan,
    pub offline: bool,
    pub caller_arn: Option<&'a str>,
    pub drift: &'a [Drift],
    /// What apply would write: the expanded count (offline, the files recorded for a set).
    pub files_checked: usize,
    /// What verify could not check, in words (content offline, a set with no record).
    pub not_checked: &'a [String],
}

impl VerifyReport<'_> {
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "schema_version": SCHEMA_VERSION,
            "command": "verify",
            "app": self.plan.app,
            "environment": self.plan.env,
            "protected": self.plan.protected,
            "root": self.plan.root.display().to_string(),
            "layout": layout_name(self.plan.layout),
            "caller_arn": self.caller_arn,
            "offline": self.offline,
            "in_sync": self.drift.is_empty(),
            "files_checked": self.files_checked,
            "not_checked": self.not_checked,
            "drift": self.drift.iter().map(|d| json!({
                "path": d.path.display().to_string(),
                "kind": d.kind.as_str(),
                "detail": d.detail,
            })).collect::<Vec<_>>(),
        });
        escape_json(&mut out);
        out
    }

    pub fn to_human(&self) -> String {
        let mut out = format!(
            "credfile verify: app {}, environment {}, root {} (layout {}{})\n",
            Escaped(&self.plan.app),
            Escaped(&self.plan.env),
            Escaped(&self.plan.root.display().to_string()),
            layout_name(self.plan.layout),
            if self.offline {
                "; offline: content not compared"
            } else {
                ""
            }
        );
        if self.drift.is_empty() {
            out.push_str(&format!(
                "in sync: {} file(s) as the manifest says\n",
                self.files_checked
            ));
        } else {
            let mut rows = vec![[
                "DRIFT".to_string(),
                "PATH".to_string(),
                "DETAIL".to_string(),
            ]];
            for d in self.drift {
                rows.push([
                    d.kind.as_str().to_string(),
                    sanitize(&d.path.display().to_string()),
                    sanitize(&d.detail),
                ]);
            }
            out.push_str(&table(&rows));
        }
        for what in self.not_checked {
            out.push_str(&format!("not checked: {what}\n"));
        }
        sanitize_lines(&out)
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "### credfile verify: `{}` / `{}`: {}\n\n",
            md(&self.plan.app),
            md(&self.plan.env),
            if self.drift.is_empty() {
                "in sync"
            } else {
                "drift"
            }
        );
        if !self.drift.is_empty() {
            out.push_str("| path | drift | detail |\n| --- | --- | --- |\n");
            for d in self.drift {
                out.push_str(&format!(
                    "| `{}` | {} | {} |\n",
                    md(&d.path.display().to_string()),
                    d.kind.as_str(),
                    md(&d.detail)
                ));
            }
        }
        out.push('\n');
        out
    }

    pub fn print(&self, output: Output) {
        let text = match output {
            Output::Human => self.to_human(),
            Output::Json => format!("{}\n", self.to_json()),
        };
        emit(output, "verify", &text, &self.to_markdown());
    }
}

/// Writes the report to stdout (inside a collapsible section in GitLab CI) and appends the
/// Markdown summary to `$GITHUB_STEP_SUMMARY` when GitHub Actions provides one.
fn emit(output: Output, command: &str, text: &str, markdown: &str) {
    let gitlab = output == Output::Human && std::env::var("GITLAB_CI").is_ok_and(|v| v == "true");
    let text = if gitlab {
        gitlab_section(command, text)
    } else {
        text.to_string()
    };
    // A closed stdout (`| head`) is not a failure of the deploy.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
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

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A value's name with its source: `app/db` (Secrets Manager, the default), `ssm:/app/url`,
/// `ci:DB_PASSWORD`, `ci-file:TLS_KEY`.
fn source_label(s: &SourceInfo) -> String {
    match s.source {
        "ssm" => format!("ssm:{}", s.id),
        "ci_variable" => format!("ci:{}", s.id),
        "ci_variable_file" => format!("ci-file:{}", s.id),
        _ => s.id.clone(),
    }
}

fn secrets_cell(sources: &[SourceInfo], version_chars: usize) -> String {
    sources
        .iter()
        .map(|s| {
            if s.version_id.is_empty() {
                return source_label(s);
            }
            format!(
                "{}@{}",
                source_label(s),
                s.version_id.chars().take(version_chars).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Markdown table cell text: no pipes or backticks that would break the table, and no line
/// break or format character ([`sanitize`] escapes them).
fn md(text: &str) -> String {
    sanitize(text).replace('|', "\\|").replace('`', "'")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One audit record (docs/src/commands.md, "Audit log").
pub struct Audit<'a> {
    pub command: &'static str,
    pub plan: Option<&'a Plan>,
    pub env: &'a str,
    pub caller_arn: Option<&'a str>,
    pub files: &'a [(Outcome, Vec<SourceInfo>)],
    pub drift: Option<usize>,
    pub exit_code: u8,
    /// `{"mode", "calls"}` when the run fetched.
    pub fetch: Option<&'a Value>,
}

impl Audit<'_> {
    pub fn to_json(&self) -> Value {
        let mut out = self.to_json_base();
        if let Some(fetch) = self.fetch {
            out["fetch"] = fetch.clone();
        }
        escape_json(&mut out);
        out
    }

    fn to_json_base(&self) -> Value {
        let session = self
            .caller_arn
            .filter(|a| a.contains(":assumed-role/"))
            .and_then(|a| a.rsplit('/').next());
        json!({
            "time": rfc3339(unix_now()),
            "command": self.command,
            "app": self.plan.map(|p| p.app.clone()),
            "environment": self.env,
            "root": self.plan.map(|p| p.root.display().to_string()),
            "caller_arn": self.caller_arn,
            "session_name": session,
            "exit_code": self.exit_code,
            "drift": self.drift,
            "files": self.files.iter().map(|(o, sources)| json!({
                "path": o.dest.path.display().to_string(),
                "status": o.status.as_str(),
                "secrets": sources.iter().map(|s| json!({
                    "source": s.source, "id": s.id, "arn": s.arn, "version_id": s.version_id,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// Appends the line to `path` (created 0600, never through a symlink). `-` is stderr: the
    /// JSON line itself, or with `--log-format json` a log record whose fields are the audit
    /// record's. Without `--audit-log` there is no audit line (a run by hand stays quiet).
    pub fn write(&self, path: Option<&Path>) {
        let Some(path) = path else {
            return;
        };
        let record = self.to_json();
        if path == Path::new("-") {
            let text = match record {
                Value::Object(fields) if crate::failure::json_logs() => {
                    crate::failure::json_record("INFO", "audit", fields)
                }
                other => other.to_string(),
            };
            crate::terminal::LogStderr::record(&text);
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

/// `apply --every --output json`: the line of a round that failed (the last good set stays).
pub fn round_failed(plan: &Plan, round: u64, err: &crate::error::Error) -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "command": "apply",
        "app": plan.app,
        "environment": plan.env,
        "protected": plan.protected,
        "root": plan.root.display().to_string(),
        "layout": layout_name(plan.layout),
        "caller_arn": null,
        "round": round,
        "error": {
            "exit_code": err.code(),
            "message": sanitize_lines(&err.to_string()),
            "hint": err.hint().map(|h| sanitize_lines(&h)),
        },
    })
}

/// `credfile validate`'s result: the environments checked. A manifest has no warnings: what
/// validate finds (a literal secret included) is an error.
pub struct Validated {
    /// Each environment checked, with its number of file entries.
    pub environments: Vec<(String, usize)>,
}

impl Validated {
    pub fn to_human(&self, file: &Path) -> String {
        let envs: Vec<String> = self
            .environments
            .iter()
            .map(|(name, files)| format!("{} ({files} files)", Escaped(name)))
            .collect();
        format!(
            "{}: valid; environments: {}\n",
            Escaped(&file.display().to_string()),
            envs.join(", ")
        )
    }

    /// `validate --output json`: the same object whether the manifest is valid or not, so a
    /// pull-request check reads `ok` and the errors with their file and line.
    pub fn to_json(file: &Path, result: &Result<Validated, crate::error::Error>) -> Value {
        let entry = |file: Option<&Path>, d: &Diagnostic| {
            json!({
                "file": file.map(|f| f.display().to_string()),
                "line": d.line,
                "column": d.column,
                "message": d.message,
                "hint": d.hint,
                "rule": d.rule,
            })
        };
        let (environments, errors, code) = match result {
            Ok(v) => (
                v.environments
                    .iter()
                    .map(|(name, files)| json!({"name": name, "files": files}))
                    .collect(),
                Vec::new(),
                crate::exit::OK,
            ),
            Err(err) => {
                let errors = match err {
                    crate::error::Error::Manifest(crate::manifest::ManifestError::Invalid {
                        file,
                        diagnostics,
                    }) => diagnostics.iter().map(|d| entry(Some(file), d)).collect(),
                    other => {
                        let c = other.culprit();
                        let at = c.file.or_else(|| c.line.map(|_| file.to_path_buf()));
                        vec![json!({
                            "file": at.map(|f| f.display().to_string()),
                            "line": c.line,
                            "column": null,
                            "message": other.to_string(),
                            "hint": other.hint(),
                            "rule": null,
                        })]
                    }
                };
                (Vec::new(), errors, err.code())
            }
        };
        let mut out = json!({
            "schema_version": SCHEMA_VERSION,
            "command": "validate",
            "manifest": file.display().to_string(),
            "ok": result.is_ok(),
            "exit_code": code,
            "environments": environments,
            "errors": errors,
        });
        escape_json(&mut out);
        out
    }
}

/// `whoami`: where the identity comes from and who it is. Never a credential.
pub fn print_identity(plan: &Plan, session: &Session, output: Output) {
    let expires = session.expiry.map(|t| {
        aws_smithy_types::DateTime::from(t)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default()
    });
    let text = match output {
        Output::Json => {
            let mut v = json!({
                "app": plan.app,
                "environment": plan.env,
                "source": session.source,
                "account": session.account,
                "arn": session.arn,
                "session_name": session.session_name,
                "expires": expires,
            });
            escape_json(&mut v);
            format!("{v}\n")
        }
        Output::Human => {
            let na = || "-".to_string();
            let e = |s: &Option<String>| s.as_deref().map(sanitize).unwrap_or_else(na);
            format!(
                "environment: {} (app {})\nsource:      {}\naccount:     {}\narn:         {}\nsession:     {}\nexpires:     {}\n",
                Escaped(&plan.env),
                Escaped(&plan.app),
                Escaped(&session.source),
                e(&session.account),
                e(&session.arn),
                e(&session.session_name),
                expires.unwrap_or_else(|| "- (not a temporary session)".into()),
            )
        }
    };
    let _ = std::io::stdout()
        .lock()
        .write_all(sanitize_lines(&text).as_bytes());
}

fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_785_000_000), "2026-07-25T17:20:00Z");
    }

    #[test]
    fn markdown_cells_cannot_break_the_table() {
        assert_eq!(md("a|b`c\nd\u{202e}"), "a\\|b'c\\nd\\u{202e}");
    }

    #[test]
    fn gitlab_sections_wrap_the_text() {
        let s = gitlab_section("apply", "body\n");
        assert!(s.starts_with("\x1b[0Ksection_start:"));
        assert!(s.contains(":credfile_apply[collapsed=true]\r\x1b[0K"));
        assert!(s.contains("body\n\x1b[0Ksection_end:"));
    }
}
