//! The `literal-value` check: does a manifest line hold a secret instead of a reference?
//!
//! `credfile validate` and `credfile lint` both run it on every line (comments included). Three
//! detectors: machine-made secrets (PEM blocks, AWS access key ids, known token prefixes,
//! long random runs); human-made passwords (a short word-and-digit-and-symbol mix such as
//! `Summer2024!`); and anything assigned to a password-like name (`db_password: hunter2`,
//! `passphrase = "correct horse battery staple"`) that is not a reference, a variable name or a
//! placeholder. Measured on tests/fixtures/literals (see the test at the end of this file and
//! docs/src/governance.md): precision and recall are printed by
//! `cargo test literal_corpus -- --nocapture`.

use std::collections::BTreeMap;

/// Positions (1-based columns) and kinds of literal-looking secrets in one line of text.
pub fn literal_candidates(line: &str) -> Vec<(usize, &'static str)> {
    let mut out = generated(line);
    let comment = line.trim_start().starts_with('#');
    if let Some(found) = assigned_to_password_name(line, comment) {
        out.push(found);
    }
    if out.is_empty() {
        for (pos, word) in words(line) {
            if human_password(word) {
                out.push((column_of(line, pos), "a password"));
            }
        }
    }
    out.sort();
    out.dedup_by_key(|(c, _)| *c);
    out
}

/// Parts of names that say the value is a credential.
const PASSWORD_NAMES: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "pass",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "private_key",
    "credential",
];

/// Manifest keys whose names look like credentials but whose values are references or names.
const MANIFEST_KEYS: &[&str] = &["secret", "key", "token_env", "values", "secrets"];

fn password_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if MANIFEST_KEYS.contains(&lower.as_str()) {
        return false;
    }
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| {
            PASSWORD_NAMES
                .iter()
                .any(|p| part == *p || (p.len() > 4 && part.contains(p)))
        })
        || PASSWORD_NAMES
            .iter()
            .filter(|p| p.contains(['_', '-']))
            .any(|p| lower.contains(p))
}

/// `NAME: value`, `NAME=value` or `NAME = value` with a credential-like NAME and a value that
/// is not a reference: the value's column and kind.
fn assigned_to_password_name(line: &str, comment: bool) -> Option<(usize, &'static str)> {
    let body = line.trim_start().trim_start_matches(['#', '-', ' ']);
    let offset = line.len() - body.len();
    let sep = body.find([':', '='])?;
    let name = body[..sep].trim().trim_matches(['"', '\'']);
    if name.is_empty()
        || name.contains(' ') && !comment
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "_-. ".contains(c))
    {
        return None;
    }
    // In a comment, only the word right before the separator names the value.
    let name = name.rsplit(' ').next().unwrap_or(name);
    if !password_name(name) {
        return None;
    }
    let rest = body[sep + 1..].trim_start_matches([':', '=', ' ', '\t']);
    let start =
        offset + (body.len() - body[sep + 1..].len()) + (body[sep + 1..].len() - rest.len());
    let (value, quoted) = scalar(rest);
    if !is_literal_value(value, quoted, comment) {
        return None;
    }
    let kind = if value.split_whitespace().count() >= 3 {
        "a passphrase"
    } else {
        "a password"
    };
    Some((column_of(line, start), kind))
}

/// The scalar at the start of `rest`: quoted, or up to a YAML comment; and whether it was quoted.
fn scalar(rest: &str) -> (&str, bool) {
    for q in ['"', '\''] {
        if let Some(inner) = rest.strip_prefix(q) {
            return (inner.find(q).map_or(inner, |end| &inner[..end]), true);
        }
    }
    let end = rest.find(" #").unwrap_or(rest.len());
    (rest[..end].trim_end().trim_end_matches(','), false)
}

