//! `restore`: put a snapshot back into the workspace as one transaction.
//!
//! 1. Check the source completely before touching the workspace: an archive's structure
//!    (names, types, sizes, ratios, overlaps), every file's CRC and size while extracting into
//!    private space, every sha256 the manifest lists, every JSONL line.
//! 2. Prepare: the database (the snapshot's copy, or the live one, with the local tables
//!    imported, on a private copy) and a temporary file beside each target.
//! 3. Save the live data about to be replaced as `archives/pre-restore-<time>.zip`.
//! 4. Commit: under a journal, move each target aside and rename its replacement in.
//!    On any error every step is undone; a kill is undone by the next command's recovery.
//!
//! Every path of thrum's layout the snapshot covers ([`plan`]) is made exactly equal to the
//! snapshot: files the snapshot does not have are moved out (they are in the pre-restore
//! archive). thrum's daemon must not run (its lock is held for the whole restore); an
//! unhealthy sync worktree is rebuilt as a real git worktree on `a-sync` inside the same
//! transaction ([`journal`]).

mod plan;
mod plugins;

use crate::journal;
pub use crate::journal::JOURNAL;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::archive::{CheckedArchive, Limits};
use crate::backup_dir::PRE_RESTORE_PREFIX;
use crate::context::Context;
use crate::database;
use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::manifest::{self, Manifest};
use crate::progress::{Cancel, Progress};
use crate::retention::ArchiveName;
use crate::snapshot::{self, DB_PATH, Staging};

/// What to restore from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The snapshot in `current/`.
    Current,
    /// An archive: a path, or a name in `archives/`.
    Archive(PathBuf),
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
    if !dir.exists() {
        return Err(Error::NotFound(format!(
            "no backups in {} (run `thrum-backup create` first, or pass --dir)",
            dir.root().display()
        )));
    }
    // The opening step of every command ([`crate::recovery::open`]), with thrum's daemon lock
    // taken between the backup directory's lock and the recovery: thrum's daemon would undo a
    // restore under it, or wipe the sync worktree, and recovery may roll an interrupted
    // restore back. Held until the restore is done, it keeps a daemon from starting midway.
    let _lock = dir.lock(opts.lock_timeout)?;
    let _daemon = crate::thrumd::hold_lock(&ctx.workspace.thrum_dir)?;
    dir.check_writable()?;
    let recovered = crate::recovery::recover(dir)?.actions;
    let work = dir.new_work_dir("restore")?;
    let result = restore_locked(ctx, opts, &work, progress, cancel);
    let _ = fsx::remove_any(&work);
    let mut report = result?;
    report.recovered = recovered;
    progress.finish();
    Ok(report)
}

