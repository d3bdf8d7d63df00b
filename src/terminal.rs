//! Text bound for a terminal, a log, a CI page or a tool that parses credfile's output. Names
//! from outside (secret keys under `keys: all`, parameter and secret names, ARNs, AWS error
//! messages, paths found on disk) may hold control characters (a newline forges an `error:` line
//! or a `::` workflow command; an escape sequence rewrites the screen) or Unicode format
//! characters (U+202E shows a name reversed, a zero-width space hides a difference). Every
//! output escapes them with the one rule here, [`Escaped`], so what is shown is what is there.
//! Shared by every stage's output, so it sits below them all.

use std::fmt;
use std::io::Write;

/// Whether `c` must never reach output as it is: C0 controls, DEL and C1 controls; Unicode
/// format characters (general category Cf: bidi embeddings, overrides and isolates, zero-width
/// characters, the BOM, the Arabic letter mark, invisible operators, tags); and the line and
/// paragraph separators, which some terminals and viewers break lines at.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Unicode general category Cf (Unicode 15.1), which `char` has no method for.
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// A name or a message from outside, shown on one line: every unsafe character ([`is_unsafe`])
/// is written as `\n`, `\r`, `\t` or `\u{202e}` (lowercase hex), everything else as it is.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape_into(f, self.0, |_| false)
    }
}

/// The one escaping loop: `keep` names the unsafe characters that stay (a layout's newlines).
fn escape_into(out: &mut dyn fmt::Write, text: &str, keep: fn(char) -> bool) -> fmt::Result {
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| is_unsafe(c) && !keep(c)) {
        out.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or_default();
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c => write!(out, "\\u{{{:x}}}", u32::from(c))?,
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// A single name or message, escaped ([`Escaped`]) into a `String`.
pub fn sanitize(text: &str) -> String {
    Escaped(text).to_string()
}

/// Text credfile composed itself over several lines (a report, an error with one line per
/// problem): its newlines and tabs are layout and stay; every other unsafe character is
/// escaped. Names from outside inside it must already be [`Escaped`], or their newlines pass.
pub fn sanitize_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let _ = escape_into(&mut out, text, |c| c == '\n' || c == '\t');
    out
}

/// stderr for log records (the tracing formatter's and credfile's own): each record is one
/// line whatever its fields hold. A text record is escaped whole ([`Escaped`]), its final
/// newline kept; a JSON record has each string value escaped, so that a log pipeline that
/// decodes and shows a value shows `\n` or `\u{202e}`, not the character.
#[derive(Debug, Clone, Copy)]
pub struct LogStderr;

impl LogStderr {
    /// Writes one record (with or without its newline) to stderr, escaped.
    pub fn record(text: &str) {
        let _ = LogStderr.write_all(format!("{}\n", text.trim_end_matches('\n')).as_bytes());
    }
}

impl Write for LogStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let mut out = match json_record(body) {
            Some(record) => record,
            None => sanitize(body),
        };
        out.push_str(newline);
        std::io::stderr().lock().write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Every string in a JSON document escaped ([`Escaped`]): a report or record a tool decodes
/// and shows holds `\n` or `\u{202e}`, never the character. Strings credfile composed over
/// several lines (an error message) become one line, as a log line is.
pub fn escape_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains(is_unsafe) => *s = sanitize(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(escape_json),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(escape_json),
        _ => {}
    }
}

/// A JSON object with every string in it escaped, or `None` when `line` is not JSON.
fn json_record(line: &str) -> Option<String> {
    if !line.starts_with('{') {
        return None;
    }
    let mut record: serde_json::Value = serde_json::from_str(line).ok()?;
    escape_json(&mut record);
    Some(record.to_string())
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogStderr {
    type Writer = LogStderr;

    fn make_writer(&'a self) -> Self::Writer {
        LogStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_onto_one_line() {
        assert_eq!(sanitize("a\u{1b}[2Jb\r"), "a\\u{1b}[2Jb\\r");
        assert_eq!(sanitize("k\nerror: forged"), "k\\nerror: forged");
        assert_eq!(sanitize("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(sanitize("\u{7f}\u{85}\u{9b}"), "\\u{7f}\\u{85}\\u{9b}");
        for c in [
            '\u{200b}',
            '\u{200f}',
            '\u{202a}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{61c}',
            '\u{2028}',
            '\u{e0041}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
        }
        assert_eq!(sanitize("café/日本/עברית ok"), "café/日本/עברית ok");
    }

    #[test]
    fn composed_text_keeps_its_layout() {
        assert_eq!(
            sanitize_lines("line\nnext\ttab\u{202e}\r"),
            "line\nnext\ttab\\u{202e}\\r"
        );
        assert_eq!(
            sanitize_lines(&format!("a: {}\n", Escaped("x\ny"))),
            "a: x\\ny\n"
        );
    }

    #[test]
    fn json_log_records_stay_json_with_escaped_strings() {
        let line = serde_json::json!({"fields": {"message": "k\nerror: x\u{202e}", "n": 1}});
        let out = json_record(&line.to_string()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["fields"]["message"], "k\\nerror: x\\u{202e}");
        assert_eq!(v["fields"]["n"], 1);
        assert!(json_record("2024 WARN text").is_none());
    }
}
