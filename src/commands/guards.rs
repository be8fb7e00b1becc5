//! What the bundles already in the output say, and the guards a build checks against
//! them before it writes anything.
//!
//! The previous generation is read from each node's bundle.json (the provenance every
//! bundle carries, near the start of the tarball), so outputs of earlier releases are
//! guarded too. Two changes that cannot be undone by installing the previous bundles
//! again are refused unless the operator names them with a flag: a Kubernetes minor
//! that goes back, or forward by more than one (upstream upgrades one minor at a time),
//! and a new service-account issuer or cluster domain (every token issued so far names
//! the old issuer). What a build ships is also compared with what each node has, so a
//! certificate `certs renew` replaced is reported as renewed rather than reused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use serde::Deserialize;

use super::{bundled_nodes, write_err};
use crate::bundle::format::{APISERVER_UNIT, PROVENANCE_FILE};
use crate::error::Error;
use crate::model::Cluster;
use crate::plan::{Plan, Role};
use crate::values::KubeVersion;

/// The apiserver flag that names the service-account issuer.
const ISSUER_FLAG: &str = "service-account-issuer";
/// The service name every bundle's allowed hosts carry with the cluster domain after it.
const KUBERNETES_SERVICE: &str = "kubernetes.default.svc.";
/// More than any bundle.json kube-bundle writes: a larger one is not read.
const MAX_PROVENANCE_BYTES: u64 = 16 << 20;

/// Per node, what its bundle in the output carries; nodes without one are absent.
#[derive(Debug, Default)]
pub(super) struct PreviousGeneration {
    nodes: BTreeMap<String, ShippedBundle>,
}

#[derive(Debug)]
struct ShippedBundle {
    kubernetes_version: Option<KubeVersion>,
    /// The apiserver's `--service-account-issuer`; bundles of clients, and of releases
    /// before the unit's flags were recorded, have none.
    issuer: Option<String>,
    /// The cluster domain, read from the kubernetes service's name among the hosts the
    /// bundle may name.
    dns_domains: BTreeSet<String>,
    /// sha256 of every file the bundle holds.
    file_digests: BTreeSet<String>,
}

/// The part of bundle.json the guards read. Unknown fields are ignored, so bundles of a
/// later release are still compared.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordedProvenance {
    cluster: String,
    kubernetes_version: String,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    files: BTreeMap<String, RecordedFile>,
    #[serde(default)]
    unit_flags: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct RecordedFile {
    sha256: String,
}

impl PreviousGeneration {
    /// Every bundle of cluster `cluster` in `output`. A bundle whose bundle.json cannot be
    /// read fails closed: a truncated copy or a full disk must not let a downgrade through.
    /// Only with both overrides, which say the guards are not wanted, is it left out with a
    /// note.
    pub(super) fn read(
        output: &Path,
        cluster: &str,
        overrides: Overrides,
        err: &mut dyn Write,
    ) -> Result<Self, Error> {
        let mut nodes = BTreeMap::new();
        for node in bundled_nodes(output)? {
            let tarball = output.join(format!("{node}.tar.gz"));
            let recorded = match read_provenance(&tarball, &node) {
                Ok(recorded) => recorded,
                Err(why) => {
                    let shown = tarball.display().to_string().escape_debug().to_string();
                    if overrides.allow_version_skew && overrides.allow_issuer_change {
                        write_err(
                            err,
                            &format!(
                                "note: {shown}: its {PROVENANCE_FILE} cannot be read ({why}); \
                                 this build is not compared with it\n"
                            ),
                        )?;
                        continue;
                    }
                    return Err(Error::Input(format!(
                        "{shown}: its {PROVENANCE_FILE} cannot be read ({why}), so this build \
                         cannot be checked against it for a version skew or a new issuer; \
                         move the file out of the output, or pass --allow-version-skew and \
                         --allow-issuer-change to build without those checks"
                    )));
                }
            };
            // Another cluster's bundles are no previous generation of this one (the
            // output's identity check speaks about them).
            if recorded.cluster == cluster {
                nodes.insert(node, ShippedBundle::from(recorded));
            }
        }
        Ok(Self { nodes })
    }

