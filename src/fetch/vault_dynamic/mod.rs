//! Dynamic credentials (`vault_lease:`) and certificates (`vault_pki:`): Vault values that
//! carry a lifetime, so an apply decides from the state file's records whether to keep, renew
//! or replace them (docs/src/vault-dynamic.md).

// Wired into the run with the Vault seam; until then only the unit tests use it.
#![allow(dead_code)]

pub mod records;
