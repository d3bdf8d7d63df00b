//! The documentation is tested: every manifest and command example in the book (docs/src); the
//! README's quick start and install commands are in readme.rs.
//!
//! Book examples, by their fence's info string (`yaml,entry`: language, then attributes):
//! * `yaml` holding `version: 1`: a whole manifest; `credfile validate` must accept it.
//! * `yaml,invalid`: a whole manifest `credfile validate` must refuse (exit 2).
//! * `yaml,entry`: one or more `files:` entries; wrapped into a minimal manifest and validated.
//! * `yaml,ci`: a CI job snippet; each `credfile` line in it is parsed like a command below.
//! * `sh`, `shell`, `console` (`$ ` prompts): each `credfile` line is run by the real binary in an
//!   empty directory: its clap parser must accept the arguments, so the run gets as far as
//!   reading the manifest (which is not there: it fails at the manifest stage and touches no
//!   network), or exits 0 for commands that read none (`man`, `completions`).
//! * `text,synopsis`: each `credfile` line is expanded (every optional group taken, the first of
//!   each alternative, placeholders such as ENV or FILE given sample values) and parsed the same
//!   way, and every flag it names must be one `credfile <command> --help` lists.
//!
//! A `yaml` block that is none of these, or a `credfile` command line in any other block, fails
//! the test: a new example cannot go unchecked.

use crate::support;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::dist::{repo, stdout_of, tempdir};

const BIN: &str = env!("CARGO_BIN_EXE_credfile");

// --- reading the Markdown ---------------------------------------------------------------------

/// One fenced code block: where it is, its info string split into words, its text.
struct Block {
    at: String,
    info: Vec<String>,
    text: String,
}

impl Block {
    fn lang(&self) -> &str {
        self.info.first().map(String::as_str).unwrap_or("")
    }
    fn has(&self, attr: &str) -> bool {
        self.info.iter().skip(1).any(|a| a == attr)
    }
}

/// Every chapter of the book: docs/src/**/*.md.
fn chapters() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("docs/src"), &mut out);
    out.sort();
    assert!(out.len() > 10, "the book's chapters: {out:?}");
    out
}

/// The fenced blocks of a Markdown file (fences may be indented, inside list items).
fn fenced_blocks(path: &Path) -> Vec<Block> {
    let md = fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(repo()).unwrap().display().to_string();
    let mut out = Vec::new();
    let mut open: Option<(usize, usize, Vec<String>, Vec<String>)> = None;
    for (i, line) in md.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        match open.take() {
            None if trimmed.starts_with("```") => {
                let info = trimmed[3..]
                    .split([' ', '\t', ','])
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect();
                open = Some((i + 1, indent, info, Vec::new()));
            }
            None => {}
            Some((start, _, info, lines)) if trimmed.starts_with("```") => {
                out.push(Block {
                    at: format!("{name}:{start}"),
                    info,
                    text: lines.join("\n") + "\n",
                });
            }
            Some((start, ind, info, mut lines)) => {
                lines.push(line.get(ind.min(indent)..).unwrap_or("").to_string());
                open = Some((start, ind, info, lines));
            }
        }
    }
    assert!(open.is_none(), "{name}: a code fence is never closed");
    out
}

fn book_blocks() -> Vec<Block> {
    chapters().iter().flat_map(|c| fenced_blocks(c)).collect()
}

/// Shell lines joined across trailing backslashes.
pub(crate) fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Shell words of one command, up to the first unquoted operator (`;`, `|`, `&`, `>`, `<`, `#`).
pub(crate) fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        _ => cur.push(q),
                    }
                }
            }
            ';' | '|' | '&' | '>' | '<' | '#' if !in_word || c != '#' => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// The arguments after `credfile` when the words run it (optionally through `sudo [-n]` and
