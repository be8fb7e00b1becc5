//! kube-bundle compiles the kube-apiserver tier of an HA control plane into one signed,
//! reproducible tarball per master.
//!
//! The modules are the pipeline, in order (design.md §1): `config` parses cluster.yaml,
//! `validate` turns it into checked types, `plan` decides per node what to produce. The CLI
//! only wires the stages; nothing below it prints.

pub mod cli;
pub mod diagnostics;
pub mod error;
pub mod source;
pub mod versions;

pub mod config;
pub mod plan;
pub mod validate;
