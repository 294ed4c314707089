//! Example plugin: writes `report.csv` with the line and byte counts of every `.jsonl` file in
//! the repository's `notes/` folder, validating each line. Restores nothing (a report only).

use std::io::Write;

use thrum_backup_plugin_sdk::{self as sdk, Context, Grant, Info, Plugin, PluginError, Summary};

struct JsonlStats;

impl Plugin for JsonlStats {
    fn describe() -> Info {
        sdk::info(
            "jsonl-stats",
            env!("CARGO_PKG_VERSION"),
            "CSV report of the JSONL files under notes/",
            vec![Grant::Read("notes".into())],
        )
    }

    fn backup(_ctx: &Context) -> Result<Summary, PluginError> {
        let mut report = sdk::OutputFile::create("report.csv")?;
        let mut summary = Summary::default();
        writeln!(report, "file,lines,bytes")?;
        let files = sdk::walk("/repo/notes")?;
        for (i, f) in files.iter().enumerate() {
            if f.extension().is_some_and(|e| e == "jsonl") {
                let lines = sdk::validate_jsonl(f)?;
                let bytes = std::fs::metadata(f)?.len();
                writeln!(
                    report,
                    "{},{lines},{bytes}",
                    f.strip_prefix("/repo/").unwrap_or(f).display()
                )?;
            }
            sdk::progress(i as u64 + 1, Some(files.len() as u64));
        }
        summary.add(report.finish()?);
        summary
            .notes
            .push(format!("{} files reported", files.len()));
        Ok(summary)
    }

    fn restore(_ctx: &Context) -> Result<Summary, PluginError> {
        Ok(Summary::default())
    }
}

sdk::register_plugin!(JsonlStats);
