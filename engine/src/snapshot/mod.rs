//! Building a snapshot in a staging directory: every file is written once, hashed and
//! counted while it is written, and the manifest goes in last. A staging directory without
//! `manifest.json` is unfinished by definition.
//!
//! Files are not flushed to disk one by one as they are written: [`Staging::finish`] flushes
//! them all, several at a time (a journaling filesystem commits fsyncs that wait together in
//! one transaction), before it writes the manifest, so that a snapshot whose manifest is on
//! disk has all of its files on disk. An fsync per file, in turn, cost ~0.2 s of the ~1,200
//! files' snapshot the benchmark takes. (`syncfs` was tried: one call, but it also waits for
//! whatever else anyone wrote to the filesystem, and the benchmark's restore, run after
//! restic's and borg's repositories were written, got slower with it.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::error::{IoContext, Result};
use crate::fsx::blocks::Blocks;
use crate::fsx::{self, FileDigest};
use crate::manifest::{
    self, CaptureInfo, Counts, DatabaseInfo, EngineInfo, FileEntry, LayoutInfo, Manifest, Prefix,
    SyncInfo,
};

mod capture;
mod grow;

pub use capture::capture_workspace;
pub use grow::{
    Base, DB_WORK, Gate, Grown, cut_back_grown, db_undo, drop_db_work, roll_back_database,
    save_blocks,
};

/// Copy `src` to the new file `dst` of a snapshot being staged, unflushed (see
/// [`Staging::finish`]).
pub(crate) fn copy_unsynced(src: &Path, dst: &Path) -> Result<FileDigest> {
    copy_unsynced_blocks(src, dst).map(|(d, _)| d)
}

/// [`copy_unsynced`], with the copy's blocks (see [`fsx::blocks`]).
fn copy_unsynced_blocks(src: &Path, dst: &Path) -> Result<(FileDigest, Option<Blocks>)> {
    fsx::copy_new_unsynced(src, dst).map(|(_, d, b)| (d, b))
}

/// Path of the database copy inside a snapshot.
pub const DB_PATH: &str = "db/messages.db";

/// A snapshot being written.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    files: BTreeMap<String, FileEntry>,
    /// Files [`Staging::finish`] need not flush: linked from the live workspace for a
    /// restore's safety snapshot (see [`CaptureOptions::link`]).
    linked: std::collections::HashSet<String>,
    /// [`Staging::finish`] flushes what was written (not for a [`Staging::scratch`]).
    durable: bool,
    /// The blocks of the files longer than one block, as they were hashed: the next create
    /// grows from them ([`save_blocks`]).
    blocks: BTreeMap<String, Blocks>,
}

