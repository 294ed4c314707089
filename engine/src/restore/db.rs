//! The database a restore puts back: the snapshot's consistent copy, or, for a snapshot thrum
//! made (local tables only), the live database; the local tables imported into it on a
//! private copy beside `messages.db`, which joins the transaction like any other file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::SequenceReport;
use crate::database;
use crate::error::{Error, Result};
use crate::fsx;
use crate::locate::Workspace;
use crate::manifest::Manifest;
use crate::progress::Progress;
use crate::snapshot::{self, DB_PATH};

/// How the database is put back.
#[derive(Debug)]
pub(crate) struct DbPlan {
    /// What the prepared database starts from.
    pub base: PathBuf,
    /// `snapshot` or `live`.
    pub from: &'static str,
    /// The prepared database, beside `messages.db`.
    pub temp: PathBuf,
    /// The snapshot's local tables, imported into it.
    pub local_files: Vec<database::LocalFile>,
    /// The rows of each local table as the snapshot's manifest records them, when they were
    /// exported from the very copy restored (a snapshot we took): rows its tables already hold.
    pub exported: Option<BTreeMap<String, u64>>,
    /// The snapshot's copy, as errors name it, when it is to be checked before it is put back:
    /// a copy `create` did not check (see [`snapshot::DbCheck`]).
    pub unchecked: Option<PathBuf>,
    /// The rows of every table of the snapshot's copy as its manifest records them (counted
    /// in that very copy when it was taken), when it records them.
    pub counted: Option<BTreeMap<String, u64>>,
    /// The permission bits of the prepared database: the live one's, else what SQLite (and
    /// thrum) create a database with.
    pub mode: u32,
}

/// Decide where the database comes from; `None` when none is put back.
pub(crate) fn plan(
    ws: &Workspace,
    src: &Path,
    manifest: &Manifest,
    label: &str,
    notes: &mut Vec<String>,
) -> Result<Option<DbPlan>> {
    let local_files: Vec<database::LocalFile> = snapshot::list_files(&src.join("local"), ".jsonl")?
        .into_iter()
        .map(|n| database::LocalFile {
            table: n.trim_end_matches(".jsonl").to_owned(),
            path: src.join("local").join(&n),
            shown: PathBuf::from(format!("{label}: local/{n}")),
        })
        .collect();
    let snap_db = src.join(DB_PATH);
    let (base, from) = if snap_db.is_file() {
        (snap_db, "snapshot")
    } else if !local_files.is_empty() && ws.db_path.is_file() {
        notes.push("the snapshot has no database copy (thrum made it): its local tables are imported into the live database, whose other tables stay as they are".into());
        (ws.db_path.clone(), "live")
    } else {
        if !local_files.is_empty() {
            notes.push(
                "no database to import the local tables into: they stay in the backup".into(),
            );
        }
        return Ok(None);
    };
    let exported =
        (from == "snapshot" && manifest.database.is_some()).then(|| manifest.local_tables.clone());
    let unchecked = (from == "snapshot"
        && manifest.database.as_ref().is_some_and(|d| !d.quick_check))
    .then(|| PathBuf::from(format!("{label}: {DB_PATH}")));
    let counted = manifest
        .database
        .as_ref()
        .filter(|d| from == "snapshot" && !d.tables.is_empty())
        .map(|d| d.tables.clone());
    Ok(Some(DbPlan {
        base,
        from,
        temp: fsx::temp_sibling(&ws.db_path, "restore-tmp"),
        local_files,
        exported,
        unchecked,
        counted,
        mode: fsx::mode_of(&ws.db_path).unwrap_or(0o644),
    }))
}

