//! Round trips: every value each dialect accepts is written, read back by the dialect's real
//! reader (or, for docker and systemd, a transcription of their documented rules), and compared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use super::*;

/// Canary-like values with everything the readers treat specially.
const TRICKY: &[&str] = &[
    "plain-canary-7f3a",
    "",
    "with space  and\ttab",
    "  leading and trailing  ",
    "it's quoted \"twice\"",
    "back\\slash\\\\double",
    "multi\nline\nvalue\n",
    "dollar $HOME and $ alone",
    "braces ${HOME} and ${UNSET:-dflt}",
    "it's $HOME with \"quotes\"",
    "#not-a-comment = x # trailing",
    "ünïcødé ✓ 秘密",
    "trailing backslash\\",
    "'single'",
    "\"\\n\" literal",
    "back`tick` and $(cmd)",
    "all 'three' \"quote\" `kinds`",
    "eq=sign=s",
    "semi;colon; and \\$ escaped",
    "cr\rhere",
];

const DIALECTS: &[Dialect] = &[
    Dialect::Common,
    Dialect::PythonDotenv,
    Dialect::Dotenvy,
    Dialect::Node,
    Dialect::Docker,
    Dialect::Shell,
    Dialect::Systemd,
];

/// The file each dialect writes for TRICKY, and the indices of the values it accepted.
fn encode(dialect: Dialect) -> (String, Vec<usize>) {
    let mut file = String::new();
    let mut accepted = Vec::new();
    for (i, v) in TRICKY.iter().enumerate() {
        match line(dialect, &format!("K{i}"), v) {
            Ok(l) => {
                file.push_str(&l);
                accepted.push(i);
            }
            Err(why) => {
                if v.len() > 3 {
                    assert!(
                        !why.contains(v),
                        "{dialect:?} refusal quotes the value: {why}"
                    );
                }
            }
        }
    }
    (file, accepted)
}

fn check(dialect: Dialect, parsed: &BTreeMap<String, String>, file: &str, accepted: &[usize]) {
    for &i in accepted {
        assert_eq!(
            parsed.get(&format!("K{i}")).map(String::as_str),
            Some(TRICKY[i]),
            "{dialect:?}: value {i} in\n{file}"
        );
    }
}

fn refused(dialect: Dialect) -> Vec<usize> {
    let (_, accepted) = encode(dialect);
    (0..TRICKY.len())
        .filter(|i| !accepted.contains(i))
        .collect()
}

#[test]
fn each_dialect_refuses_only_what_its_reader_cannot_hold() {
    // 8: `${`; 9 and 18: `$` with a quote or backslash; 19: carriage return.
    assert_eq!(refused(Dialect::Common), vec![8, 9, 18, 19]);
    assert_eq!(refused(Dialect::PythonDotenv), vec![8, 19]);
    assert_eq!(refused(Dialect::Dotenvy), vec![19]);
    // 16: all three quote characters; 19: carriage return.
    assert_eq!(refused(Dialect::Node), vec![16, 19]);
    // 6: newlines; 19: carriage return.
    assert_eq!(refused(Dialect::Docker), vec![6, 19]);
    assert_eq!(refused(Dialect::Shell), Vec::<usize>::new());
    assert_eq!(refused(Dialect::Systemd), vec![19]);
    for d in DIALECTS {
        assert!(line(*d, "K", "a\0b").unwrap_err().contains("NUL"));
    }
}

fn tmp_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.env");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run_json(cmd: &mut Command) -> BTreeMap<String, String> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn common_round_trips_through_dotenvy_and_python_dotenv() {
    let (file, accepted) = encode(Dialect::Common);
    check(Dialect::Common, &dotenvy_parse(&file), &file, &accepted);
    check(
        Dialect::Common,
        &python_dotenv_parse(&file),
        &file,
        &accepted,
    );
}

fn dotenvy_parse(file: &str) -> BTreeMap<String, String> {
    dotenvy::from_read_iter(file.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("dotenvy failed: {e}\n{file}"))
}

