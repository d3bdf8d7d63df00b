//! SARIF 2.1.0 output for code scanning (GitHub's `upload-sarif` and other SARIF consumers).
//!
//! One run, the full rule table in `tool.driver.rules` (so every rule has its help text even with
//! no results), and one result per finding with the manifest as the artifact. Relative manifest
//! paths stay relative (code scanning resolves them against the checkout); absolute ones become
//! `file://` URIs. The tests validate this output against the OASIS SARIF 2.1.0 schema.

use std::path::Path;

use serde_json::{Value, json};

use super::{Finding, Level, RULES};

pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

pub fn to_sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": pascal_case(r.id),
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.help },
                "help": { "text": r.help },
                "defaultConfiguration": { "level": r.level.as_str() },
                "properties": { "tags": ["security", "secrets"] },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let index = RULES.iter().position(|r| r.id == f.rule).unwrap_or(0);
            let mut text = f.message.clone();
            if let Some(hint) = &f.hint {
                text.push_str("\nhint: ");
                text.push_str(hint);
            }
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": index,
                "level": match f.level { Level::Error => "error", Level::Warning => "warning" },
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.file) },
                        "region": { "startLine": f.line.max(1), "startColumn": f.column.max(1) },
                    }
                }],
            });
            // A suppression in the manifest (`lint.allow`): SARIF's in-source suppression, so
            // code scanning shows the result as dismissed with the manifest's reason.
            if let Some(reason) = &f.suppressed {
                result["suppressions"] = json!([{ "kind": "inSource", "justification": reason }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "credfile",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    })
}

/// `env-shared-secret` -> `EnvSharedSecret`.
fn pascal_case(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// A URI reference for a path: percent-encoded, `file://` when absolute.
fn uri(path: &Path) -> String {
    let text = path.to_string_lossy();
    let text = text.strip_prefix("./").unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if path.is_absolute() {
        format!("file://{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_encoded() {
        assert_eq!(
            uri(Path::new("deploy/credfile.yaml")),
            "deploy/credfile.yaml"
        );
        assert_eq!(uri(Path::new("./a b.yaml")), "a%20b.yaml");
        assert_eq!(uri(Path::new("/srv/x#1.yaml")), "file:///srv/x%231.yaml");
    }

    #[test]
    fn rule_names() {
        assert_eq!(pascal_case("env-shared-secret"), "EnvSharedSecret");
    }
}
