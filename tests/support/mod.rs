//! Test harness shared by the integration test binaries (`mod support;`).
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
//!
//! Each test binary uses a subset of this module, hence the `allow`s.
#![allow(dead_code, unused_imports)]

pub mod canary;
pub mod moto;
pub mod oidc;
pub mod proxy;
pub mod runner;
pub mod seed;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use canary::{Canaries, assert_no_leak};
pub use moto::{PrivateMoto, moto_endpoint, test_python};
pub use oidc::GithubTokenEndpoint;
pub use proxy::{Mangle, Proxy};
pub use runner::{Credfile, Output, hermetic_env};
pub use seed::Seeder;

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
