//! The `beads` preset: backs up what `bd` (beads, Go) keeps for git and for its own backups.
//!
//! Newer `bd` keeps issues in a Dolt database a plugin cannot read; `bd backup` writes
//! `.beads/backup/{issues,events,comments,dependencies,labels,config}.jsonl` and
//! `backup_state.json` with counts, and `.beads/issues.jsonl` is an export kept for git. This
//! plugin copies those files, checks that every JSONL line parses (reading each file once: what
//! it checks is what it keeps), and compares line counts with `backup_state.json` (a mismatch
//! is a warning). With `{"refresh": true}` in its config and an `exec:bd` grant it first runs
//! `bd backup --force`; without them it needs no tool.

use thrum_backup_plugin_sdk::{
    self as sdk, Context, ErrorCode, Grant, Info, Plugin, PluginError, Summary,
};

struct Beads;

const BACKUP_DIR: &str = "/repo/.beads/backup";

impl Plugin for Beads {
    fn describe() -> Info {
        let mut info = sdk::info(
            "beads",
            env!("CARGO_PKG_VERSION"),
            "beads (bd): .beads/backup/*.jsonl and .beads/issues.jsonl, validated against backup_state.json",
            vec![Grant::Read(".beads".into()), Grant::Write(".beads".into())],
        );
        info.config_help = "{\"refresh\": false}  refresh: run `bd backup --force` first; this needs the optional grant exec:bd, \
                            used only when the data cannot be read otherwise".into();
        info
    }

    fn backup(ctx: &Context) -> Result<Summary, PluginError> {
        let config = sdk::config(ctx)?;
        let mut summary = Summary::default();
        if config
            .get("refresh")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
        {
            let out = sdk::exec("bd", &["backup", "--force"], 60_000)?;
            if out.status != 0 {
                return Err(sdk::error(
                    ErrorCode::HostCall,
                    format!(
                        "bd backup --force failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ),
                ));
            }
            summary
                .notes
                .push("refreshed with `bd backup --force`".into());
        }
        let files = sdk::walk(BACKUP_DIR)?;
        let export = std::path::Path::new("/repo/.beads/issues.jsonl");
        if files.is_empty() && !export.is_file() {
            return Err(sdk::error(
                ErrorCode::MissingInput,
                "no .beads/backup/ and no .beads/issues.jsonl: run `bd backup` (or set {\"refresh\": true})",
            ));
        }
        let mut lines = std::collections::BTreeMap::new();
        for file in &files {
            if file.extension().is_some_and(|e| e == "jsonl") {
                let (bytes, n) = sdk::copy_jsonl_to_output(file)?;
                let stem = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                lines.insert(stem, n);
                summary.add(bytes);
            } else {
                summary.add(sdk::copy_to_output(file)?);
            }
        }
        if export.is_file() {
            summary.add(sdk::copy_jsonl_to_output(export)?.0);
        }
        check_counts(&lines, &mut summary);
        Ok(summary)
    }

    fn verify(_ctx: &Context) -> Result<Summary, PluginError> {
        let mut summary = Summary::default();
        let mut lines = std::collections::BTreeMap::new();
        for file in sdk::walk("/backup")? {
            if file.extension().is_some_and(|e| e == "jsonl") {
                let n = sdk::validate_jsonl(&file)?;
                if file.starts_with("/backup/.beads/backup") {
                    let stem = file
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    lines.insert(stem, n);
                }
            }
            summary.add(std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0));
        }
        check_counts_at(
            "/backup/.beads/backup/backup_state.json",
            &lines,
            &mut summary,
        );
        Ok(summary)
    }
}

fn check_counts(lines: &std::collections::BTreeMap<String, u64>, summary: &mut Summary) {
    check_counts_at(&format!("{BACKUP_DIR}/backup_state.json"), lines, summary);
}

/// Compare JSONL line counts with bd's own `backup_state.json` counts.
fn check_counts_at(
    state: &str,
    lines: &std::collections::BTreeMap<String, u64>,
    summary: &mut Summary,
) {
    let Ok(text) = std::fs::read_to_string(state) else {
        if !lines.is_empty() {
            summary
                .warnings
                .push("no backup_state.json: counts not checked".into());
        }
        return;
    };
    let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
        summary
            .warnings
            .push("backup_state.json is not valid JSON: counts not checked".into());
        return;
    };
    let Some(counts) = state.get("counts").and_then(|c| c.as_object()) else {
        return;
    };
    let mut checked = Vec::new();
    for (name, expected) in counts {
        let Some(expected) = expected.as_u64() else {
            continue;
        };
        match lines.get(name) {
            Some(&n) if n == expected => checked.push(format!("{n} {name}")),
            Some(&n) => summary.warnings.push(format!(
                "{name}.jsonl has {n} lines but backup_state.json counts {expected}"
            )),
            None if expected > 0 => summary.warnings.push(format!(
                "{name}.jsonl is missing but backup_state.json counts {expected}"
            )),
            None => {}
        }
    }
    if !checked.is_empty() {
        summary.notes.push(format!(
            "counts match backup_state.json: {}",
            checked.join(", ")
        ));
    }
}

sdk::register_plugin!(Beads);
