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
    /// The schedule `thrum-backup daemon` follows.
    pub schedule: Option<String>,
    /// thrum's own `backup.schedule`: while it is set, thrum's daemon runs thrum's backup.
    pub thrum_schedule: Option<String>,
    /// Archives that are not sound (kept, never counted by retention), with what is wrong.
    pub unsound_archives: Vec<String>,
    /// Archives kept as the last good copy before a shrink, until `prune --accept-shrink`.
    pub kept_before_shrink: Vec<crate::health::Protection>,
    /// Each replica of `backup.replicas`, with its last success and last error (from this
    /// machine's record; `replica list` asks the repositories themselves).
    pub replicas: Vec<ReplicaStatus>,
    /// Things the user should act on.
    pub warnings: Vec<String>,
    /// What recovery finished or rolled back first.
    pub recovered: Vec<String>,
}

/// A replica in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// Its name.
    pub name: String,
    /// Its repository.
    pub repository: String,
    /// What it last did.
    #[serde(flatten)]
    pub state: crate::replica::ReplicaState,
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
    /// Who wrote it: `thrum-backup` or `thrum` (thrum's own backup).
    pub made_by: String,
    /// Whether thrum's secrets are in it: `included`, `excluded`, or unknown (older snapshots).
    pub secrets: Option<String>,
    /// Files the workspace had that the layout does not know (not backed up).
    pub unknown_files: u64,
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
    let mut unsound_archives = Vec::new();
    let mut kept_before_shrink = Vec::new();
    if ctx.backup.exists() {
        let (_lock, recovery) = crate::recovery::open(&ctx.backup, lock_timeout, false)?;
        recovered = recovery.actions;
        last_backup = ctx
            .backup
            .current_manifest()?
            .map(|m| last_backup_of(ctx, m))
            .transpose()?;
        let list = ctx.backup.list_archives()?;
        for a in list.iter().filter(|a| a.kind == ArchiveKind::Snapshot) {
            if let Some(why) = crate::health::of(&ctx.backup, a).unsound {
                unsound_archives.push(format!("{}: {why}", a.name));
            }
        }
        archives = stats(&list);
        kept_before_shrink = crate::health::protections(&ctx.backup)?;
    }
    let b = &ctx.config.backup;
    let mut warnings = warnings(
        ctx,
        &kept_before_shrink,
        &unsound_archives,
        last_backup.as_ref(),
    );
    let states = crate::replica::state::load(ctx.backup.root());
    let replicas: Vec<ReplicaStatus> = b
        .replicas
        .iter()
        .map(|r| ReplicaStatus {
            name: r.name.clone(),
            repository: r.repository.clone(),
            state: states.get(&r.name).cloned().unwrap_or_default(),
        })
        .collect();
    for r in &replicas {
        if let Some((_, e)) = &r.state.last_error {
            warnings.push(format!(
                "replica {} failed last time: {e} (`thrum-backup replica sync {}` pushes what it lacks)",
                r.name, r.name
            ));
        }
    }
    Ok(StatusReport {
        replicas,
        backup_dir: ctx.backup.root().to_path_buf(),
        last_backup,
        archives,
        schedule: b.own_schedule.clone().or_else(|| b.schedule.clone()),
        thrum_schedule: b.schedule.clone(),
        unsound_archives,
        kept_before_shrink,
        warnings,
        recovered,
    })
}

/// What `status` warns about: thrum's own schedule beside ours, archives kept before a shrink,
/// unsound archives, files the last snapshot did not know.
fn warnings(
    ctx: &Context,
    kept_before_shrink: &[crate::health::Protection],
    unsound_archives: &[String],
    last_backup: Option<&LastBackup>,
) -> Vec<String> {
    let b = &ctx.config.backup;
    let mut warnings: Vec<String> = ctx.set_note.iter().cloned().collect();
    if let Some(thrum) = &b.schedule
        && ctx.config.backup.thrum_schedule_interval().is_some()
    {
        warnings.push(format!(
            "backup.schedule is set ({thrum}): thrum's daemon runs thrum's own backup on that schedule; it takes no lock, rewrites current/ and prunes by thrum's rules{}. Turn it off with `thrum-backup schedule off --thrum` and schedule ours with `thrum-backup schedule {thrum}`",
            if b.own_schedule.is_some() {
                ", side by side with thrum-backup's schedule"
            } else {
                ""
            }
        ));
    }
    for p in kept_before_shrink {
        warnings.push(format!(
            "{} is kept as the last good backup from before the workspace shrank ({}): restore it, or run `thrum-backup prune --accept-shrink` once the shrink was meant",
            p.archive,
            p.what.join("; ")
        ));
    }
    if !unsound_archives.is_empty() {
        warnings.push(format!(
            "{} archive(s) are not sound (kept, never counted by retention; remove them by hand once you no longer need them): {}",
            unsound_archives.len(),
            unsound_archives.join("; ")
        ));
    }
    if let Some(l) = last_backup
        && l.unknown_files > 0
    {
        warnings.push(format!(
            "the last snapshot found {} file(s) that thrum {} does not write and did not back them up: see `unknown` in current/manifest.json",
            l.unknown_files,
            crate::layout::THRUM_VERSION
        ));
    }
    warnings
}

/// The last backup, as `status` tells it.
fn last_backup_of(ctx: &Context, m: crate::manifest::Manifest) -> Result<LastBackup> {
    // thrum's manifests list no files: count what is there.
    let (files, bytes) = if m.has_checksums() {
        (m.files.len() as u64, m.files.iter().map(|f| f.size).sum())
    } else {
        let current = ctx.backup.current();
        crate::fsx::walk_files(&current)?
            .iter()
            .filter(|f| *f != crate::manifest::FILE_NAME)
            .fold((0, 0), |(n, b), f| {
                let size = std::fs::metadata(current.join(f)).map_or(0, |m| m.len());
                (n + 1, b + size)
            })
    };
    Ok(LastBackup {
        timestamp: m.timestamp,
        files,
        bytes,
        made_by: if m.engine.is_some() {
            "thrum-backup".into()
        } else {
            "thrum".into()
        },
        secrets: m.layout.as_ref().map(|l| l.secrets.clone()),
        unknown_files: m.unknown.len() as u64,
        failed_plugins: m
            .plugin_results
            .iter()
            .filter(|p| !p.status.is_ok())
            .map(|p| p.name.clone())
            .collect(),
        counts: m.counts,
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
