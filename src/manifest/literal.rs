//! The `literal-value` check: does a manifest line hold a secret instead of a reference?
//!
//! `credfile validate` (an error) and `credfile lint` both run it on every line, comments
//! included. Four detectors: machine-made secrets (PEM blocks, AWS access key ids, known token
//! prefixes, long random runs); human-made passwords (a short word-and-digit-and-symbol mix such
//! as `Summer2024!`); anything assigned to a password-like name (`db_password: hunter2`,
//! `# passwd = opensesame`, `passphrase: "correct horse battery staple"`) that is not a
//! reference, a variable name or a placeholder; and a value of four or more plain lowercase
//! words (a diceware passphrase) under any key. Measured on tests/fixtures/literals (see the
//! test at the end of this file and docs/src/governance.md): `cargo test literal_corpus -- --nocapture`.
//!
//! A finding never carries the literal, only its kind, position and a redacted form
//! ([`redact`]).

use std::collections::BTreeMap;

/// A literal-looking secret in one line: where it starts, what it looks like, and a redacted
/// form to name it by. Never the literal itself, so that no caller can print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// 1-based column of its first character.
    pub column: usize,
    pub kind: &'static str,
    /// See [`redact`].
    pub redacted: String,
}

/// A byte range of the line and its kind, before redaction.
struct Span {
    start: usize,
    end: usize,
    kind: &'static str,
}

/// Literal-looking secrets in one line of text, left to right, at most one per column.
pub fn literal_candidates(line: &str) -> Vec<Candidate> {
    let mut spans = generated(line);
    spans.extend(assignments(line));
    if spans.is_empty() {
        for (pos, word) in words(line) {
            if human_password(word) {
                spans.push(Span {
                    start: pos,
                    end: pos + word.len(),
                    kind: "a password",
                });
            }
        }
    }
    // Stable: at one column, a generated format (named precisely) wins over an assignment.
    spans.sort_by_key(|s| s.start);
    spans.dedup_by_key(|s| s.start);
    spans
        .into_iter()
        .map(|s| Candidate {
            column: column_of(line, s.start),
            kind: s.kind,
            redacted: redact(&line[s.start..s.end]),
        })
        .collect()
}

/// The message of a `literal-value` finding, in `validate` and `lint` alike.
pub fn message(c: &Candidate) -> String {
    format!(
        "this looks like a literal secret ({}: {}), not a reference; the rest of its text is not shown",
        c.kind, c.redacted
    )
}

/// How a literal is named in messages: its length, and its first characters (at most 4 and
/// at most a quarter of it, so a short password keeps most of its text hidden; none when they
/// are not plain ASCII). `AKIA…`, 20 characters: enough to find it and to see which key it
/// was, not enough to use it.
pub fn redact(literal: &str) -> String {
    let n = literal.chars().count();
    let shown: String = literal.chars().take((n / 4).min(4)).collect();
    if shown.is_empty() || !shown.chars().all(|c| c.is_ascii_graphic() && c != '`') {
        format!("{n} characters")
    } else {
        format!("`{shown}…`, {n} characters")
    }
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

/// Keys whose names look like credentials but whose values are references, names or settings:
/// the manifest's own, CI's `id-token: write` / GitLab's `id_tokens:`, and systemd's
/// `LoadCredential[Encrypted]=NAME[:PATH]` (a name and a path; `SetCredential=` holds a value
/// and stays checked).
const MANIFEST_KEYS: &[&str] = &[
    "secret",
    "key",
    "token_env",
    "credential_key",
    "token_file",
    "secret_id_env",
    "secret_id_file",
    "values",
    "secrets",
    "id-token",
    "id_token",
    "id_tokens",
    "loadcredential",
    "loadcredentialencrypted",
];

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

/// Where the line's comment starts: a `#` at the start or after a blank, outside quotes.
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if prev.is_whitespace() || "{[,:".contains(prev) => quote = Some(c),
            (None, '#') if prev.is_whitespace() => return Some(i),
            _ => {}
        }
        prev = c;
    }
    None
}