fn restore_locked(
    ctx: &Context,
    opts: &RestoreOptions,
    work: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RestoreReport> {
    let ws = &ctx.workspace;
    let dir = &ctx.backup;
    // 1. A checked, complete source.
    let (src, manifest, label) = match &opts.source {
        Source::Current => {
            let current = dir.current();
            let m = manifest::read_dir(&current)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "no complete snapshot in {} (run `thrum-backup create`, or name an archive)",
                    current.display()
                ))
            })?;
            let report = crate::verify::verify_dir(&current, progress)?;
            if !report.ok() {
                return Err(Error::Invalid(format!(
                    "current/ does not match its manifest: {}",
                    report.problems.join("; ")
                )));
            }
            (current, m, "current".to_owned())
        }
        Source::Archive(arg) => {
            let path = dir.resolve_archive(arg)?;
            let mut archive = CheckedArchive::open(&path, &opts.limits)?;
            let m = archive.manifest()?;
            let expected: BTreeMap<String, (u64, fsx::Checksum)> = m
                .iter()
                .flat_map(|m| m.files.iter())
                .map(|f| (f.path.clone(), (f.size, f.checksum.clone())))
                .collect();
            let extracted = work.join("source");
            fsx::create_dir_all(&extracted)?;
            let digests = archive.extract_all(&extracted, &expected, progress, cancel)?;
            for listed in expected.keys() {
                if !digests.contains_key(listed) {
                    return Err(Error::Invalid(format!(
                        "{}: {listed} is listed in the manifest but missing from the archive",
                        path.display()
                    )));
                }
            }
            let m = m.ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: no manifest.json: not a thrum backup archive",
                    path.display()
                ))
            })?;
            (extracted, m, path.display().to_string())
        }
    };
    if !opts.force {
        ctx.check_same_workspace(&manifest, &label)?;
    }
    let jsonl_notes = check_jsonl_tree(&src, &manifest, &label)?;
    cancel.check()?;

    // 2. What goes where.
    let layout = plan::plan(&src, &manifest, ws)?;
    let mut notes = jsonl_notes;
    notes.extend(ctx.set_note.clone());
    notes.extend(layout.notes.iter().cloned());
    let mut plan: Vec<plan::Planned> = layout.files;
    let rebuild = match &layout.rebuild_sync {
        Some(reason) => Some(prepare_rebuild(ws, &src, &manifest, reason, &mut notes)?),
        None => None,
    };
    check_schema(&src, &manifest, opts.force)?;

    // Plugins put their files back through the sandbox into private staging; those files join
    // the same transaction. A plugin that fails, or whose files could not be committed, is
    // reported by name and the rest of the restore goes on.
    let plugin_results = plugins::restore(
        ctx, &src, work, &manifest, &mut plan, &mut notes, progress, cancel,
    )?;

    // The database: the snapshot's copy, or (for thrum's archives) the live one, with the
    // local tables imported, prepared on a private copy beside its target.
    let local_files: Vec<database::LocalFile> = snapshot::list_files(&src.join("local"), ".jsonl")?
        .into_iter()
        .map(|n| database::LocalFile {
            table: n.trim_end_matches(".jsonl").to_owned(),
            path: src.join("local").join(&n),
            shown: PathBuf::from(format!("{label}: local/{n}")),
        })
        .collect();
    let snap_db = src.join(DB_PATH);
    let mut database_from = None;
    let db_base = if snap_db.is_file() {
        database_from = Some("snapshot".to_owned());
        Some(snap_db.clone())
    } else if !local_files.is_empty() && ws.db_path.is_file() {
        database_from = Some("live".to_owned());
        notes.push("the snapshot has no database copy (thrum made it): its local tables are imported into the live database, whose other tables stay as they are".into());
        Some(ws.db_path.clone())
    } else {
        if !local_files.is_empty() {
            notes.push(
                "no database to import the local tables into: they stay in the backup".into(),
            );
        }
        None
    };

    // Every step is decided, and journaled, before the first temporary file exists: a kill
    // from here on is rolled back by the next command. The sync worktree comes first (its
    // files go into it), then config.json, the database, and the rest.
    let mut steps: Vec<journal::Step> = Vec::new();
    let mut sources: Vec<Option<(PathBuf, u32)>> = Vec::new();
    if let Some(w) = rebuild {
        let mut s = journal::Step::file(&ws.sync_dir, None);
        s.worktree = Some(w);
        steps.push(s);
        sources.push(None);
    }
    let config = ws.thrum_dir.join("config.json");
    let first = plan.iter().take_while(|p| p.target == config).count();
    // A rebuilt sync worktree replaces its folder: temporary files of its targets wait beside
    // it, not in it.
    let temp_dir = steps
        .first()
        .filter(|s| s.worktree.is_some())
        .map(|_| (ws.sync_dir.clone(), rand::random::<u32>()));
    let push = |steps: &mut Vec<journal::Step>, sources: &mut Vec<_>, p: &plan::Planned| {
        let outside = temp_dir
            .as_ref()
            .filter(|(dir, _)| p.target.starts_with(dir))
            .map(|(dir, nonce)| {
                dir.with_file_name(format!(".a-sync.restore-tmp-{nonce:08x}-{}", steps.len()))
            });
        push_planned(steps, sources, p, outside);
    };
    for p in &plan[..first] {
        push(&mut steps, &mut sources, p);
    }
    let db_temp = db_base
        .as_ref()
        .map(|_| fsx::temp_sibling(&ws.db_path, "restore-tmp"));
    if let Some(temp) = &db_temp {
        steps.push(journal::Step::file(&ws.db_path, Some(temp.clone())));
        sources.push(None);
        for side in ["-wal", "-shm"] {
            let t = path_with_suffix(&ws.db_path, side);
            if t.exists() {
                steps.push(journal::Step::file(&t, None));
                sources.push(None);
            }
        }
    }
    for p in &plan[first..] {
        push(&mut steps, &mut sources, p);
    }
    let needed: u64 = plan
        .iter()
        .filter_map(|p| p.source.as_ref())
        .filter_map(|s| fs::metadata(s).ok())
        .map(|m| m.len())
        .sum();
    if let Some(avail) = fsx::available_space(&ws.thrum_dir)
        && needed > avail
    {
        return Err(Error::NoSpace {
            path: ws.thrum_dir.clone(),
            needed,
            available: avail,
        });
    }
    let journal_path = ctx.backup.tmp().join(JOURNAL);
    let mut journal = journal::Journal {
        committed: false,
        steps,
    };
    journal::write(&journal_path, &journal)?;
    let undo = |e: Error| -> Error {
        let complete = journal::rollback(&journal.steps);
        if let Some(t) = &db_temp {
            cleanup_db_temp(t);
        }
        if complete {
            let _ = fs::remove_file(&journal_path);
        }
        e
    };

    let mut local_rows = BTreeMap::new();
    let mut sequence = None;
    if let (Some(base), Some(temp)) = (&db_base, &db_temp) {
        progress.phase("preparing the database", None);
        local_rows = prepare_db(base, temp, &local_files, opts.db_wait).map_err(&undo)?;
        sequence = Some(
            check_sequence(ws, temp, &manifest, opts.raise_sequence, &mut notes).map_err(&undo)?,
        );
    }
    cancel.check().map_err(&undo)?;

    // The safety archive of what is about to be replaced. A restore that fails and is put
    // back whole replaced nothing: its safety archive goes too.
    let pre_restore = save_live(ctx, work, opts.db_wait, progress, cancel).map_err(&undo)?;
    let undo = |e: Error| -> Error {
        let e = undo(e);
        let back = !journal_path.exists();
        if let (true, Some(p)) = (back, &pre_restore) {
            let _ = fs::remove_file(p);
        }
        e
    };

    progress.phase("restoring", Some(needed));
    for (s, source) in journal.steps.iter().zip(&sources) {
        if let (Some((src_file, mode)), Some(temp)) = (source, &s.temp) {
            cancel.check().map_err(&undo)?;
            // Folders a secret lives in are made private before anything is put in them.
            if let (Some(dir_mode), Some(parent)) = (s.dir_mode, temp.parent()) {
                fsx::create_dir_all_mode(parent, dir_mode).map_err(&undo)?;
            }
            let d = fsx::copy_new(src_file, temp).map_err(&undo)?;
            fsx::set_mode(temp, *mode).map_err(&undo)?;
            progress.advance(d.size);
        }
    }
    match journal::commit(&journal.steps, journal::fault_at()) {
        Ok(n) => notes.extend(n),
        Err(e) => return Err(Error::RolledBack(Box::new(undo(e)))),
    }
    journal.committed = true;
    journal::write(&journal_path, &journal)?;
    journal::finish(&journal.steps);
    fs::remove_file(&journal_path).at("remove", &journal_path)?;
    let database = db_temp.is_some();
    let sync_worktree_rebuilt = journal.steps.iter().any(|s| s.worktree.is_some());
    let restored_sources: std::collections::BTreeSet<PathBuf> =
        plan.iter().filter_map(|p| p.source.clone()).collect();

    let mut restored = Vec::new();
    let mut removed = Vec::new();
    // SQLite's side files of a database put back are stale: removed, not worth a line.
    let stale_side = |s: &journal::Step| {
        s.temp.is_none()
            && ["-wal", "-shm"].iter().any(|side| {
                let name = s.target.to_string_lossy();
                name.strip_suffix(side).is_some_and(|base| {
                    journal
                        .steps
                        .iter()
                        .any(|o| o.temp.is_some() && o.target.to_string_lossy() == base)
                })
            })
    };
    for s in journal
        .steps
        .iter()
        .filter(|s| s.worktree.is_none() && !stale_side(s))
    {
        let shown = display_target(ctx, &s.target);
        match &s.temp {
            Some(_) => restored.push(shown),
            None => removed.push(shown),
        }
    }
    Ok(RestoreReport {
        source: label,
        snapshot_time: manifest.timestamp,
        pre_restore,
        restored,
        removed,
        snapshot_files: file_use(&manifest, &src, &restored_sources),
        database,
        database_from,
        sync_worktree_rebuilt,
        sequence,
        local_rows,
        recovered: Vec::new(),
        plugins: plugin_results,
        notes,
    })
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
fn file_use(
    manifest: &Manifest,
    src: &Path,
    restored: &std::collections::BTreeSet<PathBuf>,
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
        } else if f.starts_with("db/") || f.starts_with("local/") {
            "database"
        } else if f.starts_with("git/") {
            "history"
        } else if f.starts_with("plugins/") {
            "plugins"
        } else {
            "left"
        };
        *out.entry(kind.to_owned()).or_insert(0) += 1;
    }
    out
}

