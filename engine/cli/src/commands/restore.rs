use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Result, bail};
use thrum_backup::Progress;
use thrum_backup::archive::Limits;
use thrum_backup::restore::{self, RestoreOptions, Source};

use super::{context, db_wait, lock_timeout, print_recovered};
use crate::cli::{Global, RestoreArgs};
use crate::ui::{Ui, bytes};

pub fn run(g: &Global, a: RestoreArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let source = match (&a.from_replica, &a.archive) {
        (Some(r), snapshot) => Source::Replica {
            entry: thrum_backup::replica::resolve(&ctx.config.backup.replicas, r)?,
            snapshot: snapshot.as_ref().map(|s| s.display().to_string()),
        },
        (None, Some(p)) => Source::Archive(p.clone()),
        (None, None) => Source::Current,
    };
    let manifest = restore::peek(&ctx, &source)?;
    if !a.yes && !a.dry_run && a.target.is_none() {
        let what = match (&a.from_replica, &a.archive) {
            (Some(r), s) => format!(
                "replica {r} (snapshot {})",
                s.as_ref()
                    .map_or_else(|| "newest".to_owned(), |s| s.display().to_string())
            ),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "current/".to_owned(),
        };
        confirm(&ctx, &what, manifest.as_ref())?;
    }
    // From here on a signal rolls the restore back before it exits (a Ctrl-C at the
    // question above just ends the program).
    let cancel = super::interruptible()?;
    let opts = RestoreOptions {
        source,
        limits: Limits {
            max_total: a.max_size,
            max_entries: a.max_entries,
            ..Limits::default()
        },
        lock_timeout: lock_timeout(g),
        db_wait: db_wait(g),
        raise_sequence: a.raise_sequence,
        force: a.force,
        dry_run: a.dry_run,
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        target: a.target.clone(),
    };
    let progress = ui.progress();
    let report = restore::restore(&ctx, &opts, &progress, &cancel)?;
    progress.finish();
    print_recovered(ui, &report.recovered);
    for n in &report.notes {
        ui.warn(n);
    }
    // config.json came back as the snapshot had it: replicas added since are gone from it.
    if let Ok(now) = thrum_backup::config::ThrumConfig::load(&ctx.workspace.thrum_dir) {
        for r in &ctx.config.backup.replicas {
            if now.replica(&r.name).is_none() {
                ui.warn(format!(
                    "replica {} is not in the restored config.json (the snapshot predates it): `thrum-backup replica add {} {}` adds it back",
                    r.name, r.name, r.repository
                ));
            }
        }
    }
    if ui.emit(&report) {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(changes) = &report.dry_run {
        print_dry_run(ui, &report, changes);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(t) = &report.target {
        ui.line(format!(
            "Wrote {} file(s) of {} (snapshot of {}) into {}, laid out as the workspace; the workspace was not touched.",
            report.restored.len(),
            report.source,
            report.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
            t.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    print_summary(ui, &ctx.workspace.repo_name, &report);
    Ok(ExitCode::SUCCESS)
}

/// Ask before replacing the workspace's data (only at a terminal; elsewhere `--yes` is needed).
fn confirm(
    ctx: &thrum_backup::Context,
    what: &str,
    manifest: Option<&thrum_backup::manifest::Manifest>,
) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "restore replaces the workspace's data and needs confirmation: pass --yes \
             (the replaced data is saved as archives/pre-restore-<time>.zip)"
        );
    }
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "Restore {} from {what}{}?\n\
         The live data it replaces is saved first as archives/pre-restore-<time>.zip.\n\
         thrum's daemon must be stopped (`thrum daemon stop`). Continue? [y/N] ",
        ctx.workspace.repo_root.display(),
        manifest.map_or_else(String::new, |m| format!(
            " (snapshot of {}, {} events)",
            m.timestamp.format("%Y-%m-%d %H:%M:%S UTC"),
            m.counts.events
        )),
    )?;
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
        bail!("restore cancelled; nothing was changed");
    }
    Ok(())
}

