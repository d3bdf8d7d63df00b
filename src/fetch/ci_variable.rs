//! The CI-variable seam: `ci_variable:` (the value is in credfile's own environment variable)
//! and `ci_variable_file:` (the variable holds the path of a file with the value, GitLab's
//! file-type variables). The pipeline maps a protected secret into the credfile step only; the
//! value goes into a file, never into a hook's environment (hooks get an allow-list).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use secrecy::{SecretSlice, SecretString};

use super::{Fetched, Outcome, SecretValue};
use crate::aws::{Failure, FailureKind};
use crate::manifest::{SecretRef, SourceKind};

/// The failure code of a variable that is not set.
pub const MISSING: &str = "CiVariableNotSet";

/// Reads every reference; no network.
pub fn read(refs: Vec<SecretRef>) -> Outcome {
    refs.into_iter()
        .map(|r| {
            let result = read_one(&r);
            (r, result)
        })
        .collect()
}

fn read_one(r: &SecretRef) -> Result<Fetched, Failure> {
    let fail = |code: Option<&str>, message: String| Failure {
        code: code.map(str::to_string),
        status: None,
        message,
        kind: FailureKind::Request,
    };
    let Some(raw) = std::env::var_os(&r.id).filter(|v| !v.is_empty()) else {
        return Err(fail(
            Some(MISSING),
            format!("the environment variable `{}` is not set (or empty)", r.id),
        ));
    };
    let value = match r.kind {
        // The path comes from the caller's environment: under sudo it is opened as the
        // invoking user (crate::sudo::read_user_file), never with root's rights.
        SourceKind::CiVariableFile => {
            let path = std::path::PathBuf::from(&raw);
            let bytes = crate::sudo::read_user_file(&path).map_err(|e| {
                fail(
                    None,
                    format!(
                        "cannot read the file `{}` names ({}): {e}",
                        r.id,
                        path.display()
                    ),
                )
            })?;
            text_or_binary(bytes)
        }
        _ => text_or_binary(OsString::into_vec(raw)),
    };
    Ok(Fetched {
        arn: String::new(),
        name: r.id.clone(),
        version_id: String::new(),
        value,
    })
}

fn text_or_binary(bytes: Vec<u8>) -> SecretValue {
    match String::from_utf8(bytes) {
        Ok(s) => SecretValue::Text(SecretString::from(s)),
        Err(e) => SecretValue::Binary(SecretSlice::from(e.into_bytes())),
    }
}

/// The hint for a missing variable: the exact pipeline YAML that maps it, for GitHub and GitLab.
pub fn missing_hint(r: &SecretRef) -> String {
    let name = &r.id;
    match r.kind {
        SourceKind::CiVariableFile => format!(
            "set `{name}` in the credfile step only. GitLab: add a masked, protected variable of type File named {name} (Settings > CI/CD > Variables); it is passed as a path. GitHub (no file variables): write the secret to a file first, or use `ci_variable:` with `env:\n  {name}: ${{{{ secrets.{name} }}}}` on the credfile step"
        ),
        _ => format!(
            "set `{name}` in the credfile step only. GitHub Actions, on the step:\n  env:\n    {name}: ${{{{ secrets.{name} }}}}\n(an environment secret of the job's `environment:`). GitLab CI: add a masked, protected variable {name} (Settings > CI/CD > Variables); it reaches the job as ${name}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_has_the_yaml_for_both() {
        let r = SecretRef {
            kind: SourceKind::CiVariable,
            id: "DB_PASSWORD".into(),
            pin: crate::manifest::Pin::Current,
        };
        let h = missing_hint(&r);
        assert!(h.contains("DB_PASSWORD: ${{ secrets.DB_PASSWORD }}"), "{h}");
        assert!(h.contains("GitLab"), "{h}");
    }
}
