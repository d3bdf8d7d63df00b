//! Bad manifests, each with its exact error output pinned beside it (`NAME.yaml` ->
//! `NAME.stderr`). A change in wording, position or hint shows up as a diff here.
//! `CREDFILE_BLESS=1 cargo test --test it manifests::` rewrites the expectations after a deliberate
//! change; review the diff before committing it.

use crate::support;

use std::fs;
use std::path::PathBuf;

use support::{Credfile, moto_endpoint};

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/manifests/bad")
}

#[test]
fn every_bad_manifest_fails_with_its_pinned_message() {
    let bless = std::env::var_os("CREDFILE_BLESS").is_some();
    let mut names: Vec<String> = fs::read_dir(corpus())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".yaml").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 25, "the corpus is there");
    let mut mismatches = Vec::new();
    for name in &names {
        // validate is offline: no endpoint needed, and none is reachable.
        let out = Credfile::new("http://127.0.0.1:9").cwd(corpus()).run([
            "validate",
            "--manifest",
            &format!("{name}.yaml"),
        ]);
        assert_eq!(
            out.status_code, 2,
            "{name}: a manifest error exits 2\n{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{name}");
        let expected_path = corpus().join(format!("{name}.stderr"));
        if bless {
            fs::write(&expected_path, &out.stderr).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if out.stderr != expected {
            mismatches.push(format!(
                "--- {name}.stderr (expected)\n{expected}+++ actual\n{}",
                out.stderr
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn an_oversized_manifest_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let huge = format!(
        "version: 1\napp: {}\nenvironments: {{}}\nfiles: []\n",
        "a".repeat(2 << 20)
    );
    fs::write(dir.path().join("credfile.yaml"), huge).unwrap();
    let out = Credfile::new(&moto_endpoint())
        .cwd(dir.path())
        .run(["validate"]);
    out.assert_code(2);
    assert_eq!(
        out.stderr,
        "error: credfile.yaml: the manifest is larger than 1048576 bytes\n  hint: a manifest holds references only; split it per application\n"
    );
}
