//! Expansion: `keys: all`, `parameters_path:` and secret prefix entries become one raw file per
//! top-level key, parameter or secret, once the values are known. The names come from outside the manifest
//! (JSON keys, parameter names), so each is checked like a manifest path before it becomes one:
//! a key such as `../x` or one with a control character is refused, never written.
//!
//! Limits and conflicts are checked here too, before any file is staged: a set holds at most
//! [`MAX_PER_SET`] entries and a plan [`MAX_FILES`] files, and no name may be both a file and a
//! directory (`a` and `a/x` below a path), against the manifest's fixed entries as well.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::{Problem, RenderError};
use crate::fetch::{FetchSet, SecretValue};
use crate::manifest::{Content, FileSpec, KeySel, Plan, Source, SourceKind};

/// Whether a key or a parameter name's level may be a file name: what a manifest path
/// component may be, and no control or format character (a newline, U+202E): a file name is
/// shown in reports, logs and CI pages, where such a character forges a line or hides itself.
fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else if name.contains('/') {
        Some("contains `/`")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.chars().any(crate::terminal::is_unsafe) {
        Some("contains a Unicode format character (bidi override, zero-width)")
    } else if name.len() > 255 {
        Some("is longer than 255 bytes")
    } else if name.starts_with(".credfile") {
        Some("uses the reserved prefix `.credfile`")
    } else {
        None
    }
}

/// The most files one expanded entry may write ([`crate::manifest::MAX_SET_FILES`]).
pub const MAX_PER_SET: usize = crate::manifest::MAX_SET_FILES;

/// The most files one plan may hold after expansion (several sets in one root).
pub const MAX_FILES: usize = 50_000;

/// The plan with every `Expand` entry replaced by its files, in name order.
pub fn expand(plan: &Plan, fetched: &FetchSet) -> Result<Plan, RenderError> {
    let mut out = plan.clone();
    out.files.clear();
    let mut problems = Vec::new();
    // For each file of `out`, the entry of `plan` it comes from (for conflict messages).
    let mut origin: Vec<usize> = Vec::with_capacity(plan.files.len());
    for (index, spec) in plan.files.iter().enumerate() {
        let start = out.files.len();
        let Content::Expand { source } = &spec.content else {
            out.files.push(spec.clone());
            origin.push(index);
            continue;
        };
        let problem = |what: String| Problem {
            path: spec.path.clone(),
            line: spec.line,
            noun: source.secret.kind.noun(),
            secret: source.secret.id.clone(),
            key: None,
            what,
        };
        let file = |rel: PathBuf, source: Source| FileSpec {
            path: spec.path.join(rel),
            content: Content::Raw {
                source,
                encoding: None,
            },
            ..spec.clone()
        };
        match source.secret.kind {
            SourceKind::ParameterPath | SourceKind::SecretPrefix => {
                let Some(listing) = fetched.listing(&source.secret) else {
                    problems.push(problem("was not fetched (internal error)".into()));
                    continue;
                };
                let prefix = source.secret.prefix();
                for child in listing {
                    let rel = child.id.strip_prefix(prefix).unwrap_or(&child.id);
                    match rel.split('/').find_map(|c| bad_name(c).map(|m| (c, m))) {
                        Some((_, msg)) => problems.push(problem(format!(
                            "the {} name `{}` cannot be a file name: a level {msg}",
                            child.kind.noun(),
                            crate::terminal::sanitize(&child.id)
                        ))),
                        None if rel.split('/').count() > 16 => problems.push(problem(format!(
                            "the {} `{}` is too deep below the path",
                            child.kind.noun(),
                            child.id
                        ))),
                        None => out.files.push(file(
                            PathBuf::from(rel),
                            Source {
                                secret: child.clone(),
                                key: None,
                                sensitive: source.sensitive,
                            },
                        )),
                    }
                }
            }
            _ => {
                let keys = match fetched.get(&source.secret).map(|f| &f.value) {
                    None => Err("was not fetched (internal error)".to_string()),
                    Some(SecretValue::Binary(_)) => {
                        Err("is binary and has no JSON keys for `keys: all`".to_string())
                    }
                    Some(SecretValue::Text(t)) => {
                        // serde_json's errors carry positions only, never the input.
                        // Parsed into zeroizing memory: only the key names are kept.
                        match super::json_tree::Json::parse(t.expose_secret()) {
                            Ok(doc) => match doc.keys() {
                                Some(keys) => Ok(keys
                                    .into_iter()
                                    .map(str::to_string)
                                    .collect::<Vec<String>>()),
                                None => {
                                    Err("is JSON but not an object: `keys: all` needs one".into())
                                }
                            },
                            Err(e) => Err(format!(
                                "is not JSON (parse error at line {} column {}): `keys: all` needs an object",
                                e.line(),
                                e.column()
                            )),
                        }
                    }
                };
                match keys {
                    Err(what) => problems.push(problem(what)),
                    Ok(keys) => {
                        for k in keys {
                            match bad_name(&k) {
                                Some(msg) => problems.push(problem(format!(
                                    "the key `{}` cannot be a file name: it {msg}",
                                    crate::terminal::sanitize(&k)
                                ))),
                                None => out.files.push(file(
                                    PathBuf::from(&k),
                                    Source {
                                        secret: source.secret.clone(),
                                        key: Some(KeySel::Key(k)),
                                        sensitive: source.sensitive,
                                    },
                                )),
                            }
                        }
                    }
                }
            }
        }
        if out.files.len() - start > MAX_PER_SET {
            let past = &out.files[start + MAX_PER_SET];
            problems.push(problem(format!(
                "expands to {} files, more than the {MAX_PER_SET} one entry may write; the first past the limit is `{}`",
                out.files.len() - start,
                crate::terminal::sanitize(&past.path.display().to_string())
            )));
            out.files.truncate(start);
        }
        origin.resize(out.files.len(), index);
    }
    if problems.is_empty() && out.files.len() > MAX_FILES {
        let past = &out.files[MAX_FILES];
        let spec = &plan.files[origin[MAX_FILES]];
        problems.push(problem_at(
            spec,
            format!(
                "the environment expands to {} files, more than the {MAX_FILES} one root may hold; the first past the limit is `{}`",
                out.files.len(),
                crate::terminal::sanitize(&past.path.display().to_string())
            ),
        ));
    }
    if problems.is_empty() {
        problems.extend(conflicts(plan, &out.files, &origin));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(RenderError { problems })
    }
}

