//! The checks behind each lint rule. They work on the raw manifest (stage one), so that they run
//! even when validation fails, and take validation's own diagnostics as findings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use super::access::{Scope, others_reach, parse_mode};
use super::env::{Env, applies, effective_environments, env_path, key};
use super::refs::{Kind, Ref, cluster, references, shared_between_apps, sources, var_names};
use super::{Finding, Level, finish, rule};
use crate::manifest::literal::{literal_candidates, message as literal_message};
use crate::manifest::raw::{self, Seg};
use crate::manifest::suppress::{Allowed, suppressions};
use crate::manifest::{self, ManifestError};

/// Checks every manifest (path and text), alone and against each other.
/// Template files are read through `files` (under sudo, [`crate::sudo::Fence`]).
pub fn check_manifests(inputs: &[(PathBuf, String)], files: &dyn manifest::Files) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut all_refs: Vec<Ref> = Vec::new();
    let mut allowed: Vec<Allowed> = Vec::new();
    for (path, text) in inputs {
        let mut doc = Doc {
            file: path,
            text,
            files,
            findings: Vec::new(),
        };
        doc.validation();
        doc.literals();
        if let Ok(m) = raw::parse(text) {
            let envs = effective_environments(&m);
            doc.environments(&envs);
            doc.web_identity_named(&envs);
            doc.vault_token(&m, &envs);
            doc.modes(&m);
            doc.roots(&envs, path);
            doc.file_paths(&m);
            doc.unused_vars(&m);
            doc.ci_variables(&m);
            let refs = references(path, text, &m, &envs);
            doc.shared_between_environments(&refs);
            all_refs.extend(refs);
            allowed.extend(suppressions(path, text, &m));
        }
        findings.extend(doc.findings);
    }
    findings.extend(shared_between_apps(&all_refs));
    apply_suppressions(&mut findings, &allowed);
    finish(findings)
}

struct Doc<'a> {
    file: &'a Path,
    text: &'a str,
    files: &'a dyn manifest::Files,
    findings: Vec<Finding>,
}

