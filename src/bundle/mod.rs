//! Stage 6: one deterministic tar.gz per master.
//!
//! Two steps, one module each: `assemble` lays out and hashes a node's tree (rootfs,
//! manifests, installer, README, bundle.json, SHA256SUMS); `tarball` writes the tree as
//! a deterministic tar.gz. [`format`] is what a bundle records about itself (bundle.json,
//! SHA256SUMS): a leaf module, so that `verify` and `diff` read it without depending on
//! the builder. This file holds the tree both steps share.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::render::Content;

mod assemble;
pub mod format;
mod tarball;

pub use assemble::{Contents, NodeBundle, assemble, contents};
pub use format::{CHECKSUM_FILE, FileRecord, PROVENANCE_FILE, Provenance};
pub use tarball::{
    GZIP_LEVEL, SHARED_MEMBER_MIN_SIZE, SharedFile, SharedFiles, UnsyncedTarball, inputs_digest,
    write_tarball, write_tarball_unsynced,
};

/// One file of a bundle, by its path relative to the node's top directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub mode: u32,
    pub content: Content,
}

/// A node's bundle tree: `install.sh`, `rootfs/etc/...`, `manifests/...`.
pub type Tree = BTreeMap<String, BundleFile>;

/// The hex SHA-256 of a file, streamed: how a tarball already on disk is named in the
/// output folder's SHA256SUMS.
pub fn file_sha256(path: &Path) -> Result<String, Error> {
    crate::sign::file_digest(path).map(hex::encode)
}
