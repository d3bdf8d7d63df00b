//! What a run hands on: templates rendered strictly, and the reports it prints. The rest of a
//! set's life (rotation, verify, clean, hooks) is in lifecycle.rs.

use crate::support;

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::lifecycle::*;
use serde_json::Value;
use support::{
    Canaries, Case, assert_no_leak, canary_value, test_python, validate_audit_line, validate_schema,
};

// ---------------------------------------------------------------------------------------------
// templates

#[test]
fn templates_render_with_escaping_filters_that_round_trip() {
    let c = Case::new(APP, "template");
    let tricky = format!("it's \"quoted\"\nand {{braces}} \\ back {}", canary_value());
    c.seeder.create_json(
        &c.name("db"),
        &serde_json::json!({ "password": tricky, "host": "db.internal", "port": 5432 }),
    );
    fs::write(
        c.path("app.tmpl"),
        "A={{ pw | shell }}\nexport B={{ host | shell }}\n",
    )
    .unwrap();
    c.manifest(
        "",
        r#"  - path: config.json
    format: template
    template: '{"password": {{ pw | json }}, "host": {{ host | json }}, "port": {{ port }}}'
    values:
      pw: { secret: "${prefix}/db", key: password }
      host: { secret: "${prefix}/db", key: host }
      port: { secret: "${prefix}/db", key: port }
  - path: config.yml
    format: template
    template: |
      db:
        password: {{ pw | yaml }}
    values:
      pw: { secret: "${prefix}/db", key: password }
  - path: app.sh
    format: template
    template_file: app.tmpl
    values:
      pw: { secret: "${prefix}/db", key: password }
      host: { secret: "${prefix}/db", key: host }
"#,
    );
    c.apply().assert_code(0);
    let json: Value =
        serde_json::from_slice(&fs::read(c.root().join("config.json")).unwrap()).unwrap();
    assert_eq!(json["password"], tricky.as_str());
    assert_eq!(json["port"], 5432);
    let yaml = fs::read_to_string(c.root().join("config.yml")).unwrap();
    assert!(yaml.ends_with('\n'), "the template's final newline is kept");
    let py = std::process::Command::new(test_python())
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(c.root().join("config.yml"))
        .output()
        .unwrap();
    assert!(py.status.success(), "PyYAML failed to run");
    let doc: Value = serde_json::from_slice(&py.stdout).unwrap();
    assert!(doc["db"]["password"] == tricky.as_str(), "yaml round trip");
    let sh = std::process::Command::new("/bin/sh")
        .args(["-c", ". \"$1\"; printf '%s' \"$A\"", "sh"])
        .arg(c.root().join("app.sh"))
        .output()
        .unwrap();
    assert!(sh.stdout == tricky.as_bytes(), "shell round trip");
}

#[test]
fn templates_are_strict() {
    let c = Case::new(APP, "template-strict");
    c.seeder.create_json(
        &c.name("db"),
        &serde_json::json!({ "nested": { "user": canary_value() } }),
    );
    // A name that is not a value: caught by validate, before any network call.
    c.manifest(
        "",
        "  - path: t\n    format: template\n    template: 'x={{ nope }}'\n    values:\n      db: { secret: \"${prefix}/db\", key: nested }\n",
    );
    let out = c.credfile().run(["validate"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains("credfile.yaml:12:15") && out.stderr.contains("`nope`"),
        "{}",
        out.stderr
    );
    // A key that is not in the value: an error at render, naming file, line and template line.
    c.manifest(
        "",
        "  - path: t\n    format: template\n    template: \"ok\\n{{ db.passwrd }}\"\n    values:\n      db: { secret: \"${prefix}/db\", key: nested }\n",
    );
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(RENDER);
    assert!(
        out.stderr.contains("t (manifest line 10)")
            && out.stderr.contains("template `inline`: line 2:")
            && out
                .stderr
                .contains("`db.passwrd` is undefined (`db` has keys: `user`)"),
        "{}",
        out.stderr
    );
    assert!(!c.root().exists(), "nothing written");
}

// ---------------------------------------------------------------------------------------------
// reports

#[test]
fn json_reports_validate_against_the_documented_schema() {
    let c = Case::new(APP, "schema");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n    on_change: [/bin/true]\n",
    );
    let plan = c.run(&["plan", "--output", "json"]);
    plan.assert_code(0);
    validate_schema(&plan.json());
    let apply = c.apply();
    apply.assert_code(0);
    validate_schema(&apply.json());
    let verify = c.run(&["verify", "--output", "json"]);
    verify.assert_code(0);
    validate_schema(&verify.json());
    fs::write(c.live().join("a"), b"drifted").unwrap();
    let verify = c.run(&["verify", "--output", "json"]);
    verify.assert_code(DRIFT);
    validate_schema(&verify.json());
    // A report that breaks the schema is caught (the check is not vacuous).
    let mut broken = apply.json();
    broken["files"][0]["status"] = "exploded".into();
    let result = std::panic::catch_unwind(|| validate_schema(&broken));
    assert!(result.is_err(), "the schema rejects an unknown status");
}

