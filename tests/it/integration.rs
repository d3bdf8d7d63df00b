//! End to end: the real binary, the real AWS SDK, a real local Secrets Manager (moto).
//!
//! Every run goes through `support::Credfile`, which fails the test if any seeded secret value
//! (a canary) appears in stdout or stderr.

use crate::support;
use crate::support::is_root;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;
use support::{
    Credfile, Output, Proxy, Seeder, Snapshot, canary_value, inode_of, mode_of, moto_endpoint,
    mtime_of, snapshot, test_python, uid_gid, unique_prefix,
};

/// Exit codes from the book's table (docs/src/exit-codes.md).
const USAGE: i32 = 2;
const IDENTITY: i32 = 3;
const FETCH: i32 = 4;
const RENDER: i32 = 5;
const WRITE: i32 = 6;

/// One test's world: a scratch directory with a manifest and a root, secrets under a unique
/// prefix, and an endpoint (moto, or a proxy in front of it).
struct Case {
    dir: tempfile::TempDir,
    prefix: String,
    endpoint: String,
    seeder: Seeder,
}

impl Case {
    fn new(name: &str) -> Case {
        Case::with_endpoint(name, &moto_endpoint())
    }

    fn with_endpoint(name: &str, endpoint: &str) -> Case {
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

    fn name(&self, short: &str) -> String {
        format!("{}/{short}", self.prefix)
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("credfile.yaml")
    }

    /// Writes a manifest with one environment `test` (root, region, `prefix` var) plus `env_extra`
    /// lines under it, and `files` (YAML list items).
    fn manifest(&self, env_extra: &str, files: &str) {
        let text = format!(
            "version: 1\napp: it\ndefaults:\n  region: us-east-1\n  root: {root}\nenvironments:\n  test:\n    vars: {{ prefix: {prefix} }}\n{env_extra}files:\n{files}",
            root = self.root().display(),
            prefix = self.prefix,
        );
        fs::write(self.manifest_path(), text).unwrap();
    }

    fn credfile(&self) -> Credfile {
        Credfile::new(&self.endpoint).cwd(self.dir.path())
    }

    fn run(&self, command: &str) -> Output {
        self.credfile()
            .run([command, "--env", "test", "--output", "json"])
    }

    fn apply(&self) -> Output {
        self.run("apply")
    }

    fn file(&self, rel: &str) -> Vec<u8> {
        fs::read(self.root().join(rel)).unwrap()
    }

    /// Where `rel` really is in the generation layout: `<root>/<top>` is the link
    /// `current/<top>`, and `current` names the live generation directory. The metadata helpers
    /// use lstat, so they must be given this path to see the file itself.
    #[track_caller]
    fn live(&self, rel: &str) -> PathBuf {
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
fn before_live(rel: &str, snap: &Snapshot, c: &Case) -> PathBuf {
    let target = &snap[&c.root().join("current")].content;
    let generation = c.root().join(std::ffi::OsStr::from_bytes(target));
    assert!(snap.contains_key(&generation.join(rel)));
    generation
}

fn statuses(out: &Output) -> BTreeMap<String, String> {
    out.json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
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

const TRICKY: &[&str] = &[
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

/// Seeds two files' worth of secrets and applies once, so failure tests can check that a failing
/// run leaves the existing files exactly as they were.
fn applied_case(name: &str, endpoint: Option<&str>) -> (Case, Snapshot) {
    let c = match endpoint {
        Some(e) => Case::with_endpoint(name, e),
        None => Case::new(name),
    };
    c.seeder.create_string(&c.name("a"), &canary_value());
    c.seeder.create_json(
        &c.name("db"),
        &serde_json::json!({ "password": canary_value() }),
    );
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n  - path: db/password\n    secret: ${prefix}/db\n    key: password\n");
    c.apply().assert_code(0);
    let snap = snapshot(c.root());
    (c, snap)
}

#[test]
fn missing_secret_fails_naming_it_and_writes_nothing() {
    let (c, before) = applied_case("missing-secret", None);
    c.seeder.put_string(&c.name("a"), &canary_value());
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n  - path: new/file\n    secret: ${prefix}/does-not-exist\n");
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains(&c.name("does-not-exist"))
            && out.stderr.contains("ResourceNotFoundException"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    assert_eq!(
        snapshot(c.root()),
        before,
        "the rotated `a` was not written either"
    );
}

#[test]
fn missing_key_fails_naming_secret_and_key() {
    let (c, before) = applied_case("missing-key", None);
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n  - path: db/password\n    secret: ${prefix}/db\n    key: passwrd\n  - path: other\n    secret: ${prefix}/a\n    key: k\n");
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(RENDER);
    assert!(
        out.stderr.contains("key `passwrd`") && out.stderr.contains(&c.name("db")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("is not JSON"),
        "a non-JSON secret asked for a key: {}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before);
}

#[test]
fn denied_secret_fails_naming_it_in_batch_and_single_paths() {
    let proxy = Proxy::start(&moto_endpoint());
    let (c, before) = applied_case("denied", Some(&proxy.endpoint()));
    c.seeder.put_string(&c.name("a"), &canary_value());
    // Unpinned: the denial arrives in BatchGetSecretValue's Errors[].
    proxy.deny_secret(&c.name("db"));
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains(&c.name("db")) && out.stderr.contains("AccessDeniedException"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&format!("{}:", c.name("a"))),
        "only the denied secret is named: {}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before);
    // Pinned: GetSecretValue answers AccessDeniedException.
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n  - path: db/password\n    secret: ${prefix}/db\n    key: password\n    version_stage: AWSCURRENT\n  - path: p\n    secret: ${prefix}/db\n    version_stage: AWSPREVIOUS\n");
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(FETCH);
    assert!(
        out.stderr.contains(&c.name("db")) && out.stderr.contains("AccessDenied"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before);
}

#[test]
fn batch_denied_falls_back_to_get_secret_value() {
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("fallback", &proxy.endpoint());
    let values: Vec<String> = (0..3).map(|_| canary_value()).collect();
    for (i, v) in values.iter().enumerate() {
        c.seeder.create_string(&c.name(&format!("s{i}")), v);
    }
    c.manifest("", "  - path: s0\n    secret: ${prefix}/s0\n  - path: s1\n    secret: ${prefix}/s1\n  - path: s2\n    secret: ${prefix}/s2\n");
    proxy.deny_action("BatchGetSecretValue");
    c.credfile()
        .fail_fast()
        .run(["apply", "--env", "test"])
        .assert_code(0);
    for (i, v) in values.iter().enumerate() {
        assert_eq!(c.file(&format!("s{i}")), v.as_bytes());
    }
    assert_eq!(proxy.count("BatchGetSecretValue"), 1);
    assert_eq!(proxy.count("GetSecretValue"), 3);
}

#[test]
fn forty_five_secrets_take_three_batch_calls() {
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("batch45", &proxy.endpoint());
    let mut files = String::new();
    let mut values = Vec::new();
    for i in 0..45 {
        let v = canary_value();
        c.seeder.create_string(&c.name(&format!("s{i:02}")), &v);
        values.push(v);
        files.push_str(&format!(
            "  - path: s{i:02}\n    secret: ${{prefix}}/s{i:02}\n"
        ));
    }
    // Two entries reading the same secret, and an explicit AWSCURRENT (the same version).
    files.push_str("  - path: dup\n    secret: ${prefix}/s00\n  - path: latest\n    secret: ${prefix}/s01\n    version_stage: AWSCURRENT\n");
    c.manifest("", &files);
    c.apply().assert_code(0);
    assert_eq!(
        proxy.count("BatchGetSecretValue"),
        3,
        "ceil(45/20) batches; AWSCURRENT pins count as unpinned"
    );
    assert_eq!(proxy.count("GetSecretValue"), 0);
    let sizes: Vec<usize> = proxy
        .json_bodies("BatchGetSecretValue")
        .iter()
        .map(|b| b["SecretIdList"].as_array().unwrap().len())
        .collect();
    assert!(
        sizes.iter().all(|n| *n <= 20) && sizes.iter().sum::<usize>() == 45,
        "{sizes:?}"
    );
    for (i, v) in values.iter().enumerate() {
        assert_eq!(c.file(&format!("s{i:02}")), v.as_bytes());
    }
    assert_eq!(c.file("dup"), values[0].as_bytes());
    // A second run: the same calls again, and nothing rewritten.
    proxy.reset_counts();
    c.apply().assert_code(0);
    assert_eq!(proxy.count("BatchGetSecretValue"), 3);
}

#[test]
fn account_guard_refuses_before_any_secret_is_read() {
    let proxy = Proxy::start(&moto_endpoint());
    let (c, before) = applied_case("account-guard", Some(&proxy.endpoint()));
    c.manifest(
        "    account: \"999999999999\"\n",
        "  - path: a\n    secret: ${prefix}/a\n",
    );
    proxy.reset_counts();
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(IDENTITY);
    assert!(
        out.stderr.contains("999999999999") && out.stderr.contains("123456789012"),
        "both accounts named: {}",
        out.stderr
    );
    assert_eq!(
        proxy.count("GetSecretValue") + proxy.count("BatchGetSecretValue"),
        0
    );
    assert_eq!(snapshot(c.root()), before);
}

#[test]
fn role_arn_is_assumed_and_guarded() {
    let proxy = Proxy::start(&moto_endpoint());
    let c = Case::with_endpoint("assume", &proxy.endpoint());
    let other = Seeder::in_account(&moto_endpoint(), "111111111111");
    let v = canary_value();
    other.create_string(&c.name("a"), &v);
    c.manifest(
        "    account: \"111111111111\"\n    identity:\n      role_arn: arn:aws:iam::111111111111:role/it-deploy\n",
        "  - path: a\n    secret: ${prefix}/a\n",
    );
    let out = c.apply();
    out.assert_code(0);
    assert_eq!(c.file("a"), v.as_bytes(), "read from the role's account");
    assert_eq!(proxy.count("AssumeRole"), 1);
    assert_eq!(proxy.count("GetCallerIdentity"), 1);
    let assume = proxy
        .requests()
        .into_iter()
        .find(|(a, _)| a == "AssumeRole")
        .unwrap()
        .1;
    assert!(
        assume.contains("RoleSessionName=credfile-it-test"),
        "{assume}"
    );
    assert!(
        out.json()["caller_arn"]
            .as_str()
            .unwrap()
            .contains("assumed-role/it-deploy/credfile-it-test")
    );
}

#[test]
fn manifest_errors_name_file_line_and_column() {
    let c = Case::new("manifest-errors");
    fs::write(
        c.manifest_path(),
        "version: 1\napp: it\nenvironments:\n  test:\n    root: /tmp/x\nfiles:\n  - path: a\n    secret: s\n    mdoe: \"0400\"\n",
    )
    .unwrap();
    let out = c.credfile().run(["validate"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains("credfile.yaml:9:5: ") && out.stderr.contains("unknown field `mdoe`"),
        "{}",
        out.stderr
    );

    fs::write(
        c.manifest_path(),
        "version: 1\napp: it\nenvironments:\n  test:\n    root: /tmp/x\nfiles:\n  - path: ../escape\n    secret: ${nope}\n",
    )
    .unwrap();
    let out = c.credfile().run(["apply", "--env", "test"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains("credfile.yaml:7:11: path `../escape`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("credfile.yaml:8:13: `${nope}` is not defined in environment `test`"),
        "{}",
        out.stderr
    );

    let out = c.credfile().run(["apply", "--env", "prod"]);
    out.assert_code(USAGE);
    let out = c.credfile().run(["apply"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains("--env"),
        "no default environment: {}",
        out.stderr
    );

    // `..` in --root is refused, never resolved behind the user's back.
    fs::write(
        c.manifest_path(),
        "version: 1\napp: it\nenvironments:\n  test:\n    root: /tmp/x\nfiles:\n  - path: a\n    secret: s\n",
    )
    .unwrap();
    let out = c
        .credfile()
        .run(["apply", "--env", "test", "--root", "../elsewhere"]);
    out.assert_code(USAGE);
    assert!(
        out.stderr.contains("--root ../elsewhere contains `..`"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_is_offline() {
    let c = Case::with_endpoint("offline", "http://127.0.0.1:9");
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let out = c.credfile().run(["validate"]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("valid") && out.stdout.contains("test (1 files)"),
        "{}",
        out.stdout
    );
}

#[test]
fn symlinks_are_never_followed() {
    let (c, _) = applied_case("symlinks", None);
    let outside = c.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();

    // A symlink planted at a stable link name credfile recorded (type drift): replaced by
    // credfile's own link with one rename, never followed (self-healing, tests/it/fleet.rs).
    fs::remove_file(c.root().join("a")).unwrap();
    symlink(outside.join("victim"), c.root().join("a")).unwrap();
    c.seeder.put_string(&c.name("a"), &canary_value());
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"original");
    assert_eq!(
        fs::read_link(c.root().join("a")).unwrap(),
        Path::new("current/a"),
        "credfile's link is back"
    );

    // A symlink planted in place of a directory link: replaced the same way; nothing is
    // written through it.
    fs::remove_file(c.root().join("db")).unwrap();
    symlink(&outside, c.root().join("db")).unwrap();
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(0);
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing written through the link"
    );
    assert_eq!(
        fs::read_link(c.root().join("db")).unwrap(),
        Path::new("current/db")
    );

    // A symlink above the root.
    fs::remove_file(c.root().join("db")).unwrap();
    let real = c.dir.path().join("real-root");
    fs::rename(c.root(), &real).unwrap();
    symlink(&real, c.root()).unwrap();
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(out.stderr.contains("symlink"), "{}", out.stderr);
}

#[test]
fn unsafe_directories_and_targets_are_refused() {
    let (c, _) = applied_case("unsafe", None);
    // A world-writable directory in the root.
    fs::set_permissions(c.root().join("db"), fs::Permissions::from_mode(0o777)).unwrap();
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(
        out.stderr.contains("writable by group or others"),
        "{}",
        out.stderr
    );
    fs::set_permissions(c.root().join("db"), fs::Permissions::from_mode(0o700)).unwrap();

    // A directory where a file belongs.
    fs::remove_file(c.root().join("a")).unwrap();
    fs::create_dir(c.root().join("a")).unwrap();
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(
        out.stderr.contains("directory, not a regular file"),
        "{}",
        out.stderr
    );
    fs::remove_dir(c.root().join("a")).unwrap();

    // A FIFO at the target.
    nix::unistd::mkfifo(
        &c.root().join("a"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
    out.assert_code(WRITE);
    assert!(out.stderr.contains("FIFO"), "{}", out.stderr);
    fs::remove_file(c.root().join("a")).unwrap();

    if is_root() {
        // A target owned by another user.
        fs::write(c.root().join("a"), b"theirs").unwrap();
        nix::unistd::chown(
            &c.root().join("a"),
            Some(nix::unistd::Uid::from_raw(4242)),
            None,
        )
        .unwrap();
        let out = c.credfile().fail_fast().run(["apply", "--env", "test"]);
        out.assert_code(WRITE);
        assert!(out.stderr.contains("uid 4242"), "{}", out.stderr);
        assert_eq!(fs::read(c.root().join("a")).unwrap(), b"theirs");
    }
}

#[test]
fn root_override_and_trace_logs_leak_nothing() {
    let c = Case::new("trace");
    c.seeder
        .create_json(&c.name("a"), &serde_json::json!({ "k": canary_value() }));
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n    key: k\n");
    let elsewhere = c.dir.path().join("elsewhere");
    // A session token is a credential: it must not show up in logs either.
    let session_token = format!("session-{}", canary_value());
    support::Canaries::global().add(&session_token);
    // The runner checks stdout and stderr for every canary, including the whole JSON secret.
    let out = c
        .credfile()
        .env("RUST_LOG", "trace")
        .env("LOG_SENSITIVE_BODIES", "true")
        .env("AWS_SESSION_TOKEN", &session_token)
        .run(["apply", "--env", "test", "--root", "elsewhere"]);
    out.assert_code(0);
    assert!(out.stderr.contains(" DEBUG "), "debug logging was on");
    // At trace, the SDK and its HTTP stack print request headers (SSO bearer tokens among
    // them): no library may log at trace, whatever the filter asks.
    assert!(!out.stderr.contains(" TRACE "), "a library logged at trace");
    assert!(elsewhere.join("a").exists() && !c.root().exists());
    let live = elsewhere.join("current/a");
    let before = inode_of(&live);
    let mtime = mtime_of(&live);
    c.credfile()
        .run(["apply", "--env", "test", "--root", "elsewhere"])
        .assert_code(0);
    assert_eq!((inode_of(&live), mtime_of(&live)), (before, mtime));
}

#[test]
fn a_failed_hook_is_said_to_run_again_on_the_very_next_apply() {
    let c = Case::new("hook-owed");
    c.seeder.create_string(&c.name("a"), &canary_value());
    let log = c.dir.path().join("hook.log");
    c.manifest(
        "",
        &format!(
            "  - path: a\n    secret: ${{prefix}}/a\n    on_change: [/bin/sh, -c, 'echo ran >> \"$0\"; exit 3', '{}']\n",
            log.display()
        ),
    );
    let out = c.credfile().run(["apply", "--env", "test"]);
    out.assert_code(8);
    assert!(
        out.stderr
            .contains("the next apply of this environment runs them again")
            && !out.stderr.contains("after the next change"),
        "{}",
        out.stderr
    );
    // What the hint says: nothing changed, and the owed hook runs again.
    let out = c.credfile().run(["apply", "--env", "test"]);
    out.assert_code(8);
    assert_eq!(fs::read_to_string(&log).unwrap(), "ran\nran\n");
}

#[test]
fn validate_and_lint_speak_json_through_output() {
    let c = Case::with_endpoint("validate-json", "http://127.0.0.1:9");
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let out = c.credfile().run(["validate", "--output", "json"]);
    out.assert_code(0);
    let v = out.json();
    assert_eq!(v["command"], "validate");
    assert_eq!(v["ok"], true);
    assert_eq!(v["exit_code"], 0);
    assert_eq!(
        v["environments"],
        serde_json::json!([{"name": "test", "files": 1}])
    );
    assert_eq!(v["errors"], serde_json::json!([]));
    support::validate_schema(&v);

    // An invalid manifest: the same object, with each error's file and line; exit 2.
    fs::write(
        c.manifest_path(),
        "version: 1\napp: it\nenvironments:\n  test:\n    root: /tmp/x\nfiles:\n  - path: a\n    secret: s\n    mdoe: \"0400\"\n  - path: ../b\n    secret: s\n",
    )
    .unwrap();
    let out = c.credfile().run(["validate", "--output", "json"]);
    out.assert_code(USAGE);
    let v = out.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["exit_code"], USAGE);
    let errors = v["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{v}");
    assert!(
        errors.iter().all(|e| e["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("credfile.yaml"))
            && e["line"].is_u64()),
        "{v}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["line"] == 9 && e["message"].as_str().unwrap().contains("mdoe")),
        "{v}"
    );
    support::validate_schema(&v);
    assert!(out.stderr.contains("error: "), "{}", out.stderr);

    // lint: --output like every command; --format still works, with a deprecation warning.
    c.manifest("", "  - path: a\n    secret: ${prefix}/a\n");
    let out = c.credfile().run(["lint", "--output", "json"]);
    assert!(out.json()["summary"]["manifests"] == 1, "{}", out.stdout);
    let out = c.credfile().run(["lint", "--output", "sarif"]);
    assert_eq!(out.json()["version"], "2.1.0", "{}", out.stdout);
    let out = c.credfile().run(["lint", "--format", "json"]);
    assert!(out.json()["summary"].is_object(), "{}", out.stdout);
    assert!(out.stderr.contains("deprecated"), "{}", out.stderr);
}
