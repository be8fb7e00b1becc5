//! Stage 6, second step: a node's tree as one deterministic tar.gz.
//!
//! In: a node's files (path under `<node>/`, mode, content) and an epoch. Out: a gzip
//! stream written to a file, and its SHA-256. Determinism: entries sorted by path, parent
//! directories added explicitly, every ustar header field set by hand (uid/gid 0, no
//! owner names, mode as intended, mtime = epoch), gzip header with mtime 0 and no file
//! name, a fixed compression level, and flate2 pinned to miniz_oxide. Large files
//! (the apiserver binary) are streamed from disk, never held in memory, and compressed
//! once per build ([`SharedFiles`]), not once per node: in 1 MiB chunks, each its own
//! gzip member, on every core at once, with bytes that do not depend on how many.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use super::{BundleFile, Tree};
use crate::error::Error;
use crate::render::Content;

/// gzip level: fixed, so the bytes only depend on the input.
pub const GZIP_LEVEL: u32 = 6;
/// gzip header OS byte: "unknown", whatever the build host is.
const GZIP_OS_UNKNOWN: u8 = 255;
const DIRECTORY_MODE: u32 = 0o755;

/// Writes `<node>/…` as a deterministic tar.gz to `path` and returns the SHA-256 of the
/// bytes written, so signing and SHA256SUMS need not read the tarball again.
///
/// A file `shared` has compressed is not compressed again: its tar header ends the
/// current member, its members are copied in, and a new member starts after them.
/// Concatenated members are one valid gzip stream (gzip allows any number of members),
/// which `tar xzf` reads as one.
pub fn write_tarball(
    path: &Path,
    node: &str,
    tree: &Tree,
    epoch: u64,
    shared: &SharedFiles,
) -> Result<[u8; 32], Error> {
    let written = write_tarball_unsynced(path, node, tree, epoch, shared)?;
    written.sync()?;
    Ok(written.digest)
}

/// A tarball whose bytes are written but maybe not yet on disk.
#[must_use = "a tarball is not durable until it is synced"]
pub struct UnsyncedTarball {
    pub digest: [u8; 32],
    path: PathBuf,
    file: File,
}

