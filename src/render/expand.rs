//! Expansion: `keys: all`, `parameters_path:` and secret prefix entries become one raw file per
//! top-level key, parameter or secret, once the values are known. The names come from outside the manifest
//! (JSON keys, parameter names), so each is checked like a manifest path before it becomes one:
//! a key such as `../x` or one with a control character is refused, never written.

use std::path::PathBuf;

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

/// The plan with every `Expand` entry replaced by its files, in name order.
pub fn expand(plan: &Plan, fetched: &FetchSet) -> Result<Plan, RenderError> {
    let mut out = plan.clone();
    out.files.clear();
    let mut problems = Vec::new();
    for spec in &plan.files {
        let Content::Expand { source } = &spec.content else {
            out.files.push(spec.clone());
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
                        match serde_json::from_str::<serde_json::Value>(t.expose_secret()) {
                            Ok(serde_json::Value::Object(map)) => {
                                Ok(map.keys().cloned().collect::<Vec<String>>())
                            }
                            Ok(_) => Err("is JSON but not an object: `keys: all` needs one".into()),
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
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(RenderError { problems })
    }
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
