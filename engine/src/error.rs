//! The library's error types.
//!
//! Each subsystem has its own enum (locating the workspace, reading config, reading
//! archives, taking the lock, the database), defined here and re-exported by its subsystem;
//! [`Error`] gathers them so that a caller has one type to match on. Every variant that
//! concerns a file names it. This module imports nothing of the crate, so every module can
//! use it without a cycle.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Any failure of a backup operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thrum workspace could not be located.
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// `.thrum/config.json` is unreadable or has a wrong value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An archive is unreadable, corrupt or hostile.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Another process holds the backup directory.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The SQLite database could not be copied, checked or imported.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create", "rename" ...).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A JSONL file has a line that is not one JSON object.
    #[error("{}: line {line}: {message}", path.display())]
    Jsonl {
        /// The file (inside the backup or the workspace).
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A backup does not match its manifest, or is missing pieces.
    #[error("{0}")]
    Invalid(String),
    /// An off-site replica failed (unreachable, refused, wrong password, damaged).
    #[error("replica {name}: {message}")]
    Replica {
        /// The replica's name.
        name: String,
        /// What went wrong, on one line.
        message: String,
    },
    /// Nothing to work on: no backup yet, an unknown archive name, ...
    #[error("{0}")]
    NotFound(String),
    /// The operation was interrupted by a signal before it committed; nothing changed.
    #[error("cancelled before completion; nothing was changed")]
    Cancelled,
    /// A restore failed part-way and every change it had made was undone.
    #[error("restore failed, the workspace was put back as it was: {0}")]
    RolledBack(Box<Error>),
    /// thrum's daemon runs (it holds its lock): a restore under it would be undone or wiped.
    #[error(
        "thrum's daemon is running in this workspace (it holds {}): stop it with \
         `thrum daemon stop`, then restore again; nothing was changed",
        .0.display()
    )]
    DaemonRunning(PathBuf),
    /// Not enough free space for the work about to be done.
    #[error("not enough free space in {}: need {needed} bytes, {available} available", path.display())]
    NoSpace {
        /// The filesystem concerned.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the action and the path to an [`io::Error`].
pub trait IoContext<T> {
    /// `Error::Io` saying what was being done (`"read"`, `"create"` ...) to which path.
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

impl Error {
    /// The underlying I/O error kind, when there is one (used to detect a full disk).
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            Error::RolledBack(inner) => inner.io_kind(),
            _ => None,
        }
    }
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Not a readable zip at all.
    #[error("{}: not a valid zip archive: {message}", path.display())]
    Corrupt {
        /// The archive.
        path: PathBuf,
        /// Details.
        message: String,
    },
    /// An entry is refused.
    #[error("{}: entry {entry:?}: {reason}", path.display())]
    Entry {
        /// The archive.
        path: PathBuf,
        /// The entry's name as stored.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// The archive as a whole is refused.
    #[error("{}: {reason}", path.display())]
    Refused {
        /// The archive.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A wrong or unreadable `config.json`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not JSON, or not a JSON object.
    #[error("{}: not valid JSON: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key has a value of the wrong type or out of range.
    #[error("{}: {key}: {message}", path.display())]
    Value {
        /// The config file.
        path: PathBuf,
        /// Dotted key (`backup.retention.daily`).
        key: String,
        /// What was expected and what was found.
        message: String,
    },
    /// The file could not be written.
    #[error("cannot write {}: {message}", path.display())]
    Write {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// A database problem, always naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite refused an operation.
    #[error("{}: {action}: {source}{}", path.display(), hint(source))]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database file cannot be opened at all (permissions).
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        /// The database file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Writing the copy failed (a full disk, an I/O error).
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The database stayed locked for the whole wait.
    #[error("{}: database is locked by another process (waited {}s); stop the writer or retry", path.display(), waited.as_secs())]
    Locked {
        /// The database file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// `PRAGMA quick_check` failed.
    #[error("{}: database is corrupt: {detail}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's report.
        detail: String,
    },
    /// A row of a local-table JSONL file does not fit its table.
    #[error("{}: line {line}: {message}", path.display())]
    Import {
        /// The JSONL file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Why a workspace could not be located.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocateError {
    /// `--repo` does not exist or is not a directory.
    #[error("repository directory {} does not exist or is not a directory", .0.display())]
    NoRepo(PathBuf),
    /// `.thrum/redirect` is unusable.
    #[error("{}: {reason}", path.display())]
    Redirect {
        /// The redirect file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// There is no thrum directory.
    #[error(
        "no thrum directory at {}: is this a thrum workspace? (run `thrum init`, or pass --repo)",
        .0.display()
    )]
    NoThrumDir(PathBuf),
    /// The sync worktree path exists but is not a directory.
    #[error("sync worktree {} exists but is not a directory", .0.display())]
    SyncNotDir(PathBuf),
    /// git refuses to work in the repository (it belongs to another user).
    #[error(
        "git refuses to work in {}: {reason} (run thrum-backup as the repository's owner, or \
         mark it safe: git config --global --add safe.directory {})",
        path.display(), path.display()
    )]
    GitRefused {
        /// The repository.
        path: PathBuf,
        /// git's words.
        reason: String,
    },
}

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process kept it for the whole wait.
    #[error(
        "backup directory {} is busy: another thrum-backup command holds its lock \
         (waited {}s; retry later, or raise --lock-timeout)",
        dir.display(), waited.as_secs()
    )]
    Busy {
        /// The backup directory.
        dir: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// The lock file could not be opened.
    #[error("cannot open lock file {}: {source}", path.display())]
    Open {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// What SQLite's error code says the user can check.
fn hint(e: &rusqlite::Error) -> &'static str {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::SystemIoFailure) => {
            " (a read or write failed: is the disk full, over quota or failing?)"
        }
        Some(rusqlite::ErrorCode::DiskFull) => " (the disk is full)",
        Some(rusqlite::ErrorCode::NotADatabase) => " (the file is not an SQLite database)",
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => " (the database is corrupt)",
        Some(rusqlite::ErrorCode::CannotOpen) => " (cannot open: check permissions)",
        Some(rusqlite::ErrorCode::PermissionDenied) => " (permission denied)",
        _ => "",
    }
}