impl UnsyncedTarball {
    /// Waits until the tarball is on disk.
    pub fn sync(&self) -> Result<(), Error> {
        self.file.sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

/// `write_tarball` without the final fsync, so a build can wait for the disk on another
/// thread while this one compresses the next node.
pub fn write_tarball_unsynced(
    path: &Path,
    node: &str,
    tree: &Tree,
    epoch: u64,
    shared: &SharedFiles,
) -> Result<UnsyncedTarball, Error> {
    // Bundles carry private keys.
    let file = crate::secrets::create_private_file(path)?;
    let io = |e: std::io::Error| Error::io(path, e);
    let output = HashingWriter {
        inner: BufWriter::with_capacity(1 << 16, file),
        hasher: Sha256::new(),
    };
    let mut builder = tar::Builder::new(GzipMemberWriter::new(output));

    for (entry_path, file) in entries_in_order(node, tree) {
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
            Content::File(source) => match shared.compressed_member(source)? {
                Some((size, member)) => {
                    header.set_size(size);
                    header.set_cksum();
                    let output = builder.get_mut();
                    output.write_all(header.as_bytes()).map_err(io)?;
                    let mut member = File::open(&member).map_err(|e| Error::io(&member, e))?;
                    output.splice(&mut member).map_err(io)?;
                }
                None => {
                    let bytes = shared.small_file_contents(source)?;
                    header.set_size(bytes.len() as u64);
                    header.set_cksum();
                    builder.append(&header, bytes.as_slice()).map_err(io)?;
                }
            },
        }
    }
    let members = builder.into_inner().map_err(io)?;
    let mut output = members.finish().map_err(io)?;
    output.flush().map_err(io)?;
    let digest = output.hasher.finalize().into();
    let file = output.inner.into_inner().map_err(|e| io(e.into_error()))?;
    Ok(UnsyncedTarball {
        digest,
        path: path.to_path_buf(),
        file,
    })
}

/// What `write_tarball` makes of a tree, versioned: bump it whenever the same tree could
/// give other bytes (header fields, entry order, gzip settings, chunking), so that no
/// rebuild reuses a tarball the new writer would not write.
const TARBALL_FORMAT: u32 = 1;

/// A digest of everything `write_tarball` turns into bytes: the writer's version, the
/// node, the epoch, and each file's path, mode and content (a file from disk by its
/// SHA-256). Equal digests mean byte-identical tarballs, which lets a rebuild copy a
/// node's tarball instead of compressing it again.
pub fn inputs_digest(
    node: &str,
    tree: &Tree,
    epoch: u64,
    shared: &SharedFiles,
) -> Result<String, Error> {
    let mut hasher = Sha256::new();
    // Every variable-length field is length-prefixed, so no two inputs hash alike.
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    let writer = format!(
        "kube-bundle {} tarball format {TARBALL_FORMAT} gzip level {GZIP_LEVEL}",
        env!("CARGO_PKG_VERSION")
    );
    field(writer.as_bytes());
    field(node.as_bytes());
    field(&epoch.to_le_bytes());
    for (path, file) in tree {
        field(path.as_bytes());
        field(&file.mode.to_le_bytes());
        match &file.content {
            Content::Bytes(bytes) => {
                field(b"bytes");
                field(bytes);
            }
            Content::File(source) => {
                let prepared = shared.prepare(source)?;
                field(b"file");
                field(prepared.sha256.as_bytes());
                field(&prepared.size.to_le_bytes());
            }
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Every entry under `<node>/`, sorted by path: the files, and each directory above them
/// as an entry of its own (so that its header, too, is ours and not the extractor's).
fn entries_in_order<'a>(node: &str, tree: &'a Tree) -> Vec<(String, Option<&'a BundleFile>)> {
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
    entries
}

fn gzip_member<W: Write>(inner: W) -> GzEncoder<W> {
    GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS_UNKNOWN)
        .write(inner, Compression::new(GZIP_LEVEL))
}

/// A gzip stream made of members: writes go to the current member; `splice` closes it,
/// copies a ready-made member verbatim and opens the next.
struct GzipMemberWriter<W: Write> {
    current: Option<GzEncoder<W>>,
}

impl<W: Write> GzipMemberWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            current: Some(gzip_member(inner)),
        }
    }

    fn closed() -> std::io::Error {
        std::io::Error::other("gzip stream already failed")
    }

    fn finish(self) -> std::io::Result<W> {
        self.current.ok_or_else(Self::closed)?.finish()
    }
}

impl<W: Write + Send> GzipMemberWriter<HashingWriter<W>> {
    fn splice(&mut self, member: &mut impl Read) -> std::io::Result<()> {
        let mut inner = self.current.take().ok_or_else(Self::closed)?.finish()?;
        // Tens of megabytes: copied in large blocks, each hashed and written in one go
        // (std::io::copy's 8 KiB steps cost a tenth of the copy in system calls).
        let mut block = vec![0u8; SPLICE_BLOCK];
        loop {
            let read = match member.read(&mut block) {
                Ok(0) => break,
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            inner.write_hashing_alongside(&block[..read])?;
        }
        self.current = Some(gzip_member(inner));
        Ok(())
    }
}

impl<W: Write> Write for GzipMemberWriter<W> {
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

impl<W: Write + Send> HashingWriter<W> {
    /// Writes and hashes `block` at the same time when a core is free (the last
    /// tarball of a build is often written alone), one after the other when not.
    fn write_hashing_alongside(&mut self, block: &[u8]) -> std::io::Result<()> {
        let Self { inner, hasher } = self;
        let ((), written) = rayon::join(|| hasher.update(block), || inner.write_all(block));
        written
    }
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

const SPLICE_BLOCK: usize = 1 << 20;

/// Files at least this large are compressed once per build, not once per node.
pub const SHARED_MEMBER_MIN_SIZE: u64 = 1 << 20;
const TAR_BLOCK: u64 = 512;

/// Files from disk that every node ships (the apiserver binary): hashed once per build
/// and, when large and a node's tarball must be written, compressed once (with their tar
/// padding) into a run of gzip members, one per [`CHUNK_SIZE`] of input, that
/// `write_tarball` splices into each node's stream. A rebuild whose tarballs are all
/// reused never compresses them; a build that writes every tarball anyway hashes and
/// compresses in one read ([`SharedFiles::compressing_when_hashed`]).
pub struct SharedFiles {
    scratch: PathBuf,
    /// Compress a large file in the same pass that hashes it.
    compress_when_hashed: bool,
    /// Nodes are written in parallel; the first to need a file prepares it, the others
    /// wait for it.
    files: Mutex<BTreeMap<PathBuf, Prepared>>,
}

#[derive(Debug, Clone)]
pub struct SharedFile {
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
struct Prepared {
    file: SharedFile,
    /// The compressed members, once a tarball has needed them.
    member: Option<PathBuf>,
}

impl SharedFiles {
    /// `scratch` is created for the members, and must not exist yet; the caller removes
    /// it when the tarballs are written.
    pub fn new(scratch: PathBuf) -> Self {
        Self {
            scratch,
            compress_when_hashed: false,
            files: Mutex::new(BTreeMap::new()),
        }
    }