fn push_planned(
    steps: &mut Vec<journal::Step>,
    sources: &mut Vec<Option<(PathBuf, u32)>>,
    p: &plan::Planned,
    temp: Option<PathBuf>,
) {
    let temp = p
        .source
        .as_ref()
        .map(|_| temp.unwrap_or_else(|| fsx::temp_sibling(&p.target, "restore-tmp")));
    let mut step = journal::Step::file(&p.target, temp);
    step.dir_mode = p.dir_mode;
    steps.push(step);
    sources.push(p.source.clone().map(|s| (s, p.mode)));
}

/// Decide how the sync worktree is rebuilt: where `a-sync` comes from (the local branch, the
/// remote's, or the snapshot's bundle, checked with git first), and what undoing needs.
fn prepare_rebuild(
    ws: &crate::locate::Workspace,
    src: &Path,
    manifest: &Manifest,
    reason: &str,
    notes: &mut Vec<String>,
) -> Result<journal::WorktreeStep> {
    let tip = manifest.sync.as_ref().map(|s| s.tip.clone());
    let bundle = manifest
        .sync
        .as_ref()
        .and_then(|s| s.bundle.as_ref())
        .map(|b| src.join(b))
        .filter(|b| b.is_file());
    if let Some(b) = &bundle {
        crate::gitsync::verify_bundle(&ws.repo_root, b).map_err(|e| {
            Error::Invalid(format!(
                "the snapshot's history of a-sync ({}) is not a usable git bundle: {e}",
                b.display()
            ))
        })?;
    }
    let source = crate::gitsync::branch_source(&ws.repo_root, tip.as_deref(), bundle.is_some());
    notes.push(format!(
        "the sync worktree {} was rebuilt as a git worktree on a-sync ({reason}; branch from {})",
        ws.sync_dir.display(),
        match &source {
            crate::gitsync::BranchSource::Local => "the local branch",
            crate::gitsync::BranchSource::Remote(_) => "origin/a-sync",
            crate::gitsync::BranchSource::Bundle => "the snapshot's bundle",
            crate::gitsync::BranchSource::Orphan =>
                "a new empty branch: the snapshot has no history of it",
        }
    ));
    Ok(journal::WorktreeStep {
        repo: ws.repo_root.clone(),
        source,
        bundle,
        tip,
        branch_before: crate::gitsync::branch_tip(&ws.repo_root),
    })
}

