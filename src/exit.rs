//! The single exit-code table (docs/src/exit-codes.md), beneath every layer: each stage's
//! error maps to one of these in `error.rs`, and main and the generated outputs use them too.
//! Never reuse a number for another meaning.

pub const OK: u8 = 0;
pub const INTERNAL: u8 = 1;
pub const USAGE: u8 = 2;
pub const IDENTITY: u8 = 3;
pub const FETCH: u8 = 4;
pub const RENDER: u8 = 5;
pub const WRITE: u8 = 6;
/// `verify` found the host different from the manifest.
pub const DRIFT: u8 = 7;
/// The files are committed, but a change hook failed.
pub const HOOK: u8 = 8;
/// Governance findings: `lint` found errors, or `audit reuse` found a protected environment
/// sharing a value.
pub const GOVERNANCE: u8 = 9;
/// `plan --detailed-exitcode`: apply would change something (not a failure).
pub const CHANGES_PENDING: u8 = 10;