#[test]
fn github_step_summary_gitlab_sections_and_audit_line() {
    let c = Case::new(APP, "ci");
    let (arn, version) = c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let summary = c.path("summary.md");
    fs::write(&summary, "earlier step\n").unwrap();
    let audit = c.path("audit.jsonl");
    let out = c
        .credfile()
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .run([
            "apply",
            "--env",
            "test",
            "--audit-log",
            audit.to_str().unwrap(),
        ]);
    out.assert_code(0);
    let md = fs::read_to_string(&summary).unwrap();
    assert_no_leak(&Canaries::global(), &md, "the step summary");
    assert!(md.starts_with("earlier step\n"), "appended, not replaced");
    assert!(
        md.contains("| path | status | mode | owner | secret | version |"),
        "{md}"
    );
    assert!(
        md.contains("| `a` | created | 0400 |") && md.contains(&version),
        "{md}"
    );

    let text = fs::read_to_string(&audit).unwrap();
    assert_no_leak(&Canaries::global(), &text, "the audit log");
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["app"], "lc");
    assert_eq!(line["environment"], "test");
    assert_eq!(line["command"], "apply");
    assert_eq!(line["exit_code"], 0);
    assert!(line["caller_arn"].as_str().unwrap().starts_with("arn:aws:"));
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(line["files"][0]["path"], "a");
    assert_eq!(line["files"][0]["status"], "created");
    assert_eq!(line["files"][0]["secrets"][0]["arn"], arn.as_str());
    assert_eq!(
        line["files"][0]["secrets"][0]["version_id"],
        version.as_str()
    );
    validate_audit_line(&line);
    // An audit line that breaks the schema is caught (the check is not vacuous).
    let mut broken = line.clone();
    broken["files"][0]["mode"] = "0400".into();
    let result = std::panic::catch_unwind(|| validate_audit_line(&broken));
    assert!(
        result.is_err(),
        "the audit schema rejects a field it does not define"
    );
    assert_eq!(
        fs::metadata(&audit).unwrap().mode() & 0o777,
        0o600,
        "the audit log is private"
    );
    // One line per run, appended; a failed run is audited too.
    c.manifest("", "  - path: a\n    secret: ${prefix}/missing\n");
    c.credfile()
        .fail_fast()
        .run([
            "apply",
            "--env",
            "test",
            "--audit-log",
            audit.to_str().unwrap(),
        ])
        .assert_code(4);
    let lines: Vec<Value> = fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["exit_code"], 4);
    validate_audit_line(&lines[1]);

    // GitLab: the human report inside a collapsible section.
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let out = c
        .credfile()
        .env("GITLAB_CI", "true")
        // In CI, static keys are refused: these stand for a pipeline's session credentials.
        .env("AWS_SESSION_TOKEN", "pipeline-session-token")
        .run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert!(
        out.stdout.starts_with("\u{1b}[0Ksection_start:")
            && out.stdout.contains("credfile_apply[collapsed=true]")
            && out.stdout.contains("section_end:"),
        "{:?}",
        out.stdout
    );
}
