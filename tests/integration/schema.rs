//! The JSON Schema of cluster.yaml: shipped in sync with the config types, and checked by an
//! independent validator (Python's jsonschema) against every example and fixture, so what an
//! editor accepts and what kube-bundle's parser accepts are the same shapes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::repo_root;

const SHIPPED_SCHEMA: &str = "docs/cluster.schema.json";

#[test]
fn the_shipped_schema_is_the_one_the_config_types_generate() {
    let shipped = repo_root().join(SHIPPED_SCHEMA);
    let generated = kube_bundle::schema::schema_json();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&shipped, &generated).unwrap();
    }
    let on_disk = fs::read_to_string(&shipped).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{SHIPPED_SCHEMA} is out of date with src/config.rs; rerun with UPDATE_GOLDEN=1 and \
         review the diff"
    );
}

/// Validates each YAML file against the shipped schema with Python's jsonschema; returns
/// the files the validator refused, with its reason.
fn refused_by_python_jsonschema(files: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let script = r#"
import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = list(validator.iter_errors(yaml.safe_load(open(path))))
    print(path + "\t" + ("ok" if not errors else errors[0].message.replace("\n", " ")))
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(repo_root().join(SHIPPED_SCHEMA))
        .args(files)
        .output()
        .expect("python3 runs (.ci/run installs python3-jsonschema and python3-yaml)");
    assert!(
        output.status.success(),
        "the validator failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (path, verdict) = line.split_once('\t')?;
            (verdict != "ok").then(|| (PathBuf::from(path), verdict.to_owned()))
        })
        .collect()
}

fn yaml_files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn an_independent_validator_accepts_both_examples_against_the_shipped_schema() {
    let examples = yaml_files_in(&repo_root().join("examples"));
    assert!(examples.len() >= 2, "{examples:?}");
    assert_eq!(refused_by_python_jsonschema(&examples), []);
}

#[test]
fn an_independent_validator_refuses_the_shapes_kube_bundle_refuses() {
    let bad = repo_root().join("tests/fixtures/bad");
    let shape_errors = [
        "unknown-key",
        "several-unknown-and-missing",
        "unknown-enum-value",
    ];
    let files: Vec<PathBuf> = shape_errors
        .iter()
        .map(|name| bad.join(name).join("cluster.yaml"))
        .collect();
    let refused = refused_by_python_jsonschema(&files);
    assert_eq!(
        refused.iter().map(|(path, _)| path).collect::<Vec<_>>(),
        files.iter().collect::<Vec<_>>(),
        "{refused:?}"
    );
}
