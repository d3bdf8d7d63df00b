//! The documentation is tested: every manifest and command example in the book (docs/src) and
//! the README's quick start and install commands.
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
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::dist::{
    FileServer, TARGET, VERSION, archive_name, deb_name, dist, repo, rpm_name, served_copy,
    stdout_of, tempdir,
};

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
fn logical_lines(text: &str) -> Vec<String> {
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
fn shell_words(line: &str) -> Vec<String> {
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
        .filter(|w| w.starts_with("--") && !options.contains(w))
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

// --- the README's quick start and install commands ---------------------------------------------

fn readme() -> String {
    fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The first indented code block after `marker` in the README, one string per line (4-space
/// indent removed).
fn readme_code_after(marker: &str) -> Vec<String> {
    let md = readme();
    let at = md
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no `{marker}`"));
    let mut lines: Vec<String> = md[at..]
        .lines()
        .skip_while(|l| !l.starts_with("    "))
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| l.get(4..).unwrap_or("").to_string())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

fn executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[test]
fn readme_quick_start_is_what_ci_runs_and_the_demo_applies() {
    let block = readme_code_after("## Quick start");
    let commands: Vec<String> = block.iter().map(|l| shell_words(l).join(" ")).collect();
    assert_eq!(
        commands,
        ["scripts/demo.sh", "scripts/test.sh"],
        "{block:?}"
    );
    for c in &commands {
        assert!(executable(&repo().join(c)), "{c} is not executable");
    }
    // CI runs exactly scripts/test.sh.
    let ci = fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "exec scripts/test.sh"),
        "{ci}"
    );
    // The demo does what the quick start says: that manifest, that environment, a root of its
    // own under /dev/shm (mktemp) unless CREDFILE_DEMO_ROOT names one.
    let demo = fs::read_to_string(repo().join("scripts/demo.sh")).unwrap();
    let md = readme();
    let quick = &md[md.find("## Quick start").unwrap()..md.find("## The three ways").unwrap()];
    for said in [
        "pipeline-examples/credfile.yaml",
        "/dev/shm",
        "CREDFILE_DEMO_ROOT",
    ] {
        assert!(quick.contains(said), "the quick start names {said}");
        assert!(demo.contains(said), "scripts/demo.sh uses {said}");
    }
    assert!(
        demo.contains("mktemp -d \"$base/credfile-demo."),
        "scripts/demo.sh applies into a directory of its own run"
    );
    let prose = quick.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        prose.contains("applies its `staging` environment"),
        "{prose}"
    );
    assert_eq!(
        demo.matches(" apply --env staging --manifest \"$manifest\"")
            .count(),
        2
    );
    // ... and that manifest's staging environment is valid.
    let out = Command::new(BIN)
        .args(["validate", "--env", "staging", "--manifest"])
        .arg(repo().join("pipeline-examples/credfile.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What can be checked without a release: the versions, file names, flags and inputs the
/// README's install commands use are the ones this tree builds and ships.
#[test]
fn readme_install_commands_name_this_release() {
    let by_hand = readme_code_after("**Download and check by hand**");
    assert_eq!(by_hand[0], format!("V={VERSION} REPO=OWNER/credfile"));
    let text = by_hand.join("\n");
    assert!(text.contains("credfile-$V-x86_64-unknown-linux-gnu.tar.gz"));
    assert_eq!(
        format!("credfile-{VERSION}-x86_64-unknown-linux-gnu.tar.gz"),
        archive_name()
    );

    let installer = readme_code_after("**The installer**");
    assert_eq!(installer.len(), 2, "{installer:?}");
    assert_eq!(
        installer[0],
        format!(
            "curl -fsSLO https://github.com/OWNER/credfile/releases/download/v{VERSION}/install.sh"
        )
    );
    let usage = fs::read_to_string(repo().join("scripts/install.sh")).unwrap();
    for flag in shell_words(&installer[1])
        .iter()
        .filter(|w| w.starts_with("--") || w.starts_with("[--"))
    {
        let flag = flag.trim_start_matches('[');
        assert!(
            usage.contains(&format!("        {flag})")),
            "install.sh takes no {flag}"
        );
    }
    assert!(installer[1].contains(&format!("--version {VERSION} ")));

    let packages = readme_code_after("**Debian/Ubuntu and RHEL");
    assert_eq!(
        packages,
        [format!(
            "sudo apt install ./{}      # or: sudo dnf install ./{}",
            deb_name(),
            rpm_name()
        )]
    );
    let source = readme_code_after("**From source**");
    assert_eq!(
        source,
        [format!(
            "cargo install --locked --git https://github.com/OWNER/credfile --tag v{VERSION}"
        )]
    );

    // The action's and the component's inputs exist, at this version.
    let action = readme_code_after("**GitHub Actions:**").join("\n");
    let action_yml = fs::read_to_string(repo().join("action.yml")).unwrap();
    for input in inline_keys(&action, "with: {") {
        assert!(
            action_yml.contains(&format!("\n  {input}:\n")),
            "action.yml has no input {input}"
        );
    }
    assert!(
        action.contains(&format!("version: {VERSION} }}")),
        "{action}"
    );
    assert!(
        action.contains("steps.credfile.outputs.changed") && action_yml.contains("\n  changed:\n")
    );
    let component = readme_code_after("**GitLab CI/CD component**").join("\n");
    assert!(
        component.contains(&format!("/OWNER/credfile/credfile@{VERSION}")),
        "{component}"
    );
    let template = fs::read_to_string(repo().join("templates/credfile.yml")).unwrap();
    for input in inline_keys(&component, "inputs: {") {
        assert!(
            template.contains(&format!("\n    {input}:\n")),
            "the component has no input {input}"
        );
    }
}

/// The keys of a one-line YAML flow mapping that follows `prefix`.
fn inline_keys(text: &str, prefix: &str) -> Vec<String> {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in {text}"))
        + prefix.len();
    let body = &text[at..text[at..].find('}').unwrap() + at];
    let keys: Vec<String> = body
        .split(',')
        .map(|kv| kv.split(':').next().unwrap().trim().to_string())
        .collect();
    assert!(!keys.is_empty());
    keys
}

/// The README's download-and-check block and its installer lines, run as written against the
/// release scripts/dist.sh built, served on 127.0.0.1 in place of GitHub's release URL.
/// `cosign verify-blob` and `gh attestation verify` are not run: they need the release
/// workflow's Sigstore bundle and the network (the served copy holds an empty stand-in bundle
/// so the README's curl line, which downloads it, runs unchanged).
#[test]
fn readme_install_commands_run_against_the_release() {
    let Some(dist) = dist() else { return };
    let served = served_copy(&dist);
    fs::write(served.path().join("SHA256SUMS.sigstore.json"), "{}").unwrap();
    let server = FileServer::start(served.path());

    // Download and check by hand.
    let mut script = vec!["set -eu".to_string()];
    let mut skipped = Vec::new();
    for line in logical_lines(&readme_code_after("**Download and check by hand**").join("\n")) {
        let first = line.split_whitespace().next().unwrap_or("");
        match first {
            "cosign" | "gh" => skipped.push(first.to_string()),
            "#" | "" => {}
            _ if line.starts_with("base=") => script.push(format!("base={}", server.url())),
            _ => script.push(line),
        }
    }
    assert_eq!(skipped, ["cosign", "gh"]);
    let dir = tempdir("credfile-readme-");
    let out = Command::new("bash")
        .arg("-c")
        .arg(script.join("\n"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script:?}\n{text}");
    assert!(
        text.contains(&format!("{}: OK", archive_name())),
        "sha256sum -c checked the archive: {text}"
    );
    let bin = dir
        .path()
        .join(format!("credfile-{VERSION}-{TARGET}/credfile"));
    let v = stdout_of(Command::new(&bin).arg("--version"));
    assert!(v.starts_with(&format!("credfile {VERSION}\n")), "{v}");

    // The installer: the curl line with the server for GitHub, then the install line with
    // every optional flag given (--sha256 with the archive's line of SHA256SUMS).
    let installer = readme_code_after("**The installer**");
    let release = format!("https://github.com/OWNER/credfile/releases/download/v{VERSION}");
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let hash = sums
        .lines()
        .find(|l| l.ends_with(&format!("  {}", archive_name())))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let dir = tempdir("credfile-readme-");
    let target = dir.path().join("bin");
    let install = installer[1]
        .replace("[--dir DIR]", &format!("--dir {}", target.display()))
        .replace("[--base-url URL]", &format!("--base-url {}", server.url()))
        .replace("[--sha256 HEX]", &format!("--sha256 {hash}"));
    assert!(
        !install.contains('['),
        "every optional flag filled: {install}"
    );
    let script = format!(
        "set -eu\n{}\n{install}\n",
        installer[0].replace(&release, &server.url())
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = stdout_of(Command::new(target.join("credfile")).arg("--version"));
    assert!(v.starts_with(&format!("credfile {VERSION}\n")), "{v}");
}
