use std::process::ExitCode;

use anyhow::Result;
use thrum_backup::backup_dir::ArchiveKind;

use super::context;
use crate::cli::Global;
use crate::ui::{Ui, bytes};

pub fn run(g: &Global, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let list = ctx.backup.list_archives()?;
    if ui.emit(&list) {
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        ui.line(format!(
            "No archives in {}",
            ctx.backup.archives().display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    for a in &list {
        let time = a.time.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
        let kind = match a.kind {
            ArchiveKind::Snapshot => "",
            ArchiveKind::PreRestore => "  (pre-restore, never pruned)",
            ArchiveKind::Other => "  (not named by thrum-backup, never pruned)",
        };
        ui.line(format!(
            "{:<40} {time:<24} {:>10}{kind}",
            a.name,
            bytes(a.size)
        ));
    }
    Ok(ExitCode::SUCCESS)
}