    /// For a build that will write at least one tarball holding each large file (no
    /// earlier tarball can be reused): the first `prepare` of a large file compresses it
    /// while hashing it, saving a whole read and hash of it before compression starts.
    pub fn compressing_when_hashed(scratch: PathBuf) -> Self {
        Self {
            compress_when_hashed: true,
            ..Self::new(scratch)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Prepared>> {
        // A panic elsewhere cannot leave the map half-updated: insert is the only write.
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hashes `source` on first use.
    pub fn prepare(&self, source: &Path) -> Result<SharedFile, Error> {
        let mut files = self.lock();
        if let Some(prepared) = files.get(source) {
            return Ok(prepared.file.clone());
        }
        let file = File::open(source).map_err(|e| Error::io(source, e))?;
        let size = file.metadata().map_err(|e| Error::io(source, e))?.len();
        let prepared = if self.compress_when_hashed && size >= SHARED_MEMBER_MIN_SIZE {
            let index = members_made(&files);
            let (sha256, member) = self.compress(source, file, size, index)?;
            Prepared {
                file: SharedFile { sha256, size },
                member: Some(member),
            }
        } else {
            let mut hasher = Sha256::new();
            // take() guards against the file growing while it is read.
            let copied = std::io::copy(&mut file.take(size), &mut HashingSink(&mut hasher))
                .map_err(|e| Error::io(source, e))?;
            if copied != size {
                return Err(shrank(source, size, copied));
            }
            Prepared {
                file: SharedFile {
                    sha256: hex::encode(hasher.finalize()),
                    size,
                },
                member: None,
            }
        };
        let file = prepared.file.clone();
        files.insert(source.to_path_buf(), prepared);
        Ok(file)
    }

    /// The size and compressed members of a large `source` (compressed on first use),
    /// `None` for a small one, which goes into each tarball whole (`small_file_contents`).
    fn compressed_member(&self, source: &Path) -> Result<Option<(u64, PathBuf)>, Error> {
        let prepared = self.prepare(source)?;
        if prepared.size < SHARED_MEMBER_MIN_SIZE {
            return Ok(None);
        }
        let mut files = self.lock();
        let index = members_made(&files);
        let Some(entry) = files.get_mut(source) else {
            return Err(Error::Internal(format!(
                "{}: compressed before it was hashed",
                source.display()
            )));
        };
        if let Some(member) = &entry.member {
            return Ok(Some((prepared.size, member.clone())));
        }
        let file = File::open(source).map_err(|e| Error::io(source, e))?;
        let (sha256, member) = self.compress(source, file, prepared.size, index)?;
        // bundle.json records the hash `prepare` took: the member must hold those bytes.
        if sha256 != prepared.sha256 {
            return Err(changed_while_read(source));
        }
        entry.member = Some(member.clone());
        Ok(Some((prepared.size, member)))
    }

    /// The bytes of a small `source` (streamed into each tarball, not compressed on its
    /// own), checked against what `prepare` hashed: bundle.json records that hash and
    /// size, and a file that changed since would make a tarball that contradicts it.
    pub fn small_file_contents(&self, source: &Path) -> Result<Vec<u8>, Error> {
        let prepared = self.prepare(source)?;
        let file = File::open(source).map_err(|e| Error::io(source, e))?;
        let mut bytes = Vec::new();
        // One byte more than hashed tells a grown file from an unchanged one.
        file.take(prepared.size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(source, e))?;
        if bytes.len() as u64 != prepared.size
            || hex::encode(Sha256::digest(&bytes)) != prepared.sha256
        {
            return Err(changed_while_read(source));
        }
        Ok(bytes)
    }

    /// Compresses the first `size` bytes of `source` (open as `file`) into
    /// `<scratch>/<index>.gz`; returns the SHA-256 of the bytes compressed and the path.
    fn compress(
        &self,
        source: &Path,
        file: File,
        size: u64,
        index: usize,
    ) -> Result<(String, PathBuf), Error> {
        let mut reader = file.take(size);
        std::fs::create_dir_all(&self.scratch).map_err(|e| Error::io(&self.scratch, e))?;
        let member_path = self.scratch.join(format!("{index}.gz"));
        let member_file = File::create(&member_path).map_err(|e| Error::io(&member_path, e))?;
        let mut output = BufWriter::with_capacity(1 << 16, member_file);
        let mut hasher = Sha256::new();
        let threads = rayon::current_num_threads();
        let copied = compress_in_chunks(&mut reader, size, &mut hasher, &mut output, threads)
            .map_err(|failure| match failure {
                ChunkFailure::Read(e) => Error::io(source, e),
                ChunkFailure::Write(e) => Error::io(&member_path, e),
            })?;
        if copied != size {
            return Err(shrank(source, size, copied));
        }
        output.flush().map_err(|e| Error::io(&member_path, e))?;
        Ok((hex::encode(hasher.finalize()), member_path))
    }

    /// Removes the compressed members.
    pub fn close(self) -> Result<(), Error> {
        match std::fs::remove_dir_all(&self.scratch) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.scratch, e)),
            _ => Ok(()),
        }
    }
}

/// How many files have compressed members: the next one's index in the scratch folder.
fn members_made(files: &BTreeMap<PathBuf, Prepared>) -> usize {
    files.values().filter(|p| p.member.is_some()).count()
}

fn changed_while_read(source: &Path) -> Error {
    Error::Input(format!(
        "{}: changed while kube-bundle read it; build again once nothing writes to it",
        source.display()
    ))
}

fn shrank(source: &Path, size: u64, copied: u64) -> Error {
    Error::Input(format!(
        "{}: shrank while being read ({size} bytes, then {copied})",
        source.display()
    ))
}

/// Input bytes per gzip member of a shared file: each is compressed on its own, so the
/// members can be made in parallel. 1 MiB, as pigz --independent and BGZF use, costs
/// well under 1 % of compression (each member starts with an empty window).
pub const CHUNK_SIZE: usize = 1 << 20;
/// Most chunks read but not yet written, per compressing thread: enough to keep every
/// thread busy while the next chunk is read, few enough to keep memory flat (each
/// chunk in flight holds its input and its output, about 2 MiB at worst).
const CHUNKS_IN_FLIGHT_PER_THREAD: usize = 2;
const MAX_CHUNKS_IN_FLIGHT: usize = 16;

/// Which side of `compress_in_chunks` failed: the file read or the member written.
enum ChunkFailure {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Reads `size` bytes from `reader` (hashing them into `hasher`), adds the zero padding
/// that ends a tar entry, and writes the whole as gzip members of [`CHUNK_SIZE`] input
/// bytes each to `output`, in order. Returns how many bytes the file gave.
///
/// The chunk boundaries depend on nothing but the input, and each member is compressed
/// alone with fixed settings, so the bytes are the same whatever `threads` is. The
/// calling thread reads, hashes and writes while `threads` scoped threads compress.
/// They are plain threads, not rayon's: `SharedFiles::prepare` runs inside rayon's
/// per-node tasks, under a lock, and a rayon wait there could pick up another node's
/// task on this same thread and wait for the lock it already holds.
fn compress_in_chunks(
    reader: &mut impl Read,
    size: u64,
    hasher: &mut Sha256,
    output: &mut impl Write,
    threads: usize,
) -> Result<u64, ChunkFailure> {
    let threads = threads.max(1);
    let window = (threads * CHUNKS_IN_FLIGHT_PER_THREAD).min(MAX_CHUNKS_IN_FLIGHT);
    let padding = ((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK) as usize;
    let (todo_sender, todo) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(window);
    let todo = Mutex::new(todo);
    let (done_sender, done) = std::sync::mpsc::channel::<(usize, std::io::Result<Vec<u8>>)>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let done_sender = done_sender.clone();
            let todo = &todo;
            scope.spawn(move || {
                loop {
                    // The lock is held only while waiting for the next chunk.
                    let next = todo
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .recv();
                    let Ok((index, chunk)) = next else { break };
                    if done_sender.send((index, gzip_chunk(&chunk))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_sender);
        let mut writer = OrderedMembers::new(output, &done);
        let mut copied = 0u64;
        let mut index = 0;
        loop {
            let mut chunk = vec![0u8; CHUNK_SIZE];
            let read = fill(reader, &mut chunk).map_err(ChunkFailure::Read)?;
            copied += read as u64;
            hasher.update(&chunk[..read]);
            chunk.truncate(read);
            let last = read < CHUNK_SIZE;
            if last {
                chunk.resize(read + padding, 0);
            }
            if !chunk.is_empty() {
                writer.wait_until_fewer_than(index, window)?;
                // A send fails only when every compressing thread is gone, which
                // `wait_until_fewer_than` and `finish` then report.
                let _ = todo_sender.send((index, chunk));
                index += 1;
            }
            if last {
                break;
            }
        }
        drop(todo_sender);
        writer.finish(index)?;
        Ok(copied)
    })
}

/// Reads until `buffer` is full or the input ends; returns how much was read.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn gzip_chunk(chunk: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut gzip = gzip_member(Vec::with_capacity(chunk.len() / 2 + 64));
    gzip.write_all(chunk)?;
    gzip.finish()
}

/// Compressed chunks arrive in any order; they are written in input order.
struct OrderedMembers<'a, W: Write> {
    output: &'a mut W,
    done: &'a std::sync::mpsc::Receiver<(usize, std::io::Result<Vec<u8>>)>,
    arrived: BTreeMap<usize, Vec<u8>>,
    written: usize,
}

impl<'a, W: Write> OrderedMembers<'a, W> {
    fn new(
        output: &'a mut W,
        done: &'a std::sync::mpsc::Receiver<(usize, std::io::Result<Vec<u8>>)>,
    ) -> Self {
        Self {
            output,
            done,
            arrived: BTreeMap::new(),
            written: 0,
        }
    }

