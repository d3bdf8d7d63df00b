//! The command's environment: the caller's, less every variable that credfile itself signs in
//! with or reads a value from (docs/src/run.md, "What the command gets"). The files carry the
//! secrets; the environment carries only `CREDFILE_RUN_ROOT`, the path of the private root.

use std::ffi::{OsStr, OsString};

/// The variable that tells the command where its files are.
/// Not `CREDFILE_ROOT`: that is `--root`'s variable, and a credfile the command runs would take
/// it as its own root.
pub const ROOT_VARIABLE: &str = "CREDFILE_RUN_ROOT";

/// Credentials, or the paths and URLs of credentials, that credfile's identity stage uses: the
/// command must not sign in as credfile's deploy identity with them.
pub const CREDENTIAL_VARIABLES: &[&str] = &[
    // AWS static keys and sessions, web identity and the container credential endpoints.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    // GitHub Actions' OIDC token request (what credfile trades for an AWS session).
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    // Vault and OpenBao tokens.
    "VAULT_TOKEN",
    "BAO_TOKEN",
    // credfile's own setting of where to write (`--root`): not passed on to the command.
    "CREDFILE_ROOT",
];

/// `vars` without [`CREDENTIAL_VARIABLES`] and without the `also` names (the manifest's
/// `ci_variable:`/`ci_variable_file:` variables and its GitLab `id_tokens` variable), plus
/// `CREDFILE_RUN_ROOT=root`. Returns the environment and the names it dropped (for the log: names
/// only).
pub fn scrub(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    also: &[String],
    root: &OsStr,
) -> (Vec<(OsString, OsString)>, Vec<String>) {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (k, v) in vars {
        let name = k.to_string_lossy();
        if CREDENTIAL_VARIABLES.contains(&name.as_ref()) || also.iter().any(|a| *a == name) {
            if name != ROOT_VARIABLE {
                dropped.push(name.into_owned());
            }
            continue;
        }
        kept.push((k, v));
    }
    kept.push((ROOT_VARIABLE.into(), root.to_os_string()));
    dropped.sort();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_the_manifests_variables_are_dropped() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("AWS_SESSION_TOKEN", "x"),
            ("AWS_REGION", "us-east-1"),
            ("VAULT_TOKEN", "y"),
            ("DEPLOY_KEY", "z"),
            ("CREDFILE_ROOT", "/elsewhere"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let (kept, dropped) = scrub(vars, &["DEPLOY_KEY".into()], OsStr::new("/run/app"));
        let names: Vec<_> = kept.iter().map(|(k, _)| k.to_string_lossy()).collect();
        assert_eq!(names, ["PATH", "AWS_REGION", ROOT_VARIABLE]);
        assert_eq!(kept[2].1, "/run/app");
        assert_eq!(
            dropped,
            [
                "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                "AWS_SESSION_TOKEN",
                "CREDFILE_ROOT",
                "DEPLOY_KEY",
                "VAULT_TOKEN"
            ]
        );
    }
}
