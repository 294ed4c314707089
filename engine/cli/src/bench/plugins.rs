//! The plugin rows: a WebAssembly plugin's start, cold and warm, and the beads preset's
//! backup against a plain copy of what it reads.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Row;
use thrum_backup::config::{PluginLimits, WasmPlugin};
use thrum_backup::fsx;
use thrum_backup::plugin::wasm;
use thrum_backup::{Error, IoContext, Result};

/// A `.beads/backup` of realistic JSONL at `scale` (the beads preset's input).
pub(super) fn make_beads(dir: &Path, scale: f64) -> Result<()> {
    let backup = dir.join("backup");
    fsx::create_dir_all(&backup)?;
    let n = ((20_000.0 * scale) as usize).max(100);
    let mut issues = String::new();
    for i in 0..n {
        issues.push_str(&format!(
            "{{\"id\":\"bd-{i}\",\"title\":\"Fix the parser for case {i}\",\"status\":\"open\",\"priority\":{},\"description\":\"When the daemon restarts the sync worktree may lag; retry with backoff and check the schema migration for edge case {i}.\"}}\n",
            i % 4
        ));
    }
    fsx::write_atomic(&backup.join("issues.jsonl"), issues.as_bytes())?;
    fsx::write_atomic(
        &backup.join("backup_state.json"),
        format!("{{\"counts\":{{\"issues\":{n}}}}}").as_bytes(),
    )
}

pub(super) fn plugin_start(root: &Path, runs: usize) -> Result<Vec<Row>> {
    let setting = wasm::Setting::new(root, "bench-ws", None);
    let bytes = thrum_backup::plugin::presets::component("beads")
        .ok_or_else(|| Error::Invalid("no beads preset".into()))?;
    let cache = tempfile::tempdir().at("create", Path::new("cache"))?;
    let start_once = |dir: Option<PathBuf>| -> Result<f64> {
        let t = Instant::now();
        let loaded =
            wasm::load_with_cache(bytes, dir).map_err(|e| Error::Invalid(e.to_string()))?;
        wasm::describe(&loaded, &setting).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(t.elapsed().as_secs_f64())
    };
    // The engine itself is created once per process: not part of a plugin's start.
    start_once(None)?;
    let mut cold = Vec::new();
    for _ in 0..runs {
        cold.push(start_once(None)?);
    }
    start_once(Some(cache.path().to_path_buf()))?; // fills the cache
    let mut warm = Vec::new();
    for _ in 0..runs.max(5) {
        warm.push(start_once(Some(cache.path().to_path_buf()))?);
    }
    let plugin = WasmPlugin {
        name: "beads".into(),
        component: "preset:beads".into(),
        sha256: None,
        grants: vec![
            thrum_backup::config::Grant::Read(".beads".into()),
            thrum_backup::config::Grant::Write(".beads".into()),
        ],
        limits: PluginLimits::default(),
        config: serde_json::json!({}),
        bundle: None,
        allow_dangerous: false,
    };
    let preset_once = |i: usize| -> Result<f64> {
        let out = root.join(format!(".bench-plugin-out-{i}"));
        fsx::create_dir_all(&out)?;
        let t = Instant::now();
        let (report, _) = wasm::backup_report(&plugin, &setting, &out);
        let took = t.elapsed().as_secs_f64();
        if !report.status.is_ok() {
            return Err(Error::Invalid(format!(
                "beads preset failed in the bench: {:?}",
                report.error
            )));
        }
        fsx::remove_any(&out)?;
        Ok(took)
    };
    // Not timed: a call with the user's component cache empty (a new machine, a new build of
    // the preset) compiles the component first; the cold start has its own row above.
    preset_once(runs)?;
    let mut through = Vec::new();
    let mut copy = Vec::new();
    let mut durable = Vec::new();
    for i in 0..runs {
        through.push(preset_once(i)?);
        // A plain copy, then one made durable as the preset's output is (each file fsynced).
        for (synced, times) in [(false, &mut copy), (true, &mut durable)] {
            let dst = root.join(format!(".bench-copy-{i}"));
            let t = Instant::now();
            for f in fsx::walk_files(&root.join(".beads"))? {
                let to = dst.join(&f);
                fsx::create_dir_all(to.parent().unwrap_or(&dst))?;
                std::fs::copy(root.join(".beads").join(&f), &to).at("copy", &to)?;
                if synced {
                    std::fs::File::open(&to)
                        .and_then(|f| f.sync_all())
                        .at("sync", &to)?;
                }
            }
            times.push(t.elapsed().as_secs_f64());
            fsx::remove_any(&dst)?;
        }
    }
    let row = |name: &str, kind: &'static str, v: Vec<f64>| {
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        Row {
            name: name.into(),
            kind,
            wall: sorted[sorted.len() / 2],
            cpu: f64::NAN,
            rss_mib: f64::NAN,
            output_bytes: None,
            runs: v,
            skipped: None,
        }
    };
    Ok(vec![
        row("plugin start, cold (compile)", "ours", cold),
        row("plugin start, warm (cached component)", "ours", warm),
        row("beads preset backup", "ours", through),
        row("plain copy of .beads", "baseline", copy),
        row("plain copy of .beads, fsynced", "baseline", durable),
    ])
}
