//! End to end, what must fail and how: a missing or denied secret, a refused role, a manifest
//! error, a symlink or an unsafe directory, leave the target exactly as it was and name the
//! culprit; plus the request count, validate offline, the root override, the owed hook and
//! `--output json` on validate and lint. Writing what succeeds is in integration.rs.

use crate::support;
use crate::support::is_root;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::integration::*;
use support::{Proxy, Seeder, Snapshot, canary_value, inode_of, moto_endpoint, mtime_of, snapshot};

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
