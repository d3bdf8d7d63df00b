//! The rules of credfile's checks: one registry for `validate` (which enforces some of them,
//! such as `literal-value`) and `lint` (which reports them all, with levels and help).

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// One lint rule: its id (stable, used in output and SARIF), its level when it is not decided per
/// finding, and what it checks.
#[derive(Debug)]
pub struct Rule {
    pub id: &'static str,
    pub level: Level,
    pub summary: &'static str,
    pub help: &'static str,
}

/// Every rule lint knows, in the order docs/src/governance.md lists them.
pub const RULES: &[Rule] = &[
    Rule {
        id: "manifest-invalid",
        level: Level::Error,
        summary: "The manifest parses and validates.",
        help: "Fix the manifest error at the position given; `credfile validate` reports the same problems.",
    },
    Rule {
        id: "env-shared-secret",
        level: Level::Warning,
        summary: "Each environment reads its own secrets.",
        help: "The same secret is referenced by two environments: a leak or a mistake in one becomes a leak in the other. Give each environment its own secret (for example `${prefix}/db` with a per-environment `prefix`). An error when either environment is protected.",
    },
    Rule {
        id: "app-shared-secret",
        level: Level::Warning,
        summary: "Each app (system) reads its own secrets.",
        help: "Two manifests (two apps) reference the same secret: every system should have its own credentials so that one can be rotated or revoked without the other. An error when either environment is protected.",
    },
    Rule {
        id: "protected-no-account",
        level: Level::Error,
        summary: "A protected environment pins its AWS account.",
        help: "Add `account: \"123456789012\"` so credfile refuses to fetch with credentials from any other account.",
    },
    Rule {
        id: "protected-no-role",
        level: Level::Error,
        summary: "A protected environment names the role it reads with.",
        help: "Set `identity.role_arn` to a role that can read only this environment's secrets; `credfile policy --env ENV` prints its policy.",
    },
    Rule {
        id: "protected-web-identity",
        level: Level::Error,
        summary: "A protected environment names how it gets its identity.",
        help: "Set `identity.web_identity` to `github`, `gitlab`, `none` (the host's role) or, deliberately, `auto`: under sudo, which strips CI variables, credfile then refuses rather than switch to the host's identity.",
    },
    Rule {
        id: "mode-writable",
        level: Level::Error,
        summary: "No mode lets the group or others write.",
        help: "A secret file or a directory credfile creates must not be group- or world-writable: use \"0400\" or \"0440\" for files and \"0700\" or \"0750\" for directories.",
    },
    Rule {
        id: "mode-other-read",
        level: Level::Error,
        summary: "No file mode lets others read.",
        help: "Grant read to the owner (\"0400\") or to a group (\"0440\" with `group:`), never to every user on the host.",
    },
    Rule {
        id: "root-not-memory",
        level: Level::Warning,
        summary: "A protected environment writes to a memory filesystem.",
        help: "Put `root` under /run or /dev/shm (tmpfs) so secrets never reach a disk, its backups or its snapshots.",
    },
    Rule {
        id: "path-in-git-tree",
        level: Level::Error,
        summary: "No secret file lands in a git work tree.",
        help: "A file inside a repository's work tree is one `git add` away from source control: choose a root outside any checkout.",
    },
    Rule {
        id: "path-in-web-root",
        level: Level::Error,
        summary: "No secret file lands where a web server or a client build would publish it.",
        help: "Directories such as public/, static/, dist/, www/ or /var/www are served or shipped to clients: choose a root outside them.",
    },
    Rule {
        id: "literal-value",
        level: Level::Error,
        summary: "The manifest holds references only, never a value.",
        help: "Something in the manifest looks like a secret (a high-entropy string, an AWS access key id, a PEM block, a token, a password or a passphrase): move it to Secrets Manager, reference it with `secret:`, and rotate it, since it is in version control now.",
    },
    Rule {
        id: "var-unknown",
        level: Level::Error,
        summary: "Every `${var}` is defined.",
        help: "Define the variable under the environment's `vars`, or limit the entry with `environments:`.",
    },
    Rule {
        id: "var-unused",
        level: Level::Warning,
        summary: "Every variable is used.",
        help: "A variable no entry uses is dead configuration, or a sign that an entry references the wrong variable: remove it or use it.",
    },
    Rule {
        id: "vault-plain-http",
        level: Level::Error,
        summary: "Vault is reached over https (plain http only on this host).",
        help: "`vault.address` is http:// to another host: the Vault token and every value would cross the network in clear text. Use https:// (with `ca_file:` for a private CA); http is accepted on 127.0.0.1, ::1 and localhost only.",
    },
    Rule {
        id: "vault-token-auth",
        level: Level::Warning,
        summary: "Vault sign-in uses the pipeline's or host's identity, not a long-lived token.",
        help: "`vault.auth.method: token` reads VAULT_TOKEN or ~/.vault-token: a standing credential, refused in CI and in protected environments. Use `jwt` in pipelines, `aws` or `kubernetes` on hosts and pods, or `approle` with the secret id from a protected CI variable. An error in a protected environment.",
    },
    Rule {
        id: "ci-variable-tier",
        level: Level::Warning,
        summary: "Values come from a secret manager, not from CI variables.",
        help: "A CI variable (`ci_variable:`, `ci_variable_file:`) is the weaker tier: no AWS audit trail of who read it, no per-environment IAM, rotation by hand. Move the value to Secrets Manager and reference it with `secret:`.",
    },
];

/// Looks up a rule by id. Every id used is a constant listed in [`RULES`] (a unit test checks
/// the ones validation uses), so a miss is a bug: debug builds stop on it, release builds report
/// the finding as `manifest-invalid` rather than crash.
pub fn rule(id: &str) -> &'static Rule {
    let found = RULES.iter().find(|r| r.id == id);
    debug_assert!(found.is_some(), "unknown lint rule `{id}`");
    found.unwrap_or(&RULES[0])
}
