//! `restore`: put a snapshot back into the workspace as one transaction.
//!
//! Four steps, each its own module, none of which touches the workspace before the last:
//!
//! 1. [`source`]: check the source completely — an archive's structure (names, types, sizes,
//!    ratios, overlaps), every file's CRC, size and checksum while extracting into private
//!    space, the workspace it is of, every JSON Lines file, the database's schema version.
//! 2. [`plan`]: decide every change — the layout read backwards ([`layout`]: every path of
//!    thrum's layout the snapshot covers is made exactly equal to the snapshot, files it does
//!    not have are moved out), the plugins' files ([`plugins`]), the database ([`db`]), the
//!    sync worktree rebuilt as a real git worktree on `a-sync` when it is not a healthy one —
//!    as the journal's steps in commit order.
//! 3. [`apply`]: journal, prepare the database, save the live data about to be replaced as
//!    `archives/pre-restore-<time>.zip`, fill the temporary files, commit
//!    ([`crate::journal`]); on any error every step is undone, and a kill is undone by the
//!    next command's recovery.
//! 4. The report, from the plan and what applying it did.
//!
//! thrum's daemon must not run: its lock is held for the whole restore.

mod apply;
mod db;
mod filter;
mod layout;
mod plan;
mod plugins;
mod source;
mod target;

pub use source::check_jsonl_tree;

pub use crate::journal::JOURNAL;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::archive::Limits;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsx;
use crate::journal;
use crate::manifest::{self, Manifest};
use crate::progress::{Cancel, Progress};

/// What to restore from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The snapshot in `current/`.
    Current,
    /// An archive: a path, or a name in `archives/`.
    Archive(PathBuf),
    /// A snapshot of an off-site replica (`None`: its newest), fetched into private space and
    /// checked against its own manifest first.
    Replica {
        /// The replica (a configured entry, or an address with the password from the
        /// environment).
        entry: crate::config::ReplicaEntry,
        /// The replica's snapshot id (or a prefix, or our snapshot id).
        snapshot: Option<String>,
    },
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Where from.
    pub source: Source,
    /// Limits for reading an archive.
    pub limits: Limits,
    /// How long to wait for the lock.
    pub lock_timeout: Duration,
    /// How long to wait for a locked database.
    pub db_wait: Duration,
    /// Renumber the restored database's newest event so that new events are numbered above
    /// this (`Some(None)`: above what the live database had reached).
    pub raise_sequence: Option<Option<i64>>,
    /// Restore even a snapshot whose database schema is newer than the installed thrum's, or
    /// a snapshot of another workspace.
    pub force: bool,
    /// Check the source and plan, report what would change, change nothing
    /// ([`RestoreReport::dry_run`]).
    pub dry_run: bool,
    /// A partial restore: only the snapshot's files matching one of these patterns (paths as
    /// `ls` shows them; see [`crate::pattern`]) are put back; nothing is moved out. The
    /// database is put back only if one matches `db/messages.db` or a `local/` table; the
    /// plugins only if one matches a `plugins/` path. Empty: a whole restore.
    pub include: Vec<String>,
    /// Snapshot paths left out of a partial restore (or of a whole one, making it partial).
    pub exclude: Vec<String>,
    /// Write the snapshot's files into this new or empty folder, laid out as the workspace
    /// would be, instead of into the workspace (which is not touched).
    pub target: Option<PathBuf>,
}

/// What a dry run would do to one path.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    /// The path, relative to the repository (or to `.thrum/`).
    pub path: String,
    /// `create`, `replace`, or `move out` (into the pre-restore zip).
    pub action: &'static str,
    /// Bytes of the file put there (for `create` and `replace`).
    pub size: Option<u64>,
    /// Bytes of the live file replaced or moved out.
    pub live_size: Option<u64>,
}

