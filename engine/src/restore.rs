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
//! The message log, identities and context are made exactly equal to the snapshot: files the
//! snapshot does not have are moved out (they are in the pre-restore archive).

use std::collections::BTreeMap;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::archive::{CheckedArchive, Limits};
use crate::backup_dir::{BackupDir, PRE_RESTORE_PREFIX, Recovery, read_dir_manifest};
use crate::context::Context;
use crate::database;
use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::manifest::{self, Manifest};
use crate::progress::{Cancel, Progress};
use crate::retention::ArchiveName;
use crate::snapshot::{self, DB_PATH, Staging};

/// The journal of a restore in progress, in the backup dir's `.tmp/`.
pub const JOURNAL: &str = "restore-journal.json";

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
    /// Whether `messages.db` was put back.
    pub database: bool,
    /// Local-table rows imported.
    pub local_rows: BTreeMap<String, u64>,
    /// What recovery finished or rolled back first.
    pub recovered: Vec<String>,
    /// What each WASM plugin put back.
    pub plugins: Vec<String>,
    /// Warnings.
    pub notes: Vec<String>,
}

/// One change to the workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    target: PathBuf,
    /// The prepared replacement; `None` removes the target.
    temp: Option<PathBuf>,
    /// Where the target's previous content is kept until commit.
    aside: PathBuf,
    existed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    committed: bool,
    steps: Vec<Step>,
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
    let _lock = dir.lock(opts.lock_timeout)?;
    dir.check_writable()?;
    let recovered = dir.recover()?.actions;
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
            let m = read_dir_manifest(&current)?.ok_or_else(|| {
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
    validate_jsonl_tree(&src, &label)?;
    cancel.check()?;

    // 2. What goes where.
    let local_only = manifest.local_only || ctx.local_only();
    let mut notes = Vec::new();
    let mut plan: Vec<(PathBuf, Option<PathBuf>)> = Vec::new(); // (target, source file or remove)
    let has_log = src.join("events.jsonl").is_file()
        || src.join("messages").is_dir()
        || src.join("messages-v2").is_dir();
    let log_dir = if local_only {
        ws.thrum_dir.clone()
    } else {
        ws.sync_dir.clone()
    };
    if has_log {
        if !local_only && !log_dir.is_dir() {
            notes.push(format!(
                "sync worktree {} did not exist: created it as a plain directory; run `thrum sync` to re-attach it",
                log_dir.display()
            ));
        }
        plan_file(
            &mut plan,
            &src.join("events.jsonl"),
            &log_dir.join("events.jsonl"),
        );
        plan_exact(
            &mut plan,
            &src.join("messages"),
            &log_dir.join("messages"),
            ".jsonl",
            false,
        )?;
        plan_exact(
            &mut plan,
            &src.join("messages-v2"),
            &log_dir.join("messages-v2"),
            "",
            true,
        )?;
    } else {
        notes.push("the snapshot has no message log: the live one was left as it is".into());
    }
    let cfg = src.join("config");
    if cfg.is_dir() {
        plan_file(
            &mut plan,
            &cfg.join("config.json"),
            &ws.thrum_dir.join("config.json"),
        );
        plan_exact(
            &mut plan,
            &cfg.join("identities"),
            &ws.thrum_dir.join("identities"),
            ".json",
            false,
        )?;
        plan_exact(
            &mut plan,
            &cfg.join("context"),
            &ws.thrum_dir.join("context"),
            ".md",
            false,
        )?;
    }

    // Plugins put their files back through the sandbox into private staging; those files join
    // the same transaction. A failing plugin is reported and the rest of the restore goes on.
    let mut plugin_results = Vec::new();
    for entry in &ctx.config.backup.plugins {
        let crate::config::PluginEntry::Wasm(plugin) = entry else {
            continue;
        };
        let folder = src.join("plugins").join(&plugin.name);
        if !folder.is_dir() {
            continue;
        }
        cancel.check()?;
        progress.phase(&format!("restoring plugin {}", plugin.name), None);
        let out = work.join("plugin-restore").join(&plugin.name);
        fsx::create_dir_all(&out)?;
        let setting = crate::plugin::wasm::Setting {
            repo_root: &ws.repo_root,
            repo_name: &ws.repo_name,
            timestamp: manifest
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let result = crate::plugin::wasm::run_entry(
            plugin,
            crate::plugin::wasm::Call::Restore,
            &setting,
            Some(&out),
            Some(&folder),
        );
        match result {
            Ok(outcome) => {
                for (rel, _) in &outcome.files {
                    let target = ws.repo_root.join(rel);
                    plan.push((target.clone(), Some(out.join(rel))));
                    if is_sqlite(&out.join(rel)) {
                        for side in ["-wal", "-shm"] {
                            let t = path_with_suffix(&target, side);
                            if t.exists() {
                                plan.push((t, None));
                            }
                        }
                    }
                }
                plugin_results.push(format!(
                    "plugin {}: {} files",
                    plugin.name,
                    outcome.files.len()
                ));
            }
            Err(e) => notes.push(format!("plugin {} was not restored: {e}", plugin.name)),
        }
    }

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
    let db_base = if snap_db.is_file() {
        Some(snap_db.clone())
    } else if !local_files.is_empty() && ws.db_path.is_file() {
        notes.push("the snapshot has no database copy (made by thrum?): importing its local tables into the live database".into());
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
    // from here on is rolled back by the next command.
    let mut steps: Vec<Step> = Vec::new();
    let db_temp = db_base
        .as_ref()
        .map(|_| fsx::temp_sibling(&ws.db_path, "restore-tmp"));
    if let Some(temp) = &db_temp {
        steps.push(step(&ws.db_path, Some(temp.clone())));
        for side in ["-wal", "-shm"] {
            let t = path_with_suffix(&ws.db_path, side);
            if t.exists() {
                steps.push(step(&t, None));
            }
        }
    }
    let mut sources: Vec<Option<PathBuf>> = vec![None; steps.len()];
    for (target, source) in &plan {
        let temp = source
            .as_ref()
            .map(|_| fsx::temp_sibling(target, "restore-tmp"));
        steps.push(step(target, temp));
        sources.push(source.clone());
    }
    let needed: u64 = plan
        .iter()
        .filter_map(|(_, s)| s.as_ref())
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
    let mut journal = Journal {
        committed: false,
        steps,
    };
    write_journal(&journal_path, &journal)?;
    let undo = |e: Error| -> Error {
        rollback(&journal.steps);
        if let Some(t) = &db_temp {
            cleanup_db_temp(t);
        }
        let _ = fs::remove_file(&journal_path);
        e
    };

    let mut local_rows = BTreeMap::new();
    if let (Some(base), Some(temp)) = (&db_base, &db_temp) {
        progress.phase("preparing the database", None);
        local_rows = prepare_db(base, temp, &local_files, opts.db_wait).map_err(&undo)?;
    }
    cancel.check().map_err(&undo)?;

    // The safety archive of what is about to be replaced.
    let pre_restore = save_live(ctx, work, opts.db_wait, progress, cancel).map_err(&undo)?;

    progress.phase("restoring", Some(needed));
    for (s, source) in journal.steps.iter().zip(&sources) {
        if let (Some(src_file), Some(temp)) = (source, &s.temp) {
            cancel.check().map_err(&undo)?;
            let d = fsx::copy_new(src_file, temp).map_err(&undo)?;
            progress.advance(d.size);
        }
    }
    if let Err(e) = commit(&journal.steps) {
        return Err(Error::RolledBack(Box::new(undo(e))));
    }
    journal.committed = true;
    write_journal(&journal_path, &journal)?;
    finish(&journal.steps);
    fs::remove_file(&journal_path).at("remove", &journal_path)?;
    let database = db_temp.is_some();

    let mut restored = Vec::new();
    let mut removed = Vec::new();
    for s in &journal.steps {
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
        database,
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

fn step(target: &Path, temp: Option<PathBuf>) -> Step {
    Step {
        target: target.to_path_buf(),
        temp,
        aside: fsx::temp_sibling(target, "restore-old"),
        existed: target.exists(),
    }
}

fn path_with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn is_sqlite(path: &Path) -> bool {
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

fn plan_file(plan: &mut Vec<(PathBuf, Option<PathBuf>)>, src: &Path, dst: &Path) {
    if src.is_file() {
        plan.push((dst.to_path_buf(), Some(src.to_path_buf())));
    }
}

/// Make `dst` hold exactly `src`'s files ending in `suffix` (recursively when `deep`).
fn plan_exact(
    plan: &mut Vec<(PathBuf, Option<PathBuf>)>,
    src: &Path,
    dst: &Path,
    suffix: &str,
    deep: bool,
) -> Result<()> {
    let list = |d: &Path| -> Result<Vec<String>> {
        if deep {
            fsx::walk_files(d)
        } else {
            snapshot::list_files(d, suffix)
        }
    };
    let wanted = list(src)?;
    for name in &wanted {
        plan.push((dst.join(name), Some(src.join(name))));
    }
    for name in list(dst)? {
        if !wanted.contains(&name) {
            plan.push((dst.join(name), None));
        }
    }
    Ok(())
}

fn write_journal(path: &Path, j: &Journal) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(j).map_err(|e| Error::Invalid(e.to_string()))?;
    fsx::write_atomic(path, &bytes)
}

/// Fault injection for the test suite: with `THRUM_BACKUP_FAULT_RESTORE_AFTER=N` the commit
/// fails after N steps, as a full disk or a vanished directory would make it fail.
const FAULT_ENV: &str = "THRUM_BACKUP_FAULT_RESTORE_AFTER";

fn commit(steps: &[Step]) -> Result<()> {
    let fault_at: Option<usize> = std::env::var(FAULT_ENV).ok().and_then(|v| v.parse().ok());
    for (i, s) in steps.iter().enumerate() {
        if fault_at == Some(i) {
            return Err(Error::Io {
                action: "rename into place",
                path: s.target.clone(),
                source: std::io::Error::other(format!("fault injected by {FAULT_ENV}")),
            });
        }
        if let Some(parent) = s.target.parent() {
            fsx::create_dir_all(parent)?;
        }
        if s.existed {
            fs::rename(&s.target, &s.aside).at("move aside", &s.target)?;
        }
        if let Some(temp) = &s.temp {
            fs::rename(temp, &s.target).at("rename into place", &s.target)?;
        }
    }
    let mut dirs: Vec<&Path> = steps.iter().filter_map(|s| s.target.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        fsx::sync_dir(d)?;
    }
    Ok(())
}

/// Undo every step whatever state it reached. Safe to run more than once.
fn rollback(steps: &[Step]) {
    for s in steps.iter().rev() {
        if s.aside.exists() {
            let _ = fs::rename(&s.aside, &s.target);
        } else if !s.existed && s.temp.is_some() && s.target.exists() {
            // Put in by us (it did not exist before): only if our temp is gone, i.e. renamed.
            if s.temp.as_ref().is_some_and(|t| !t.exists()) {
                let _ = fs::remove_file(&s.target);
            }
        }
        if let Some(t) = &s.temp {
            let _ = fs::remove_file(t);
        }
    }
}

fn finish(steps: &[Step]) {
    for s in steps {
        let _ = fs::remove_file(&s.aside);
        if let Some(t) = &s.temp {
            let _ = fs::remove_file(t);
        }
    }
}

/// Called by [`BackupDir::recover`]: finish a committed restore, roll back any other.
pub(crate) fn recover_journal(dir: &BackupDir, rec: &mut Recovery) -> Result<()> {
    let path = dir.tmp().join(JOURNAL);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at("read", &path),
    };
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: unreadable restore journal: {e}",
            path.display()
        ))
    })?;
    if journal.committed {
        finish(&journal.steps);
        rec.actions
            .push("finished an interrupted restore (it had committed)".into());
    } else {
        rollback(&journal.steps);
        rec.actions.push(format!(
            "rolled back an interrupted restore ({} files put back as they were)",
            journal.steps.len()
        ));
    }
    fs::remove_file(&path).at("remove", &path)?;
    Ok(())
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
        ctx.local_only(),
        &mut staging,
        None,
        db_wait,
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
    let m = snapshot::new_manifest(&ctx.workspace.repo_name, captured, ctx.local_only());
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

/// Every `.jsonl` file below `root` must hold one JSON value per non-empty line.
pub fn validate_jsonl_tree(root: &Path, label: &str) -> Result<()> {
    for rel in fsx::walk_files(root)? {
        if rel.ends_with(".jsonl") && !rel.starts_with("plugins/") {
            validate_jsonl(&root.join(&rel), &format!("{label}: {rel}"))?;
        }
    }
    Ok(())
}

/// Longest JSONL line accepted (thrum's lines are a few KiB).
pub const MAX_JSONL_LINE: u64 = 64 << 20;

fn validate_jsonl(path: &Path, shown: &str) -> Result<()> {
    use std::io::Read;
    let file = fs::File::open(path).at("open", path)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_JSONL_LINE + 1)
            .read_until(b'\n', &mut line)
            .at("read", path)?;
        if read == 0 {
            return Ok(());
        }
        n += 1;
        if read as u64 > MAX_JSONL_LINE {
            return Err(Error::Jsonl {
                path: PathBuf::from(shown),
                line: n,
                message: format!("line is longer than {} MiB", MAX_JSONL_LINE >> 20),
            });
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if body.contains(&0) {
            return Err(Error::Jsonl {
                path: PathBuf::from(shown),
                line: n,
                message: "contains a NUL byte".into(),
            });
        }
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            return Err(Error::Jsonl {
                path: PathBuf::from(shown),
                line: n,
                message: format!("not valid JSON: {e}"),
            });
        }
    }
}

/// The manifest of a source without restoring it (for the confirmation prompt).
pub fn peek(ctx: &Context, source: &Source) -> Result<Manifest> {
    match source {
        Source::Current => read_dir_manifest(&ctx.backup.current())?.ok_or_else(|| {
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
