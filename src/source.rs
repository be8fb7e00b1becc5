//! The one place that knows how cluster.yaml text becomes raw serde values.
//!
//! In: a path. Out: a [`SourceFile`] (path + text, kept for pointing diagnostics at values)
//! and the deserialized raw type. Parse errors (YAML syntax, unknown or duplicate keys,
//! wrong types) come back as pointed diagnostics with file:line:column and a snippet.
//! The YAML crate (serde-saphyr) stays behind this module so it can be swapped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use serde::de::DeserializeOwned;
use serde_saphyr::{Budget, Location, Options};

use crate::error::Error;

/// Lines longer than this are not quoted in diagnostics.
const MAX_SNIPPET_LINE: usize = 400;

/// Config files are small; anything bigger is a mistake or an attack on the parser.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A config file kept in memory so diagnostics can quote it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl SourceFile {
    /// Reads `path`, refusing files too large to be a cluster description.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let metadata = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::Input(format!(
                "{}: no such file; write one with `kube-bundle init` or name yours as the \
                 CONFIG argument",
                path.display()
            )),
            _ => Error::io(path, source),
        })?;
        if metadata.len() > MAX_CONFIG_BYTES {
            return Err(Error::Input(format!(
                "{}: file is {} bytes; a cluster description is at most {MAX_CONFIG_BYTES} bytes",
                path.display(),
                metadata.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
        let text = String::from_utf8(bytes).map_err(|err| {
            Error::Input(format!(
                "{}: not UTF-8 text (invalid byte at offset {}); save the file as UTF-8",
                path.display(),
                err.utf8_error().valid_up_to()
            ))
        })?;
        // A file with neither key is no cluster description at all, and may be anything
        // (a hex or age key): it is named, never quoted.
        let kind = key_material_kind(&text).or_else(|| {
            (!(text.contains("apiVersion") && text.contains("kind")))
                .then_some("no `apiVersion` and `kind`, so it is not a cluster description")
        });
        if let Some(kind) = kind {
            // Diagnostics quote lines of the file; these lines must never reach a terminal.
            return Err(Error::Input(format!(
                "{}: this file holds {kind}; kube-bundle does not quote it. Name your \
                 cluster.yaml as the CONFIG argument",
                path.display()
            )));
        }
        Ok(Self::new(path, text))
    }

    pub fn new(path: &Path, text: String) -> Self {
        Self {
            path: path.to_path_buf(),
            text: text.into(),
        }
    }

    /// The name diagnostics show for this file.
    pub fn display_name(&self) -> String {
        self.path.display().to_string()
    }

    pub fn named_source(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(self.display_name(), Arc::clone(&self.text))
    }

    /// Deserializes the whole file, with duplicate keys refused and alias expansion bounded.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        // A config needs no more than a few thousand nodes; this stops alias bombs early.
        let mut budget = Budget::default();
        budget.max_events = 200_000;
        budget.max_nodes = 100_000;
        budget.max_depth = 32;
        let mut options = Options::default();
        options.budget = Some(budget);
        // `name: 42` or `dnsDomain: true` is a mistake, not a string: make users quote it.
        options.no_schema = true;
        options.reject_unsupported_tags = true;
        serde_saphyr::from_str_with_options(&self.text, options).map_err(|err| {
            let name = self.display_name();
            let options = serde_saphyr::render_options! { source_name: Some(name.as_str()) };
            Error::InvalidConfig(vec![serde_saphyr::miette::to_miette_report_with_options(
                &err, &self.text, &name, options,
            )])
        })
    }

    /// The byte span of the value that starts at `location`, for a diagnostic label.
    /// Unknown locations (values that came through serde buffering) get no label.
    pub fn span_at(&self, location: Location) -> Option<SourceSpan> {
        let line = usize::try_from(location.line()).ok()?;
        let column = usize::try_from(location.column()).ok()?;
        let offset = span_for_line_col(&self.text, line, column)?;
        let rest = &self.text[offset..];
        // A snippet of a huge line would flood the terminal; the message names the field.
        let line_end = rest.find('\n').unwrap_or(rest.len());
        if line_end > MAX_SNIPPET_LINE {
            return None;
        }
        let len = rest.find(['\n', ',', '}', ']']).unwrap_or(rest.len());
        Some(SourceSpan::new(
            offset.into(),
            rest[..len].trim_end().len().max(1),
        ))
    }
}

/// Shortest base64 text of 32 bytes (a 256-bit key) without padding.
const KEY_BASE64_CHARS: usize = 43;

/// What key material `text` holds, if any: a PEM block, or base64 of 32 or more
/// random-looking bytes (an encryption key, a DER key pasted as text). A cluster
/// description never holds either.
fn key_material_kind(text: &str) -> Option<&'static str> {
    if text.contains("PRIVATE KEY-----") {
        return Some("a PEM private key");
    }
    if text.contains("-----BEGIN ") {
        return Some("a PEM block (a certificate or key)");
    }
    let is_base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/');
    let random_looking = |run: &str| {
        run.len() >= KEY_BASE64_CHARS
            && run.contains(|c: char| c.is_ascii_uppercase())
            && run.contains(|c: char| c.is_ascii_lowercase())
            && run.contains(|c: char| c.is_ascii_digit())
    };
    text.split(|c: char| !is_base64(c))
        .any(random_looking)
        .then_some("what looks like key material (a long base64 string)")
}

/// Converts a 1-based line and (character) column into a byte offset into `text`.
fn span_for_line_col(text: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 || column == 0 {
        return None;
    }
    let line_start = if line == 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map(|(index, _)| index + 1)?
    };
    let line_text = text[line_start..].split('\n').next().unwrap_or_default();
    let in_line = line_text
        .char_indices()
        .nth(column - 1)
        .map_or(line_text.len(), |(index, _)| index);
    Some(line_start + in_line)
}

#[cfg(test)]
mod tests {
    use super::{key_material_kind, span_for_line_col};

    #[test]
    fn key_material_is_recognised_and_configs_are_not() {
        let pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB...\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(key_material_kind(pem), Some("a PEM private key"));
        let secret = "secret: q3Vh7cX9kP2mN8rT5wY1zA4bC6dE0fG9hJ2kL5mN8pQ=\n";
        assert!(key_material_kind(secret).is_some());
        let config = include_str!("../examples/cluster.yaml");
        assert_eq!(key_material_kind(config), None);
        let seed = include_str!("../examples/seed-ha.yaml");
        assert_eq!(key_material_kind(seed), None);
        // Long but not random: a repeated letter, a path.
        assert_eq!(key_material_kind(&"a".repeat(200)), None);
        assert_eq!(
            key_material_kind("binDir: /opt/kubernetes/bin/current/release/x86/amd/v1"),
            None
        );
    }

    #[test]
    fn line_and_column_map_to_byte_offsets() {
        let text = "a: 1\nbé: x\n";
        assert_eq!(span_for_line_col(text, 1, 1), Some(0));
        assert_eq!(span_for_line_col(text, 2, 1), Some(5));
        // Columns count characters, so the 'x' after a two-byte 'é' is at byte 10.
        assert_eq!(span_for_line_col(text, 2, 5), Some(10));
        assert_eq!(span_for_line_col(text, 9, 1), None);
        assert_eq!(span_for_line_col(text, 0, 1), None);
    }
}