    /// Whether `node`'s bundle in the output holds a file with exactly `content`; `None`
    /// when the output has no bundle of that node to compare with.
    pub(super) fn shipped(&self, node: &str, content: &[u8]) -> Option<bool> {
        let bundle = self.nodes.get(node)?;
        Some(
            bundle
                .file_digests
                .contains(&crate::sign::sha256_hex(content)),
        )
    }

    /// One line for `--verbose`: which versions the output holds.
    pub(super) fn describe(&self) -> String {
        if self.nodes.is_empty() {
            return "previous generation: none (no bundles of this cluster in the output)".into();
        }
        let mut by_version: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (node, bundle) in &self.nodes {
            let version = bundle
                .kubernetes_version
                .as_ref()
                .map_or_else(|| "an unknown version".to_owned(), ToString::to_string);
            by_version.entry(version).or_default().push(node);
        }
        let parts: Vec<String> = by_version
            .iter()
            .map(|(version, nodes)| {
                let names: Vec<String> =
                    nodes.iter().map(|n| n.escape_debug().to_string()).collect();
                format!("{version} on {}", names.join(", "))
            })
            .collect();
        format!("previous generation: {}", parts.join("; "))
    }
}

impl From<RecordedProvenance> for ShippedBundle {
    fn from(recorded: RecordedProvenance) -> Self {
        Self {
            kubernetes_version: KubeVersion::parse(&recorded.kubernetes_version).ok(),
            issuer: recorded
                .unit_flags
                .get(APISERVER_UNIT)
                .and_then(|flags| flags.get(ISSUER_FLAG))
                .cloned(),
            dns_domains: recorded
                .allowed_hosts
                .iter()
                .filter_map(|host| host.strip_prefix(KUBERNETES_SERVICE))
                .map(str::to_owned)
                .collect(),
            file_digests: recorded.files.into_values().map(|f| f.sha256).collect(),
        }
    }
}

/// How much of a bundle's decompressed stream is read looking for its bundle.json.
const MAX_SCANNED_BYTES: u64 = 16 * 1024 * 1024;

/// `<node>/bundle.json` from a tarball, read only as far as that entry: the writer sorts
/// entries, so it comes before the large files.
fn read_provenance(tarball: &Path, node: &str) -> Result<RecordedProvenance, String> {
    // A FIFO or a device named like a bundle would block or never end.
    // Nor is a link followed: it may point anywhere, secrets/ included.
    let metadata = std::fs::symlink_metadata(tarball).map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("it is not a regular file".into());
    }
    let file = std::fs::File::open(tarball).map_err(|e| e.to_string())?;
    // bundle.json comes within the first entries; a gzip bomb stops here.
    let decompressed =
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)).take(MAX_SCANNED_BYTES);
    let mut archive = tar::Archive::new(decompressed);
    let wanted = format!("{node}/{PROVENANCE_FILE}");
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        // Entries are sorted: past the name, it is not there.
        if path.as_str() > wanted.as_str() {
            break;
        }
        if path != wanted {
            continue;
        }
        let size = entry.header().size().map_err(|e| e.to_string())?;
        if size > MAX_PROVENANCE_BYTES {
            return Err(format!("it is {size} bytes"));
        }
        let mut text = String::new();
        entry
            .take(MAX_PROVENANCE_BYTES)
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        return serde_json::from_str(&text).map_err(|e| e.to_string());
    }
    Err(format!("the archive has no {wanted}"))
}

/// The guards the command line overrides.
#[derive(Debug, Clone, Copy)]
pub(super) struct Overrides {
    pub allow_version_skew: bool,
    pub allow_issuer_change: bool,
}

/// One risky change against the previous generation.
struct Concern {
    /// The change and what it breaks.
    what: String,
    /// What to do instead.
    instead: String,
    flag: &'static str,
    allowed: bool,
}

