//! `kube-bundle diff`: what changes on a node between two bundle generations, offline.
//!
//! In: two tarballs (read by `verify::reader`, with `verify`'s safety checks). Out: a [`BundleDiff`]: the
//! kube-apiserver flags added, removed or changed (and those of every other control-plane
//! unit); every file added, removed or changed,
//! with certificate details (subject, SANs, validity, whether the key changed) and the
//! encryption config's key names and order; and whether install.sh will restart the
//! apiserver. Key material never appears: key files are reported as changed, nothing more.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::bundle::format::{
    APISERVER_UNIT, FORMAT_VERSION_1, PROVENANCE_FILE, Provenance, ROOTFS, RestartUnits,
};
use crate::error::Error;
use crate::verify::reader::{Entry, read_entries};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleDiff {
    pub old_node: String,
    pub new_node: String,
    /// The kube-apiserver's flags.
    pub flags: FlagDiff,
    /// Every other control-plane unit either bundle runs (the controller manager, the
    /// scheduler), by unit name: a unit one bundle lacks has all its flags added or removed.
    pub component_flags: BTreeMap<String, FlagDiff>,
    pub files: Vec<FileChange>,
    /// Whether install.sh restarts anything.
    pub restart: bool,
    /// The units install.sh restarts: every unit a changed file names (its FILES list).
    pub restart_units: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct FlagDiff {
    pub added: BTreeMap<String, String>,
    pub removed: BTreeMap<String, String>,
    /// name → [old, new]
    pub changed: BTreeMap<String, [String; 2]>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    pub path: String,
    pub change: Change,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateChange>,
    /// Encryption config: `provider:key` in config order, old then new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_keys: Option<[Vec<String>; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateChange {
    pub subject: [String; 2],
    pub sans_added: Vec<String>,
    pub sans_removed: Vec<String>,
    pub not_after: [String; 2],
    pub key_changed: bool,
}

pub fn diff(old: &Path, new: &Path) -> Result<BundleDiff, Error> {
    let (old_node, old_entries) = read_entries(old)?;
    let (new_node, new_entries) = read_entries(new)?;
    let (old_units, new_units) = (units(&old_entries)?, units(&new_entries)?);
    let apiserver_flags =
        |units: &Units| units.flags.get(APISERVER_UNIT).cloned().unwrap_or_default();
    let flags = flag_diff(&apiserver_flags(&old_units), &apiserver_flags(&new_units));
    let component_units: BTreeSet<&String> = old_units
        .flags
        .keys()
        .chain(new_units.flags.keys())
        .filter(|unit| *unit != APISERVER_UNIT)
        .collect();
    let component_flags = component_units
        .into_iter()
        .map(|unit| {
            let of = |units: &Units| units.flags.get(unit).cloned().unwrap_or_default();
            (unit.clone(), flag_diff(&of(&old_units), &of(&new_units)))
        })
        .collect();
    let paths: BTreeSet<&String> = old_entries.keys().chain(new_entries.keys()).collect();
    let mut files = Vec::new();
    for path in paths {
        let change = match (old_entries.get(path), new_entries.get(path)) {
            (Some(a), Some(b)) if a.sha256 == b.sha256 && a.mode == b.mode => continue,
            (Some(_), Some(_)) => Change::Changed,
            (None, Some(_)) => Change::Added,
            (Some(_), None) => Change::Removed,
            (None, None) => continue,
        };
        let pair = (old_entries.get(path), new_entries.get(path));
        let certificate = match pair {
            (Some(a), Some(b)) if path.ends_with(".crt") => certificate_change(a, b),
            _ => None,
        };
        let encryption_keys = match pair {
            (Some(a), Some(b)) if path.ends_with("encryption-config.yaml") => {
                Some([encryption_key_names(a), encryption_key_names(b)])
            }
            _ => None,
        };
        files.push(FileChange {
            path: path.clone(),
            change,
            certificate,
            encryption_keys,
        });
    }
    // The newer bundle's record wins: its installer is the one that restarts.
    let readers: BTreeMap<String, Vec<String>> = old_units
        .restarts
        .into_iter()
        .chain(new_units.restarts)
        .collect();
    let restart_units: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.path.strip_prefix(ROOTFS))
        .flat_map(|path| {
            readers
                .get(path)
                .cloned()
                .unwrap_or_else(|| vec![APISERVER_UNIT.to_owned()])
        })
        .collect();
    Ok(BundleDiff {
        old_node,
        new_node,
        flags,
        component_flags,
        files,
        restart: !restart_units.is_empty(),
        restart_units: restart_units.into_iter().collect(),
    })
}