/// What `restore` did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// `current` or the archive's path.
    pub source: String,
    /// When the restored snapshot was taken.
    pub snapshot_time: chrono::DateTime<chrono::Utc>,
    /// The safety archive of the data that was replaced.
    pub pre_restore: Option<PathBuf>,
    /// Files written into the workspace.
    pub restored: Vec<String>,
    /// Files moved out because the snapshot does not have them (kept in the pre-restore zip).
    pub removed: Vec<String>,
    /// Files the workspace already held exactly as the snapshot does (same bytes and mode):
    /// left as they are, not written again.
    pub unchanged: u64,
    /// Of `restored`, the files that were the snapshot's with bytes appended since (logs that
    /// grew): cut back to the snapshot's length in place rather than copied whole (undone, if
    /// the restore is, by writing the cut bytes back).
    pub trimmed: u64,
    /// How the snapshot's files were used: `workspace` (put back as files), `database` (the
    /// copy and its exported tables, into messages.db), `history` (the a-sync bundle),
    /// `plugins`, `left` (kept in the backup). They add up to the snapshot's file count.
    pub snapshot_files: BTreeMap<String, u64>,
    /// Whether `messages.db` was put back.
    pub database: bool,
    /// Where the database came from: `snapshot` (its consistent copy) or `live` (a snapshot
    /// thrum made: its local tables were imported into the live database).
    pub database_from: Option<String>,
    /// Whether the sync worktree was rebuilt as a git worktree on `a-sync`.
    pub sync_worktree_rebuilt: bool,
    /// The restored database's highest event sequence, and where it was raised to.
    pub sequence: Option<SequenceReport>,
    /// Local-table rows imported.
    pub local_rows: BTreeMap<String, u64>,
    /// What recovery finished or rolled back first.
    pub recovered: Vec<String>,
    /// What each WASM plugin put back.
    pub plugins: Vec<String>,
    /// Warnings.
    pub notes: Vec<String>,
    /// A dry run: what would change, path by path (nothing was changed; `restored`,
    /// `removed`, `pre_restore` are what a restore would do).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<PlannedChange>>,
    /// `--target`: the folder the snapshot was written into (`restored` then lists the paths
    /// written there; the workspace was not touched).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
}

/// Event sequences around a restore (see [`crate::thrumd`]).
#[derive(Debug, Clone, Serialize)]
pub struct SequenceReport {
    /// The restored database's highest event sequence.
    pub restored: Option<i64>,
    /// What the live database had reached before the restore.
    pub live: Option<i64>,
    /// Where it was raised to (`--raise-sequence`).
    pub raised_to: Option<i64>,
}

