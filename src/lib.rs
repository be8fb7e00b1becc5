//! kube-bundle compiles the kube-apiserver tier of an HA control plane into one signed,
//! reproducible tarball per master.
//!
//! The modules are the pipeline, in order: `config` parses cluster.yaml, `validate` turns
//! it into the checked [`model::Cluster`] (made of [`values`] types), `plan` decides per
//! node what to produce, `pki` issues or reuses certificates kept in `secrets`. `cli` is
//! the command line's shape and `commands` wires the stages per command; nothing below
//! them prints.

pub mod cli;
pub mod commands;
pub mod diagnostics;
pub mod error;
pub mod source;
pub mod versions;

pub mod bundle;
pub mod certificate;
pub mod config;
pub mod diff;
pub mod encryption;
pub mod keys;
pub mod model;
pub mod output;
pub mod pki;
pub mod plan;
pub mod render;
pub mod schema;
pub mod secrets;
pub mod sign;
pub mod validate;
pub mod values;
pub mod verify;

use std::path::Path;

/// config → validate: the start of every command that reads cluster.yaml.
pub fn load_cluster(
    path: &Path,
    options: validate::ValidateOptions,
) -> Result<validate::Validated, error::Error> {
    let source = source::SourceFile::read(path)?;
    validate_source(&source, options)
}

/// config → validate on text already in memory; the fuzzers enter here.
pub fn validate_source(
    source: &source::SourceFile,
    options: validate::ValidateOptions,
) -> Result<validate::Validated, error::Error> {
    let raw = config::parse(source)?;
    validate::validate(raw, source, options)
}