    /// Writes members as they complete until fewer than `window` of the first `sent`
    /// chunks are still unwritten.
    fn wait_until_fewer_than(&mut self, sent: usize, window: usize) -> Result<(), ChunkFailure> {
        while sent - self.written >= window {
            self.receive_one()?;
        }
        Ok(())
    }

    fn finish(mut self, sent: usize) -> Result<(), ChunkFailure> {
        while self.written < sent {
            self.receive_one()?;
        }
        Ok(())
    }

    fn receive_one(&mut self) -> Result<(), ChunkFailure> {
        let (index, member) = self.done.recv().map_err(|_| {
            ChunkFailure::Write(std::io::Error::other("the compressing threads stopped"))
        })?;
        self.arrived
            .insert(index, member.map_err(ChunkFailure::Write)?);
        while let Some(member) = self.arrived.remove(&self.written) {
            self.output
                .write_all(&member)
                .map_err(ChunkFailure::Write)?;
            self.written += 1;
        }
        Ok(())
    }
}

/// Feeds a hasher as a writer, so `io::copy` can hash a stream.
struct HashingSink<'a>(&'a mut Sha256);

impl Write for HashingSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

    /// `tree()` plus `binary` shipped as the apiserver, read from disk.
    fn tree_shipping(binary: &Path) -> Tree {
        let mut tree = tree();
        tree.insert(
            "rootfs/usr/local/bin/kube-apiserver".into(),
            BundleFile {
                mode: 0o755,
                content: Content::File(binary.to_path_buf()),
            },
        );
        tree
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
        let tree = tree_shipping(&binary);

        let inline = dir.path().join("inline.tar.gz");
        write_tarball(&inline, "n1", &tree, 7, &no_shared()).unwrap();

        let shared = SharedFiles::new(dir.path().join("scratch"));
        let prepared = shared.prepare(&binary).unwrap();
        assert_eq!(prepared.sha256, hex::encode(Sha256::digest(&content)));
        assert_eq!(prepared.size, content.len() as u64);
        assert!(
            !dir.path().join("scratch").exists(),
            "hashing alone compressed the file: a rebuild that reuses every tarball pays it"
        );
        let (size, member) = shared.compressed_member(&binary).unwrap().unwrap();
        assert_eq!(size, content.len() as u64);
        let member = std::fs::read(member).unwrap();
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

    /// A build that writes every tarball hashes and compresses in one read: the same
    /// hash and the same member bytes as hashing first and compressing later.
    #[test]
    fn compressing_while_hashing_gives_what_hashing_then_compressing_gives() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("kube-apiserver");
        let content: Vec<u8> = (0..2 * SHARED_MEMBER_MIN_SIZE + 77)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(&binary, &content).unwrap();

        let lazy = SharedFiles::new(dir.path().join("lazy"));
        let hashed = lazy.prepare(&binary).unwrap();
        let (_, lazy_member) = lazy.compressed_member(&binary).unwrap().unwrap();

        let eager = SharedFiles::compressing_when_hashed(dir.path().join("eager"));
        let prepared = eager.prepare(&binary).unwrap();
        assert!(
            dir.path().join("eager").exists(),
            "prepare did not compress: the build reads the binary twice"
        );
        assert_eq!(prepared.sha256, hashed.sha256);
        assert_eq!(prepared.sha256, hex::encode(Sha256::digest(&content)));
        let (size, eager_member) = eager.compressed_member(&binary).unwrap().unwrap();
        assert_eq!(size, content.len() as u64);
        assert_eq!(
            std::fs::read(eager_member).unwrap(),
            std::fs::read(lazy_member).unwrap()
        );

        // Small files are never compressed on their own, eagerly or not.
        let small = dir.path().join("small");
        std::fs::write(&small, b"small").unwrap();
        eager.prepare(&small).unwrap();
        assert_eq!(eager.compressed_member(&small).unwrap(), None);
        eager.close().unwrap();
        lazy.close().unwrap();
    }

