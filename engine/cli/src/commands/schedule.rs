use std::process::ExitCode;

use anyhow::{Result, bail};
use thrum_backup::duration;

use super::context;
use crate::cli::{Global, ScheduleArgs};
use crate::ui::Ui;

pub fn run(g: &Global, a: ScheduleArgs, ui: &Ui) -> Result<ExitCode> {
    let mut ctx = context(g)?;
    let text = a.interval.as_deref();
    let value = match text {
        None => None,
        Some("off") => Some(None),
        Some(text) => {
            let d = match duration::parse(text) {
                Ok(d) => d,
                Err(e) => bail!("{e}: use a Go duration such as 24h, 6h30m or 90m, or \"off\""),
            };
            if d.is_zero() {
                bail!("a schedule of 0 would back up continuously: use \"off\" to disable it");
            }
            Some(Some(text))
        }
    };
    match (value, a.thrum) {
        (None, _) => {}
        (Some(v), false) => ctx.config.set_schedule(v)?,
        (Some(None), true) => ctx.config.set_thrum_schedule(None)?,
        (Some(Some(_)), true) => bail!(
            "--thrum only turns thrum's own backup scheduler off (`schedule off --thrum`): \
             thrum's scheduler runs thrum's backup, which takes no lock and rewrites current/"
        ),
    }
    let b = &ctx.config.backup;
    let ours = b.own_schedule.clone();
    let thrum = b.schedule.clone();
    let interval = b.schedule_interval();
    if ui.emit(&serde_json::json!({
        "schedule": ours.clone().or_else(|| thrum.clone()),
        "interval_seconds": interval.map(|d| d.as_secs_f64()),
        "thrum_schedule": thrum,
        "config_file": ctx.config.path(),
    })) {
        return Ok(ExitCode::SUCCESS);
    }
    match interval {
        Some(d) => ui.line(format!(
            "Backup schedule: every {} ({}); run `thrum-backup daemon` to follow it",
            ours.as_deref().or(thrum.as_deref()).unwrap_or_default(),
            duration::format(d)
        )),
        None => ui.line("Backup schedule: off"),
    }
    if let Some(t) = &thrum {
        ui.warn(format!(
            "thrum's own backup scheduler is on too (backup.schedule = {t}): thrum's daemon runs \
             thrum's backup every {t}, without a lock, rewriting current/. Turn it off with \
             `thrum-backup schedule off --thrum`"
        ));
    }
    Ok(ExitCode::SUCCESS)
}
