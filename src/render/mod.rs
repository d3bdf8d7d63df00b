//! Render: turn fetched values into each file's exact bytes, in memory, all or nothing.
//!
//! Nothing here touches the disk. Any problem in any file fails the whole render, and every
//! problem is reported (file, manifest line, secret, key) without the value itself.

pub mod dotenv;
mod expand;
mod json_tree;
mod secret_str;
pub mod template;

pub use expand::expand;

use std::path::PathBuf;

use base64::Engine;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::fetch::{FetchSet, SecretValue};
use crate::manifest::{Content, Encoding, FileSpec, Format, KeySel, SecretRef, Source};
use json_tree::Json;

/// A file's bytes and where they came from.
pub struct Rendered {
    pub bytes: Zeroizing<Vec<u8>>,
    pub sources: Vec<SourceInfo>,
}

/// Provenance for the report: ids and versions, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// `secretsmanager`, `ssm`, `ci_variable`, `ci_variable_file` (`SourceKind::as_str`).
    pub source: &'static str,
    pub id: String,
    pub arn: String,
    pub version_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot render {} file(s); nothing was written:{}", problems.len(), problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
pub struct RenderError {
    pub problems: Vec<Problem>,
}

impl RenderError {
    pub fn hint(&self) -> Option<String> {
        // A template that reads a missing name is the template's mistake: the value is not blamed.
        if self.problems.iter().all(|p| p.noun == TEMPLATE) {
            return Some("fix the template (or the entry's `values`), then run again; `credfile validate` checks the names it uses".into());
        }
        Some("fix the secret's value in Secrets Manager or the entry in the manifest, then run again".into())
    }
}

/// One file that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (manifest line {line}): {noun} `{}`{}: {what}", crate::terminal::Escaped(&path.display().to_string()), crate::terminal::Escaped(secret), key.as_ref().map(|k| format!(", key `{}`", crate::terminal::Escaped(k))).unwrap_or_default())]
pub struct Problem {
    pub path: PathBuf,
    pub line: usize,
    /// "secret", "parameter", "CI variable" (`SourceKind::noun`).
    pub noun: &'static str,
    pub secret: String,
    pub key: Option<String>,
    pub what: String,
}

/// [`Problem::noun`] of a template that cannot be rendered (`secret` is then the template's name).
pub const TEMPLATE: &str = "template";

