//! `prune`: apply the retention policy to `archives/`.
//!
//! Only archives the engine named (`YYYY-MM-DDTHHMMSS[-N].zip`) are candidates;
//! `pre-restore-*.zip` and every other file are never removed.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::backup_dir::ArchiveKind;
use crate::config::Retention;
use crate::context::Context;
use crate::error::{IoContext, Result};
use crate::fsx;
use crate::retention::{self, ArchiveName, Decision};

/// What `prune` decided (and did, unless it was a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// The policy applied.
    pub policy: Retention,
    /// One decision per engine-named archive, newest first.
    pub decisions: Vec<Decision>,
    /// Files retention never touches (pre-restore and others).
    pub exempt: Vec<String>,
    /// Archives removed (empty in a dry run).
    pub removed: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Take the lock, recover, and prune.
pub fn prune(ctx: &Context, dry_run: bool, lock_timeout: Duration) -> Result<PruneReport> {
    let _lock = ctx.backup.lock(lock_timeout)?;
    if !dry_run {
        ctx.backup.check_writable()?;
    }
    ctx.backup.recover()?;
    prune_locked(ctx, dry_run)
}

/// Prune with the lock already held.
pub fn prune_locked(ctx: &Context, dry_run: bool) -> Result<PruneReport> {
    let policy = ctx.config.backup.retention();
    let all = ctx.backup.list_archives()?;
    let mut named = Vec::new();
    let mut exempt = Vec::new();
    for a in &all {
        match (a.kind, ArchiveName::parse(&a.name)) {
            (ArchiveKind::Snapshot, Some(n)) => named.push(n),
            _ => exempt.push(a.name.clone()),
        }
    }
    let decisions = retention::apply(&named, &policy);
    let mut removed = Vec::new();
    if !dry_run {
        let dir = ctx.backup.archives();
        for d in decisions.iter().filter(|d| !d.keep()) {
            let path = dir.join(&d.archive.name);
            std::fs::remove_file(&path).at("remove", &path)?;
            let _ = std::fs::remove_file(crate::archive::index_path(&path));
            removed.push(d.archive.name.clone());
        }
        if !removed.is_empty() {
            fsx::sync_dir(&dir)?;
        }
        // Chunk indexes whose archive is gone (removed by hand, or by a killed prune).
        let index_dir = crate::archive::index_path(&dir.join("x.zip"))
            .parent()
            .map(Path::to_path_buf);
        if let Some(entries) = index_dir.and_then(|d| std::fs::read_dir(d).ok()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let orphan = match name.strip_suffix(".json") {
                    _ if name.starts_with('.') => true, // an interrupted write
                    Some(zip) => !dir.join(zip).exists(),
                    None => false,
                };
                if orphan {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    Ok(PruneReport {
        policy,
        decisions,
        exempt,
        removed,
        dry_run,
    })
}
