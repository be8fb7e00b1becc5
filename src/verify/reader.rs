//! The strict bundle reader: a tarball's entries, accepted only as our writer writes them.
//!
//! In: a `.tar.gz` path. Out: the node directory and every regular file (SHA-256, mode,
//! size, and the text when it is UTF-8 of a reasonable size), or `Error::Verification`
//! naming the first entry that is not exactly what `bundle`'s writer makes: safe relative
//! paths under one top directory, only regular files and directories, no duplicates, sane
//! sizes, byte-identical ustar headers, nothing after the end-of-archive marker. `verify`
//! checks what it reads; `diff` compares two bundles read here. It checks no signature and
//! depends on nothing but the error type, so that `diff` shares it without depending on
//! `verify`'s checks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::Error;

/// No single file in a bundle is bigger than this (the apiserver binary is ~150 MB).
const MAX_FILE_BYTES: u64 = 1 << 30;
const MAX_TOTAL_BYTES: u64 = 4 << 30;
const MAX_ENTRIES: usize = 10_000;
/// Text files are kept in memory for the checks; anything larger is treated as binary.
const MAX_TEXT_BYTES: u64 = 4 << 20;

/// One regular file of a bundle, by its path under the node directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub sha256: String,
    pub mode: u32,
    pub size: u64,
    /// The content, when it is UTF-8 text of a reasonable size.
    pub text: Option<String>,
}

/// Reads every entry of a bundle, accepting exactly what our writer writes (see
/// [`check_written_by_us`]); no signature check. Returns the node directory and the files.
///
/// The archive is read block by block rather than through a general tar reader: PAX and
/// GNU extensions, which let one member carry two names, never get a chance to be
/// interpreted differently here and by the node's `tar`.
pub fn read_entries(tarball: &Path) -> Result<(String, BTreeMap<String, Entry>), Error> {
    let file =
        std::fs::File::open(tarball).map_err(|e| fail(format!("{}: {e}", tarball.display())))?;
    let mut stream = GzipMemberReader::new(std::io::BufReader::new(file));

    let mut top: Option<String> = None;
    let mut seen = BTreeSet::new();
    let mut entries = BTreeMap::new();
    let mut total = 0u64;
    loop {
        let mut block = [0u8; BLOCK];
        read_block(&mut stream, &mut block, "the end-of-archive marker").map_err(damaged)?;
        if block.iter().all(|b| *b == 0) {
            read_block(&mut stream, &mut block, "the end-of-archive marker").map_err(damaged)?;
            if block.iter().any(|b| *b != 0) {
                return Err(fail("the end-of-archive marker is damaged"));
            }
            check_only_padding_follows(&mut stream)?;
            break;
        }
        if seen.len() >= MAX_ENTRIES {
            return Err(fail(format!("more than {MAX_ENTRIES} entries")));
        }
        let header = tar::Header::from_byte_slice(&block);
        let (name, kind) = header_name(header)?;
        let (node, relative) = check_path(&name)?;
        match &top {
            None => top = Some(node.to_owned()),
            Some(top) if top != node => {
                return Err(fail(format!(
                    "entry {:?} is outside the bundle's directory {top}/",
                    shorten(&name)
                )));
            }
            Some(_) => {}
        }
        if !seen.insert(name.trim_end_matches('/').to_owned()) {
            return Err(fail(format!("duplicate entry {:?}", shorten(&name))));
        }
        let (mode, size) = check_written_by_us(header, &name, kind)?;
        if kind == tar::EntryType::Directory {
            continue;
        }
        total += size;
        if size > MAX_FILE_BYTES || total > MAX_TOTAL_BYTES {
            return Err(fail(format!(
                "entry {:?} makes the bundle implausibly large",
                shorten(&name)
            )));
        }
        let (sha256, text) = read_content(&mut stream, &name, size)?;
        let entry = Entry {
            sha256,
            mode,
            size,
            text,
        };
        entries.insert(relative.to_owned(), entry);
    }
    let node = top.ok_or_else(|| fail("the archive is empty"))?;
    Ok((node, entries))
}

