//! The secrets/ directory: everything random, created once, then reused.
//!
//! Each credential is one file (certificate and key together as PEM blocks), written to a
//! temp file in the same directory and renamed into place, so a build killed at any point
//! leaves every credential either absent or complete. What such a kill can leave is our
//! temp files (`.tmp-` and six letters or digits), which may hold key bytes: the next
//! process that takes the lock removes them before it reads anything. Directories are 0700
//! and files 0600. A lock file keeps two builds from writing at once. Nothing here decides
//! *what* to write; `pki` does.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::error::Error;

const LOCK_FILE: &str = ".lock";

/// Per-node credentials live in `nodes/<node>/`; those of removed nodes in `retired/`.
const NODES_DIR: &str = "nodes";
const RETIRED_DIR: &str = "retired";

/// The prefix of every temp file `write_atomically` creates; tempfile adds
/// [`TEMP_SUFFIX_LEN`] random letters and digits.
const TEMP_PREFIX: &str = ".tmp-";
const TEMP_SUFFIX_LEN: usize = 6;
/// Threads that fsync deferred writes at once: enough for the device to merge flushes.
const MAX_SYNC_THREADS: usize = 8;

/// Keeps an operator's repository from committing the CA key by accident.
const GITIGNORE: (&str, &[u8]) = (
    ".gitignore",
    b"# kube-bundle: every file here is secret; never commit it.\n*\n",
);

/// How a store is opened: `plan` only reads, `build` creates, locks and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

#[derive(Debug)]
pub struct SecretStore {
    dir: PathBuf,
    access: Access,
    /// Held for the store's lifetime; the OS drops the lock when the process dies.
    _lock: Option<File>,
    /// Temp files an interrupted earlier process left, removed when the lock was taken.
    removed_leftovers: Vec<PathBuf>,
    /// Writes made but not yet durable, by final path, once `defer_durability` was
    /// called: `make_durable` syncs and renames them all at once.
    pending: Option<Mutex<BTreeMap<PathBuf, PendingWrite>>>,
}

/// A written temp file waiting for `make_durable`; dropping it removes it.
#[derive(Debug)]
struct PendingWrite {
    temp: tempfile::NamedTempFile,
    bytes: Vec<u8>,
}

