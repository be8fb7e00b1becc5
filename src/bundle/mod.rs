//! Stage 6: one deterministic tar.gz per master.
//!
//! In: a node's files (path under `<node>/`, mode, content) and an epoch. Out: a gzip
//! stream written to a file. Determinism: entries sorted by path, parent
//! directories added explicitly, every ustar header field set by hand (uid/gid 0, no
//! owner names, mode as intended, mtime = epoch), gzip header with mtime 0 and no file
//! name, a fixed compression level, and flate2 pinned to miniz_oxide. Large files
//! (the apiserver binary) are streamed from disk, never held in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::render::Content;

pub mod format;

pub use format::{CHECKSUM_FILE, FileRecord, PROVENANCE_FILE, Provenance};

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

/// Writes `<node>/…` as a deterministic tar.gz to `path` and returns the SHA-256 of the
/// bytes written, so signing and SHA256SUMS need not read the tarball again.
///
/// A file `shared` has a gzip member for is not compressed again: its tar header ends the
/// current member, its member is copied in, and a new member starts after it. Concatenated
/// members are one valid gzip stream (gzip allows any number of members), which `tar xzf` reads as one.
pub fn write_tarball(
    path: &Path,
    node: &str,
    tree: &Tree,
    epoch: u64,
    shared: &SharedFiles,
) -> Result<[u8; 32], Error> {
    // Bundles carry private keys.
    let file = crate::secrets::create_private_file(path)?;
    let io = |e: std::io::Error| Error::io(path, e);
    let output = HashingWriter {
        inner: BufWriter::with_capacity(1 << 16, file),
        hasher: Sha256::new(),
    };
    let mut builder = tar::Builder::new(GzipMembers::new(output));

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
        let Some(file) = file else {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(DIRECTORY_MODE);
            header.set_size(0);
            header.set_cksum();
            builder.append(&header, std::io::empty()).map_err(io)?;
            continue;
        };
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(file.mode);
        match &file.content {
            Content::Bytes(bytes) => {
                header.set_size(bytes.len() as u64);
                header.set_cksum();
                builder.append(&header, bytes.as_slice()).map_err(io)?;
            }
            Content::File(source) => match shared.get(source) {
                Some(SharedFile {
                    size,
                    member: Some(member),
                    ..
                }) => {
                    header.set_size(size);
                    header.set_cksum();
                    let output = builder.get_mut();
                    output.write_all(header.as_bytes()).map_err(io)?;
                    let mut member = File::open(&member).map_err(|e| Error::io(&member, e))?;
                    output.splice(&mut member).map_err(io)?;
                }
                _ => {
                    let reader = File::open(source).map_err(|e| Error::io(source, e))?;
                    let size = reader.metadata().map_err(|e| Error::io(source, e))?.len();
                    header.set_size(size);
                    header.set_cksum();
                    // take() guards against the file growing while it is copied.
                    builder.append(&header, reader.take(size)).map_err(io)?;
                }
            },
        }
    }
    let members = builder.into_inner().map_err(io)?;
    let mut output = members.finish().map_err(io)?;
    output.flush().map_err(io)?;
    let digest = output.hasher.finalize().into();
    output
        .inner
        .into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(digest)
}

fn gzip_member<W: Write>(inner: W) -> GzEncoder<W> {
    GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(inner, Compression::new(GZIP_LEVEL))
}

/// A gzip stream made of members: writes go to the current member; `splice` closes it,
/// copies a ready-made member verbatim and opens the next.
struct GzipMembers<W: Write> {
    current: Option<GzEncoder<W>>,
}

impl<W: Write> GzipMembers<W> {
    fn new(inner: W) -> Self {
        Self {
            current: Some(gzip_member(inner)),
        }
    }

    fn closed() -> std::io::Error {
        std::io::Error::other("gzip stream already failed")
    }

    fn splice(&mut self, member: &mut impl Read) -> std::io::Result<()> {
        let mut inner = self.current.take().ok_or_else(Self::closed)?.finish()?;
        std::io::copy(member, &mut inner)?;
        self.current = Some(gzip_member(inner));
        Ok(())
    }