/// One file's `size` bytes and the zero padding after them, streamed: its hex SHA-256, and
/// its text when it is UTF-8 (without NUL) of at most [`MAX_TEXT_BYTES`].
fn read_content(
    stream: &mut impl Read,
    name: &str,
    size: u64,
) -> Result<(String, Option<String>), Error> {
    let mut hasher = Sha256::new();
    let mut kept = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let read = stream.read(&mut buffer[..want]).map_err(damaged)?;
        if read == 0 {
            return Err(fail(format!("entry {:?} is cut off", shorten(name))));
        }
        hasher.update(&buffer[..read]);
        if size <= MAX_TEXT_BYTES {
            kept.extend_from_slice(&buffer[..read]);
        }
        left -= read as u64;
    }
    let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    let mut pad = [0u8; BLOCK];
    let pad = &mut pad[..usize::try_from(padding).unwrap_or(0)];
    stream.read_exact(pad).map_err(damaged)?;
    if pad.iter().any(|b| *b != 0) {
        return Err(fail(format!(
            "entry {:?} is followed by data in its padding",
            shorten(name)
        )));
    }
    let text = if size <= MAX_TEXT_BYTES
        && let Ok(text) = String::from_utf8(kept)
        && !text.contains('\0')
    {
        Some(text)
    } else {
        None
    };
    Ok((hex::encode(hasher.finalize()), text))
}

const BLOCK: usize = 512;
/// GNU tar pads archives to 10 KiB records; zeros up to that after the marker are padding.
const MAX_PADDING: u64 = 10 * 1024;
/// Directories are written 0755; files with exactly these modes.
const DIRECTORY_MODE: u32 = 0o755;
const FILE_MODES: [u32; 3] = [0o644, 0o600, 0o755];

fn read_block(stream: &mut impl Read, block: &mut [u8; BLOCK], what: &str) -> std::io::Result<()> {
    stream.read_exact(block).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(e.kind(), format!("the archive ends before {what}"))
        } else {
            e
        }
    })
}

/// After the end-of-archive marker: zero padding, then the end of the gzip stream.
fn check_only_padding_follows(stream: &mut impl Read) -> Result<(), Error> {
    let mut rest = Vec::new();
    stream
        .take(MAX_PADDING + 1)
        .read_to_end(&mut rest)
        .map_err(damaged)?;
    if rest.len() as u64 > MAX_PADDING || rest.iter().any(|b| *b != 0) {
        return Err(fail("data follows the end-of-archive marker"));
    }
    Ok(())
}

/// The first look at a header: a plain ustar header (`ustar\0` `00`) of a regular file
/// or a directory. Anything else (PAX, GNU long names, links, sparse files, old-style
/// headers) is refused before its content is read. Returns the name and type.
fn header_name(header: &tar::Header) -> Result<(String, tar::EntryType), Error> {
    let raw_name = String::from_utf8_lossy(&header.path_bytes()).into_owned();
    let quoted = shorten(&raw_name);
    if header.as_ustar().is_none() {
        return Err(fail(format!(
            "entry {quoted:?} is not a plain ustar header (magic and version must be \
             \"ustar\\0\" \"00\")"
        )));
    }
    let kind = header.entry_type();
    if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Directory) {
        return Err(fail(format!(
            "entry {quoted:?} is a {kind:?}; only files and directories are allowed"
        )));
    }
    let name = String::from_utf8(header.path_bytes().into_owned())
        .map_err(|_| fail("an entry name is not UTF-8"))?;
    Ok((name, kind))
}

