//! The secrets/ directory (design.md §4): everything random, created once, then reused.
//!
//! Each credential is one file (certificate and key together as PEM blocks), written to a
//! temp file in the same directory and renamed into place, so a build killed at any point
//! leaves every credential either absent or complete. Directories are 0700 and files 0600.
//! A lock file keeps two builds from writing at once. Nothing here decides *what* to write;
//! `pki` does.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::Error;

const LOCK_FILE: &str = ".lock";

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
        Ok(Self {
            dir: dir.to_path_buf(),
            access,
            _lock: Some(lock),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The full path of a stored file, for messages.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Reads a stored file; `None` when it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        let path = self.checked_path(name)?;
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

    /// Writes `bytes` to `name` atomically (temp file + fsync + rename), mode 0600.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        if self.access != Access::ReadWrite {
            return Err(Error::Input(format!(
                "internal: {name} written through a read-only store"
            )));
        }
        let path = self.checked_path(name)?;
        let parent = path.parent().unwrap_or(&self.dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| Error::io(parent, e))?;
        write_atomically(&path, bytes, 0o600)
    }

    /// Refuses names that could leave the store: they are built by this program, but a
    /// node name reaches them and the check costs nothing.
    fn checked_path(&self, name: &str) -> Result<PathBuf, Error> {
        let relative = Path::new(name);
        let safe = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !safe || name.is_empty() {
            return Err(Error::Input(format!(
                "internal: unsafe secrets path {name:?}"
            )));
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
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
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
    getrandom::fill(buf).map_err(|e| Error::Input(format!("the OS random source failed: {e}")))
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
