//! What the repository's scripts promise about themselves: run bits, no shared fixed paths, one
//! default version everywhere an install starts.

use crate::support;

use std::fs;
use std::io::Read;
use std::process::Command;

use support::dist::*;

/// Every script in scripts/ that is run by its path (a shebang) is committed with its run bit:
/// the README and the release workflow run `scripts/dist.sh`, not `bash scripts/dist.sh`.
/// lib.sh is sourced, never run.
#[test]
fn scripts_are_committed_with_their_run_bit() {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["ls-files", "-s", "--", "scripts", ".ci"])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("skipped: not a git checkout");
        return;
    }
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    for line in listing.lines() {
        let (meta, path) = line.split_once('\t').unwrap();
        let text = fs::read(repo().join(path)).unwrap();
        if !text.starts_with(b"#!") || path == "scripts/lib.sh" {
            continue;
        }
        checked += 1;
        assert!(
            meta.starts_with("100755 "),
            "{path} is committed without its run bit ({meta}): git update-index --chmod=+x {path}"
        );
    }
    assert!(checked >= 5, "{listing}");
}

/// Two test runs on one host (a developer's and CI's, in two checkouts) must not share a path:
/// every temporary directory the scripts use comes from `mktemp`, never a fixed name under /tmp,
/// $TMPDIR or /dev/shm that one run could remove under the other.
#[test]
fn scripts_use_no_fixed_shared_paths() {
    let mut checked = 0;
    let mut dirs = vec![repo().join("scripts"), repo().join(".ci")];
    let mut fixed = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            checked += 1;
            for (i, line) in text.lines().enumerate() {
                let code = line.split(" #").next().unwrap_or(line);
                let shared = ["/tmp/", "/dev/shm/", "}/"].iter().any(|root| {
                    code.match_indices(root).any(|(at, _)| {
                        let before = &code[..at];
                        let after = &code[at + root.len()..];
                        let named = after.starts_with(|c: char| c.is_ascii_alphabetic());
                        let tmp_var = *root != "}/"
                            || before.ends_with("TMPDIR:-/tmp")
                            || before.ends_with("{TMPDIR");
                        named && tmp_var
                    })
                });
                if shared && !code.contains("mktemp") && !code.trim_start().starts_with('#') {
                    fixed.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(checked >= 8, "scripts read: {checked}");
    assert!(
        fixed.is_empty(),
        "fixed shared paths (use mktemp -d):\n{}",
        fixed.join("\n")
    );
}

/// The version every install path defaults to is the crate's.
#[test]
fn install_paths_default_to_this_version() {
    let install = fs::read_to_string(repo().join("scripts/install.sh")).unwrap();
    assert!(install.contains(&format!("\ndefault_version={VERSION}\n")));
    for f in ["action.yml", "templates/credfile.yml"] {
        let text = fs::read_to_string(repo().join(f)).unwrap();
        assert!(text.contains(&format!("default: {VERSION}\n")), "{f}");
    }
    let mut buf = String::new();
    fs::File::open(repo().join("LICENSE"))
        .unwrap()
        .read_to_string(&mut buf)
        .unwrap();
    assert!(buf.contains("Apache License") && buf.contains("Version 2.0, January 2004"));
}
