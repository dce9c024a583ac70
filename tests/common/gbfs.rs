//! Validation of GBFS documents against the official v3.0 JSON schemas in
//! `../shared/gbfs/v3.0` (present in CI; tests say so and skip validation when absent).

use std::path::PathBuf;

use serde_json::Value;

/// Where the official schemas are, if they are on this machine.
pub fn schema_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/gbfs/v3.0");
    dir.is_dir().then_some(dir)
}

/// The schema violations of `doc` as feed `feed`, or `None` when the schemas are absent.
pub fn violations(feed: &str, doc: &Value) -> Option<Vec<String>> {
    let dir = schema_dir()?;
    let path = dir.join(format!("{feed}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    // The schemas' `$id`s carry fragments, which the validator refuses as base URIs; they
    // hold no `$ref`, so the id is not needed to validate.
    if let Some(object) = schema.as_object_mut() {
        object.remove("$id");
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    Some(
        validator
            .iter_errors(doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect(),
    )
}

/// Asserts `doc` is a valid `feed`; says so when the schemas are absent.
#[track_caller]
pub fn assert_valid(feed: &str, doc: &Value) {
    match violations(feed, doc) {
        None => eprintln!(
            "skipped: ../shared/gbfs/v3.0 is absent, {feed} not validated against its schema"
        ),
        Some(errors) => assert!(errors.is_empty(), "{feed} invalid: {errors:#?}\n{doc:#}"),
    }
}
