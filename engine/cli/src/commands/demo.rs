use std::process::ExitCode;

use crate::demo;
use anyhow::{Context as _, Result};

use crate::cli::DemoArgs;
use crate::ui::Ui;

pub fn run(a: DemoArgs, ui: &Ui) -> Result<ExitCode> {
    let tmp = tempfile::Builder::new()
        .prefix("thrum-backup-demo-")
        .tempdir()
        .context("cannot create a temp directory for the demo")?;
    let progress = thrum_backup::progress::Silent;
    let mut n = 0;
    let report = demo::run(tmp.path(), &progress, &mut |step| {
        n += 1;
        ui.line(format!("{n}. {step}"));
    });
    let root = if a.keep || report.is_err() {
        tmp.keep()
    } else {
        tmp.path().to_path_buf()
    };
    let report =
        report.with_context(|| format!("the demo failed (its files are in {})", root.display()))?;
    if !ui.emit(&report) {
        ui.line(format!(
            "Demo complete: every step passed. {}",
            if a.keep {
                format!("Its files are kept in {}.", root.display())
            } else {
                "(Pass --keep to look at its files.)".into()
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}
