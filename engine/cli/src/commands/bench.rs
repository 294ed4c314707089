use std::process::ExitCode;

use crate::bench::{self, BenchOptions};
use anyhow::{Context as _, Result};

use crate::cli::BenchArgs;
use crate::ui::{Ui, bytes};

pub fn run(a: BenchArgs, ui: &Ui) -> Result<ExitCode> {
    let tmp = tempfile::Builder::new()
        .prefix("thrum-backup-bench-")
        .tempdir()?;
    let dir = a.work.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let opts = BenchOptions {
        scale: a.scale,
        runs: a.runs,
        dir,
        exe: std::env::current_exe().context("cannot find this binary")?,
    };
    let report = bench::run(&opts, &mut |line| ui.line(format!("  {line}")))?;
    if let Some(out) = &a.out {
        thrum_backup::fsx::write_atomic(out, &serde_json::to_vec_pretty(&report)?)?;
    }
    if ui.emit(&report) {
        return Ok(ExitCode::SUCCESS);
    }
    ui.line("");
    ui.line(format!(
        "Workspace: {} files, {}; {} CPUs; medians of {} runs",
        report.workspace_files,
        bytes(report.workspace_bytes),
        report.cpus,
        a.runs
    ));
    ui.line(format!(
        "{:<46} {:>9} {:>9} {:>9} {:>11}",
        "", "wall s", "cpu s", "RSS MiB", "output"
    ));
    for r in &report.rows {
        match &r.skipped {
            Some(why) => ui.line(format!("{:<46} {why}", r.name)),
            None => ui.line(format!(
                "{:<46} {:>9.3} {:>9} {:>9} {:>11}",
                format!("{} {}", if r.kind == "ours" { "*" } else { " " }, r.name),
                r.wall,
                if r.cpu.is_nan() {
                    "-".into()
                } else {
                    format!("{:.3}", r.cpu)
                },
                if r.rss_mib.is_nan() {
                    "-".into()
                } else {
                    format!("{:.1}", r.rss_mib)
                },
                r.output_bytes.map_or("-".into(), bytes),
            )),
        }
    }
    ui.line("");
    for q in &report.ratios {
        ui.line(if q.of == bench::Compared::Output {
            format!("{:.3}x  output of {} / {}", q.ratio, q.ours, q.baseline)
        } else {
            format!("{:.2}x  {} / {}", q.ratio, q.ours, q.baseline)
        });
    }
    Ok(ExitCode::SUCCESS)
}

pub fn measure(cmd: &[String], _ui: &Ui) -> Result<ExitCode> {
    let usage = bench::measure_child(cmd)?;
    // Always JSON: this is the bench's own wrapper.
    println!("{}", serde_json::to_string(&usage)?);
    Ok(ExitCode::SUCCESS)
}
