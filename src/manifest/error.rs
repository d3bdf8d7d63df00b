//! The manifest stage's error and its positioned diagnostics.

use std::fmt;
use std::path::PathBuf;

use super::MAX_MANIFEST_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the manifest is larger than {} bytes", path.display(), MAX_MANIFEST_BYTES)]
    TooLarge { path: PathBuf },
    #[error("{}:{line}:{column}: the manifest is not UTF-8 text", path.display())]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    #[error("{}", diagnostics.iter().map(|d| format!("{}:{d}", file.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        file: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{}: no environment `{env}` (the manifest defines: {})", file.display(), known.join(", "))]
    UnknownEnvironment {
        file: PathBuf,
        env: String,
        known: Vec<String>,
    },
    #[error("{}: environment `{env}` has no root directory", file.display())]
    NoRoot { file: PathBuf, env: String },
    #[error("--root {} contains `..`", path.display())]
    RootDotDot { path: PathBuf },
    #[error("cannot resolve --root {}: {source}", path.display())]
    RootArg {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ManifestError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ManifestError::Read { .. } => {
                Some("pass --manifest FILE or set CREDFILE_MANIFEST".to_string())
            }
            ManifestError::TooLarge { .. } => {
                Some("a manifest holds references only; split it per application".to_string())
            }
            ManifestError::NotUtf8 { .. } => Some("save the manifest as UTF-8 YAML".to_string()),
            ManifestError::Invalid { diagnostics, .. } => {
                diagnostics.iter().find_map(|d| d.hint.clone())
            }
            ManifestError::UnknownEnvironment { .. } => {
                Some("choose one of the environments listed, with --env or CREDFILE_ENV".into())
            }
            ManifestError::NoRoot { env, .. } => Some(format!(
                "set `root:` under `defaults` or `environments.{env}`, or pass --root DIR"
            )),
            ManifestError::RootArg { .. } => None,
            ManifestError::RootDotDot { .. } => Some(
                "give the directory without `..` (an absolute path, or one below the working directory); credfile never resolves `..` itself".into(),
            ),
        }
    }
}

/// One problem in the manifest, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
    /// The `credfile lint` rule this problem also is, when validation enforces a governance rule
    /// itself (a protected environment without `account`, an undefined `${var}`).
    pub rule: Option<&'static str>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

pub(super) fn hint_for_parse(message: &str) -> Option<String> {
    if [
        "unknown field `value`",
        "unknown field `values`",
        "unknown field `literal`",
    ]
    .iter()
    .any(|m| message.contains(m))
    {
        return Some(
            "the manifest holds references only: store the value in Secrets Manager and \
             reference it with `secret:`"
                .into(),
        );
    }
    if message.contains("unknown field") {
        return Some(
            "check the key's spelling against the manifest reference in the README".into(),
        );
    }
    None
}