impl SecretStore {
    /// Opens `dir`. ReadWrite creates it (0700) and takes the lock; ReadOnly never
    /// creates anything and reads an absent directory as empty.
    pub fn open(dir: &Path, access: Access) -> Result<Self, Error> {
        if access == Access::ReadOnly {
            return Ok(Self {
                dir: dir.to_path_buf(),
                access,
                _lock: None,
                removed_leftovers: Vec::new(),
                pending: None,
            });
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e))?;
        let mode = fs::metadata(dir)
            .map_err(|e| Error::io(dir, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Input(format!(
                "{}: the secrets directory is readable by others (mode {:04o}); run \
                 `chmod 700 {}` and check nobody copied keys out of it",
                dir.display(),
                mode & 0o7777,
                dir.display()
            )));
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Input(format!(
                    "{}: another kube-bundle build is using these secrets; wait for it to \
                     finish and run again",
                    dir.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        // Under the lock no other writer is running, so any temp file is a dead one's.
        let removed_leftovers = remove_stale_temp_files(dir)?;
        let store = Self {
            dir: dir.to_path_buf(),
            access,
            _lock: Some(lock),
            removed_leftovers,
            pending: None,
        };
        if store.read(GITIGNORE.0)?.is_none() {
            store.write(GITIGNORE.0, GITIGNORE.1)?;
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The temp files of an interrupted process that opening this store removed.
    pub fn removed_leftovers(&self) -> &[PathBuf] {
        &self.removed_leftovers
    }

    /// The full path of a stored file, for messages.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads a stored file (as last written, even if not yet durable); `None` when it
    /// does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.checked_path(name)?;
        if let Some(pending) = self.pending_writes()
            && let Some(write) = pending.get(&path)
        {
            return Ok(Some(write.bytes.clone()));
        }
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Reads a stored text file (PEM, JSON); `None` when it does not exist.
    pub fn read_text(&self, name: &str) -> Result<Option<String>, Error> {
        let Some(bytes) = self.read(name)? else {
            return Ok(None);
        };
        String::from_utf8(bytes).map(Some).map_err(|_| {
            Error::Input(format!(
                "{}: not a text file; it is not something kube-bundle wrote — restore it \
                 from backup or move it away",
                self.path(name).display()
            ))
        })
    }

    /// From now on, writes are made durable together by [`SecretStore::make_durable`]
    /// instead of one by one: a first build writes dozens of files, and an fsync each
    /// (plus one of its folder) costs more than making every key. Until then each write
    /// is a complete temp file beside its target, and what is not made durable (a build
    /// that fails) is removed: the store holds its old files or the new, never a mix
    /// within one file.
    pub fn defer_durability(&mut self) {
        self.pending.get_or_insert_with(Default::default);
    }

    /// Syncs every deferred write, renames each into place, then syncs each folder that
    /// gained an entry (and the folders above it, up to the store, which may be new too).
    /// The files are synced in parallel: the device merges the flushes.
    pub fn make_durable(&self) -> Result<(), Error> {
        let Some(mut pending) = self.pending_writes() else {
            return Ok(());
        };
        let writes: Vec<(PathBuf, PendingWrite)> =
            std::mem::take(&mut *pending).into_iter().collect();
        drop(pending);
        if writes.is_empty() {
            return Ok(());
        }
        let threads = writes.len().min(MAX_SYNC_THREADS);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|first| {
                    let writes = &writes;
                    scope.spawn(move || {
                        writes
                            .iter()
                            .skip(first)
                            .step_by(threads)
                            .try_for_each(|(_, write)| {
                                write
                                    .temp
                                    .as_file()
                                    .sync_all()
                                    .map_err(|e| Error::io(write.temp.path(), e))
                            })
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(Error::Internal("an fsync thread panicked".into())))
            })
        })?;
        let mut folders = std::collections::BTreeSet::new();
        for (path, write) in writes {
            write
                .temp
                .persist(&path)
                .map_err(|e| Error::io(&path, e.error))?;
            let mut folder = path.parent();
            while let Some(dir) = folder.filter(|dir| dir.starts_with(&self.dir)) {
                folders.insert(dir.to_path_buf());
                folder = dir.parent();
            }
        }
        for folder in folders {
            File::open(&folder)
                .and_then(|dir| dir.sync_all())
                .map_err(|e| Error::io(&folder, e))?;
        }
        Ok(())
    }

    fn pending_writes(&self) -> Option<std::sync::MutexGuard<'_, BTreeMap<PathBuf, PendingWrite>>> {
        // A panic elsewhere cannot leave the map half-updated: one insert or take at a time.
        self.pending.as_ref().map(|pending| {
            pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        })
    }

    /// Writes `bytes` to `name` atomically (temp file + fsync + rename), mode 0600; once
    /// durability is deferred, the fsync and rename wait for `make_durable`.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        if self.access != Access::ReadWrite {
            return Err(Error::Internal(format!(
                "{name} written through a read-only store"
            )));
        }
        let path = self.checked_path(name)?;
        let parent = path.parent().unwrap_or(&self.dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| Error::io(parent, e))?;
        let Some(mut pending) = self.pending_writes() else {
            return write_atomically(&path, bytes, 0o600);
        };
        let mut temp = private_temp_file(parent, 0o600)?;
        temp.write_all(bytes)
            .map_err(|e| Error::io(temp.path(), e))?;
        pending.insert(
            path,
            PendingWrite {
                temp,
                bytes: bytes.to_vec(),
            },
        );
        Ok(())
    }

    /// Nodes that have credentials in the store (`nodes/<name>/`).
    pub fn stored_nodes(&self) -> Result<Vec<String>, Error> {
        let dir = self.dir.join(NODES_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut nodes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                nodes.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        nodes.sort();
        Ok(nodes)
    }

    /// Moves a node's credentials to `retired/<node>-<date>/` (never deletes them): the
    /// node left cluster.yaml, and its keys must not be issued into bundles again, but an
    /// operator may still need them to revoke or audit. Returns the new folder.
    pub fn retire_node(&self, node: &str, date: &str) -> Result<PathBuf, Error> {
        let from = self.checked_path(&format!("{NODES_DIR}/{node}"))?;
        let retired = self.dir.join(RETIRED_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&retired)
            .map_err(|e| Error::io(&retired, e))?;
        let mut to = retired.join(format!("{node}-{date}"));
        let mut attempt = 1;
        while to.symlink_metadata().is_ok() {
            attempt += 1;
            to = retired.join(format!("{node}-{date}.{attempt}"));
        }
        fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| Error::io(&self.dir, e))?;
        Ok(to)
    }

    /// Refuses names that could leave the store: they are built by this program, but a
    /// node name reaches them and the check costs nothing.
    fn checked_path(&self, name: &str) -> Result<PathBuf, Error> {
        let relative = Path::new(name);
        let safe = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe || name.is_empty() {
            return Err(Error::Internal(format!("unsafe secrets path {name:?}")));
        }
        Ok(self.dir.join(relative))
    }
}

