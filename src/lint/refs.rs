//! References: what each entry reads (secret, parameter, path, CI variable) in each environment,
//! resolved with that environment's vars, and the sharing rules across environments and apps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::env::{Env, applies, key};
use super::{Finding, Level, rule};
use crate::manifest::raw::{self, Seg};
use crate::manifest::{SubstError, substitute};

/// The reference strings of an entry (`secret`, a secret prefix `secret: PREFIX*`, `parameter`,
/// `parameters_path`, `ci_variable`, `ci_variable_file`), with the path to each node and what it
/// names.
pub(super) fn sources(f: &raw::File) -> Vec<(Vec<Seg>, Kind, &str)> {
    fn push<'a>(
        out: &mut Vec<(Vec<Seg>, Kind, &'a str)>,
        mut at: Vec<Seg>,
        field: &str,
        kind: Kind,
        value: Option<&'a String>,
    ) {
        if let Some(v) = value {
            at.push(key(field));
            out.push((at, kind, v.as_str()));
        }
    }
    let mut out = Vec::new();
    let o = &mut out;
    push(o, Vec::new(), "secret", Kind::Secret, f.secret.as_ref());
    push(
        o,
        Vec::new(),
        "parameter",
        Kind::Parameter,
        f.parameter.as_ref(),
    );
    push(
        o,
        Vec::new(),
        "parameters_path",
        Kind::Parameter,
        f.parameters_path.as_ref(),
    );
    push(
        o,
        Vec::new(),
        "ci_variable",
        Kind::Ci,
        f.ci_variable.as_ref(),
    );
    push(o, Vec::new(), "vault", Kind::Vault, f.vault.as_ref());
    push(
        o,
        Vec::new(),
        "ci_variable_file",
        Kind::Ci,
        f.ci_variable_file.as_ref(),
    );
    if let Some(values) = &f.values {
        for (name, v) in &values.0 {
            let at = vec![key("values"), key(name)];
            push(o, at.clone(), "secret", Kind::Secret, v.secret.as_ref());
            push(
                o,
                at.clone(),
                "parameter",
                Kind::Parameter,
                v.parameter.as_ref(),
            );
            push(
                o,
                at.clone(),
                "ci_variable",
                Kind::Ci,
                v.ci_variable.as_ref(),
            );
            push(o, at.clone(), "vault", Kind::Vault, v.vault.as_ref());
            push(
                o,
                at,
                "ci_variable_file",
                Kind::Ci,
                v.ci_variable_file.as_ref(),
            );
        }
    }
    out
}

/// Whether the source at `rel` (from [`sources`]) is a secret: not marked `sensitive: false`
/// on its value or its entry. Values that are not secret (a host, a port) may be shared by
/// environments and apps, so the sharing rules skip them.
pub(super) fn sensitive(f: &raw::File, rel: &[Seg]) -> bool {
    let own = match rel {
        [Seg::Key(v), Seg::Key(name), ..] if v == "values" => f
            .values
            .as_ref()
            .and_then(|vs| vs.0.iter().find(|(n, _)| n == name))
            .and_then(|(_, v)| v.sensitive),
        _ => None,
    };
    own.or(f.sensitive).unwrap_or(true)
}

/// What a reference names: the sharing rules compare like with like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Secret,
    Parameter,
    /// A CI variable: the CI system scopes it (GitHub environment secrets share names on
    /// purpose), so the sharing rules leave it out; `ci-variable-tier` reports it.
    Ci,
    /// A Vault KV path; its "region" is the Vault address and its "account" the namespace.
    Vault,
}

impl Kind {
    pub(super) fn noun(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Parameter => "parameter",
            Kind::Ci => "CI variable",
            Kind::Vault => "Vault secret",
        }
    }
}

/// The names of the `${var}`s in a template.
pub(super) fn var_names(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        out.push(&after[..end]);
        rest = &after[end + 1..];
    }
    out
}

