//! `kube-bundle verify`: the bundle and sign stages, checked from the outside.
//!
//! In: a tarball, its detached signature and the signing public key. Out: a
//! [`Verified`] summary, or `Error::Verification` naming the first thing wrong. The
//! signature comes first; then every entry (safe relative paths under one top directory,
//! only regular files and directories, no duplicates, sane sizes), then SHA256SUMS and
//! bundle.json against the content, then the air gap: no URL or address in any text file
//! may point outside the cluster's own hosts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::bundle::{CHECKSUM_FILE, FileRecord, PROVENANCE_FILE, Provenance};
use crate::error::Error;

/// No single file in a bundle is bigger than this (the apiserver binary is ~150 MB).
const MAX_FILE_BYTES: u64 = 1 << 30;
const MAX_TOTAL_BYTES: u64 = 4 << 30;
const MAX_ENTRIES: usize = 10_000;
/// Text files are kept in memory for the checks; anything larger is treated as binary.
const MAX_TEXT_BYTES: u64 = 4 << 20;

#[derive(Debug)]
pub struct Verified {
    pub node: String,
    pub bundle_id: String,
    pub files: usize,
}

fn fail(reason: impl Into<String>) -> Error {
    Error::Verification(reason.into())
}

pub fn verify(tarball: &Path, public_key: &Path, signature: &Path) -> Result<Verified, Error> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())));
    let key = String::from_utf8(read(public_key)?)
        .map_err(|_| fail(format!("{}: not a PEM public key", public_key.display())))?;
    let signature_bytes = read(signature)?;
    crate::sign::verify_file_signature(&key, tarball, &signature_bytes)
        .map_err(|why| fail(format!("{}: {why}", signature.display())))?;

    let (node, entries) = read_entries(tarball)?;
    let files: BTreeMap<String, (String, u32, u64)> = entries
        .iter()
        .map(|(path, e)| (path.clone(), (e.sha256.clone(), e.mode, e.size)))
        .collect();
    let texts: BTreeMap<String, String> = entries
        .into_iter()
        .filter_map(|(path, e)| e.text.map(|t| (path, t)))
        .collect();
    check_checksums(&files, &texts)?;
    let provenance = check_provenance(&node, &files, &texts)?;
    check_air_gap(&texts, &provenance.allowed_hosts)?;
    Ok(Verified {
        node,
        bundle_id: provenance.bundle_id,
        files: files.len(),
    })
}

/// One regular file of a bundle, by its path under the node directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub sha256: String,
    pub mode: u32,
    pub size: u64,
    /// The content, when it is UTF-8 text of a reasonable size.
    pub text: Option<String>,
}

/// Reads every entry of a bundle with the safety checks `verify` applies (paths, types,
/// duplicates, sizes); no signature check. Returns the node directory and the files.
pub fn read_entries(tarball: &Path) -> Result<(String, BTreeMap<String, Entry>), Error> {
    let file =
        std::fs::File::open(tarball).map_err(|e| fail(format!("{}: {e}", tarball.display())))?;
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
    let entries = archive
        .entries()
        .map_err(|e| fail(format!("not a tar.gz: {e}")))?;

    let mut top: Option<String> = None;
    let mut seen = BTreeSet::new();
    let mut files: BTreeMap<String, (String, u32, u64)> = BTreeMap::new();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    let mut total = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(format!("damaged archive: {e}")))?;
        if seen.len() >= MAX_ENTRIES {
            return Err(fail(format!("more than {MAX_ENTRIES} entries")));
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|_| fail("an entry name is not UTF-8"))?;
        let (node, relative) = check_path(&name)?;
        match &top {
            None => top = Some(node.to_owned()),
            Some(top) if top != node => {
                return Err(fail(format!(
                    "entry {name:?} is outside the bundle's directory {top}/"
                )));
            }
            Some(_) => {}
        }
        if !seen.insert(name.trim_end_matches('/').to_owned()) {
            return Err(fail(format!("duplicate entry {name:?}")));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(fail(format!(
                "entry {name:?} is a {kind:?}; only files and directories are allowed"
            )));
        }
        let size = entry
            .header()
            .size()
            .map_err(|_| fail(format!("entry {name:?} has a bad size")))?;
        total += size;
        if size > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES {
            return Err(fail(format!(
                "entry {name:?} makes the bundle implausibly large"
            )));
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|_| fail(format!("entry {name:?} has a bad mode")))?;
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let read = entry
                .read(&mut buffer)
                .map_err(|e| fail(format!("reading {name:?}: {e}")))?;
            if read == 0 {
                break;
            }
            hasher.update(&buffer[..read]);
            if size <= MAX_TEXT_BYTES {
                kept.extend_from_slice(&buffer[..read]);
            }
        }
        let relative = relative.to_owned();
        if size <= MAX_TEXT_BYTES
            && let Ok(text) = String::from_utf8(kept)
            && !text.contains('\0')
        {
            texts.insert(relative.clone(), text);
        }
        files.insert(
            relative,
            (hex::encode(hasher.finalize()), mode & 0o7777, size),
        );
    }
    let node = top.ok_or_else(|| fail("the archive is empty"))?;
    let entries = files
        .into_iter()
        .map(|(path, (sha256, mode, size))| {
            let text = texts.remove(&path);
            (
                path,
                Entry {
                    sha256,
                    mode,
                    size,
                    text,
                },
            )
        })
        .collect();
    Ok((node, entries))
}

