//! One repository's backup directory: `current/`, `archives/`, and our private `.tmp/`.
//!
//! `current/` only ever changes by an atomic exchange with a complete staged snapshot, so it
//! is always complete. Interrupted work leaves only things in `.tmp/` and temporary files in
//! `archives/`; [`BackupDir::recover`] finishes or rolls them back, and every command calls it
//! after taking the lock.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{IoContext, Result};
use crate::fsx;
use crate::lock::DirLock;
use crate::manifest::{self, Manifest};
use crate::retention::ArchiveName;

/// Prefix of the safety archives `restore` writes; retention never touches them.
pub const PRE_RESTORE_PREFIX: &str = "pre-restore-";

/// `<backup dir>/<repo>/`.
#[derive(Debug, Clone)]
pub struct BackupDir {
    root: PathBuf,
}

/// What kind of file an archive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    /// A snapshot archived by `create`; subject to retention.
    Snapshot,
    /// A safety archive written by `restore`; never pruned.
    PreRestore,
    /// A zip the engine did not name; never touched.
    Other,
}

/// Snapshots that could not be read, each with why: (name, reason).
pub type Skipped = Vec<(String, String)>;

/// One `.zip` in `archives/`.
#[derive(Debug, Clone, Serialize)]
pub struct ArchiveInfo {
    /// File name.
    pub name: String,
    /// Kind.
    pub kind: ArchiveKind,
    /// Time from the name (UTC), when it has one.
    pub time: Option<DateTime<Utc>>,
    /// Bytes.
    pub size: u64,
}

impl BackupDir {
    /// Wrap `<backup dir>/<repo>`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `current/`.
    pub fn current(&self) -> PathBuf {
        self.root.join("current")
    }

    /// `archives/`.
    pub fn archives(&self) -> PathBuf {
        self.root.join("archives")
    }

    /// `.tmp/`, private work space on the same filesystem.
    pub fn tmp(&self) -> PathBuf {
        self.root.join(".tmp")
    }

