//! `format: template`: minijinja in strict mode, with escaping filters and nothing else.
//!
//! - Undefined is an error (`UndefinedBehavior::Strict`): printing, iterating, testing or reading
//!   an attribute of something undefined fails the render; an empty string never stands in for a
//!   missing secret.
//! - No loader and no `multi_template` feature: `include`, `import` and `extends` cannot name a
//!   file, and there is no function that reads a file or the network. The `debug` feature (which
//!   dumps the context, i.e. secrets) is not compiled in.
//! - Filters for the context a value lands in: `json` (a JSON string literal), `yaml` (a
//!   double-quoted YAML scalar), `shell` (one POSIX shell word in single quotes) and `dotenv` (a
//!   dotenv value both dotenvy and python-dotenv read back exactly).
//! - Error messages name the template and line and quote the template's own source line, never a
//!   value (minijinja's detail text is shown only for errors that describe the template itself).

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};
use zeroize::Zeroizing;

use crate::manifest::template::{self, OWN};

mod undefined;

/// The template language of the manifest ([`crate::manifest::template`]) with the filters that
/// place a value in its context.
fn environment() -> Environment<'static> {
    let mut env = template::environment();
    env.add_filter("json", json_filter);
    env.add_filter("yaml", yaml_filter);
    env.add_filter("shell", shell_filter);
    env.add_filter("dotenv", dotenv_filter);
    env
}

/// Renders `source` with `values` as the only context. The output grows in zeroizing memory
/// ([`Wiped`]), so no reallocation leaves a copy of it behind.
pub fn render(
    name: &str,
    source: &str,
    values: Vec<(String, Value)>,
) -> Result<Zeroizing<String>, String> {
    let env = environment();
    let tmpl = env
        .template_from_named_str(name, source)
        .map_err(|e| describe(&e, source, None))?;
    let ctx: BTreeMap<String, Value> = values.into_iter().collect();
    let mut out = Wiped::default();
    tmpl.render_captured_to(Value::from(ctx.clone()), &mut out)
        .map_err(|e| describe(&e, source, Some(&ctx)))?;
    let bytes = std::mem::take(&mut *out.0);
    String::from_utf8(bytes).map(Zeroizing::new).map_err(|e| {
        drop(Zeroizing::new(e.into_bytes()));
        "the output is not UTF-8 (internal error)".to_string()
    })
}

/// A growing buffer that wipes each smaller buffer it leaves behind.
#[derive(Default)]
struct Wiped(Zeroizing<Vec<u8>>);

impl std::io::Write for Wiped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let need = self.0.len() + buf.len();
        if need > self.0.capacity() {
            let mut bigger =
                Zeroizing::new(Vec::with_capacity(need.max(self.0.capacity() * 2).max(256)));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Marks errors raised by our filters, whose text we wrote and which never hold a value.
fn own_error(message: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("{OWN}{message}"))
}

/// A message that names the problem and line without any value: `line 3: ...`. For a render
/// error, `ctx` lets an undefined name be named, with the keys its parent does have.
fn describe(e: &Error, source: &str, ctx: Option<&BTreeMap<String, Value>>) -> String {
    let line_text = e
        .line()
        .and_then(|l| source.lines().nth(l.saturating_sub(1)));
    let missing = match (e.kind(), ctx, line_text) {
        (ErrorKind::UndefinedError, Some(ctx), Some(text)) => undefined::find(text, ctx),
        _ => None,
    };
    template::describe(e, source, missing)
}

fn text_of(value: &Value) -> Result<String, Error> {
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    if value.is_none() {
        return Err(own_error("the value is none/null"));
    }
    Ok(match value.as_str() {
        Some(s) => s.to_string(),
        None => value.to_string(),
    })
}

/// A JSON string literal (with quotes): `{"password": {{ db_password | json }}}`.
fn json_filter(value: &Value) -> Result<String, Error> {
    let text = Zeroizing::new(text_of(value)?);
    serde_json::to_string(&*text).map_err(|_| own_error("cannot encode as JSON"))
}

