//! The top-level error that every stage folds into, and its exit code from [`crate::exit`].
//!
//! Each stage owns a typed error (`ManifestError`, `IdentityError`, ...) that carries the data
//! needed to name the culprit and a hint saying what to do. This module only decides the exit
//! code and how an error is printed, in one place (ripgrep's rule).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::audit::AuditError;
use crate::fetch::FetchError;
use crate::guard::GuardError;
use crate::hooks::HookError;
use crate::identity::IdentityError;
use crate::lint::LintFailed;
use crate::manifest::ManifestError;
use crate::materialize::WriteError;
use crate::policy::PolicyError;
use crate::render::RenderError;
use crate::sudo::SudoError;
use crate::terminal::sanitize_lines;

/// The exit-code table lives beneath every layer, in `exit.rs`.
use crate::exit as code;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Guard(#[from] GuardError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Lint(#[from] LintFailed),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "{count} difference(s) between the host and the manifest for environment `{env}` (listed above)"
    )]
    Drift { count: usize, env: String },
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Sudo(#[from] SudoError),
    #[error(transparent)]
    Dropin(#[from] crate::systemd_creds::DropinError),
    #[error(transparent)]
    Namespace(#[from] crate::namespace::NsError),
    #[error(
        "plan: {files} file(s) to change and {hooks} change hook(s) to run in environment `{env}`"
    )]
    ChangesPending {
        files: usize,
        hooks: usize,
        env: String,
    },
    #[error("{}: not cleaning protected environment `{env}`: {}", root.display(), if *declined { "not confirmed" } else { "no terminal to confirm on, and no --yes" })]
    CleanUnconfirmed {
        env: String,
        root: std::path::PathBuf,
        declined: bool,
    },
}

/// The stage a failure is reported under: the run flow's stages (docs/src/flow.md) and the
/// commands that stop before them. In the JSON failure object, the step summary and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Manifest,
    Preflight,
    Identity,
    Fetch,
    Render,
    Materialize,
    Hooks,
    Verify,
    Plan,
    Clean,
    Sudo,
    Policy,
    Lint,
    Audit,
    /// `credfile systemd-dropin`, the command's own refusals.
    #[serde(rename = "systemd-dropin")]
    SystemdDropin,
    /// `credfile run`: the private namespace, its tmpfs and the command.
    Namespace,
    Internal,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The serialized name: one spelling for JSON and text.
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => write!(f, "{self:?}"),
        }
    }
}

