//! The published JSON Schemas, generated from the output types: `docs/report.schema.json` (what
//! `--output json` prints) and `docs/audit.schema.json` (the audit line). The tests below fail
//! when a committed file differs from what the types generate; `CREDFILE_BLESS=1 cargo test
//! --bin credfile output::schema` rewrites them (docs/src/tests.md). Test-only: the release
//! binary carries no schemars.
//!
//! Two files, not one: the audit line is not an `--output json` document (it goes to a file or
//! the log), so a tool checking stdout against the report schema must not accept one, and a log
//! pipeline checks its lines against the audit schema alone.

use std::path::Path;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Value, json};

use super::audit_line::AuditLine;
use super::types::{Failure, RoundFailed, RunReport, ValidateReport, VerifyReport};
use super::words::SchemaVersion;
use crate::format::SCHEMA_VERSION;

impl JsonSchema for SchemaVersion {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SchemaVersion".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "const": SCHEMA_VERSION })
    }
}

/// `secrets[].source`: the sources a file's value can come from (a `parameters_path:` or
/// `secret_prefix:` entry is expanded into parameters and secrets before any report).
pub fn source(_: &mut SchemaGenerator) -> Schema {
    use crate::manifest::SourceKind as K;
    let kinds = [K::Secret, K::Parameter, K::CiVariable, K::CiVariableFile].map(K::as_str);
    json_schema!({ "type": "string", "enum": kinds })
}

/// `fetch.mode`: the `--fetch` modes.
pub fn fetch_mode(_: &mut SchemaGenerator) -> Schema {
    use crate::fetch::FetchMode as M;
    let modes = [M::Auto, M::Batch, M::Single].map(M::as_str);
    json_schema!({ "type": "string", "enum": modes })
}

/// The commands that take `--output json` and so can print a failure object.
pub fn failure_command(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["apply", "plan", "verify", "whoami", "audit reuse"] })
}

/// The commands that write an audit line.
pub fn audit_command(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["apply", "plan", "verify", "clean", "run"] })
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
}

/// One document of the five `--output json` prints.
fn report_schema() -> Value {
    let mut g = generator();
    let one_of: Vec<Value> = [
        g.subschema_for::<RunReport>(),
        g.subschema_for::<VerifyReport>(),
        g.subschema_for::<Failure>(),
        g.subschema_for::<RoundFailed>(),
        g.subschema_for::<ValidateReport>(),
    ]
    .into_iter()
    .map(Schema::to_value)
    .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://credfile.invalid/report.schema.json",
        "title": "credfile --output json report",
        "description": "What `credfile apply|plan|verify|validate --output json` prints on stdout: the run, verify or validate report, or, when a run (also `whoami`, `audit reuse`) fails before its report, one failure object. No field ever holds a secret value. schema_version changes on incompatible changes. Generated from src/output/types.rs.",
        "oneOf": one_of,
        "$defs": g.take_definitions(true),
    })
}

/// The audit line (`--audit-log`).
fn audit_schema() -> Value {
    let mut root = generator().into_root_schema_for::<AuditLine>().to_value();
    root["$id"] = "https://credfile.invalid/audit.schema.json".into();
    root["title"] = "credfile audit line".into();
    root
}

/// Compares `generated` with the committed file, or rewrites the file with CREDFILE_BLESS=1.
fn check(file: &str, generated: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(generated).expect("a schema serializes")
    );
    if std::env::var_os("CREDFILE_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &text).expect("write the schema");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{file} differs from what src/output/types.rs generates: run `CREDFILE_BLESS=1 cargo test --bin credfile output::schema` and commit it"
    );
}

#[test]
fn the_report_schema_is_generated_from_the_types() {
    check("docs/report.schema.json", &report_schema());
}

#[test]
fn the_audit_schema_is_generated_from_the_types() {
    check("docs/audit.schema.json", &audit_schema());
}

#[test]
fn the_schemas_carry_the_constraints() {
    let report = report_schema();
    let defs = &report["$defs"];
    assert_eq!(defs["File"]["properties"]["mode"]["pattern"], "^0[0-7]{3}$");
    assert_eq!(
        defs["run"]["properties"]["schema_version"]["const"],
        SCHEMA_VERSION
    );
    assert_eq!(defs["run"]["additionalProperties"], false);
    assert_eq!(defs["run"]["properties"]["app"]["minLength"], 1);
    let required = defs["run"]["required"].as_array().unwrap();
    assert!(required.contains(&"caller_arn".into()) && !required.contains(&"round".into()));
    let audit = audit_schema();
    assert_eq!(audit["additionalProperties"], false);
    assert!(
        audit["required"]
            .as_array()
            .unwrap()
            .contains(&"time".into())
    );
}
