//! `restore --target DIR`: the snapshot's files (all, or those a partial restore selects)
//! written into another folder, laid out as the workspace would be, each checked against the
//! manifest as it is written — a place to look before deciding. The workspace is not touched,
//! and neither is thrum's daemon: no transaction is needed, only a folder that is new or empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::plan::RestorePlan;
use super::source::Checked;
use crate::error::{Error, Result};
use crate::fsx;
use crate::locate::Workspace;
use crate::progress::{Cancel, Progress};
use crate::snapshot::DB_PATH;

/// What was written into the target folder.
pub(crate) struct Written {
    /// Paths written, relative to the folder.
    pub files: Vec<String>,
    /// Warnings.
    pub notes: Vec<String>,
}

/// Refuse a target folder that has anything in it (nothing is ever overwritten), or that is
/// the workspace or inside its thrum data.
pub(crate) fn check(ws: &Workspace, dir: &Path) -> Result<()> {
    let abs = std::path::absolute(dir).map_err(|e| Error::Io {
        action: "resolve",
        path: dir.to_path_buf(),
        source: e,
    })?;
    if abs == ws.repo_root || abs.starts_with(&ws.thrum_dir) || abs.starts_with(&ws.sync_dir) {
        return Err(Error::Invalid(format!(
            "{}: --target must be a folder outside the workspace's data (it is where the snapshot is laid out instead of the workspace)",
            dir.display()
        )));
    }
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(Error::Invalid(format!(
            "{}: --target must be a new or empty folder (nothing is overwritten)",
            dir.display()
        )));
    }
    Ok(())
}

/// Where the live path `target` goes inside `dir`.
fn place(ws: &Workspace, dir: &Path, target: &Path) -> PathBuf {
    match target.strip_prefix(&ws.repo_root) {
        Ok(rel) => dir.join(rel),
        // Another worktree's `.thrum/`, outside the repository.
        Err(_) => dir
            .join("outside-the-repository")
            .join(target.strip_prefix("/").unwrap_or(target)),
    }
}

/// Write the files `plan` puts back (and the database copy) below `dir`.
pub(crate) fn write(
    ws: &Workspace,
    source: &Checked,
    plan: &RestorePlan,
    dir: &Path,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Written> {
    fsx::create_dir_all_mode(dir, 0o700)?;
    let expected: BTreeMap<PathBuf, &fsx::Checksum> = source
        .manifest
        .files
        .iter()
        .map(|f| (source.dir.join(&f.path), &f.checksum))
        .collect();
    let mut copies: Vec<(PathBuf, PathBuf, u32)> = plan
        .steps
        .iter()
        .zip(&plan.copies)
        .filter_map(|(s, c)| {
            c.as_ref()
                .map(|(src, mode)| (src.clone(), place(ws, dir, &s.target), *mode))
        })
        .collect();
    let mut notes = Vec::new();
    if let Some(db) = &plan.database {
        if db.from == "snapshot" {
            copies.push((source.dir.join(DB_PATH), place(ws, dir, &ws.db_path), 0o600));
        } else {
            notes.push("the snapshot has no database copy (thrum made it): its local tables are not written into the target".into());
        }
    }
    let total: u64 = copies
        .iter()
        .filter_map(|(src, _, _)| std::fs::metadata(src).ok())
        .map(|m| m.len())
        .sum();
    progress.phase("writing the snapshot into the target folder", Some(total));
    let mut files = Vec::new();
    for (src, dst, mode) in &copies {
        cancel.check()?;
        if let Some(parent) = dst.parent() {
            fsx::create_dir_all(parent)?;
        }
        let digest = fsx::copy_new(src, dst)?;
        if let Some(want) = expected.get(src)
            && want.algorithm() == fsx::Algorithm::Blake3
            && digest.checksum != **want
        {
            return Err(Error::Invalid(format!(
                "{}: written, but it does not match the snapshot's manifest (the disk changed it?)",
                dst.display()
            )));
        }
        fsx::set_mode(dst, *mode)?;
        files.push(
            dst.strip_prefix(dir)
                .unwrap_or(dst)
                .to_string_lossy()
                .into_owned(),
        );
        progress.advance(digest.size);
    }
    Ok(Written { files, notes })
}
