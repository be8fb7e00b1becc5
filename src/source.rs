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
pub(crate) const MAX_SNIPPET_LINE: usize = 400;

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
            let report = serde_saphyr::miette::to_miette_report_with_options(
                &err, &self.text, &name, options,
            );
            let line = err
                .location()
                .and_then(|at| usize::try_from(at.line()).ok())
                .and_then(|line| self.text.lines().nth(line.checked_sub(1)?))
                .unwrap_or_default();
            let help = parse_help(&report.to_string(), line);
            Error::InvalidConfig(vec![miette::Report::new(WithHelp { report, help })])
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

/// How to fix what the YAML parser refused, for the line it refused. Every parser message
/// gets one: the parser says what is wrong, this says what to write instead.
fn parse_help(message: &str, line: &str) -> String {
    let entry = line.trim_start().trim_start_matches("- ");
    let (key, value) = entry
        .split_once(':')
        .map_or(("", ""), |(key, value)| (key.trim(), value.trim()));
    let value = value.split(" #").next().unwrap_or_default();
    if message.contains("must be quoted") {
        if key == "kubernetesVersion" {
            return format!(
                "write the whole release, which reads as text: `kubernetesVersion: v{}.0` \
                 (a bare {value} reads as a number)",
                value.trim_start_matches('v')
            );
        }
        if !key.is_empty() {
            return format!(
                "quote it: `{key}: \"{value}\"`; kube-bundle reads this value as text (flag \
                 values in extraArgs included), and unquoted YAML would make it a number or \
                 a boolean"
            );
        }
        return "quote the value (\"…\"), so YAML reads it as text".into();
    }
    if message.contains("unknown variant") {
        return "use one of the values the message lists, spelled as shown".into();
    }
    if message.contains("from_str_multiple") || message.contains("multiple documents") {
        return "cluster.yaml holds one YAML document: remove the `---` line and what a \
                second document adds"
            .into();
    }
    if message.contains("duplicate") {
        return "keep one of the two entries; YAML gives a key one value".into();
    }
    "the example `kube-bundle init` writes shows every key with its kind of value, and \
     `kube-bundle schema` prints the JSON Schema editors check cluster.yaml with"
        .into()
}

/// A parser report with the help line kube-bundle adds; everything else is the report's.
#[derive(Debug)]
struct WithHelp {
    report: miette::Report,
    help: String,
}

/// The parser's advice to its own caller, which a user cannot act on.
const PARSER_API_ADVICE: &str = ", set DuplicateKeyPolicy in Options if acceptable";

impl std::fmt::Display for WithHelp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.report.to_string().replace(PARSER_API_ADVICE, ""))
    }
}

impl std::error::Error for WithHelp {}

impl miette::Diagnostic for WithHelp {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.report.code()
    }

    fn severity(&self) -> Option<miette::Severity> {
        self.report.severity()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(&self.help))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.report.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let labels = self.report.labels()?.map(|label| {
            let text = label
                .label()
                .map(|text| text.replace(PARSER_API_ADVICE, ""));
            if label.primary() {
                miette::LabeledSpan::new_primary_with_span(text, *label.inner())
            } else {
                miette::LabeledSpan::new_with_span(text, *label.inner())
            }
        });
        Some(Box::new(labels))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn miette::Diagnostic> + 'a>> {
        self.report.related()
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
    use std::path::Path;

    use super::{SourceFile, key_material_kind, span_for_line_col};
    use crate::config::RawCluster;
    use crate::error::Error;

    fn parse_failure(text: &str) -> String {
        let source = SourceFile::new(Path::new("cluster.yaml"), text.to_owned());
        match source.parse::<RawCluster>() {
            Err(Error::InvalidConfig(reports)) => reports
                .iter()
                .map(|r| crate::diagnostics::render(r.as_ref()))
                .collect(),
            Err(other) => panic!("expected a parse failure, got {other}"),
            Ok(_) => panic!("expected a parse failure, got a cluster"),
        }
    }

    #[test]
    fn every_parser_message_comes_with_a_help_line_saying_what_to_write() {
        let example = include_str!("../examples/cluster.yaml");
        let version = example
            .lines()
            .find(|l| l.starts_with("kubernetesVersion:"))
            .expect("the example names a version");
        let bare_version = parse_failure(&example.replacen(version, "kubernetesVersion: 1.30", 1));
        assert!(
            bare_version.contains(
                "help: write the whole release, which reads as text: `kubernetesVersion: v1.30.0`"
            ),
            "{bare_version}"
        );
        let unquoted_flag =
            parse_failure(&example.replacen("profiling: \"false\"", "profiling: false", 1));
        assert!(
            unquoted_flag.contains("help: quote it: `profiling: \"false\"`"),
            "{unquoted_flag}"
        );
        assert!(unquoted_flag.contains("cluster.yaml:"), "{unquoted_flag}");
        let bad_variant =
            parse_failure(&example.replacen("provider: secretbox", "provider: rot13", 1));
        assert!(
            bad_variant.contains("help: use one of the values"),
            "{bad_variant}"
        );
        let wrong_kind = parse_failure(&example.replacen("masters:", "masters: 3\nunused:", 1));
        assert!(wrong_kind.contains("help: "), "{wrong_kind}");
    }

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
