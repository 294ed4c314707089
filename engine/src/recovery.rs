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
        if crate::snapshot::roll_back_database(&current, &tmp)? {
            rec.actions.push(format!(
                "put current/{} back as its snapshot records it (an interrupted create had brought it up to date)",
                crate::snapshot::DB_PATH
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;
    use crate::snapshot::Staging;
    use std::path::Path;

    /// A complete snapshot in `dir` of one file, `log`, holding `content`, taken at `time`.
    fn snapshot(dir: &Path, content: &[u8], time: &str) {
        fsx::create_dir_all(dir).unwrap();
        let source = dir.with_extension("source");
        fs::write(&source, content).unwrap();
        let mut staging = Staging::new(dir.to_path_buf());
        staging.copy_in(&source, "log").unwrap();
        let m =
            Manifest::from_slice(format!(r#"{{"version": 1, "timestamp": "{time}"}}"#).as_bytes())
                .unwrap();
        staging.finish(m).unwrap();
        fs::remove_file(&source).unwrap();
    }

    #[test]
    fn what_a_killed_create_left_is_undone_and_current_verifies() {
        let root = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(root.path().join("set"));
        snapshot(&dir.current(), b"0123456789", "2026-11-30T10:00:00Z");
        // The create had grown current/'s log, staged part of a snapshot, begun an archive.
        let mut log = fs::OpenOptions::new()
            .append(true)
            .open(dir.current().join("log"))
            .unwrap();
        std::io::Write::write_all(&mut log, b"appended").unwrap();
        let stage = dir.new_work_dir("stage").unwrap();
        fs::write(stage.join("log"), b"half").unwrap();
        fsx::create_dir_all(&dir.archives()).unwrap();
        fs::write(dir.archives().join(".next.zip.tmp-0000abcd"), b"PK").unwrap();

        let rec = recover(&dir).unwrap();
        assert_eq!(fs::read(dir.current().join("log")).unwrap(), b"0123456789");
        assert!(
            crate::verify::verify_dir(&dir.current(), &crate::progress::Silent)
                .unwrap()
                .ok()
        );
        assert!(!stage.exists());
        assert!(fs::read_dir(dir.archives()).unwrap().next().is_none());
        let said = rec.actions.join("\n");
        for what in [
            "cut current/log back",
            "removed an unfinished snapshot",
            "removed an unfinished archive",
        ] {
            assert!(said.contains(what), "{said}");
        }
        // Nothing left to do the second time.
        assert!(recover(&dir).unwrap().actions.is_empty());
    }

    #[test]
    fn a_swap_killed_between_its_renames_finishes_with_the_newest_complete_snapshot() {
        let root = tempfile::tempdir().unwrap();
        let dir = BackupDir::new(root.path().join("set"));
        let retired = dir.new_work_dir("retired").unwrap();
        snapshot(&retired, b"old", "2026-11-30T10:00:00Z");
        let stage = dir.new_work_dir("stage").unwrap();
        snapshot(&stage, b"new", "2026-11-30T11:00:00Z");
        // An unfinished stage (no manifest) is never put in place.
        let unfinished = dir.new_work_dir("stage").unwrap();
        fs::write(unfinished.join("log"), b"half").unwrap();

        let rec = recover(&dir).unwrap();
        assert_eq!(fs::read(dir.current().join("log")).unwrap(), b"new");
        assert!(rec.actions[0].starts_with("put back the interrupted snapshot swap"));
        assert!(!retired.exists() && !unfinished.exists());
    }
}