/// One secret reference, resolved for one environment.
#[derive(Debug, Clone)]
pub(super) struct Ref {
    pub(super) kind: Kind,
    pub(super) file: PathBuf,
    pub(super) app: String,
    pub(super) env: String,
    pub(super) protected: bool,
    /// The resolved id, as written (name or ARN).
    pub(super) id: String,
    pub(super) region: Option<String>,
    pub(super) account: Option<String>,
    /// The secret's name (for an ARN, the name part, possibly with its random suffix).
    pub(super) name: String,
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Ref {
    /// Whether the two references can name the same secret: the same name (an ARN's six-character
    /// suffix aside) in the same region and account, where an unknown region or account matches
    /// any. A secret prefix (`orders/*`) is compared as a name, like a `parameters_path`, and
    /// also matches every name and prefix it covers: `orders/*` in staging reads production's
    /// `orders/production/db`.
    pub(super) fn same_secret(&self, other: &Ref) -> bool {
        let compatible = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let covers = |a: &Ref, b: &Ref| {
            a.kind == Kind::Secret
                && a.name
                    .strip_suffix('*')
                    .is_some_and(|p| b.name.trim_end_matches('*').starts_with(p))
        };
        self.kind == other.kind
            && compatible(&self.region, &other.region)
            && compatible(&self.account, &other.account)
            && (same_name(&self.name, &other.name) || covers(self, other) || covers(other, self))
    }

    pub(super) fn describe_env(&self) -> String {
        format!(
            "`{}`{}",
            self.env,
            if self.protected { " (protected)" } else { "" }
        )
    }
}

pub(super) fn same_name(a: &str, b: &str) -> bool {
    let strip = |n: &str| {
        let bytes = n.as_bytes();
        if bytes.len() > 7
            && bytes[bytes.len() - 7] == b'-'
            && bytes[bytes.len() - 6..]
                .iter()
                .all(u8::is_ascii_alphanumeric)
        {
            n[..n.len() - 7].to_string()
        } else {
            n.to_string()
        }
    };
    a == b || strip(a) == b || a == strip(b)
}

/// Every secret reference of every environment, resolved with that environment's vars.
/// References that do not resolve are validation's findings and are skipped here.
pub(super) fn references(file: &Path, text: &str, m: &raw::Manifest, envs: &[Env<'_>]) -> Vec<Ref> {
    let mut out = Vec::new();
    for (i, f) in m.files.iter().enumerate() {
        for (rel, kind, template) in sources(f) {
            if kind == Kind::Ci || !sensitive(f, &rel) {
                continue;
            }
            let mut at = vec![key("files"), Seg::Index(i)];
            at.extend(rel);
            let (line, column) = raw::locate(text, &at);
            for e in envs {
                if !applies(f, e.name) {
                    continue;
                }
                let id = match substitute(template, &e.raw.vars.0) {
                    Ok(id) => id,
                    Err(SubstError::Unclosed | SubstError::Undefined(_)) => continue,
                };
                let (region, account, name) = match id.strip_prefix("arn:") {
                    // The same path on the same Vault (and namespace) is the same secret.
                    _ if kind == Kind::Vault => {
                        let vault = |f: fn(&raw::Vault) -> Option<&String>| {
                            e.raw
                                .vault
                                .as_ref()
                                .and_then(f)
                                .or_else(|| m.defaults.vault.as_ref().and_then(f))
                                .map(|s| s.trim_end_matches('/').to_string())
                        };
                        (
                            vault(|v| v.address.as_ref()),
                            vault(|v| v.namespace.as_ref()),
                            id.clone(),
                        )
                    }
                    // A parameter ARN drops the name's leading `/`: compare names without it.
                    Some(rest) if kind == Kind::Parameter => {
                        let parts: Vec<&str> = rest.splitn(5, ':').collect();
                        let Some(name) = parts.get(4).and_then(|p| p.strip_prefix("parameter/"))
                        else {
                            continue;
                        };
                        (
                            Some(parts[2].to_string()),
                            Some(parts[3].to_string()),
                            name.to_string(),
                        )
                    }
                    Some(rest) => {
                        let parts: Vec<&str> = rest.splitn(6, ':').collect();
                        if parts.len() != 6 {
                            continue;
                        }
                        (
                            Some(parts[2].to_string()),
                            Some(parts[3].to_string()),
                            parts[5].to_string(),
                        )
                    }
                    None if kind == Kind::Parameter => (
                        e.region.map(str::to_string),
                        e.account.clone(),
                        id.trim_start_matches('/').to_string(),
                    ),
                    None => (e.region.map(str::to_string), e.account.clone(), id.clone()),
                };
                out.push(Ref {
                    kind,
                    file: file.to_path_buf(),
                    app: m.app.clone(),
                    env: e.name.to_string(),
                    protected: e.protected,
                    id,
                    region,
                    account,
                    name,
                    line,
                    column,
                });
            }
        }
    }
    out
}

/// `app-shared-secret`: a secret referenced from manifests of two different apps, reported in each
/// manifest at its first reference.
pub(super) fn shared_between_apps(refs: &[Ref]) -> Vec<Finding> {
    let clusters = cluster(refs, |a, b| a.app != b.app && a.same_secret(b));
    let mut out = Vec::new();
    for members in clusters {
        let apps: BTreeSet<&str> = members.iter().map(|&i| refs[i].app.as_str()).collect();
        if apps.len() < 2 {
            continue;
        }
        let protected = members.iter().any(|&i| refs[i].protected);
        let mut reported = BTreeSet::new();
        for &i in &members {
            let r = &refs[i];
            if !reported.insert((&r.file, &r.app)) {
                continue;
            }
            let others = members
                .iter()
                .map(|&j| &refs[j])
                .filter(|o| o.app != r.app)
                .map(|o| {
                    format!(
                        "app `{}` ({}, environment {})",
                        o.app,
                        o.file.display(),
                        o.describe_env()
                    )
                })
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join("; ");
            let help = rule("app-shared-secret");
            out.push(Finding {
                rule: help.id,
                level: if protected {
                    Level::Error
                } else {
                    Level::Warning
                },
                file: r.file.clone(),
                line: r.line,
                column: r.column,
                message: format!(
                    "{} `{}` (app `{}`, environment {}) is also read by {others}",
                    r.kind.noun(),
                    r.id,
                    r.app,
                    r.describe_env()
                ),
                hint: Some(help.help.to_string()),
                suppressed: None,
            });
        }
    }
    out
}

/// Groups indices of `items` that are linked (directly or through others) by `linked`; each
/// group is in index order, groups in order of their first index. Items linked to nothing are
/// left out.
pub(super) fn cluster<T>(items: &[T], linked: impl Fn(&T, &T) -> bool) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..items.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut any = vec![false; items.len()];
    for a in 0..items.len() {
        for b in a + 1..items.len() {
            if linked(&items[a], &items[b]) {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                parent[ra.max(rb)] = ra.min(rb);
                any[a] = true;
                any[b] = true;
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, linked) in any.iter().enumerate() {
        if *linked {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
    }
    groups.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_modulo_the_arn_suffix() {
        assert!(same_name("app/db", "app/db"));
        assert!(same_name("app/db-AbC123", "app/db"));
        assert!(same_name("app/db", "app/db-AbC123"));
        assert!(!same_name("app/db", "app/dbx"));
    }

    #[test]
    fn a_prefix_covers_the_names_under_it() {
        let r = |name: &str| Ref {
            kind: Kind::Secret,
            file: PathBuf::from("m.yaml"),
            app: "a".into(),
            env: "e".into(),
            protected: false,
            id: name.into(),
            region: None,
            account: None,
            name: name.into(),
            line: 1,
            column: 1,
        };
        assert!(r("orders/*").same_secret(&r("orders/prod/db")));
        assert!(r("orders/prod/db-AbC123").same_secret(&r("orders/*")));
        assert!(r("orders/*").same_secret(&r("orders/prod/*")));
        assert!(r("orders/prod/*").same_secret(&r("orders/prod/*")));
        assert!(!r("orders/staging/*").same_secret(&r("orders/prod/db")));
        assert!(!r("orders/staging/*").same_secret(&r("orders/prod/*")));
    }

    #[test]
    fn clusters_are_transitive() {
        let items = [1, 2, 3, 10, 11, 20];
        let groups = cluster(&items, |a: &i32, b: &i32| (a - b).abs() == 1);
        assert_eq!(groups, vec![vec![0, 1, 2], vec![3, 4]]);
    }
}
