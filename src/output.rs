//! Where bundles land: the output folder, which is kube-bundle's alone.
//!
//! A build never writes into the output in place. It stages the new generation in a
//! folder beside it (`.<out>.staging-XXXXXX`), then swaps: the current generation becomes
//! `<out>.previous` (one generation is kept, for `diff`), the one before is removed. A
//! marker file in each generation names the cluster, its CA fingerprint and its secrets
//! folder, so kube-bundle only ever replaces or removes folders it wrote, and never lets
//! bundles of two cluster identities mix. A build killed at any point leaves at most
//! our staging or retiring folders (which may hold private keys): the next build removes
//! them under the same lock before it writes anything.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The marker file in every generation kube-bundle writes.
pub const MARKER_FILE: &str = ".kube-bundle-output";
const MARKER_FORMAT: u32 = 1;
/// tempfile's random suffix after our prefixes: letters and digits.
const RANDOM_SUFFIX_LEN: usize = 6;

/// What the marker records: whose bundles these are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Marker {
    pub format_version: u32,
    pub cluster: String,
    /// sha256 of the cluster CA certificate's DER: the cluster's identity.
    pub ca_fingerprint: String,
    /// The secrets folder the bundles were built from, absolute.
    pub secrets: PathBuf,
    /// The bundles' signing key, as `verify --fingerprint` takes it.
    pub signing_key_fingerprint: String,
    /// Each node's tarball as this generation holds it, by node name: what lets the next
    /// build reuse a tarball whose inputs did not change. Absent in markers written
    /// before it existed, which then reuse nothing once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tarballs: BTreeMap<String, BuiltTarball>,
}

/// One node's tarball: the digest of what it was made from (`bundle::inputs_digest`), the
/// SHA-256 of its bytes and of its signature's, and a seal over the three
/// (`Signer::seal`): the output is writable by people who hold no secrets, and a forged
/// record could otherwise make a rebuild carry any validly signed tarball forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuiltTarball {
    pub inputs_sha256: String,
    pub tarball_sha256: String,
    pub signature_sha256: String,
    pub seal: String,
}

impl BuiltTarball {
    /// What the seal covers.
    pub fn sealed_text(
        node: &str,
        inputs_sha256: &str,
        tarball_sha256: &str,
        signature_sha256: &str,
    ) -> String {
        format!("{node}\n{inputs_sha256}\n{tarball_sha256}\n{signature_sha256}\n")
    }
}

impl Marker {
    pub fn new(
        cluster: &str,
        ca_fingerprint: &str,
        secrets: &Path,
        signing_key_fingerprint: &str,
        tarballs: BTreeMap<String, BuiltTarball>,
    ) -> Self {
        Self {
            format_version: MARKER_FORMAT,
            cluster: cluster.to_owned(),
            ca_fingerprint: ca_fingerprint.to_owned(),
            secrets: secrets.to_path_buf(),
            signing_key_fingerprint: signing_key_fingerprint.to_owned(),
            tarballs,
        }
    }

    fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(self)
            .map(|json| json + "\n")
            .map_err(|e| Error::Input(format!("cannot encode the output marker: {e}")))
    }
}

/// Paths the output may never contain or replace, with what they are for messages.
pub struct Protected<'a> {
    pub what: &'a str,
    pub path: &'a Path,
    /// Whether the output may live inside `path` (under the working folder, yes; under
    /// the secrets folder, no).
    pub output_may_nest: bool,
}

/// The output folder, checked and locked for one build.
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    parent: PathBuf,
    name: OsString,
    /// A lock on the parent folder: one build at a time swaps generations in it.
    _lock: File,
}

