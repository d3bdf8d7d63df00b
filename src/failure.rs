//! A failed run, said for people and for machines: the `error:`/`hint:` lines on stderr (or one
//! JSON log record with `--log-format json`), one JSON object on stdout with `--output json`
//! (`docs/report.schema.json`, `$defs/failure`), and a section in `$GITHUB_STEP_SUMMARY` saying
//! what failed and what to do. Never a value: error texts hold ids, paths and AWS messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::format::{LogFormat, Output};
use crate::terminal::{LogStderr, sanitize, sanitize_lines};

static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// `--log-format json`: records credfile writes itself (the failure, the audit line) are JSON.
pub fn set_json_logs(on: bool) {
    JSON_LOGS.store(on, Ordering::Relaxed);
}

pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
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

/// What the failure report needs to know about the command line ([`crate::cli::Cli::failure_context`]).
pub struct Context {
    pub command: &'static str,
    pub env: Option<String>,
    pub manifest: Option<PathBuf>,
    pub output: Option<Output>,
    /// The command writes a GitHub step summary (on success, its report; on failure, this).
    pub summary: bool,
}

/// The culprit as JSON; a manifest line without a file is in the command's manifest.
fn culprit(ctx: &Context, err: &Error) -> Value {
    let c = err.culprit();
    let file = c.file.or_else(|| c.line.and(ctx.manifest.clone()));
    let s = |p: Option<PathBuf>| p.map(|p| sanitize(&p.display().to_string()));
    json!({
        "file": s(file),
        "line": c.line,
        "secret": c.secret.map(|s| sanitize(&s)),
        "path": s(c.path),
    })
}

/// The JSON object `--output json` prints on failure.
pub fn to_json(ctx: &Context, err: &Error) -> Value {
    json!({
        "schema_version": crate::format::SCHEMA_VERSION,
        "command": ctx.command,
        "environment": ctx.env,
        "error": {
            "stage": err.stage(),
            "exit_code": err.code(),
            "message": sanitize_lines(&err.to_string()),
            "hint": err.hint().map(|h| sanitize_lines(&h)),
            "culprit": culprit(ctx, err),
        },
    })
}

/// The GitHub step summary section: what failed, where, and what to do.
pub fn to_markdown(ctx: &Context, err: &Error) -> String {
    let mut out = format!(
        "### credfile {} failed{}\n\n**{}** stage, exit code {}:\n\n",
        ctx.command,
        ctx.env
            .as_deref()
            .map(|e| format!(": `{}`", sanitize(e).replace('`', "'")))
            .unwrap_or_default(),
        err.stage(),
        err.code()
    );
    // An indented code block: nothing in the message can end it or become Markdown.
    for line in sanitize_lines(&err.to_string()).lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    let c = culprit(ctx, err);
    let parts: Vec<String> = [
        ("manifest", "file"),
        ("line", "line"),
        ("secret", "secret"),
        ("path", "path"),
    ]
    .iter()
    .filter_map(|(label, key)| match &c[key] {
        Value::Null => None,
        Value::String(s) => Some(format!("{label} `{}`", s.replace('`', "'"))),
        other => Some(format!("{label} {other}")),
    })
    .collect();
    if !parts.is_empty() {
        out.push_str(&format!("\nCulprit: {}\n", parts.join(", ")));
    }
    if let Some(hint) = err.hint() {
        out.push_str(&format!(
            "\n**What to do:** {}\n",
            sanitize_lines(&hint).replace('\n', " ")
        ));
    }
    out.push('\n');
    out
}

/// Says that the run failed, in every form the command line asked for.
pub fn report(ctx: &Context, err: &Error) {
    if let Error::ChangesPending { .. } = err {
        // Not a failure: the plan's report already says what would change.
        return;
    }
    if json_logs() {
        let c = culprit(ctx, err);
        let mut fields = Map::new();
        fields.insert("stage".into(), err.stage().into());
        fields.insert("exit_code".into(), err.code().into());
        fields.insert("hint".into(), err.hint().map(|h| sanitize_lines(&h)).into());
        if let Value::Object(c) = c {
            fields.extend(c.into_iter().filter(|(_, v)| !v.is_null()));
        }
        LogStderr::record(&json_record(
            "ERROR",
            &sanitize_lines(&err.to_string()),
            fields,
        ));
    } else {
        eprintln!("{}", err.render());
    }
    if ctx.output == Some(Output::Json) && !err.reported() {
        let _ = std::io::stdout()
            .lock()
            .write_all(format!("{}\n", to_json(ctx, err)).as_bytes());
    }
    if ctx.summary
        && let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty())
    {
        let written =
            crate::sudo::append_user_file(Path::new(&path), to_markdown(ctx, err).as_bytes());
        if let Err(e) = written {
            tracing::warn!(path = %Path::new(&path).display(), error = %e, "cannot append to GITHUB_STEP_SUMMARY");
        }
    }
}

/// The log format main set up, for [`set_json_logs`].
pub fn is_json(format: LogFormat) -> bool {
    format == LogFormat::Json
}

#[cfg(test)]
mod tests {
    use super::*;

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
