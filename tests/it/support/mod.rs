//! Test harness shared by the integration test modules (`crate::support`).
//!
//! * [`moto_endpoint`] — one moto server per test process (or the one named by
//!   `CREDFILE_TEST_ENDPOINT`, which `scripts/test.sh` starts).
//! * [`Seeder`] — seeds secrets through the real AWS SDK; every seeded value is
//!   registered as a canary.
//! * [`Credfile`] — runs the compiled binary in a hermetic environment and always
//!   checks its stdout/stderr for canaries.
//! * [`Proxy`] — a request-counting, fault-injecting HTTP/1.1 proxy in front of moto.
//! * [`Canaries`] / [`assert_no_leak`] — secret-leak detection that never prints
//!   the secret itself.
//! * small file-metadata helpers.

pub mod aws_auth;
pub mod canary;
pub mod case;
pub mod dist;
pub mod k8s;
pub mod moto;
pub mod oidc;
pub mod openbao;
pub mod openbao_engines;
pub mod postgres;
pub mod proxy;
pub mod runner;
pub mod seed;
pub mod ssm;
pub mod systemd_creds;
pub mod users;
pub mod vault_case;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use canary::{Canaries, assert_no_leak};
pub use case::Case;
pub use moto::{PrivateMoto, moto_endpoint, test_python};
pub use oidc::GithubTokenEndpoint;
pub use openbao::OpenBao;
pub use proxy::{Mangle, Proxy};
pub use runner::{Credfile, Output, hermetic_env};
pub use seed::Seeder;
pub use ssm::ParamSeeder;

/// `n` random bytes as lowercase hex (2n characters).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("getrandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A unique, secret-name-safe prefix for one test: `t-<name>-<16 hex>`.
/// Characters outside `[A-Za-z0-9-]` in `test_name` become `-`.
pub fn unique_prefix(test_name: &str) -> String {
    let clean: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("t-{clean}-{}", random_hex(8))
}

/// A long random value to seed as a secret: `canary-<32 hex>`.
pub fn canary_value() -> String {
    format!("canary-{}", random_hex(16))
}

fn lstat(path: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

/// Permission bits (incl. setuid/setgid/sticky) of `path`, e.g. `0o400`.
/// Uses lstat: a symlink reports its own mode.
pub fn mode_of(path: impl AsRef<Path>) -> u32 {
    lstat(path.as_ref()).mode() & 0o7777
}

/// Inode number of `path` (lstat).
pub fn inode_of(path: impl AsRef<Path>) -> u64 {
    lstat(path.as_ref()).ino()
}

/// Modification time of `path` in nanoseconds since the epoch (lstat).
pub fn mtime_of(path: impl AsRef<Path>) -> i128 {
    let m = lstat(path.as_ref());
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// `(uid, gid)` owning `path` (lstat).
pub fn uid_gid(path: impl AsRef<Path>) -> (u32, u32) {
    let m = lstat(path.as_ref());
    (m.uid(), m.gid())
}

/// One entry of a [`snapshot`]: what a reader or an attacker could tell apart.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// File bytes, or a symlink's target; empty for directories.
    pub content: Vec<u8>,
    pub mode: u32,
    pub ino: u64,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i128,
}

/// Never prints the bytes: they may be secrets, and a failing assertion prints its operands.
impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Entry {{ {} bytes, mode {:o}, ino {}, {}:{}, mtime {} }}",
            self.content.len(),
            self.mode,
            self.ino,
            self.uid,
            self.gid,
            self.mtime_ns
        )
    }
}

/// Every entry under `root`, recursively, without following symlinks.
pub type Snapshot = std::collections::BTreeMap<std::path::PathBuf, Entry>;

/// Takes a [`Snapshot`]: "byte-identical" and "untouched" (same inode, same mtime) checks compare
/// two of them.
pub fn snapshot(root: impl AsRef<Path>) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![root.as_ref().to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let m = lstat(&p);
            let content = if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                stack.push(p.clone());
                Vec::new()
            };
            // A directory's mtime moves whenever an entry comes or goes, even when the set is
            // restored: its entries are compared instead.
            let mtime_ns = if m.is_dir() {
                0
            } else {
                i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
            };
            out.insert(
                p,
                Entry {
                    content,
                    mode: m.mode(),
                    ino: m.ino(),
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime_ns,
                },
            );
        }
    }
    out
}

/// Asserts that `doc` is valid under docs/report.schema.json (itself checked as a draft 2020-12
/// schema), with Python's jsonschema from the test venv.
pub fn validate_schema(doc: &serde_json::Value) {
    validate_against("docs/report.schema.json", doc);
}

/// Asserts that an audit line is valid under docs/audit.schema.json.
pub fn validate_audit_line(doc: &serde_json::Value) {
    validate_against("docs/audit.schema.json", doc);
}

/// `file`: a schema generated from src/output/types.rs.
fn validate_against(file: &str, doc: &serde_json::Value) {
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let out = std::process::Command::new(test_python())
        .args([
            "-c",
            "import json,sys,jsonschema; s=json.load(open(sys.argv[1])); jsonschema.Draft202012Validator.check_schema(s); jsonschema.validate(json.loads(sys.argv[2]), s, cls=jsonschema.Draft202012Validator)",
        ])
        .arg(schema)
        .arg(doc.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "document does not match {file}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Tests that need root (chown, sudo, mount namespaces) say so and skip without it.
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Each file's `status` in a JSON report (`--output json`), by path.
pub fn statuses(out: &Output) -> std::collections::BTreeMap<String, String> {
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
