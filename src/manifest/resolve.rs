//! Stage three: one environment of a validated manifest, resolved into a [`Plan`].

use std::path::{Path, PathBuf};

use super::*;

impl Manifest {
    pub fn environment_names(&self) -> Vec<String> {
        self.environments.iter().map(|e| e.name.clone()).collect()
    }

    /// Resolves one environment into a plan. `root_override` is `--root`.
    pub fn resolve(&self, env: &str, root_override: Option<&Path>) -> Result<Plan, ManifestError> {
        let Some(e) = self.environments.iter().find(|e| e.name == env) else {
            return Err(ManifestError::UnknownEnvironment {
                file: self.file.clone(),
                env: env.to_string(),
                known: self.environment_names(),
            });
        };
        if let Some(dir) = root_override
            && dir
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(ManifestError::RootDotDot {
                path: dir.to_path_buf(),
            });
        }
        let root = match root_override {
            Some(dir) if dir.is_absolute() => dir
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect(),
            Some(dir) => std::env::current_dir()
                .map_err(|source| ManifestError::RootArg {
                    path: dir.to_path_buf(),
                    source,
                })?
                .join(dir)
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect(),
            None => match (&e.root, &e.delivery) {
                (Some(root), _) => root.clone(),
                (None, Delivery::SystemdCreds { .. }) => PathBuf::from(CREDSTORE_ENCRYPTED),
                (None, Delivery::Plain) => {
                    return Err(ManifestError::NoRoot {
                        file: self.file.clone(),
                        env: env.to_string(),
                    });
                }
            },
        };
        let files = self
            .files
            .iter()
            .filter(|f| applies(f, env))
            .map(|f| FileSpec {
                path: f.path.clone(),
                line: f.line,
                mode: f.mode.unwrap_or(e.mode),
                owner: f.owner.clone().or_else(|| e.owner.clone()),
                group: f.group.clone().or_else(|| e.group.clone()),
                owner_line: if f.owner.is_some() {
                    f.line
                } else {
                    e.owner_line
                },
                group_line: if f.group.is_some() {
                    f.line
                } else {
                    e.group_line
                },
                allow_in_repository: f.allow_in_repository,
                content: match &f.content {
                    EntryContent::Raw { source, encoding } => Content::Raw {
                        source: resolve_source(source, e),
                        encoding: *encoding,
                    },
                    EntryContent::Map {
                        format,
                        dialect,
                        values,
                    } => Content::Map {
                        format: *format,
                        dialect: *dialect,
                        values: values
                            .iter()
                            .map(|(k, s)| (k.clone(), resolve_source(s, e)))
                            .collect(),
                    },
                    EntryContent::Expand { source } => Content::Expand {
                        source: resolve_source(source, e),
                    },
                    EntryContent::Template {
                        name,
                        source,
                        values,
                    } => Content::Template {
                        name: name.clone(),
                        source: source.clone(),
                        values: values
                            .iter()
                            .map(|(k, s)| (k.clone(), resolve_source(s, e)))
                            .collect(),
                    },
                },
                on_change: f.on_change.clone(),
            })
            .collect();
        Ok(Plan {
            app: self.app.clone(),
            env: e.name.clone(),
            protected: e.protected,
            region: e.region.clone(),
            account: e.account.clone(),
            identity: e.identity.clone(),
            root,
            dir_mode: e.dir_mode,
            dir_group: e.group.clone(),
            dir_group_line: e.group_line,
            require_memory_fs: e.require_memory_fs,
            layout: e.layout,
            delivery: e.delivery.clone(),
            on_change: e.on_change.clone(),
            run_as: e.run_as.clone(),
            run_as_line: e.run_as_line,
            files,
            vault: e.vault.clone(),
        })
    }
}

pub(super) fn applies(entry: &Entry, env: &str) -> bool {
    entry
        .environments
        .as_ref()
        .is_none_or(|list| list.iter().any(|e| e == env))
}

fn resolve_source(s: &EntrySource, env: &Environment) -> Source {
    // Validation already substituted every applicable environment successfully.
    let id = substitute(&s.secret, &env.vars).unwrap_or_else(|_| s.secret.clone());
    Source {
        secret: SecretRef {
            kind: s.kind,
            id,
            pin: s.pin.clone(),
        },
        key: s.key.clone(),
        sensitive: s.sensitive,
    }
}

/// Replaces `${name}` with the variable's value. Errors name the first undefined variable.
pub fn substitute(template: &str, vars: &[(String, String)]) -> Result<String, SubstError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SubstError::Unclosed);
        };
        let name = &after[..end];
        match vars.iter().find(|(k, _)| k == name) {
            Some((_, value)) => out.push_str(value),
            None => return Err(SubstError::Undefined(name.to_string())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
pub enum SubstError {
    Unclosed,
    Undefined(String),
}
