//! `demo`: the whole life of a backup on a realistic sample workspace, end to end, with a
//! proof at the end that a restored copy equals the original.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::sample::{self, SampleWorkspace, Scale};
use thrum_backup::archive::Limits;
use thrum_backup::context::Context;
use thrum_backup::create::{self, CreateOptions};
use thrum_backup::fsx;
use thrum_backup::progress::{Cancel, Progress};
use thrum_backup::restore::{self, RestoreOptions, Source};
use thrum_backup::{Error, IoContext, Result};
use thrum_backup::{prune, verify};

/// What the demo did and found.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// The folder the demo worked in.
    pub root: PathBuf,
    /// One line per step.
    pub steps: Vec<String>,
    /// Files compared between the original and the restored copy.
    pub files_compared: usize,
    /// Database rows compared.
    pub rows_compared: usize,
}

/// Run the demo in the empty directory `root`, telling `on_step` about each step.
pub fn run(
    root: &Path,
    progress: &dyn Progress,
    on_step: &mut dyn FnMut(&str),
) -> Result<DemoReport> {
    let mut steps = Vec::new();
    let mut say = |s: String| {
        on_step(&s);
        steps.push(s);
    };
    let cancel = Cancel::new();
    let backups = root.join("backups");
    let mut ws = SampleWorkspace::generate(root, "demo-workspace", Scale::SMALL)?;
    say(format!(
        "made a sample thrum workspace in {} ({} agents, {} messages, WAL messages.db, sync worktree on a-sync)",
        ws.root.display(),
        ws.agents.len(),
        Scale::SMALL.messages
    ));
    let ctx = Context::open(&ws.root, Some(&backups))?;
    let (first, archived) = back_up_twice(&ctx, &mut ws, progress, &cancel, &mut say)?;
    prune_and_verify(&ctx, &archived, progress, &mut say)?;
    let (files, rows) = restore_both(
        root, &ws, &backups, &first, &archived, progress, &cancel, &mut say,
    )?;
    Ok(DemoReport {
        root: root.to_path_buf(),
        steps,
        files_compared: files,
        rows_compared: rows,
    })
}

/// Two creates, 60 messages apart: the first snapshot is archived by the second. Returns the
/// first create's report and the archive's path.
fn back_up_twice(
    ctx: &Context,
    ws: &mut SampleWorkspace,
    progress: &dyn Progress,
    cancel: &Cancel,
    say: &mut dyn FnMut(String),
) -> Result<(create::CreateReport, PathBuf)> {
    let opts = CreateOptions::default();
    let first = create::create(ctx, &opts, progress, cancel)?;
    say(format!(
        "create #1: {} events, {} message files, {} local tables, database copied ({} files)",
        first.manifest.counts.events,
        first.manifest.counts.message_files,
        first.manifest.counts.local_tables,
        first.manifest.files.len()
    ));
    ws.add_messages(60)?;
    let second = create::create(ctx, &opts, progress, cancel)?;
    let archived = second.archived.clone().ok_or_else(|| {
        Error::Invalid("the second create did not archive the first snapshot".into())
    })?;
    say(format!(
        "create #2 after 60 new messages: {} events; snapshot #1 archived as {}",
        second.manifest.counts.events,
        archived.file_name().unwrap_or_default().to_string_lossy()
    ));
    Ok((first, archived))
}

/// Prune (a dry run first), then verify `current/` and the archive.
fn prune_and_verify(
    ctx: &Context,
    archived: &Path,
    progress: &dyn Progress,
    say: &mut dyn FnMut(String),
) -> Result<()> {
    let opts = CreateOptions::default();
    let dry = prune::prune(ctx, true, false, opts.lock_timeout)?;
    let keep = dry.decisions.iter().filter(|d| d.keep()).count();
    say(format!(
        "prune --dry-run: {} archive(s), {} kept by the policy (daily {}, weekly {}, monthly {})",
        dry.decisions.len(),
        keep,
        dry.policy.daily,
        dry.policy.weekly,
        dry.policy.monthly
    ));
    prune::prune(ctx, false, false, opts.lock_timeout)?;
    let v = verify::verify(ctx, None, &Limits::default(), opts.lock_timeout, progress)?;
    let va = verify::verify(
        ctx,
        Some(archived),
        &Limits::default(),
        opts.lock_timeout,
        progress,
    )?;
    if !v.ok() || !va.ok() {
        return Err(Error::Invalid(format!(
            "verify failed: {:?} {:?}",
            v.problems, va.problems
        )));
    }
    say(format!(
        "verify: current/ ({} files) and the archive ({} files) match their manifests",
        v.files, va.files
    ));

    Ok(())
}

