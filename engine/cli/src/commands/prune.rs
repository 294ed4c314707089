use std::process::ExitCode;

use anyhow::Result;
use thrum_backup::prune;

use super::{context, lock_timeout};
use crate::cli::{Global, PruneArgs};
use crate::ui::Ui;

pub fn run(g: &Global, a: PruneArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let report = prune::prune(&ctx, a.dry_run, a.accept_shrink, lock_timeout(g))?;
    if ui.emit(&report) {
        return Ok(ExitCode::SUCCESS);
    }
    let p = report.policy;
    ui.line(format!(
        "Policy: daily {} weekly {} monthly {} last {} (-1 = forever, 0 = off)",
        p.daily, p.weekly, p.monthly, p.last
    ));
    for d in &report.decisions {
        let verdict = if d.keep() { "keep  " } else { "remove" };
        let why = if d.keep() {
            d.reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            "no rule keeps it".to_owned()
        };
        ui.line(format!("{verdict} {}  {why}", d.archive.name));
    }
    for d in &report.pre_restore {
        let why = d
            .reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if d.keep() {
            ui.line(format!("keep   {}  {why}", d.archive.name));
        } else {
            ui.line(format!(
                "remove {}  a restore's safety archive older than {} days, not among the {} newest",
                d.archive.name,
                thrum_backup::retention::PRE_RESTORE_DAYS,
                thrum_backup::retention::PRE_RESTORE_KEEP
            ));
        }
    }
    for e in &report.exempt {
        ui.line(format!("exempt {e}  never pruned"));
    }
    for u in &report.unsound {
        ui.warn(format!("not a sound archive, kept and not counted: {u}"));
    }
    for p in &report.accepted {
        ui.line(format!(
            "{} the shrink found {} ({}): {} counts like any other archive now",
            if report.dry_run {
                "would accept"
            } else {
                "accepted"
            },
            p.found.format("%Y-%m-%d %H:%M UTC"),
            p.what.join("; "),
            p.archive
        ));
    }
    let removing = report
        .decisions
        .iter()
        .chain(&report.pre_restore)
        .filter(|d| !d.keep())
        .count();
    if report.dry_run {
        ui.line(format!(
            "Dry run: {removing} archive(s) would be removed; nothing changed."
        ));
    } else {
        ui.line(format!("Removed {} archive(s).", report.removed.len()));
    }
    Ok(ExitCode::SUCCESS)
}
