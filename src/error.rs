//! The single exit-code table and the top-level error that every stage folds into.
//!
//! Each stage owns a typed error (`ManifestError`, `IdentityError`, ...) that carries the data
//! needed to name the culprit and a hint saying what to do. This module only decides the exit
//! code and how an error is printed, in one place (ripgrep's rule).

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
use crate::terminal::sanitize;

/// Exit codes, documented in the README. Never reuse a number for another meaning.
pub mod code {
    pub const OK: u8 = 0;
    pub const INTERNAL: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const IDENTITY: u8 = 3;
    pub const FETCH: u8 = 4;
    pub const RENDER: u8 = 5;
    pub const WRITE: u8 = 6;
    /// `verify` found the host different from the manifest.
    pub const DRIFT: u8 = 7;
    /// The files are committed, but a change hook failed.
    pub const HOOK: u8 = 8;
    /// Governance findings: `lint` found errors, or `audit reuse` found a protected environment
    /// sharing a value.
    pub const GOVERNANCE: u8 = 9;
}

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
            Error::Sudo(_) => code::USAGE,
        }
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
            Error::Sudo(e) => e.hint(),
        }
    }

    /// The text printed on stderr: `error: ...` and an optional `  hint: ...` line.
    /// Remote text (AWS messages, file names) is stripped of control characters first so that
    /// nothing can rewrite the operator's terminal.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}", sanitize(&self.to_string()));
        if let Some(hint) = self.hint() {
            out.push_str("\n  hint: ");
            out.push_str(&sanitize(&hint));
        }
        out
    }
}
