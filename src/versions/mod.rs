//! The Kubernetes versions kube-bundle knows, and what changed between them, per component.
//!
//! Data only: `validate` uses it to refuse versions outside the range and extraArgs the
//! target rejects; `plan` uses it to decide which flags and file formats a minor accepts.
//! One submodule per component of a master (the apiserver's table is re-exported here, as
//! the first one kube-bundle had); each row's note says what changed, and its source where
//! the fact comes from upstream. tests/integration/oracle.rs checks the tables against the
//! real binaries of every pinned release.

mod apiserver;
pub mod controller_manager;
pub mod etcd;
pub mod leader_election;
pub mod scheduler;

pub use apiserver::*;

/// The seed guide's era; nothing older is rendered.
pub const OLDEST_MINOR: u64 = 12;
/// The newest minor the tables below were checked against.
pub const NEWEST_MINOR: u64 = 37;
/// What `init` writes: the newest release of the newest minor the table knows.
pub const NEWEST_RELEASE: &str = "v1.37.2";

/// Whether kube-bundle's hardened defaults apply (`--profiling=false`, TLS 1.2 with strong
/// cipher suites, 10 rotated audit logs, no alpha APIs). The seed's own release renders the
/// seed's unit unchanged instead, so that a bundle for it can be compared with the guide.
pub fn hardened_defaults(minor: u64) -> bool {
    minor > OLDEST_MINOR
}

/// The TLS 1.2 cipher suites kube-bundle allows: ECDHE key exchange (forward secrecy) with
/// an AEAD cipher, each for an ECDSA and an RSA certificate, so that either
/// `pki.keyAlgorithm` can complete a TLS 1.2 handshake. TLS 1.3 suites are not
/// configurable and stay on. Names as `minor`'s `--tls-cipher-suites` accepts them: up to
/// 1.22 its own list named ChaCha20-Poly1305 without the `_SHA256` suffix; from 1.23 it
/// takes Go's names and keeps the short ones as aliases (read in the flag parser's source of
/// every minor from 1.13 to 1.37; the oracle test checks the names against real binaries).
pub fn strong_tls_cipher_suites(minor: u64) -> [&'static str; 6] {
    let (ecdsa_chacha, rsa_chacha) = if minor >= CHACHA20_SHA256_NAMES_FROM {
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        )
    } else {
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        )
    };
    [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ecdsa_chacha,
        rsa_chacha,
    ]
}

/// From this minor `--tls-cipher-suites` knows `TLS_ECDHE_*_WITH_CHACHA20_POLY1305_SHA256`;
/// before it, an apiserver given that name refuses to start.
pub const CHACHA20_SHA256_NAMES_FROM: u64 = 23;

/// One command-line flag of a control-plane component: the minors that accept it, what
/// replaces it, whether required. Every component's table has rows of this shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    pub name: &'static str,
    /// First minor that accepts it; [`OLDEST_MINOR`] means "at least since the seed".
    pub first: u64,
    /// Last minor that accepts it; `None` while it is still accepted.
    pub last: Option<u64>,
    /// The flag to use instead once this one is gone.
    pub replacement: Option<&'static str>,
    /// From this minor on the component refuses to start without it.
    pub required_from: Option<u64>,
    /// From this minor on it is accepted but deprecated or without effect: kube-bundle
    /// stops rendering it there, though the binary would still take it.
    pub inert_from: Option<u64>,
    /// Why it changed, in words `plan` and `check` show the user.
    pub note: &'static str,
    /// Where the fact comes from upstream (a PR or KEP number), for maintainers reading the
    /// table; never shown to users.
    pub source: &'static str,
}

impl Flag {
    pub fn accepted_in(&self, minor: u64) -> bool {
        minor >= self.first && self.last.is_none_or(|last| minor <= last)
    }

    pub fn required_in(&self, minor: u64) -> bool {
        self.required_from.is_some_and(|from| minor >= from)
    }

