//! Carrying out a restore's plan as one transaction.
//!
//! 1. The journal is written before the first temporary file exists: from here on, a kill is
//!    rolled back by the next command ([`crate::recovery`]).
//! 2. The database is prepared on its private copy, and its event sequence compared with the
//!    live one's. A snapshot's copy that `create` did not check is checked on a thread beside
//!    steps 2–4, and must pass before the commit.
//! 3. The live data about to be replaced is saved as `archives/pre-restore-<time>.zip`.
//! 4. Every temporary file is filled from the snapshot, then the journal commits: each target
//!    is moved aside and its replacement renamed in. Any error undoes every step (and drops
//!    the safety archive, since nothing was replaced).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::plan::RestorePlan;
use super::source::Checked;
use super::{RestoreOptions, SequenceReport, db};
use crate::backup_dir::PRE_RESTORE_PREFIX;
use crate::context::Context;
use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::journal::{self, JOURNAL, Journal};
use crate::plugin::runner::{Kinds, Runner};
use crate::progress::{Cancel, Progress};
use crate::retention::ArchiveName;
use crate::snapshot::{self, Staging};

/// What applying a plan did beyond its steps.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// The safety archive of the data that was replaced.
    pub pre_restore: Option<PathBuf>,
    /// Local-table rows imported into the database.
    pub local_rows: BTreeMap<String, u64>,
    /// The database's event sequence.
    pub sequence: Option<SequenceReport>,
    /// Warnings.
    pub notes: Vec<String>,
}

