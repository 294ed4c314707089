use std::process::ExitCode;

use anyhow::{Result, bail};
use thrum_backup::duration;

use super::context;
use crate::cli::{Global, ScheduleArgs};
use crate::ui::Ui;

pub fn run(g: &Global, a: ScheduleArgs, ui: &Ui) -> Result<ExitCode> {
    let mut ctx = context(g)?;
    match a.interval.as_deref() {
        None => {}
        Some("off") => ctx.config.set_schedule(None)?,
        Some(text) => {
            let d = match duration::parse(text) {
                Ok(d) => d,
                Err(e) => bail!("{e}: use a Go duration such as 24h, 6h30m or 90m, or \"off\""),
            };
            if d.is_zero() {
                bail!("a schedule of 0 would back up continuously: use \"off\" to disable it");
            }
            ctx.config.set_schedule(Some(text))?;
        }
    }
    let schedule = ctx.config.backup.schedule.clone();
    if ui.emit(&serde_json::json!({
        "schedule": schedule,
        "interval_seconds": ctx.config.backup.schedule_interval().map(|d| d.as_secs_f64()),
        "config_file": ctx.config.path(),
    })) {
        return Ok(ExitCode::SUCCESS);
    }
    match ctx.config.backup.schedule_interval() {
        Some(d) => ui.line(format!(
            "Backup schedule: every {} ({}); run `thrum-backup daemon` to follow it",
            schedule.as_deref().unwrap_or_default(),
            duration::format(d)
        )),
        None => ui.line("Backup schedule: off"),
    }
    Ok(ExitCode::SUCCESS)
}