/// Renders every file of the plan, or reports every file that cannot be rendered.
pub fn render_all(files: &[FileSpec], fetched: &FetchSet) -> Result<Vec<Rendered>, RenderError> {
    let mut out = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    let mut parsed = Parsed::default();
    for spec in files {
        match render(spec, fetched, &mut parsed) {
            Ok(r) => out.push(r),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(RenderError { problems })
    }
}

fn render(spec: &FileSpec, fetched: &FetchSet, parsed: &mut Parsed) -> Result<Rendered, Problem> {
    let problem = |source: &Source, what: String| Problem {
        path: spec.path.clone(),
        line: spec.line,
        noun: source.secret.kind.noun(),
        secret: source.secret.id.clone(),
        key: source.key.as_ref().map(ToString::to_string),
        what,
    };
    let mut sources = Vec::new();
    let bytes = match &spec.content {
        Content::Raw { source, encoding } => {
            let picked =
                pick(source, fetched, &mut sources, parsed).map_err(|w| problem(source, w))?;
            match (encoding, picked) {
                (Some(Encoding::Base64), Picked::Text(text)) => {
                    decode_base64(&text).map_err(|w| problem(source, w))?
                }
                (_, Picked::Text(text)) => Zeroizing::new(text.as_bytes().to_vec()),
                (_, Picked::Bytes(bytes)) => bytes,
                (_, Picked::Json(value)) => Zeroizing::new(value.as_bytes().to_vec()),
            }
        }
        Content::Expand { source } => {
            return Err(problem(
                source,
                "was not expanded before rendering (internal error)".into(),
            ));
        }
        Content::Map {
            format,
            dialect,
            values,
        } => {
            let mut body = Zeroizing::new(String::new());
            if *format == Format::Json {
                body.push_str("{\n");
            }
            for (n, (name, source)) in values.iter().enumerate() {
                let picked =
                    pick(source, fetched, &mut sources, parsed).map_err(|w| problem(source, w))?;
                match format {
                    Format::Dotenv => {
                        let text = picked.into_text().map_err(|w| problem(source, w))?;
                        let line = dotenv::line(*dialect, name, &text)
                            .map_err(|w| problem(source, format!("`{name}`: {w}")))?;
                        body.push_str(&line);
                    }
                    _ => {
                        body.push_str("  ");
                        body.push_str(&json_string(name));
                        body.push_str(": ");
                        match picked {
                            Picked::Json(raw_json) => body.push_str(&raw_json),
                            other => {
                                let text = other.into_text().map_err(|w| problem(source, w))?;
                                body.push_str(&json_string(&text));
                            }
                        }
                        body.push_str(if n + 1 < values.len() { ",\n" } else { "\n" });
                    }
                }
            }
            if *format == Format::Json {
                body.push_str("}\n");
            }
            Zeroizing::new(std::mem::take(&mut *body).into_bytes())
        }
        Content::Template {
            name,
            source,
            values,
        } => {
            // The values' texts, and a clone of every context value: both outlive the
            // engine's state, so that each text is wiped by its last holder (secret_str.rs).
            let mut texts = Vec::with_capacity(values.len());
            let mut context = Vec::with_capacity(values.len());
            for (key, source) in values {
                let picked =
                    pick(source, fetched, &mut sources, parsed).map_err(|w| problem(source, w))?;
                let value = match picked {
                    Picked::Json(text) => json_tree::selected(&text),
                    other => {
                        let text = other.into_text().map_err(|w| problem(source, w))?;
                        if source.key.is_none() {
                            // A whole JSON object is an object (`{{ db.host }}`).
                            json_tree::whole(text, &mut texts)
                        } else {
                            json_tree::string(text, &mut texts)
                        }
                    }
                };
                context.push((key.clone(), value));
            }
            let kept: Vec<minijinja::Value> = context.iter().map(|(_, v)| v.clone()).collect();
            let rendered = template::render(name, source, context);
            drop(kept);
            drop(texts);
            let text = rendered.map_err(|what| Problem {
                path: spec.path.clone(),
                line: spec.line,
                noun: TEMPLATE,
                secret: name.clone(),
                key: None,
                what,
            })?;
            Zeroizing::new(text.as_bytes().to_vec())
        }
    };
    sources.dedup();
    Ok(Rendered { bytes, sources })
}

/// The bytes `source` selects from its fetched secret: the whole value, or the value under its
/// key (a string as is, any other JSON value as JSON text). This is what a raw file without
/// `encoding` holds; `audit reuse` compares these.
///
/// # Errors
/// The same problems [`render_all`] reports for the source (no such key, not JSON, binary).
pub fn select(source: &Source, fetched: &FetchSet) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut provenance = Vec::new();
    Ok(
        match pick(source, fetched, &mut provenance, &mut Parsed::default())? {
            Picked::Text(t) | Picked::Json(t) => Zeroizing::new(t.as_bytes().to_vec()),
            Picked::Bytes(b) => b,
        },
    )
}

/// A selected value: text, bytes, or (for a non-string JSON value under a key) its JSON text.
enum Picked {
    Text(Zeroizing<String>),
    Bytes(Zeroizing<Vec<u8>>),
    Json(Zeroizing<String>),
}

impl Picked {
    fn into_text(self) -> Result<Zeroizing<String>, String> {
        match self {
            Picked::Text(t) | Picked::Json(t) => Ok(t),
            Picked::Bytes(b) => match std::str::from_utf8(&b) {
                Ok(s) => Ok(Zeroizing::new(s.to_string())),
                Err(_) => Err("is binary (not UTF-8) and cannot go into a text format".into()),
            },
        }
    }
}

fn lookup<'a>(fetched: &'a FetchSet, r: &SecretRef) -> Result<&'a crate::fetch::Fetched, String> {
    fetched
        .get(r)
        .ok_or_else(|| "was not fetched (internal error)".to_string())
}

/// The secret parsed last, so the files of one `keys: all` set (consecutive in the plan) parse
/// it once, not once per key: that made a 10,000-key set quadratic. One document at a
/// time, dropped with the render.
#[derive(Default)]
struct Parsed {
    last: Option<(SecretRef, std::rc::Rc<Json>)>,
}

