//! `create`: back up the workspace now.
//!
//! locate → lock → recover → stage a complete snapshot (workspace, then plugins, then the
//! manifest) → archive the previous `current/` → swap the staged snapshot in → prune →
//! unlock → post-backup hook. A kill at any instant leaves the previous snapshot in place;
//! the next command removes the unfinished stage.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::archive;
use crate::archiving::{self, PreparedArchive};
use crate::context::Context;
use crate::error::Result;
use crate::hook::{self, HookReport};
use crate::manifest::Manifest;
use crate::plugin::runner::{Kinds, Runner};
use crate::progress::{Cancel, Progress};
use crate::prune::{self, PruneReport};
use crate::snapshot::{self, Gate, Staging};

/// How to run `create`.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// How long to wait for the backup directory's lock.
    pub lock_timeout: Duration,
    /// How long to wait for a locked database.
    pub db_wait: Duration,
    /// Deflate level of the archive of the previous snapshot.
    pub level: i64,
    /// Run the configured plugins.
    pub plugins: bool,
    /// Run the post-backup hook.
    pub hook: bool,
    /// Apply retention afterwards.
    pub prune: bool,
    /// Timeout of each shell plugin.
    pub plugin_timeout: Duration,
    /// Timeout of the post-backup hook.
    pub hook_timeout: Duration,
    /// Leave thrum's secrets out (also `backup.secrets: "exclude"`).
    pub exclude_secrets: bool,
    /// Archive `current/` even when it is a snapshot of another workspace.
    pub force: bool,
    /// Push the new snapshot to the replicas of `backup.replicas`.
    pub replicas: bool,
    /// Run SQLite's full integrity check on the database whatever `backup.db_check_every`
    /// says (see [`snapshot::DbCheck`]).
    pub check_db: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(30),
            db_wait: Duration::from_secs(30),
            level: archive::DEFAULT_LEVEL,
            plugins: true,
            hook: true,
            prune: true,
            plugin_timeout: crate::plugin::shell::TIMEOUT,
            hook_timeout: hook::TIMEOUT,
            exclude_secrets: false,
            force: false,
            replicas: true,
            check_db: false,
        }
    }
}

/// What `create` did.
#[derive(Debug, Clone, Serialize)]
pub struct CreateReport {
    /// The new snapshot's manifest.
    pub manifest: Manifest,
    /// `current/`.
    pub current: PathBuf,
    /// The archive of the previous snapshot, if there was one.
    pub archived: Option<PathBuf>,
    /// What the archive reused from the archive before it instead of compressing again.
    pub archive_reuse: Option<archive::Reuse>,
    /// Logs that only grew since the previous snapshot: grown from it, not copied again.
    pub grown: snapshot::Grown,
    /// Retention applied afterwards.
    pub prune: Option<PruneReport>,
    /// What pushing the snapshot to each replica did (a failed replica never fails the
    /// local backup).
    pub replicas: Vec<crate::replica::PushOutcome>,
    /// The post-backup hook.
    pub hook: Option<HookReport>,
    /// What recovery finished or rolled back first.
    pub recovered: Vec<String>,
    /// What this snapshot lost against the previous one (the shrink guard); the last good
    /// archive from before it is kept until `prune --accept-shrink`.
    pub shrink: Vec<String>,
    /// The archive kept because of the shrink.
    pub kept_before_shrink: Option<String>,
    /// Where the previous snapshot did not match its manifest: it was archived anyway (it
    /// may be all there is), marked damaged, and is never counted by retention.
    pub previous_damaged: Vec<String>,
    /// Warnings (config keys, missing tables, ...).
    pub notes: Vec<String>,
}

