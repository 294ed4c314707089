//! `status`: the last backup and archive statistics.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backup_dir::{ArchiveInfo, ArchiveKind};
use crate::context::Context;
use crate::error::Result;
use crate::manifest::Counts;

/// The state of a workspace's backups.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The repository's backup directory.
    pub backup_dir: PathBuf,
    /// The last snapshot, if any.
    pub last_backup: Option<LastBackup>,
    /// Archive statistics.
    pub archives: ArchiveStats,
    /// The configured schedule.
    pub schedule: Option<String>,
    /// What recovery finished or rolled back first.
    pub recovered: Vec<String>,
}

/// The snapshot in `current/`.
#[derive(Debug, Clone, Serialize)]
pub struct LastBackup {
    /// When it was taken.
    pub timestamp: DateTime<Utc>,
    /// thrum's counts.
    pub counts: Counts,
    /// Files in it.
    pub files: u64,
    /// Bytes in it.
    pub bytes: u64,
    /// Plugins that failed in it.
    pub failed_plugins: Vec<String>,
}

/// Counts and sizes of `archives/`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveStats {
    /// Snapshot archives.
    pub count: u64,
    /// Pre-restore safety archives.
    pub pre_restore: u64,
    /// Total bytes of all zips.
    pub total_bytes: u64,
    /// Oldest snapshot archive.
    pub oldest: Option<String>,
    /// Newest snapshot archive.
    pub newest: Option<String>,
}

/// Report the state of `ctx`'s backups.
pub fn status(ctx: &Context, lock_timeout: Duration) -> Result<StatusReport> {
    let mut recovered = Vec::new();
    let mut last_backup = None;
    let mut archives = ArchiveStats::default();
    if ctx.backup.exists() {
        let _lock = ctx.backup.lock(lock_timeout)?;
        recovered = ctx.backup.recover()?.actions;
        if let Some(m) = ctx.backup.current_manifest()? {
            last_backup = Some(LastBackup {
                timestamp: m.timestamp,
                files: m.files.len() as u64,
                bytes: m.files.iter().map(|f| f.size).sum(),
                failed_plugins: m
                    .plugin_results
                    .iter()
                    .filter(|p| p.status != "ok")
                    .map(|p| p.name.clone())
                    .collect(),
                counts: m.counts,
            });
        }
        archives = stats(&ctx.backup.list_archives()?);
    }
    Ok(StatusReport {
        backup_dir: ctx.backup.root().to_path_buf(),
        last_backup,
        archives,
        schedule: ctx.config.backup.schedule.clone(),
        recovered,
    })
}

fn stats(list: &[ArchiveInfo]) -> ArchiveStats {
    let snapshots: Vec<_> = list
        .iter()
        .filter(|a| a.kind == ArchiveKind::Snapshot)
        .collect();
    ArchiveStats {
        count: snapshots.len() as u64,
        pre_restore: list
            .iter()
            .filter(|a| a.kind == ArchiveKind::PreRestore)
            .count() as u64,
        total_bytes: list.iter().map(|a| a.size).sum(),
        oldest: snapshots.first().map(|a| a.name.clone()),
        newest: snapshots.last().map(|a| a.name.clone()),
    }
}
