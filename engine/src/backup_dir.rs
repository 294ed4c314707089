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

use crate::archive;
use crate::error::{IoContext, Result};
use crate::fsx;
use crate::lock::DirLock;
use crate::manifest::{self, Manifest};
use crate::progress::{Cancel, Progress};
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

/// The archive of `current/`, written but not yet named ([`BackupDir::prepare_archive`]).
#[derive(Debug)]
pub enum PreparedArchive {
    /// An interrupted run already archived this snapshot.
    Existing(PathBuf),
    /// Written under a temporary name in `archives/`.
    Written {
        /// The temporary file.
        tmp: PathBuf,
        /// The archived snapshot's time (its name).
        time: DateTime<Utc>,
        /// What was reused from the archive before.
        reuse: archive::Reuse,
        /// Its chunk index.
        index: archive::ChunkIndex,
        /// Where the snapshot did not match its manifest.
        damage: Vec<String>,
    },
}

impl PreparedArchive {
    /// Remove a written temporary file (the command failed before publishing it).
    pub fn discard(self) {
        if let PreparedArchive::Written { tmp, .. } = self {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// What [`BackupDir::recover`] did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Recovery {
    /// Human-readable actions, empty when there was nothing to do.
    pub actions: Vec<String>,
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
        read_dir_manifest(&self.current())
    }

    /// Finish or roll back whatever an interrupted command left behind.
    pub fn recover(&self) -> Result<Recovery> {
        let mut rec = Recovery::default();
        if !self.root.is_dir() {
            return Ok(rec);
        }
        crate::restore::recover_journal(self, &mut rec)?;
        let tmp = self.tmp();
        let mut staged = Vec::new();
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                staged.push((name, entry.path()));
            }
        }
        let current = self.current();
        if !current.exists() {
            // The only window without current/ is between the two renames of a swap on a
            // filesystem without RENAME_EXCHANGE: roll forward with the newest complete stage,
            // or back with the retired snapshot.
            let mut candidates: Vec<(DateTime<Utc>, u8, PathBuf)> = Vec::new();
            for (name, path) in &staged {
                let rank = if name.starts_with("stage-") {
                    1
                } else if name.starts_with("retired-") {
                    0
                } else {
                    continue;
                };
                if let Ok(Some(m)) = read_dir_manifest(path) {
                    candidates.push((m.timestamp, rank, path.clone()));
                }
            }
            candidates.sort();
            if let Some((_, _, best)) = candidates.pop() {
                fs::rename(&best, &current).at("rename into place", &current)?;
                fsx::sync_dir(&self.root)?;
                rec.actions.push(format!(
                    "put back the interrupted snapshot swap ({})",
                    best.file_name().unwrap_or_default().to_string_lossy()
                ));
            }
        }
        // Before the unfinished stage goes: a create that was growing logs from current/
        // (see snapshot::Base) may have appended to them.
        if current.is_dir() {
            for rel in crate::snapshot::cut_back_grown(&current)? {
                rec.actions.push(format!(
                    "cut current/{rel} back to its recorded size (an interrupted create had grown it)"
                ));
            }
        }
        for (name, path) in staged {
            if !path.exists() || name == crate::restore::JOURNAL {
                continue;
            }
            fsx::remove_any(&path)?;
            let what = if name.starts_with("stage-") {
                "removed an unfinished snapshot"
            } else if name.starts_with("retired-") {
                "removed a replaced snapshot"
            } else {
                "removed leftover work files"
            };
            rec.actions.push(format!("{what} (.tmp/{name})"));
        }
        if let Ok(entries) = fs::read_dir(self.archives()) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.contains(".tmp-") {
                    fsx::remove_any(&entry.path())?;
                    rec.actions
                        .push(format!("removed an unfinished archive (archives/{name})"));
                }
            }
        }
        Ok(rec)
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

    /// Zip `current/` into `archives/`, named by its snapshot time. Idempotent: if an archive
    /// of the same snapshot already exists (an interrupted run made it), it is reused.
    /// No archive is ever overwritten: a taken name gets a `-N` suffix.
    pub fn archive_current(
        &self,
        level: i64,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Option<(PathBuf, archive::Reuse)>> {
        match self.prepare_archive(level, progress, cancel)? {
            None => Ok(None),
            Some(p) => self
                .publish_prepared(p)
                .map(|(path, reuse, _)| Some((path, reuse))),
        }
    }

    /// The first half of [`BackupDir::archive_current`]: write the zip of `current/` under a
    /// temporary name in `archives/` (or find the archive an interrupted run made), publishing
    /// nothing. It may run while the next snapshot is staged.
    pub fn prepare_archive(
        &self,
        level: i64,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Option<PreparedArchive>> {
        let current = self.current();
        let has_content = fs::read_dir(&current)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !has_content {
            return Ok(None);
        }
        let manifest = read_dir_manifest(&current).ok().flatten();
        let time = manifest.as_ref().map_or_else(Utc::now, |m| m.timestamp);
        let id = manifest.as_ref().and_then(|m| m.snapshot_id.clone());
        let archives = self.archives();
        fsx::create_dir_all(&archives)?;
        if let Some(id) = &id {
            let taken = self.archive_names();
            for seq in 0..1000 {
                let name = ArchiveName::format(time, seq);
                if !taken.contains(&name) {
                    continue;
                }
                let candidate = archives.join(name);
                if let Ok(Some(m)) = archive::read_manifest(&candidate)
                    && m.snapshot_id.as_ref() == Some(id)
                {
                    return Ok(Some(PreparedArchive::Existing(candidate)));
                }
            }
        }
        let probe = archives.join(ArchiveName::format(time, 0));
        let tmp = fsx::temp_sibling(&probe, "tmp");
        // The newest earlier snapshot archive: what did not change since is copied from it.
        let earlier = self.newest_snapshot_archive(time);
        match archive::write_dir_reusing(
            &current,
            &tmp,
            level,
            earlier.as_deref(),
            progress,
            cancel,
        ) {
            Ok(w) => Ok(Some(PreparedArchive::Written {
                tmp,
                time,
                reuse: w.reuse,
                index: w.index,
                damage: w.damage,
            })),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// The newest snapshot archive taken at or before `time` (what a new archive can reuse).
    pub fn newest_snapshot_archive(&self, time: DateTime<Utc>) -> Option<PathBuf> {
        self.list_archives()
            .ok()?
            .into_iter()
            .filter(|a| a.kind == ArchiveKind::Snapshot && a.time.is_some_and(|t| t <= time))
            .max_by_key(|a| a.time)
            .map(|a| self.archives().join(a.name))
    }

    /// The second half of [`BackupDir::archive_current`]: give a prepared archive its name.
    /// An archive of a snapshot that did not match its manifest is marked damaged (kept,
    /// never counted by retention); what did not match is returned.
    pub fn publish_prepared(
        &self,
        prepared: PreparedArchive,
    ) -> Result<(PathBuf, archive::Reuse, Vec<String>)> {
        match prepared {
            PreparedArchive::Existing(path) => Ok((path, archive::Reuse::default(), Vec::new())),
            PreparedArchive::Written {
                tmp,
                time,
                reuse,
                index,
                damage,
            } => {
                let path = self.publish_archive(&tmp, |seq| ArchiveName::format(time, seq))?;
                // A name pruned before may be taken again: nothing recorded of that one holds.
                crate::health::forget(&path);
                if !damage.is_empty() {
                    crate::health::mark_damaged(
                        &path,
                        &format!("archived from a damaged snapshot: {}", damage.join("; ")),
                    )?;
                }
                // A cache for the next archive: losing it costs speed, never data.
                let _ = archive::save_index(&path, &index);
                Ok((path, reuse, damage))
            }
        }
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
    fn archive_names(&self) -> std::collections::HashSet<String> {
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

/// Read `<dir>/manifest.json`; `None` when the directory or the manifest is absent.
pub fn read_dir_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(manifest::FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => Manifest::from_slice(&bytes)
            .map(Some)
            .map_err(|m| crate::Error::Invalid(format!("{}: {m}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at("read", &path),
    }
}
