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
            ManifestError::UnknownEnvironment { env, known, .. } => Some(format!(
                "{}choose one of the environments listed, with --env or CREDFILE_ENV",
                did_you_mean(env, known.iter().map(String::as_str))
                    .map(|d| format!("{d}; "))
                    .unwrap_or_default()
            )),
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
            "the manifest holds references only: store the value in Secrets Manager, \
             Parameter Store or Vault and reference it with `secret:`, `parameter:` or `vault:`"
                .into(),
        );
    }
    if let Some(rest) = message.split("unknown field `").nth(1) {
        let word = rest.split('`').next().unwrap_or_default();
        // serde lists the expected fields after the unknown one: `expected one of `a`, `b``.
        let expected = rest
            .split_once("expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).collect::<Vec<_>>())
            .unwrap_or_default();
        return Some(match did_you_mean(word, expected) {
            Some(d) => format!("{d} (docs/src/manifest.md lists every key)"),
            None => {
                "check the key's spelling against the manifest reference (docs/src/manifest.md)"
                    .into()
            }
        });
    }
    None
}

/// `did you mean `x`?` for the candidate closest to `word`, when one is close enough to be a
/// typo (Levenshtein distance at most a third of the word's length, and at least 1).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Edit distance over characters, a swap of two neighbours counting as one edit (`mdoe`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_and_nothing_far() {
        assert_eq!(edit_distance("mdoe", "mode"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("production", "production"), 0);
        assert_eq!(
            did_you_mean("prodution", ["staging", "production"]).as_deref(),
            Some("did you mean `production`?")
        );
        assert_eq!(
            did_you_mean("mdoe", ["path", "mode", "owner"]).as_deref(),
            Some("did you mean `mode`?")
        );
        assert_eq!(did_you_mean("xyz", ["staging", "production"]), None);
    }

    #[test]
    fn unknown_fields_get_the_closest_expected_one() {
        let m = "files[0]: unknown field `ownr`, expected one of `path`, `owner`, `group`";
        assert_eq!(
            hint_for_parse(m).as_deref(),
            Some("did you mean `owner`? (docs/src/manifest.md lists every key)")
        );
        let m = "unknown field `zzzzzz`, expected `version`";
        assert!(
            hint_for_parse(m)
                .unwrap()
                .contains("check the key's spelling")
        );
    }
}