/// Restore `opts.source` into the workspace of `ctx`.
pub fn restore(
    ctx: &Context,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RestoreReport> {
    let dir = &ctx.backup;
    if matches!(opts.source, Source::Replica { .. }) {
        // The disaster case: no backups on this machine at all. The backup directory holds
        // the lock, the journal and the safety archive of whatever the workspace has now.
        fsx::create_dir_all(dir.root())?;
    }
    if !dir.exists() {
        return Err(Error::NotFound(format!(
            "no backups in {} (run `thrum-backup create` first, or pass --dir)",
            dir.root().display()
        )));
    }
    if opts.dry_run || opts.target.is_some() {
        return without_the_workspace(ctx, opts, progress, cancel);
    }
    // The opening step of every command, with thrum's daemon lock taken between the backup
    // directory's lock and the recovery: thrum's daemon would undo a restore under it, or
    // wipe the sync worktree, and recovery may roll an interrupted restore back. Held until
    // the restore is done, it keeps a daemon from starting midway.
    let (_lock, _daemon, recovery) =
        crate::recovery::open_holding(dir, opts.lock_timeout, true, || {
            crate::thrumd::hold_lock(&ctx.workspace.thrum_dir)
        })?;
    let recovered = recovery.actions;
    let work = dir.new_work_dir("restore")?;
    let result = restore_locked(ctx, opts, &work, progress, cancel);
    let _ = fsx::remove_any(&work);
    let mut report = result?;
    report.recovered = recovered;
    progress.finish();
    Ok(report)
}

/// A dry run: the source checked and the restore planned exactly as a restore would (plugins
/// included, into private staging), the plan reported, nothing applied. It holds the backup
/// directory's lock only while it runs, not thrum's daemon's (it changes nothing thrum could
/// undo), and does no recovery: an interrupted restore is left for the next real command.
///
/// `--target` goes the same way, then writes the planned files into its folder instead.
fn without_the_workspace(
    ctx: &Context,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RestoreReport> {
    let dir = &ctx.backup;
    if let Some(t) = &opts.target {
        target::check(&ctx.workspace, t)?;
    }
    let _lock = dir.lock(opts.lock_timeout)?;
    if dir.tmp().join(JOURNAL).exists() {
        return Err(Error::Invalid(format!(
            "an interrupted restore is pending in {} (run `thrum-backup status` to recover it first)",
            dir.tmp().display()
        )));
    }
    let work = dir.new_work_dir("dry-run")?;
    let result = (|| {
        let filter = filter(opts)?;
        let source = source::open(ctx, opts, &work, filter.as_ref(), progress, cancel)?;
        let filter = filter.or(for_partial(&source.manifest)?);
        let plan = plan::make(ctx, &source, &work, filter.as_ref(), progress, cancel)?;
        if let (Some(t), false) = (&opts.target, opts.dry_run) {
            let written = target::write(&ctx.workspace, &source, &plan, t, progress, cancel)?;
            let mut report = report(ctx, source, plan, apply::Applied::default());
            report.restored = written.files;
            report.removed.clear();
            report.notes.extend(written.notes);
            report.target = Some(t.clone());
            return Ok(report);
        }
        let mut plan = plan;
        let spared = plan::spare_live(&mut plan, &source)?;
        let changes = planned_changes(ctx, &plan);
        let mut report = report(ctx, source, plan, apply::Applied::default());
        report.dry_run = Some(changes);
        report.unchanged = spared.unchanged;
        report.trimmed = spared.trimmed;
        Ok(report)
    })();
    let _ = fsx::remove_any(&work);
    progress.finish();
    result
}

/// Each step of `plan` as a change to a path.
fn planned_changes(ctx: &Context, plan: &plan::RestorePlan) -> Vec<PlannedChange> {
    plan.steps
        .iter()
        .zip(&plan.copies)
        .filter(|(s, _)| s.worktree.is_none())
        .map(|(s, copy)| {
            let live_size = std::fs::symlink_metadata(&s.target).ok().map(|m| m.len());
            let size = copy
                .as_ref()
                .and_then(|(src, _)| std::fs::metadata(src).ok())
                .map(|m| m.len());
            let action = match (s.puts_back(), live_size) {
                (false, _) => "move out",
                (true, None) => "create",
                (true, Some(_)) => "replace",
            };
            PlannedChange {
                path: display_target(ctx, &s.target),
                action,
                size,
                live_size,
            }
        })
        .collect()
}

/// The partial restore's filter, when `--include` or `--exclude` asks for one.
fn filter(opts: &RestoreOptions) -> Result<Option<filter::Filter>> {
    if opts.include.is_empty() && opts.exclude.is_empty() {
        return Ok(None);
    }
    let include = if opts.include.is_empty() {
        vec![crate::pattern::Pattern::new("*")?]
    } else {
        crate::pattern::Pattern::all(&opts.include)?
    };
    Ok(Some(filter::Filter {
        include,
        exclude: crate::pattern::Pattern::all(&opts.exclude)?,
    }))
}

/// A partial snapshot (saved before a partial restore) is restored as one: its files, and
/// nothing moved out.
fn for_partial(m: &Manifest) -> Result<Option<filter::Filter>> {
    Ok(m.partial.then_some(filter::Filter {
        include: vec![crate::pattern::Pattern::new("*")?],
        exclude: Vec::new(),
    }))
}

/// Check the source, plan, apply, report: the restore under its locks.
fn restore_locked(
    ctx: &Context,
    opts: &RestoreOptions,
    work: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RestoreReport> {
    let filter = filter(opts)?;
    let source = source::open(ctx, opts, work, filter.as_ref(), progress, cancel)?;
    let filter = filter.or(for_partial(&source.manifest)?);
    let mut plan = plan::make(ctx, &source, work, filter.as_ref(), progress, cancel)?;
    let spared = plan::spare_live(&mut plan, &source)?;
    let applied = apply::apply(ctx, opts, &plan, &source, work, progress, cancel)?;
    let mut report = report(ctx, source, plan, applied);
    report.unchanged = spared.unchanged;
    report.trimmed = spared.trimmed;
    Ok(report)
}

/// What a restore did, from its plan and what applying it added.
fn report(
    ctx: &Context,
    source: source::Checked,
    plan: plan::RestorePlan,
    applied: apply::Applied,
) -> RestoreReport {
    let steps = &plan.steps;
    // SQLite's side files of a database put back are stale: removed, not worth a line.
    let stale_side = |s: &journal::Step| {
        !s.puts_back()
            && ["-wal", "-shm"].iter().any(|side| {
                let name = s.target.to_string_lossy();
                name.strip_suffix(side).is_some_and(|base| {
                    steps
                        .iter()
                        .any(|o| o.puts_back() && o.target.to_string_lossy() == base)
                })
            })
    };
    let mut restored = Vec::new();
    let mut removed = Vec::new();
    for s in steps
        .iter()
        .filter(|s| s.worktree.is_none() && !stale_side(s))
    {
        let shown = display_target(ctx, &s.target);
        if s.puts_back() {
            restored.push(shown);
        } else {
            removed.push(shown);
        }
    }
    let mut notes = plan.notes;
    notes.extend(applied.notes);
    RestoreReport {
        snapshot_files: file_use(
            &source.manifest,
            &source.dir,
            &plan.restored_sources,
            Used {
                database: plan.database.is_some(),
                history: !plan.partial,
                plugins: !plan.partial || !plan.plugins.is_empty(),
            },
        ),
        source: source.label,
        snapshot_time: source.manifest.timestamp,
        pre_restore: applied.pre_restore,
        restored,
        removed,
        unchanged: 0,
        trimmed: 0,
        database: plan.database.is_some(),
        database_from: plan.database.as_ref().map(|d| d.from.to_owned()),
        sync_worktree_rebuilt: steps.iter().any(|s| s.worktree.is_some()),
        sequence: applied.sequence,
        local_rows: applied.local_rows,
        recovered: Vec::new(),
        plugins: plan.plugins,
        notes,
        dry_run: None,
        target: None,
    }
}

fn display_target(ctx: &Context, p: &Path) -> String {
    let ws = &ctx.workspace;
    p.strip_prefix(&ws.repo_root)
        .or_else(|_| p.strip_prefix(&ws.thrum_dir))
        .unwrap_or(p)
        .display()
        .to_string()
}

/// What became of each of the snapshot's files (see [`RestoreReport::snapshot_files`]).
/// Which of the snapshot's parts besides workspace files a restore used.
struct Used {
    database: bool,
    history: bool,
    plugins: bool,
}

fn file_use(
    manifest: &Manifest,
    src: &Path,
    restored: &BTreeSet<PathBuf>,
    used: Used,
) -> BTreeMap<String, u64> {
    let listed: Vec<String> = if manifest.has_checksums() {
        manifest.files.iter().map(|f| f.path.clone()).collect()
    } else {
        fsx::walk_files(src)
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != manifest::FILE_NAME)
            .collect()
    };
    let mut out = BTreeMap::new();
    for f in listed {
        let kind = if restored.contains(&src.join(&f)) {
            "workspace"
        } else if used.database && (f.starts_with("db/") || f.starts_with("local/")) {
            "database"
        } else if used.history && f.starts_with("git/") {
            "history"
        } else if used.plugins && f.starts_with("plugins/") {
            "plugins"
        } else {
            "left"
        };
        *out.entry(kind.to_owned()).or_insert(0) += 1;
    }
    out
}

/// The manifest of a source without restoring it (for the confirmation prompt). A replica's
/// snapshot has to be fetched to be known: `None`.
pub fn peek(ctx: &Context, source: &Source) -> Result<Option<Manifest>> {
    match source {
        Source::Replica { .. } => Ok(None),
        Source::Current => source::current_manifest(ctx).map(Some),
        Source::Archive(a) => {
            let path = ctx.backup.resolve_archive(a)?;
            crate::archive::read_manifest(&path)?
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: no {} in the archive",
                        path.display(),
                        manifest::FILE_NAME
                    ))
                })
                .map(Some)
        }
    }
}
