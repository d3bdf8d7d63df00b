//! End to end: the real binary, the real AWS SDK, a real local Secrets Manager (moto).
//!
//! Every run goes through `support::Credfile`, which fails the test if any seeded secret value
//! (a canary) appears in stdout or stderr.

use crate::support;
use crate::support::is_root;
use crate::support::statuses;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;
use support::{
    Credfile, Output, Seeder, Snapshot, canary_value, mode_of, moto_endpoint, snapshot,
    test_python, uid_gid, unique_prefix,
};

/// Exit codes from the book's table (docs/src/exit-codes.md).
pub(crate) const USAGE: i32 = 2;
pub(crate) const IDENTITY: i32 = 3;
pub(crate) const FETCH: i32 = 4;
pub(crate) const RENDER: i32 = 5;
pub(crate) const WRITE: i32 = 6;

/// One test's world: a scratch directory with a manifest and a root, secrets under a unique
/// prefix, and an endpoint (moto, or a proxy in front of it).
pub(crate) struct Case {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) prefix: String,
    pub(crate) endpoint: String,
    pub(crate) seeder: Seeder,
}

impl Case {
    pub(crate) fn new(name: &str) -> Case {
        Case::with_endpoint(name, &moto_endpoint())
    }

    pub(crate) fn with_endpoint(name: &str, endpoint: &str) -> Case {
        Case {
            dir: tempfile::Builder::new()
                .prefix("credfile-it-")
                .tempdir()
                .unwrap(),
            prefix: unique_prefix(name),
            endpoint: endpoint.to_string(),
            seeder: Seeder::new(&moto_endpoint()),
        }
    }

    pub(crate) fn name(&self, short: &str) -> String {
        format!("{}/{short}", self.prefix)
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub(crate) fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("credfile.yaml")
    }

    /// Writes a manifest with one environment `test` (root, region, `prefix` var) plus `env_extra`
    /// lines under it, and `files` (YAML list items).
    pub(crate) fn manifest(&self, env_extra: &str, files: &str) {
        let text = format!(
            "version: 1\napp: it\ndefaults:\n  region: us-east-1\n  root: {root}\nenvironments:\n  test:\n    vars: {{ prefix: {prefix} }}\n{env_extra}files:\n{files}",
            root = self.root().display(),
            prefix = self.prefix,
        );
        fs::write(self.manifest_path(), text).unwrap();
    }

    pub(crate) fn credfile(&self) -> Credfile {
        Credfile::new(&self.endpoint).cwd(self.dir.path())
    }

    pub(crate) fn run(&self, command: &str) -> Output {
        self.credfile()
            .run([command, "--env", "test", "--output", "json"])
    }

    pub(crate) fn apply(&self) -> Output {
        self.run("apply")
    }

    pub(crate) fn file(&self, rel: &str) -> Vec<u8> {
        fs::read(self.root().join(rel)).unwrap()
    }

    /// Where `rel` really is in the generation layout: `<root>/<top>` is the link
    /// `current/<top>`, and `current` names the live generation directory. The metadata helpers
    /// use lstat, so they must be given this path to see the file itself.
    #[track_caller]
    pub(crate) fn live(&self, rel: &str) -> PathBuf {
        let top = rel.split('/').next().unwrap();
        assert_eq!(
            fs::read_link(self.root().join(top)).unwrap(),
            Path::new("current").join(top),
            "{top} is credfile's link"
        );
        let generation = fs::read_link(self.root().join("current")).unwrap();
        self.root().join(generation).join(rel)
    }
}

/// The generation directory that was live in `snapshot` (its `current` link target), checked
/// to hold `rel`.
pub(crate) fn before_live(rel: &str, snap: &Snapshot, c: &Case) -> PathBuf {
    let target = &snap[&c.root().join("current")].content;
    let generation = c.root().join(std::ffi::OsStr::from_bytes(target));
    assert!(snap.contains_key(&generation.join(rel)));
    generation
}

