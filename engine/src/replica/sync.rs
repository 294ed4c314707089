//! `replica sync`: push every local snapshot a replica lacks — the archives oldest first, then
//! `current/` — each with its own time. What a replica holds is known by the `snapshot:` tag,
//! so a second run pushes nothing, and a run killed midway is completed by the next (rustic
//! writes a snapshot only after its data and index: an interrupted push leaves unused packs,
//! which `check` reports as warnings and `prune` removes, never a snapshot without data).

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use super::{Kind, Pushed, Replica, snapshot_key};
use crate::archive::{CheckedArchive, Limits};
use crate::backup_dir::{ArchiveKind, BackupDir, Skipped};
use crate::error::Result;
use crate::fsx;
use crate::manifest::{self, Manifest};
use crate::progress::{Cancel, Progress};

/// A local snapshot a replica may hold.
#[derive(Debug, Clone)]
pub struct Local {
    /// `current` or the archive's file name.
    pub label: String,
    /// `current/`, or the archive's path.
    pub path: PathBuf,
    /// What it is locally.
    pub kind: Kind,
    /// Its manifest.
    pub manifest: Manifest,
}

/// What `sync` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Snapshots pushed: local label → what the push did.
    pub pushed: Vec<(String, Pushed)>,
    /// Local snapshots the replica already held.
    pub already: usize,
    /// Local snapshots that could not be read (damaged archives): label → why.
    pub skipped: Skipped,
}

/// The local snapshots, oldest first, `current/` last; archives whose manifest cannot be
/// read are returned as skipped.
pub fn local_snapshots(dir: &BackupDir) -> Result<(Vec<Local>, Skipped)> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for a in dir.list_archives()? {
        let kind = match a.kind {
            ArchiveKind::Snapshot => Kind::Archive,
            ArchiveKind::PreRestore => Kind::PreRestore,
            ArchiveKind::Other => continue,
        };
        let path = dir.archives().join(&a.name);
        match crate::archive::read_manifest(&path) {
            Ok(Some(m)) => out.push(Local {
                label: a.name,
                path,
                kind,
                manifest: m,
            }),
            Ok(None) => skipped.push((a.name, "no manifest.json".into())),
            Err(e) => skipped.push((a.name, e.to_string())),
        }
    }
    if let Some(m) = manifest::read_dir(&dir.current())? {
        out.push(Local {
            label: "current".into(),
            path: dir.current(),
            kind: Kind::Current,
            manifest: m,
        });
    }
    Ok((out, skipped))
}

/// Push every local snapshot of `dir` that `replica` lacks (see the module's text). Archives
/// are extracted, every file checked against the manifest, into a work directory of `dir`.
pub fn sync(
    replica: &mut Replica,
    dir: &BackupDir,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<SyncReport> {
    let held: HashSet<String> = replica
        .snapshots()?
        .into_iter()
        .filter_map(|s| s.snapshot)
        .collect();
    let (locals, skipped) = local_snapshots(dir)?;
    let mut report = SyncReport {
        skipped,
        ..SyncReport::default()
    };
    let mut seen = HashSet::new();
    let missing: Vec<&Local> = locals
        .iter()
        .filter(|l| {
            let key = snapshot_key(&l.manifest);
            // The same snapshot twice (current/ archived, then still current): pushed once.
            !held.contains(&key) && seen.insert(key)
        })
        .collect();
    report.already = locals.len() - missing.len();
    for (i, l) in missing.iter().enumerate() {
        cancel.check()?;
        progress.phase(
            &format!(
                "pushing {} to replica {} ({}/{})",
                l.label,
                replica.entry.name,
                i + 1,
                missing.len()
            ),
            None,
        );
        let pushed = if l.kind == Kind::Current {
            replica.push(&l.path, &l.manifest, l.kind, progress)?
        } else {
            let work = dir.new_work_dir("replica")?;
            let result = extract(&l.path, &work, progress, cancel)
                .and_then(|src| replica.push(&src, &l.manifest, l.kind, progress));
            let _ = fsx::remove_any(&work);
            match result {
                Ok(p) => p,
                // The replica failing, or a signal, ends the sync; a bad archive is skipped.
                Err(e @ (crate::Error::Replica { .. } | crate::Error::Cancelled)) => {
                    return Err(e);
                }
                Err(e) => {
                    report.skipped.push((l.label.clone(), e.to_string()));
                    continue;
                }
            }
        };
        report.pushed.push((l.label.clone(), pushed));
    }
    Ok(report)
}

/// Extract the archive at `path` into `work/snapshot`, every file checked.
fn extract(
    path: &std::path::Path,
    work: &std::path::Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<PathBuf> {
    let mut archive = CheckedArchive::open(path, &Limits::default())?;
    let m = archive.manifest()?;
    let expected = Manifest::expected(m.as_ref());
    let dest = work.join("snapshot");
    fsx::create_dir_all(&dest)?;
    archive.extract_all(&dest, &expected, progress, cancel)?;
    Ok(dest)
}
