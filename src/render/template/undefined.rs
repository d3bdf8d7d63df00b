//! Which name an undefined-value error is about. minijinja reports the line but not the name
//! (its spans need the `debug` feature, which would also keep the context, i.e. secrets, in the
//! error), so the references on that line (`db.host`, `db["a b"]`, `list[0]`) are looked up
//! again in the context, and the first that does not resolve is named, with the keys its
//! parent does have. Only names are printed: keys (which credfile treats as names elsewhere,
//! `keys: all` writes them as file names) and the template's own text, never a value.

use std::collections::BTreeMap;

use minijinja::value::{Value, ValueKind};

enum Seg {
    Attr(String),
    Index(i64),
}

/// `` `db.hots` is undefined (`db` has keys: `host`, `port`) `` for the first reference on
/// `line` that does not resolve in `ctx`; `None` when each does (a loop variable, say).
pub fn find(line: &str, ctx: &BTreeMap<String, Value>) -> Option<String> {
    for region in regions(line) {
        for (root, segs) in chains(region) {
            let Some(mut value) = ctx.get(&root).cloned() else {
                continue;
            };
            let mut path = root;
            for seg in segs {
                let parent_path = path.clone();
                let next = match &seg {
                    Seg::Attr(a) => {
                        path.push_str(&show_attr(a));
                        value.get_attr(a)
                    }
                    Seg::Index(i) => {
                        path.push_str(&format!("[{i}]"));
                        value.get_item(&Value::from(*i))
                    }
                };
                match next {
                    Ok(v) if !v.is_undefined() => value = v,
                    _ => {
                        return Some(format!(
                            "`{}` is undefined ({})",
                            crate::terminal::sanitize(&path),
                            what_it_has(&parent_path, &value)
                        ));
                    }
                }
            }
        }
    }
    None
}

fn show_attr(a: &str) -> String {
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!(".{a}")
    } else {
        format!("[{}]", serde_json::to_string(a).unwrap_or_default())
    }
}

fn what_it_has(path: &str, value: &Value) -> String {
    let path = crate::terminal::sanitize(path);
    if let Some(names) = super::super::json_tree::key_names(value) {
        return if names.is_empty() {
            format!("`{path}` has no keys")
        } else {
            format!("`{path}` has keys: {}", names.join(", "))
        };
    }
    let kind = match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            return match value.len() {
                Some(n) => format!("`{path}` is a list of {n} items"),
                None => format!("`{path}` is a list"),
            };
        }
        ValueKind::String => "a string (its value is not a JSON object)",
        ValueKind::Number => "a number",
        ValueKind::Bool => "a boolean",
        ValueKind::None => "null",
        _ => "not an object",
    };
    format!("`{path}` is {kind}")
}

/// The parts of `line` inside `{{ }}` and `{% %}` (to the line's end when one is not closed on
/// it); the whole line when it opens none (a continued expression).
fn regions(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("{{").into_iter().chain(rest.find("{%")).min() {
        let body = &rest[start + 2..];
        let end = ["}}", "%}"]
            .iter()
            .filter_map(|c| body.find(c))
            .min()
            .unwrap_or(body.len());
        out.push(&body[..end]);
        rest = &body[end..];
    }
    if out.is_empty() {
        out.push(line);
    }
    out
}

/// Attribute chains in an expression: `a.b["c"][0]`, roots that are not themselves an
/// attribute or inside a string literal. A chain called as a method (`d.items()`) loses its
/// last part.
fn chains(expr: &str) -> Vec<(String, Vec<Seg>)> {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let literal = |i: &mut usize| -> Option<String> {
        let quote = chars[*i];
        let mut s = String::new();
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' && *i + 1 < chars.len() {
                *i += 1;
            }
            s.push(chars[*i]);
            *i += 1;
        }
        *i += 1;
        (*i <= chars.len()).then_some(s)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            literal(&mut i);
            continue;
        }
        let starts = (c.is_alphabetic() || c == '_')
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || "_.".contains(chars[i - 1])));
        if !starts {
            i += 1;
            continue;
        }
        let root = ident(&mut i);
        let mut segs = Vec::new();
        loop {
            let mut j = i;
            skip_ws(&mut j);
            match chars.get(j) {
                Some('.') => {
                    j += 1;
                    skip_ws(&mut j);
                    let name = ident(&mut j);
                    if name.is_empty() {
                        break;
                    }
                    segs.push(Seg::Attr(name));
                }
                Some('[') => {
                    j += 1;
                    skip_ws(&mut j);
                    let seg = match chars.get(j) {
                        Some('"' | '\'') => literal(&mut j).map(Seg::Attr),
                        Some(d) if d.is_ascii_digit() => {
                            let n = ident(&mut j);
                            n.parse().ok().map(Seg::Index)
                        }
                        _ => None,
                    };
                    skip_ws(&mut j);
                    match (seg, chars.get(j)) {
                        (Some(seg), Some(']')) => {
                            segs.push(seg);
                            j += 1;
                        }
                        _ => break,
                    }
                }
                Some('(') => {
                    segs.pop();
                    break;
                }
                _ => break,
            }
            i = j;
        }
        out.push((root, segs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> BTreeMap<String, Value> {
        let db: BTreeMap<String, Value> = [
            ("host".to_string(), Value::from("h-secret")),
            ("port".to_string(), Value::from(5432)),
        ]
        .into();
        [
            ("db".to_string(), Value::from(db)),
            ("token".to_string(), Value::from("t-secret")),
            (
                "list".to_string(),
                Value::from(vec![Value::from("x-secret")]),
            ),
        ]
        .into()
    }

    #[test]
    fn names_the_first_reference_that_does_not_resolve() {
        let c = ctx();
        let m = find("url = {{ db.host }}:{{ db.hots | json }}", &c).unwrap();
        assert_eq!(m, "`db.hots` is undefined (`db` has keys: `host`, `port`)");
        let m = find("{{ db[\"a b\"] }}", &c).unwrap();
        assert!(m.starts_with("`db[\"a b\"]` is undefined"), "{m}");
        let m = find("{% if token.x %}", &c).unwrap();
        assert!(m.contains("`token` is a string"), "{m}");
        let m = find("{{ list[3] }}", &c).unwrap();
        assert!(m.contains("`list[3]`") && m.contains("1 items"), "{m}");
        assert!(find("{{ 'db.nope' ~ db.host }} {{ db.items() }}", &c).is_none());
        assert!(find("{{ loopvar.x }}", &c).is_none());
        for text in ["{{ db.hots }}", "{{ token.x }}", "{{ list[3] }}"] {
            let m = find(text, &c).unwrap();
            assert!(!m.contains("secret"), "{m}");
        }
    }
}