impl Staging {
    /// Start writing into the empty directory `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            files: BTreeMap::new(),
            linked: std::collections::HashSet::new(),
            durable: true,
            blocks: BTreeMap::new(),
        }
    }

    /// Start writing into the empty directory `root` a snapshot that is zipped, then deleted
    /// (a restore's safety snapshot): its archive is flushed, not its files.
    pub fn scratch(root: PathBuf) -> Self {
        Self {
            durable: false,
            ..Self::new(root)
        }
    }

    /// The staging directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether this snapshot is zipped, then deleted ([`Staging::scratch`]): a restore's
    /// safety snapshot, whose archive is what must last. Capturing into it flushes nothing
    /// (not even the database copy), and keeps the JSON Lines files as they are without
    /// checking them: its manifest says so (`jsonl_checked` false), and restoring it checks
    /// them, as its database.
    pub fn is_scratch(&self) -> bool {
        !self.durable
    }

    /// Keep the blocks of `rel` as it was hashed, when it has a tree to keep.
    fn keep_blocks(&mut self, rel: &str, blocks: Option<Blocks>) {
        if let Some(b) = blocks.filter(Blocks::usable) {
            self.blocks.insert(rel.to_owned(), b);
        }
    }

    /// The blocks kept of the files of this snapshot (see [`save_blocks`]).
    pub fn take_blocks(&mut self) -> BTreeMap<String, Blocks> {
        std::mem::take(&mut self.blocks)
    }

    fn record(&mut self, rel: &str, d: &FileDigest) {
        self.record_full(rel, d, None, None, false);
    }

    fn record_full(
        &mut self,
        rel: &str,
        d: &FileDigest,
        prefix: Option<Prefix>,
        mode: Option<u32>,
        secret: bool,
    ) {
        self.files.insert(
            rel.to_owned(),
            FileEntry {
                path: rel.to_owned(),
                size: d.size,
                checksum: d.checksum.clone(),
                prefix,
                mode,
                secret,
                crc32: Some(d.crc32),
            },
        );
    }

    /// Copy `src` to `rel` in the snapshot.
    pub fn copy_in(&mut self, src: &Path, rel: &str) -> Result<FileDigest> {
        let d = copy_unsynced(src, &self.root.join(rel))?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Copy `src` to `rel` in the snapshot, recording its mode and whether it is a secret
    /// (a private file stays private in the copy: it is written 0600 like every file here).
    pub fn copy_in_as(
        &mut self,
        src: &Path,
        rel: &str,
        mode: Option<u32>,
        secret: bool,
    ) -> Result<FileDigest> {
        let d = copy_unsynced(src, &self.root.join(rel))?;
        self.record_full(rel, &d, None, mode, secret);
        Ok(d)
    }

    /// Record a file something else wrote at `rel` (the database copy).
    pub fn adopt(&mut self, rel: &str) -> Result<FileDigest> {
        let d = fsx::digest_file(&self.root.join(rel))?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Drop everything under `prefix/` (a failed plugin's partial output).
    pub fn discard(&mut self, prefix: &str) -> Result<()> {
        fsx::remove_any(&self.root.join(prefix))?;
        let p = format!("{prefix}/");
        self.files.retain(|k, _| !k.starts_with(&p));
        Ok(())
    }

    /// Files and bytes recorded under `prefix/`.
    pub fn totals_under(&self, prefix: &str) -> (u64, u64) {
        let p = format!("{prefix}/");
        self.files
            .values()
            .filter(|f| f.path.starts_with(&p))
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size))
    }

    /// The files recorded so far, sorted by path.
    pub fn entries(&self) -> Vec<FileEntry> {
        self.files.values().cloned().collect()
    }

    /// Flush every file written and every folder to disk, then write the manifest (with the
    /// file list) and flush the directory. The snapshot is complete once this returns.
    pub fn finish(self, mut manifest: Manifest) -> Result<Manifest> {
        manifest.files = self.files.into_values().collect();
        let mut paths = Vec::new();
        let mut dirs = std::collections::BTreeSet::new();
        for f in manifest.files.iter().filter(|_| self.durable) {
            let path = self.root.join(&f.path);
            dirs.extend(
                path.ancestors()
                    .skip(1)
                    .take_while(|d| d.starts_with(&self.root))
                    .map(Path::to_path_buf),
            );
            // A file linked unchanged from the previous snapshot is that snapshot's copy,
            // flushed when it was taken; one linked from the workspace (a restore's safety
            // snapshot) is archived, and the archive flushed, before anything replaces it.
            let unchanged = f.prefix.as_ref().is_some_and(|p| p.size == f.size);
            if !unchanged && !self.linked.contains(&f.path) {
                paths.push(path);
            }
        }
        paths.extend(dirs);
        fsx::sync_paths(&paths)?;
        let path = self.root.join(manifest::FILE_NAME);
        fsx::write_atomic(&path, &manifest.to_vec())?;
        Ok(manifest)
    }
}

/// What [`capture_workspace`] collected.
#[derive(Debug, Default)]
pub struct Captured {
    /// thrum's counts (plugins filled in later).
    pub counts: Counts,
    /// The database copy.
    pub database: Option<DatabaseInfo>,
    /// Local-table rows.
    pub local_tables: BTreeMap<String, u64>,
    /// Things worth telling the user.
    pub notes: Vec<String>,
    /// Files grown from the earlier snapshot instead of copied.
    pub grown: Grown,
    /// What of thrum's layout was captured.
    pub layout: Option<LayoutInfo>,
    /// The `a-sync` branch.
    pub sync: Option<SyncInfo>,
    /// Other worktrees captured: name → path.
    pub worktrees: BTreeMap<String, String>,
    /// Files the layout does not name.
    pub unknown: Vec<String>,
    /// Entries the layout names that were not regular files.
    pub skipped: Vec<String>,
    /// The order of the database and the streams.
    pub capture: Option<CaptureInfo>,
    /// JSON Lines files that are not all JSON lines.
    pub jsonl: Vec<crate::jsonl::Issue>,
    /// Every JSON Lines file was checked (`jsonl` is then complete).
    pub jsonl_checked: bool,
}

/// How to capture a workspace.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Leave thrum's secrets out.
    pub exclude_secrets: bool,
    /// `daemon.local_only`: the `a-sync` history exists only here.
    pub sync_local_only: bool,
    /// Folders the unknown-file report passes over (the backup directory).
    pub skip: Vec<PathBuf>,
    /// How long to wait for a locked database.
    pub db_wait: Duration,
    /// Hard-link the workspace's files into the snapshot instead of copying them (where the
    /// filesystem allows; copied otherwise). Only for a snapshot taken while nothing writes to
    /// them and archived before anything replaces them: a restore's safety snapshot (thrum's
    /// daemon is stopped, and a restore renames its files in, never writes into them).
    pub link: bool,
    /// When the database copy gets SQLite's full integrity check.
    pub db_check: DbCheck,
}