    /// A small file goes into the tarball whole, but only as `prepare` hashed it: a file
    /// that shrank, grew or changed since would contradict bundle.json (and a shrunken one
    /// would leave a tar header promising bytes that never follow).
    #[test]
    fn a_small_file_that_changed_since_it_was_hashed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("kube-apiserver");
        let tree = tree_shipping(&binary);
        for changed in [
            &b"shorter"[..],
            b"binary 0ne as hashed",
            b"binary one as hashed, then more",
        ] {
            std::fs::write(&binary, b"binary one as hashed").unwrap();
            let shared = SharedFiles::new(dir.path().join("scratch"));
            shared.prepare(&binary).unwrap();
            std::fs::write(&binary, changed).unwrap();
            let path = dir.path().join("n.tar.gz");
            let error = write_tarball(&path, "n", &tree, 7, &shared)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("changed while kube-bundle read it"),
                "{changed:?}: {error}"
            );
        }
    }

    #[test]
    fn a_large_file_that_changed_since_it_was_hashed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("kube-apiserver");
        let content = vec![b'a'; SHARED_MEMBER_MIN_SIZE as usize + 10];
        std::fs::write(&binary, &content).unwrap();
        let shared = SharedFiles::new(dir.path().join("scratch"));
        shared.prepare(&binary).unwrap();
        // Same size, other bytes: bundle.json would record a hash the tarball does not hold.
        let mut changed = content.clone();
        changed[7] = b'b';
        std::fs::write(&binary, &changed).unwrap();
        let error = shared.compressed_member(&binary).unwrap_err().to_string();
        assert!(
            error.contains("changed while kube-bundle read it"),
            "{error}"
        );
    }