    fn finish(self) -> std::io::Result<W> {
        self.current.ok_or_else(Self::closed)?.finish()
    }
}

impl<W: Write> Write for GzipMembers<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.current.as_mut().ok_or_else(Self::closed)?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.current.as_mut().ok_or_else(Self::closed)?.flush()
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Files at least this large are compressed once per build, not once per node.
pub const SHARED_MEMBER_MIN_SIZE: u64 = 1 << 20;
const TAR_BLOCK: u64 = 512;

/// Files from disk that every node ships (the apiserver binary): read once per build, to
/// hash them and, when large, to compress them (with their tar padding) into one gzip
/// member that `write_tarball` splices into each node's stream.
pub struct SharedFiles {
    scratch: PathBuf,
    /// Nodes are written in parallel; the first to need a file prepares it, the others
    /// wait for it.
    files: Mutex<BTreeMap<PathBuf, SharedFile>>,
}

#[derive(Debug, Clone)]
pub struct SharedFile {
    pub sha256: String,
    pub size: u64,
    member: Option<PathBuf>,
}

impl SharedFiles {
    /// `scratch` is created for the members, and must not exist yet; the caller removes
    /// it when the tarballs are written.
    pub fn new(scratch: PathBuf) -> Self {
        Self {
            scratch,
            files: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, SharedFile>> {
        // A panic elsewhere cannot leave the map half-updated: insert is the only write.
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, source: &Path) -> Option<SharedFile> {
        self.lock().get(source).cloned()
    }

    /// Hashes `source` (and compresses it, when large) on first use.
    pub fn prepare(&self, source: &Path) -> Result<SharedFile, Error> {
        let mut files = self.lock();
        if let Some(prepared) = files.get(source) {
            return Ok(prepared.clone());
        }
        let prepared = self.read_once(source, files.len())?;
        files.insert(source.to_path_buf(), prepared.clone());
        Ok(prepared)
    }

    fn read_once(&self, source: &Path, index: usize) -> Result<SharedFile, Error> {
        let file = File::open(source).map_err(|e| Error::io(source, e))?;
        let size = file.metadata().map_err(|e| Error::io(source, e))?.len();
        let member_path = self.scratch.join(format!("{index}.gz"));
        let io = |e: std::io::Error| Error::io(&member_path, e);
        let mut gzip = None;
        if size >= SHARED_MEMBER_MIN_SIZE {
            std::fs::create_dir_all(&self.scratch).map_err(|e| Error::io(&self.scratch, e))?;
            let member_file = File::create(&member_path).map_err(io)?;
            gzip = Some(gzip_member(BufWriter::with_capacity(1 << 16, member_file)));
        }
        // take() guards against the file growing while it is read.
        let mut reader = file.take(size);
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut copied = 0;
        loop {
            let read = reader.read(&mut buffer).map_err(|e| Error::io(source, e))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            if let Some(gzip) = &mut gzip {
                gzip.write_all(&buffer[..read]).map_err(io)?;
            }
            copied += read as u64;
        }
        if copied != size {
            return Err(Error::Input(format!(
                "{}: shrank while being read ({size} bytes, then {copied})",
                source.display()
            )));
        }
        let member = match gzip {
            None => None,
            Some(mut gzip) => {
                let padding = (TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK;
                gzip.write_all(&vec![0u8; padding as usize]).map_err(io)?;
                gzip.finish().map_err(io)?.flush().map_err(io)?;
                Some(member_path.clone())
            }
        };
        Ok(SharedFile {
            sha256: hex::encode(hasher.finalize()),
            size,
            member,
        })
    }

    /// Removes the compressed members.
    pub fn close(self) -> Result<(), Error> {
        match std::fs::remove_dir_all(&self.scratch) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.scratch, e)),
            _ => Ok(()),
        }
    }
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