fn python_dotenv_parse(file: &str) -> BTreeMap<String, String> {
    let python = std::env::var_os("CREDFILE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".venv/bin/python"));
    let (_dir, path) = tmp_file(file);
    run_json(Command::new(python).arg("-c").arg(
        "import json, sys\nfrom dotenv import dotenv_values\njson.dump(dotenv_values(sys.argv[1]), sys.stdout)",
    ).arg(&path))
}

#[test]
fn python_dotenv_round_trips() {
    let (file, accepted) = encode(Dialect::PythonDotenv);
    check(
        Dialect::PythonDotenv,
        &python_dotenv_parse(&file),
        &file,
        &accepted,
    );
}

#[test]
fn dotenvy_round_trips() {
    let (file, accepted) = encode(Dialect::Dotenvy);
    check(Dialect::Dotenvy, &dotenvy_parse(&file), &file, &accepted);
}

#[test]
fn node_dotenv_round_trips() {
    let module = std::env::var_os("CREDFILE_TEST_NODE_DOTENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".tools/node-dotenv/node_modules/dotenv"));
    let (file, accepted) = encode(Dialect::Node);
    let (_dir, path) = tmp_file(&file);
    let parsed = run_json(
        Command::new("node")
            .arg("-e")
            .arg("const d = require(process.argv[1]); process.stdout.write(JSON.stringify(d.parse(require('fs').readFileSync(process.argv[2]))))")
            .arg(&module)
            .arg(&path),
    );
    check(Dialect::Node, &parsed, &file, &accepted);
}

#[test]
fn shell_round_trips_through_dash_and_bash() {
    let (file, accepted) = encode(Dialect::Shell);
    let (_dir, path) = tmp_file(&file);
    let names: Vec<String> = accepted.iter().map(|i| format!("\"$K{i}\"")).collect();
    let script = format!(". \"$1\"\nprintf '%s\\0' {}\n", names.join(" "));
    for sh in ["dash", "bash"] {
        let out = Command::new(sh)
            .arg("-c")
            .arg(&script)
            .arg(sh)
            .arg(&path)
            .env_clear()
            .output()
            .unwrap_or_else(|e| panic!("cannot run {sh}: {e}"));
        assert!(
            out.status.success(),
            "{sh}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let values: Vec<&str> = text.split('\0').collect();
        let parsed: BTreeMap<String, String> = accepted
            .iter()
            .zip(values)
            .map(|(i, v)| (format!("K{i}"), v.to_string()))
            .collect();
        check(Dialect::Shell, &parsed, &file, &accepted);
    }
}

/// `docker run --env-file`, as docker/cli's opts/envfile.go reads it: lines (a trailing `\r`
/// dropped), leading whitespace trimmed, blank and `#` lines skipped, the value is everything
/// after the first `=`.
fn docker_parse(file: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for raw in file.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').expect("docker: a line without `=`");
        out.insert(k.to_string(), v.to_string());
    }
    out
}

#[test]
fn docker_round_trips_by_its_documented_rules() {
    let (file, accepted) = encode(Dialect::Docker);
    check(Dialect::Docker, &docker_parse(&file), &file, &accepted);
}

/// systemd's EnvironmentFile reader (src/basic/env-file.c, parse_env_file_internal, as
/// systemd.exec(5) describes it), transcribed state for state.
fn systemd_parse(file: &str) -> BTreeMap<String, String> {
    #[derive(PartialEq)]
    enum S {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
        CommentEscape,
    }
    const WS: &str = " \t\n\r";
    const NL: &str = "\n\r";
    let mut out = BTreeMap::new();
    let (mut key, mut value) = (String::new(), String::new());
    let mut last_ws: Option<usize> = None;
    let mut s = S::PreKey;
    let push = |key: &mut String, value: &mut String, out: &mut BTreeMap<String, String>| {
        out.insert(key.trim_end().to_string(), std::mem::take(value));
        key.clear();
    };
    for c in file.chars() {
        s = match s {
            S::PreKey if "#;".contains(c) => S::Comment,
            S::PreKey if !WS.contains(c) => {
                key.push(c);
                S::Key
            }
            S::PreKey => S::PreKey,
            S::Key if NL.contains(c) => {
                key.clear();
                S::PreKey
            }
            S::Key if c == '=' => {
                last_ws = None;
                S::PreValue
            }
            S::Key => {
                key.push(c);
                S::Key
            }
            S::PreValue if NL.contains(c) => {
                push(&mut key, &mut value, &mut out);
                S::PreKey
            }
            S::PreValue if c == '\'' => S::Single,
            S::PreValue if c == '"' => S::Double,
            S::PreValue if c == '\\' => S::ValueEscape,
            S::PreValue if !WS.contains(c) => {
                value.push(c);
                S::Value
            }
            S::PreValue => S::PreValue,
            S::Value if NL.contains(c) => {
                if let Some(n) = last_ws.take() {
                    value.truncate(n);
                }
                push(&mut key, &mut value, &mut out);
                S::PreKey
            }
            S::Value if c == '\\' => {
                last_ws = None;
                S::ValueEscape
            }
            S::Value => {
                if !WS.contains(c) {
                    last_ws = None;
                } else if last_ws.is_none() {
                    last_ws = Some(value.len());
                }
                value.push(c);
                S::Value
            }
            S::ValueEscape => {
                if !NL.contains(c) {
                    value.push(c);
                }
                S::Value
            }
            S::Single if c == '\'' => S::PreValue,
            S::Single => {
                value.push(c);
                S::Single
            }
            S::Double if c == '"' => S::PreValue,
            S::Double if c == '\\' => S::DoubleEscape,
            S::Double => {
                value.push(c);
                S::Double
            }
            S::DoubleEscape => {
                if "\"\\`$".contains(c) {
                    value.push(c);
                } else if c != '\n' {
                    value.push('\\');
                    value.push(c);
                }
                S::Double
            }
            S::Comment if c == '\\' => S::CommentEscape,
            S::Comment if NL.contains(c) => S::PreKey,
            S::Comment => S::Comment,
            S::CommentEscape => S::Comment,
        };
    }
    assert!(
        s == S::PreKey,
        "systemd: the file does not end between assignments"
    );
    out
}

#[test]
fn systemd_round_trips_by_its_documented_rules() {
    let (file, accepted) = encode(Dialect::Systemd);
    check(Dialect::Systemd, &systemd_parse(&file), &file, &accepted);
    // The reference reader itself: the examples of systemd.exec(5).
    let ex = systemd_parse("A=  plain  \nB='single  ' \nC=\"a\\\"b\\\\c\\qd\"\nD=one\\\ntwo\n");
    assert_eq!(ex["A"], "plain");
    assert_eq!(ex["B"], "single  ");
    assert_eq!(ex["C"], "a\"b\\c\\qd");
    assert_eq!(ex["D"], "onetwo");
}