/// Writes a file so that readers see the old content or the new, never a mix: a temp
/// file in the target's directory, fsynced, renamed over the target, directory fsynced.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let parent = path
        .parent()
        .ok_or_else(|| Error::Input(format!("{}: no parent", path.display())))?;
    let mut temp = private_temp_file(parent, mode)?;
    temp.write_all(bytes)
        .map_err(|e| Error::io(temp.path(), e))?;
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io(temp.path(), e))?;
    temp.persist(path).map_err(|e| Error::io(path, e.error))?;
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io(parent, e))?;
    Ok(())
}

/// One of our temp files (removed on drop unless persisted) in `parent`.
fn private_temp_file(parent: &Path, mode: u32) -> Result<tempfile::NamedTempFile, Error> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .rand_bytes(TEMP_SUFFIX_LEN)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))
}

/// Whether `name` is one of `write_atomically`'s temp files, and nothing else: an
/// operator's `.tmp-notes` or `.tmp-backup.pem` does not match.
fn is_our_temp_file(name: &std::ffi::OsStr) -> bool {
    let Some(suffix) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
        return false;
    };
    suffix.len() == TEMP_SUFFIX_LEN && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Removes our temp files anywhere under `dir` (regular files only; symbolic links are
/// neither followed nor removed) and returns what it removed.
fn remove_stale_temp_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut removed = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).map_err(|e| Error::io(&current, e))? {
            let entry = entry.map_err(|e| Error::io(&current, e))?;
            let file_type = entry.file_type().map_err(|e| Error::io(&entry.path(), e))?;
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if file_type.is_file() && is_our_temp_file(&entry.file_name()) {
                let path = entry.path();
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                removed.push(path);
            }
        }
    }
    removed.sort();
    Ok(removed)
}