/// Refuse a database whose schema is newer than the installed thrum opens (thrum refuses to
/// start on it), unless forced. Without a `thrum` on PATH there is nothing to compare with.
fn check_schema(src: &Path, manifest: &Manifest, force: bool) -> Result<()> {
    let db = src.join(DB_PATH);
    if force || !db.is_file() || manifest.database.is_none() {
        return Ok(());
    }
    let Some(snapshot_schema) = crate::thrumd::schema_version(&db) else {
        return Ok(());
    };
    let Some(version) = crate::thrumd::installed_thrum_version() else {
        return Ok(());
    };
    match crate::thrumd::schema_of_release(&version) {
        Some(max) if snapshot_schema > max => Err(Error::Invalid(format!(
            "the snapshot's database has schema version {snapshot_schema}, newer than the installed thrum {version} opens ({max}): upgrade thrum first, or pass --force"
        ))),
        _ => Ok(()),
    }
}

/// Compare the restored database's newest event with what the live database had reached,
/// which peers may already have pulled; raise it on request.
fn check_sequence(
    ws: &crate::locate::Workspace,
    prepared: &Path,
    manifest: &Manifest,
    raise: Option<Option<i64>>,
    notes: &mut Vec<String>,
) -> Result<SequenceReport> {
    let restored = crate::thrumd::max_sequence(prepared);
    let live = crate::thrumd::max_sequence(&ws.db_path);
    let mut report = SequenceReport {
        restored,
        live,
        raised_to: None,
    };
    let behind = matches!((restored, live), (Some(r), Some(l)) if l > r);
    match raise {
        Some(to) => {
            let target = to.or(live).ok_or_else(|| {
                Error::Invalid(
                    "--raise-sequence needs a number here: the live database is gone, so the sequence peers reached is unknown (see a peer's `sync_checkpoints` row for this daemon)".into(),
                )
            })?;
            let from = crate::thrumd::raise_sequence(prepared, target)?;
            notes.push(format!(
                "raised the event sequence from {from} to {target}: new events are numbered above what peers may have pulled"
            ));
            report.raised_to = Some(target);
        }
        None if behind => notes.push(format!(
            "the restored database's newest event is sequence {}, but this workspace's database had reached {}: peers that pulled past {} will refuse this daemon's events (checkpoint regression) until it numbers above them. Fix: restore again with --raise-sequence",
            restored.unwrap_or_default(),
            live.unwrap_or_default(),
            restored.unwrap_or_default()
        )),
        None if live.is_none() && manifest.files.iter().any(|f| f.path == "thrum/var/peers.json") => {
            notes.push(format!(
                "this workspace had no database before the restore, so the event sequence its peers reached is unknown; the restored database ends at sequence {}. If a peer reports a checkpoint regression, restore again with --raise-sequence N (N from that peer's sync_checkpoints row for this daemon)",
                restored.map_or_else(|| "0".into(), |r| r.to_string())
            ));
        }
        None => {}
    }
    Ok(report)
}