/// The human summary of a restore.
fn print_summary(ui: &Ui, repo_name: &str, report: &restore::RestoreReport) {
    ui.line(format!(
        "Restored {} from {} (snapshot of {})",
        repo_name,
        report.source,
        report.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    let used = |k: &str| report.snapshot_files.get(k).copied().unwrap_or(0);
    let total: u64 = report.snapshot_files.values().sum();
    ui.line(format!(
        "  the snapshot's {total} files: {} put back as workspace files, {} into messages.db, {} the a-sync history, {} plugin files{}",
        used("workspace"),
        used("database"),
        used("history"),
        used("plugins"),
        match used("left") {
            0 => String::new(),
            n => format!(", {n} left in the backup (see the warnings)"),
        }
    ));
    if report.unchanged > 0 {
        ui.line(format!(
            "  {} files already as in the snapshot (same bytes and mode): left as they are",
            report.unchanged
        ));
    }
    if report.trimmed > 0 {
        ui.line(format!(
            "  {} files had only grown since the snapshot (appended to): cut back to the snapshot's length, not copied",
            report.trimmed
        ));
    }
    if !report.removed.is_empty() {
        ui.line(format!(
            "  files not in the snapshot, moved out: {}",
            report.removed.join(", ")
        ));
    }
    match report.database_from.as_deref() {
        Some("snapshot") => ui.line("  messages.db: restored from the snapshot's consistent copy"),
        Some(_) => ui.line(
            "  messages.db: the snapshot (made by thrum) holds no database: its local tables were imported into the live one",
        ),
        None => {}
    }
    if report.sync_worktree_rebuilt {
        ui.line("  sync worktree: rebuilt as a git worktree on a-sync, as thrum makes it");
    }
    for p in &report.plugins {
        ui.line(format!("  {p}"));
    }
    for (t, n) in &report.local_rows {
        ui.line(format!("  local table {t}: {n} rows imported"));
    }
    match &report.pre_restore {
        Some(p) => ui.line(format!("  previous data saved as {}", p.display())),
        None => ui.line("  the workspace had no data to save first"),
    }
}

/// What a dry run found.
fn print_dry_run(ui: &Ui, report: &restore::RestoreReport, changes: &[restore::PlannedChange]) {
    ui.line(format!(
        "Dry run: restoring {} (snapshot of {}) would:",
        report.source,
        report.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    for c in changes {
        let sizes = match (c.size, c.live_size) {
            (Some(s), Some(l)) => format!("{} (now {})", bytes(s), bytes(l)),
            (Some(s), None) => bytes(s),
            (None, Some(l)) => bytes(l),
            (None, None) => String::new(),
        };
        ui.line(format!("  {:<8} {}  {sizes}", c.action, c.path));
    }
    if report.unchanged > 0 {
        ui.line(format!(
            "  and leave {} files as they are: the workspace already holds them as the snapshot does",
            report.unchanged
        ));
    }
    if report.trimmed > 0 {
        ui.line(format!(
            "  of the files replaced, {} only grew since the snapshot (appended to): they would be cut back to its length, not copied",
            report.trimmed
        ));
    }
    match &report.database_from {
        Some(from) => ui.line(format!(
            "  messages.db: put back from the snapshot's {}",
            if from == "snapshot" {
                "consistent copy"
            } else {
                "local tables, imported into the live database"
            }
        )),
        None => ui.line("  messages.db: left as it is"),
    }
    if report.sync_worktree_rebuilt {
        ui.line("  the sync worktree: rebuilt as a git worktree on a-sync");
    }
    for p in &report.plugins {
        ui.line(format!("  plugin {p}"));
    }
    let n = |a: &str| changes.iter().filter(|c| c.action == a).count();
    ui.line(format!(
        "{} created, {} replaced, {} moved out (the live files would be saved in archives/pre-restore-<time>.zip first). Nothing was changed.",
        n("create"),
        n("replace"),
        n("move out")
    ));
}
