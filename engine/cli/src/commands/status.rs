use std::process::ExitCode;

use anyhow::Result;
use thrum_backup::status;

use super::{context, lock_timeout, print_recovered};
use crate::cli::Global;
use crate::ui::{Ui, bytes};

pub fn run(g: &Global, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let report = status::status(&ctx, lock_timeout(g))?;
    print_recovered(ui, &report.recovered);
    if ui.emit(&report) {
        return Ok(ExitCode::SUCCESS);
    }
    ui.line(format!("Backup directory: {}", report.backup_dir.display()));
    match &report.last_backup {
        None => ui.line("Last backup: none yet (run `thrum-backup create`)"),
        Some(b) => {
            ui.line(format!(
                "Last backup: {}{}",
                b.timestamp.format("%Y-%m-%d %H:%M:%S UTC"),
                if b.made_by == "thrum" {
                    " (made by thrum's own backup)"
                } else {
                    ""
                }
            ));
            ui.line(format!(
                "  events: {}   message files: {}   local tables: {}   config files: {}   files: {}   size: {}",
                b.counts.events,
                b.counts.message_files,
                b.counts.local_tables,
                b.counts.config_files,
                b.files,
                bytes(b.bytes)
            ));
            match b.secrets.as_deref() {
                Some("excluded") => ui.line("  secrets: left out (backup.secrets: exclude)"),
                Some(_) => ui.line("  secrets: included, kept private"),
                None => {}
            }
            if !b.failed_plugins.is_empty() {
                ui.line(format!("  failed plugins: {}", b.failed_plugins.join(", ")));
            }
        }
    }
    let a = &report.archives;
    ui.line(format!(
        "Archives: {} ({} pre-restore), {} in total",
        a.count,
        a.pre_restore,
        bytes(a.total_bytes)
    ));
    if let (Some(o), Some(n)) = (&a.oldest, &a.newest) {
        ui.line(format!("  oldest: {o}   newest: {n}"));
    }
    ui.line(format!(
        "Schedule: {}",
        report.schedule.as_deref().unwrap_or("off")
    ));
    for r in &report.replicas {
        ui.line(format!(
            "Replica {} ({}): last push {}{}",
            r.name,
            r.repository,
            r.state.last_success.map_or_else(
                || "never".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            ),
            r.state
                .last_error
                .as_ref()
                .map(|(t, _)| format!(", last error {}", t.format("%Y-%m-%d %H:%M:%S UTC")))
                .unwrap_or_default()
        ));
    }
    for w in &report.warnings {
        ui.warn(w);
    }
    Ok(ExitCode::SUCCESS)
}
