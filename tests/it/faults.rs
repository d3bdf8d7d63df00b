//! Network faults between credfile and the AWS API, injected by the test proxy in AWS's own error
//! shapes: credfile retries what is transient (bounded in attempts and time), fails cleanly on
//! the rest, names the secret at fault, never panics, and never leaves a partial write.

use crate::support;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use support::{
    Credfile, Mangle, Output, Proxy, Seeder, canary_value, moto_endpoint, snapshot, unique_prefix,
};

const IDENTITY: i32 = 3;
const FETCH: i32 = 4;

/// Two files from two secrets (one JSON), applied once through the proxy so failures can be
/// checked against a known previous state.
struct Case {
    dir: tempfile::TempDir,
    proxy: Proxy,
    prefix: String,
    seeder: Seeder,
}

impl Case {
    fn new(name: &str) -> Case {
        let c = Case {
            dir: tempfile::Builder::new()
                .prefix("credfile-fault-")
                .tempdir()
                .unwrap(),
            proxy: Proxy::start(&moto_endpoint()),
            prefix: unique_prefix(name),
            seeder: Seeder::new(&moto_endpoint()),
        };
        c.seeder.create_string(&c.name("a"), &canary_value());
        c.seeder.create_json(
            &c.name("db"),
            &serde_json::json!({ "password": canary_value() }),
        );
        let text = format!(
            "version: 1\napp: faults\nenvironments:\n  test:\n    region: us-east-1\n    account: \"123456789012\"\n    root: {}\nfiles:\n  - path: a\n    secret: {}\n  - path: db/password\n    secret: {}\n    key: password\n",
            c.root().display(),
            c.name("a"),
            c.name("db")
        );
        fs::write(c.dir.path().join("credfile.yaml"), text).unwrap();
        c.run(&[]).assert_code(0);
        c.proxy.reset_counts();
        c
    }