/// A problem with the entry `spec` of the manifest.
fn problem_at(spec: &FileSpec, what: String) -> Problem {
    let (noun, secret) = match spec.sources().first() {
        Some(s) => (s.secret.kind.noun(), s.secret.id.clone()),
        None => ("secret", String::new()),
    };
    Problem {
        path: spec.path.clone(),
        line: spec.line,
        noun,
        secret,
        key: None,
        what,
    }
}

/// Names that are both a file and a directory (`a` and `a/x`), or one file twice, once the
/// sets are expanded. The manifest's own entries were checked against each other by
/// `validate`; this catches what a listing or a secret's keys add. Indexed by path: linear.
fn conflicts(plan: &Plan, files: &[FileSpec], origin: &[usize]) -> Vec<Problem> {
    let mut exact: HashMap<&Path, usize> = HashMap::with_capacity(files.len());
    let mut problems = Vec::new();
    let mut reported: HashSet<usize> = HashSet::new();
    let mut clash = |a: usize, b: usize, how: &str, problems: &mut Vec<Problem>| {
        // Blame the expanded entry (the fixed ones are the manifest's own choice).
        let entry = if matches!(plan.files[origin[b]].content, Content::Expand { .. }) {
            origin[b]
        } else {
            origin[a]
        };
        if !reported.insert(entry) {
            return;
        }
        problems.push(problem_at(
            &plan.files[entry],
            format!(
                "`{}` and `{}` {how}; rename one upstream (or remove it), nothing was written",
                crate::terminal::sanitize(&files[a].path.display().to_string()),
                crate::terminal::sanitize(&files[b].path.display().to_string()),
            ),
        ));
    };
    for (n, f) in files.iter().enumerate() {
        if let Some(&m) = exact.get(f.path.as_path()) {
            clash(m, n, "are the same file twice", &mut problems);
        } else {
            exact.insert(&f.path, n);
        }
    }
    for (n, f) in files.iter().enumerate() {
        for dir in f.path.ancestors().skip(1) {
            if let Some(&m) = exact.get(dir) {
                clash(
                    m,
                    n,
                    "clash: the first is a file, the second needs it to be a directory",
                    &mut problems,
                );
                break;
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\nb",
            "a\u{1b}[2J",
            "x\u{202e}gpj.exe",
            "zero\u{200b}width",
            "\u{85}next",
            ".credfile-gen-1",
        ] {
            assert!(bad_name(bad).is_some(), "{bad:?}");
        }
        for good in ["password", "db.url", "API_KEY", "-x", ".env"] {
            assert!(bad_name(good).is_none(), "{good:?}");
        }
    }
}
