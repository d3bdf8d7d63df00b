//! Rails for the first real deploy (issue 11): reloads that are never lost, machine-readable
//! failures, production rails for `clean` and `plan`, and messages that name the culprit. The
//! real binary against moto, like lifecycle.rs.

use crate::support;

use std::fs;

use serde_json::Value;
use support::{
    Canaries, Case, Output, assert_no_leak, canary_value, snapshot, test_python, validate_schema,
};

const USAGE: i32 = 2;
const FETCH: i32 = 4;
const RENDER: i32 = 5;
const WRITE: i32 = 6;
const HOOK: i32 = 8;
const CHANGES: i32 = 10;

/// The manifest's app name in these tests.
const APP: &str = "rails";

// ---------------------------------------------------------------------------------------------
// 3. Reloads never lost

#[test]
fn a_failed_hook_stays_pending_until_it_succeeds() {
    let c = Case::new(APP, "hook-pending");
    let v = canary_value();
    c.seeder.create_string(&c.name("a"), &v);
    let flag = c.path("reload-ok");
    let count = c.path("count");
    // The hook fails until `flag` exists; every run of it appends a line to `count`.
    let hook = format!(
        "[/bin/sh, -c, 'echo run >> {count}; test -e {flag}']",
        count = count.display(),
        flag = flag.display()
    );
    c.manifest(
        "",
        &format!("  - path: a\n    secret: ${{prefix}}/a\n    on_change: {hook}\n"),
    );
    let runs = || {
        fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count()
    };

    c.run(&["apply"]).assert_code(HOOK);
    assert_eq!(runs(), 1);
    // Nothing changed, but the reload is still owed: it runs again, and the run stays red.
    let out = c.run(&["apply", "--output", "json"]);
    out.assert_code(HOOK);
    assert_eq!(runs(), 2, "the failed hook ran again with no change");
    assert_eq!(out.json()["summary"]["unchanged"], 1);
    assert_eq!(out.json()["hooks"][0]["status"], "failed");
    // plan shows it as owed, without running it.
    let out = c.run(&["plan", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(out.json()["hooks"][0]["status"], "planned");
    assert_eq!(runs(), 2, "plan runs no hook");

    // Fixed: it runs once more, succeeds, and is no longer owed.
    fs::write(&flag, "").unwrap();
    c.run(&["apply"]).assert_code(0);
    assert_eq!(runs(), 3);
    let out = c.run(&["apply", "--output", "json"]);
    out.assert_code(0);
    assert_eq!(runs(), 3, "a hook that succeeded is not run again");
    assert_eq!(out.json()["hooks"].as_array().unwrap().len(), 0);
}

#[test]
fn validate_rejects_a_hook_program_written_as_one_string() {
    let c = Case::new(APP, "hook-argv");
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n    on_change: [\"/opt/app/reload.sh orders\"]\n",
    );
    let out = c.credfile().run(["validate"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr
            .contains("contains whitespace and is not an existing path")
            && out.stderr.contains(r#"["/opt/app/reload.sh", "orders"]"#),
        "{}",
        out.stderr
    );
    // An existing program whose path has a space in it is fine.
    let spaced = c.path("my reload.sh");
    fs::write(&spaced, "#!/bin/sh\n").unwrap();
    c.manifest(
        "",
        &format!(
            "  - path: a\n    secret: ${{prefix}}/a\n    on_change: [\"{}\", orders]\n",
            spaced.display()
        ),
    );
    c.credfile().run(["validate"]).assert_code(0);
}

// ---------------------------------------------------------------------------------------------
// 6. Rails for production by hand

#[test]
fn plan_detailed_exitcode_says_whether_anything_would_change() {
    let c = Case::new(APP, "plan-exit");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    // Without the flag, plan exits 0 whatever it finds (unchanged behaviour).
    c.run(&["plan"]).assert_code(0);
    let out = c.run(&["plan", "--detailed-exitcode", "--output", "json"]);
    out.assert_code(CHANGES);
    assert_eq!(out.json()["summary"]["created"], 1, "the report is printed");
    assert!(
        !out.stderr.contains("error:"),
        "not a failure: {}",
        out.stderr
    );
    assert!(!c.root().exists(), "plan wrote nothing");
    c.run(&["apply"]).assert_code(0);
    c.run(&["plan", "--detailed-exitcode"]).assert_code(0);
    c.seeder.put_string(&c.name("a"), &canary_value());
    let out = c.run(&["plan", "--detailed-exitcode"]);
    out.assert_code(CHANGES);
    assert!(out.stdout.contains("1 to update"), "{}", out.stdout);
    // A real failure keeps its own code.
    c.manifest("", "  - path: a\n    secret: ${prefix}/missing\n");
    c.credfile()
        .fail_fast()
        .run(["plan", "--env", "test", "--detailed-exitcode"])
        .assert_code(FETCH);
}

#[test]
fn clean_dry_run_removes_nothing_and_lists_what_it_would() {
    let c = Case::new(APP, "clean-dry");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n  - path: d/b\n    secret: ${prefix}/a\n",
    );
    c.run(&["apply"]).assert_code(0);
    let before = snapshot(c.dir.path());
    let out = c.run(&["clean", "--dry-run"]);
    out.assert_code(0);
    assert_eq!(snapshot(c.dir.path()), before, "nothing removed");
    assert!(
        out.stdout.contains("would remove")
            && out
                .stdout
                .contains(&c.root().join("a").display().to_string())
            && out.stdout.contains("nothing was removed"),
        "{}",
        out.stdout
    );
    c.run(&["clean"]).assert_code(0);
    assert!(!c.root().join("a").exists());
}

/// Runs `credfile ARGS` on a pseudo-terminal (python's pty, from the test venv), answering
/// `answer` to the `[y/N]` question. Returns the terminal's text and the exit code.
fn on_a_terminal(c: &Case, answer: &str, args: &[&str]) -> Output {
    const DRIVER: &str = r#"
import os, pty, select, sys
answer, argv = sys.argv[1].encode(), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out, sent = b"", False
while True:
    r, _, _ = select.select([fd], [], [], 30)
    if not r:
        break
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not sent and b"[y/N]" in out:
        os.write(fd, answer + b"\n")
        sent = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut all = vec!["-c", DRIVER, answer, env!("CARGO_BIN_EXE_credfile")];
    all.extend(args);
    all.extend(["--env", "test"]);
    c.credfile().program(test_python()).run(all)
}

#[test]
fn a_protected_environment_is_cleaned_only_when_someone_says_so() {
    let c = Case::new(APP, "clean-protected");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest(
        &format!(
            "    protected: true\n    account: \"{}\"\n",
            c.seeder.account()
        ),
        "  - path: a\n    secret: ${prefix}/a\n",
    );
    c.run(&["apply"]).assert_code(0);
    let before = snapshot(c.dir.path());
    // No terminal (stdin is /dev/null) and no --yes: refused, nothing touched.
    let out = c.run(&["clean"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr
            .contains("not cleaning protected environment `test`")
            && out.stderr.contains("--yes"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(c.dir.path()), before);
    // The dry run needs no confirmation.
    c.run(&["clean", "--dry-run"]).assert_code(0);
    assert_eq!(snapshot(c.dir.path()), before);
    // On a terminal: asked; "n" (or anything but y/yes) keeps everything.
    let out = on_a_terminal(&c, "n", &["clean"]);
    out.assert_code(USAGE);
    assert!(
        out.stdout.contains("[y/N]") && out.stdout.contains("would remove"),
        "{}",
        out.stdout
    );
    assert_eq!(snapshot(c.dir.path()), before);
    let out = on_a_terminal(&c, "y", &["clean"]);
    out.assert_code(0);
    assert!(!c.root().join("a").exists(), "{}", out.stdout);
    // --yes: no question.
    c.run(&["apply"]).assert_code(0);
    c.run(&["clean", "--yes"]).assert_code(0);
    assert!(!c.root().join("a").exists());
}

#[test]
fn clean_keeps_its_record_of_what_it_could_not_remove() {
    let c = Case::new(APP, "clean-kept");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest(
        "    layout: files\n",
        "  - path: a\n    secret: ${prefix}/a\n  - path: b\n    secret: ${prefix}/a\n",
    );
    c.run(&["apply"]).assert_code(0);
    // Someone replaced `a` with a file of their own.
    fs::remove_file(c.root().join("a")).unwrap();
    fs::write(c.root().join("a"), b"someone else's").unwrap();
    let out = c.run(&["clean"]);
    out.assert_code(0);
    assert_eq!(fs::read(c.root().join("a")).unwrap(), b"someone else's");
    assert!(!c.root().join("b").exists());
    let state = c.root().join(".credfile-state.json");
    assert!(state.exists(), "the record stays: {}", out.stdout);
    let record: Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    let paths: Vec<&str> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a"], "only what was kept");
    // The root still belongs to this app and environment: clean again keeps it again, and
    // once the foreign file is gone, the record goes too.
    c.run(&["clean"]).assert_code(0);
    assert!(state.exists());
    fs::remove_file(c.root().join("a")).unwrap();
    c.run(&["clean"]).assert_code(0);
    assert!(!state.exists());
}

// ---------------------------------------------------------------------------------------------
// 4. Machine-readable failures

/// The one JSON object a failed `--output json` run printed.
fn failure_of(out: &Output) -> Value {
    assert_eq!(out.stdout.lines().count(), 1, "one object: {}", out.stdout);
    let doc = out.json();
    validate_schema(&doc);
    doc
}

#[test]
fn a_failed_run_prints_one_json_object_naming_stage_code_hint_and_culprit() {
    let c = Case::new(APP, "fail-json");
    let (_, _) = c.seeder.create_string(
        &c.name("db"),
        &format!("{{\"username\":\"u\",\"password\":\"{}\"}}", canary_value()),
    );
    // Fetch: a missing secret.
    c.manifest("", "  - path: a\n    secret: ${prefix}/missing\n");
    let out = c
        .credfile()
        .fail_fast()
        .run(["apply", "--env", "test", "--output", "json"]);
    out.assert_code(FETCH);
    let doc = failure_of(&out);
    assert_eq!(doc["command"], "apply");
    assert_eq!(doc["environment"], "test");
    let e = &doc["error"];
    assert_eq!(e["stage"], "fetch");
    assert_eq!(e["exit_code"], FETCH);
    assert_eq!(e["culprit"]["secret"], c.name("missing").as_str());
    assert!(e["hint"].as_str().unwrap().contains("region"), "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("region us-east-1, account {}", c.seeder.account())),
        "a missing secret names where it was looked up: {message}"
    );
    assert!(out.stderr.contains("error: ") && out.stderr.contains("region us-east-1"));

    // Render: a missing key names the file, line, secret and path, and lists the keys the
    // secret has (names only: the canary value is checked absent by the runner).
    c.manifest("", "  - path: x\n    secret: ${prefix}/a-placeholder\n  - path: db.pass\n    secret: ${prefix}/db\n    key: pasword\n");
    c.seeder
        .create_string(&c.name("a-placeholder"), &canary_value());
    let out = c.run(&["apply", "--output", "json"]);
    out.assert_code(RENDER);
    let doc = failure_of(&out);
    let e = &doc["error"];
    assert_eq!(e["stage"], "render");
    assert_eq!(e["culprit"]["line"], 12, "{e}");
    assert_eq!(e["culprit"]["path"], "db.pass");
    assert_eq!(e["culprit"]["secret"], c.name("db").as_str());
    assert_eq!(e["culprit"]["file"], "credfile.yaml");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("the keys are: `password`, `username`"),
        "{e}"
    );
    assert!(!c.root().exists(), "nothing written");

    // Manifest: an unknown environment, with a did-you-mean.
    let out = c
        .credfile()
        .run(["plan", "--env", "tset", "--output", "json"]);
    out.assert_code(USAGE);
    let doc = failure_of(&out);
    assert_eq!(doc["error"]["stage"], "manifest");
    assert_eq!(doc["error"]["culprit"]["file"], "credfile.yaml");
    assert!(
        doc["error"]["hint"]
            .as_str()
            .unwrap()
            .starts_with("did you mean `test`?"),
        "{doc}"
    );

    // The human form is unchanged: nothing on stdout.
    let out = c.credfile().run(["plan", "--env", "tset"]);
    out.assert_code(USAGE);
    assert_eq!(out.stdout, "");
}

#[test]
fn json_logs_carry_errors_and_the_audit_record_as_structured_fields() {
    let c = Case::new(APP, "json-logs");
    let (arn, _) = c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    // Without --audit-log: no audit line anywhere on stderr.
    let out = c.run(&["apply"]);
    out.assert_code(0);
    assert!(
        !out.stderr.contains("caller_arn") && !out.stderr.contains(&arn),
        "{}",
        out.stderr
    );
    // --audit-log -: on stderr, as a log record whose fields are the record's.
    let out = c.run(&["--log-format", "json", "apply", "--audit-log", "-"]);
    out.assert_code(0);
    let records: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let audit = records
        .iter()
        .find(|r| r["fields"]["message"] == "audit")
        .expect("an audit record");
    assert_eq!(audit["level"], "INFO");
    assert_eq!(audit["fields"]["command"], "apply");
    assert_eq!(audit["fields"]["exit_code"], 0);
    assert_eq!(
        audit["fields"]["files"][0]["secrets"][0]["arn"],
        arn.as_str()
    );
    // Text logs: the audit line is the JSON record itself.
    let out = c.run(&["apply", "--audit-log", "-"]);
    let line: Value = serde_json::from_str(out.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(line["command"], "apply");

    // A failure is one JSON error record with the stage, code, hint and culprit as fields.
    c.manifest("", "  - path: a\n    secret: ${prefix}/missing\n");
    let out = c.credfile().fail_fast().run([
        "--log-format",
        "json",
        "apply",
        "--env",
        "test",
        "--audit-log",
        "-",
    ]);
    out.assert_code(FETCH);
    let records: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let error = records
        .iter()
        .find(|r| r["level"] == "ERROR" && r["fields"]["stage"] == "fetch")
        .expect("an error record");
    assert_eq!(error["fields"]["exit_code"], FETCH);
    assert_eq!(error["fields"]["secret"], c.name("missing").as_str());
    assert!(error["fields"]["hint"].is_string());
    assert!(
        error["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot fetch")
    );
    assert!(
        records
            .iter()
            .any(|r| r["fields"]["message"] == "audit" && r["fields"]["exit_code"] == FETCH)
    );
}

#[test]
fn the_step_summary_says_what_failed_and_what_to_do() {
    let c = Case::new(APP, "summary-fail");
    c.manifest("", "  - path: a\n    secret: ${prefix}/missing\n");
    let summary = c.path("summary.md");
    fs::write(&summary, "earlier step\n").unwrap();
    let out = c
        .credfile()
        .fail_fast()
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .run(["apply", "--env", "test"]);
    out.assert_code(FETCH);
    let md = fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("earlier step\n"), "appended");
    assert!(md.contains("### credfile apply failed: `test`"), "{md}");
    assert!(md.contains("**fetch** stage, exit code 4"), "{md}");
    assert!(
        md.contains(&format!("secret `{}`", c.name("missing"))),
        "{md}"
    );
    assert!(
        md.contains("**What to do:** check the secret's name"),
        "{md}"
    );
    assert_no_leak(&Canaries::global(), &md, "the step summary");
}

// ---------------------------------------------------------------------------------------------
// 8. Messages

#[test]
fn an_unknown_owner_points_at_the_line_that_sets_it() {
    let c = Case::new(APP, "owner-line");
    c.seeder.create_string(&c.name("a"), &canary_value());
    // The owner comes from the environment (line 9), not from the entries.
    c.manifest(
        "    owner: no-such-user-credfile\n",
        "  - path: a\n    secret: ${prefix}/a\n  - path: b\n    secret: ${prefix}/a\n",
    );
    let out = c.run(&["apply", "--output", "json"]);
    out.assert_code(WRITE);
    let doc = failure_of(&out);
    assert_eq!(doc["error"]["culprit"]["line"], 9, "{doc}");
    assert!(
        out.stderr
            .contains("(manifest line 9): no user named `no-such-user-credfile`"),
        "{}",
        out.stderr
    );
    // Set on the entry: the entry's line.
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n  - path: b\n    secret: ${prefix}/a\n    group: no-such-group-credfile\n",
    );
    let out = c.run(&["apply"]);
    out.assert_code(WRITE);
    assert!(
        out.stderr
            .contains("b (manifest line 12): no group named `no-such-group-credfile`"),
        "{}",
        out.stderr
    );
    assert!(!c.root().exists(), "nothing written");
}