/// What an error is about, from the stage error's own data: the manifest file and line, the
/// secret, the path on the host. For `--output json` and the step summary.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Culprit {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub secret: Option<String>,
    pub path: Option<PathBuf>,
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// The number from [`code`] for this error.
    pub fn code(&self) -> u8 {
        match self {
            Error::Manifest(_) => code::USAGE,
            Error::Identity(_) => code::IDENTITY,
            Error::Fetch(_) => code::FETCH,
            Error::Render(_) => code::RENDER,
            Error::Guard(_) | Error::Write(_) => code::WRITE,
            Error::Policy(_) => code::USAGE,
            Error::Lint(_) | Error::Audit(AuditError::Shared { .. }) => code::GOVERNANCE,
            Error::Audit(AuditError::Random(_)) => code::INTERNAL,
            Error::Runtime(_) => code::INTERNAL,
            Error::Drift { .. } => code::DRIFT,
            Error::Hook(_) => code::HOOK,
            Error::ChangesPending { .. } => code::CHANGES_PENDING,
            Error::CleanUnconfirmed { .. } => code::USAGE,
            Error::Sudo(_) => code::USAGE,
            Error::Dropin(_) => code::USAGE,
            Error::Namespace(e) => e.code(),
        }
    }

    /// The stage that failed, as named in the run flow (docs/src/flow.md) and the JSON failure report.
    pub fn stage(&self) -> Stage {
        match self {
            Error::Manifest(_) => Stage::Manifest,
            Error::Identity(_) => Stage::Identity,
            Error::Fetch(_) => Stage::Fetch,
            Error::Render(_) => Stage::Render,
            Error::Guard(_) => Stage::Preflight,
            Error::Write(_) => Stage::Materialize,
            Error::Policy(_) => Stage::Policy,
            Error::Lint(_) => Stage::Lint,
            Error::Audit(_) => Stage::Audit,
            Error::Runtime(_) => Stage::Internal,
            Error::Drift { .. } => Stage::Verify,
            Error::Hook(_) => Stage::Hooks,
            Error::ChangesPending { .. } => Stage::Plan,
            Error::CleanUnconfirmed { .. } => Stage::Clean,
            Error::Sudo(_) => Stage::Sudo,
            Error::Dropin(_) => Stage::SystemdDropin,
            Error::Namespace(_) => Stage::Namespace,
        }
    }

    /// The stage's report already went to stdout (a report with failed hooks, the drift list,
    /// the reuse pairs, the plan): `--output json` prints no second object.
    pub fn reported(&self) -> bool {
        matches!(
            self,
            Error::Hook(_)
                | Error::Drift { .. }
                | Error::ChangesPending { .. }
                | Error::Audit(AuditError::Shared { .. })
                | Error::Lint(_)
        )
    }

    /// The culprit, from the data the stage error carries (the first one when it names several).
    pub fn culprit(&self) -> Culprit {
        use crate::manifest::ManifestError as M;
        use crate::materialize::WriteError as W;
        let mut c = Culprit::default();
        match self {
            Error::Manifest(e) => match e {
                M::Read { path, .. } | M::TooLarge { path } => c.file = Some(path.clone()),
                M::NotUtf8 { path, line, .. } => {
                    c.file = Some(path.clone());
                    c.line = Some(*line);
                }
                M::Invalid { file, diagnostics } => {
                    c.file = Some(file.clone());
                    c.line = diagnostics.first().map(|d| d.line);
                }
                M::UnknownEnvironment { file, .. } | M::NoRoot { file, .. } => {
                    c.file = Some(file.clone())
                }
                M::RootDotDot { path } | M::RootArg { path, .. } => c.path = Some(path.clone()),
            },
            Error::Fetch(e) => c.secret = e.failures.first().map(|(r, _)| r.id.clone()),
            Error::Render(e) => {
                if let Some(p) = e.problems.first() {
                    c.line = Some(p.line);
                    c.secret = Some(p.secret.clone());
                    c.path = Some(p.path.clone());
                }
            }
            Error::Guard(e) => match e {
                GuardError::InRepository { path, line, .. }
                | GuardError::NotIgnored { path, line, .. } => {
                    c.path = Some(path.clone());
                    c.line = Some(*line);
                }
                GuardError::Git { path, .. } => c.path = Some(path.clone()),
                GuardError::NotMemoryFs { root, .. } => c.path = Some(root.clone()),
            },
            Error::Write(e) => match e {
                W::UnknownPrincipal { path, line, .. } | W::Unreachable { path, line, .. } => {
                    c.path = Some(path.clone());
                    c.line = Some(*line);
                }
                W::Unsafe { path, .. }
                | W::ChownDenied { path, .. }
                | W::ReadOnly { path }
                | W::NotWritable { path, .. }
                | W::Io { path, .. }
                | W::Tampered { path }
                | W::BadState { path, .. }
                | W::AfterCommit { path, .. } => c.path = Some(path.clone()),
                W::Partial { failed, .. } => c.path = Some(failed.clone()),
                W::OtherOwner { root, .. } | W::LayoutChange { root, .. } => {
                    c.path = Some(root.clone())
                }
                W::Creds(_) => {}
            },
            Error::Hook(e) => c.path = e.failed.first().and_then(|r| r.hook.paths.first().cloned()),
            Error::CleanUnconfirmed { root, .. } => c.path = Some(root.clone()),
            Error::Sudo(e) => match e {
                crate::sudo::SudoError::UntrustedManifest { path, .. } => {
                    c.file = Some(path.clone())
                }
                crate::sudo::SudoError::UntrustedHook { program, .. } => {
                    c.path = Some(program.clone())
                }
                crate::sudo::SudoError::Unreadable { path, .. } => c.file = Some(path.clone()),
                crate::sudo::SudoError::Override { .. }
                | crate::sudo::SudoError::FileVariable { .. }
                | crate::sudo::SudoError::Invoker { .. } => {}
            },
            Error::Namespace(crate::namespace::NsError::Root { root, .. })
            | Error::Namespace(crate::namespace::NsError::Kernel { root, .. }) => {
                c.path = Some(root.clone())
            }
            Error::Namespace(crate::namespace::NsError::RunAsUnknown { file, line, .. })
            | Error::Namespace(crate::namespace::NsError::EveryWithDynamic {
                file, line, ..
            }) => {
                c.file = Some(file.clone());
                c.line = Some(*line);
            }
            Error::Namespace(_) => {}
            Error::Identity(_)
            | Error::Policy(_)
            | Error::Lint(_)
            | Error::Audit(_)
            | Error::Runtime(_)
            | Error::Drift { .. }
            | Error::Dropin(_)
            | Error::ChangesPending { .. } => {}
        }
        c
    }

    /// What the user should do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Manifest(e) => e.hint(),
            Error::Identity(e) => e.hint(),
            Error::Fetch(e) => e.hint(),
            Error::Render(e) => e.hint(),
            Error::Guard(e) => e.hint(),
            Error::Write(e) => e.hint(),
            Error::Policy(e) => e.hint(),
            Error::Lint(e) => e.hint(),
            Error::Audit(e) => e.hint(),
            Error::Runtime(_) => None,
            Error::Drift { env, .. } => Some(format!(
                "run `credfile apply --env {env}` to restore the files, after finding out who changed them"
            )),
            Error::Hook(e) => e.hint(),
            Error::ChangesPending { env, .. } => Some(format!(
                "run `credfile apply --env {env}` to make them; exit 10 is --detailed-exitcode's \"changes pending\", not a failure"
            )),
            Error::CleanUnconfirmed { env, .. } => Some(format!(
                "see what would go with `credfile clean --env {env} --dry-run`, then answer `y` on a terminal or pass --yes"
            )),
            Error::Sudo(e) => e.hint(),
            Error::Dropin(e) => Some(e.hint()),
            Error::Namespace(e) => Some(e.hint()),
        }
    }

    /// The text printed on stderr: `error: ...` and an optional `  hint: ...` line. Names from
    /// outside are escaped where the stage errors show them (one per line); what is left of
    /// the layout is checked once more here, so nothing can rewrite the operator's terminal.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}", sanitize_lines(&self.to_string()));
        if let Some(hint) = self.hint() {
            out.push_str("\n  hint: ");
            out.push_str(&sanitize_lines(&hint).replace('\n', " "));
        }
        out
    }
}