/// A double-quoted YAML scalar: `password: {{ db_password | yaml }}`.
fn yaml_filter(value: &Value) -> Result<String, Error> {
    let text = Zeroizing::new(text_of(value)?);
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            // YAML also treats these as line breaks; escape them so the value stays one line.
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// One POSIX shell word: `export TOKEN={{ token | shell }}`.
fn shell_filter(value: &Value) -> Result<String, Error> {
    let text = Zeroizing::new(text_of(value)?);
    if text.contains('\0') {
        return Err(own_error("a shell word cannot hold a NUL byte"));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Ok(out)
}

/// A dotenv value (quotes included): `API_KEY={{ api_key | dotenv }}`. Same rules as
/// `format: dotenv`: a value no quoting reads back exactly is an error.
fn dotenv_filter(value: &Value) -> Result<String, Error> {
    let text = Zeroizing::new(text_of(value)?);
    let line =
        super::dotenv_line("X", &text).map_err(|why| own_error(&format!("dotenv: {why}")))?;
    Ok(line
        .strip_prefix("X=")
        .and_then(|l| l.strip_suffix('\n'))
        .unwrap_or_default()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRICKY: &[&str] = &[
        "plain",
        "it's \"quoted\" twice",
        "multi\nline\nvalue\n",
        "back\\slash \\\\ trailing\\",
        "tab\tand\rcarriage",
        "dollar $HOME `cmd` $(cmd)",
        "ünïcødé ✓",
        "",
    ];

    fn one(filter: &str, value: &str) -> Result<Zeroizing<String>, String> {
        render(
            "inline",
            &format!("{{{{ v | {filter} }}}}"),
            vec![("v".into(), Value::from(value))],
        )
    }

    #[test]
    fn undefined_names_and_keys_are_errors() {
        let err = render("inline", "a={{ nope }}", vec![]).unwrap_err();
        assert!(err.contains("line 1") && err.contains("undefined"), "{err}");
        let map: std::collections::BTreeMap<String, Value> =
            [("user".to_string(), Value::from("u"))].into();
        let err = render(
            "inline",
            "x\n{{ db.passwrd }}",
            vec![("db".into(), Value::from(map))],
        )
        .unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("db.passwrd"),
            "{err}"
        );
        let err = render("inline", "{% if nope %}x{% endif %}", vec![]).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn unknown_filters_fail_the_render_by_name() {
        let err = render(
            "inline",
            "{{ v | nosuchfilter }}",
            vec![("v".into(), Value::from("secret-value"))],
        )
        .unwrap_err();
        assert!(
            err.contains("unknown filter") && err.contains("nosuchfilter"),
            "{err}"
        );
        assert!(!err.contains("secret-value"), "{err}");
    }

    #[test]
    fn no_file_access() {
        let err = render("inline", "{% include '/etc/passwd' %}", vec![]).unwrap_err();
        assert!(!err.contains("root:"), "{err}");
        assert!(render("inline", "{{ debug() }}", vec![]).is_err());
    }

    #[test]
    fn json_filter_round_trips() {
        for v in TRICKY {
            let out = one("json", v).unwrap();
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(&back, v);
        }
    }

    #[test]
    fn yaml_filter_round_trips() {
        for v in TRICKY
            .iter()
            .chain(&["\u{85}next\u{2028}line", "- not: a list", "null", "0o17"])
        {
            let out = one("yaml", v).unwrap();
            let doc = format!("k: {}\n", &*out);
            let back: std::collections::BTreeMap<String, String> =
                serde_yaml::from_str(&doc).unwrap();
            assert_eq!(back["k"], *v, "{doc}");
        }
    }

    #[test]
    fn shell_filter_round_trips() {
        for v in TRICKY {
            let out = one("shell", v).unwrap();
            let back = std::process::Command::new("/bin/sh")
                .args(["-c", &format!("printf %s {}", &*out)])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(back.stdout).unwrap(), *v, "{}", &*out);
        }
    }

    #[test]
    fn dotenv_filter_round_trips_or_refuses() {
        for v in TRICKY {
            match one("dotenv", v) {
                Ok(out) => {
                    let file = format!("K={}\n", &*out);
                    let parsed: Vec<(String, String)> = dotenvy::from_read_iter(file.as_bytes())
                        .collect::<Result<_, _>>()
                        .unwrap();
                    assert_eq!(parsed[0].1, *v);
                }
                Err(e) => assert!(
                    v.contains('\r') || v.contains('$'),
                    "unexpected refusal: {e}"
                ),
            }
        }
        let err = one("dotenv", "a ${HOME}").unwrap_err();
        assert!(err.contains("dotenv") && !err.contains("HOME"), "{err}");
    }

    #[test]
    fn errors_never_hold_values() {
        let secret = "s3cr3t-canary-value";
        for t in [
            "{{ v | int }}",
            "{{ v + 1 }}",
            "{{ v.x }}",
            "{{ v[0:1] | dotenv }}{{ w }}",
            "{% for c in v %}{{ c.k }}{% endfor %}",
        ] {
            if let Err(e) = render("inline", t, vec![("v".into(), Value::from(secret))]) {
                assert!(!e.contains("s3cr3t"), "{t}: {e}");
            }
        }
    }
}