/// When a database copy brought up to date page by page from the previous snapshot's gets
/// SQLite's full `PRAGMA quick_check`, which reads every page (a copy made whole always does).
/// Between checks, the copy is proven to hold exactly the live database's pages of its
/// instant (each page compared, the whole hashed), not that they are sound; a restore checks
/// such a copy before putting it back.
#[derive(Debug, Clone, Copy)]
pub struct DbCheck {
    /// When the last check that found the database sound is this old (`backup.db_check_every`).
    pub every: Duration,
    /// At this snapshot, whatever the schedule says (`create --check-db`).
    pub now: bool,
    /// Never, not even a whole copy: a restore's safety snapshot, which must keep whatever it
    /// replaces, damaged or not, and is checked only if it is ever restored (its manifest
    /// says it was not: `quick_check: false`, no `checked_at`).
    pub never: bool,
}

impl Default for DbCheck {
    fn default() -> Self {
        Self {
            every: crate::config::DB_CHECK_EVERY,
            now: false,
            never: false,
        }
    }
}

impl DbCheck {
    /// Whether a copy of `pages` pages, `changed` of them since a copy whose database was last
    /// found sound at `last`, is to be checked: when asked, when the check is due, when it was
    /// never checked (or the clock went back), and when a quarter or more of it changed (a
    /// rewrite, `VACUUM`: the check then costs little more than the copy).
    pub fn due(&self, last: Option<chrono::DateTime<Utc>>, changed: u64, pages: u64) -> bool {
        if self.never {
            return false;
        }
        let age = last.and_then(|t| Utc::now().signed_duration_since(t).to_std().ok());
        self.now || age.is_none_or(|age| age >= self.every) || changed.saturating_mul(4) >= pages
    }
}

/// Where a snapshot keeps the history of the `a-sync` branch.
pub const BUNDLE_PATH: &str = "git/a-sync.bundle";

/// A manifest for a snapshot of the workspace `repo_name` (identified by `workspace`) taken
/// now.
pub fn new_manifest(
    repo_name: &str,
    workspace: &crate::identity::WorkspaceId,
    captured: Captured,
) -> Manifest {
    let id: u128 = rand::random();
    Manifest {
        version: 1,
        timestamp: Utc::now(),
        thrum_version: format!("thrum-backup {}", env!("CARGO_PKG_VERSION")),
        repo_name: repo_name.to_owned(),
        counts: captured.counts,
        engine: Some(EngineInfo::current()),
        snapshot_id: Some(format!("{id:032x}")),
        local_only: false,
        workspace: Some(workspace.clone()),
        layout: captured.layout,
        sync: captured.sync,
        worktrees: captured.worktrees,
        unknown: captured.unknown,
        skipped: captured.skipped,
        jsonl: captured.jsonl,
        jsonl_checked: captured.jsonl_checked,
        shrink: Vec::new(),
        partial: false,
        capture: captured.capture,
        files: Vec::new(),
        database: captured.database,
        local_tables: captured.local_tables,
        plugin_results: Vec::new(),
    }
}

/// Names of the regular files in `dir` ending in `suffix`, sorted; none if `dir` is absent.
pub fn list_files(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at("read directory", dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at("read directory", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(suffix) && entry.file_type().at("inspect", &entry.path())?.is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_database_check_runs_when_due_asked_never_run_or_much_changed() {
        let day = Duration::from_secs(24 * 3600);
        let check = DbCheck {
            every: day,
            ..DbCheck::default()
        };
        let ago = |h: i64| Some(Utc::now() - chrono::Duration::hours(h));
        assert!(!check.due(ago(1), 10, 1000), "checked an hour ago");
        assert!(check.due(ago(25), 10, 1000), "last checked over a day ago");
        assert!(check.due(None, 10, 1000), "never checked");
        assert!(check.due(ago(-2), 10, 1000), "checked in the future");
        assert!(check.due(ago(1), 250, 1000), "a quarter rewritten");
        assert!(DbCheck { now: true, ..check }.due(ago(1), 0, 1000));
        let always = DbCheck {
            every: Duration::ZERO,
            ..DbCheck::default()
        };
        assert!(always.due(ago(0), 0, 1000), "\"0\": every backup");
        let never = DbCheck {
            never: true,
            now: true,
            ..always
        };
        assert!(
            !never.due(None, 1000, 1000),
            "a safety snapshot is never checked"
        );
    }
}