#[test]
fn writes_every_kind_of_value_exactly() {
    let c = Case::new("kinds");
    let plain = canary_value();
    let db = serde_json::json!({
        "username": format!("user-{}", canary_value()),
        "password": canary_value(),
        "nested": { "deep": { "token": canary_value() } },
        "port": 5432
    });
    let binary: Vec<u8> = (0u8..=255).rev().chain([0, 0, 10, 13]).collect();
    let tls_bytes = format!("-----BEGIN KEY-----\n{}\n\0\u{1}", canary_value()).into_bytes();
    c.seeder.create_string(&c.name("plain"), &plain);
    c.seeder.create_json(&c.name("db"), &db);
    c.seeder.create_binary(&c.name("bin"), &binary);
    c.seeder.create_string(
        &c.name("tls"),
        &base64::engine::general_purpose::STANDARD.encode(&tls_bytes),
    );
    c.manifest(
        "",
        r#"  - path: plain
    secret: ${prefix}/plain
  - path: db/password
    secret: ${prefix}/db
    key: password
  - path: db/token
    secret: ${prefix}/db
    key: /nested/deep/token
  - path: db/port
    secret: ${prefix}/db
    key: port
  - path: blob.bin
    secret: ${prefix}/bin
    mode: "0440"
  - path: tls/server.key
    secret: ${prefix}/tls
    encoding: base64
"#,
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(c.file("plain"), plain.as_bytes());
    assert_eq!(
        c.file("db/password"),
        db["password"].as_str().unwrap().as_bytes()
    );
    assert_eq!(
        c.file("db/token"),
        db["nested"]["deep"]["token"].as_str().unwrap().as_bytes()
    );
    assert_eq!(c.file("db/port"), b"5432");
    assert_eq!(c.file("blob.bin"), binary, "SecretBinary is byte-exact");
    assert_eq!(c.file("tls/server.key"), tls_bytes);
    assert_eq!(mode_of(c.live("plain")), 0o400, "default mode");
    assert_eq!(mode_of(c.live("blob.bin")), 0o440);
    assert_eq!(
        mode_of(c.live("db")),
        0o700,
        "created directories are private"
    );
    let report = out.json();
    assert_eq!(report["summary"]["created"], 6);
    let first = &report["files"][0];
    assert_eq!(first["path"], "plain");
    assert_eq!(first["mode"], "0400");
    assert!(
        first["secrets"][0]["arn"]
            .as_str()
            .unwrap()
            .contains(":secret:")
    );
    assert_eq!(first["secrets"][0]["id"], c.name("plain"));
    // The db secret is read by three files but fetched once.
    // The generation layout keeps exactly its state file and the live generation.
    let live = fs::read_link(c.root().join("current")).unwrap();
    let leftovers: Vec<_> = fs::read_dir(c.root())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".credfile"))
        .filter(|n| *n != ".credfile-state.json" && *n != live.as_os_str())
        .collect();
    assert!(leftovers.is_empty(), "no temp debris: {leftovers:?}");
}

