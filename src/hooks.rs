//! Change hooks: `on_change: [argv...]` per file and per environment, run after the commit and
//! only when something they cover changed.
//!
//! - Order: file hooks in manifest order, then the environment's hook; the same argv appearing
//!   more than once runs once, at its first position, covering the union of the changed paths.
//! - No shell: argv[0] is executed directly (found through the allow-listed `PATH`).
//! - Environment: cleared, then only [`ALLOWED_ENV`] from credfile's own environment, plus
//!   `CREDFILE_CHANGED` (the changed paths this hook covers, absolute, one per line),
//!   `CREDFILE_ROOT`, `CREDFILE_APP` and `CREDFILE_ENV`. Never an AWS credential, never a value.
//! - stdin is /dev/null; the hook's stdout and stderr go to credfile's stderr (stdout is the
//!   report). Working directory `/`.
//! - Each hook has a timeout; on expiry its whole process group is killed (SIGKILL).
//! - Every hook runs even when an earlier one failed; any failure makes the run exit with
//!   code 8 after the report (the files are committed either way). The paths a failed hook
//!   covers stay pending in the state file: the next apply runs the hooks for them again, even
//!   when no file changed, and exits 8 until they succeed.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::manifest::Plan;
use crate::materialize::{Applied, Outcome};

/// Variables a hook inherits from credfile's environment, when set (the manifest names them:
/// a `ci_variable:` may not take one of these names).
pub use crate::manifest::HOOK_ENV as ALLOWED_ENV;
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One hook to run and the changed paths (absolute) it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub argv: Vec<String>,
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookStatus {
    /// `plan`: it would run.
    Planned,
    Ok,
    Failed(i32),
    Signaled(i32),
    TimedOut,
    NotStarted(String),
}