/// Apply `plan` (of the checked snapshot `source`) to the workspace, all or nothing.
pub(crate) fn apply(
    ctx: &Context,
    opts: &RestoreOptions,
    plan: &RestorePlan,
    source: &Checked,
    work: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Applied> {
    let journal_path = ctx.backup.tmp().join(JOURNAL);
    let mut journal = Journal {
        committed: false,
        steps: plan.steps.clone(),
    };
    journal::write(&journal_path, &journal)?;
    // The database's check runs beside the rest on a thread of this scope.
    std::thread::scope(|scope| {
        let mut applied = Applied::default();
        let undo = |e: Error| -> Error {
            // Every temporary file goes with it, the prepared database and SQLite's files
            // beside it.
            let complete = journal::rollback(&journal.steps);
            if complete {
                let _ = fs::remove_file(&journal_path);
            }
            e
        };
        let mut check = None;
        if let Some(d) = &plan.database {
            check = db::check_beside(scope, d).map_err(undo)?;
            progress.phase("preparing the database", None);
            // A copy that fails its check may fail to prepare too: the check says why.
            applied.local_rows = db::prepare(d, opts.db_wait)
                .map_err(|e| match check.take().map(|c| c.finish(progress)) {
                    Some(Err(damaged)) => damaged,
                    _ => e,
                })
                .map_err(undo)?;
            let ws = &ctx.workspace;
            let sequence = db::check_sequence(
                ws,
                &d.temp,
                &source.manifest,
                opts.raise_sequence,
                &mut applied.notes,
            );
            applied.sequence = Some(sequence.map_err(undo)?);
        }
        cancel.check().map_err(undo)?;

        // A restore that fails and is put back whole replaced nothing: its safety archive goes.
        // A partial restore of files alone saves only the live files it replaces.
        let saved = if plan.partial && plan.database.is_none() && plan.plugins.is_empty() {
            save_replaced(ctx, plan, source, work, progress, cancel)
        } else {
            save_live(ctx, work, opts.db_wait, progress, cancel)
        };
        applied.pre_restore = saved.map_err(undo)?;
        // The safety snapshot is in its zip now: its files (a whole copy of the live database
        // among them, whose unlinking is not free) go while the restore goes on.
        let saved_dir = work.join("live");
        scope.spawn(move || fsx::remove_any(&saved_dir));
        let undo = |e: Error| -> Error {
            let e = undo(e);
            if let (false, Some(p)) = (journal_path.exists(), &applied.pre_restore) {
                let _ = fs::remove_file(p);
            }
            e
        };

        progress.phase("restoring", Some(plan.needed));
        fill_temps(plan, progress, cancel).map_err(undo)?;
        if let Some(check) = check {
            check.finish(progress).map_err(undo)?;
        }
        let notes = journal::commit(&journal.steps, journal::fault_at())
            .map_err(|e| Error::RolledBack(Box::new(undo(e))))?;
        applied.notes.extend(notes);
        journal.committed = true;
        journal::write(&journal_path, &journal)?;
        journal::finish(&journal.steps);
        fs::remove_file(&journal_path).at("remove", &journal_path)?;
        Ok(applied)
    })
}

/// Copy each step's snapshot file into its temporary file, with the mode it is restored with,
/// and the tail of each file a trim step cuts back into its tail file, then flush them to
/// disk before anything is committed, several at a time (see [`fsx::sync_paths`]) rather
/// than one after the other.
fn fill_temps(plan: &RestorePlan, progress: &dyn Progress, cancel: &Cancel) -> Result<()> {
    let mut written = Vec::new();
    for (s, copy) in plan.steps.iter().zip(&plan.copies) {
        if let Some(t) = &s.trim {
            cancel.check()?;
            let size = fsx::copy_tail_unsynced(&s.target, t.len, &t.tail)?;
            written.push(t.tail.clone());
            progress.advance(size);
            continue;
        }
        let (Some((from, mode)), Some(temp)) = (copy, &s.temp) else {
            continue;
        };
        cancel.check()?;
        // Folders a secret lives in are made private before anything is put in them.
        if let (Some(dir_mode), Some(parent)) = (s.dir_mode, temp.parent()) {
            fsx::create_dir_all_mode(parent, dir_mode)?;
        }
        // The source's bytes were verified against its manifest when it was opened.
        let size = fsx::copy_verified_unsynced(from, temp)?;
        fsx::set_mode(temp, *mode)?;
        written.push(temp.clone());
        progress.advance(size);
    }
    fsx::sync_paths(&written)?;
    // A tail must outlast the cut its step makes: its folder's entry too. (A temporary file
    // needs no such flush: the commit renames it, and flushes the folders it renamed into.)
    let mut tail_dirs: Vec<&Path> = plan
        .steps
        .iter()
        .filter_map(|s| s.trim.as_ref()?.tail.parent())
        .collect();
    tail_dirs.sort();
    tail_dirs.dedup();
    tail_dirs.into_iter().try_for_each(fsx::sync_dir)
}

/// The live files a partial restore replaces, saved as a partial snapshot (under the same
/// snapshot paths as in the snapshot restored, whose layout it takes) zipped as
/// `archives/pre-restore-<now>.zip`: restoring it puts back exactly those files. `None` when
/// the restore replaces no live file (it only creates).
fn save_replaced(
    ctx: &Context,
    plan: &RestorePlan,
    source: &Checked,
    work: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Option<PathBuf>> {
    let live = work.join("live");
    fsx::create_dir_all(&live)?;
    let mut staging = Staging::scratch(live.clone());
    let (restored, src) = (&source.manifest, &source.dir);
    let secret: std::collections::BTreeSet<&str> = restored
        .files
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.path.as_str())
        .collect();
    let mut saved = 0;
    for (step, copy) in plan.steps.iter().zip(&plan.copies) {
        cancel.check()?;
        let Some((from, _)) = copy else { continue };
        let Ok(rel) = from.strip_prefix(src) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let is_file = fs::symlink_metadata(&step.target).is_ok_and(|m| m.is_file());
        if !is_file {
            continue;
        }
        if let Some(parent) = live.join(&rel).parent() {
            fsx::create_dir_all(parent)?;
        }
        let mode = fsx::mode_of(&step.target);
        staging.copy_in_as(&step.target, &rel, mode, secret.contains(rel.as_str()))?;
        saved += 1;
    }
    if saved == 0 {
        return Ok(None);
    }
    let mut m = snapshot::new_manifest(
        &ctx.workspace.repo_name,
        &ctx.identity,
        snapshot::Captured::default(),
    );
    m.partial = true;
    m.layout = restored.layout.clone();
    m.worktrees = restored.worktrees.clone();
    m.local_only = restored.local_only;
    let time = m.timestamp;
    staging.finish(m)?;
    publish_safety(ctx, &live, time, progress, cancel)
}

/// Snapshot the live workspace (and what its WebAssembly plugins would put back) and zip it as
/// `archives/pre-restore-<now>.zip`. `None` when the workspace has nothing to protect.
fn save_live(
    ctx: &Context,
    work: &Path,
    db_wait: std::time::Duration,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Option<PathBuf>> {
    let live = work.join("live");
    fsx::create_dir_all(&live)?;
    // Zipped, then deleted ([`Staging::scratch`]): nothing is flushed but the archive, and
    // the live JSON Lines files are kept as they are, checked if this snapshot is ever
    // restored (as its database, below).
    let mut staging = Staging::scratch(live.clone());
    if !ctx.workspace.thrum_dir.is_dir() {
        return Ok(None);
    }
    let mut opts = snapshot::CaptureOptions {
        // thrum's daemon is stopped, and the commit (which renames files in, or cuts a grown
        // log back) comes after the safety archive is written: until then the live files stay
        // as they are, so links are copies.
        link: true,
        ..ctx.capture_options(false, db_wait)
    };
    // A damaged database is what a restore is often for: it is kept, not refused. Nor is it
    // checked: the copy is the database's pages of one instant, checked if it is ever
    // restored (its manifest says it was not), and a full check is the safety snapshot's
    // largest cost.
    opts.db_check.never = true;
    let captured =
        snapshot::capture_workspace(&ctx.workspace, &opts, &mut staging, None, progress, cancel)?;
    let nothing = captured.database.is_none()
        && captured.counts.events == 0
        && captured.counts.message_files == 0
        && captured.counts.config_files == 0
        && fsx::walk_files(&live)?.is_empty();
    if nothing {
        return Ok(None);
    }
    let mut m = snapshot::new_manifest(&ctx.workspace.repo_name, &ctx.identity, captured);
    // What the plugins would put back is saved too, each in its own format: their backup.
    Runner::new(
        &ctx.workspace,
        &ctx.config.backup.plugins,
        Some(m.timestamp),
    )
    .backup_all(Kinds::Wasm, &mut staging, &mut m, progress, cancel)?;
    let time = m.timestamp;
    staging.finish(m)?;
    publish_safety(ctx, &live, time, progress, cancel)
}

/// The Deflate level of a safety archive. It is written while the user waits for the restore,
/// and is read only if that restore is to be undone: what it does not reuse from the newest
/// archive (mostly the live database's changed chunks) is compressed at level 1, about three
/// times faster than thrum's 6 for an output ~15% larger on those bytes.
const SAFETY_LEVEL: i64 = 1;

/// Zip the safety snapshot in `live` as `archives/pre-restore-<time>.zip`.
fn publish_safety(
    ctx: &Context,
    live: &Path,
    time: chrono::DateTime<chrono::Utc>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Option<PathBuf>> {
    let archives = ctx.backup.archives();
    fsx::create_dir_all(&archives)?;
    let tmp = fsx::temp_sibling(&archives.join("pre-restore.zip"), "tmp");
    // The live data is mostly what the newest archive holds: reuse it where the files agree.
    let earlier = ctx.backup.newest_snapshot_archive(time);
    crate::archive::write_dir_reusing(
        live,
        &tmp,
        SAFETY_LEVEL,
        earlier.as_deref(),
        progress,
        &|_| (),
        cancel,
    )
    .inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    ctx.backup
        .publish_archive(&tmp, |seq| {
            format!("{PRE_RESTORE_PREFIX}{}", ArchiveName::format(time, seq))
        })
        .map(Some)
}
