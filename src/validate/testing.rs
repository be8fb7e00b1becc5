//! Helpers for the checks' unit tests: the example cluster.yaml, edited one line at a time,
//! run through `config` and `validate`.

use std::path::Path;

use super::{ValidateOptions, Validated, validate};
use crate::error::Error;
use crate::source::SourceFile;

/// The example cluster.yaml `kube-bundle init` writes, read from the template itself so that
/// these tests check exactly what users start from.
pub const EXAMPLE_CLUSTER_YAML: &str = include_str!("../../templates/cluster.yaml");

/// The example with `old` replaced by `new`; panics if `old` is missing so a test
/// cannot silently check the unmodified example.
pub fn example_with(old: &str, new: &str) -> String {
    assert!(EXAMPLE_CLUSTER_YAML.contains(old), "example lacks {old:?}");
    EXAMPLE_CLUSTER_YAML.replacen(old, new, 1)
}

/// The example with its controllerManager and scheduler sections replaced by `sections`
/// (empty: an apiserver-only cluster).
pub fn example_with_sections(sections: &str) -> String {
    let start = EXAMPLE_CLUSTER_YAML
        .find("# kube-controller-manager on every master")
        .expect("the example has a controllerManager section");
    let end = EXAMPLE_CLUSTER_YAML
        .find("\nbinaries:")
        .expect("the example has a binaries section");
    format!(
        "{}{sections}{}",
        &EXAMPLE_CLUSTER_YAML[..start],
        &EXAMPLE_CLUSTER_YAML[end..]
    )
}

pub fn run(yaml: &str, options: ValidateOptions) -> Result<Validated, Vec<String>> {
    let source = SourceFile::new(Path::new("cluster.yaml"), yaml.to_owned());
    let raw = match crate::config::parse(&source) {
        Ok(raw) => raw,
        Err(Error::InvalidConfig(reports)) => {
            return Err(reports.iter().map(ToString::to_string).collect());
        }
        Err(other) => return Err(vec![other.to_string()]),
    };
    validate(raw, &source, options).map_err(|err| match err {
        Error::InvalidConfig(reports) => reports.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    })
}

/// Asserts that the edited example fails with one error containing every fragment.
#[track_caller]
pub fn rejects(old: &str, new: &str, fragments: &[&str]) {
    rejects_yaml(&example_with(old, new), fragments);
}

#[track_caller]
pub fn rejects_yaml(yaml: &str, fragments: &[&str]) {
    let errors = run(yaml, ValidateOptions::default())
        .err()
        .unwrap_or_else(|| panic!("accepted: {fragments:?}"));
    assert!(
        errors
            .iter()
            .any(|e| fragments.iter().all(|f| e.contains(f))),
        "no error contains {fragments:?}: {errors:#?}"
    );
}

pub fn warnings(yaml: &str) -> Vec<String> {
    let validated = run(yaml, ValidateOptions::default()).expect("valid");
    validated.warnings.iter().map(ToString::to_string).collect()
}
