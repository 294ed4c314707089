//! Measuring one command: the `__measure` wrapper, medians, and small helpers.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use super::{Row, Usage};
use thrum_backup::fsx;
use thrum_backup::{Error, IoContext, Result};

/// Run `cmd` under the `__measure` wrapper and parse its usage.
pub(super) fn measure(exe: &Path, cwd: &Path, cmd: &[String]) -> Result<Usage> {
    let out = Command::new(exe)
        .arg("__measure")
        .arg("--")
        .args(cmd)
        .current_dir(cwd)
        .output()
        .at("run", exe)?;
    let usage: Usage = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Invalid(format!(
            "bench: cannot read the measurement of {cmd:?}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    if usage.status != 0 {
        return Err(Error::Invalid(format!(
            "bench: {cmd:?} failed with status {}",
            usage.status
        )));
    }
    Ok(usage)
}

/// The wrapper: run `cmd`, wait, and report its usage (called by `thrum-backup __measure`).
pub fn measure_child(cmd: &[String]) -> Result<Usage> {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| Error::Invalid("__measure needs a command".into()))?;
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .at("run", Path::new(program))?;
    let wall = start.elapsed().as_secs_f64();
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_err(|e| Error::Invalid(format!("getrusage: {e}")))?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(Usage {
        wall,
        user: secs(u.user_time()),
        sys: secs(u.system_time()),
        max_rss_kib: u.max_rss().max(0) as u64,
        status: status.code().unwrap_or(-1),
    })
}

pub(super) fn median_row(
    name: &str,
    kind: &'static str,
    runs: Vec<Usage>,
    output: Option<u64>,
) -> Row {
    let mut sorted: Vec<(f64, usize)> = runs.iter().enumerate().map(|(i, u)| (u.wall, i)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mid = &runs[sorted[sorted.len() / 2].1];
    Row {
        name: name.into(),
        kind,
        wall: mid.wall,
        cpu: mid.user + mid.sys,
        rss_mib: mid.max_rss_kib as f64 / 1024.0,
        output_bytes: output,
        runs: runs.iter().map(|u| u.wall).collect(),
        skipped: None,
    }
}

pub(super) fn skipped(name: &str, why: &str) -> Row {
    Row {
        name: name.into(),
        kind: "baseline",
        wall: f64::NAN,
        cpu: f64::NAN,
        rss_mib: f64::NAN,
        output_bytes: None,
        runs: Vec::new(),
        skipped: Some(why.into()),
    }
}

pub(super) fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

pub(super) fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

pub(super) fn dir_size(dir: &Path) -> Result<(u64, u64)> {
    let files = fsx::walk_files(dir)?;
    let bytes = files
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    Ok((files.len() as u64, bytes))
}
