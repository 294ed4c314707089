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
        let limits = thrum_backup::archive::Limits {
            max_entries: a.max_entries,
            ..Default::default()
        };
        match verify::verify(&ctx, t.as_deref(), &limits, lock_timeout(g), &progress) {
            Ok(r) => reports.push(r),
            // --all goes on past an archive that cannot be read at all (but not past a lock
            // another command holds: that is worth retrying, exit 4).
            Err(e) if a.all && !matches!(e, thrum_backup::Error::Lock(_)) => {
                reports.push(verify::VerifyReport {
                    target: t
                        .as_ref()
                        .map_or_else(|| "current".into(), |p| p.display().to_string()),
                    files: 0,
                    bytes: 0,
                    checksums: false,
                    algorithms: Vec::new(),
                    problems: vec![e.to_string()],
                    plugins: Vec::new(),
                })
            }
            Err(e) => return Err(e.into()),
        }
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