    fn no_shared() -> SharedFiles {
        SharedFiles::new(PathBuf::from("/nonexistent"))
    }

    fn decompressed(path: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }

    /// The shared member changes the compressed bytes, never the tar inside: the same tar
    /// comes out as when the file is compressed inline, the member appears verbatim in
    /// every node's tarball, and the returned digest is the tarball's.
    #[test]
    fn a_large_file_is_compressed_once_and_spliced_into_every_node() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("kube-apiserver");
        // Not a multiple of 512, so the tar padding must be in the member.
        let mut content: Vec<u8> = (0..SHARED_MEMBER_MIN_SIZE + 1001)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        content[..4096].fill(b'k');
        std::fs::write(&binary, &content).unwrap();
        let mut tree = tree();
        tree.insert(
            "rootfs/usr/local/bin/kube-apiserver".into(),
            BundleFile {
                mode: 0o755,
                content: Content::File(binary.clone()),
            },
        );

        let inline = dir.path().join("inline.tar.gz");
        write_tarball(&inline, "n1", &tree, 7, &no_shared()).unwrap();

        let shared = SharedFiles::new(dir.path().join("scratch"));
        let prepared = shared.prepare(&binary).unwrap();
        assert_eq!(prepared.sha256, hex::encode(Sha256::digest(&content)));
        assert_eq!(prepared.size, content.len() as u64);
        let member = std::fs::read(prepared.member.as_ref().unwrap()).unwrap();
        let mut spliced = Vec::new();
        for node in ["n1", "n2"] {
            let path = dir.path().join(format!("{node}.tar.gz"));
            let digest = write_tarball(&path, node, &tree, 7, &shared).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(digest.to_vec(), Sha256::digest(&bytes).to_vec());
            assert!(
                bytes.windows(member.len()).any(|w| w == member),
                "{node}: the shared member is not in the stream verbatim"
            );
            spliced.push(path);
        }
        assert_eq!(decompressed(&spliced[0]), decompressed(&inline));
        let again = dir.path().join("again.tar.gz");
        write_tarball(&again, "n1", &tree, 7, &shared).unwrap();
        assert_eq!(
            std::fs::read(&again).unwrap(),
            std::fs::read(&spliced[0]).unwrap()
        );

        shared.close().unwrap();
        assert!(!dir.path().join("scratch").exists());
    }

    /// Pins the compressed bytes: a different deflate backend (zlib-ng, zlib through a
    /// feature) or a changed level gives other bytes and fails here.
    #[test]
    fn the_gzip_stream_is_pinned_to_miniz_oxide_at_level_6() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.tar.gz");
        write_tarball(&path, "n", &tree(), 1_700_000_000, &no_shared()).unwrap();
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
        write_tarball(&path, "n", &tree(), 1_700_000_000, &no_shared()).unwrap();
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(
            File::open(&path).unwrap(),
        ));
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

/// The apiserver unit's flags as its program receives them; none for a client bundle.
fn unit_flags(node: &crate::plan::NodePlan) -> BTreeMap<String, BTreeMap<String, String>> {
    if node.flags.is_empty() {
        return BTreeMap::new();
    }
    let flags = node
        .flags
        .iter()
        .map(|(name, flag)| (name.clone(), flag.value.clone()))
        .collect();
    BTreeMap::from([(crate::plan::APISERVER_UNIT.to_owned(), flags)])
}

/// A node's complete tree and its id.
#[derive(Debug)]
pub struct NodeBundle {
    pub tree: Tree,
    pub bundle_id: String,
}

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
        records.insert(path.clone(), record(file, shared)?);
    }
    // The id names what the bundle installs, so the installer can carry it.
    let id_source: String = records
        .iter()
        .map(|(path, r)| format!("{}  {path}\n", r.sha256))
        .collect();
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
            .iter()
            .map(|(path, file)| {
                let unit = file.artifact.unit(cluster.ha_front.as_ref());
                (path.clone(), unit.to_owned())
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
        content_sha256(&provenance_file.content)?,
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
