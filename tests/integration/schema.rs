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

#[test]
fn schema_prints_the_shipped_schema_and_init_writes_it_beside_cluster_yaml() {
    let shipped = fs::read_to_string(repo_root().join(SHIPPED_SCHEMA)).unwrap();
    let printed = crate::harness::kube_bundle(&repo_root(), &["schema"]);
    printed.code(0);
    assert_eq!(printed.stdout(), shipped);

    let dir = tempfile::tempdir().unwrap();
    crate::harness::kube_bundle(dir.path(), &["init", "site"])
        .code(0)
        .stdout_has("cluster.schema.json");
    let written = dir.path().join("site");
    let first_line = fs::read_to_string(written.join("cluster.yaml")).unwrap();
    assert_eq!(
        first_line.lines().next(),
        Some("# yaml-language-server: $schema=cluster.schema.json")
    );
    assert_eq!(
        fs::read_to_string(written.join("cluster.schema.json")).unwrap(),
        shipped
    );
    // The example in the repository points at the same schema, through a link.
    assert_eq!(
        fs::read_to_string(repo_root().join("examples/cluster.schema.json")).unwrap(),
        shipped
    );

    // A schema the operator already has is theirs: kept, and init says so.
    fs::remove_file(written.join("cluster.yaml")).unwrap();
    fs::write(written.join("cluster.schema.json"), "{}").unwrap();
    crate::harness::kube_bundle(dir.path(), &["init", "site"])
        .code(0)
        .stdout_has("kept the existing");
    assert_eq!(
        fs::read_to_string(written.join("cluster.schema.json")).unwrap(),
        "{}"
    );
}