/// Every `NAME: value`, `NAME=value`, `NAME = value` (and, in a comment, `NAME is value`) in
/// the line whose value is a literal: after a credential-like NAME, any literal; after another
/// name, only a YAML value of four or more plain words (a passphrase).
fn assignments(line: &str) -> Vec<Span> {
    let comment = comment_start(line);
    let in_comment = |i: usize| comment.is_some_and(|c| i > c);
    let mut out = Vec::new();
    for (i, c) in line.char_indices() {
        if c != ':' && c != '=' {
            continue;
        }
        let next = line[i + 1..].chars().next();
        let prev = line[..i].chars().next_back();
        let skip = match c {
            // A YAML key ends in `: `; in prose, `http://` and `arn:aws:` are not assignments.
            ':' if in_comment(i) => matches!(next, Some('/' | ':')),
            ':' => !matches!(next, None | Some(' ' | '\t')),
            _ => matches!(next, Some('=')) || matches!(prev, Some('=' | '!' | '<' | '>')),
        };
        if skip {
            continue;
        }
        let Some(name) = name_before(line, i) else {
            continue;
        };
        let shell = c == '=';
        let flow = !in_comment(i) && line[..i].contains(['{', '[']);
        if password_name(name) {
            out.extend(assigned(line, i + 1, shell, flow));
        } else if c == ':' && !in_comment(i) {
            out.extend(
                assigned(line, i + 1, false, flow)
                    .filter(|s| s.kind == "a passphrase" && bare_passphrase(&line[s.start..s.end])),
            );
        }
    }
    if let Some(c) = comment {
        // `# the passphrase is correct horse battery staple`
        let text = &line[c..];
        for (pos, word) in words(text) {
            let rest = &text[pos + word.len()..];
            let name = word.trim_end_matches([',', '.', ';']);
            if password_name(name)
                && let Some(after) = rest.strip_prefix(" is ").or(rest.strip_prefix(" was "))
            {
                let from = line.len() - after.len();
                out.extend(assigned(line, from, false, false));
            }
        }
    }
    out
}

/// The name right before a separator at `sep`: letters, digits, `_`, `-` and `.`, maybe
/// quoted, maybe followed by one blank (`password = x`).
fn name_before(line: &str, sep: usize) -> Option<&str> {
    let head = &line[..sep];
    let head = head.strip_suffix(' ').unwrap_or(head);
    let head = head.strip_suffix(['"', '\'']).unwrap_or(head);
    let start = head
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || "_-.".contains(*c)))
        .map_or(0, |(p, c)| p + c.len_utf8());
    let name = head[start..].trim_matches(['-', '.']);
    (!name.is_empty()).then_some(name)
}

/// The value that starts at byte `from` (after blanks), if it is a literal: its span and kind.
/// A quoted value runs to its closing quote; an unquoted one to a comment, to the next blank
/// after `=` (`shell`), or to `,`, `}` or `]` in a flow collection.
fn assigned(line: &str, from: usize, shell: bool, flow: bool) -> Option<Span> {
    let rest = &line[from..];
    let trimmed = rest.trim_start_matches([' ', '\t']);
    let start = from + (rest.len() - trimmed.len());
    let (start, value, quoted) = match trimmed.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = &trimmed[1..];
            (
                start + 1,
                &inner[..inner.find(q).unwrap_or(inner.len())],
                true,
            )
        }
        _ => {
            let mut end = trimmed.find(" #").unwrap_or(trimmed.len());
            if shell {
                end = end.min(trimmed.find([' ', '\t', '"', '\'']).unwrap_or(end));
            }
            if flow {
                end = end.min(trimmed.find([',', '}', ']']).unwrap_or(end));
            }
            (start, trimmed[..end].trim_end(), false)
        }
    };
    let (offset, len, kind) = judge(value, quoted)?;
    Some(Span {
        start: start + offset,
        end: start + offset + len,
        kind,
    })
}

