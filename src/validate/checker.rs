//! The Checker every check writes to: it records findings at the value that caused them and
//! parses spanned values through the value types' constructors.

use std::path::{Path, PathBuf};

use serde_saphyr::Location;
use sha2::{Digest, Sha256};

use super::{Finding, Severity, Validated};
use crate::config::Text;
use crate::error::Error;
use crate::model::Cluster;
use crate::source::SourceFile;
use crate::values::AbsPath;

/// A value as shown in a message: escaped, and cut short if it is long.
fn shorten(value: &str) -> String {
    const LIMIT: usize = 80;
    let escaped: String = value.escape_debug().collect();
    match escaped.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!(
            "{}… ({} characters)",
            &escaped[..cut],
            value.chars().count()
        ),
        None => escaped,
    }
}

pub(super) struct Checker<'a> {
    source: &'a SourceFile,
    base_dir: PathBuf,
    findings: Vec<Finding>,
}

impl<'a> Checker<'a> {
    /// Files named in cluster.yaml are relative to the directory that holds it.
    pub(super) fn new(source: &'a SourceFile) -> Self {
        let base_dir = source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Self {
            source,
            base_dir,
            findings: Vec::new(),
        }
    }

    pub(super) fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The cluster `assemble` builds from the checks' results, with the warnings, if no
    /// check recorded an error; otherwise every error. `assemble` sees a `None` only where a
    /// check failed, which recorded an error, so its `None` never decides the outcome alone.
    pub(super) fn finish(
        self,
        assemble: impl FnOnce() -> Option<Cluster>,
    ) -> Result<Validated, Error> {
        if self.has_errors() {
            return Err(into_error(self.findings));
        }
        match assemble() {
            Some(cluster) => Ok(Validated {
                cluster,
                warnings: self.findings,
                source_sha256: hex::encode(Sha256::digest(self.source.text.as_bytes())),
            }),
            None => Err(into_error(self.findings)),
        }
    }
}

impl Checker<'_> {
    pub(super) fn push(
        &mut self,
        severity: Severity,
        at: Location,
        field: &str,
        message: String,
        help: &str,
    ) {
        self.findings.push(Finding {
            severity,
            field: field.to_owned(),
            message,
            help: help.to_owned(),
            source: self.source.named_source(),
            span: self.source.span_at(at),
        });
    }

    pub(super) fn error(&mut self, at: Location, field: &str, message: String, help: &str) {
        self.push(Severity::Error, at, field, message, help);
    }

    pub(super) fn warn(&mut self, at: Location, field: &str, message: String, help: &str) {
        self.push(Severity::Warning, at, field, message, help);
    }

    /// Runs `parse` on a spanned value; on failure records an error at the value.
    pub(super) fn parse<T>(
        &mut self,
        field: &str,
        value: &Text,
        what: &str,
        help: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(&value.value) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                let shown = shorten(&value.value);
                self.error(
                    value.referenced,
                    field,
                    format!("\"{shown}\" is not {what}: {why}"),
                    help,
                );
                None
            }
        }
    }

    pub(super) fn path(
        &mut self,
        field: &str,
        value: Option<&Text>,
        default: &str,
    ) -> Option<AbsPath> {
        match value {
            None => AbsPath::parse(default).ok(),
            Some(value) => self.parse(
                field,
                value,
                "a usable path",
                "use an absolute path made of letters, digits and / . _ - + @ only; it is \
                 written unquoted into the unit and the installer",
                AbsPath::parse,
            ),
        }
    }

    /// A file named relative to cluster.yaml that must exist now.
    pub(super) fn input_file(&mut self, field: &str, value: &Text) -> Option<PathBuf> {
        if value.value.is_empty() || value.value.contains('\0') {
            self.error(
                value.referenced,
                field,
                "the file name is empty or holds a NUL".into(),
                "name a file, relative to cluster.yaml or absolute",
            );
            return None;
        }
        let path = self.base_dir.join(&value.value);
        if path.is_file() {
            Some(path)
        } else {
            let shown = path.display().to_string();
            self.error(
                value.referenced,
                field,
                format!("file \"{shown}\" does not exist or is not a regular file"),
                "paths are relative to the directory that holds cluster.yaml",
            );
            None
        }
    }
}

fn into_error(findings: Vec<Finding>) -> Error {
    Error::InvalidConfig(
        findings
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .map(miette::Report::new)
            .collect(),
    )
}
