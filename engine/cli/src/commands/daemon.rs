use std::process::ExitCode;

use anyhow::{Result, anyhow};
use thrum_backup::create::CreateOptions;
use thrum_backup::{Cancel, daemon, duration};

use super::{db_wait, lock_timeout};
use crate::cli::{DaemonArgs, Global};
use crate::ui::Ui;

pub fn run(g: &Global, a: DaemonArgs, ui: &Ui) -> Result<ExitCode> {
    let interval = a
        .interval
        .as_deref()
        .map(|s| duration::parse(s).map_err(|e| anyhow!("--interval: {e}")))
        .transpose()?;
    let cancel = Cancel::new();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, cancel.flag())?;
    }
    let opts = CreateOptions {
        lock_timeout: lock_timeout(g),
        db_wait: db_wait(g),
        ..CreateOptions::default()
    };
    ui.line(format!(
        "thrum-backup daemon: backing up {} {}; stop with Ctrl-C or SIGTERM",
        g.repo.display(),
        match &a.interval {
            Some(i) => format!("every {i}"),
            None => "on the configured schedule".into(),
        }
    ));
    let progress = thrum_backup::progress::Silent;
    daemon::run(
        &g.repo,
        g.dir.as_deref(),
        interval,
        &opts,
        &progress,
        &cancel,
        |result| {
            match result {
            Ok(r) => {
                if !ui.emit_line(&serde_json::json!({"ok": true, "timestamp": r.manifest.timestamp, "events": r.manifest.counts.events, "files": r.manifest.files.len(), "archived": r.archived, "shrink": r.shrink})) {
                    ui.line(format!(
                        "{} backup ok: {} events, {} files",
                        r.manifest.timestamp.format("%Y-%m-%d %H:%M:%S"),
                        r.manifest.counts.events,
                        r.manifest.files.len()
                    ));
                }
            }
            Err(e) => {
                ui.emit_line(&serde_json::json!({"ok": false, "error": e.to_string()}));
                ui.warn(format!("scheduled backup failed: {e}"));
            }
        }
        },
    )?;
    ui.line("thrum-backup daemon: stopped");
    Ok(ExitCode::SUCCESS)
}