/// What a bundle says about its units: which units each installed file restarts, and each
/// unit's flags.
struct Units {
    restarts: BTreeMap<String, Vec<String>>,
    flags: BTreeMap<String, BTreeMap<String, String>>,
}

/// The unit facts from bundle.json; for a format-1 bundle (an earlier release, which did not
/// record them), recovered from its installer and unit.
fn units(entries: &BTreeMap<String, Entry>) -> Result<Units, Error> {
    let provenance: Provenance = entries
        .get(PROVENANCE_FILE)
        .and_then(|e| e.text.as_deref())
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| Error::Verification("the bundle has no readable bundle.json".into()))?;
    if provenance.format_version == FORMAT_VERSION_1 {
        return Ok(Units {
            restarts: format_1::file_units(entries),
            flags: BTreeMap::from([(APISERVER_UNIT.to_owned(), format_1::unit_flags(entries))]),
        });
    }
    let restarts = provenance
        .restarts
        .iter()
        .map(|(path, units)| (path.clone(), RestartUnits::units(units).to_vec()))
        .collect();
    Ok(Units {
        restarts,
        flags: provenance.unit_flags,
    })
}

/// Readers for format-1 bundles only, which recorded neither restart units nor flags: they
/// go with format 1.
mod format_1 {
    use std::collections::BTreeMap;

    use crate::verify::reader::Entry;

    const UNIT: &str = "rootfs/etc/systemd/system/kube-apiserver.service";

    /// Installed path → the unit install.sh restarts when it changes, from the installer's
    /// `FILES` entries (`'mode path unit'`).
    pub fn file_units(entries: &BTreeMap<String, Entry>) -> BTreeMap<String, Vec<String>> {
        let Some(installer) = entries.get("install.sh").and_then(|e| e.text.as_deref()) else {
            return BTreeMap::new();
        };
        installer
            .lines()
            .skip_while(|line| !line.starts_with("FILES=("))
            .skip(1)
            .take_while(|line| !line.starts_with(')'))
            .filter_map(|line| {
                let words: Vec<&str> = line.trim().trim_matches('\'').split(' ').collect();
                match words.as_slice() {
                    [_mode, path, unit] => Some(((*path).to_owned(), vec![(*unit).to_owned()])),
                    _ => None,
                }
            })
            .collect()
    }

    /// The kube-apiserver flags of a bundle's unit, undoing systemd's quoting.
    pub fn unit_flags(entries: &BTreeMap<String, Entry>) -> BTreeMap<String, String> {
        let Some(unit) = entries.get(UNIT).and_then(|e| e.text.as_deref()) else {
            return BTreeMap::new();
        };
        unit.lines()
            .filter_map(|line| {
                let word = line.trim().trim_end_matches('\\').trim();
                let word = word
                    .strip_prefix('"')
                    .and_then(|w| w.strip_suffix('"'))
                    .unwrap_or(word);
                let flag = word.strip_prefix("--")?;
                let (name, value) = flag.split_once('=').unwrap_or((flag, ""));
                let value = value
                    .replace("%%", "%")
                    .replace("$$", "$")
                    .replace("\\\"", "\"")
                    .replace("\\\\", "\\");
                Some((name.to_owned(), value))
            })
            .collect()
    }
}

fn flag_diff(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> FlagDiff {
    let mut diff = FlagDiff::default();
    for (name, value) in old {
        match new.get(name) {
            None => {
                diff.removed.insert(name.clone(), value.clone());
            }
            Some(other) if other != value => {
                diff.changed
                    .insert(name.clone(), [value.clone(), other.clone()]);
            }
            Some(_) => {}
        }
    }
    for (name, value) in new.iter().filter(|(name, _)| !old.contains_key(*name)) {
        diff.added.insert(name.clone(), value.clone());
    }
    diff
}

struct CertFacts {
    subject: String,
    sans: BTreeSet<String>,
    not_after: String,
    public_key: Vec<u8>,
}

fn cert_facts(entry: &Entry) -> Option<CertFacts> {
    let der = pem::parse(entry.text.as_deref()?).ok()?.into_contents();
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let sans = crate::certificate::subject_alt_names(&cert);
    Some(CertFacts {
        subject: cert.subject().to_string(),
        sans,
        not_after: cert.validity().not_after.to_datetime().date().to_string(),
        public_key: cert.public_key().raw.to_vec(),
    })
}

fn certificate_change(old: &Entry, new: &Entry) -> Option<CertificateChange> {
    let (a, b) = (cert_facts(old)?, cert_facts(new)?);
    Some(CertificateChange {
        sans_added: b.sans.difference(&a.sans).cloned().collect(),
        sans_removed: a.sans.difference(&b.sans).cloned().collect(),
        key_changed: a.public_key != b.public_key,
        subject: [a.subject, b.subject],
        not_after: [a.not_after, b.not_after],
    })
}

/// `provider:name` for every key of an encryption config, in order; never the secrets.
fn encryption_key_names(entry: &Entry) -> Vec<String> {
    let Some(text) = entry.text.as_deref() else {
        return Vec::new();
    };
    let Ok(config) = serde_saphyr::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for provider in config["resources"][0]["providers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for (kind, body) in provider.as_object().into_iter().flatten() {
            let keys = body["keys"].as_array();
            if keys.is_none() {
                names.push(kind.clone());
            }
            for key in keys.into_iter().flatten() {
                names.push(format!("{kind}:{}", key["name"].as_str().unwrap_or("?")));
            }
        }
    }
    names
}