/// Restore the latest snapshot into a wiped copy and compare it with the original; then the
/// archived first snapshot into the same copy: the earlier state comes back. Returns the files
/// and rows compared.
#[allow(clippy::too_many_arguments)]
fn restore_both(
    root: &Path,
    ws: &SampleWorkspace,
    backups: &Path,
    first: &create::CreateReport,
    archived: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
    say: &mut dyn FnMut(String),
) -> Result<(usize, usize)> {
    let opts = CreateOptions::default();
    let copy = wiped_copy(ws, &root.join("restored"))?;
    let copy_ctx = Context::open(&copy, Some(backups))?;
    let restore_opts = RestoreOptions {
        source: Source::Current,
        limits: Limits::default(),
        lock_timeout: opts.lock_timeout,
        db_wait: opts.db_wait,
        raise_sequence: None,
        force: false,
        dry_run: false,
        include: Vec::new(),
        exclude: Vec::new(),
        target: None,
    };
    let r = restore::restore(&copy_ctx, &restore_opts, progress, cancel)?;
    let (files, rows) = compare_workspaces(ws, &copy_ctx)?;
    let used = |k: &str| r.snapshot_files.get(k).copied().unwrap_or(0);
    say(format!(
        "restore into a wiped copy ({}): of the snapshot's {} files, {} put back as files, {} into messages.db, {} the a-sync history, {} left in the backup (the other worktree is not in the copy)",
        copy.display(),
        r.snapshot_files.values().sum::<u64>(),
        used("workspace"),
        used("database"),
        used("history"),
        used("left")
    ));
    say(format!(
        "proved: the restored copy equals the original, byte for byte and mode for mode ({files} files) and row for row ({rows} rows); thrum's daemon keeps its sync worktree"
    ));

    // Restore the archived snapshot #1 into the same copy: the earlier state comes back.
    let restore_opts = RestoreOptions {
        source: Source::Archive(archived.to_path_buf()),
        ..restore_opts
    };
    let r1 = restore::restore(&copy_ctx, &restore_opts, progress, cancel)?;
    let rows_then = first
        .manifest
        .database
        .as_ref()
        .and_then(|d| d.tables.get("messages").copied())
        .unwrap_or(0);
    let rows_now = count_rows(&copy_ctx.workspace.db_path, "messages")?;
    if rows_now != rows_then {
        return Err(Error::Invalid(format!(
            "restore of the archive gave {rows_now} messages, expected {rows_then}"
        )));
    }
    say(format!(
        "restore of archive #1: back to {rows_now} messages; the replaced data was saved as {}",
        r1.pre_restore
            .as_ref()
            .and_then(|p| p.file_name())
            .unwrap_or_default()
            .to_string_lossy()
    ));
    Ok((files, rows))
}

/// Copy the whole workspace (including `.git`), then delete all of thrum's data in the copy.
fn wiped_copy(ws: &SampleWorkspace, parent: &Path) -> Result<PathBuf> {
    let name = ws.root.file_name().unwrap_or_default();
    let copy = parent.join(name);
    copy_tree(&ws.root, &copy)?;
    // Everything of thrum's: the sync worktree (its git link too, as on a new machine where
    // the copy's .git does not know it), and every captured path of the thrum dir. The
    // copy's .git must not know the original's worktrees either: they are not the copy's.
    fsx::remove_any(&copy.join(".git/thrum-sync"))?;
    fsx::remove_any(&copy.join(".git/worktrees"))?;
    let thrum = copy.join(".thrum");
    for item in thrum_backup::layout::captured(thrum_backup::layout::Root::Thrum) {
        for rel in thrum_backup::layout::list(item, &thrum)?.files {
            fsx::remove_any(&thrum.join(rel))?;
        }
    }
    fsx::remove_any(&thrum.join("var"))?;
    Ok(copy)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    fsx::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src).at("read directory", src)? {
        let entry = entry.at("read directory", src)?;
        let kind = entry.file_type().at("inspect", &entry.path())?;
        let to = dst.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &to)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &to).at("copy", &entry.path())?;
        }
    }
    Ok(())
}

/// Compare the thrum data of the original with the restored copy: every file the layout
/// captures in the thrum dir and the sync worktree, byte for byte and mode for mode, and
/// every database row.
fn compare_workspaces(ws: &SampleWorkspace, copy: &Context) -> Result<(usize, usize)> {
    use thrum_backup::layout::Root;
    let pairs = [
        (
            Root::Thrum,
            ws.root.join(".thrum"),
            copy.workspace.thrum_dir.clone(),
        ),
        (
            Root::Sync,
            ws.sync_dir.clone(),
            copy.workspace.sync_dir.clone(),
        ),
    ];
    let mut files = 0;
    for (root, a, b) in pairs {
        for item in thrum_backup::layout::captured(root) {
            let (fa, fb) = (
                thrum_backup::layout::list(item, &a)?,
                thrum_backup::layout::list(item, &b)?,
            );
            if fa.files != fb.files {
                return Err(Error::Invalid(format!(
                    "{}: the restored copy has {:?}, the original {:?}",
                    b.display(),
                    fb.files,
                    fa.files
                )));
            }
            for rel in &fa.files {
                let (pa, pb) = (a.join(rel), b.join(rel));
                if fsx::read(&pa)? != fsx::read(&pb)? || fsx::mode_of(&pa) != fsx::mode_of(&pb) {
                    return Err(Error::Invalid(format!(
                        "{} differs from the original {}",
                        pb.display(),
                        pa.display()
                    )));
                }
                files += 1;
            }
        }
    }
    if let Some(why) =
        thrum_backup::gitsync::unhealthy(&copy.workspace.repo_root, &copy.workspace.sync_dir)
    {
        return Err(Error::Invalid(format!(
            "the restored sync worktree would be removed by thrum's daemon: {why}"
        )));
    }
    let da = sample::dump_database(&ws.db_path)?;
    let db = sample::dump_database(&copy.workspace.db_path)?;
    if da != db {
        return Err(Error::Invalid(
            "the restored database differs from the original".into(),
        ));
    }
    Ok((files, da.len()))
}

fn count_rows(db: &Path, table: &str) -> Result<u64> {
    let conn = rusqlite::Connection::open(db).map_err(|source| {
        thrum_backup::database::DbError::Sqlite {
            path: db.to_path_buf(),
            action: "open",
            source,
        }
    })?;
    conn.query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as u64)
    .map_err(|source| {
        thrum_backup::database::DbError::Sqlite {
            path: db.to_path_buf(),
            action: "count rows",
            source,
        }
        .into()
    })
}