/// Creates (or truncates) a file readable by its owner only, whatever the umask: for
/// anything that holds or signs key material.
pub fn create_private_file(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// Fills `buf` from the OS's CSPRNG: the one source of randomness, used only to create secrets.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|e| Error::Crypto(format!("reading the OS random source: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_writes_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
        store.write("nodes/m1/a.pem", b"one").unwrap();
        store.write("nodes/m1/a.pem", b"two").unwrap();
        assert_eq!(
            store.read("nodes/m1/a.pem").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&store.path("nodes/m1/a.pem")), 0o600);
        assert_eq!(mode(&store.path("nodes/m1")), 0o700);
        assert_eq!(mode(store.dir()), 0o700);
        let leftovers: Vec<_> = fs::read_dir(store.path("nodes/m1")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    /// Every file under `dir`, relative, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in fs::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap();
                    found.push(relative.to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn deferred_writes_are_read_back_and_land_only_when_made_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
        store.write("ca.pem", b"old").unwrap();
        store.defer_durability();
        store.write("ca.pem", b"new").unwrap();
        store.write("nodes/m1/a.pem", b"one").unwrap();
        store.write("nodes/m1/a.pem", b"two").unwrap();
        assert_eq!(store.read("ca.pem").unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(
            store.read("nodes/m1/a.pem").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            fs::read(store.path("ca.pem")).unwrap(),
            b"old",
            "replaced early"
        );
        assert!(!store.path("nodes/m1/a.pem").exists(), "written early");

        store.make_durable().unwrap();
        assert_eq!(fs::read(store.path("ca.pem")).unwrap(), b"new");
        assert_eq!(fs::read(store.path("nodes/m1/a.pem")).unwrap(), b"two");
        let mode = fs::metadata(store.path("nodes/m1/a.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            listing(store.dir()),
            [".gitignore", ".lock", "ca.pem", "nodes/m1/a.pem"],
            "a superseded or synced temp file was left behind"
        );
        store.make_durable().unwrap();
    }

    #[test]
    fn deferred_writes_never_made_durable_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let mut store = SecretStore::open(&root, Access::ReadWrite).unwrap();
        store.write("ca.pem", b"old").unwrap();
        store.defer_durability();
        store.write("ca.pem", b"new").unwrap();
        store.write("nodes/m1/a.pem", b"key").unwrap();
        // A build that fails before its bundles are written.
        drop(store);
        assert_eq!(listing(&root), [".gitignore", ".lock", "ca.pem"]);
        assert_eq!(fs::read(root.join("ca.pem")).unwrap(), b"old");
    }

    #[test]
    fn opening_for_writing_removes_our_temp_files_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let nodes = root.join("nodes/cp1");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&nodes)
            .unwrap();
        let ours = [root.join(".tmp-a1B2c3"), nodes.join(".tmp-Zz9yX8")];
        let theirs = [
            root.join(".tmp-notes"),
            root.join(".tmp-a1B2c3.bak"),
            root.join("tmp-a1B2c3"),
            nodes.join(".tmp-abc-12"),
            nodes.join("apiserver.pem"),
        ];
        for path in ours.iter().chain(&theirs) {
            fs::write(path, "x").unwrap();
        }
        std::os::unix::fs::symlink(&theirs[4], root.join(".tmp-link01")).unwrap();

        let store = SecretStore::open(&root, Access::ReadWrite).unwrap();
        let mut expected = ours.to_vec();
        expected.sort();
        assert_eq!(store.removed_leftovers(), expected);
        assert!(ours.iter().all(|p| !p.exists()));
        assert!(theirs.iter().all(|p| p.exists()));
        assert!(root.join(".tmp-link01").symlink_metadata().is_ok());
        assert!(SecretStore::open(&root, Access::ReadOnly).is_ok());
    }

    #[test]
    fn a_new_store_keeps_itself_out_of_version_control() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
        let ignore = store.read_text(".gitignore").unwrap().unwrap();
        assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
    }

    #[test]
    fn a_second_writer_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s");
        let _first = SecretStore::open(&store, Access::ReadWrite).unwrap();
        let second = SecretStore::open(&store, Access::ReadWrite).unwrap_err();
        assert!(
            second.to_string().contains("another kube-bundle build"),
            "{second}"
        );
    }

    #[test]
    fn names_cannot_escape_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SecretStore::open(&dir.path().join("s"), Access::ReadWrite).unwrap();
        assert!(store.write("../escape", b"x").is_err());
        assert!(store.write("/etc/passwd", b"x").is_err());
    }

    #[test]
    fn a_world_readable_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = SecretStore::open(dir.path(), Access::ReadWrite).unwrap_err();
        assert!(err.to_string().contains("chmod 700"), "{err}");
    }
}
