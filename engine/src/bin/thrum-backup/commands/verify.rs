use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use thrum_backup::backup_dir::ArchiveKind;
use thrum_backup::{Progress, verify};

use super::{context, lock_timeout};
use crate::cli::{Global, VerifyArgs};
use crate::ui::{EXIT_PROBLEMS, Ui, bytes};

pub fn run(g: &Global, a: VerifyArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let mut targets: Vec<Option<PathBuf>> = vec![a.archive.clone()];
    if a.all {
        targets = vec![None];
        for info in ctx.backup.list_archives()? {
            if info.kind != ArchiveKind::Other {
                targets.push(Some(PathBuf::from(info.name)));
            }
        }
    }
    let progress = ui.progress();
    let mut reports = Vec::new();
    for t in &targets {
        let r = verify::verify(&ctx, t.as_deref(), lock_timeout(g), &progress)?;
        reports.push(r);
    }
    progress.finish();
    let ok = reports.iter().all(|r| r.ok());
    if !ui.emit(&serde_json::json!({"ok": ok, "targets": reports})) {
        for r in &reports {
            let kind = if r.checksums {
                r.algorithms.join(", ")
            } else {
                "structure only (made by thrum: no checksums)".to_owned()
            };
            if r.ok() {
                ui.line(format!(
                    "OK   {}: {} files, {} ({kind})",
                    r.target,
                    r.files,
                    bytes(r.bytes)
                ));
            } else {
                ui.line(format!(
                    "FAIL {}: {} problem(s)",
                    r.target,
                    r.problems.len()
                ));
                for p in &r.problems {
                    ui.line(format!("     {p}"));
                }
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PROBLEMS)
    })
}
