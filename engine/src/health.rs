//! Which archives retention may count, and which it must keep.
//!
//! An archive counts for retention only when it is sound: this engine wrote and published it
//! from a sound snapshot (its chunk index says it wrote it; no damage marker), or, for any
//! other file with an archive's name, it opens as a zip with a manifest. Damage found later
//! (`verify`) or when it was archived leaves a marker beside the index,
//! `.index/<archive>.damaged`. Unsound archives are kept and reported, never counted.
//!
//! The shrink guard's protections live in `<backup dir>/shrink.json`: the archives that are
//! the last good copy before a shrink, kept until `prune --accept-shrink`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backup_dir::{ArchiveInfo, BackupDir};
use crate::error::{Error, Result};
use crate::fsx;

/// What retention needs to know of one archive.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Why it is not sound.
    pub unsound: Option<String>,
    /// Made by thrum's own backup.
    pub by_thrum: bool,
}

fn marker(archive: &Path) -> PathBuf {
    crate::archive::index_path(archive).with_extension("damaged")
}

/// Record that `archive` is damaged (what `verify` or archiving found).
pub fn mark_damaged(archive: &Path, why: &str) -> Result<()> {
    fsx::write_atomic(&marker(archive), why.as_bytes())
}

/// Forget what was recorded of `archive` (it was removed, or a new archive took its name).
pub fn forget(archive: &Path) {
    let _ = std::fs::remove_file(marker(archive));
}

/// The health of the archive `info` in `dir`.
pub fn of(dir: &BackupDir, info: &ArchiveInfo) -> Health {
    let path = dir.archives().join(&info.name);
    if let Ok(why) = std::fs::read_to_string(marker(&path)) {
        return Health {
            unsound: Some(why.trim().to_owned()),
            by_thrum: false,
        };
    }
    // Written and published by this engine (the index is written right after the archive,
    // and a file replaced since is newer than its index).
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(index), Some(zip)) = (
        modified(&crate::archive::index_path(&path)),
        modified(&path),
    ) && index >= zip
    {
        return Health::default();
    }
    match crate::archive::read_manifest(&path) {
        Ok(Some(m)) => Health {
            unsound: None,
            by_thrum: m.engine.is_none(),
        },
        Ok(None) => Health {
            unsound: Some("no manifest.json: not a backup archive".into()),
            by_thrum: false,
        },
        Err(e) => Health {
            unsound: Some(format!("does not open as an archive: {e}")),
            by_thrum: false,
        },
    }
}

/// The last good copy before a shrink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// The archive kept.
    pub archive: String,
    /// What shrank.
    pub what: Vec<String>,
    /// When the shrink was found.
    pub found: chrono::DateTime<chrono::Utc>,
}

fn shrink_file(dir: &BackupDir) -> PathBuf {
    dir.root().join("shrink.json")
}

/// The protections in force.
pub fn protections(dir: &BackupDir) -> Result<Vec<Protection>> {
    let path = shrink_file(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::Io {
            action: "read",
            path,
            source: e,
        }),
    }
}

/// Keep `archive` as the last good copy before the shrink `what`.
pub fn protect(dir: &BackupDir, archive: &str, what: &[String]) -> Result<()> {
    let mut all = protections(dir)?;
    all.retain(|p| p.archive != archive);
    all.push(Protection {
        archive: archive.to_owned(),
        what: what.to_vec(),
        found: chrono::Utc::now(),
    });
    let bytes = serde_json::to_vec_pretty(&all).map_err(|e| Error::Invalid(e.to_string()))?;
    fsx::write_atomic(&shrink_file(dir), &bytes)
}

/// Accept every shrink: retention treats the protected archives like any other again.
pub fn accept(dir: &BackupDir) -> Result<Vec<Protection>> {
    let all = protections(dir)?;
    let path = shrink_file(dir);
    if path.exists() {
        std::fs::remove_file(&path).map_err(|e| Error::Io {
            action: "remove",
            path: path.clone(),
            source: e,
        })?;
    }
    Ok(all)
}