/// Back up the workspace of `ctx` now.
pub fn create(
    ctx: &Context,
    opts: &CreateOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<CreateReport> {
    ctx.workspace.require_thrum_dir()?;
    let dir = &ctx.backup;
    let (lock, recovery) = crate::recovery::open(dir, opts.lock_timeout, true)?;
    let stage_dir = dir.new_work_dir("stage")?;
    let previous = dir.current_manifest().ok().flatten();
    if let Some(prev) = &previous
        && !opts.force
    {
        ctx.check_same_workspace(prev, &dir.current().display().to_string())?;
    }
    let done = stage_and_archive(ctx, opts, &stage_dir, previous.as_ref(), progress, cancel)?;
    let manifest = done.manifest;
    // The shrink guard: the newest sound archive from before the shrink is kept until the
    // user accepts it, so a damaged workspace cannot rotate its own last good copy away.
    let kept_before_shrink = match (&previous, manifest.shrink.is_empty()) {
        (Some(prev), false) => keep_before_shrink(
            ctx,
            done.archived.as_deref(),
            prev.timestamp,
            &manifest.shrink,
        )?,
        _ => None,
    };
    progress.phase("publishing the snapshot", None);
    let published = match fault_before_publish().as_deref() {
        Some("fail") => Err(crate::Error::Invalid(
            "failing before publishing, as THRUM_BACKUP_FAULT_CREATE_BEFORE_PUBLISH asks".into(),
        )),
        Some("exit") => std::process::exit(137),
        _ => dir.publish(&stage_dir),
    };
    if let Err(e) = published {
        undo_in_place(dir);
        return Err(e);
    }
    // The new snapshot is current/: the database copy's undo file has served.
    let _ = snapshot::drop_db_work(&dir.tmp());
    let prune = if opts.prune {
        Some(prune::prune_locked(ctx, false)?)
    } else {
        None
    };
    // Replicas after the local snapshot is published and rotated (still under the lock, so
    // that `current/` cannot change while it is read): each failure is reported, never an
    // error of the backup.
    let replicas = if opts.replicas && !ctx.config.backup.replicas.is_empty() {
        progress.phase("pushing to replicas", None);
        let policy = ctx.config.backup.retention();
        crate::replica::push_all(
            &ctx.config.backup.replicas,
            &ctx.workspace.thrum_dir,
            dir,
            &manifest,
            opts.prune.then_some(&policy),
            progress,
        )
    } else {
        Vec::new()
    };
    drop(lock);
    // The hook runs unlocked: it may well call thrum-backup itself.
    let hook = run_hook(ctx, opts, progress);
    let mut notes = done.notes;
    notes.extend(ctx.config.warnings.iter().map(|w| format!("config: {w}")));
    notes.extend(ctx.set_note.clone());
    progress.finish();
    Ok(CreateReport {
        shrink: manifest.shrink.clone(),
        manifest,
        current: dir.current(),
        archived: done.archived,
        archive_reuse: done.archive_reuse,
        grown: done.grown,
        prune,
        replicas,
        hook,
        recovered: recovery.actions,
        kept_before_shrink,
        previous_damaged: done.previous_damaged,
        notes,
    })
}

/// A staged snapshot, and the previous one archived.
struct Staged {
    manifest: Manifest,
    notes: Vec<String>,
    grown: snapshot::Grown,
    archived: Option<PathBuf>,
    archive_reuse: Option<archive::Reuse>,
    previous_damaged: Vec<String>,
}

/// Stage the next snapshot in `stage_dir` and archive the previous one, side by side: they
/// are independent until published. The archive gets its name only once the new snapshot is
/// complete, so a failure of either leaves the backup as it was. Logs that only grew are
/// grown from the previous snapshot, and its database copy brought up to date, each once the
/// archive holds it (the gate); a failure cuts them back.
fn stage_and_archive(
    ctx: &Context,
    opts: &CreateOptions,
    stage_dir: &std::path::Path,
    previous: Option<&Manifest>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Staged> {
    let dir = &ctx.backup;
    let gate = Gate::default();
    let base = previous.map(|m| snapshot::Base::new(dir.current(), m, &gate, dir.tmp()));
    let (staged, prepared) = std::thread::scope(|s| {
        let archiver = s.spawn(|| {
            let _undecided_means_no = gate.no_on_drop();
            let archived = |rel: &str| gate.archived(rel);
            let silent = crate::progress::Silent;
            let prepared = archiving::prepare(dir, opts.level, &silent, &archived, cancel);
            gate.open(prepared.is_ok());
            prepared
        });
        let staged = stage(
            ctx,
            opts,
            stage_dir.to_path_buf(),
            base.as_ref(),
            previous,
            progress,
            cancel,
        );
        if staged.is_ok() && !archiver.is_finished() {
            progress.phase("archiving the previous snapshot", None);
        }
        let prepared = archiver.join().unwrap_or_else(|_| {
            Err(crate::Error::Invalid(
                "the archiving thread panicked".into(),
            ))
        });
        (staged, prepared)
    });
    let discard = |prepared: Option<PreparedArchive>| {
        if let Some(p) = prepared {
            p.discard();
        }
        undo_in_place(dir);
        let _ = crate::fsx::remove_any(stage_dir);
    };
    let (manifest, notes, grown) = match staged {
        Ok(m) => m,
        Err(e) => {
            discard(prepared.ok().flatten());
            return Err(e);
        }
    };
    let prepared = prepared.inspect_err(|_| discard(None))?;
    if let Err(e) = cancel.check() {
        discard(prepared);
        return Err(e);
    }
    let published = prepared.map(|p| archiving::publish(dir, p)).transpose();
    let (archived, archive_reuse, previous_damaged) =
        match published.inspect_err(|_| discard(None))? {
            Some((path, reuse, damage)) => (Some(path), Some(reuse), damage),
            None => (None, None, Vec::new()),
        };
    Ok(Staged {
        manifest,
        notes,
        grown,
        archived,
        archive_reuse,
        previous_damaged,
    })
}

/// Where [`create`] stops on purpose, just before publishing (when `current/` has been
/// changed in place the most): `fail` takes the failure path, `exit` stands in for a kill.
/// The test suite's; only a debug build reads it from the environment.
fn fault_before_publish() -> Option<String> {
    if cfg!(debug_assertions) {
        std::env::var("THRUM_BACKUP_FAULT_CREATE_BEFORE_PUBLISH").ok()
    } else {
        None
    }
}

/// Put back what a failed create changed in `current/` once it was archived: the logs it
/// grew are cut back, the database copy it brought up to date is rolled back. Should this
/// fail, the next command's recovery does it.
fn undo_in_place(dir: &crate::backup_dir::BackupDir) {
    if snapshot::roll_back_database(&dir.current(), &dir.tmp()).is_ok() {
        let _ = snapshot::drop_db_work(&dir.tmp());
    }
    let _ = snapshot::cut_back_grown(&dir.current());
}

/// Run the post-backup hook, when there is one and it is wanted.
fn run_hook(ctx: &Context, opts: &CreateOptions, progress: &dyn Progress) -> Option<HookReport> {
    let cmd = ctx
        .config
        .backup
        .post_backup
        .as_ref()
        .filter(|_| opts.hook)?;
    progress.phase("running the post-backup hook", None);
    let dir = &ctx.backup;
    let base = dir.root().parent().unwrap_or(dir.root());
    Some(hook::run(
        cmd,
        &ctx.workspace.repo_root,
        base,
        &ctx.workspace.repo_name,
        &dir.current(),
        opts.hook_timeout,
    ))
}

/// Protect the last good archive before a shrink: the archive this create just made of the
/// previous snapshot, or, if that one is damaged, the newest sound archive taken at or
/// before it. Its name.
fn keep_before_shrink(
    ctx: &Context,
    archived: Option<&std::path::Path>,
    before: chrono::DateTime<chrono::Utc>,
    what: &[String],
) -> Result<Option<String>> {
    use crate::retention::ArchiveName;
    let dir = &ctx.backup;
    let just_made = archived
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let sound: Vec<_> = dir
        .list_archives()?
        .into_iter()
        .filter(|a| a.kind == crate::backup_dir::ArchiveKind::Snapshot)
        .filter(|a| crate::health::of(dir, a).unsound.is_none())
        .collect();
    let chosen = match sound.iter().find(|a| Some(&a.name) == just_made.as_ref()) {
        Some(a) => Some(a.name.clone()),
        None => sound
            .iter()
            .filter_map(|a| ArchiveName::parse(&a.name))
            .filter(|n| n.time <= before)
            .max()
            .map(|n| n.name),
    };
    if let Some(name) = &chosen {
        crate::health::protect(dir, name, what)?;
    }
    Ok(chosen)
}

#[allow(clippy::too_many_arguments)]
fn stage(
    ctx: &Context,
    opts: &CreateOptions,
    stage_dir: PathBuf,
    base: Option<&snapshot::Base<'_>>,
    previous: Option<&Manifest>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(Manifest, Vec<String>, snapshot::Grown)> {
    let mut staging = Staging::new(stage_dir);
    let mut capture = ctx.capture_options(opts.exclude_secrets, opts.db_wait);
    capture.db_check.now = opts.check_db;
    let captured = snapshot::capture_workspace(
        &ctx.workspace,
        &capture,
        &mut staging,
        base,
        progress,
        cancel,
    )?;
    let notes = captured.notes.clone();
    let grown = captured.grown;
    let mut manifest = snapshot::new_manifest(&ctx.workspace.repo_name, &ctx.identity, captured);
    if opts.plugins {
        Runner::new(
            &ctx.workspace,
            &ctx.config.backup.plugins,
            Some(manifest.timestamp),
        )
        .shell_timeout(opts.plugin_timeout)
        .backup_all(Kinds::All, &mut staging, &mut manifest, progress, cancel)?;
    }
    cancel.check()?;
    if let Some(prev) = previous {
        let mut complete = manifest.clone();
        complete.files = staging.entries();
        manifest.shrink = crate::shrink::findings(prev, &complete);
    }
    let blocks = staging.take_blocks();
    let manifest = staging.finish(manifest)?;
    // For the next create: the blocks of what becomes `current/` (a cache; see
    // `fsx::blocks`).
    snapshot::save_blocks(&ctx.backup.current(), blocks, &manifest);
    Ok((manifest, notes, grown))
}
