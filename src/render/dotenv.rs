//! dotenv encoders, one per reader (`dialect:` on a `format: dotenv` file).
//!
//! The readers disagree on quoting, escapes and variable expansion, so one spelling cannot suit
//! them all. The default (`common`) is the strict form that reads back identically in dotenvy and
//! python-dotenv; each other dialect writes for one reader, and can therefore hold more values.
//! Each encoder either writes a line that its reader decodes to exactly the value, or refuses
//! with the reason (never the value): the tests round-trip tricky values through the real
//! parsers (python-dotenv, dotenvy, node's dotenv, dash and bash) and, for docker and systemd,
//! through the rules their documentation and source give.

pub use crate::manifest::Dialect;

/// One `NAME=value` line (with its newline) for `dialect`.
///
/// # Errors
/// The value cannot be spelled so that the dialect's reader reads it back exactly; the message
/// says why and what to do, and never quotes the value.
pub fn line(dialect: Dialect, name: &str, value: &str) -> Result<String, String> {
    if value.contains('\0') {
        return Err(format!(
            "contains a NUL byte, which no {} reader can hold; use `format: json` or a raw file",
            dialect.name()
        ));
    }
    match dialect {
        Dialect::Common => common(name, value),
        Dialect::PythonDotenv => python_dotenv(name, value),
        Dialect::Dotenvy => dotenvy(name, value),
        Dialect::Node => node(name, value),
        Dialect::Docker => docker(name, value),
        Dialect::Shell => Ok(format!("{name}={}\n", shell_quote(value))),
        Dialect::Systemd => systemd(name, value),
    }
}

const OTHER_FORMAT: &str = "use `format: json` or a raw file";

/// The strict common form: reads back exactly through both dotenvy and python-dotenv.
///
/// Single quotes (no escapes, no expansion in either) when the value has no `'`, `\`, newline or
/// carriage return; python-dotenv expands `${NAME}` even there, so `${` is refused outright;
/// otherwise double quotes with `\\`, `\"` and `\n`, which both decode the same way, when the
/// value has no `$` (which both would expand). Anything else has no spelling that both read back
/// exactly, so it is refused rather than written wrong.
fn common(name: &str, value: &str) -> Result<String, String> {
    if value.contains('\r') {
        return Err(format!(
            "contains a carriage return, which dotenv readers do not read back exactly; {OTHER_FORMAT}"
        ));
    }
    if value.contains("${") {
        return Err(format!(
            "contains `${{`, which python-dotenv expands as a variable in every quoting; choose the reader with `dialect:` (dotenvy, node, shell, systemd) or {OTHER_FORMAT}"
        ));
    }
    if !value.contains(['\'', '\\', '\n']) {
        return Ok(format!("{name}='{value}'\n"));
    }
    if value.contains('$') {
        return Err(format!(
            "contains `$` together with a quote, backslash or newline; no dotenv quoting reads back exactly in both dotenvy and python-dotenv; choose the reader with `dialect:` or {OTHER_FORMAT}"
        ));
    }
    Ok(double_quoted(
        name,
        value,
        &[('\\', "\\\\"), ('"', "\\\""), ('\n', "\\n")],
    ))
}

/// python-dotenv (`load_dotenv` / `dotenv_values`, interpolation on as by default): single
/// quotes, where it decodes exactly `\\` and `\'` and keeps newlines; `${` is refused because it
/// interpolates in every quoting; a carriage return is refused because Python reads the file in
/// universal-newline mode.
fn python_dotenv(name: &str, value: &str) -> Result<String, String> {
    if value.contains('\r') {
        return Err(format!(
            "contains a carriage return, which python-dotenv reads back as a newline; {OTHER_FORMAT}"
        ));
    }
    if value.contains("${") {
        return Err(format!(
            "contains `${{`, which python-dotenv expands as a variable in every quoting; {OTHER_FORMAT}"
        ));
    }
    let mut out = format!("{name}='");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push_str("'\n");
    Ok(out)
}

