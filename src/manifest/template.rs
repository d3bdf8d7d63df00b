//! What a `format: template` is, checked before anything is fetched: minijinja in strict mode,
//! no loader, no `debug`, and every name it reads defined in `values` (docs/src/templates.md).
//! The render stage adds the filters that place a value (`json`, `yaml`, `shell`, `dotenv`).

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// Deep templates are a mistake, not a use case.
const RECURSION_LIMIT: usize = 64;

/// The prefix of credfile's own error details (they describe the template, never a value).
pub const OWN: &str = "credfile: ";

/// The template language: strict undefined, no loader, no `debug`, final newline kept.
pub fn environment() -> Environment<'static> {
    // `new()` brings the builtin filters, tests and globals (`range`, `dict`, `namespace`) and
    // no loader. `debug` is not compiled in; removing it keeps that true if features change.
    let mut env = Environment::new();
    env.remove_global("debug");
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // A config file keeps its final newline (`template: |` in YAML ends with one).
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env
}

/// Checks a template before anything is fetched: it compiles, and every top-level name it reads
/// is one of `names` (or a builtin such as `range`). Returns a message for the manifest.
pub fn check(name: &str, source: &str, names: &[&str]) -> Result<(), String> {
    let env = environment();
    let tmpl = env
        .template_from_named_str(name, source)
        .map_err(|e| format!("template {name} {}", describe(&e, source, None)))?;
    let globals: Vec<String> = env.globals().map(|(n, _)| n.to_string()).collect();
    let mut unknown: Vec<String> = tmpl
        .undeclared_variables(false)
        .into_iter()
        .filter(|v| !names.contains(&v.as_str()) && !globals.contains(v))
        .collect();
    unknown.sort();
    if !unknown.is_empty() {
        return Err(format!(
            "template {name} uses {}, not defined in `values` (defined: {})",
            unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    Ok(())
}

/// A template error for people: its line, what is wrong (minijinja's detail only where it
/// describes the template itself), and the template's own source line. `missing`: the name
/// strict mode did not find, when the renderer could tell.
pub fn describe(e: &Error, source: &str, missing: Option<String>) -> String {
    let line_text = e
        .line()
        .and_then(|l| source.lines().nth(l.saturating_sub(1)));
    let mut out = match (e.line(), &missing) {
        (Some(line), Some(m)) => format!("line {line}: {m}"),
        (None, Some(m)) => m.clone(),
        (Some(line), None) => format!("line {line}: {}", e.kind()),
        (None, None) => e.kind().to_string(),
    };
    let detail_is_safe = matches!(
        e.kind(),
        ErrorKind::SyntaxError
            | ErrorKind::UnknownFilter
            | ErrorKind::UnknownFunction
            | ErrorKind::UnknownTest
            | ErrorKind::TemplateNotFound
    );
    match e.detail() {
        Some(d) if d.starts_with(OWN) => {
            out.push_str(": ");
            out.push_str(&d[OWN.len()..]);
        }
        Some(d) if detail_is_safe => {
            out.push_str(": ");
            out.push_str(d);
        }
        _ => {}
    }
    if let Some(line) = line_text {
        let line = line.trim();
        if !line.is_empty() {
            out.push_str(&format!(" (in `{}`)", shorten(line)));
        }
    }
    if e.kind() == ErrorKind::UndefinedError && missing.is_none() {
        out.push_str("; strict mode: every name and key a template reads must exist");
    }
    out
}

fn shorten(line: &str) -> String {
    const MAX: usize = 120;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_rejects_unknown_names_and_bad_syntax() {
        assert!(check("inline", "{{ a | json }} {{ range(2) }}", &["a"]).is_ok());
        let err = check("inline", "{{ a }} {{ b }}", &["a"]).unwrap_err();
        assert!(err.contains("`b`"), "{err}");
        let err = check("inline", "{{ a ", &["a"]).unwrap_err();
        assert!(err.contains("syntax"), "{err}");
        let err = check("inline", "{% include 'x' %}", &[]).unwrap_err();
        assert!(!err.is_empty());
    }
}
