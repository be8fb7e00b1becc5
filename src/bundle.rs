//! Stage 6: one deterministic tar.gz per master.
//!
//! In: a node's files (path under `<node>/`, mode, content) and an epoch. Out: a gzip
//! stream written to a file. Determinism (design.md §5): entries sorted by path, parent
//! directories added explicitly, every ustar header field set by hand (uid/gid 0, no
//! owner names, mode as intended, mtime = epoch), gzip header with mtime 0 and no file
//! name, a fixed compression level, and flate2 pinned to miniz_oxide. Large files
//! (the apiserver binary) are streamed from disk, never held in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::render::Content;

/// gzip level: fixed, so the bytes only depend on the input.
pub const GZIP_LEVEL: u32 = 6;
/// gzip header OS byte: "unknown", whatever the build host is.
const GZIP_OS_UNKNOWN: u8 = 255;
const DIRECTORY_MODE: u32 = 0o755;

/// One file of a bundle, by its path relative to the node's top directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub mode: u32,
    pub content: Content,
}

/// A node's bundle tree: `install.sh`, `rootfs/etc/...`, `manifests/...`.
pub type Tree = BTreeMap<String, BundleFile>;

/// Writes `<node>/…` as a deterministic tar.gz to `path`.
pub fn write_tarball(path: &Path, node: &str, tree: &Tree, epoch: u64) -> Result<(), Error> {
    // Bundles carry private keys.
    let file = crate::secrets::create_private_file(path)?;
    let gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(BufWriter::new(file), Compression::new(GZIP_LEVEL));
    let mut builder = tar::Builder::new(gzip);
    let io = |e: std::io::Error| Error::io(path, e);

    let mut directories = BTreeSet::from([format!("{node}/")]);
    for name in tree.keys() {
        let mut prefix = String::from(node);
        let parts: Vec<&str> = name.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            prefix.push('/');
            prefix.push_str(part);
            directories.insert(format!("{prefix}/"));
        }
    }
    let mut entries: Vec<(String, Option<&BundleFile>)> =
        directories.into_iter().map(|dir| (dir, None)).collect();
    entries.extend(
        tree.iter()
            .map(|(name, file)| (format!("{node}/{name}"), Some(file))),
    );
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    for (entry_path, file) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_path(&entry_path).map_err(|e| {
            Error::Input(format!(
                "{entry_path}: cannot be stored in a ustar header ({e})"
            ))
        })?;
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(epoch);
        match file {
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(DIRECTORY_MODE);
                header.set_size(0);
                header.set_cksum();
                builder.append(&header, std::io::empty()).map_err(io)?;
            }
            Some(file) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(file.mode);
                match &file.content {
                    Content::Bytes(bytes) => {
                        header.set_size(bytes.len() as u64);
                        header.set_cksum();
                        builder.append(&header, bytes.as_slice()).map_err(io)?;
                    }
                    Content::File(source) => {
                        let reader = File::open(source).map_err(|e| Error::io(source, e))?;
                        let size = reader.metadata().map_err(|e| Error::io(source, e))?.len();
                        header.set_size(size);
                        header.set_cksum();
                        // take() guards against the file growing while it is copied.
                        builder.append(&header, reader.take(size)).map_err(io)?;
                    }
                }
            }
        }
    }
    let gzip = builder.into_inner().map_err(io)?;
    let mut writer = gzip.finish().map_err(io)?;
    writer.flush().map_err(io)?;
    writer
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(())
}

/// sha256 of a content, streaming files from disk.
pub fn content_sha256(content: &Content) -> Result<String, Error> {
    match content {
        Content::Bytes(bytes) => Ok(hex::encode(Sha256::digest(bytes))),
        Content::File(path) => file_sha256(path),
    }
}

pub fn file_sha256(path: &Path) -> Result<String, Error> {
    crate::sign::file_digest(path).map(hex::encode)
}

pub fn content_len(content: &Content) -> Result<u64, Error> {
    match content {
        Content::Bytes(bytes) => Ok(bytes.len() as u64),
        Content::File(path) => Ok(std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        Tree::from([
            (
                "rootfs/etc/a.key".into(),
                BundleFile {
                    mode: 0o600,
                    content: Content::Bytes(b"key".to_vec()),
                },
            ),
            (
                "install.sh".into(),
                BundleFile {
                    mode: 0o755,
                    content: Content::Bytes(b"#!/bin/bash\n".to_vec()),
                },
            ),
        ])
    }

    /// Pins the compressed bytes: a different deflate backend (zlib-ng, zlib through a
    /// feature) or a changed level gives other bytes and fails here.
    #[test]
    fn the_gzip_stream_is_pinned_to_miniz_oxide_at_level_6() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.tar.gz");
        write_tarball(&path, "n", &tree(), 1_700_000_000).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            &bytes[..10],
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255],
            "gzip header: mtime 0, no name"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            "fb348c199c938f7edcbe9fe9e30a3c2c8a19e5bb1aadb11a31d45f2baa3d8a29",
            "the gzip bytes changed: was the deflate backend or level changed?"
        );
    }

    #[test]
    fn headers_are_fixed_and_entries_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.tar.gz");
        write_tarball(&path, "n", &tree(), 1_700_000_000).unwrap();
        let mut archive =
            tar::Archive::new(flate2::read::GzDecoder::new(File::open(&path).unwrap()));
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.mtime().unwrap(), 1_700_000_000);
            assert_eq!(header.username().unwrap(), Some(""));
            seen.push((
                entry.path().unwrap().display().to_string(),
                header.mode().unwrap(),
            ));
        }
        assert_eq!(
            seen,
            [
                ("n/".to_owned(), 0o755),
                ("n/install.sh".to_owned(), 0o755),
                ("n/rootfs/".to_owned(), 0o755),
                ("n/rootfs/etc/".to_owned(), 0o755),
                ("n/rootfs/etc/a.key".to_owned(), 0o600),
            ]
        );
    }
}