    #[test]
    fn the_inputs_digest_changes_with_everything_the_tarball_holds() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("kube-apiserver");
        std::fs::write(&binary, b"binary one").unwrap();
        let shared = SharedFiles::new(dir.path().join("scratch"));
        let base = tree_shipping(&binary);
        let digest = |node: &str, tree: &Tree, epoch: u64| {
            inputs_digest(node, tree, epoch, &shared).unwrap()
        };
        let reference = digest("n1", &base, 7);
        assert_eq!(
            reference,
            digest("n1", &base.clone(), 7),
            "not deterministic"
        );

        let mut variants = vec![digest("n2", &base, 7), digest("n1", &base, 8)];
        let (first_path, first_file) = base
            .iter()
            .next()
            .map(|(p, f)| (p.clone(), f.clone()))
            .unwrap();
        let mut other_mode = base.clone();
        other_mode.get_mut(&first_path).unwrap().mode ^= 0o022;
        variants.push(digest("n1", &other_mode, 7));
        let mut other_path = base.clone();
        other_path.remove(&first_path);
        other_path.insert(format!("{first_path}.moved"), first_file.clone());
        variants.push(digest("n1", &other_path, 7));
        let mut other_bytes = base.clone();
        other_bytes.get_mut(&first_path).unwrap().content = Content::Bytes(b"other".to_vec());
        variants.push(digest("n1", &other_bytes, 7));
        // A file from disk counts by its content: the same path with other bytes differs.
        std::fs::write(&binary, b"binary two").unwrap();
        let fresh = SharedFiles::new(dir.path().join("scratch2"));
        variants.push(inputs_digest("n1", &base, 7, &fresh).unwrap());
        for (index, variant) in variants.iter().enumerate() {
            assert_ne!(
                *variant, reference,
                "variant {index} hashed like the reference"
            );
        }
    }

    /// The members of a gzip stream, each decompressed on its own.
    fn members(mut stream: &[u8]) -> Vec<Vec<u8>> {
        let mut members = Vec::new();
        while !stream.is_empty() {
            let mut decoder = flate2::bufread::GzDecoder::new(stream);
            let mut member = Vec::new();
            decoder.read_to_end(&mut member).unwrap();
            members.push(member);
            stream = decoder.into_inner();
        }
        members
    }

    /// A file over several chunks: one member per 1 MiB of input (the tar padding in the
    /// last), each complete on its own, and the same bytes whatever the thread count.
    #[test]
    fn chunks_are_independent_members_and_the_bytes_ignore_the_thread_count() {
        for size in [3 * CHUNK_SIZE + 1001, 2 * CHUNK_SIZE] {
            let mut content: Vec<u8> = (0..size)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            content[..CHUNK_SIZE / 2].fill(b'k');
            let compress = |threads: usize| {
                let mut hasher = Sha256::new();
                let mut output = Vec::new();
                let copied = compress_in_chunks(
                    &mut content.as_slice(),
                    size as u64,
                    &mut hasher,
                    &mut output,
                    threads,
                )
                .unwrap_or_else(|_| panic!("{threads} threads failed"));
                assert_eq!(copied, size as u64);
                assert_eq!(
                    hasher.finalize().to_vec(),
                    Sha256::digest(&content).to_vec()
                );
                output
            };
            let one = compress(1);
            for threads in [2, 3, 8] {
                assert!(compress(threads) == one, "{threads} threads: other bytes");
            }
            let members = members(&one);
            let padded = size.div_ceil(TAR_BLOCK as usize) * TAR_BLOCK as usize;
            assert_eq!(members.len(), padded.div_ceil(CHUNK_SIZE), "size {size}");
            let (last, full) = members.split_last().unwrap();
            assert!(full.iter().all(|member| member.len() == CHUNK_SIZE));
            assert_eq!(last.len(), padded - full.len() * CHUNK_SIZE);
            let joined = members.concat();
            assert_eq!(&joined[..size], content.as_slice());
            assert!(joined[size..].iter().all(|b| *b == 0), "tar padding");
            assert!(one.starts_with(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]));
        }
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
