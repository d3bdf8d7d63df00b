//! Request counts: credfile's cost to the AWS API, asserted as counts (never as times).
//!
//! The floor for a run is 1 STS call per role hop, 1 GetCallerIdentity when an account guard is
//! set, ceil(unpinned/20) BatchGetSecretValue and 1 GetSecretValue per pinned version. Every run
//! goes through the counting proxy, and each test checks the total too: a call nobody expected
//! (a second credential exchange, a retry, a probe) fails it.

use crate::support;

use std::fs;
use std::path::PathBuf;

use support::{Credfile, Proxy, Seeder, canary_value, moto_endpoint, unique_prefix};

/// moto's account for the static test keys, and a role in it (an assumed role's account is the
/// one in its ARN, so the seeded secrets stay visible).
const ACCOUNT: &str = "123456789012";
const ROLE: &str = "arn:aws:iam::123456789012:role/deploy";

/// `n` secrets under a unique prefix, a manifest writing each to its own file, and a proxy.
struct World {
    dir: tempfile::TempDir,
    proxy: Proxy,
    prefix: String,
    values: Vec<String>,
}

impl World {
    fn new(name: &str, n: usize) -> World {
        let seeder = Seeder::new(&moto_endpoint());
        let prefix = unique_prefix(name);
        let values: Vec<String> = (0..n)
            .map(|i| {
                let v = canary_value();
                seeder.create_string(&format!("{prefix}/s{i:02}"), &v);
                v
            })
            .collect();
        World {
            dir: tempfile::Builder::new()
                .prefix("credfile-req-")
                .tempdir()
                .unwrap(),
            proxy: Proxy::start(&moto_endpoint()),
            prefix,
            values,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The `test` environment with `env_yaml` lines under it, one file per secret.
    fn manifest(&self, env_yaml: &str) {
        let files: String = (0..self.values.len())
            .map(|i| format!("  - path: s{i:02}\n    secret: {}/s{i:02}\n", self.prefix))
            .collect();
        let text = format!(
            "version: 1\napp: req\ndefaults:\n  region: us-east-1\n  root: {}\nenvironments:\n  test:\n{env_yaml}files:\n{files}",
            self.root().display()
        );
        fs::write(self.dir.path().join("credfile.yaml"), text).unwrap();
    }

    fn credfile(&self) -> Credfile {
        Credfile::new(&self.proxy.endpoint()).cwd(self.dir.path())
    }

    fn apply(&self, c: Credfile) {
        self.proxy.reset_counts();
        c.run(["apply", "--env", "test"]).assert_code(0);
        for (i, v) in self.values.iter().enumerate() {
            assert_eq!(
                fs::read(self.root().join(format!("s{i:02}"))).unwrap(),
                v.as_bytes()
            );
        }
        fs::remove_dir_all(self.root()).unwrap();
    }

    fn count(&self, action: &str) -> usize {
        self.proxy.count(action)
    }
}

#[test]
fn account_guard_costs_exactly_one_get_caller_identity() {
    let w = World::new("guard", 21);

    w.manifest(&format!("    account: \"{ACCOUNT}\"\n"));
    w.apply(w.credfile());
    assert_eq!(w.count("GetCallerIdentity"), 1, "the guard asks STS once");
    assert_eq!(w.count("BatchGetSecretValue"), 2, "ceil(21/20)");
    assert_eq!(w.proxy.total(), 3, "{:?}", w.proxy.requests());

    w.manifest("");
    w.apply(w.credfile());
    assert_eq!(w.count("GetCallerIdentity"), 0, "no guard, no STS call");
    assert_eq!(w.count("BatchGetSecretValue"), 2);
    assert_eq!(w.proxy.total(), 2, "{:?}", w.proxy.requests());
}

#[test]
fn a_role_costs_one_assume_role() {
    let w = World::new("role", 3);
    w.manifest(&format!(
        "    account: \"{ACCOUNT}\"\n    identity:\n      role_arn: {ROLE}\n"
    ));
    w.apply(w.credfile());
    assert_eq!(w.count("AssumeRole"), 1);
    assert_eq!(w.count("GetCallerIdentity"), 1);
    assert_eq!(w.count("BatchGetSecretValue"), 1);
    assert_eq!(w.proxy.total(), 3, "{:?}", w.proxy.requests());
}

#[test]
fn a_web_identity_token_file_is_exchanged_once() {
    // The SDK chain's own web identity provider (EKS, or any AWS_WEB_IDENTITY_TOKEN_FILE): the
    // credentials it returns serve the whole run instead of being fetched again per client.
    let w = World::new("token-file", 2);
    let token = w.dir.path().join("token");
    fs::write(&token, "header.payload.signature").unwrap();
    w.manifest(&format!("    account: \"{ACCOUNT}\"\n"));
    let c = w
        .credfile()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_string_lossy())
        .env("AWS_ROLE_ARN", ROLE)
        .env("AWS_ROLE_SESSION_NAME", "req");
    w.apply(c);
    assert_eq!(w.count("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(w.count("GetCallerIdentity"), 1);
    assert_eq!(w.count("BatchGetSecretValue"), 1);
    assert_eq!(w.proxy.total(), 3, "{:?}", w.proxy.requests());
}