    fn name(&self, short: &str) -> String {
        format!("{}/{short}", self.prefix)
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn run(&self, extra: &[&str]) -> Output {
        let mut args = vec!["apply", "--env", "test"];
        args.extend_from_slice(extra);
        Credfile::new(&self.proxy.endpoint())
            .cwd(self.dir.path())
            .run(args)
    }

    /// Rotates both secrets, so a run that wrongly wrote anything would change a file.
    fn rotate(&self) {
        self.seeder.put_string(&self.name("a"), &canary_value());
        self.seeder.put_string(
            &self.name("db"),
            &serde_json::json!({ "password": canary_value() }).to_string(),
        );
    }
}

fn assert_clean_failure(out: &Output, code: i32) {
    out.assert_code(code);
    assert!(!out.stderr.contains("panicked"), "no panic: {}", out.stderr);
    assert!(
        out.stderr.contains("error: ") && out.stderr.contains("hint: "),
        "{}",
        out.stderr
    );
}

#[test]
fn transient_errors_are_retried_then_succeed() {
    let c = Case::new("transient");
    for (status, code) in [
        (400, "ThrottlingException"),
        (429, "TooManyRequestsException"),
        (500, "InternalServiceError"),
        (503, "ServiceUnavailable"),
    ] {
        c.rotate();
        c.proxy.reset_counts();
        c.proxy.fail_next("BatchGetSecretValue", 2, status, code);
        // Batch mode: a throttled batch call is retried as one (auto moves it to single gets,
        // tests/it/fleet.rs).
        let out = c.run(&["--fetch", "batch"]);
        out.assert_code(0);
        assert_eq!(
            c.proxy.count("BatchGetSecretValue"),
            3,
            "{code}: two failures, then success"
        );
        assert_eq!(
            fs::read(c.root().join("a")).unwrap(),
            c.seeder.get_string(&c.name("a")).as_bytes(),
            "{code}"
        );
    }
}

#[test]
fn a_reset_connection_is_retried() {
    let c = Case::new("reset");
    c.rotate();
    c.proxy.mangle_next("BatchGetSecretValue", 1, Mangle::Reset);
    c.run(&[]).assert_code(0);
    assert_eq!(c.proxy.count("BatchGetSecretValue"), 2);
    assert_eq!(
        fs::read(c.root().join("a")).unwrap(),
        c.seeder.get_string(&c.name("a")).as_bytes()
    );
}

#[test]
fn persistent_faults_fail_cleanly_within_the_attempt_budget() {
    let c = Case::new("persistent");
    c.rotate();
    let before = snapshot(c.root());
    type Inject = Box<dyn Fn(&Proxy)>;
    let cases: [(&str, Inject); 4] = [
        (
            "throttled",
            Box::new(|p: &Proxy| {
                p.fail_next(
                    "BatchGetSecretValue",
                    usize::MAX,
                    400,
                    "ThrottlingException",
                )
            }),
        ),
        (
            "5xx",
            Box::new(|p: &Proxy| {
                p.fail_next("BatchGetSecretValue", usize::MAX, 503, "ServiceUnavailable")
            }),
        ),
        (
            "reset",
            Box::new(|p: &Proxy| p.mangle_next("BatchGetSecretValue", usize::MAX, Mangle::Reset)),
        ),
        (
            "truncated",
            Box::new(|p: &Proxy| {
                p.mangle_next("BatchGetSecretValue", usize::MAX, Mangle::Truncate)
            }),
        ),
    ];
    for (what, inject) in cases {
        c.proxy.clear_rules();
        c.proxy.reset_counts();
        inject(&c.proxy);
        let out = c.run(&["--max-attempts", "2", "--fetch", "batch"]);
        assert_clean_failure(&out, FETCH);
        assert_eq!(
            c.proxy.count("BatchGetSecretValue"),
            2,
            "{what}: exactly --max-attempts"
        );
        assert!(
            out.stderr.contains(&c.name("a")) && out.stderr.contains(&c.name("db")),
            "{what}: {}",
            out.stderr
        );
        assert_eq!(snapshot(c.root()), before, "{what}: nothing written");
    }
}

#[test]
fn a_stalled_response_times_out_and_fails_cleanly() {
    let c = Case::new("stall");
    c.rotate();
    let before = snapshot(c.root());
    // Held far beyond the runner's timeout: a run that waited for the stall would be killed
    // there, not fail cleanly with exit 4.
    c.proxy
        .delay("BatchGetSecretValue", Duration::from_secs(600));
    let calls_before = c.proxy.count("BatchGetSecretValue");
    let out = c.run(&["--attempt-timeout", "1", "--max-attempts", "2"]);
    assert_clean_failure(&out, FETCH);
    assert!(
        out.stderr.contains("timed out") || out.stderr.contains("timeout"),
        "{}",
        out.stderr
    );
    assert_eq!(
        c.proxy.count("BatchGetSecretValue") - calls_before,
        2,
        "gave up after its two attempts timed out, not after the stall"
    );
    assert_eq!(snapshot(c.root()), before);
}

#[test]
fn garbage_bodies_fail_cleanly() {
    let c = Case::new("garbage");
    c.rotate();
    let before = snapshot(c.root());
    c.proxy
        .mangle_next("BatchGetSecretValue", usize::MAX, Mangle::Garbage);
    let out = c.run(&["--max-attempts", "1"]);
    assert_clean_failure(&out, FETCH);
    assert_eq!(snapshot(c.root()), before);

    // The same for STS: the account guard cannot be confirmed.
    c.proxy.clear_rules();
    c.proxy
        .mangle_next("GetCallerIdentity", usize::MAX, Mangle::Garbage);
    let out = c.run(&["--max-attempts", "1"]);
    assert_clean_failure(&out, IDENTITY);
    assert!(out.stderr.contains("GetCallerIdentity"), "{}", out.stderr);
    assert_eq!(snapshot(c.root()), before);
}

#[test]
fn one_undecryptable_or_denied_secret_fails_the_run_by_name() {
    let c = Case::new("per-secret");
    c.rotate();
    let before = snapshot(c.root());
    for code in ["DecryptionFailure", "AccessDeniedException"] {
        c.proxy.clear_rules();
        c.proxy.fail_secret(&c.name("db"), code);
        // In BatchGetSecretValue's Errors[].
        let out = c.run(&[]);
        assert_clean_failure(&out, FETCH);
        assert!(
            out.stderr.contains(&format!("{}: {code}", c.name("db"))),
            "{code}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains(&format!("{}: ", c.name("a"))),
            "only the failing secret is named"
        );
        assert_eq!(snapshot(c.root()), before, "{code}: nothing written");
        if code == "DecryptionFailure" {
            assert!(out.stderr.contains("kms:Decrypt"), "{}", out.stderr);
        }
        // And from GetSecretValue, when BatchGetSecretValue itself is denied (fallback path).
        c.proxy.deny_action("BatchGetSecretValue");
        let out = c.run(&[]);
        assert_clean_failure(&out, FETCH);
        assert!(
            out.stderr.contains(&c.name("db")) && out.stderr.contains(code),
            "{code}: {}",
            out.stderr
        );
        assert_eq!(snapshot(c.root()), before);
    }
}

#[test]
fn an_unreachable_endpoint_is_named_with_what_to_check() {
    // A port nothing listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    let dir = tempfile::Builder::new()
        .prefix("credfile-fault-")
        .tempdir()
        .unwrap();
    let manifest = |extra: &str| {
        fs::write(
            dir.path().join("credfile.yaml"),
            format!(
                "version: 1\napp: faults\nenvironments:\n  test:\n    region: us-east-1\n{extra}    root: {}\nfiles:\n  - path: a\n    secret: some/secret\n",
                dir.path().join("root").display()
            ),
        )
        .unwrap();
    };
    let run = |endpoint: &str| {
        Credfile::new(endpoint).cwd(dir.path()).run([
            "apply",
            "--env",
            "test",
            "--max-attempts",
            "1",
        ])
    };
    // Secrets Manager (fetch), then STS (the account guard's GetCallerIdentity).
    for (extra, code) in [("", FETCH), ("    account: \"123456789012\"\n", IDENTITY)] {
        manifest(extra);
        let out = run(&closed);
        assert_clean_failure(&out, code);
        assert!(
            out.stderr.contains(&format!("{closed}: ")),
            "the endpoint tried is named: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("AWS_ENDPOINT_URL={closed}"))
                && !out.stderr.contains("did not answer in time"),
            "the hint says where the endpoint comes from: {}",
            out.stderr
        );
    }
    // A name that does not resolve.
    manifest("");
    let out = run("http://credfile-no-such-host.invalid:4566");
    assert_clean_failure(&out, FETCH);
    assert!(
        out.stderr
            .contains("http://credfile-no-such-host.invalid:4566: "),
        "{}",
        out.stderr
    );
}
