//! The human forms: the tables and lines a person reads on a terminal (`--output human`, the
//! default). Every name from outside is escaped ([`Escaped`], [`sanitize`]), so a line on the
//! screen is a line of the report.

use std::collections::HashMap;

use nix::unistd::{Gid, Group, Uid, User};

use super::types::{RunReport, Secret, ValidateReport, VerifyReport, Whoami};
use super::words::FileStatus;
use crate::manifest::Plan;
use crate::materialize::Cleaned;
use crate::terminal::{Escaped, sanitize, sanitize_lines};

/// `apply` and `plan`: a heading, one row per file, the counts, the hooks.
pub fn run(r: &RunReport) -> String {
    let mut rows = vec![[
        "STATUS".to_string(),
        "MODE".to_string(),
        "OWNER".to_string(),
        "PATH".to_string(),
        "SECRET@VERSION".to_string(),
    ]];
    // One passwd/group lookup per distinct id, not two per file (each is an NSS query).
    let mut owners: HashMap<(u32, u32), String> = HashMap::new();
    for f in &r.files {
        rows.push([
            status_word(r.dry_run, f.status).to_string(),
            f.mode.clone(),
            owners
                .entry((f.uid, f.gid))
                .or_insert_with(|| format!("{}:{}", user_name(f.uid), group_name(f.gid)))
                .clone(),
            sanitize(&f.path),
            sanitize(&secrets_cell(&f.secrets, 8)),
        ]);
    }
    let s = &r.scope;
    let mut out = format!(
        "credfile {}: app {}, environment {}, root {} (layout {})\n",
        r.command.as_str(),
        Escaped(&s.app),
        Escaped(&s.environment),
        Escaped(&s.root),
        s.layout.as_str()
    );
    if let Some(arn) = &s.caller_arn {
        out.push_str(&format!("identity: {}\n", Escaped(arn)));
    }
    out.push_str(&table(&rows));
    let n = &r.summary;
    let (c, u, k, d) = (n.created, n.updated, n.unchanged, n.removed);
    if r.dry_run {
        out.push_str(&format!(
            "plan: {c} to create, {u} to update, {k} unchanged, {d} to remove; nothing was written\n"
        ));
    } else {
        out.push_str(&format!(
            "{c} created, {u} updated, {k} unchanged, {d} removed\n"
        ));
    }
    for h in &r.hooks {
        out.push_str(&format!(
            "hook {}: {}\n",
            h.status.as_str(),
            Escaped(&h.argv.join(" "))
        ));
    }
    sanitize_lines(&out)
}

/// A file's status in words; for plan, what apply would do.
pub fn status_word(dry_run: bool, status: FileStatus) -> &'static str {
    match (dry_run, status) {
        (true, FileStatus::Created) => "create",
        (true, FileStatus::Updated) => "update",
        (true, FileStatus::Removed) => "remove",
        (_, s) => s.as_str(),
    }
}

/// `verify`: in sync, or a table of the differences; then what it could not check.
pub fn verify(r: &VerifyReport) -> String {
    let s = &r.scope;
    let mut out = format!(
        "credfile verify: app {}, environment {}, root {} (layout {}{})\n",
        Escaped(&s.app),
        Escaped(&s.environment),
        Escaped(&s.root),
        s.layout.as_str(),
        if r.offline {
            "; offline: content not compared"
        } else {
            ""
        }
    );
    if r.drift.is_empty() {
        out.push_str(&format!(
            "in sync: {} file(s) as the manifest says\n",
            r.files_checked
        ));
    } else {
        let mut rows = vec![[
            "DRIFT".to_string(),
            "PATH".to_string(),
            "DETAIL".to_string(),
        ]];
        for d in &r.drift {
            rows.push([
                d.kind.as_str().to_string(),
                sanitize(&d.path),
                sanitize(&d.detail),
            ]);
        }
        out.push_str(&table(&rows));
    }
    for what in &r.not_checked {
        out.push_str(&format!("not checked: {what}\n"));
    }
    sanitize_lines(&out)
}

/// `validate` of a valid manifest: the environments checked.
pub fn validate(r: &ValidateReport) -> String {
    let envs: Vec<String> = r
        .environments
        .iter()
        .map(|e| format!("{} ({} files)", Escaped(&e.name), e.files))
        .collect();
    format!(
        "{}: valid; environments: {}\n",
        Escaped(&r.manifest),
        envs.join(", ")
    )
}

/// `whoami`.
pub fn whoami(w: &Whoami) -> String {
    let e = |s: &Option<String>| s.as_deref().map_or_else(|| "-".to_string(), sanitize);
    format!(
        "environment: {} (app {})\nsource:      {}\naccount:     {}\narn:         {}\nsession:     {}\nexpires:     {}\n",
        Escaped(&w.environment),
        Escaped(&w.app),
        Escaped(&w.source),
        e(&w.account),
        e(&w.arn),
        e(&w.session_name),
        w.expires
            .clone()
            .unwrap_or_else(|| "- (not a temporary session)".into()),
    )
}

/// `clean`: what it removed and kept; `dry_run`: what it would.
pub fn clean(plan: &Plan, done: &Cleaned, dry_run: bool) -> String {
    let (removed, kept) = if dry_run {
        ("would remove", "would keep  ")
    } else {
        ("removed ", "kept    ")
    };
    let mut out = format!(
        "credfile clean{}: app {}, environment {}, root {}\n",
        if dry_run { " --dry-run" } else { "" },
        plan.app,
        plan.env,
        plan.root.display()
    );
    if done.nothing_recorded {
        out.push_str("nothing to remove: no credfile state in this root\n");
    }
    let shown = |p: &std::path::Path| sanitize(&p.display().to_string());
    for p in &done.removed {
        out.push_str(&format!("{removed} {}\n", shown(p)));
    }
    for p in &done.dirs_if_empty {
        out.push_str(&format!("{removed} {} (if empty by then)\n", shown(p)));
    }
    for (p, why) in &done.kept {
        out.push_str(&format!("{kept} {}: {}\n", shown(p), Escaped(why)));
    }
    if dry_run {
        out.push_str(&format!(
            "dry run: {} to remove, {} to keep; nothing was removed\n",
            done.removed.len(),
            done.kept.len()
        ));
    } else {
        out.push_str(&format!(
            "{} removed, {} kept\n",
            done.removed.len(),
            done.kept.len()
        ));
    }
    out
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
pub fn source_label(s: &Secret) -> String {
    match s.source {
        "ssm" => format!("ssm:{}", s.id),
        "ci_variable" => format!("ci:{}", s.id),
        "ci_variable_file" => format!("ci-file:{}", s.id),
        _ => s.id.clone(),
    }
}

fn secrets_cell(secrets: &[Secret], version_chars: usize) -> String {
    secrets
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

pub fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

pub fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}
