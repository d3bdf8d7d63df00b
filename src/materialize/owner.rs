//! Owner and group names to ids, as the target host's user database knows them.

use std::path::Path;

use nix::unistd::{Group, User};

use super::WriteError;
use crate::manifest::Principal;

pub(super) fn resolve_user(p: &Principal, path: &Path, line: usize) -> Result<u32, WriteError> {
    match p {
        Principal::Id(id) => Ok(*id),
        Principal::Name(name) => match User::from_name(name) {
            Ok(Some(u)) => Ok(u.uid.as_raw()),
            _ => Err(WriteError::UnknownPrincipal {
                path: path.to_path_buf(),
                line,
                kind: "user",
                name: name.clone(),
            }),
        },
    }
}

pub(super) fn resolve_group(p: &Principal, path: &Path, line: usize) -> Result<u32, WriteError> {
    match p {
        Principal::Id(id) => Ok(*id),
        Principal::Name(name) => match Group::from_name(name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            _ => Err(WriteError::UnknownPrincipal {
                path: path.to_path_buf(),
                line,
                kind: "group",
                name: name.clone(),
            }),
        },
    }
}
