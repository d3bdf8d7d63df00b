//! Effective access for `mode-other-read`: can users other than the owner and the group reach
//! a file, given the directories credfile creates around it?

use super::env::applies;
use crate::manifest::{self, raw};

/// Which node sets a mode: `defaults`, an environment, or a file entry.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'m> {
    Defaults,
    Env(&'m str),
    Entry(usize),
}

pub(super) fn parse_mode(text: &str) -> Result<u32, std::num::ParseIntError> {
    u32::from_str_radix(text.strip_prefix("0o").unwrap_or(text), 8)
}

/// The environments in which a file mode set at `scope` is in effect for some file that users
/// other than the owner and the group can reach, and why they can.
pub(super) fn others_reach<'m>(m: &'m raw::Manifest, scope: Scope<'_>) -> Vec<(&'m str, String)> {
    let mut out = Vec::new();
    for (name, e) in &m.environments.0 {
        let files: Vec<&raw::File> = m
            .files
            .iter()
            .enumerate()
            .filter(|(i, f)| {
                applies(f, name)
                    && match scope {
                        Scope::Defaults => f.mode.is_none() && e.mode.is_none(),
                        Scope::Env(env) => env == name && f.mode.is_none(),
                        Scope::Entry(j) => j == *i,
                    }
            })
            .map(|(_, f)| f)
            .collect();
        if files.is_empty() {
            continue;
        }
        let dir_text = e.dir_mode.as_deref().or(m.defaults.dir_mode.as_deref());
        let dir_mode = dir_text.map_or(Ok(manifest::DEFAULT_DIR_MODE), parse_mode);
        let Ok(dir_mode) = dir_mode else { continue };
        let dir_text = dir_text.unwrap_or("0700 (the default)");
        let layout = e.layout.or(m.defaults.layout).unwrap_or_default();
        if dir_mode & 0o001 != 0 {
            out.push((
                name.as_str(),
                format!("its directory mode `{dir_text}` lets others enter the directories credfile creates"),
            ));
        } else if layout == raw::Layout::Files && files.iter().any(|f| !f.path.contains('/')) {
            out.push((
                name.as_str(),
                "with `layout: files` a file directly in the root is reachable as far as the root's own mode allows, which credfile does not set".to_string(),
            ));
        }
    }
    out
}