impl Parsed {
    fn get(&mut self, r: &SecretRef, text: &str) -> Result<std::rc::Rc<Json>, String> {
        if let Some((at, doc)) = &self.last
            && at == r
        {
            return Ok(doc.clone());
        }
        // serde_json's errors carry positions only, never the input.
        let doc = std::rc::Rc::new(Json::parse(text).map_err(|e| {
            format!(
                "is not JSON (parse error at line {} column {}), so it has no keys",
                e.line(),
                e.column()
            )
        })?);
        self.last = Some((r.clone(), doc.clone()));
        Ok(doc)
    }
}

fn pick(
    source: &Source,
    fetched: &FetchSet,
    sources: &mut Vec<SourceInfo>,
    parsed: &mut Parsed,
) -> Result<Picked, String> {
    let f = lookup(fetched, &source.secret)?;
    sources.push(SourceInfo {
        source: source.secret.kind.as_str(),
        id: source.secret.id.clone(),
        arn: f.arn.clone(),
        version_id: f.version_id.clone(),
    });
    let text = match (&f.value, &source.key) {
        (SecretValue::Binary(b), None) => {
            return Ok(Picked::Bytes(Zeroizing::new(b.expose_secret().to_vec())));
        }
        (SecretValue::Text(t), None) => {
            return Ok(Picked::Text(Zeroizing::new(t.expose_secret().to_string())));
        }
        (SecretValue::Binary(_), Some(_)) => {
            return Err("is a binary secret (SecretBinary) and has no JSON keys".into());
        }
        (SecretValue::Text(t), Some(_)) => t.expose_secret(),
    };
    let doc = parsed.get(&source.secret, text)?;
    let selected = match source.key.as_ref() {
        Some(KeySel::Key(k)) => match doc.keys() {
            Some(_) => doc.get(k),
            None => return Err("is JSON but not an object, so it has no keys".into()),
        },
        Some(KeySel::Pointer(p)) => doc.pointer(p),
        None => None,
    };
    match selected {
        None => Err(format!(
            "no such key in the secret's JSON; {}",
            key_names(&doc, source.key.as_ref())
        )),
        Some(v) if v.is_null() => Err("the key's value is null".into()),
        Some(v) => Ok(match v.as_str() {
            Some(s) => Picked::Text(Zeroizing::new(s.to_string())),
            None => Picked::Json(v.compact()),
        }),
    }
}

/// The key names (never values) of the object a missing key was looked for in: the top level
/// for a key, the deepest object the pointer reaches for a pointer. At most 20 names.
fn key_names(doc: &Json, key: Option<&KeySel>) -> String {
    let mut at = doc;
    let mut where_ = String::new();
    if let Some(KeySel::Pointer(p)) = key {
        let tokens: Vec<&str> = p.split('/').skip(1).collect();
        for (i, _) in tokens
            .iter()
            .enumerate()
            .take(tokens.len().saturating_sub(1))
        {
            let prefix = format!("/{}", tokens[..=i].join("/"));
            match doc.pointer(&prefix) {
                Some(v) if v.keys().is_some() => {
                    at = v;
                    where_ = format!(" under `{prefix}`");
                }
                _ => break,
            }
        }
    }
    let Some(keys) = at.keys() else {
        return format!("the value{where_} is not an object");
    };
    if keys.is_empty() {
        return format!("the object{where_} has no keys");
    }
    let mut names: Vec<String> = keys
        .iter()
        .take(20)
        .map(|k| {
            let shown: String = k.chars().take(64).collect();
            format!("`{}`", crate::terminal::Escaped(&shown))
        })
        .collect();
    if keys.len() > 20 {
        names.push(format!("and {} more", keys.len() - 20));
    }
    format!("the keys{where_} are: {}", names.join(", "))
}

fn decode_base64(text: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    // The decoder's own error names the offending byte: report only that it failed.
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| "`encoding: base64` but the value is not valid base64".to_string())
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// One dotenv line in the default (`common`) dialect; see [`dotenv::line`].
pub fn dotenv_line(name: &str, value: &str) -> Result<String, String> {
    dotenv::line(crate::manifest::Dialect::Common, name, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_errors_do_not_echo_the_value() {
        let err = decode_base64("canary!!value").unwrap_err();
        assert!(!err.contains("canary") && !err.contains('!'), "{err}");
        assert_eq!(&*decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
    }
}