// ---------------------------------------------------------------------------------------
// Assembling a node's tree: rootfs, manifests, installer, README, provenance, checksums

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

/// A node's complete tree and its id.
#[derive(Debug)]
pub struct NodeBundle {
    pub tree: Tree,
    pub bundle_id: String,
}

/// Hashes of large files computed once per build, not once per node.
pub type HashCache = BTreeMap<std::path::PathBuf, String>;

pub fn assemble(
    cluster: &crate::validate::Cluster,
    node: &crate::plan::NodePlan,
    rendered: crate::render::RenderedNode,
    config_sha256: &str,
    hashes: &mut HashCache,
) -> Result<NodeBundle, Error> {
    let mut tree = Tree::new();
    for (path, file) in rendered.rootfs {
        let relative = format!("rootfs/{}", path.trim_start_matches('/'));
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
        records.insert(path.clone(), record(file, hashes)?);
    }
    // The id names what the bundle installs, so the installer can carry it.
    let id_source: String = records
        .iter()
        .map(|(path, r)| format!("{}  {path}\n", r.sha256))
        .collect();
    let bundle_id = format!(
        "{}-{}",
        node.name,
        &hex::encode(Sha256::digest(id_source.as_bytes()))[..16]
    );

    let facts = crate::render::BundleFacts {
        cluster,
        node,
        bundle_id: &bundle_id,
        manifests,
    };
    let installer = crate::render::installer(&facts)?.into_bytes();
    let readme = crate::render::node_readme(&facts)?.into_bytes();
    for (name, mode, bytes) in [
        ("install.sh", 0o755, installer),
        ("README.md", 0o644, readme),
    ] {
        let file = BundleFile {
            mode,
            content: Content::Bytes(bytes),
        };
        records.insert(name.to_owned(), record(&file, hashes)?);
        tree.insert(name.to_owned(), file);
    }
    let provenance = Provenance {
        format_version: 1,
        tool: "kube-bundle".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        cluster: cluster.name.to_string(),
        node: node.name.clone(),
        node_ip: node.ip.to_string(),
        kubernetes_version: cluster.kubernetes_version.to_string(),
        config_sha256: config_sha256.to_owned(),
        bundle_id: bundle_id.clone(),
        allowed_hosts: allowed_hosts(cluster, node),
        files: records,
    };
    let mut json = serde_json::to_vec_pretty(&provenance)
        .map_err(|e| Error::Input(format!("internal: bundle.json: {e}")))?;
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
        content_sha256(&provenance_file.content)?,
    ));
    tree.insert(PROVENANCE_FILE.to_owned(), provenance_file);
    let checksums = crate::sign::checksum_file(sums.iter().map(|(p, h)| (p.as_str(), h.as_str())));
    tree.insert(
        CHECKSUM_FILE.to_owned(),
        BundleFile {
            mode: 0o644,
            content: Content::Bytes(checksums.into_bytes()),
        },
    );
    Ok(NodeBundle { tree, bundle_id })
}

fn record(file: &BundleFile, hashes: &mut HashCache) -> Result<FileRecord, Error> {
    let sha256 = match &file.content {
        Content::File(path) => match hashes.get(path) {
            Some(hash) => hash.clone(),
            None => {
                let hash = file_sha256(path)?;
                hashes.insert(path.clone(), hash.clone());
                hash
            }
        },
        content => content_sha256(content)?,
    };
    Ok(FileRecord {
        sha256,
        mode: format!("{:04o}", file.mode),
        size: content_len(&file.content)?,
    })
}

/// The hosts this node's files may name. Other masters are not among them, so that
/// changing one master leaves the others' bundles byte-identical.
fn allowed_hosts(cluster: &crate::validate::Cluster, node: &crate::plan::NodePlan) -> Vec<String> {
    // 0.0.0.0 is a wildcard install.sh matches listeners against, never a destination.
    let mut hosts = BTreeSet::from([
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "0.0.0.0".to_owned(),
    ]);
    if let Some(front) = &cluster.ha_front {
        hosts.insert(front.listen_ip.to_string());
    }
    hosts.insert(node.ip.to_string());
    hosts.insert(node.name.clone());
    if let Some(endpoint) = &cluster.control_plane_endpoint {
        hosts.insert(endpoint.host.to_string());
    }
    for url in &cluster.etcd.endpoints {
        if let Some(host) = url.host_str() {
            hosts.insert(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            );
        }
    }
    hosts.insert(
        cluster
            .network
            .service_cidr
            .kubernetes_service_ip()
            .to_string(),
    );
    hosts.insert(format!(
        "kubernetes.default.svc.{}",
        cluster.network.dns_domain
    ));
    hosts.into_iter().collect()
}
