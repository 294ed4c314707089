use std::process::ExitCode;

use anyhow::Result;
use thrum_backup::Progress;
use thrum_backup::create::{self, CreateOptions};

use super::{context, db_wait, lock_timeout, print_recovered};
use crate::cli::{CreateArgs, Global};
use crate::ui::{EXIT_REPLICA, EXIT_SHRANK, Ui, bytes};

pub fn run(g: &Global, a: CreateArgs, ui: &Ui) -> Result<ExitCode> {
    let cancel = super::interruptible()?;
    let ctx = context(g)?;
    let opts = CreateOptions {
        lock_timeout: lock_timeout(g),
        db_wait: db_wait(g),
        level: a.level,
        plugins: !a.no_plugins,
        hook: !a.no_hook,
        prune: !a.no_prune,
        exclude_secrets: a.exclude_secrets,
        force: a.force,
        replicas: !a.no_replicas,
        check_db: a.check_db,
        ..CreateOptions::default()
    };
    let progress = ui.progress();
    let report = create::create(&ctx, &opts, &progress, &cancel)?;
    progress.finish();
    print_recovered(ui, &report.recovered);
    warn(ui, &report);
    let code = if !report.shrink.is_empty() {
        ExitCode::from(EXIT_SHRANK)
    } else if report.replicas.iter().any(|r| r.error.is_some()) {
        ExitCode::from(EXIT_REPLICA)
    } else {
        ExitCode::SUCCESS
    };
    if ui.emit(&report) {
        return Ok(code);
    }
    print_summary(ui, &ctx.workspace.repo_name, &report);
    Ok(code)
}

/// What the user must hear even with `--json`: notes, a damaged previous snapshot, a shrink.
fn warn(ui: &Ui, report: &create::CreateReport) {
    for n in &report.notes {
        ui.warn(n);
    }
    for d in &report.previous_damaged {
        ui.warn(format!(
            "the previous snapshot did not match its manifest ({d}): it was archived anyway, marked damaged, and retention never counts it"
        ));
    }
    for r in &report.replicas {
        if let Some(e) = &r.error {
            ui.warn(format!(
                "the snapshot is safe locally, but the push failed: {e} (`thrum-backup replica sync {}` pushes what the replica lacks)",
                r.name
            ));
        }
    }
    if !report.shrink.is_empty() {
        ui.warn(format!(
            "THE WORKSPACE SHRANK since the previous backup: {}",
            report.shrink.join("; ")
        ));
        match &report.kept_before_shrink {
            Some(a) => ui.warn(format!(
                "the last good archive from before it, {a}, is kept until you run `thrum-backup prune --accept-shrink` (restore it with `thrum-backup restore {a}`)"
            )),
            None => ui.warn("there is no sound archive from before it to keep"),
        }
    }
}

/// The human summary of a create.
fn print_summary(ui: &Ui, repo_name: &str, report: &create::CreateReport) {
    let m = &report.manifest;
    let total: u64 = m.files.iter().map(|f| f.size).sum();
    ui.line(format!(
        "Backed up {} to {}",
        repo_name,
        report.current.display()
    ));
    ui.line(format!(
        "  events: {}   message files: {}   local tables: {}   config files: {}",
        m.counts.events, m.counts.message_files, m.counts.local_tables, m.counts.config_files
    ));
    if let Some(db) = &m.database {
        let rows: u64 = db.tables.values().sum();
        let check = if db.quick_check {
            "integrity checked (quick_check)".to_owned()
        } else {
            match db.checked_at {
                Some(t) => format!(
                    "pages compared; last full integrity check {} (again per backup.db_check_every, or now with --check-db)",
                    t.format("%Y-%m-%d %H:%M UTC")
                ),
                None => "pages compared; never fully checked (--check-db checks it)".to_owned(),
            }
        };
        ui.line(format!(
            "  database: consistent copy, {} tables, {rows} rows, {check}",
            db.tables.len()
        ));
    }
    if let Some(sync) = &m.sync {
        ui.line(format!(
            "  a-sync history: kept as a git bundle (branch at {}{})",
            sync.tip.get(..12).unwrap_or(&sync.tip),
            if sync.local_only {
                "; local-only: this is its only other copy"
            } else {
                ""
            }
        ));
    }
    if !m.worktrees.is_empty() {
        let names: Vec<&str> = m.worktrees.keys().map(String::as_str).collect();
        ui.line(format!("  other worktrees' .thrum/: {}", names.join(", ")));
    }
    let secrets = m.files.iter().filter(|f| f.secret).count();
    match m.layout.as_ref().map(|l| l.secrets.as_str()) {
        Some("excluded") => ui.line("  secrets: left out (backup.secrets or --exclude-secrets)"),
        _ if secrets > 0 => ui.line(format!("  secrets: {secrets} files, kept private (0600)")),
        _ => {}
    }
    ui.line(format!(
        "  files: {}   size: {}",
        m.files.len(),
        bytes(total)
    ));
    for p in &m.plugin_results {
        match &p.error {
            None => ui.line(format!(
                "  plugin {}: {} files, {}",
                p.name,
                p.files,
                bytes(p.bytes)
            )),
            Some(e) => ui.line(format!("  plugin {}: FAILED ({e})", p.name)),
        }
    }
    if report.grown.files > 0 {
        ui.line(format!(
            "  {} files unchanged or only appended to: linked from the previous snapshot ({} not copied again)",
            report.grown.files,
            bytes(report.grown.bytes_shared)
        ));
    }
    if report.grown.local_appended > 0 {
        ui.line(format!(
            "  {} local-table exports grown by their appended rows only (the earlier rows unchanged)",
            report.grown.local_appended
        ));
    }
    if report.grown.database_pages > 0 {
        ui.line(format!(
            "  database copy brought up to date page by page: {} of {} pages written",
            report.grown.database_pages_written, report.grown.database_pages
        ));
    }
    if report.grown.blocks_reused > 0 {
        ui.line(format!(
            "  {} unchanged 64 KiB blocks not hashed again (their hashes kept from the previous snapshot)",
            report.grown.blocks_reused
        ));
    }
    if let Some(a) = &report.archived {
        ui.line(format!("  previous snapshot archived: {}", a.display()));
        if let Some(r) = report
            .archive_reuse
            .as_ref()
            .filter(|r| r.copied + r.continued + r.rechunked > 0)
        {
            ui.line(format!(
                "    reused from the archive before: {} files unchanged, {} logs continued, {} changed files in part ({} not compressed again)",
                r.copied,
                r.continued,
                r.rechunked,
                bytes(r.bytes_saved)
            ));
        }
    }
    if let Some(p) = &report.prune
        && !p.removed.is_empty()
    {
        ui.line(format!("  retention removed: {}", p.removed.join(", ")));
    }
    for r in &report.replicas {
        if let Some(p) = &r.pushed {
            ui.line(format!(
                "  replica {}: snapshot {} ({} files, {} changed, {} added){}",
                r.name,
                p.id,
                p.files,
                p.files_changed,
                bytes(p.bytes_added),
                if r.forgotten > 0 {
                    format!("; retention removed {} old snapshots", r.forgotten)
                } else {
                    String::new()
                }
            ));
        }
    }
    if let Some(h) = &report.hook {
        match &h.error {
            None => ui.line(format!("  post-backup hook: ok ({} ms)", h.duration_ms)),
            Some(e) => ui.line(format!("  post-backup hook: FAILED ({e})")),
        }
    }
}