#[test]
fn pinned_versions_use_the_named_version() {
    let c = Case::new("pinned");
    let v1 = canary_value();
    let v2 = canary_value();
    let name = c.name("rotating");
    let (_, v1_id) = c.seeder.create_string(&name, &v1);
    c.seeder.put_string(&name, &v2);
    c.manifest(
        "",
        &format!(
            r#"  - path: latest
    secret: ${{prefix}}/rotating
  - path: previous
    secret: ${{prefix}}/rotating
    version_stage: AWSPREVIOUS
  - path: by-id
    secret: ${{prefix}}/rotating
    version_id: {v1_id}
"#
        ),
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(c.file("latest"), v2.as_bytes());
    assert_eq!(c.file("previous"), v1.as_bytes());
    assert_eq!(c.file("by-id"), v1.as_bytes());
    let report = out.json();
    assert_eq!(
        report["files"][2]["secrets"][0]["version_id"],
        v1_id.as_str()
    );
}

pub(crate) const TRICKY: &[&str] = &[
    "it's \"quoted\" twice",
    "back\\slash \\\\ and trailing\\",
    "multi\nline\nvalue",
    "dollar $HOME and $ alone",
    "  spaces and\ttabs  ",
    "# not a comment = x",
    "ünïcødé ✓",
];

#[test]
fn dotenv_and_json_formats_round_trip() {
    let c = Case::new("formats");
    let mut values = serde_json::Map::new();
    for (i, v) in TRICKY.iter().enumerate() {
        values.insert(
            format!("k{i}"),
            Value::String(format!("{v}-{}", canary_value())),
        );
    }
    values.insert("n".into(), serde_json::json!(42));
    let secret = Value::Object(values.clone());
    c.seeder.create_json(&c.name("app"), &secret);
    let mut dotenv_entries = String::new();
    let mut json_entries = String::new();
    for i in 0..TRICKY.len() {
        dotenv_entries.push_str(&format!(
            "      V{i}: {{ secret: \"${{prefix}}/app\", key: k{i} }}\n"
        ));
        json_entries.push_str(&format!(
            "      v{i}: {{ secret: \"${{prefix}}/app\", key: k{i} }}\n"
        ));
    }
    c.manifest(
        "",
        &format!(
            "  - path: app.env\n    format: dotenv\n    values:\n{dotenv_entries}  - path: app.json\n    format: json\n    values:\n{json_entries}      n: {{ secret: \"${{prefix}}/app\", key: n }}\n"
        ),
    );
    c.apply().assert_code(0);

    // dotenvy (Rust) reads back every value exactly.
    let env_path = c.root().join("app.env");
    let parsed: BTreeMap<String, String> = dotenvy::from_path_iter(&env_path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for i in 0..TRICKY.len() {
        assert_eq!(
            parsed[&format!("V{i}")],
            values[&format!("k{i}")].as_str().unwrap(),
            "dotenvy V{i}"
        );
    }
    // python-dotenv reads back every value exactly (its output stays inside the test).
    let py = std::process::Command::new(test_python())
        .args([
            "-c",
            "import json,sys,dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))",
        ])
        .arg(&env_path)
        .output()
        .unwrap();
    assert!(py.status.success(), "python-dotenv failed to run");
    let from_python: BTreeMap<String, String> = serde_json::from_slice(&py.stdout).unwrap();
    for i in 0..TRICKY.len() {
        assert!(
            from_python[&format!("V{i}")] == values[&format!("k{i}")].as_str().unwrap(),
            "python-dotenv V{i} differs"
        );
    }
    // json: an object of the selected values, numbers kept as numbers.
    let doc: Value = serde_json::from_slice(&c.file("app.json")).unwrap();
    for i in 0..TRICKY.len() {
        assert_eq!(doc[format!("v{i}")], values[&format!("k{i}")]);
    }
    assert_eq!(doc["n"], 42);
}

#[test]
fn dotenv_value_that_cannot_round_trip_is_refused_by_name() {
    let c = Case::new("dotenv-refuse");
    c.seeder.create_string(
        &c.name("v"),
        &format!("expands ${{HOME}} {}", canary_value()),
    );
    c.manifest("", "  - path: app.env\n    format: dotenv\n    values:\n      BAD_ONE: { secret: \"${prefix}/v\" }\n");
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(RENDER);
    assert!(
        out.stderr.contains("BAD_ONE") && out.stderr.contains("app.env"),
        "{}",
        out.stderr
    );
    assert!(!c.root().exists());
}

/// The issue's blocker: a value holding `$` and a quote has no common dotenv spelling, but each
/// file's own reader can hold it once the file names its `dialect`.
#[test]
fn dotenv_dialects_write_what_each_reader_reads_back() {
    let c = Case::new("dialects");
    let value = format!("it's $HOME \"and\" `x` \\ # {}", canary_value());
    c.seeder.create_string(&c.name("v"), &value);
    let entry = |path: &str, dialect: &str| {
        format!(
            "  - path: {path}\n    format: dotenv\n    dialect: {dialect}\n    values:\n      DB_PASS: {{ secret: \"${{prefix}}/v\" }}\n"
        )
    };
    c.manifest(
        "",
        &[
            entry("shell.env", "shell"),
            entry("dotenvy.env", "dotenvy"),
            entry("python.env", "python-dotenv"),
            entry("systemd.env", "systemd"),
        ]
        .concat(),
    );
    c.apply().assert_code(0);
    let sh = std::process::Command::new("dash")
        .arg("-c")
        .arg(". \"$1\" && printf '%s' \"$DB_PASS\"")
        .arg("dash")
        .arg(c.root().join("shell.env"))
        .output()
        .unwrap();
    assert!(
        sh.status.success() && sh.stdout == value.as_bytes(),
        "dash read back another value"
    );
    let parsed: BTreeMap<String, String> = dotenvy::from_path_iter(c.root().join("dotenvy.env"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        parsed["DB_PASS"] == value,
        "dotenvy read back another value"
    );
    let py = std::process::Command::new(test_python())
        .args([
            "-c",
            "import sys,dotenv; sys.stdout.write(dotenv.dotenv_values(sys.argv[1])['DB_PASS'])",
        ])
        .arg(c.root().join("python.env"))
        .output()
        .unwrap();
    assert!(
        py.status.success() && py.stdout == value.as_bytes(),
        "python-dotenv read back another value"
    );

    // The default dialect still refuses it, by file, secret and name, and writes nothing.
    let c = Case::new("dialect-common");
    c.seeder.create_string(&c.name("v"), &value);
    c.manifest("", &entry("app.env", "common"));
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(RENDER);
    assert!(
        out.stderr.contains("app.env")
            && out.stderr.contains("DB_PASS")
            && out.stderr.contains("`dialect:`"),
        "{}",
        out.stderr
    );
    assert!(!c.root().exists());
}

#[test]
fn second_apply_changes_nothing_and_rotation_updates_exactly_one_file() {
    let c = Case::new("idempotent");
    for n in ["a", "b", "c"] {
        c.seeder.create_string(&c.name(n), &canary_value());
    }
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n  - path: sub/b\n    secret: ${prefix}/b\n  - path: c\n    secret: ${prefix}/c\n");
    c.apply().assert_code(0);
    let before = snapshot(c.root());

    let again = c.apply();
    again.assert_code(0);
    assert!(
        statuses(&again).values().all(|s| s == "unchanged"),
        "{}",
        again.stdout
    );
    assert_eq!(snapshot(c.root()), before, "same bytes, inodes and mtimes");

    let rotated = canary_value();
    c.seeder.put_string(&c.name("b"), &rotated);
    let out = c.apply();
    out.assert_code(0);
    let s = statuses(&out);
    assert_eq!(
        (s["a"].as_str(), s["sub/b"].as_str(), s["c"].as_str()),
        ("unchanged", "updated", "unchanged")
    );
    assert_eq!(c.file("sub/b"), rotated.as_bytes());
    // A new generation: unchanged files keep their inode (and bytes, mode, mtime), the rotated
    // one is a new inode.
    let after = snapshot(c.root());
    let old_generation = before_live("a", &before, &c);
    for p in ["a", "c"] {
        let now = c.live(p);
        assert_ne!(now, old_generation.join(p), "a new generation is live");
        assert_eq!(
            after[&now],
            before[&old_generation.join(p)],
            "{p} untouched"
        );
    }
    assert_ne!(
        after[&c.live("sub/b")].ino,
        before[&old_generation.join("sub/b")].ino,
        "a new inode"
    );
}

#[test]
fn mode_change_alone_rewrites_the_file() {
    let c = Case::new("mode-change");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    c.apply().assert_code(0);
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/a\n    mode: \"0440\"\n",
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(statuses(&out)["a"], "updated");
    assert_eq!(mode_of(c.live("a")), 0o440);
}

#[test]
fn owner_and_group_are_applied() {
    if !is_root() {
        eprintln!("skipped: chown to another user needs root (CI runs as root)");
        return;
    }
    let c = Case::new("owner");
    c.seeder.create_string(&c.name("a"), &canary_value());
    // The owner and group must be able to reach the file (issue 17): directories with their
    // group and 0710, below a scratch directory anyone may pass.
    fs::set_permissions(c.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    c.manifest("    group: \"65534\"\n    dir_mode: \"0710\"\n", "  - path: a\n    secret: ${prefix}/a\n    owner: 65534\n    group: \"65534\"\n    mode: \"0440\"\n  - path: b\n    secret: ${prefix}/a\n    owner: root\n");
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(uid_gid(c.live("a")), (65534, 65534));
    assert_eq!(uid_gid(c.live("b")).0, 0);
    assert_eq!(out.json()["files"][0]["uid"], 65534);
    let again = c.apply();
    assert_eq!(statuses(&again)["a"], "unchanged");
}

#[test]
fn unknown_owner_fails_before_fetching() {
    let c = Case::new("unknown-owner");
    c.manifest(
        "",
        "  - path: a\n    secret: ${prefix}/never-fetched\n    owner: no-such-user-credfile\n",
    );
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(
        out.stderr.contains("no-such-user-credfile") && out.stderr.contains("line"),
        "{}",
        out.stderr
    );
}

#[test]
fn plan_fetches_and_compares_but_writes_nothing() {
    let c = Case::new("plan");
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: dir/a\n    secret: ${prefix}/a\n");
    let out = c.run("plan");
    out.assert_code(0);
    assert_eq!(out.json()["dry_run"], true);
    assert_eq!(statuses(&out)["dir/a"], "created");
    assert!(!c.root().exists(), "plan created nothing");
    c.apply().assert_code(0);
    c.seeder.put_string(&c.name("a"), &canary_value());
    let before = snapshot(c.root());
    let out = c.credfile().run(["plan", "--env", "test"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("update") && out.stdout.contains("nothing was written"),
        "{}",
        out.stdout
    );
    assert_eq!(snapshot(c.root()), before);
}