pub(crate) fn path_with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(crate) fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}

fn cleanup_db_temp(temp: &Path) {
    let _ = fs::remove_file(temp);
    for side in ["-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(path_with_suffix(temp, side));
    }
}

/// Copy `base` to `temp` consistently, import the local tables into it, and leave it a
/// self-contained WAL-mode database, as thrum keeps it.
fn prepare_db(
    base: &Path,
    temp: &Path,
    local_files: &[database::LocalFile],
    db_wait: Duration,
) -> Result<BTreeMap<String, u64>> {
    fsx::create_dir_all(temp.parent().unwrap_or(Path::new(".")))?;
    database::copy_consistent(base, temp, db_wait)?;
    let sql_err = |action: &'static str| {
        move |source| database::DbError::Sqlite {
            path: temp.to_path_buf(),
            action,
            source,
        }
    };
    let mut conn = rusqlite::Connection::open(temp).map_err(sql_err("open"))?;
    let rows = database::import_local_tables(&mut conn, temp, local_files)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err("set WAL mode"))?;
    conn.close().map_err(|(_, e)| sql_err("close")(e))?;
    for side in ["-wal", "-shm"] {
        let _ = fs::remove_file(path_with_suffix(temp, side));
    }
    Ok(rows)
}

/// Snapshot the live workspace (no plugins) and zip it as `archives/pre-restore-<now>.zip`.
/// `None` when the workspace has nothing to protect.
fn save_live(
    ctx: &Context,
    work: &Path,
    db_wait: Duration,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Option<PathBuf>> {
    let live = work.join("live");
    fsx::create_dir_all(&live)?;
    let mut staging = Staging::new(live.clone());
    if !ctx.workspace.thrum_dir.is_dir() {
        return Ok(None);
    }
    let captured = snapshot::capture_workspace(
        &ctx.workspace,
        &ctx.capture_options(false, db_wait),
        &mut staging,
        None,
        progress,
        cancel,
    )?;
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
    let setting = crate::plugin::wasm::Setting {
        repo_root: &ctx.workspace.repo_root,
        repo_name: &ctx.workspace.repo_name,
        timestamp: m
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    };
    for entry in &ctx.config.backup.plugins {
        if let crate::config::PluginEntry::Wasm(p) = entry {
            cancel.check()?;
            let report = crate::create::run_wasm(p, &setting, &mut staging)?;
            if report.status == "ok" {
                m.counts.plugins.push(report.name.clone());
            }
            m.plugin_results.push(report);
        }
    }
    let time = m.timestamp;
    staging.finish(m)?;
    let archives = ctx.backup.archives();
    fsx::create_dir_all(&archives)?;
    let tmp = fsx::temp_sibling(&archives.join("pre-restore.zip"), "tmp");
    // The live data is mostly what the newest archive holds: reuse it where the files agree.
    let earlier = ctx.backup.newest_snapshot_archive(time);
    crate::archive::write_dir_reusing(
        &live,
        &tmp,
        crate::archive::DEFAULT_LEVEL,
        earlier.as_deref(),
        progress,
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

/// The one JSON Lines rule of a restore ([`crate::jsonl`]): a file whose bytes the manifest's
/// checksum vouches for (checked before this) goes back exactly as it was captured, torn last
/// line included, with a warning naming the file and line; a file without a checksum to trust
/// (thrum's own archives) must hold one JSON value per line, or the restore is refused.
pub fn check_jsonl_tree(root: &Path, manifest: &Manifest, label: &str) -> Result<Vec<String>> {
    let vouched: std::collections::BTreeSet<&str> =
        manifest.files.iter().map(|f| f.path.as_str()).collect();
    let mut notes = Vec::new();
    for rel in fsx::walk_files(root)? {
        if !crate::jsonl::is_jsonl(&rel) {
            continue;
        }
        let shown = format!("{label}: {rel}");
        let Some(issue) = crate::jsonl::check_file(&root.join(&rel), 0, 1, &shown)? else {
            continue;
        };
        if vouched.contains(rel.as_str()) {
            notes.push(format!(
                "{issue}: restored exactly as it was backed up (its checksum matches)"
            ));
        } else {
            return Err(Error::Jsonl {
                path: PathBuf::from(shown),
                line: issue.line,
                message: issue.problem,
            });
        }
    }
    Ok(notes)
}

/// The manifest of a source without restoring it (for the confirmation prompt).
pub fn peek(ctx: &Context, source: &Source) -> Result<Manifest> {
    match source {
        Source::Current => manifest::read_dir(&ctx.backup.current())?.ok_or_else(|| {
            Error::NotFound(format!(
                "no complete snapshot in {} (run `thrum-backup create`, or name an archive)",
                ctx.backup.current().display()
            ))
        }),
        Source::Archive(a) => {
            let path = ctx.backup.resolve_archive(a)?;
            crate::archive::read_manifest(&path)?.ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: no {} in the archive",
                    path.display(),
                    manifest::FILE_NAME
                ))
            })
        }
    }
}