/// `<node>/<relative>`: relative, no `.`/`..`, no empty components.
fn check_path(name: &str) -> Result<(&str, &str), Error> {
    if name.starts_with('/') {
        return Err(fail(format!("entry {name:?} is an absolute path")));
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    // Split by hand: Path::components() silently drops "." and repeated slashes.
    if trimmed.split('/').any(|part| part == "." || part == "..") {
        return Err(fail(format!(
            "entry {name:?} contains a '.' or '..' component"
        )));
    }
    if trimmed.is_empty() || trimmed.split('/').any(str::is_empty) {
        return Err(fail(format!("entry {name:?} has an empty path component")));
    }
    Ok(trimmed.split_once('/').unwrap_or((trimmed, "")))
}

fn check_checksums(
    files: &BTreeMap<String, (String, u32, u64)>,
    texts: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let sums = texts
        .get(CHECKSUM_FILE)
        .ok_or_else(|| fail("the bundle has no SHA256SUMS"))?;
    let mut listed = BTreeSet::new();
    for line in sums.lines() {
        let (hash, path) = line
            .split_once("  ")
            .filter(|(hash, _)| hash.len() == 64)
            .ok_or_else(|| fail(format!("SHA256SUMS: malformed line {line:?}")))?;
        let (actual, _, _) = files
            .get(path)
            .ok_or_else(|| fail(format!("SHA256SUMS lists {path}, which the bundle lacks")))?;
        if actual != hash {
            return Err(fail(format!("{path}: sha256 differs from SHA256SUMS")));
        }
        listed.insert(path);
    }
    for path in files.keys().filter(|p| p.as_str() != CHECKSUM_FILE) {
        if !listed.contains(path.as_str()) {
            return Err(fail(format!("{path} is not listed in SHA256SUMS")));
        }
    }
    Ok(())
}

fn check_provenance(
    node: &str,
    files: &BTreeMap<String, (String, u32, u64)>,
    texts: &BTreeMap<String, String>,
) -> Result<Provenance, Error> {
    let text = texts
        .get(PROVENANCE_FILE)
        .ok_or_else(|| fail("the bundle has no bundle.json"))?;
    let provenance: Provenance =
        serde_json::from_str(text).map_err(|e| fail(format!("bundle.json does not parse: {e}")))?;
    if provenance.node != node {
        return Err(fail(format!(
            "bundle.json is for node {}, the archive holds {node}/",
            provenance.node
        )));
    }
    for (path, (sha256, mode, size)) in files {
        if path == PROVENANCE_FILE || path == CHECKSUM_FILE {
            continue;
        }
        let actual = FileRecord {
            sha256: sha256.clone(),
            mode: format!("{mode:04o}"),
            size: *size,
        };
        match provenance.files.get(path) {
            Some(record) if *record == actual => {}
            Some(record) => {
                return Err(fail(format!(
                    "{path}: bundle.json records {record:?}, the archive holds {actual:?}"
                )));
            }
            None => return Err(fail(format!("{path} is not recorded in bundle.json"))),
        }
    }
    if let Some(missing) = provenance.files.keys().find(|p| !files.contains_key(*p)) {
        return Err(fail(format!(
            "bundle.json records {missing}, which the archive lacks"
        )));
    }
    Ok(provenance)
}

/// Every URL host and every IPv4 address in the text files must be one of the cluster's.
fn check_air_gap(texts: &BTreeMap<String, String>, allowed: &[String]) -> Result<(), Error> {
    let allowed: BTreeSet<&str> = allowed.iter().map(String::as_str).collect();
    for (path, text) in texts {
        for (index, _) in text.match_indices("://") {
            let rest = &text[index + 3..];
            let host = if let Some(v6) = rest.strip_prefix('[') {
                v6.split(']').next().unwrap_or_default()
            } else {
                rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                    .next()
                    .unwrap_or_default()
            };
            if !allowed.contains(host) {
                return Err(fail(format!("{path} points outside the cluster: {host:?}")));
            }
        }
        let bytes = text.as_bytes();
        let mut start = 0;
        for (index, c) in text
            .char_indices()
            .chain(std::iter::once((text.len(), ' ')))
        {
            if c.is_ascii_digit() || c == '.' {
                continue;
            }
            let token = &text[start..index];
            start = index + c.len_utf8();
            let is_cidr = bytes.get(index) == Some(&b'/');
            if let Ok(ip) = token.parse::<Ipv4Addr>()
                && !is_cidr
                && !allowed.contains(ip.to_string().as_str())
            {
                return Err(fail(format!(
                    "{path} names an address outside the cluster: {ip}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(check_path("n/rootfs/etc/a").is_ok());
        assert!(check_path("n/").is_ok());
        for bad in ["/etc/passwd", "n/../evil", "n/./a", "n//a", "../x", ""] {
            assert!(check_path(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_air_gap_check_finds_foreign_hosts_and_addresses() {
        let allowed = vec!["10.0.0.1".to_owned(), "api.example.com".to_owned()];
        let ok = BTreeMap::from([(
            "a".to_owned(),
            "server: https://api.example.com:6443\nrange=10.96.0.0/12 bind 10.0.0.1".to_owned(),
        )]);
        assert!(check_air_gap(&ok, &allowed).is_ok());
        let url = BTreeMap::from([("a".to_owned(), "see https://github.com/x".to_owned())]);
        assert!(check_air_gap(&url, &allowed).is_err());
        let ip = BTreeMap::from([(
            "a".to_owned(),
            "--etcd-servers=https://10.0.0.1:2379 dns 8.8.8.8".to_owned(),
        )]);
        assert!(
            check_air_gap(&ip, &allowed)
                .unwrap_err()
                .to_string()
                .contains("8.8.8.8")
        );
    }
}
