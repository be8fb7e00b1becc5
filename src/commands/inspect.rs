//! `verify` and `diff`: read bundles that were built, from the outside.
//!
//! Both check a bundle's signature first, under the key the operator pinned (`Trust`);
//! `diff` then compares two bundles, or every node of two output generations.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{absolute, bundled_nodes, config_folder, load, to_sorted_json, write_err, write_out};
use crate::cli::{ConfigArgs, OutputFormat, PinArgs};
use crate::error::Error;
use crate::output;

/// How `verify` and `diff` trust a bundle's signing key.
enum Trust {
    /// The key's fingerprint, as the operator recorded it; the key file may lie anywhere.
    Fingerprint {
        fingerprint: String,
        pubkey: Option<PathBuf>,
    },
    /// A key file the operator keeps.
    KeyFile(PathBuf),
    /// Whatever signing.pub lies beside the tarball: checked, but proves nothing alone.
    Unpinned,
    /// `diff --unverified`: no signature check at all.
    Unverified,
}

impl Trust {
    fn from_args(pin: &PinArgs) -> Result<Self, Error> {
        match (&pin.fingerprint, &pin.pubkey) {
            (Some(text), pubkey) => Ok(Self::Fingerprint {
                fingerprint: crate::sign::normalize_fingerprint(text)
                    .map_err(|why| Error::Usage(format!("--fingerprint {text:?}: {why}")))?,
                pubkey: pubkey.clone(),
            }),
            (None, Some(pubkey)) => Ok(Self::KeyFile(pubkey.clone())),
            (None, None) => Ok(Self::Unpinned),
        }
    }
}

/// Verifies `tarball` under `trust`; `None` for `Trust::Unverified`.
fn verify_bundle(tarball: &Path, trust: &Trust) -> Result<Option<crate::verify::Verified>, Error> {
    let beside = || {
        tarball
            .parent()
            .unwrap_or(Path::new("."))
            .join("signing.pub")
    };
    let (pubkey, pinned) = match trust {
        Trust::Unverified => return Ok(None),
        Trust::Fingerprint {
            fingerprint,
            pubkey,
        } => (
            pubkey.clone().unwrap_or_else(beside),
            Some(fingerprint.as_str()),
        ),
        Trust::KeyFile(pubkey) => (pubkey.clone(), None),
        Trust::Unpinned => (beside(), None),
    };
    let mut signature = tarball.as_os_str().to_owned();
    signature.push(".sig");
    crate::verify::verify(tarball, &pubkey, Path::new(&signature), pinned).map(Some)
}

/// The message for a key nobody pinned, and how to pin it.
fn unpinned_refusal(fingerprint: &str) -> Error {
    Error::Verification(format!(
        "the signature is good, but by a key you did not pin ({fingerprint}): whoever \
         replaced the tarball could have replaced signing.pub with it. Compare it with the \
         fingerprint you recorded at the first build and pass --fingerprint, or pass \
         --pubkey with the signing.pub you keep; --allow-unpinned accepts it as is"
    ))
}

pub(super) fn verify(
    tarball: &Path,
    pin: &PinArgs,
    allow_unpinned: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let trust = &Trust::from_args(pin)?;
    let Some(verified) = verify_bundle(tarball, trust)? else {
        return Err(Error::Usage("verify always checks the signature".into()));
    };
    let key = match trust {
        Trust::Fingerprint { .. } => format!("the pinned key {}", verified.key_fingerprint),
        Trust::KeyFile(path) => format!(
            "the key in {} ({})",
            path.display(),
            verified.key_fingerprint
        ),
        Trust::Unpinned | Trust::Unverified => {
            write_err(
                err,
                &format!(
                    "signature OK with an UNPINNED key {}\n",
                    verified.key_fingerprint
                ),
            )?;
            if !allow_unpinned {
                return Err(unpinned_refusal(&verified.key_fingerprint));
            }
            format!("an UNPINNED key {}", verified.key_fingerprint)
        }
    };
    write_out(
        out,
        &format!(
            "{}: OK (node {}, bundle {}, {} files; signed by {key}; paths, checksums, provenance and air gap checked)\n",
            tarball.display(),
            verified.node,
            verified.bundle_id,
            verified.files
        ),
    )
}

/// The diff of two bundles, each verified under its own trust first.
fn verified_diff(
    (old, old_trust): (&Path, &Trust),
    (new, new_trust): (&Path, &Trust),
) -> Result<crate::diff::BundleDiff, Error> {
    for (tarball, trust) in [(old, old_trust), (new, new_trust)] {
        if let Some(verified) = verify_bundle(tarball, trust)?
            && matches!(trust, Trust::Unpinned)
        {
            return Err(unpinned_refusal(&verified.key_fingerprint));
        }
    }
    crate::diff::diff(old, new)
}

