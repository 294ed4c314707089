//! One lock per backup directory, so that two commands never work on it at once.
//!
//! The lock is an advisory `flock` on `<backup dir>/.lock` (std's `File::lock`): it is
//! released by the kernel when the process dies, so a killed run never leaves a stale lock.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

pub use crate::error::LockError;

/// A held lock; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Take the lock of `dir`, waiting up to `timeout` for another holder to finish.
    pub fn acquire(dir: &Path, timeout: Duration) -> Result<Self, LockError> {
        let path = dir.join(".lock");
        let open_err = |source| LockError::Open {
            path: path.clone(),
            source,
        };
        // The backup directory holds copies of thrum's secrets: only its owner may enter it.
        {
            use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(open_err)?;
            // A directory made by an earlier version (0755) loses its group and other bits;
            // the owner's bits stay as they are (a read-only directory stays read-only).
            if let Ok(meta) = std::fs::metadata(dir)
                && meta.permissions().mode() & 0o077 != 0
                && meta.uid() == rustix::process::geteuid().as_raw()
            {
                let owner = meta.permissions().mode() & 0o700;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(owner));
            }
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(open_err)?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(open_err(e)),
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(LockError::Busy {
                    dir: dir.to_path_buf(),
                    waited,
                });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_fails() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path(), Duration::ZERO).unwrap();
        let err = DirLock::acquire(dir.path(), Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains("busy"), "{err}");
        drop(held);
        DirLock::acquire(dir.path(), Duration::ZERO).unwrap();
    }
}
