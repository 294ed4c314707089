//! Recovery of a backup directory, and the one step every command opens it with.
//!
//! An interrupted command leaves only things in `.tmp/` (an unfinished stage, a retired
//! snapshot, a restore journal, work files) and temporary files in `archives/`; and a create
//! killed while it grew logs from `current/` leaves them longer than `current/`'s manifest
//! says. [`recover`] finishes or rolls all of it back; [`open`] takes the lock, checks that a
//! command that changes the directory may write there, and recovers, in that order.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backup_dir::BackupDir;
use crate::error::{IoContext, Result};
use crate::fsx;
use crate::lock::DirLock;
use crate::manifest;

/// What [`recover`] did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Recovery {
    /// Human-readable actions, empty when there was nothing to do.
    pub actions: Vec<String>,
}

/// Take `dir`'s lock (waiting up to `timeout`), check that this user may write there when the
/// command will (`writing`), and recover. The lock is held until the returned guard drops.
pub fn open(dir: &BackupDir, timeout: Duration, writing: bool) -> Result<(DirLock, Recovery)> {
    let (lock, (), recovery) = open_holding(dir, timeout, writing, || Ok(()))?;
    Ok((lock, recovery))
}

/// [`open`], taking another guard (`hold`) between the lock and the recovery: restore holds
/// thrum's daemon lock there, as recovery may roll an interrupted restore back.
pub fn open_holding<G>(
    dir: &BackupDir,
    timeout: Duration,
    writing: bool,
    hold: impl FnOnce() -> Result<G>,
) -> Result<(DirLock, G, Recovery)> {
    let lock = dir.lock(timeout)?;
    let held = hold()?;
    if writing {
        dir.check_writable()?;
    }
    let recovery = recover(dir)?;
    Ok((lock, held, recovery))
}

/// Finish or roll back whatever an interrupted command left behind in `dir`.
pub fn recover(dir: &BackupDir) -> Result<Recovery> {
    let mut rec = Recovery::default();
    if !dir.root().is_dir() {
        return Ok(rec);
    }
    rec.actions.extend(crate::journal::recover(&dir.tmp())?);
    let tmp = dir.tmp();
    let mut staged = Vec::new();
    if let Ok(entries) = fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            staged.push((name, entry.path()));
        }
    }
    let current = dir.current();
    if !current.exists() {
        // The only window without current/ is between the two renames of a swap on a
        // filesystem without RENAME_EXCHANGE: roll forward with the newest complete stage,
        // or back with the retired snapshot.
        let mut candidates: Vec<(DateTime<Utc>, u8, PathBuf)> = Vec::new();
        for (name, path) in &staged {
            let rank = if name.starts_with("stage-") {
                1
            } else if name.starts_with("retired-") {
                0
            } else {
                continue;
            };
            if let Ok(Some(m)) = manifest::read_dir(path) {
                candidates.push((m.timestamp, rank, path.clone()));
            }
        }
        candidates.sort();
        if let Some((_, _, best)) = candidates.pop() {
            fs::rename(&best, &current).at("rename into place", &current)?;
            fsx::sync_dir(dir.root())?;
            rec.actions.push(format!(
                "put back the interrupted snapshot swap ({})",
                best.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    // Before the unfinished stage goes: a create that was growing logs from current/
    // (see snapshot::Base) may have appended to them.
    if current.is_dir() {
        for rel in crate::snapshot::cut_back_grown(&current)? {
            rec.actions.push(format!(
                "cut current/{rel} back to its recorded size (an interrupted create had grown it)"
            ));
        }
    }
    for (name, path) in staged {
        if !path.exists() || name == crate::journal::JOURNAL {
            continue;
        }
        fsx::remove_any(&path)?;
        let what = if name.starts_with("stage-") {
            "removed an unfinished snapshot"
        } else if name.starts_with("retired-") {
            "removed a replaced snapshot"
        } else {
            "removed leftover work files"
        };
        rec.actions.push(format!("{what} (.tmp/{name})"));
    }
    if let Ok(entries) = fs::read_dir(dir.archives()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                fsx::remove_any(&entry.path())?;
                rec.actions
                    .push(format!("removed an unfinished archive (archives/{name})"));
            }
        }
    }
    Ok(rec)
}
