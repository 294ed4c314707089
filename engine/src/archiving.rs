//! Archiving `current/` before the next snapshot takes its place: the zip is written under a
//! temporary name (reusing what the archive before it holds), then given its name; a snapshot
//! that did not match its manifest is archived anyway and marked damaged ([`crate::health`]).

use std::fs;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::archive;
use crate::backup_dir::BackupDir;
use crate::error::Result;
use crate::fsx;
use crate::manifest;
use crate::progress::{Cancel, Progress};
use crate::retention::ArchiveName;

/// The archive of `current/`, written but not yet named ([`prepare`]).
#[derive(Debug)]
pub enum PreparedArchive {
    /// An interrupted run already archived this snapshot.
    Existing(PathBuf),
    /// Written under a temporary name in `archives/`.
    Written {
        /// The temporary file.
        tmp: PathBuf,
        /// The archived snapshot's time (its name).
        time: DateTime<Utc>,
        /// What was reused from the archive before.
        reuse: archive::Reuse,
        /// Its chunk index.
        index: archive::ChunkIndex,
        /// Where the snapshot did not match its manifest.
        damage: Vec<String>,
    },
}

impl PreparedArchive {
    /// Remove a written temporary file (the command failed before publishing it).
    pub fn discard(self) {
        if let PreparedArchive::Written { tmp, .. } = self {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Write the zip of `current/` under a temporary name in `archives/` (or find the archive an
/// interrupted run made), publishing nothing. It may run while the next snapshot is staged:
/// `archived` is told each file of `current/` once the zip holds it (see
/// [`crate::snapshot::Gate`]).
pub fn prepare(
    dir: &BackupDir,
    level: i64,
    progress: &dyn Progress,
    archived: &dyn Fn(&str),
    cancel: &Cancel,
) -> Result<Option<PreparedArchive>> {
    let current = dir.current();
    let has_content = fs::read_dir(&current)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if !has_content {
        return Ok(None);
    }
    let manifest = manifest::read_dir(&current).ok().flatten();
    let time = manifest.as_ref().map_or_else(Utc::now, |m| m.timestamp);
    let id = manifest.as_ref().and_then(|m| m.snapshot_id.clone());
    let archives = dir.archives();
    fsx::create_dir_all(&archives)?;
    if let Some(id) = &id {
        let taken = dir.archive_names();
        for seq in 0..1000 {
            let name = ArchiveName::format(time, seq);
            if !taken.contains(&name) {
                continue;
            }
            let candidate = archives.join(name);
            if let Ok(Some(m)) = archive::read_manifest(&candidate)
                && m.snapshot_id.as_ref() == Some(id)
            {
                return Ok(Some(PreparedArchive::Existing(candidate)));
            }
        }
    }
    let probe = archives.join(ArchiveName::format(time, 0));
    let tmp = fsx::temp_sibling(&probe, "tmp");
    // The newest earlier snapshot archive: what did not change since is copied from it.
    let earlier = dir.newest_snapshot_archive(time);
    match archive::write_dir_reusing(
        &current,
        &tmp,
        level,
        earlier.as_deref(),
        progress,
        archived,
        cancel,
    ) {
        Ok(w) => Ok(Some(PreparedArchive::Written {
            tmp,
            time,
            reuse: w.reuse,
            index: w.index,
            damage: w.damage,
        })),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Give a prepared archive its name (the second half of archiving, after [`prepare`]).
/// An archive of a snapshot that did not match its manifest is marked damaged (kept,
/// never counted by retention); what did not match is returned.
pub fn publish(
    dir: &BackupDir,
    prepared: PreparedArchive,
) -> Result<(PathBuf, archive::Reuse, Vec<String>)> {
    match prepared {
        PreparedArchive::Existing(path) => Ok((path, archive::Reuse::default(), Vec::new())),
        PreparedArchive::Written {
            tmp,
            time,
            reuse,
            index,
            damage,
        } => {
            let path = dir.publish_archive(&tmp, |seq| ArchiveName::format(time, seq))?;
            // A name pruned before may be taken again: nothing recorded of that one holds.
            crate::health::forget(&path);
            if !damage.is_empty() {
                crate::health::mark_damaged(
                    &path,
                    &format!("archived from a damaged snapshot: {}", damage.join("; ")),
                )?;
            }
            // A cache for the next archive: losing it costs speed, never data.
            let _ = archive::save_index(&path, &index);
            Ok((path, reuse, damage))
        }
    }
}
