//! Expanded sets at scale and at their edges (issue 17, items 5, 6, 8, 11): `keys: all` and
//! `parameters_path:` under a low descriptor limit, past the per-set cap, with a name that is both
//! a file and a directory, with an owner the directories must let through (a real unprivileged
//! user), and `verify --offline` over the files recorded for a set.
//!
//! Everything runs the real binary against moto; every seeded value is a canary that no output
//! may contain. Timing is not asserted here: `scripts/bench-expand.sh` measures it.

use crate::support;
use crate::support::is_root;
use crate::support::users::LocalUser;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::{Map, Value, json};
use support::{
    Credfile, Output, ParamSeeder, Seeder, canary_value, moto_endpoint, snapshot, unique_prefix,
};

const RENDER: i32 = 5;
const WRITE: i32 = 6;
const DRIFT: i32 = 7;

/// One test's world: a scratch directory with a manifest and a root, names under a unique prefix.
struct Case {
    dir: tempfile::TempDir,
    prefix: String,
    seeder: Seeder,
    params: ParamSeeder,
}

impl Case {
    fn new(name: &str) -> Case {
        Case {
            dir: tempfile::Builder::new()
                .prefix("credfile-expand-")
                .tempdir()
                .unwrap(),
            prefix: unique_prefix(name),
            seeder: Seeder::new(&moto_endpoint()),
            params: ParamSeeder::new(&moto_endpoint()),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// One environment `test` in `layout`, plus `env_extra` lines, and `files`.
    fn manifest(&self, layout: &str, env_extra: &str, files: &str) {
        let text = format!(
            "version: 1\napp: expand\ndefaults:\n  region: us-east-1\n  root: {root}\n  layout: {layout}\n{env_extra}environments:\n  test:\n    vars: {{ prefix: {prefix} }}\nfiles:\n{files}",
            root = self.root().display(),
            prefix = self.prefix,
        );
        fs::write(self.dir.path().join("credfile.yaml"), text).unwrap();
    }

    fn credfile(&self) -> Credfile {
        Credfile::new(&moto_endpoint()).cwd(self.dir.path())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.credfile().run(args)
    }

    /// `args` with at most `nofile` descriptors (soft and hard limit), through `sh -c ulimit`.
    fn run_limited(&self, nofile: u32, args: &[&str]) -> Output {
        let bin = env!("CARGO_BIN_EXE_credfile");
        let script = format!("ulimit -n {nofile} && exec \"$0\" \"$@\"");
        let mut all = vec!["-c", script.as_str(), bin];
        all.extend_from_slice(args);
        self.credfile().program("/bin/sh").run(all)
    }

    fn secret(&self) -> String {
        format!("{}/set", self.prefix)
    }
}

/// A JSON object of `n` keys `k00000`.. with canary values.
fn keys(n: usize) -> (Value, Vec<String>) {
    let values: Vec<String> = (0..n).map(|_| canary_value()).collect();
    let map: Map<String, Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i:05}"), json!(v)))
        .collect();
    (Value::Object(map), values)
}

const KEYS_ALL: &str = "  - path: set\n    secret: ${prefix}/set\n    keys: all\n";

fn summary(out: &Output, what: &str) -> u64 {
    out.json()["summary"][what].as_u64().unwrap_or(0)
}

#[test]
fn keys_all_of_1100_keys_runs_under_a_256_descriptor_limit() {
    for layout in ["files", "generation"] {
        let c = Case::new(&format!("fd-{layout}"));
        let (doc, values) = keys(1100);
        c.seeder.create_json(&c.secret(), &doc);
        c.manifest(layout, "", KEYS_ALL);
        let args = ["apply", "--env", "test", "--output", "json"];
        let out = c.run_limited(256, &args);
        out.assert_code(0);
        assert_eq!(summary(&out, "created"), 1100, "{layout}");
        for i in [0, 547, 1099] {
            let file = c.root().join(format!("set/k{i:05}"));
            assert_eq!(fs::read_to_string(&file).unwrap(), values[i], "{layout}");
        }
        assert_eq!(fs::read_dir(c.root().join("set")).unwrap().count(), 1100);

        // Every value changes: 1,100 files staged and published again, under the same limit.
        let (doc, values) = keys(1100);
        c.seeder.put_string(&c.secret(), &doc.to_string());
        let out = c.run_limited(256, &args);
        out.assert_code(0);
        assert_eq!(summary(&out, "updated"), 1100, "{layout}");
        assert_eq!(
            fs::read_to_string(c.root().join("set/k01099")).unwrap(),
            values[1099]
        );
        c.run_limited(256, &["verify", "--env", "test"])
            .assert_code(0);
        c.run_limited(256, &["verify", "--env", "test", "--offline"])
            .assert_code(0);
    }
}

#[test]
fn a_set_past_the_cap_is_refused_naming_the_first_entry_past_it() {
    let c = Case::new("cap");
    let (doc, _) = keys(3);
    c.seeder.create_json(&c.secret(), &doc);
    c.manifest("files", "", KEYS_ALL);
    c.run(&["apply", "--env", "test"]).assert_code(0);
    let before = snapshot(c.root());

    // 20,001 keys (short values: the cap is about names, and moto holds any size).
    let mut big = Map::new();
    for i in 0..20_001 {
        big.insert(format!("k{i:05}"), json!("v"));
    }
    c.seeder
        .put_string(&c.secret(), &Value::Object(big).to_string());
    let out = c.run(&["apply", "--env", "test"]);
    out.assert_code(RENDER);
    assert!(
        out.stderr.contains("more than the 20000")
            && out.stderr.contains("set/k20000")
            && out.stderr.contains("20001 files"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(c.root()), before, "the target is as it was");
}

#[test]
fn a_name_that_is_both_a_file_and_a_directory_is_refused_before_staging() {
    for layout in ["files", "generation"] {
        let c = Case::new(&format!("clash-{layout}"));
        let param = |s: &str| format!("/{}/cfg/{s}", c.prefix);
        c.params.put(&param("b"), &canary_value(), "SecureString");
        c.manifest(
            layout,
            "",
            "  - path: cfg\n    parameters_path: /${prefix}/cfg/\n  - path: fixed\n    secret: ${prefix}/set\n",
        );
        c.seeder.create_string(&c.secret(), &canary_value());
        c.run(&["apply", "--env", "test"]).assert_code(0);
        let before = snapshot(c.root());

        // `cfg/a` a file, `cfg/a/x` needs it to be a directory.
        c.params.put(&param("a"), &canary_value(), "SecureString");
        c.params.put(&param("a/x"), &canary_value(), "SecureString");
        let out = c.run(&["apply", "--env", "test"]);
        out.assert_code(RENDER);
        assert!(
            out.stderr.contains("`cfg/a` and `cfg/a/x`"),
            "{layout}: {}",
            out.stderr
        );
        assert_eq!(
            snapshot(c.root()),
            before,
            "{layout}: the target is as it was"
        );
        // And again: still the same refusal, never a wrong one about what a run left.
        let again = c.run(&["apply", "--env", "test"]);
        again.assert_code(RENDER);
        assert!(again.stderr.contains("`cfg/a` and `cfg/a/x`"));
        assert_eq!(snapshot(c.root()), before);
    }
}

#[test]
fn a_file_its_owner_cannot_reach_is_refused_before_writing() {
    if !is_root() {
        eprintln!("skipped: useradd needs root (CI runs as root)");
        return;
    }
    let app = LocalUser::add("cfx");
    for layout in ["files", "generation"] {
        let c = Case::new(&format!("reach-{layout}"));
        let value = canary_value();
        c.seeder.create_string(&c.secret(), &value);
        let entry = format!(
            "  - path: db/password\n    secret: ${{prefix}}/set\n    owner: {}\n",
            app.name
        );
        // The scratch directory above the root lets anyone through; the default dir_mode 0700
        // makes directories owned by root that the app cannot enter.
        fs::set_permissions(c.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        c.manifest(layout, "", &entry);
        let out = c.run(&["apply", "--env", "test"]);
        out.assert_code(WRITE);
        assert!(
            out.stderr.contains("db/password")
                && out.stderr.contains(&format!("its owner (uid {})", app.uid))
                && out.stderr.contains("`dir_mode` 0700")
                && out.stderr.contains("set `dir_mode`"),
            "{layout}: {}",
            out.stderr
        );
        assert!(!c.root().exists(), "{layout}: nothing was written");

        // The directories get the app's group and 0710; an existing directory above the root
        // that blocks (0700, root's) is named as it is.
        let through = format!("  group: {}\n  dir_mode: \"0710\"\n", app.name);
        c.manifest(layout, &through, &entry);
        fs::set_permissions(c.dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let out = c.run(&["apply", "--env", "test"]);
        out.assert_code(WRITE);
        assert!(
            out.stderr
                .contains(&format!("{} exists with mode 0700", c.dir.path().display())),
            "{layout}: {}",
            out.stderr
        );
        assert!(!c.root().exists());

        fs::set_permissions(c.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
        c.run(&["apply", "--env", "test"]).assert_code(0);
        assert_eq!(
            app.reads(&c.root().join("db/password")).as_deref(),
            Some(value.as_str()),
            "{layout}: the owner reads its file"
        );
    }
}

#[test]
fn verify_offline_checks_every_file_recorded_for_an_expanded_set() {
    for layout in ["files", "generation"] {
        let c = Case::new(&format!("offline-{layout}"));
        let (doc, _) = keys(3);
        c.seeder.create_json(&c.secret(), &doc);
        let param = format!("/{}/cfg/a", c.prefix);
        c.params.put(&param, &canary_value(), "SecureString");
        c.manifest(
            layout,
            "",
            "  - path: set\n    secret: ${prefix}/set\n    keys: all\n  - path: cfg\n    parameters_path: /${prefix}/cfg/\n",
        );
        let applied = c.run(&["apply", "--env", "test", "--output", "json"]);
        applied.assert_code(0);
        let offline = ["verify", "--env", "test", "--offline", "--output", "json"];
        let out = c.run(&offline);
        out.assert_code(0);
        let report = out.json();
        assert_eq!(
            report["files_checked"],
            applied.json()["files"].as_array().unwrap().len(),
            "{layout}: the same count as apply"
        );
        assert!(
            report["not_checked"][0]
                .as_str()
                .unwrap()
                .starts_with("content"),
            "{report}"
        );

        // An owner change, a mode change, a missing file and an extra one, all inside sets.
        let live = |rel: &str| match layout {
            "files" => c.root().join(rel),
            _ => c.root().join("current").join(rel),
        };
        std::os::unix::fs::lchown(live("set/k00000"), Some(65534), None).unwrap();
        fs::set_permissions(live("set/k00001"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::remove_file(live("cfg/a")).unwrap();
        fs::write(live("set/planted"), "x").unwrap();
        let out = c.run(&offline);
        out.assert_code(DRIFT);
        let drift: Vec<(String, String)> = out.json()["drift"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["path"].as_str().unwrap().to_string(),
                    d["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for want in [
            ("set/k00000", "owner"),
            ("set/k00001", "mode"),
            ("cfg/a", "missing"),
            ("set/planted", "extra"),
        ] {
            assert!(
                drift.contains(&(want.0.to_string(), want.1.to_string())),
                "{layout}: {want:?} in {drift:?}"
            );
        }
        let human = c.run(&["verify", "--env", "test", "--offline"]);
        assert!(
            human.stdout.contains("not checked: content"),
            "{}",
            human.stdout
        );
    }
}
