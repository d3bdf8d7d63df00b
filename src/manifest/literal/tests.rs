use super::*;

fn cases(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with("## "))
        .collect()
}

fn kinds(line: &str) -> Vec<(usize, &'static str)> {
    literal_candidates(line)
        .into_iter()
        .map(|c| (c.column, c.kind))
        .collect()
}

/// Precision and recall on tests/fixtures/literals: every positive line must be caught and
/// at most one ordinary line (the 40-hex git commit id, which looks like a hex key) flagged.
#[test]
fn literal_corpus() {
    let positives = cases(include_str!(
        "../../../tests/fixtures/literals/positives.txt"
    ));
    let negatives = cases(include_str!(
        "../../../tests/fixtures/literals/negatives.txt"
    ));
    let missed: Vec<&str> = positives
        .iter()
        .copied()
        .filter(|l| literal_candidates(l).is_empty())
        .collect();
    let false_alarms: Vec<&str> = negatives
        .iter()
        .copied()
        .filter(|l| !literal_candidates(l).is_empty())
        .collect();
    let tp = positives.len() - missed.len();
    let precision = tp as f64 / (tp + false_alarms.len()) as f64;
    let recall = tp as f64 / positives.len() as f64;
    println!(
        "literal corpus: {} positives, {} negatives; recall {recall:.3}, precision {precision:.3}; missed {missed:?}; false alarms {false_alarms:?}",
        positives.len(),
        negatives.len()
    );
    assert!(missed.is_empty(), "missed: {missed:#?}");
    assert!(false_alarms.len() <= 1, "false alarms: {false_alarms:#?}");
}

#[test]
fn kinds_and_columns() {
    assert_eq!(
        kinds("      db_password: hunter2"),
        vec![(20, "a password")]
    );
    assert_eq!(
        kinds("  passphrase: \"correct horse battery staple\""),
        vec![(16, "a passphrase")]
    );
    assert_eq!(kinds("    note: Summer2024!")[0].1, "a password");
    assert!(kinds("    key: password").is_empty());
    // Several assignments on a line, in a flow mapping and in a comment.
    assert_eq!(
        kinds("    vars: { p: app/prod, db_password: hunter2, x: y }"),
        vec![(39, "a password")]
    );
    assert_eq!(
        kinds("  # connect with user=admin password=hunter2 for local tests"),
        vec![(38, "a password")]
    );
    assert_eq!(
        kinds("    secret: ${p}/db  # password: hunter2x (the old one)"),
        vec![(34, "a password")]
    );
    assert_eq!(
        kinds("  # the passphrase is correct horse battery staple"),
        vec![(23, "a passphrase")]
    );
    // Without a credential-like name: four plain words, in a value, not in prose.
    assert_eq!(
        kinds("    vars: { note: tundra plank oyster quilt }"),
        vec![(19, "a passphrase")]
    );
    assert!(kinds("  # keep staging database credentials rotated").is_empty());
    assert!(kinds("    app: orders-billing-sync-worker").is_empty());
    assert!(kinds("  # password: stored in the vault under ops").is_empty());
    assert!(kinds("  # the password is rotated by the ops team").is_empty());
}

#[test]
fn candidates_are_redacted() {
    let found = literal_candidates("    token: AKIAZ7Q2X4RT6YB3NMKD");
    assert_eq!(found[0].redacted, "`AKIA…`, 20 characters");
    let found = literal_candidates("      db_password: hunter2");
    assert_eq!(found[0].redacted, "`h…`, 7 characters");
    assert!(
        !format!("{found:?}").contains("hunter2"),
        "not even in Debug"
    );
    let found = literal_candidates("  passphrase: \"correct horse battery staple\"");
    assert_eq!(found[0].redacted, "`corr…`, 28 characters");
    assert_eq!(redact("`pss"), "4 characters");
    assert_eq!(redact("pässwörter"), "10 characters");
}

/// No false alarm on the repository's own manifests and examples: every file under
/// pipeline-examples/ and templates/, the manifests under tests/manifests/ (but the ones that
/// hold a pasted secret on purpose), and every fenced snippet of the README and the book.
#[test]
fn the_repository_s_own_manifests_and_examples_trip_nothing() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in ["pipeline-examples", "templates", "tests/manifests"] {
        walk(&root.join(d), &mut files);
    }
    let mut texts: Vec<(String, String)> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().unwrap().to_string_lossy();
            !(name.starts_with("pasted-") || name.starts_with("literal-"))
        })
        .filter_map(|f| {
            Some((
                f.strip_prefix(root).ok()?.display().to_string(),
                std::fs::read_to_string(f).ok()?,
            ))
        })
        .collect();
    assert!(texts.len() > 40, "the examples are there: {}", texts.len());
    let mut docs = vec![root.join("README.md")];
    walk(&root.join("docs/src"), &mut docs);
    for doc in docs
        .iter()
        .filter(|d| d.extension().is_some_and(|e| e == "md"))
    {
        let mut fenced = String::new();
        let mut inside = false;
        for line in std::fs::read_to_string(doc).unwrap().lines() {
            if line.trim_start().starts_with("```") {
                inside = !inside;
            } else if inside {
                fenced.push_str(line);
            }
            fenced.push('\n');
        }
        texts.push((
            doc.strip_prefix(root).unwrap().display().to_string(),
            fenced,
        ));
    }
    let mut hits = Vec::new();
    for (name, text) in &texts {
        // The book shows a line allowance: what it accepts is not a finding.
        let (allowed, bad) =
            crate::manifest::suppress::line_allowances(std::path::Path::new(name), text);
        assert!(bad.is_empty(), "{name}: {bad:?}");
        for (i, line) in text.lines().enumerate() {
            for c in literal_candidates(line) {
                if allowed
                    .iter()
                    .any(|a| a.covers(std::path::Path::new(name), "literal-value", i + 1, c.column))
                {
                    continue;
                }
                hits.push(format!(
                    "{name}:{}:{}: {} | {line}",
                    i + 1,
                    c.column,
                    c.kind
                ));
            }
        }
    }
    assert!(hits.is_empty(), "{hits:#?}");
}

/// systemd's credential lines: `LoadCredential[Encrypted]=NAME[:PATH]` and `credential_key:`
/// name things and pass; `SetCredential=NAME:VALUE` carries the value itself and is caught.
#[test]
fn systemd_credential_lines() {
    for ok in [
        "# LoadCredentialEncrypted=db-password",
        "# LoadCredential=db-password:/run/credfile/payments/db-password",
        "LoadCredentialEncrypted=api.key:/var/lib/credfile/payments/api.key",
        "    credential_key: host+tpm2",
    ] {
        assert!(kinds(ok).is_empty(), "{ok}: {:?}", kinds(ok));
    }
    for (bad, column) in [
        ("# SetCredential=db-password:opensesame", 17),
        ("SetCredential=db-password:Summer2024!", 15),
        ("    # SetCredential=token:hunter2", 21),
    ] {
        let found = kinds(bad);
        assert_eq!(found.first().map(|f| f.0), Some(column), "{bad}: {found:?}");
    }
}
