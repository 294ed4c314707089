//! The library's error type.
//!
//! Each subsystem keeps its own enum (locating the workspace, reading config, reading
//! archives, taking the lock, the database); [`Error`] gathers them so that a caller has one
//! type to match on. Every variant that concerns a file names it.

use std::io;
use std::path::{Path, PathBuf};

use crate::archive::ArchiveError;
use crate::config::ConfigError;
use crate::database::DbError;
use crate::locate::LocateError;
use crate::lock::LockError;

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
pub(crate) trait IoContext<T> {
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