impl HookStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            HookStatus::Planned => "planned",
            HookStatus::Ok => "ok",
            HookStatus::Failed(_) => "failed",
            HookStatus::Signaled(_) => "signaled",
            HookStatus::TimedOut => "timed_out",
            HookStatus::NotStarted(_) => "not_started",
        }
    }

    pub fn failed(&self) -> bool {
        !matches!(self, HookStatus::Planned | HookStatus::Ok)
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            HookStatus::Failed(c) => Some(*c),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HookResult {
    pub hook: Hook,
    pub status: HookStatus,
}

#[derive(Debug, thiserror::Error)]
#[error("the files are committed, but {} change hook(s) failed:{}", failed.len(), failed.iter().map(|r| format!("\n  {}: {}", crate::terminal::Escaped(&r.hook.argv.join(" ")), describe(&r.status))).collect::<String>())]
pub struct HookError {
    pub failed: Vec<HookResult>,
}

impl HookError {
    pub fn hint(&self) -> Option<String> {
        // The paths stay pending in the state file (`select`): the very next apply owes them.
        Some("the new files are live; the failed hook(s) stay owed: the next apply of this environment runs them again, even when nothing changed, and exits 8 until they succeed. Fix the hook (or what it reloads), then run apply again".into())
    }
}

fn describe(s: &HookStatus) -> String {
    match s {
        HookStatus::Failed(c) => format!("exited with status {c}"),
        HookStatus::Signaled(n) => format!("killed by signal {n}"),
        HookStatus::TimedOut => "timed out and was killed".into(),
        HookStatus::NotStarted(why) => format!("could not start: {why}"),
        other => other.as_str().into(),
    }
}

/// The hooks a run's changes call for, in order, de-duplicated.
pub fn select(plan: &Plan, applied: &Applied) -> Vec<Hook> {
    // Each hook with the set of its paths: lookups stay linear for an expanded set of 20,000
    // files.
    let mut hooks: Vec<(Hook, HashSet<PathBuf>)> = Vec::new();
    let mut add = |argv: &[String], paths: Vec<PathBuf>| {
        if argv.is_empty() || paths.is_empty() {
            return;
        }
        match hooks.iter_mut().find(|(h, _)| h.argv == argv) {
            Some((h, seen)) => {
                for p in paths {
                    if seen.insert(p.clone()) {
                        h.paths.push(p);
                    }
                }
            }
            None => hooks.push((
                Hook {
                    argv: argv.to_vec(),
                    paths: paths.clone(),
                },
                paths.into_iter().collect(),
            )),
        }
    };
    // Changed now, or changed by an earlier run that died before its hooks ran.
    let pending: HashSet<&PathBuf> = applied.pending.iter().collect();
    let owed = |o: &Outcome| o.status.changed() || pending.contains(&o.dest.path);
    for (spec, outcome) in plan.files.iter().zip(&applied.outcomes) {
        if owed(outcome) {
            add(&spec.on_change, vec![plan.root.join(&spec.path)]);
        }
    }
    let mut all: Vec<PathBuf> = applied
        .outcomes
        .iter()
        .chain(&applied.removed)
        .filter(|o| owed(o))
        .map(|o| plan.root.join(&o.dest.path))
        .collect();
    let mut seen: HashSet<PathBuf> = all.iter().cloned().collect();
    for p in &applied.pending {
        let full = plan.root.join(p);
        if seen.insert(full.clone()) {
            all.push(full);
        }
    }
    add(&plan.on_change, all);
    hooks.into_iter().map(|(h, _)| h).collect()
}

/// The paths (relative to the root) whose hooks failed in this run: they stay pending, so the
/// next apply runs those hooks again even when no file changed.
pub fn still_owed(plan: &Plan, results: &[HookResult]) -> Vec<PathBuf> {
    let mut owed: Vec<PathBuf> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for r in results.iter().filter(|r| r.status.failed()) {
        for p in &r.hook.paths {
            let rel = p.strip_prefix(&plan.root).unwrap_or(p).to_path_buf();
            if seen.insert(rel.clone()) {
                owed.push(rel);
            }
        }
    }
    owed
}

/// Runs each hook to completion or timeout, in order.
pub fn run(plan: &Plan, hooks: Vec<Hook>, timeout: Duration) -> Vec<HookResult> {
    hooks
        .into_iter()
        .map(|hook| {
            let status = run_one(plan, &hook, timeout);
            if status.failed() {
                tracing::error!(hook = %hook.argv.join(" "), status = %describe(&status), "change hook failed");
            } else {
                tracing::info!(hook = %hook.argv.join(" "), "change hook ran");
            }
            HookResult { hook, status }
        })
        .collect()
}

/// The environment a hook gets: the allow-list, then credfile's own variables.
pub fn environment(plan: &Plan, hook: &Hook) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = ALLOWED_ENV
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    let changed: Vec<String> = hook.paths.iter().map(|p| p.display().to_string()).collect();
    env.push(("CREDFILE_CHANGED".into(), changed.join("\n")));
    env.push(("CREDFILE_ROOT".into(), plan.root.display().to_string()));
    env.push(("CREDFILE_APP".into(), plan.app.clone()));
    env.push(("CREDFILE_ENV".into(), plan.env.clone()));
    env
}

fn run_one(plan: &Plan, hook: &Hook, timeout: Duration) -> HookStatus {
    let stderr = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => fd,
        Err(e) => return HookStatus::NotStarted(e.to_string()),
    };
    let out = match stderr.try_clone() {
        Ok(fd) => fd,
        Err(e) => return HookStatus::NotStarted(e.to_string()),
    };
    let mut cmd = Command::new(&hook.argv[0]);
    cmd.args(&hook.argv[1..])
        .env_clear()
        .envs(environment(plan, hook))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(stderr))
        // Its own process group, so a timeout can kill everything it started.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookStatus::NotStarted(e.to_string()),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return match (status.code(), status.signal()) {
                    (Some(0), _) => HookStatus::Ok,
                    (Some(c), _) => HookStatus::Failed(c),
                    (None, Some(sig)) => HookStatus::Signaled(sig),
                    (None, None) => HookStatus::Failed(-1),
                };
            }
            Ok(None) if Instant::now() >= deadline => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill();
                let _ = child.wait();
                return HookStatus::TimedOut;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return HookStatus::NotStarted(e.to_string()),
        }
    }
}