    /// Whether anything has been backed up here.
    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }

    /// Fail early, naming the directory, when this user cannot write where a command that
    /// changes the backup will write (the backup directory, `archives/`, `.tmp/`), so that it
    /// stops before doing anything rather than after archiving.
    pub fn check_writable(&self) -> Result<()> {
        use rustix::fs::{Access, access};
        for dir in [self.root.clone(), self.archives(), self.tmp()] {
            if !dir.is_dir() {
                continue;
            }
            if let Err(e) = access(&dir, Access::WRITE_OK | Access::EXEC_OK) {
                return Err(crate::Error::Io {
                    action: "write to",
                    path: dir,
                    source: std::io::Error::from(e),
                });
            }
        }
        Ok(())
    }

    /// Take the directory's lock.
    pub fn lock(&self, timeout: Duration) -> Result<DirLock> {
        Ok(DirLock::acquire(&self.root, timeout)?)
    }

    /// A fresh, empty directory in `.tmp/` named `<tag>-<nonce>`.
    pub fn new_work_dir(&self, tag: &str) -> Result<PathBuf> {
        let tmp = self.tmp();
        fsx::create_dir_all(&tmp)?;
        loop {
            let nonce: u32 = rand::random();
            let dir = tmp.join(format!("{tag}-{nonce:08x}"));
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).at("create directory", &dir),
            }
        }
    }

    /// The manifest of `current/`, if there is a complete snapshot.
    pub fn current_manifest(&self) -> Result<Option<Manifest>> {
        manifest::read_dir(&self.current())
    }

    /// Replace `current/` with the complete staged snapshot `staged`.
    pub fn publish(&self, staged: &Path) -> Result<()> {
        let current = self.current();
        if current.exists() {
            if !fsx::exchange(staged, &current)? {
                let retired = self
                    .tmp()
                    .join(format!("retired-{:08x}", rand::random::<u32>()));
                fs::rename(&current, &retired).at("rename", &current)?;
                fs::rename(staged, &current).at("rename into place", &current)?;
            }
            fsx::sync_dir(&self.root)?;
            // `staged` now holds the previous snapshot (already archived).
            fsx::remove_any(staged)?;
            if let Ok(entries) = fs::read_dir(self.tmp()) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().starts_with("retired-") {
                        fsx::remove_any(&e.path())?;
                    }
                }
            }
        } else {
            fs::rename(staged, &current).at("rename into place", &current)?;
            fsx::sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// The newest snapshot archive taken at or before `time` (what a new archive can reuse).
    pub fn newest_snapshot_archive(&self, time: DateTime<Utc>) -> Option<PathBuf> {
        self.list_archives()
            .ok()?
            .into_iter()
            .filter(|a| a.kind == ArchiveKind::Snapshot && a.time.is_some_and(|t| t <= time))
            // Names have whole seconds: of several archives in one second, the one named last
            // (the highest `-N`) is the newest.
            .max_by_key(|a| {
                let seq = ArchiveName::parse(&a.name).map_or(0, |n| n.seq);
                (a.time, seq)
            })
            .map(|a| self.archives().join(a.name))
    }

    /// Give the finished zip `tmp` the first free name `name(0)`, `name(1)`, ...
    ///
    /// Names already taken in that second, or taken before and since pruned, are not reused
    /// below the highest one: the newest archive of a second always has its highest `-N`.
    pub fn publish_archive(&self, tmp: &Path, name: impl Fn(u32) -> String) -> Result<PathBuf> {
        let taken = self.archive_names();
        let highest = (0..10_000).filter(|seq| taken.contains(&name(*seq))).max();
        let first = highest.map_or(0, |h| h + 1);
        for seq in first..10_000 {
            let dst = self.archives().join(name(seq));
            if fsx::publish_no_clobber(tmp, &dst)? {
                return Ok(dst);
            }
        }
        let _ = fs::remove_file(tmp);
        Err(crate::Error::Invalid(
            "too many archives with the same name".into(),
        ))
    }

    /// The names of everything in `archives/`.
    pub fn archive_names(&self) -> std::collections::HashSet<String> {
        fs::read_dir(self.archives())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every `.zip` in `archives/`, oldest first (by name time; others last).
    pub fn list_archives(&self) -> Result<Vec<ArchiveInfo>> {
        let dir = self.archives();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at("read directory", &dir),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.at("read directory", &dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".zip") || name.starts_with('.') {
                continue;
            }
            let meta = entry.metadata().at("inspect", &entry.path())?;
            if !meta.is_file() {
                continue;
            }
            let (kind, time) = if let Some(a) = ArchiveName::parse(&name) {
                (ArchiveKind::Snapshot, Some(a.time))
            } else if let Some(rest) = name.strip_prefix(PRE_RESTORE_PREFIX) {
                (
                    ArchiveKind::PreRestore,
                    ArchiveName::parse(rest).map(|a| a.time),
                )
            } else {
                (ArchiveKind::Other, None)
            };
            out.push(ArchiveInfo {
                name,
                kind,
                time,
                size: meta.len(),
            });
        }
        out.sort_by(|a, b| {
            (a.time.is_none(), a.time, &a.name).cmp(&(b.time.is_none(), b.time, &b.name))
        });
        Ok(out)
    }

    /// Resolve an archive argument: a path to a file, or a name in `archives/`.
    pub fn resolve_archive(&self, arg: &Path) -> Result<PathBuf> {
        if arg.is_file() {
            return Ok(arg.to_path_buf());
        }
        let in_dir = self.archives().join(arg);
        if arg.components().count() == 1 && in_dir.is_file() {
            return Ok(in_dir);
        }
        Err(crate::Error::NotFound(format!(
            "no archive {} (neither a file nor a name in {}; `thrum-backup archives` lists them)",
            arg.display(),
            self.archives().display()
        )))
    }
}