    /// Accepted and still doing something in `minor`: worth rendering.
    pub fn effective_in(&self, minor: u64) -> bool {
        self.accepted_in(minor) && self.inert_from.is_none_or(|from| minor < from)
    }
}

const fn always(name: &'static str) -> Flag {
    Flag {
        name,
        first: OLDEST_MINOR,
        last: None,
        replacement: None,
        required_from: None,
        inert_from: None,
        note: "",
        source: "",
    }
}

const fn until(name: &'static str, last: u64, note: &'static str) -> Flag {
    Flag {
        name,
        first: OLDEST_MINOR,
        last: Some(last),
        replacement: None,
        required_from: None,
        inert_from: None,
        note,
        source: "",
    }
}

const fn since(name: &'static str, first: u64, note: &'static str) -> Flag {
    Flag {
        name,
        first,
        last: None,
        replacement: None,
        required_from: None,
        inert_from: None,
        note,
        source: "",
    }
}

/// Checks one component's table: sorted and unique names, sane ranges inside
/// `oldest..=newest`, a reason for every removal, a replacement accepted wherever it must
/// stand in for the row, an inert flag still accepted where it turns inert, and a required
/// flag accepted wherever it is required.
#[cfg(test)]
pub(crate) fn assert_table_consistent(component: &str, table: &[Flag], oldest: u64, newest: u64) {
    let names: Vec<_> = table.iter().map(|f| f.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "{component}: rows not sorted or not unique");
    let lookup = |name: &str| table.iter().find(|row| row.name == name);
    for row in table {
        assert!(row.first >= oldest, "{component} --{}", row.name);
        assert!(row.first <= newest, "{component} --{}", row.name);
        if let Some(last) = row.last {
            assert!(row.first <= last, "{component} --{}", row.name);
            if last < newest {
                assert!(
                    !row.note.is_empty(),
                    "{component} --{} is removed without a reason",
                    row.name
                );
            }
        }
        if let Some(from) = row.inert_from {
            assert!(
                row.accepted_in(from),
                "{component} --{}: inert from a minor that refuses it",
                row.name
            );
        }
        if let Some(replacement) = row.replacement {
            let replacement = lookup(replacement)
                .unwrap_or_else(|| panic!("{component} --{} -> {replacement}", row.name));
            // It stands in after the row is gone, and before the row exists when it is
            // the older name (a rename read both ways).
            let covered = |minor: &u64| match row.last {
                Some(last) if *minor > last => true,
                _ => *minor < row.first && replacement.first < row.first,
            };
            for minor in (oldest..=newest).filter(covered) {
                assert!(
                    replacement.accepted_in(minor),
                    "{component}: --{} replaces --{} in {minor}",
                    replacement.name,
                    row.name
                );
            }
        }
        for minor in oldest..=newest {
            if row.required_in(minor) {
                assert!(
                    row.accepted_in(minor),
                    "{component} --{} required but rejected in {minor}",
                    row.name
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_cipher_suites_serve_both_key_kinds_with_each_minors_names() {
        for minor in OLDEST_MINOR..=NEWEST_MINOR {
            let suites = strong_tls_cipher_suites(minor);
            for suite in suites {
                assert!(suite.starts_with("TLS_ECDHE_"), "1.{minor}: {suite}");
                assert!(
                    suite.contains("_GCM_") || suite.contains("_CHACHA20_POLY1305"),
                    "1.{minor}: {suite}"
                );
            }
            // A TLS 1.2 handshake needs a suite for the serving key: ECDSA or RSA.
            for kind in ["_ECDSA_", "_RSA_"] {
                assert_eq!(
                    suites.iter().filter(|s| s.contains(kind)).count(),
                    3,
                    "1.{minor}: {kind}"
                );
            }
            let long_chacha = suites.iter().filter(|s| s.ends_with("POLY1305_SHA256"));
            let expected = if minor >= 23 { 2 } else { 0 };
            assert_eq!(long_chacha.count(), expected, "1.{minor}");
        }
        assert!(!hardened_defaults(OLDEST_MINOR));
        assert!(hardened_defaults(OLDEST_MINOR + 1));
    }
}