impl Doc<'_> {
    fn add(&mut self, rule_id: &'static str, level: Level, at: &[Seg], message: String) {
        let (line, column) = raw::locate(self.text, at);
        self.add_at(rule_id, level, line, column, message);
    }

    fn add_at(
        &mut self,
        rule_id: &'static str,
        level: Level,
        line: usize,
        column: usize,
        message: String,
    ) {
        let r = rule(rule_id);
        self.findings.push(Finding {
            rule: r.id,
            level,
            file: self.file.to_path_buf(),
            line,
            column,
            message,
            hint: Some(r.help.to_string()),
            suppressed: None,
        });
    }

    /// Validation's diagnostics: `manifest-invalid`, or the rule a diagnostic enforces.
    fn validation(&mut self) {
        let diagnostics = match manifest::from_text(self.file, self.text, self.files) {
            Ok(_) => return,
            Err(ManifestError::Invalid { diagnostics, .. }) => diagnostics,
            Err(other) => vec![manifest::Diagnostic {
                line: 1,
                column: 1,
                message: other.to_string(),
                hint: other.hint(),
                rule: None,
            }],
        };
        // `literal-value` comes from [`Self::literals`], with its suppressions marked.
        for d in diagnostics
            .into_iter()
            .filter(|d| d.rule != Some(manifest::RULE_LITERAL_VALUE))
        {
            let r = rule(d.rule.unwrap_or("manifest-invalid"));
            self.findings.push(Finding {
                rule: r.id,
                level: Level::Error,
                file: self.file.to_path_buf(),
                line: d.line,
                column: d.column,
                message: d.message,
                hint: d.hint.or_else(|| Some(r.help.to_string())),
                suppressed: None,
            });
        }
    }

    /// `literal-value`: every line of the text, comments included.
    fn literals(&mut self) {
        for (i, line) in self.text.lines().enumerate() {
            for c in literal_candidates(line) {
                self.add_at(
                    "literal-value",
                    Level::Error,
                    i + 1,
                    c.column,
                    literal_message(&c),
                );
            }
        }
    }

    /// `protected-no-role` (`protected-no-account` comes from validation).
    fn environments(&mut self, envs: &[Env<'_>]) {
        for e in envs {
            if e.protected && e.raw.identity.role_arn.is_none() {
                self.add(
                    "protected-no-role",
                    Level::Error,
                    &env_path(e.name, &[]),
                    format!(
                        "protected environment `{}` has no `identity.role_arn`: it would read with whatever identity the host has",
                        e.name
                    ),
                );
            }
        }
    }

    /// `protected-web-identity`: with a role, the implicit `auto` picks the identity from the
    /// environment it finds, and under sudo (which strips CI variables) that is the host's.
    fn web_identity_named(&mut self, envs: &[Env<'_>]) {
        for e in envs {
            let id = &e.raw.identity;
            if e.protected && id.role_arn.is_some() && id.web_identity.is_none() {
                self.add(
                    "protected-web-identity",
                    Level::Error,
                    &env_path(e.name, &[key("identity")]),
                    format!(
                        "protected environment `{}` does not name its `identity.web_identity`: which identity assumes the role depends on the variables the run happens to see",
                        e.name
                    ),
                );
            }
        }
    }

    /// `vault-token-auth`: `method: token` is a standing credential; refused at run time in CI
    /// and in protected environments (an error here then).
    fn vault_token(&mut self, m: &raw::Manifest, envs: &[Env<'_>]) {
        use crate::manifest::raw::VaultMethod;
        let method_of = |v: Option<&raw::Vault>| v.and_then(|v| v.auth.as_ref()).map(|a| a.method);
        for e in envs {
            let (method, at) = match method_of(e.raw.vault.as_ref()) {
                Some(method) => (
                    method,
                    env_path(e.name, &[key("vault"), key("auth"), key("method")]),
                ),
                None => (
                    method_of(m.defaults.vault.as_ref()).flatten(),
                    vec![key("defaults"), key("vault"), key("auth"), key("method")],
                ),
            };
            if method == Some(VaultMethod::Token) {
                self.add(
                    "vault-token-auth",
                    if e.protected { Level::Error } else { Level::Warning },
                    &at,
                    format!(
                        "environment `{}` signs in to Vault with a long-lived token (`method: token`){}",
                        e.name,
                        if e.protected { ", which a protected environment refuses" } else { "; it is refused in CI" }
                    ),
                );
            }
        }
    }

    /// `mode-writable` and `mode-other-read`, at each node that sets a mode.
    ///
    /// `mode-other-read` judges effective access: a file whose mode lets others read is only
    /// reported in the environments where others can reach it, that is where the directories
    /// credfile creates around it (`dir_mode`, default 0700; with `layout: generation` every file
    /// is inside such a directory, with `layout: files` a file directly in the root is not)
    /// let others enter.
    fn modes(&mut self, m: &raw::Manifest) {
        let mut nodes: Vec<(Vec<Seg>, &str, bool, Scope<'_>)> = Vec::new();
        let d = &m.defaults;
        if let Some(v) = &d.mode {
            nodes.push((
                vec![key("defaults"), key("mode")],
                v,
                false,
                Scope::Defaults,
            ));
        }
        if let Some(v) = &d.dir_mode {
            nodes.push((
                vec![key("defaults"), key("dir_mode")],
                v,
                true,
                Scope::Defaults,
            ));
        }
        for (name, e) in &m.environments.0 {
            if let Some(v) = &e.mode {
                nodes.push((env_path(name, &[key("mode")]), v, false, Scope::Env(name)));
            }
            if let Some(v) = &e.dir_mode {
                nodes.push((
                    env_path(name, &[key("dir_mode")]),
                    v,
                    true,
                    Scope::Env(name),
                ));
            }
        }
        for (i, f) in m.files.iter().enumerate() {
            if let Some(v) = &f.mode {
                nodes.push((
                    vec![key("files"), Seg::Index(i), key("mode")],
                    v,
                    false,
                    Scope::Entry(i),
                ));
            }
        }
        for (at, text, is_dir, scope) in nodes {
            // An unparsable mode is validation's finding.
            let Ok(mode) = parse_mode(text) else {
                continue;
            };
            let what = if is_dir { "directory mode" } else { "mode" };
            // A writable directory mode is refused by validation, reported under this rule.
            if mode & 0o022 != 0 && !is_dir {
                self.add(
                    "mode-writable",
                    Level::Error,
                    &at,
                    format!("{what} `{text}` lets the group or others write"),
                );
            }
            if !is_dir && mode & 0o004 != 0 {
                let reach = others_reach(m, scope);
                if reach.is_empty() {
                    continue;
                }
                let list = reach
                    .iter()
                    .map(|(env, why)| format!("`{env}` ({why})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.add(
                    "mode-other-read",
                    Level::Error,
                    &at,
                    format!(
                        "mode `{text}` lets every user on the host read the secret in environment(s) {list}"
                    ),
                );
            }
        }
    }

    /// `root-not-memory`, and the root half of `path-in-git-tree` / `path-in-web-root`. A root set
    /// once in `defaults` is reported once, naming every environment it affects.
    fn roots(&mut self, envs: &[Env<'_>], manifest_path: &Path) {
        let mut by_node: BTreeMap<(usize, usize), (&str, Vec<&Env<'_>>)> = BTreeMap::new();
        for e in envs {
            if let Some((root, at)) = &e.root {
                let pos = raw::locate(self.text, at);
                by_node.entry(pos).or_insert((root, Vec::new())).1.push(e);
            }
        }
        let worktree = git_worktree_of(manifest_path);
        for ((line, column), (root, users)) in by_node {
            let names = |list: &[&Env<'_>]| {
                list.iter()
                    .map(|e| format!("`{}`", e.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let protected: Vec<&Env<'_>> = users.iter().copied().filter(|e| e.protected).collect();
            let root_path = Path::new(root);
            if !protected.is_empty() && !on_memory_fs(root_path) {
                self.add_at(
                    "root-not-memory",
                    Level::Warning,
                    line,
                    column,
                    format!(
                        "root `{root}` of protected environment(s) {} is not under /run or /dev/shm",
                        names(&protected)
                    ),
                );
            }
            if let Some(repo) = git_tree_containing(root_path, worktree.as_deref()) {
                self.add_at(
                    "path-in-git-tree",
                    Level::Error,
                    line,
                    column,
                    format!(
                        "root `{root}` (environment(s) {}) is inside the git work tree `{}`",
                        names(&users),
                        repo.display()
                    ),
                );
            }
            if let Some(why) = web_root(root_path) {
                self.add_at(
                    "path-in-web-root",
                    Level::Error,
                    line,
                    column,
                    format!("root `{root}` (environment(s) {}) is {why}", names(&users)),
                );
            }
        }
    }

    /// The file-path half of `path-in-git-tree` / `path-in-web-root`.
    fn file_paths(&mut self, m: &raw::Manifest) {
        for (i, f) in m.files.iter().enumerate() {
            let at = [key("files"), Seg::Index(i), key("path")];
            let path = Path::new(&f.path);
            if path.components().any(|c| c.as_os_str() == ".git") {
                self.add(
                    "path-in-git-tree",
                    Level::Error,
                    &at,
                    format!("path `{}` writes into a `.git` directory", f.path),
                );
            }
            if let Some(why) = web_root_component(path) {
                self.add(
                    "path-in-web-root",
                    Level::Error,
                    &at,
                    format!("path `{}` is {why}", f.path),
                );
            }
        }
    }

    /// `ci-variable-tier`: a value from a CI variable has no AWS audit trail and no
    /// per-environment IAM; one finding per reference.
    fn ci_variables(&mut self, m: &raw::Manifest) {
        for (i, f) in m.files.iter().enumerate() {
            for (rel, kind, name) in sources(f) {
                if kind != Kind::Ci {
                    continue;
                }
                let mut at = vec![key("files"), Seg::Index(i)];
                at.extend(rel);
                self.add(
                    "ci-variable-tier",
                    Level::Warning,
                    &at,
                    format!(
                        "`{}` reads CI variable `{name}`: the weaker tier (no AWS audit trail, no per-environment IAM)",
                        f.path
                    ),
                );
            }
        }
    }

    /// `var-unused`: a variable that no entry applying to its environment uses.
    fn unused_vars(&mut self, m: &raw::Manifest) {
        for (name, e) in &m.environments.0 {
            let mut used = BTreeSet::new();
            for f in &m.files {
                if !applies(f, name) {
                    continue;
                }
                for (_, _, secret) in sources(f) {
                    used.extend(var_names(secret));
                }
            }
            for (var, _) in &e.vars.0 {
                if !used.contains(var.as_str()) {
                    self.add(
                        "var-unused",
                        Level::Warning,
                        &env_path(name, &[key("vars"), key(var)]),
                        format!(
                            "variable `{var}` of environment `{name}` is not used by any file of that environment"
                        ),
                    );
                }
            }
        }
    }

    /// `env-shared-secret`: one finding per secret, at its first reference, naming every
    /// environment that reads it.
    fn shared_between_environments(&mut self, refs: &[Ref]) {
        let clusters = cluster(refs, |a, b| a.env != b.env && a.same_secret(b));
        for members in clusters {
            let envs: BTreeSet<&str> = members.iter().map(|&i| refs[i].env.as_str()).collect();
            if envs.len() < 2 {
                continue;
            }
            let first = &refs[members[0]];
            let protected = members.iter().any(|&i| refs[i].protected);
            let unsure = members.iter().any(|&i| refs[i].account.is_none());
            let list = members
                .iter()
                .map(|&i| refs[i].describe_env())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ");
            self.add_at(
                "env-shared-secret",
                if protected {
                    Level::Error
                } else {
                    Level::Warning
                },
                first.line,
                first.column,
                format!(
                    "{} `{}` {} environments {list}{}",
                    first.kind.noun(),
                    first.id,
                    if unsure { "may be read by" } else { "is read by" },
                    if unsure {
                        " (an environment without `account` or `role_arn` could be in the same account)"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
}

/// Whether `root` is on the memory-filesystem convention: /run or /dev/shm.
fn on_memory_fs(root: &Path) -> bool {
    root.starts_with("/run") || root.starts_with("/dev/shm")
}

/// Names of directories that web servers serve or client builds ship.
const WEB_DIRS: &[&str] = &[
    "public",
    "public_html",
    "static",
    "dist",
    "www",
    "wwwroot",
    "htdocs",
];

/// Why `path` is in a web root, if it is: a well-known served directory or a component name.
fn web_root(path: &Path) -> Option<String> {
    for prefix in ["/var/www", "/srv/www", "/usr/share/nginx/html"] {
        if path.starts_with(prefix) {
            return Some(format!("under the web server directory `{prefix}`"));
        }
    }
    web_root_component(path)
}

fn web_root_component(path: &Path) -> Option<String> {
    path.components().find_map(|c| match c {
        Component::Normal(name) => {
            let name = name.to_str()?;
            WEB_DIRS
                .iter()
                .any(|w| name.eq_ignore_ascii_case(w))
                .then(|| {
                    format!(
                        "in a `{name}/` directory, which web servers serve and client builds ship"
                    )
                })
        }
        _ => None,
    })
}

/// The git work tree (the directory holding `.git`) that contains `path`'s directory, if any.
fn git_worktree_of(path: &Path) -> Option<PathBuf> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let abs = std::fs::canonicalize(dir).ok()?;
    abs.ancestors()
        .find(|a| a.join(".git").exists())
        .map(Path::to_path_buf)
}

/// The work tree that `root` would land in: the manifest's own, or one found on this host
/// above `root`.
fn git_tree_containing(root: &Path, manifest_tree: Option<&Path>) -> Option<PathBuf> {
    if root.components().any(|c| c.as_os_str() == ".git") {
        return Some(root.to_path_buf());
    }
    if let Some(tree) = manifest_tree
        && root.starts_with(tree)
    {
        return Some(tree.to_path_buf());
    }
    root.ancestors()
        .find(|a| a.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Marks each finding that a suppression covers with that suppression's reason.
fn apply_suppressions(findings: &mut [super::Finding], allowed: &[Allowed]) {
    for f in findings {
        f.suppressed = allowed
            .iter()
            .find(|a| a.covers(&f.file, f.rule, f.line, f.column))
            .map(|a| a.reason.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_detection() {
        for (line, kind) in [
            ("    token: AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
            (
                "    key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "a high-entropy string",
            ),
            ("  x: -----BEGIN RSA PRIVATE KEY-----", "a PEM block"),
            (
                "    t: ghp_0123456789abcdefABCDEF0123456789ab",
                "an API token",
            ),
            (
                "  sha: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "a high-entropy string",
            ),
            (
                "  # old: k3j4h5g6f7d8s9a0q1w2e3r4t5y6u7i8",
                "a high-entropy string",
            ),
        ] {
            let found = literal_candidates(line);
            assert_eq!(found.len(), 1, "{line}: {found:?}");
            assert_eq!(found[0].kind, kind, "{line}");
        }
        assert_eq!(
            literal_candidates("    token: AKIAIOSFODNN7EXAMPLE")[0].column,
            12
        );
    }

    #[test]
    fn references_and_names_are_not_literals() {
        for line in [
            "    secret: ${prefix}/database-password",
            "    secret: payments/production/db2/password-v2",
            "    secret: arn:aws:secretsmanager:eu-west-1:222222222222:secret:payments/db-AbC123",
            "      role_arn: arn:aws:iam::222222222222:role/payments-deploy-production",
            "    version_id: 3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
            "    account: \"222222222222\"",
            "  root: /run/credfile/payments-production-eu-west-1",
            "    path: tls/server-certificate-chain.pem",
            "      API_KEY: { secret: \"${prefix}/api-key\", key: primaryApiKeyForPartner2 }",
            "    kms_keys: [arn:aws:kms:eu-west-1:222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab]",
        ] {
            assert!(literal_candidates(line).is_empty(), "{line}");
        }
        assert!(literal_candidates("  root: /tmp/.tmpEu1ZB6/config/secrets").is_empty());
    }

    #[test]
    fn web_roots() {
        assert!(web_root(Path::new("/var/www/app")).is_some());
        assert!(web_root(Path::new("/srv/app/public/config")).is_some());
        assert!(web_root_component(Path::new("dist/keys")).is_some());
        assert!(web_root(Path::new("/run/credfile/app")).is_none());
        assert!(web_root_component(Path::new("statics/x")).is_none());
    }
}
