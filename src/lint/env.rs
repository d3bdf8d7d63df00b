//! The manifest as the rules see it: each environment with `defaults` applied (and where each
//! inherited setting is written), and which entries apply to it.

use crate::manifest::raw::{self, Seg};

/// One environment with `defaults` applied, and where each inherited setting is written.
pub(super) struct Env<'m> {
    pub(super) name: &'m str,
    pub(super) raw: &'m raw::Environment,
    pub(super) protected: bool,
    pub(super) region: Option<&'m str>,
    pub(super) account: Option<String>,
    /// The root and the node that sets it (the environment's or `defaults`').
    pub(super) root: Option<(&'m str, Vec<Seg>)>,
}

pub(super) fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

pub(super) fn env_path(name: &str, more: &[Seg]) -> Vec<Seg> {
    let mut p = vec![key("environments"), key(name)];
    p.extend_from_slice(more);
    p
}

pub(super) fn effective_environments(m: &raw::Manifest) -> Vec<Env<'_>> {
    m.environments
        .0
        .iter()
        .map(|(name, e)| {
            let role_account = e
                .identity
                .role_arn
                .as_deref()
                .and_then(|arn| arn.split(':').nth(4))
                .filter(|a| !a.is_empty())
                .map(str::to_string);
            let root = match (&e.root, &m.defaults.root) {
                (Some(r), _) => Some((r.as_str(), env_path(name, &[key("root")]))),
                (None, Some(r)) => Some((r.as_str(), vec![key("defaults"), key("root")])),
                (None, None) => None,
            };
            Env {
                name,
                raw: e,
                protected: e.protected,
                region: e.region.as_deref().or(m.defaults.region.as_deref()),
                account: e.account.clone().or(role_account),
                root,
            }
        })
        .collect()
}

/// Whether a file entry applies to environment `env`.
pub(super) fn applies(f: &raw::File, env: &str) -> bool {
    f.environments
        .as_ref()
        .is_none_or(|list| list.iter().any(|e| e == env))
}
