use std::process::ExitCode;

use anyhow::Result;
use thrum_backup::prune;

use super::{context, lock_timeout};
use crate::cli::{Global, PruneArgs};
use crate::ui::{EXIT_REPLICA, Ui};

pub fn run(g: &Global, a: PruneArgs, ui: &Ui) -> Result<ExitCode> {
    let ctx = context(g)?;
    let report = prune::prune(&ctx, a.dry_run, a.accept_shrink, lock_timeout(g))?;
    let replicas = if a.no_replicas {
        Vec::new()
    } else {
        thrum_backup::replica::retention_all(
            &ctx.config.backup.replicas,
            &ctx.workspace.thrum_dir,
            &ctx.config.backup.retention(),
            a.dry_run,
        )
    };
    let code = if replicas.iter().any(|r| r.error.is_some()) {
        ExitCode::from(EXIT_REPLICA)
    } else {
        ExitCode::SUCCESS
    };
    #[derive(serde::Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        local: &'a prune::PruneReport,
        replicas: &'a [thrum_backup::replica::RetentionOutcome],
    }
    if ui.emit(&Out {
        local: &report,
        replicas: &replicas,
    }) {
        return Ok(code);
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
    for r in &replicas {
        print_replica(ui, r, report.dry_run);
    }
    Ok(code)
}

/// A replica's keep/remove list, as the local one.
fn print_replica(ui: &Ui, r: &thrum_backup::replica::RetentionOutcome, dry_run: bool) {
    if let Some(e) = &r.error {
        ui.warn(format!("replica {}: retention not applied: {e}", r.name));
        return;
    }
    ui.line(format!("Replica {}:", r.name));
    for d in &r.decisions {
        ui.line(format!(
            "  {} {} {} {:<11} {}",
            if d.keep { "keep  " } else { "remove" },
            d.snapshot.id,
            d.snapshot.time.format("%Y-%m-%d %H:%M:%S"),
            d.snapshot.kind.as_deref().unwrap_or("-"),
            if d.reasons.is_empty() {
                "no rule keeps it".to_owned()
            } else {
                d.reasons.join(", ")
            }
        ));
    }
    let n = r.decisions.iter().filter(|d| !d.keep).count();
    if dry_run {
        ui.line(format!(
            "  Dry run: {n} snapshot(s) would be forgotten and pruned."
        ));
    } else {
        ui.line(format!(
            "  Forgot {} snapshot(s) and pruned their data.",
            r.removed
        ));
    }
}