/// Whether a value assigned to a credential-like name is a literal: the byte range of the
/// literal inside it and its kind. One word: a password unless it is a reference, a name or a
/// placeholder. Several: a passphrase when they are plain words ([`passphrase`]); else the
/// first word when it holds a digit or a symbol (`hunter2 (the old one)`), since prose is not a
/// secret.
fn judge(value: &str, quoted: bool) -> Option<(usize, usize, &'static str)> {
    let v = value.trim();
    let offset = value.len() - value.trim_start().len();
    if reference(v, quoted) {
        return None;
    }
    let mut words = v.split_whitespace();
    let first = words.next()?;
    if words.next().is_none() {
        let kind = if passphrase(v, 3) {
            "a passphrase"
        } else {
            "a password"
        };
        return single_literal(v).then_some((offset, v.len(), kind));
    }
    if passphrase(v, 3) {
        return Some((offset, v.len(), "a passphrase"));
    }
    // Prose punctuation after a word (`is asked: these are people`) is no symbol of a password.
    let bare = first.trim_end_matches([':', ',', '.', ';', '!', '?']);
    let mixed = bare.chars().any(|c| !c.is_ascii_alphabetic());
    (mixed && !reference(first, false) && single_literal(first)).then_some((
        offset,
        first.len(),
        "a password",
    ))
}

/// A reference, a template expression, a URL, an ARN or a placeholder: not a value.
fn reference(v: &str, quoted: bool) -> bool {
    let lower = v.to_ascii_lowercase();
    let env_var = v.strip_prefix('$').is_some_and(|name| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    });
    (!quoted && v.starts_with(['{', '[', '&', '*', '|', '>', '!']))
        || v.starts_with(['<', '%'])
        || (v.contains('<') && v.contains('>'))
        || env_var
        || v.contains("${")
        || v.contains("{{")
        || v.contains("{%")
        || v.contains("://")
        || lower.starts_with("arn:")
        || PLACEHOLDERS.iter().any(|p| lower.contains(p))
        || v.chars().all(|c| c == v.chars().next().unwrap_or(' '))
}

/// One word that is not a name: at least 4 characters, not a variable or key name, not a path.
fn single_literal(v: &str) -> bool {
    if v.chars().count() < 4 {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    // A variable or key name: `DB_PASSWORD`, `db_password`, `password-key`.
    let ident = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident(v) && v.contains('_') && (v == v.to_ascii_uppercase() || v == lower) {
        return false;
    }
    if ident(v) && v.chars().all(|c| c.is_ascii_lowercase() || c == '_') && password_name(v) {
        return false;
    }
    // A path or a secret name: segments of name characters between slashes.
    !(v.contains('/')
        && v.split('/').all(|seg| {
            seg.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }))
}

/// Words that prose has and generated passphrases (almost) never: "see", "is", "in", "the".
const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "is",
    "are",
    "was",
    "be",
    "been",
    "in",
    "on",
    "at",
    "of",
    "to",
    "for",
    "from",
    "by",
    "with",
    "and",
    "or",
    "not",
    "no",
    "see",
    "under",
    "via",
    "into",
    "per",
    "each",
    "every",
    "this",
    "that",
    "it",
    "its",
    "as",
    "if",
    "set",
    "stored",
    "lives",
    "kept",
    "use",
    "used",
    "managed",
    "read",
    "comes",
    "rotated",
    "rotate",
    "ask",
    "here",
    "there",
    "our",
    "your",
    "my",
    "we",
    "you",
    "should",
    "must",
    "will",
    "can",
    "only",
    "also",
    "then",
    "when",
    "where",
    "which",
    "who",
    "secrets",
    "manager",
    "vault",
    "store",
    "parameter",
    "ssm",
    "aws",
];

/// At least `min` plain words (letters only, lower case or capitalized) joined by single blanks
/// or dashes, and no word that prose is made of ([`STOPWORDS`]): `correct horse battery staple`,
/// `Purple-Monkey-Dishwasher`.
fn passphrase(v: &str, min: usize) -> bool {
    let words: Vec<&str> = if v.contains(' ') {
        v.split(' ').collect()
    } else {
        v.split('-').collect()
    };
    (min..=10).contains(&words.len())
        && words.iter().all(|w| {
            let mut chars = w.chars();
            (2..=12).contains(&w.len())
                && chars
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_uppercase())
                && chars.all(|c| c.is_ascii_lowercase())
                && !STOPWORDS.contains(&w.to_ascii_lowercase().as_str())
        })
}