/// Copy the base to the plan's temporary file consistently, import the local tables into it,
/// and leave it a self-contained WAL-mode database, as thrum keeps it.
///
/// A snapshot's own copy is not checked again (`quick_check`) when it was checked when it was
/// taken: its checksum was verified with the rest of the source. One that was not (brought up
/// to date page by page between scheduled checks) is checked by [`check_beside`] while the
/// restore goes on, and must pass before anything is committed. Its local tables were exported
/// from that very copy, so when every table still holds the rows the manifest records, there
/// is nothing to import: the import (`INSERT OR IGNORE` of every row) is for snapshots whose
/// local tables come without that copy (thrum's).
pub(crate) fn prepare(plan: &DbPlan, db_wait: Duration) -> Result<BTreeMap<String, u64>> {
    let temp = &plan.temp;
    fsx::create_dir_all(temp.parent().unwrap_or(Path::new(".")))?;
    let sql_err = |action: &'static str| {
        move |source| database::DbError::Sqlite {
            path: temp.to_path_buf(),
            action,
            source,
        }
    };
    let counts = if plan.from == "snapshot" {
        // The snapshot's copy is a self-contained database file whose bytes were verified
        // against the manifest, and nothing writes to it: a copy of the file is a copy of the
        // database, made by the kernel (SQLite's backup API would write it page by page).
        fsx::copy_verified_unsynced(&plan.base, temp)?;
        fsx::set_mode(temp, plan.mode)?;
        database::sync_copy(temp)?;
        match &plan.counted {
            // Counted in these very bytes when they were taken.
            Some(counted) => counted.clone(),
            None => database::count_copy(temp)?,
        }
    } else {
        database::copy_consistent(&plan.base, temp, db_wait)?
    };
    let already = plan.exported.as_ref().filter(|rows| {
        plan.local_files.iter().all(|f| {
            rows.get(&f.table)
                .is_some_and(|n| counts.get(&f.table) == Some(n))
        })
    });
    let mut conn = rusqlite::Connection::open(temp).map_err(sql_err("open"))?;
    let rows = match already {
        Some(rows) => plan
            .local_files
            .iter()
            .filter_map(|f| Some((f.table.clone(), *rows.get(&f.table)?)))
            .collect(),
        None => database::import_local_tables(&mut conn, temp, &plan.local_files)?,
    };
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sql_err("set WAL mode"))?;
    conn.close().map_err(|(_, e)| sql_err("close")(e))?;
    for side in ["-wal", "-shm"] {
        let _ = fs::remove_file(fsx::with_suffix(temp, side));
    }
    Ok(rows)
}

/// The full check (`quick_check`) of a snapshot's copy that `create` did not check, running on
/// its own thread while the restore prepares, saves the live data and fills its temporary
/// files: those only read the snapshot, and its copy is read here as it stands in the
/// snapshot (the prepared database is a page-for-page copy of it). [`Beside::finish`] waits
/// for the verdict before the commit; dropping a `Beside` unfinished (the restore failed or
/// was cancelled) interrupts the check.
pub(crate) struct Beside<'scope> {
    thread: Option<std::thread::ScopedJoinHandle<'scope, Result<()>>>,
    interrupt: rusqlite::InterruptHandle,
}

/// Start checking `plan`'s copy on a thread of `scope`; `None` when it was checked when taken.
pub(crate) fn check_beside<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    plan: &DbPlan,
) -> Result<Option<Beside<'scope>>> {
    let Some(shown) = plan.unchecked.clone() else {
        return Ok(None);
    };
    let conn = database::open_read_only(&plan.base, &shown, "open")?;
    let interrupt = conn.get_interrupt_handle();
    let thread = scope.spawn(move || {
        database::check_integrity(&conn, &shown).map_err(|e| match e {
            database::DbError::Corrupt { .. } => Error::Invalid(format!(
                "{e}. This copy was not checked when it was taken (between the scheduled full checks of backup.db_check_every, or as a restore's safety copy of the live data), so the database it was taken from was already damaged: nothing was changed. Restore an earlier snapshot (`thrum-backup archives` lists them)"
            )),
            other => other.into(),
        })
    });
    Ok(Some(Beside {
        thread: Some(thread),
        interrupt,
    }))
}

impl Beside<'_> {
    /// Wait for the check's verdict.
    pub(crate) fn finish(mut self, progress: &dyn Progress) -> Result<()> {
        let thread = self.thread.take().expect("a check is finished once");
        if !thread.is_finished() {
            progress.phase("checking the database", None);
        }
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Beside<'_> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.interrupt.interrupt();
        }
    }
}

/// Compare the restored database's newest event with what the live database had reached,
/// which peers may already have pulled; raise it on request.
pub(crate) fn check_sequence(
    ws: &Workspace,
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

pub(crate) fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}