/// `diff OLD NEW`: both verified under the pinned key first (or labelled UNVERIFIED).
pub(super) fn diff_pair(
    old: &Path,
    new: &Path,
    pin: &PinArgs,
    unverified: bool,
    format: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let trust = &if unverified {
        Trust::Unverified
    } else {
        Trust::from_args(pin)?
    };
    let diff = verified_diff((old, trust), (new, trust))?;
    if unverified {
        write_err(
            err,
            "UNVERIFIED: signatures were not checked (--unverified)\n",
        )?;
    }
    let text = match format {
        OutputFormat::Text if unverified => format!("UNVERIFIED\n{}", crate::diff::to_text(&diff)),
        OutputFormat::Text => crate::diff::to_text(&diff),
        OutputFormat::Json => to_sorted_json(&PairReport {
            diff: &diff,
            verified: !unverified,
        })?,
    };
    write_out(out, &text)
}

/// `diff OLD NEW --output json`: the diff, and whether the signatures were checked.
#[derive(Serialize)]
struct PairReport<'a> {
    #[serde(flatten)]
    diff: &'a crate::diff::BundleDiff,
    verified: bool,
}

/// `diff` without bundles: the previous generation against the current one, per node.
pub(super) fn diff_generations(
    config: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    unverified: bool,
    format: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let current = match out_dir {
        Some(dir) => absolute(&dir)?,
        None => {
            let config = config.unwrap_or_else(|| PathBuf::from("cluster.yaml"));
            // Only the cluster's name is needed; a version newer than the table is fine.
            let validated = load(&ConfigArgs {
                config: config.clone(),
                allow_untested_version: true,
            })?;
            absolute(
                &config_folder(&config)?
                    .join("bundles")
                    .join(validated.cluster.name.as_str()),
            )?
        }
    };
    let previous = output::previous_of(&current);
    write_err(
        err,
        &format!("comparing {} → {}\n", previous.display(), current.display()),
    )?;
    if !previous.is_dir() {
        return Err(Error::Input(format!(
            "{}: no previous generation to compare with; it appears after the second \
             `kube-bundle build` into {}",
            previous.display(),
            current.display()
        )));
    }
    let (old_trust, new_trust) = (
        generation_trust(&previous, unverified)?,
        generation_trust(&current, unverified)?,
    );
    let mut nodes: Vec<String> = bundled_nodes(&previous)?;
    nodes.extend(bundled_nodes(&current)?);
    nodes.sort();
    nodes.dedup();
    let mut text = String::new();
    let mut report = BTreeMap::new();
    for node in nodes {
        let name = format!("{node}.tar.gz");
        let (old, new) = (previous.join(&name), current.join(&name));
        let (line, change) = match (old.is_file(), new.is_file()) {
            (true, true) => {
                let diff = verified_diff((&old, &old_trust), (&new, &new_trust))?;
                (crate::diff::to_text(&diff), NodeChange::Compared(diff))
            }
            (false, _) => (
                format!("node {node}: new in this generation\n"),
                NodeChange::OneSide {
                    change: Presence::Added,
                },
            ),
            (true, false) => (
                format!("node {node}: removed in this generation\n"),
                NodeChange::OneSide {
                    change: Presence::Removed,
                },
            ),
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&line);
        report.insert(node, change);
    }
    match format {
        OutputFormat::Text => write_out(out, &text),
        OutputFormat::Json => write_out(out, &to_sorted_json(&report)?),
    }
}

/// One node in `diff --output json` between two generations.
#[derive(Serialize)]
#[serde(untagged)]
enum NodeChange {
    /// In both generations: what changed.
    Compared(crate::diff::BundleDiff),
    /// In one generation only.
    OneSide { change: Presence },
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Presence {
    Added,
    Removed,
}

/// Each generation is checked against the signing key its own marker recorded when this
/// host built it.
fn generation_trust(generation: &Path, unverified: bool) -> Result<Trust, Error> {
    if unverified {
        return Ok(Trust::Unverified);
    }
    let marker = output::read_marker(generation)?.ok_or_else(|| {
        Error::Input(format!(
            "{}: no {} marker; kube-bundle did not write this folder",
            generation.display(),
            output::MARKER_FILE
        ))
    })?;
    Ok(Trust::Fingerprint {
        fingerprint: marker.signing_key_fingerprint,
        pubkey: None,
    })
}
