//! `prune`: apply the retention policy to `archives/`.
//!
//! Only archives the engine named (`YYYY-MM-DDTHHMMSS[-N].zip`) are candidates;
//! `pre-restore-*.zip` and every other file are never removed. Only sound archives count
//! ([`crate::health`]): a file with an archive's name that does not open, has no manifest, or
//! is marked damaged is kept and reported, and never displaces a sound archive. The last good
//! archive before a shrink is kept until `--accept-shrink`.

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
    /// Files retention never touches (files the engine did not name).
    pub exempt: Vec<String>,
    /// The safety archives of restores (`pre-restore-*.zip`): their own retention.
    pub pre_restore: Vec<Decision>,
    /// Archives removed (empty in a dry run).
    pub removed: Vec<String>,
    /// Archives that are not sound (kept, never counted), with what is wrong.
    pub unsound: Vec<String>,
    /// Shrinks accepted by this run (`--accept-shrink`): their archives count like any other.
    pub accepted: Vec<crate::health::Protection>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Take the lock, recover, and prune. With `accept_shrink`, the last good archives kept
/// because of a shrink count like any other again (a dry run only shows what that would do).
pub fn prune(
    ctx: &Context,
    dry_run: bool,
    accept_shrink: bool,
    lock_timeout: Duration,
) -> Result<PruneReport> {
    let (_lock, _) = crate::recovery::open(&ctx.backup, lock_timeout, !dry_run)?;
    let mut accepted = Vec::new();
    if accept_shrink {
        accepted = if dry_run {
            crate::health::protections(&ctx.backup)?
        } else {
            crate::health::accept(&ctx.backup)?
        };
    }
    let mut report = prune_with(ctx, dry_run, accept_shrink)?;
    report.accepted = accepted;
    Ok(report)
}

/// Prune with the lock already held.
pub fn prune_locked(ctx: &Context, dry_run: bool) -> Result<PruneReport> {
    prune_with(ctx, dry_run, false)
}

fn prune_with(ctx: &Context, dry_run: bool, ignore_protections: bool) -> Result<PruneReport> {
    let policy = ctx.config.backup.retention();
    let all = ctx.backup.list_archives()?;
    let protections = if ignore_protections {
        Vec::new()
    } else {
        crate::health::protections(&ctx.backup)?
    };
    let mut candidates = Vec::new();
    let mut exempt = Vec::new();
    let mut unsound = Vec::new();
    let mut safety = Vec::new();
    for a in &all {
        if a.kind == ArchiveKind::PreRestore
            && let Some(mut name) = a
                .name
                .strip_prefix(crate::backup_dir::PRE_RESTORE_PREFIX)
                .and_then(ArchiveName::parse)
        {
            name.name = a.name.clone();
            safety.push(name);
            continue;
        }
        match (a.kind, ArchiveName::parse(&a.name)) {
            (ArchiveKind::Snapshot, Some(name)) => {
                let health = crate::health::of(&ctx.backup, a);
                if let Some(why) = &health.unsound {
                    unsound.push(format!("{}: {why}", a.name));
                }
                let before_shrink = protections
                    .iter()
                    .find(|p| p.archive == a.name)
                    .map(|p| p.what.join("; "));
                candidates.push(retention::Candidate {
                    name,
                    unsound: health.unsound,
                    by_thrum: health.by_thrum,
                    before_shrink,
                });
            }
            _ => exempt.push(a.name.clone()),
        }
    }
    let decisions = retention::decide(&candidates, &policy);
    let pre_restore = retention::pre_restore(&safety, chrono::Utc::now());
    let mut removed = Vec::new();
    if !dry_run {
        let dir = ctx.backup.archives();
        for d in decisions.iter().chain(&pre_restore).filter(|d| !d.keep()) {
            let path = dir.join(&d.archive.name);
            std::fs::remove_file(&path).at("remove", &path)?;
            let _ = std::fs::remove_file(crate::archive::index_path(&path));
            crate::health::forget(&path);
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
                let orphan = match name
                    .strip_suffix(".json")
                    .or_else(|| name.strip_suffix(".damaged"))
                {
                    _ if name.starts_with('.') => true, // an interrupted write
                    // `current/`'s caches (`current-pages.json`, `current-blocks.json`) are
                    // no archive's index: removing them cost every next create its reuse.
                    _ if name.starts_with("current-") => false,
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
        pre_restore,
        removed,
        unsound,
        accepted: Vec::new(),
        dry_run,
    })
}