/// dotenvy (Rust): double quotes, where it decodes `\\`, `\"`, `\$` and `\n`, so every value
/// without a carriage return can be written.
fn dotenvy(name: &str, value: &str) -> Result<String, String> {
    if value.contains('\r') {
        return Err(format!(
            "contains a carriage return, which dotenvy does not read back exactly; {OTHER_FORMAT}"
        ));
    }
    Ok(double_quoted(
        name,
        value,
        &[('\\', "\\\\"), ('"', "\\\""), ('$', "\\$"), ('\n', "\\n")],
    ))
}

/// node's `dotenv` (`parse`/`config`, no dotenv-expand): it has no escapes except `\n`/`\r` inside
/// double quotes, so the value is wrapped in a quote character it does not contain (`'`, then
/// `` ` ``, then `"`); newlines stay literal. A value ending in `\` would let its regex read the
/// closing quote as escaped, so such a value is written unquoted when it can be.
fn node(name: &str, value: &str) -> Result<String, String> {
    if value.contains('\r') {
        return Err(format!(
            "contains a carriage return, which node's dotenv turns into a newline; {OTHER_FORMAT}"
        ));
    }
    if value.ends_with('\\') {
        let plain = !value.contains(['#', '\n'])
            && value.trim() == value
            && !value.starts_with(['\'', '"', '`']);
        if plain {
            return Ok(format!("{name}={value}\n"));
        }
        return Err(format!(
            "ends with a backslash and also holds `#`, a newline, a leading quote or surrounding spaces, which node's dotenv cannot read back; {OTHER_FORMAT}"
        ));
    }
    for q in ['\'', '`'] {
        if !value.contains(q) {
            return Ok(format!("{name}={q}{value}{q}\n"));
        }
    }
    if !value.contains('"') && !value.contains("\\n") && !value.contains("\\r") {
        return Ok(format!("{name}=\"{value}\"\n"));
    }
    Err(format!(
        "contains all three quote characters (', ` and \") or `\\n` text, which node's dotenv has no escape for; {OTHER_FORMAT}"
    ))
}

/// `docker run --env-file`: the value is the rest of the line, byte for byte (no quotes, no
/// escapes, no expansion; trailing spaces kept), so only a line break cannot be held.
fn docker(name: &str, value: &str) -> Result<String, String> {
    if value.contains(['\n', '\r']) {
        return Err(format!(
            "contains a line break, which `docker --env-file` cannot hold (the value is the rest of one line); {OTHER_FORMAT}"
        ));
    }
    Ok(format!("{name}={value}\n"))
}

/// POSIX shell single quotes: everything literal; `'` is written `'\''`.
pub fn shell_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// systemd `EnvironmentFile=` (systemd.exec(5)): double quotes, in which `\` before one of
/// `"`, `\`, `` ` `` and `$` yields that character and newlines are kept. The file must be
/// UTF-8 without U+FEFF or non-characters; control characters other than tab and newline are
/// refused too, because systemd before v250 dropped assignments holding them.
fn systemd(name: &str, value: &str) -> Result<String, String> {
    let bad = value.chars().find(|&c| {
        (c.is_control() && c != '\t' && c != '\n')
            || c == '\u{feff}'
            || ('\u{fdd0}'..='\u{fdef}').contains(&c)
            || (c as u32) & 0xfffe == 0xfffe
    });
    if let Some(c) = bad {
        return Err(format!(
            "contains the character U+{:04X}, which systemd's EnvironmentFile refuses or does not read back; {OTHER_FORMAT}",
            c as u32
        ));
    }
    Ok(double_quoted(
        name,
        value,
        &[('\\', "\\\\"), ('"', "\\\""), ('`', "\\`"), ('$', "\\$")],
    ))
}

fn double_quoted(name: &str, value: &str, escapes: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(value.len() + name.len() + 4);
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match escapes.iter().find(|(from, _)| *from == c) {
            Some((_, to)) => out.push_str(to),
            None => out.push(c),
        }
    }
    out.push_str("\"\n");
    out
}

#[cfg(test)]
mod tests;