/// `NAME=value` assignments, by name or by path); None when they run something else.
fn credfile_args(words: &[String]) -> Option<Vec<String>> {
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let assignment = w.split_once('=').is_some_and(|(n, _)| {
            !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
        if w == "sudo" || (i > 0 && words[i - 1] == "sudo" && w.starts_with('-')) || assignment {
            i += 1;
        } else if w == "credfile" || w.ends_with("/credfile") {
            return Some(words[i + 1..].to_vec());
        } else {
            return None;
        }
    }
    None
}

// --- running the binary -----------------------------------------------------------------------

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The binary in an empty directory with an environment of its own: no manifest to read, no
/// AWS endpoint that answers (a closed port on 127.0.0.1), one attempt per call.
fn run_isolated(args: &[String], dir: &Path) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("CREDFILE_MAX_ATTEMPTS", "1")
        .env("CREDFILE_CALL_TIMEOUT", "5")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("credfile {args:?} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// The real parser accepts `args`: the run reaches the manifest stage (and fails there, the
/// manifest is not in the empty directory), or, for a command that reads no manifest, exits 0.
fn check_parses(args: &[String], at: &str) -> Result<(), String> {
    let dir = tempdir("credfile-book-");
    let out = run_isolated(args, dir.path());
    let shown = format!("{at}: credfile {}", args.join(" "));
    if out.stderr.contains("\nUsage: ") || out.stderr.contains("try '--help'") {
        return Err(format!("{shown}\n  the parser refused it:\n{}", out.stderr));
    }
    let no_manifest = matches!(
        args.first().map(String::as_str),
        Some("man" | "completions" | "--version" | "-V" | "help" | "--help")
    );
    if no_manifest {
        if out.code != 0 {
            return Err(format!("{shown}\n  exit {}: {}", out.code, out.stderr));
        }
        return Ok(());
    }
    if out.code != 2 || !out.stderr.contains("cannot read manifest ") {
        return Err(format!(
            "{shown}\n  expected the manifest stage's `cannot read manifest` (exit 2), got exit {}:\n{}{}",
            out.code, out.stdout, out.stderr
        ));
    }
    Ok(())
}

/// `credfile validate` on one manifest; Ok((exit code, stderr)).
fn validate(manifest: &str) -> (i32, String) {
    let dir = tempdir("credfile-book-");
    fs::write(dir.path().join("book.yaml"), manifest).unwrap();
    let out = run_isolated(
        &["validate".into(), "--manifest".into(), "book.yaml".into()],
        dir.path(),
    );
    (out.code, out.stdout + &out.stderr)
}

/// The minimal manifest a `yaml,entry` block's `files:` entries are validated in.
fn wrap_entries(entries: &str) -> String {
    format!(
        "version: 1\napp: book\ndefaults:\n  region: us-east-1\n  root: /run/credfile/book\n\
         environments:\n  staging:\n    vars: {{ prefix: book/staging }}\nfiles:\n{entries}"
    )
}

// --- the book's manifests ---------------------------------------------------------------------

#[test]
fn every_manifest_in_the_book_is_validated_by_the_binary() {
    let mut failures = Vec::new();
    let (mut whole, mut entries) = (0, 0);
    for b in book_blocks().iter().filter(|b| b.lang() == "yaml") {
        let (manifest, want_valid) = if b.has("ci") {
            continue;
        } else if b.has("entry") {
            entries += 1;
            (wrap_entries(&b.text), true)
        } else if b.text.lines().any(|l| l.trim_end() == "version: 1") {
            whole += 1;
            (b.text.clone(), !b.has("invalid"))
        } else {
            failures.push(format!(
                "{}: a yaml block that is neither a manifest (`version: 1`) nor marked \
                 `yaml,entry` (files: entries) or `yaml,ci` (a CI snippet)",
                b.at
            ));
            continue;
        };
        let (code, out) = validate(&manifest);
        match (want_valid, code) {
            (true, 0) | (false, 2) => {}
            (true, _) => failures.push(format!("{}: validate exited {code}:\n{out}", b.at)),
            (false, _) => failures.push(format!(
                "{}: marked invalid, but validate exited {code} (want 2):\n{out}",
                b.at
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(
        whole >= 1 && entries >= 1,
        "found {whole} manifests and {entries} entry blocks"
    );
}

/// A block marked `yaml,invalid` must fail: the marker is not a way to skip a block.
#[test]
fn a_manifest_marked_invalid_must_fail_validate() {
    let (code, out) = validate("version: 1\napp: x\nenvironments: {}\nfiles: []\nmoed: 1\n");
    assert_eq!(code, 2, "{out}");
    let (code, out) = validate(&wrap_entries("  - path: a\n    secret: ${prefix}/a\n"));
    assert_eq!(code, 0, "the wrapper itself validates: {out}");
}

// --- the book's command lines -----------------------------------------------------------------

/// Sample values for a synopsis's placeholders.
fn placeholder(word: &str) -> Option<&'static str> {
    Some(match word {
        "ENV" | "A" => "staging",
        "B" | "ENVIRONMENT" => "production",
        "FILE" => "credfile.yaml",
        "DIR" => "/nonexistent/credfile-book",
        "SECS" | "SECONDS" => "5",
        "DURATION" => "5m",
        "OWNER" | "GROUP" => "acme",
        "REPO" | "PROJECT" => "payments",
        "BRANCH" => "main",
        "UNIT" => "payments.service",
        "USER" => "nobody",
        "SIGNAL" => "HUP",
        "CMD" => "true",
        "MOUNT" => "legacy",
        _ => return None,
    })
}

/// One synopsis line (continuations joined) as a concrete argument list: every `[...]` group
/// taken, the first of `a|b` and of `X | Y`, `...` dropped, placeholders filled.
fn expand_synopsis(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut skip = false;
    for tok in line.split_whitespace() {
        if std::mem::take(&mut skip) {
            continue;
        }
        if tok == "|" {
            skip = true;
            continue;
        }
        let tok = tok.replace(['[', ']'], "");
        if tok.is_empty() || tok == "..." {
            continue;
        }
        let tok = tok.split('|').next().unwrap().to_string();
        let mut filled = String::new();
        let mut word = String::new();
        for c in tok.chars().chain(std::iter::once('\0')) {
            if c.is_ascii_uppercase() || (c == '_' && !word.is_empty()) {
                word.push(c);
                continue;
            }
            if !word.is_empty() {
                if c.is_ascii_alphanumeric() {
                    filled.push_str(&word); // part of a longer word, not a placeholder
                } else {
                    filled.push_str(placeholder(&word).ok_or_else(|| {
                        format!("unknown placeholder `{word}` in `{line}`: add it to placeholder()")
                    })?);
                }
                word.clear();
            }
            if c != '\0' {
                filled.push(c);
            }
        }
        words.push(filled);
    }
    Ok(words)
}

/// Every flag a synopsis line names must be one the command's `--help` lists.
fn check_flags_exist(line: &str, args: &[String], at: &str) -> Result<(), String> {
    let sub: Vec<&String> = args.iter().take_while(|a| !a.starts_with('-')).collect();
    let help = stdout_of(Command::new(BIN).args(&sub).arg("--help"));
    // The options clap lists: lines `  -o, --output <OUTPUT>` or `      --offline`.
    let options: Vec<&str> = help
        .lines()
        .map(str::trim_start)
        .filter_map(|l| {
            let l = l
                .split_once(", ")
                .filter(|(s, _)| s.len() == 2)
                .map_or(l, |(_, r)| r);
            l.starts_with("--")
                .then(|| l.split([' ', '=', '<', '[']).next().unwrap())
        })
        .collect();
    let missing: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
        .filter(|w| w.starts_with("--") && *w != "--" && !options.contains(w))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{at}: `credfile {}` has no {missing:?}",
            sub.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
        ))
    }
}

#[test]
fn every_command_line_in_the_book_is_parsed_by_the_binary() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for b in book_blocks() {
        let lang = b.lang().to_string();
        let lines: Vec<String> = match lang.as_str() {
            "text" if b.has("synopsis") => {
                // A line starting with `credfile`, with its indented continuation lines.
                let mut cmds: Vec<String> = Vec::new();
                for l in b.text.lines() {
                    if l.starts_with("credfile ") {
                        cmds.push(l.to_string());
                    } else if l.starts_with(' ') && !cmds.is_empty() {
                        let last = cmds.last_mut().unwrap();
                        last.push(' ');
                        last.push_str(l.trim());
                    } else if !l.trim().is_empty() {
                        failures.push(format!("{}: not a synopsis line: {l}", b.at));
                    }
                }
                for line in &cmds {
                    checked += 1;
                    let args = match expand_synopsis(line) {
                        Ok(words) => credfile_args(&words).unwrap(),
                        Err(e) => {
                            failures.push(format!("{}: {e}", b.at));
                            continue;
                        }
                    };
                    if let Err(e) = check_flags_exist(line, &args, &b.at) {
                        failures.push(e);
                    }
                    if let Err(e) = check_parses(&args, &b.at) {
                        failures.push(e);
                    }
                }
                continue;
            }
            "sh" | "shell" | "bash" => logical_lines(&b.text),
            "console" => logical_lines(&b.text)
                .into_iter()
                .filter_map(|l| l.strip_prefix("$ ").map(str::to_string))
                .collect(),
            "yaml" if b.has("ci") => b
                .text
                .lines()
                .filter_map(|l| {
                    let l = l.trim_start().trim_start_matches("- ");
                    l.strip_prefix("run: ")
                        .or(l.strip_prefix("script: "))
                        .map(str::to_string)
                })
                .collect(),
            _ => {
                // Any other block must not hold a command line nobody checks.
                for l in b.text.lines() {
                    if credfile_args(&shell_words(l.trim_start_matches("$ "))).is_some() {
                        failures.push(format!(
                            "{}: a `credfile` command in a `{lang}` block: fence it as sh, \
                             console or text,synopsis so it is checked: {l}",
                            b.at
                        ));
                    }
                }
                continue;
            }
        };
        for line in lines {
            if let Some(args) = credfile_args(&shell_words(&line)) {
                checked += 1;
                if let Err(e) = check_parses(&args, &b.at) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    // The synopsis alone has nine commands; lint's CI snippet and audit reuse's line add two.
    assert!(
        checked >= 11,
        "only {checked} command lines found in the book"
    );
}

/// The checks can fail: a flag the parser does not know, a placeholder without a sample value,
/// and a flag a command does not have.
#[test]
fn the_command_checks_refuse_what_the_parser_refuses() {
    let args: Vec<String> = ["plan", "--env", "x", "--no-such-flag"]
        .map(String::from)
        .into();
    assert!(check_parses(&args, "t").is_err());
    let args: Vec<String> = ["plan", "--env", "x"].map(String::from).into();
    check_parses(&args, "t").unwrap();
    assert!(expand_synopsis("credfile plan --env WHAT").is_err());
    let line = "credfile plan --env ENV [--offline] [--output human|json]";
    let args = credfile_args(&expand_synopsis(line).unwrap()).unwrap();
    assert_eq!(
        args,
        ["plan", "--env", "staging", "--offline", "--output", "human"]
    );
    assert!(check_flags_exist(line, &args, "t").is_err());
    assert_eq!(
        credfile_args(&shell_words(
            "sudo -n CREDFILE_WEB_IDENTITY=none /usr/local/bin/credfile apply --env 'a b' > x"
        )),
        Some(vec!["apply".into(), "--env".into(), "a b".into()])
    );
}