impl OutputDir {
    /// Checks that `requested` can be kube-bundle's output (see the refusals below),
    /// creates its parent, takes the lock and removes what a killed build left there.
    pub fn claim(requested: &Path, protected: &[Protected<'_>]) -> Result<Self, Error> {
        // `requested` as the user wrote it, for messages; resolved for every decision.
        let path = resolve(requested).map_err(|e| Error::io(requested, e))?;
        let refuse = |why: String| {
            Error::Usage(format!(
                "--out {}: refusing to use {} as the output folder: {why}; pick a folder \
                 of its own, e.g. bundles/<cluster> beside cluster.yaml",
                requested.display(),
                path.display()
            ))
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(refuse("it is the root folder".into()));
        };
        if std::env::var_os("HOME")
            .is_some_and(|home| resolve(Path::new(&home)).ok() == Some(path.clone()))
        {
            return Err(refuse("it is your home folder".into()));
        }
        let previous = previous_of(&path);
        let scratch = scratch_prefix(name);
        for protected in protected {
            // The output, its previous generation and our scratch folders beside it are
            // all replaced or removed by builds: none may hold what the operator keeps.
            let previous_role = format!("its previous generation {}", previous.display());
            for (generation, role) in [(&path, "it"), (&previous, previous_role.as_str())] {
                if protected.path.starts_with(generation) {
                    let relation = if protected.path == *generation {
                        "is"
                    } else {
                        "holds"
                    };
                    return Err(refuse(format!(
                        "{role} {relation} {} ({}), and builds replace those folders whole",
                        protected.what,
                        protected.path.display()
                    )));
                }
            }
            let in_scratch = protected
                .path
                .strip_prefix(parent)
                .ok()
                .and_then(|rest| rest.components().next())
                .is_some_and(|first| first.as_os_str().to_string_lossy().starts_with(&scratch));
            if in_scratch {
                return Err(refuse(format!(
                    "{} ({}) has a name builds use for their scratch folders ({scratch}…)",
                    protected.what,
                    protected.path.display()
                )));
            }
            if !protected.output_may_nest && path.starts_with(protected.path) {
                return Err(refuse(format!(
                    "it is inside {} ({})",
                    protected.what,
                    protected.path.display()
                )));
            }
        }
        let output = Self {
            parent: parent.to_path_buf(),
            name: name.to_os_string(),
            _lock: lock_parent(parent)?,
            path: path.clone(),
        };
        for generation in [&output.path, &previous] {
            check_ours(generation, parent).map_err(refuse)?;
        }
        output.remove_leftovers()?;
        output.recover_interrupted_swap()?;
        Ok(output)
    }

    /// A build killed between its two renames left the last generation only as
    /// `<out>.previous`: it becomes the current one again, so a `--node` build that
    /// follows keeps every other node.
    fn recover_interrupted_swap(&self) -> Result<(), Error> {
        let previous = self.previous();
        if !self.path.exists() && read_marker(&previous)?.is_some() {
            fs::rename(&previous, &self.path).map_err(|e| Error::io(&previous, e))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation before the current one.
    pub fn previous(&self) -> PathBuf {
        previous_of(&self.path)
    }

    /// The marker of the newest generation on disk: the current one, or the previous one
    /// when a killed swap left only that.
    pub fn marker(&self) -> Result<Option<Marker>, Error> {
        for generation in [self.path.clone(), self.previous()] {
            if let Some(marker) = read_marker(&generation)? {
                return Ok(Some(marker));
            }
        }
        Ok(None)
    }

    /// A fresh staging folder beside the output, removed on drop unless committed.
    pub fn stage(&self) -> Result<Staging, Error> {
        let dir = tempfile::Builder::new()
            .prefix(&self.prefix("staging"))
            .rand_bytes(RANDOM_SUFFIX_LEN)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&self.parent)
            .map_err(|e| Error::io(&self.parent, e))?;
        Ok(Staging { dir })
    }

    /// Swaps `staging` in: current → previous, staging → current; the generation
    /// before is removed only after both renames succeeded.
    pub fn commit(&self, staging: Staging, marker: &Marker) -> Result<(), Error> {
        let marker_path = staging.path().join(MARKER_FILE);
        write_durably(&marker_path, marker.to_json()?.as_bytes())?;
        // The folder's own entries too: after a crash, the generation that was renamed in
        // holds every file it named, whole.
        sync_dir(staging.path())?;
        let previous = self.previous();
        // Checked again right before it is retired: it must still be ours.
        check_ours(&previous, &self.parent).map_err(Error::Input)?;
        let retiring = if previous.exists() {
            // A random name no one else uses, so nothing foreign can be in the way.
            let retiring = tempfile::Builder::new()
                .prefix(&self.prefix("retiring"))
                .rand_bytes(RANDOM_SUFFIX_LEN)
                .tempdir_in(&self.parent)
                .map_err(|e| Error::io(&self.parent, e))?
                .keep();
            fs::rename(&previous, &retiring).map_err(|e| Error::io(&previous, e))?;
            Some(retiring)
        } else {
            None
        };
        // Undoes the retiring rename when a later step fails; the staging folder (with
        // its keys) is removed when `staging` drops.
        let put_back = |retiring: &Option<PathBuf>| {
            if let Some(retiring) = retiring {
                let _ = fs::rename(retiring, &previous);
            }
        };
        let had_current = self.path.exists();
        if had_current && let Err(e) = fs::rename(&self.path, &previous) {
            put_back(&retiring);
            return Err(Error::io(&self.path, e));
        }
        if let Err(e) = fs::rename(staging.path(), &self.path) {
            if had_current {
                let _ = fs::rename(&previous, &self.path);
            }
            put_back(&retiring);
            return Err(Error::io(&self.path, e));
        }
        // The staging folder is the output now: nothing left to remove on drop.
        let _ = staging.dir.keep();
        if let Some(retiring) = retiring {
            fs::remove_dir_all(&retiring).map_err(|e| Error::io(&retiring, e))?;
        }
        sync_dir(&self.parent)
    }

    /// `.<out>.<purpose>-`: the prefix of our scratch folders beside the output.
    fn prefix(&self, purpose: &str) -> String {
        format!("{}{purpose}-", scratch_prefix(&self.name))
    }

    /// Staging and retiring folders of a killed build: ours by name, so removable.
    fn remove_leftovers(&self) -> Result<(), Error> {
        let prefixes = [self.prefix("staging"), self.prefix("retiring")];
        for entry in fs::read_dir(&self.parent).map_err(|e| Error::io(&self.parent, e))? {
            let entry = entry.map_err(|e| Error::io(&self.parent, e))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir
                && prefixes
                    .iter()
                    .any(|p| has_random_suffix(&entry.file_name(), p))
            {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// `.<out>.`: what the names of our scratch folders beside the output start with.
fn scratch_prefix(name: &OsStr) -> String {
    format!(".{}.", name.to_string_lossy())
}

/// `<out>.previous`: where the generation before `out` is kept.
pub fn previous_of(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(OsStr::to_os_string).unwrap_or_default();
    name.push(".previous");
    out.with_file_name(name)
}

/// A generation being written; removed (with every key it holds) when dropped.
pub struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// `name` is `prefix` and exactly the random suffix tempfile adds.
fn has_random_suffix(name: &OsStr, prefix: &str) -> bool {
    name.to_str()
        .and_then(|n| n.strip_prefix(prefix))
        .is_some_and(|s| {
            s.len() == RANDOM_SUFFIX_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// An absent folder, or an empty one or one that holds our marker, owned by us and
/// writable by no one else, on the same filesystem as its parent, is ours to replace.
fn check_ours(generation: &Path, parent: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = match fs::symlink_metadata(generation) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", generation.display())),
    };
    if !metadata.is_dir() {
        return Err(format!(
            "{} exists and is not a folder",
            generation.display()
        ));
    }
    let me = current_uid();
    if metadata.uid() != me || metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "{} belongs to another user or others may write to it (owner uid {}, mode \
             {:04o}); kube-bundle replaces only folders that are its own",
            generation.display(),
            metadata.uid(),
            metadata.mode() & 0o7777
        ));
    }
    if fs::metadata(parent).is_ok_and(|p| p.dev() != metadata.dev()) {
        return Err(format!(
            "{} is a mount point; a build swaps generations by renaming folders, which a \
             mount point does not allow: use a folder inside it",
            generation.display()
        ));
    }
    let mut entries =
        fs::read_dir(generation).map_err(|e| format!("{}: {e}", generation.display()))?;
    if entries.next().is_none() {
        return Ok(());
    }
    let marker = generation.join(MARKER_FILE);
    match fs::symlink_metadata(&marker) {
        Ok(m) if m.is_file() && m.uid() == me && m.mode() & 0o022 == 0 => Ok(()),
        Ok(_) => Err(format!(
            "{} is not a marker kube-bundle wrote (a link, another user's, or writable by \
             others)",
            marker.display()
        )),
        Err(_) => Err(format!(
            "{} holds files kube-bundle did not write (it has no {MARKER_FILE} marker), and a \
             build replaces the whole folder",
            generation.display()
        )),
    }
}

/// The user this process runs as (Linux gives /proc/self to the effective uid).
fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

pub fn read_marker(generation: &Path) -> Result<Option<Marker>, Error> {
    let path = generation.join(MARKER_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        Error::Input(format!(
            "{}: not a marker kube-bundle wrote ({e}); if this folder is yours, pick \
             another --out",
            path.display()
        ))
    })
}

/// Locks `parent` (a folder can be flock'ed like a file) for the build's lifetime. Two
/// builds into one parent wait for each other instead of swapping the same folders.
fn lock_parent(parent: &Path) -> Result<File, Error> {
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let lock = File::open(parent).map_err(|e| Error::io(parent, e))?;
    lock.lock().map_err(|e| Error::io(parent, e))?;
    Ok(lock)
}

/// Writes `bytes` to a new file at `path` and waits until they are on disk.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    write_to_disk(file, path, bytes)
}

/// Writes `bytes` to `file` (just created at `path`) and waits until they are on disk.
pub fn write_to_disk(mut file: File, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The absolute form of `path` with every symbolic link and `..` of its existing part
/// resolved, so `.`, `sub/..` and a link to the home folder are all recognised for what
/// they are. The part that does not exist yet is appended as written.
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut resolved = PathBuf::from("/");
    // How many trailing components of `resolved` do not exist (and were not resolved).
    let mut missing = 0usize;
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                // `resolved` is canonical up to its missing tail, so popping is exact;
                // once back in the existing part, later links are resolved again.
                resolved.pop();
                missing = missing.saturating_sub(1);
            }
            Component::Normal(part) => {
                resolved.push(part);
                if missing > 0 {
                    missing += 1;
                    continue;
                }
                match fs::canonicalize(&resolved) {
                    Ok(canonical) => resolved = canonical,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing = 1,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_sees_through_dots_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(real.join("a")).unwrap();
        std::os::unix::fs::symlink(real.join("a"), real.join("link")).unwrap();
        assert_eq!(resolve(&real.join("a/./../a")).unwrap(), real.join("a"));
        assert_eq!(resolve(&real.join("link")).unwrap(), real.join("a"));
        assert_eq!(
            resolve(&real.join("link/new/x")).unwrap(),
            real.join("a/new/x")
        );
        assert_eq!(resolve(&real.join("a/..")).unwrap(), real);
        // A missing folder and `..` lead back into the existing part, where links count.
        assert_eq!(
            resolve(&real.join("nope/../link/x")).unwrap(),
            real.join("a/x")
        );
    }

    #[test]
    fn only_our_random_suffixes_count_as_leftovers() {
        let prefix = ".prod.staging-";
        assert!(has_random_suffix(
            OsStr::new(".prod.staging-aB3xY9"),
            prefix
        ));
        assert!(!has_random_suffix(
            OsStr::new(".prod.staging-aB3xY"),
            prefix
        ));
        assert!(!has_random_suffix(
            OsStr::new(".prod.staging-aB3xY9.keep"),
            prefix
        ));
        assert!(!has_random_suffix(
            OsStr::new(".other.staging-aB3xY9"),
            prefix
        ));
    }
}