/// A passphrase under a name that does not say so: only four or more lower-case words joined
/// by blanks. Dash-joined words are names (`orders-billing-sync-worker`) too often to judge
/// without a credential-like name.
fn bare_passphrase(v: &str) -> bool {
    v.contains(' ') && v.chars().all(|c| c.is_ascii_lowercase() || c == ' ') && passphrase(v, 4)
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
    spans(line, |c| !(c.is_whitespace() || "\"'`,[]{}()".contains(c)))
}

/// The maximal runs of `line` whose characters are all `inside`, with their byte offsets.
fn spans(line: &str, inside: impl Fn(char) -> bool) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line.char_indices() {
        match (inside(c), start) {
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

/// A password a person made up: 8 to 64 characters mixing letters, digits and a symbol, such
/// as `Summer2024!` or `P@ssw0rd#1`; not an e-mail address, a package@version, a URL or a
/// template expression.
fn human_password(word: &str) -> bool {
    let w = word.trim_end_matches([':', ';', '.']);
    let n = w.chars().count();
    let shell_var = w
        .split('$')
        .skip(1)
        .any(|after| after.starts_with(|c: char| c.is_ascii_uppercase() || c == '_' || c == '('));
    if !(8..=64).contains(&n)
        || shell_var
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
fn generated(line: &str) -> Vec<Span> {
    let mut out = Vec::new();
    if let Some(pos) = line.find("-----BEGIN ") {
        let header = line[pos + 11..]
            .find("-----")
            .map_or(line.len(), |e| pos + 11 + e + 5);
        out.push(Span {
            start: pos,
            end: header,
            kind: "a PEM block",
        });
    }
    // Identifiers by the manifest's schema (a version id may be 32 hex digits).
    let id_value = ["version_id:", "version:", "label:", "session_name:"]
        .iter()
        .any(|k| line.trim_start().trim_start_matches("- ").starts_with(k));
    for (pos, token) in tokens(line) {
        // A commit pinned with `@` (`actions/checkout@<40 hex>`) is a name, not a key.
        let pinned = line[..pos].ends_with('@')
            && token.len() == 40
            && token.chars().all(|c| c.is_ascii_hexdigit());
        let kind = if aws_key_id(token) {
            Some("an AWS access key id")
        } else if KNOWN_TOKEN_PREFIXES
            .iter()
            .any(|p| token.starts_with(p) && token.len() >= p.len() + 16)
        {
            Some("an API token")
        } else if !pinned && !id_value && looks_random(token) {
            Some("a high-entropy string")
        } else {
            None
        };
        if let Some(kind) = kind {
            out.push(Span {
                start: pos,
                end: pos + token.len(),
                kind,
            });
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

/// Maximal runs of the characters secrets are usually written with (base64, base64url, hex),
/// split at a `=` that is not trailing padding (`TimeoutStartSec=15min` is two words).
fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (pos, run) in runs(line) {
        let body = run.trim_end_matches('=');
        let mut at = 0;
        for part in body.split('=') {
            let end = if at + part.len() == body.len() {
                run.len()
            } else {
                at + part.len()
            };
            if end > at {
                out.push((pos + at, &run[at..end]));
            }
            at += part.len() + 1;
        }
    }
    out
}

fn runs(line: &str) -> Vec<(usize, &str)> {
    spans(line, |c| c.is_ascii_alphanumeric() || "+/=_-".contains(c))
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
/// is judged segment by segment, and an absolute one not at all; a name with plain words between
/// dashes, part by part ([`random_name`]). UUIDs (version ids, KMS key ids) never qualify.
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
        return !token.starts_with('/') && token.split('/').any(random_name);
    }
    random_name(token)
}

/// A name made of plain words and a generated part (`t-orders-3fa9c0d1e2b4a5f6`, a bucket's
/// `-7f3a2b`, a secret ARN's `-AbC123`) is judged by its parts: only a part random on its own
/// makes it a secret.
fn random_name(token: &str) -> bool {
    let parts: Vec<&str> = token.split(['-', '_', '/']).collect();
    let plain = |p: &&str| p.len() >= 3 && p.chars().all(|c| c.is_ascii_lowercase());
    if parts.len() > 1 && parts.iter().any(plain) {
        return parts.iter().any(|p| random_segment(p));
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
mod tests;
