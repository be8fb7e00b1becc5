//! Stage 6, first step: a node's tree, laid out and hashed.
//!
//! In: what render produced for a node (rootfs files, RBAC manifests), then its installer
//! and README. Out: the [`Tree`] the tarball holds: `rootfs/…` at the node's paths,
//! `manifests/…`, `install.sh`, `README.md`, `bundle.json` (what every file is, which units
//! it restarts, the units' flags, the hosts the air gap allows) and `SHA256SUMS`. Two steps
//! because the installer and README carry the bundle id, which names the hashed contents.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::format::{self, CHECKSUM_FILE, FileRecord, PROVENANCE_FILE, Provenance, ROOTFS};
use super::{BundleFile, SharedFiles, Tree};
use crate::error::Error;
use crate::render::Content;

/// A node's rendered files in bundle layout, hashed, and the id that names them: what the
/// installer and the README must carry before they can be rendered.
pub struct Contents {
    tree: Tree,
    records: BTreeMap<String, FileRecord>,
    /// Content id of what the bundle installs (rootfs and manifests).
    pub bundle_id: String,
    /// The RBAC manifests' file names.
    pub manifests: Vec<String>,
}

/// Lays out and hashes what render produced for `node`.
pub fn contents(
    node: &str,
    rendered: crate::render::RenderedNode,
    shared: &SharedFiles,
) -> Result<Contents, Error> {
    let mut tree = Tree::new();
    for (path, file) in rendered.rootfs {
        let relative = format!("{ROOTFS}/{}", path.trim_start_matches('/'));
        tree.insert(
            relative,
            BundleFile {
                mode: file.mode,
                content: file.content,
            },
        );
    }
    let manifests: Vec<String> = rendered.manifests.keys().cloned().collect();
    for (name, bytes) in rendered.manifests {
        tree.insert(
            format!("manifests/{name}"),
            BundleFile {
                mode: 0o644,
                content: Content::Bytes(bytes),
            },
        );
    }
    let mut records = BTreeMap::new();
    for (path, file) in &tree {
        records.insert(path.clone(), record(file, shared)?);
    }
    // The id names what the bundle installs, so the installer can carry it: the hash of
    // those files' SHA256SUMS.
    let id_source = format::checksums_file(
        records
            .iter()
            .map(|(path, r)| (path.as_str(), r.sha256.as_str())),
    );
    let bundle_id = format!(
        "{node}-{}",
        &hex::encode(Sha256::digest(id_source.as_bytes()))[..16]
    );
    Ok(Contents {
        tree,
        records,
        bundle_id,
        manifests,
    })
}

/// A node's complete tree and its id.
#[derive(Debug)]
pub struct NodeBundle {
    pub tree: Tree,
    pub bundle_id: String,
}

/// The whole node tree: `contents`, the installer and README rendered for its id,
/// bundle.json and SHA256SUMS.
pub fn assemble(
    cluster: &crate::model::Cluster,
    node: &crate::plan::NodePlan,
    contents: Contents,
    documents: crate::render::Documents,
    config_sha256: &str,
    shared: &SharedFiles,
) -> Result<NodeBundle, Error> {
    let Contents {
        mut tree,
        mut records,
        bundle_id,
        ..
    } = contents;
    for (name, mode, bytes) in [
        ("install.sh", 0o755, documents.installer.into_bytes()),
        ("README.md", 0o644, documents.readme.into_bytes()),
    ] {
        let file = BundleFile {
            mode,
            content: Content::Bytes(bytes),
        };
        records.insert(name.to_owned(), record(&file, shared)?);
        tree.insert(name.to_owned(), file);
    }
    let provenance = Provenance {
        format_version: format::FORMAT_VERSION,
        tool: "kube-bundle".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        cluster: cluster.name.to_string(),
        node: node.name.clone(),
        node_ip: node.ip.to_string(),
        kubernetes_version: cluster.kubernetes_version.to_string(),
        config_sha256: config_sha256.to_owned(),
        bundle_id: bundle_id.clone(),
        allowed_hosts: allowed_hosts(cluster),
        files: records,
        restarts: node
            .files
            .keys()
            .map(|path| {
                let units = node.restart_units(path, cluster.ha_front.as_ref());
                let units = units.into_iter().map(str::to_owned).collect();
                (path.clone(), format::RestartUnits::Several(units))
            })
            .collect(),
        unit_flags: unit_flags(node),
    };
    let mut json = serde_json::to_vec_pretty(&provenance)
        .map_err(|e| Error::Internal(format!("bundle.json: {e}")))?;
    json.push(b'\n');
    let provenance_file = BundleFile {
        mode: 0o644,
        content: Content::Bytes(json),
    };
    let mut sums: Vec<(String, String)> = provenance
        .files
        .iter()
        .map(|(path, r)| (path.clone(), r.sha256.clone()))
        .collect();
    sums.push((
        PROVENANCE_FILE.to_owned(),
        record(&provenance_file, shared)?.sha256,
    ));
    tree.insert(PROVENANCE_FILE.to_owned(), provenance_file);
    let checksums = format::checksums_file(sums.iter().map(|(p, h)| (p.as_str(), h.as_str())));
    tree.insert(
        CHECKSUM_FILE.to_owned(),
        BundleFile {
            mode: 0o644,
            content: Content::Bytes(checksums.into_bytes()),
        },
    );
    Ok(NodeBundle { tree, bundle_id })
}

