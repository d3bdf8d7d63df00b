//! Report: what a run did, per file, for people (a table) or machines (`--output json`).
//! Paths, modes, owners, secret ids and version ids only: a value never reaches this module.

use std::collections::HashMap;
use std::io::Write;

use nix::unistd::{Gid, Group, Uid, User};
use serde_json::json;

use crate::cli::Output;
use crate::identity::Session;
use crate::manifest::Plan;
use crate::materialize::{Outcome, Status};
use crate::render::SourceInfo;

pub struct Report<'a> {
    pub command: &'static str,
    pub dry_run: bool,
    pub plan: &'a Plan,
    pub caller_arn: Option<&'a str>,
    pub files: Vec<(Outcome, Vec<SourceInfo>)>,
}

impl Report<'_> {
    fn count(&self, status: Status) -> usize {
        self.files
            .iter()
            .filter(|(o, _)| o.status == status)
            .count()
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "command": self.command,
            "dry_run": self.dry_run,
            "app": self.plan.app,
            "environment": self.plan.env,
            "protected": self.plan.protected,
            "root": self.plan.root.display().to_string(),
            "caller_arn": self.caller_arn,
            "files": self.files.iter().map(|(o, sources)| json!({
                "path": o.dest.path.display().to_string(),
                "status": o.status.as_str(),
                "mode": format!("{:04o}", o.dest.mode),
                "uid": o.dest.uid,
                "gid": o.dest.gid,
                "secrets": sources.iter().map(|s| json!({
                    "id": s.id, "arn": s.arn, "version_id": s.version_id,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "summary": {
                "created": self.count(Status::Created),
                "updated": self.count(Status::Updated),
                "unchanged": self.count(Status::Unchanged),
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
            let status = match (self.dry_run, o.status) {
                (true, Status::Created) => "create",
                (true, Status::Updated) => "update",
                (_, s) => s.as_str(),
            };
            let secrets = sources
                .iter()
                .map(|s| {
                    format!(
                        "{}@{}",
                        s.id,
                        s.version_id.chars().take(8).collect::<String>()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            rows.push([
                status.to_string(),
                format!("{:04o}", o.dest.mode),
                owners
                    .entry((o.dest.uid, o.dest.gid))
                    .or_insert_with(|| {
                        format!("{}:{}", user_name(o.dest.uid), group_name(o.dest.gid))
                    })
                    .clone(),
                o.dest.path.display().to_string(),
                secrets,
            ]);
        }
        let widths: Vec<usize> = (0..5)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = format!(
            "credfile {}: app {}, environment {}, root {}\n",
            self.command,
            self.plan.app,
            self.plan.env,
            self.plan.root.display()
        );
        if let Some(arn) = self.caller_arn {
            out.push_str(&format!("identity: {arn}\n"));
        }
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        let (c, u, n) = (
            self.count(Status::Created),
            self.count(Status::Updated),
            self.count(Status::Unchanged),
        );
        if self.dry_run {
            out.push_str(&format!(
                "plan: {c} to create, {u} to update, {n} unchanged; nothing was written\n"
            ));
        } else {
            out.push_str(&format!("{c} created, {u} updated, {n} unchanged\n"));
        }
        crate::error::sanitize(&out)
    }

    pub fn print(&self, output: Output) {
        let text = match output {
            Output::Human => self.to_human(),
            Output::Json => format!("{}\n", self.to_json()),
        };
        // A closed stdout (`| head`) is not a failure of the deploy.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
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
        Output::Json => format!(
            "{}\n",
            json!({
                "app": plan.app,
                "environment": plan.env,
                "source": session.source,
                "account": session.account,
                "arn": session.arn,
                "session_name": session.session_name,
                "expires": expires,
            })
        ),
        Output::Human => {
            let na = || "-".to_string();
            format!(
                "environment: {} (app {})\nsource:      {}\naccount:     {}\narn:         {}\nsession:     {}\nexpires:     {}\n",
                plan.env,
                plan.app,
                session.source,
                session.account.clone().unwrap_or_else(na),
                session.arn.clone().unwrap_or_else(na),
                session.session_name.clone().unwrap_or_else(na),
                expires.unwrap_or_else(|| "- (not a temporary session)".into()),
            )
        }
    };
    let _ = std::io::stdout()
        .lock()
        .write_all(crate::error::sanitize(&text).as_bytes());
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