/// Once the name is known to be safe: the header must be exactly what our writer makes
/// for it (uid/gid 0, no owner names, the writer's modes, the name split into prefix and
/// name as the writer splits it). Returns the mode and size.
fn check_written_by_us(
    header: &tar::Header,
    name: &str,
    kind: tar::EntryType,
) -> Result<(u32, u64), Error> {
    let quoted = shorten(name);
    let mode = header
        .mode()
        .map_err(|_| fail(format!("entry {quoted:?} has a bad mode")))?;
    let size = header
        .size()
        .map_err(|_| fail(format!("entry {quoted:?} has a bad size")))?;
    let mtime = header
        .mtime()
        .map_err(|_| fail(format!("entry {quoted:?} has a bad time")))?;
    let allowed_mode = match kind {
        tar::EntryType::Directory => mode == DIRECTORY_MODE && size == 0,
        _ => FILE_MODES.contains(&mode),
    };
    if !allowed_mode {
        return Err(fail(format!(
            "entry {quoted:?} has mode {mode:o} (size {size}); bundles hold directories 0755 \
             and files 0644, 0600 or 0755 only"
        )));
    }
    // The header our writer would have written for this entry, byte for byte.
    let mut expected = tar::Header::new_ustar();
    expected
        .set_path(name)
        .map_err(|_| fail(format!("entry {quoted:?} cannot be a ustar name")))?;
    expected.set_uid(0);
    expected.set_gid(0);
    expected.set_mtime(mtime);
    expected.set_entry_type(kind);
    expected.set_mode(mode);
    expected.set_size(size);
    expected.set_cksum();
    if expected.as_bytes() != header.as_bytes() {
        return Err(fail(format!(
            "entry {quoted:?}: its header is not one kube-bundle writes (owner, names, \
             link, checksum or name split differ)"
        )));
    }
    Ok((mode, size))
}

/// Concatenated gzip members, as the writer makes them, and nothing after the last one.
struct GzipMemberReader<R: std::io::BufRead> {
    member: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: std::io::BufRead> GzipMemberReader<R> {
    fn new(input: R) -> Self {
        Self {
            member: Some(flate2::bufread::GzDecoder::new(input)),
        }
    }
}

impl<R: std::io::BufRead> Read for GzipMemberReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(member) = &mut self.member else {
                return Ok(0);
            };
            let read = member.read(buf)?;
            if read > 0 || buf.is_empty() {
                return Ok(read);
            }
            let Some(member) = self.member.take() else {
                return Ok(0);
            };
            let mut input = member.into_inner();
            let rest = input.fill_buf()?;
            if rest.is_empty() {
                return Ok(0);
            }
            // Only the first magic byte: the buffer may end right after it. The decoder
            // checks the rest of the header and refuses anything but gzip.
            if rest[0] != 0x1f {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "data follows the gzip stream",
                ));
            }
            self.member = Some(flate2::bufread::GzDecoder::new(input));
        }
    }
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

pub(super) fn fail(reason: impl Into<String>) -> Error {
    Error::Verification(reason.into())
}

fn damaged(e: std::io::Error) -> Error {
    fail(format!("damaged archive: {}", shorten(&e.to_string())))
}

/// Messages quote at most this much of what they complain about.
const MAX_QUOTED: usize = 200;

pub(super) fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((index, _)) => format!("{}… ({} bytes)", &text[..index], text.len()),
        None => text.to_owned(),
    }
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
    fn a_member_boundary_at_the_end_of_the_read_buffer_is_still_a_boundary() {
        let member = |data: &[u8]| {
            let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            std::io::Write::write_all(&mut gzip, data).unwrap();
            gzip.finish().unwrap()
        };
        let first = member(b"first member ");
        let stream = [first.clone(), member(b"second member")].concat();
        // Every buffer size, among them the one that ends after the second member's first
        // magic byte (found by a bundle whose shared-binary member ended there).
        for capacity in 1..stream.len() + 2 {
            let input = std::io::BufReader::with_capacity(capacity, &stream[..]);
            let mut text = String::new();
            GzipMemberReader::new(input)
                .read_to_string(&mut text)
                .unwrap();
            assert_eq!(text, "first member second member", "capacity {capacity}");
        }
        let trailing = [first.clone(), b"junk".to_vec()].concat();
        let mut sink = Vec::new();
        let refused = GzipMemberReader::new(&trailing[..]).read_to_end(&mut sink);
        assert!(refused.is_err(), "trailing data accepted");
        let half_magic = [first, vec![0x1f, 0x00, 0x00]].concat();
        assert!(
            GzipMemberReader::new(&half_magic[..])
                .read_to_end(&mut sink)
                .is_err()
        );
    }
}