fn record(file: &BundleFile, shared: &SharedFiles) -> Result<FileRecord, Error> {
    let (sha256, size) = match &file.content {
        Content::File(path) => {
            let prepared = shared.prepare(path)?;
            (prepared.sha256, prepared.size)
        }
        Content::Bytes(bytes) => (hex::encode(Sha256::digest(bytes)), bytes.len() as u64),
    };
    Ok(FileRecord {
        sha256,
        mode: format!("{:04o}", file.mode),
        size,
    })
}

/// Each control-plane unit's flags as its program receives them; none for a client bundle
/// or a component the node does not run.
fn unit_flags(node: &crate::plan::NodePlan) -> BTreeMap<String, BTreeMap<String, String>> {
    crate::plan::Component::ALL
        .into_iter()
        .filter_map(|component| {
            let flags = node.component_flags(component);
            let values = flags
                .iter()
                .map(|(name, flag)| (name.clone(), flag.value.clone()))
                .collect();
            (!flags.is_empty()).then(|| (component.unit().to_owned(), values))
        })
        .collect()
}

/// The hosts any file of this cluster's bundles may name, from the config alone: the
/// masters and clients (the front lists every master), etcd, the endpoint and its VIP,
/// extraSANs, the front's listen address and the kubernetes service. Every node records
/// the same set, so `verify` never flags an address the config itself put there.
fn allowed_hosts(cluster: &crate::model::Cluster) -> Vec<String> {
    use crate::values::Host;
    // 0.0.0.0 and :: are wildcards install.sh matches listeners against, never destinations.
    let mut hosts =
        BTreeSet::from(["127.0.0.1", "::1", "localhost", "0.0.0.0", "::"].map(str::to_owned));
    let host_name = |host: &Host| match host {
        Host::Ip(ip) => ip.to_string(),
        Host::Dns(name) => name.to_string(),
    };
    for node in cluster.masters.iter().chain(&cluster.clients) {
        hosts.insert(node.ip.to_string());
        hosts.insert(node.name.to_string());
    }
    if let Some(front) = &cluster.ha_front {
        hosts.insert(front.listen_ip.to_string());
    }
    if let Some(endpoint) = &cluster.control_plane_endpoint {
        hosts.insert(host_name(&endpoint.host));
    }
    if let Some(keepalived) = &cluster.keepalived {
        hosts.insert(keepalived.vip.to_string());
    }
    hosts.extend(cluster.pki.extra_sans.iter().map(host_name));
    for url in &cluster.etcd.endpoints {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => hosts.insert(ip.to_string()),
            Some(url::Host::Ipv6(ip)) => hosts.insert(ip.to_string()),
            Some(url::Host::Domain(name)) => hosts.insert(name.to_owned()),
            None => false,
        };
    }
    hosts.insert(
        cluster
            .network
            .service_cidr
            .kubernetes_service_ip()
            .to_string(),
    );
    let domain = &cluster.network.dns_domain;
    for name in [
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        format!("kubernetes.default.svc.{domain}"),
    ] {
        hosts.insert(name);
    }
    hosts.into_iter().collect()
}