fn is_literal_value(value: &str, quoted: bool, comment: bool) -> bool {
    let v = value.trim();
    if v.chars().count() < 4 {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    let reference = v.starts_with(['{', '[', '&', '*', '|', '>', '<', '$', '%'])
        || v.contains("${")
        || v.contains("{{")
        || v.contains("{%")
        || v.contains("://")
        || lower.starts_with("arn:")
        || PLACEHOLDERS.iter().any(|p| lower.contains(p))
        || v.chars().all(|c| c == v.chars().next().unwrap_or(' '));
    if reference {
        return false;
    }
    // A variable or key name: `DB_PASSWORD`, `db_password`, `password-key`.
    let ident = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident(v) && v.contains('_') && (v == v.to_ascii_uppercase() || v == lower) {
        return false;
    }
    if ident(v) && v.chars().all(|c| c.is_ascii_lowercase() || c == '_') && password_name(v) {
        return false;
    }
    // A path or a secret name: segments of name characters between slashes.
    if v.contains('/')
        && v.split('/').all(|seg| {
            seg.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
    {
        return false;
    }
    let words = v.split_whitespace().count();
    if words > 1 {
        // Prose in a comment is not a passphrase unless it is quoted; a passphrase is a few
        // plain words.
        return (quoted || !comment)
            && (3..=8).contains(&words)
            && v.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-');
    }
    true
}

/// Values that say "no value here".
const PLACEHOLDERS: &[&str] = &[
    "redacted",
    "example",
    "placeholder",
    "changeme-later",
    "todo",
    "xxx",
    "***",
    "...",
    "null",
    "none",
    "true",
    "false",
    "secrets manager",
    "see ",
];

/// Whitespace-, quote- and bracket-separated words of a line.
fn words(line: &str) -> Vec<(usize, &str)> {
    let sep = |c: char| c.is_whitespace() || "\"'`,[]{}()".contains(c);
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (sep(c), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// A password a person made up: 8 to 64 characters mixing letters, digits and a symbol, such
/// as `Summer2024!` or `P@ssw0rd#1`; not an e-mail address, a package@version, a URL or a
/// template expression.
fn human_password(word: &str) -> bool {
    let w = word.trim_end_matches([':', ';', '.']);
    let n = w.chars().count();
    if !(8..=64).contains(&n)
        || w.contains("${")
        || w.contains("://")
        || w.starts_with(['$', '%', '@', '&', '*', '!'])
    {
        return false;
    }
    let lower = w.chars().any(|c| c.is_ascii_lowercase());
    let upper = w.chars().any(|c| c.is_ascii_uppercase());
    let digit = w.chars().any(|c| c.is_ascii_digit());
    let symbols: Vec<char> = w.chars().filter(|c| "!@#$%^&*?~".contains(*c)).collect();
    if symbols.is_empty() || !digit || !(lower || upper) {
        return false;
    }
    if w.chars()
        .any(|c| !(c.is_ascii_alphanumeric() || "!@#$%^&*?~._-+=".contains(c)))
    {
        return false;
    }
    if symbols.iter().all(|c| *c == '@') {
        // `ops2@example.com`, `node@20.1.0`: an address or a package spec, unless it reads like
        // a word with letters swapped for symbols (`P@ssw0rd`: upper and lower case).
        let (before, after) = w.split_once('@').unwrap_or((w, ""));
        let address = after.contains('.') || after.starts_with(|c: char| c.is_ascii_digit());
        if address || before.is_empty() || !(upper && lower) {
            return false;
        }
    }
    true
}

/// Machine-made secrets in one line: PEM blocks, AWS key ids, known token formats, random runs.
fn generated(line: &str) -> Vec<(usize, &'static str)> {
    let mut out = Vec::new();
    if let Some(pos) = line.find("-----BEGIN ") {
        out.push((column_of(line, pos), "a PEM block"));
    }
    for (pos, token) in tokens(line) {
        let kind = if aws_key_id(token) {
            Some("an AWS access key id")
        } else if KNOWN_TOKEN_PREFIXES
            .iter()
            .any(|p| token.starts_with(p) && token.len() >= p.len() + 16)
        {
            Some("an API token")
        } else if looks_random(token) {
            Some("a high-entropy string")
        } else {
            None
        };
        if let Some(kind) = kind {
            out.push((column_of(line, pos), kind));
        }
    }
    out
}

/// Prefixes of well-known token formats (GitHub, GitLab, Slack, Stripe).
const KNOWN_TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "sk_live_",
];

fn column_of(line: &str, byte: usize) -> usize {
    line[..byte].chars().count() + 1
}

/// Maximal runs of the characters secrets are usually written with (base64, base64url, hex).
fn tokens(line: &str) -> Vec<(usize, &str)> {
    let is_tok = |c: char| c.is_ascii_alphanumeric() || "+/=_-".contains(c);
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (is_tok(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &line[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &line[s..]));
    }
    out
}

/// An AWS access key id: a four-letter prefix and 16 upper-case letters or digits.
fn aws_key_id(token: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA", "AROA",
    ];
    let bytes = token.as_bytes();
    (0..bytes.len().saturating_sub(19)).any(|i| {
        PREFIXES
            .iter()
            .any(|p| bytes[i..].starts_with(p.as_bytes()))
            && bytes[i + 4..i + 20]
                .iter()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && bytes
                .get(i + 20)
                .is_none_or(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit()))
            && (i == 0 || !(bytes[i - 1].is_ascii_uppercase() || bytes[i - 1].is_ascii_digit()))
    })
}

/// Shannon entropy in bits per character.
fn entropy(token: &str) -> f64 {
    let mut counts: BTreeMap<char, usize> = BTreeMap::new();
    let mut n = 0usize;
    for c in token.chars() {
        *counts.entry(c).or_default() += 1;
        n += 1;
    }
    let n = n as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Whether a token looks generated rather than written by a person: long hex; or a long mix of
/// upper case, lower case and digits that changes character class often (camelCase identifiers
/// change class about once a word, random text at almost every other character); or a long,
/// high-entropy run with several digits. A token with a plain word between slashes is a path and
/// is judged segment by segment, and an absolute one not at all. UUIDs (version ids, KMS key ids) never qualify.
fn looks_random(token: &str) -> bool {
    let is_word = |s: &str| {
        s.len() >= 3
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
    };
    if token.contains('/') && token.split('/').any(is_word) {
        // An absolute path (a root, a template file) may hold a generated directory name
        // (mktemp, a build id); it names where a file goes, never what it holds.
        return !token.starts_with('/') && token.split('/').any(random_segment);
    }
    random_segment(token)
}

fn random_segment(token: &str) -> bool {
    let chars: Vec<char> = token.chars().collect();
    let len = chars.len();
    if len < 20 {
        return false;
    }
    let digits = chars.iter().filter(|c| c.is_ascii_digit()).count();
    let upper = chars.iter().any(char::is_ascii_uppercase);
    let lower = chars.iter().any(char::is_ascii_lowercase);
    let class = |c: char| match c {
        'a'..='z' => 0,
        'A'..='Z' => 1,
        '0'..='9' => 2,
        _ => 3,
    };
    let changes = chars
        .windows(2)
        .filter(|w| class(w[0]) != class(w[1]))
        .count();
    let e = entropy(token);
    if len >= 32 && digits > 0 && chars.iter().all(char::is_ascii_hexdigit) {
        return e >= 3.0;
    }
    if len >= 32 && digits > 0 && e >= 4.3 {
        return true;
    }
    // Random base62 of 20 characters changes class at ~60% of positions and has an entropy
    // above 0.83 * log2(len) in 99% of draws; camelCase names stay below one or the other.
    digits > 0 && upper && lower && changes * 20 >= (len - 1) * 7 && e >= 0.83 * (len as f64).log2()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("# One ")
                    && !l.starts_with("# Generated")
                    && !l.starts_with("# Human")
                    && !l.starts_with("# Assigned")
            })
            .collect()
    }

    /// Precision and recall on tests/fixtures/literals: every positive line must be caught and
    /// at most one ordinary line (the 40-hex git commit id, which looks like a hex key) flagged.
    #[test]
    fn literal_corpus() {
        let positives = cases(include_str!("../../tests/fixtures/literals/positives.txt"));
        let negatives = cases(include_str!("../../tests/fixtures/literals/negatives.txt"));
        let missed: Vec<&str> = positives
            .iter()
            .copied()
            .filter(|l| literal_candidates(l).is_empty())
            .collect();
        let false_alarms: Vec<&str> = negatives
            .iter()
            .copied()
            .filter(|l| !literal_candidates(l).is_empty())
            .collect();
        let tp = positives.len() - missed.len();
        let precision = tp as f64 / (tp + false_alarms.len()) as f64;
        let recall = tp as f64 / positives.len() as f64;
        println!(
            "literal corpus: {} positives, {} negatives; recall {recall:.3}, precision {precision:.3}; missed {missed:?}; false alarms {false_alarms:?}",
            positives.len(),
            negatives.len()
        );
        assert!(missed.is_empty(), "missed: {missed:#?}");
        assert!(false_alarms.len() <= 1, "false alarms: {false_alarms:#?}");
    }

    #[test]
    fn kinds_and_columns() {
        assert_eq!(
            literal_candidates("      db_password: hunter2"),
            vec![(20, "a password")]
        );
        assert_eq!(
            literal_candidates("  passphrase: \"correct horse battery staple\""),
            vec![(15, "a passphrase")]
        );
        assert_eq!(
            literal_candidates("    note: Summer2024!")[0].1,
            "a password"
        );
        assert!(literal_candidates("    key: password").is_empty());
    }
}
