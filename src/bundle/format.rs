//! The bundle's data format, read by `verify` and `diff` and written by `assemble`: a
//! leaf module, so that the readers depend on the format and never on the builder.
//!
//! Format 2 added what `diff` used to recover from rendered text: the unit each installed
//! file restarts, and every unit's flags. Format 3 names every unit a file restarts, since
//! one file (a CA, the service-account key) can be read by several components. Format 1
//! and 2 bundles (earlier releases) still verify.

use std::collections::BTreeMap;

/// What this release writes.
pub const FORMAT_VERSION: u32 = 3;
/// Bundles of an earlier release: one restart unit per file.
pub const FORMAT_VERSION_2: u32 = 2;
/// Bundles of an earlier release: no `restarts`, no `unitFlags`.
pub const FORMAT_VERSION_1: u32 = 1;

/// bundle.json: where a bundle came from and what it holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provenance {
    pub format_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub cluster: String,
    pub node: String,
    pub node_ip: String,
    pub kubernetes_version: String,
    pub config_sha256: String,
    pub bundle_id: String,
    /// Every host a file in this bundle may name: the cluster's own masters, endpoint,
    /// etcd members and service names. `verify` checks the air gap against it.
    pub allowed_hosts: Vec<String>,
    /// Every file but bundle.json and SHA256SUMS, by path under the node directory.
    pub files: BTreeMap<String, FileRecord>,
    /// From format 2: every installed file (its path on the node) → what install.sh
    /// restarts when the file changes: one unit in format 2, every unit in format 3.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restarts: BTreeMap<String, RestartUnits>,
    /// From format 2: every unit kube-bundle renders a command line for → its flags, by name,
    /// unquoted (as the program receives them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unit_flags: BTreeMap<String, BTreeMap<String, String>>,
}

/// The units one file restarts, as bundle.json records them: a name in format 2, the sorted
/// list of names in format 3 (one shape per format, which `verify` checks).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum RestartUnits {
    One(String),
    Several(Vec<String>),
}

impl RestartUnits {
    pub fn units(&self) -> &[String] {
        match self {
            Self::One(unit) => std::slice::from_ref(unit),
            Self::Several(units) => units,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecord {
    pub sha256: String,
    pub mode: String,
    pub size: u64,
}

pub const PROVENANCE_FILE: &str = "bundle.json";
pub const CHECKSUM_FILE: &str = "SHA256SUMS";
/// Where a bundle keeps the files it installs, each at its path on the node.
pub const ROOTFS: &str = "rootfs";
/// The unit of the kube-apiserver, whose flags `diff` reports.
pub const APISERVER_UNIT: &str = "kube-apiserver.service";

/// A SHA256SUMS file, as `sha256sum -c` reads it: one `<hex digest>  <name>` line per
/// `(name, digest)` entry, sorted by name so the same files always give the same bytes.
/// The one writer of the format: the list inside every bundle and the output folder's.
pub fn checksums_file<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut entries: Vec<(&str, &str)> = entries.into_iter().collect();
    entries.sort_unstable();
    entries
        .into_iter()
        .map(|(name, digest)| format!("{digest}  {name}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksums_file_is_sorted_by_name_in_sha256sum_format() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let text = checksums_file([("z.tar.gz", a.as_str()), ("m.tar.gz", b.as_str())]);
        assert_eq!(text, format!("{b}  m.tar.gz\n{a}  z.tar.gz\n"));
    }
}