/// The human form of a diff.
pub fn to_text(diff: &BundleDiff) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(text, "node {} → {}", diff.old_node, diff.new_node);
    let units = std::iter::once((APISERVER_UNIT, &diff.flags)).chain(
        diff.component_flags
            .iter()
            .map(|(unit, flags)| (unit.as_str(), flags)),
    );
    for (unit, flags) in units {
        let program = unit.trim_end_matches(".service");
        if flags.added.is_empty() && flags.removed.is_empty() && flags.changed.is_empty() {
            let _ = writeln!(text, "{program} flags: unchanged");
            continue;
        }
        let _ = writeln!(text, "{program} flags:");
        for (name, value) in &flags.added {
            let _ = writeln!(text, "  + --{name}={value}");
        }
        for (name, value) in &flags.removed {
            let _ = writeln!(text, "  - --{name}={value}");
        }
        for (name, [old, new]) in &flags.changed {
            let _ = writeln!(text, "  ~ --{name}: {old} → {new}");
        }
    }
    let _ = writeln!(
        text,
        "files:{}",
        if diff.files.is_empty() {
            " unchanged"
        } else {
            ""
        }
    );
    for file in &diff.files {
        let _ = writeln!(
            text,
            "  {:<8} {}",
            format!("{:?}", file.change).to_lowercase(),
            file.path
        );
        if let Some(cert) = &file.certificate {
            if cert.subject[0] != cert.subject[1] {
                let _ = writeln!(
                    text,
                    "           subject {} → {}",
                    cert.subject[0], cert.subject[1]
                );
            }
            for san in &cert.sans_added {
                let _ = writeln!(text, "           + SAN {san}");
            }
            for san in &cert.sans_removed {
                let _ = writeln!(text, "           - SAN {san}");
            }
            let [old_expiry, new_expiry] = &cert.not_after;
            let _ = if old_expiry == new_expiry {
                // Re-issued the same day: the date alone would read as no change.
                writeln!(text, "           re-issued, expires {new_expiry} as before")
            } else {
                writeln!(text, "           expires {old_expiry} → {new_expiry}")
            };
            let _ = writeln!(
                text,
                "           key {}",
                if cert.key_changed {
                    "changed"
                } else {
                    "unchanged"
                }
            );
        }
        if let Some([old, new]) = &file.encryption_keys {
            let _ = writeln!(
                text,
                "           keys [{}] → [{}]",
                old.join(", "),
                new.join(", ")
            );
        }
    }
    let _ = writeln!(
        text,
        "install.sh will {}",
        if diff.restart {
            format!("restart {}", diff.restart_units.join(", "))
        } else {
            "not restart anything".to_owned()
        }
    );
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::verify::reader::Entry;

    /// The format-1 reader undoes exactly the quoting the unit writer applies.
    #[test]
    fn the_format_1_flag_reader_inverts_the_unit_writers_quoting() {
        let flags = BTreeMap::from([
            ("plain".to_owned(), "2".to_owned()),
            ("spaced".to_owned(), "a b".to_owned()),
            ("specifiers".to_owned(), "100% of $HOME".to_owned()),
            ("quoted".to_owned(), "say \"hi\" \\ bye;".to_owned()),
            ("empty".to_owned(), String::new()),
        ]);
        let words: Vec<String> = flags
            .iter()
            .map(|(name, value)| crate::render::systemd_word(&format!("--{name}={value}")))
            .collect();
        let unit = format!(
            "[Service]\nExecStart=/usr/local/bin/kube-apiserver \\\n  {}\n",
            words.join(" \\\n  ")
        );
        let entries = BTreeMap::from([(
            "rootfs/etc/systemd/system/kube-apiserver.service".to_owned(),
            Entry {
                sha256: String::new(),
                mode: 0o644,
                size: unit.len() as u64,
                text: Some(unit),
            },
        )]);
        assert_eq!(super::format_1::unit_flags(&entries), flags);
    }
}
