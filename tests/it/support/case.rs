//! One test's world: a private directory (manifest, root), a unique secret-name prefix and a
//! seeder, with a manifest of one environment `test`. Shared by the lifecycle and rails tests.

use std::fs;
use std::path::PathBuf;

use super::{Credfile, Output, Seeder, moto_endpoint, unique_prefix};

pub struct Case {
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub seeder: Seeder,
    app: &'static str,
}

impl Case {
    /// `app` names the manifest's app (and the directory's prefix); `name` the test.
    pub fn new(app: &'static str, name: &str) -> Case {
        Case {
            dir: tempfile::Builder::new()
                .prefix(&format!("credfile-{app}-"))
                .tempdir()
                .unwrap(),
            prefix: unique_prefix(name),
            seeder: Seeder::new(&moto_endpoint()),
            app,
        }
    }

    /// A secret name under this test's prefix.
    pub fn name(&self, short: &str) -> String {
        format!("{}/{short}", self.prefix)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// One environment `test` with `env_extra` lines under it, and `files`.
    pub fn manifest(&self, env_extra: &str, files: &str) {
        let text = format!(
            "version: 1\napp: {app}\ndefaults:\n  region: us-east-1\n  root: {root}\nenvironments:\n  test:\n    vars: {{ prefix: {prefix} }}\n{env_extra}files:\n{files}",
            app = self.app,
            root = self.root().display(),
            prefix = self.prefix,
        );
        fs::write(self.dir.path().join("credfile.yaml"), text).unwrap();
    }

    pub fn credfile(&self) -> Credfile {
        Credfile::new(&moto_endpoint()).cwd(self.dir.path())
    }

    /// `credfile ARGS --env test` in the test's directory.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.extend(["--env", "test"]);
        self.credfile().run(all)
    }
}