/// Refuses, all in one message, each risky change against the previous generation that
/// its flag does not allow; returns a warning line for each one that a flag allowed.
pub(super) fn check(
    previous: &PreviousGeneration,
    cluster: &Cluster,
    plan: &Plan,
    overrides: Overrides,
) -> Result<Vec<String>, Error> {
    let concerns: Vec<Concern> = [
        version_skew(previous, &cluster.kubernetes_version).map(|(what, instead)| Concern {
            what,
            instead,
            flag: "--allow-version-skew",
            allowed: overrides.allow_version_skew,
        }),
        issuer_change(previous, cluster, plan).map(|(what, instead)| Concern {
            what,
            instead,
            flag: "--allow-issuer-change",
            allowed: overrides.allow_issuer_change,
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let refused: Vec<String> = concerns
        .iter()
        .filter(|c| !c.allowed)
        .map(|c| {
            format!(
                "refusing to build: {}. {}; or pass {} if you mean it",
                c.what, c.instead, c.flag
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(Error::Input(refused.join("\n")));
    }
    Ok(concerns
        .iter()
        .map(|c| format!("warning: {}; building anyway ({})\n", c.what, c.flag))
        .collect())
}

/// (major, minor) of a version: what upstream's skew policy counts.
fn minor_of(version: &KubeVersion) -> (u64, u64) {
    (version.major(), version.minor())
}

/// A downgrade of the minor against the newest bundle, or a step of more than one minor
/// against the oldest: (what happens, what to do instead).
fn version_skew(previous: &PreviousGeneration, wanted: &KubeVersion) -> Option<(String, String)> {
    let versions: Vec<(&str, &KubeVersion)> = previous
        .nodes
        .iter()
        .filter_map(|(node, b)| b.kubernetes_version.as_ref().map(|v| (node.as_str(), v)))
        .collect();
    let carried_by = |minor: (u64, u64)| -> (String, String) {
        let nodes: Vec<&str> = versions
            .iter()
            .filter(|(_, v)| minor_of(v) == minor)
            .map(|(node, _)| *node)
            .collect();
        let shown = versions
            .iter()
            .find(|(_, v)| minor_of(v) == minor)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        (shown, nodes.join(", "))
    };
    let newest = versions.iter().map(|(_, v)| minor_of(v)).max()?;
    let oldest = versions.iter().map(|(_, v)| minor_of(v)).min()?;
    let target = minor_of(wanted);
    if target < newest {
        let (old, nodes) = carried_by(newest);
        return Some((
            format!(
                "kubernetesVersion {wanted} is an older minor than {old}, which the bundles \
                 in the output carry ({nodes}): Kubernetes does not support downgrading the \
                 control plane's minor version (etcd may already hold objects in a form only \
                 the newer minor reads)"
            ),
            format!(
                "Keep kubernetesVersion at v{}.{} or later",
                newest.0, newest.1
            ),
        ));
    }
    if target.0 != oldest.0 || target.1 > oldest.1 + 1 {
        let (old, nodes) = carried_by(oldest);
        let steps = target.1.saturating_sub(oldest.1);
        return Some((
            format!(
                "kubernetesVersion {wanted} is {steps} minor versions after {old}, which the \
                 bundles in the output carry ({nodes}): Kubernetes upgrades the control plane \
                 one minor version at a time, every master on one minor before the next"
            ),
            format!(
                "Build and install v{}.{} on every master first, then each minor after it",
                oldest.0,
                oldest.1 + 1
            ),
        ));
    }
    None
}

/// A new service-account issuer or cluster domain against any bundle in the output:
/// (what happens, what to do instead).
fn issuer_change(
    previous: &PreviousGeneration,
    cluster: &Cluster,
    plan: &Plan,
) -> Option<(String, String)> {
    let new_domain = cluster.network.dns_domain.to_string();
    let new_issuer = plan
        .nodes
        .values()
        .find(|node| node.role == Role::Master)
        .and_then(|node| node.flags.get(ISSUER_FLAG))
        .map(|flag| flag.value.clone());
    let mut old_issuer = None;
    let mut old_domain = None;
    let mut nodes = Vec::new();
    for (node, bundle) in &previous.nodes {
        let issuer = bundle
            .issuer
            .as_ref()
            .filter(|old| new_issuer.as_ref().is_some_and(|new| new != *old));
        let domain = bundle
            .dns_domains
            .iter()
            .next()
            .filter(|_| !bundle.dns_domains.contains(&new_domain));
        if issuer.is_some() || domain.is_some() {
            nodes.push(node.as_str());
            old_issuer = old_issuer.or(issuer);
            old_domain = old_domain.or(domain);
        }
    }
    let domain_change =
        old_domain.map(|old| format!("network.dnsDomain changes from {old} to {new_domain}"));
    let issuer_change = old_issuer.map(|old| {
        format!(
            "the service-account issuer changes from {old} to {}",
            new_issuer.as_deref().unwrap_or_default()
        )
    });
    let what = match (&domain_change, &issuer_change) {
        (Some(domain), Some(issuer)) => format!("{domain}, and with it {issuer}"),
        (Some(only), None) | (None, Some(only)) => only.clone(),
        (None, None) => return None,
    };
    let consequence = if issuer_change.is_some() {
        "every service-account token issued so far names the old issuer, and each master \
         that installs these bundles rejects it until it is issued again"
    } else {
        "the kubernetes service's name in every serving certificate changes, and no longer \
         matches the cluster domain kubelets and CoreDNS were set up with"
    };
    Some((
        format!(
            "{what}, compared with the bundles in the output ({}): {consequence}",
            nodes.join(", ")
        ),
        "Keep the previous value".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(versions: &[(&str, &str)]) -> PreviousGeneration {
        let nodes = versions
            .iter()
            .map(|(node, version)| {
                let bundle = ShippedBundle {
                    kubernetes_version: KubeVersion::parse(version).ok(),
                    issuer: None,
                    dns_domains: BTreeSet::new(),
                    file_digests: BTreeSet::new(),
                };
                ((*node).to_owned(), bundle)
            })
            .collect();
        PreviousGeneration { nodes }
    }

    fn skew(previous: &PreviousGeneration, wanted: &str) -> Option<String> {
        version_skew(previous, &KubeVersion::parse(wanted).unwrap()).map(|(what, _)| what)
    }

    #[test]
    fn the_minor_may_stay_or_step_once_and_patches_may_go_either_way() {
        let previous = generation(&[("cp1", "v1.33.13"), ("cp2", "v1.33.13")]);
        for fine in ["v1.33.13", "v1.33.1", "v1.33.20", "v1.34.0", "v1.34.9"] {
            assert_eq!(skew(&previous, fine), None, "{fine}");
        }
        let down = skew(&previous, "v1.32.5").unwrap();
        assert!(down.contains("older minor than v1.33.13"), "{down}");
        assert!(down.contains("(cp1, cp2)"), "{down}");
        let jump = skew(&previous, "v1.37.2").unwrap();
        assert!(
            jump.contains("is 4 minor versions after v1.33.13"),
            "{jump}"
        );
        assert_eq!(skew(&generation(&[]), "v1.12.3"), None, "a first build");
    }

    #[test]
    fn a_mixed_output_is_measured_from_both_ends() {
        let previous = generation(&[("cp1", "v1.34.0"), ("cp2", "v1.33.2")]);
        assert_eq!(skew(&previous, "v1.34.1"), None);
        let down = skew(&previous, "v1.33.2").unwrap();
        assert!(down.contains("older minor than v1.34.0") && down.contains("(cp1)"));
        let jump = skew(&previous, "v1.35.0").unwrap();
        assert!(jump.contains("2 minor versions after v1.33.2") && jump.contains("(cp2)"));
    }

    #[test]
    fn the_cluster_domain_is_read_from_the_kubernetes_service_name() {
        let recorded: RecordedProvenance = serde_json::from_str(
            r#"{"cluster": "c", "kubernetesVersion": "v1.37.2", "later": 1,
                "allowedHosts": ["10.0.0.1", "kubernetes.default.svc", "kubernetes.default.svc.corp.example"],
                "files": {"a": {"sha256": "ab", "mode": "0644", "size": 1}},
                "unitFlags": {"kube-apiserver.service": {"service-account-issuer": "https://i"}}}"#,
        )
        .expect("unknown fields of a later release are ignored");
        let bundle = ShippedBundle::from(recorded);
        assert_eq!(
            bundle.dns_domains.into_iter().collect::<Vec<_>>(),
            ["corp.example"]
        );
        assert_eq!(bundle.issuer.as_deref(), Some("https://i"));
        assert_eq!(bundle.file_digests.into_iter().collect::<Vec<_>>(), ["ab"]);
    }
}
