//! A restore's plan: everything it will do, decided before the workspace is touched.
//!
//! The layout read backwards ([`super::layout`]) gives the files; the plugins add theirs
//! (restored into private staging, [`super::plugins`]); the database and, when it is not a
//! healthy git worktree, the sync worktree join them. The result is the journal's steps in
//! commit order — the sync worktree first (its files go into it), then `config.json` (with
//! thrum's daemon id), the database and its stale side files, then the rest — with the
//! snapshot file each step's temporary file is copied from. Applying it is
//! [`super::apply`]'s.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::db::{self, DbPlan};
pub(crate) use super::filter::Filter;
use super::layout::{self, Planned};
use super::plugins;
use super::source::Checked;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::fsx;
use crate::gitsync::{self, BranchSource};
use crate::journal::{Step, WorktreeStep};
use crate::locate::Workspace;
use crate::manifest::Manifest;
use crate::progress::{Cancel, Progress};
use crate::snapshot::DB_PATH;

/// Everything a restore will do.
#[derive(Debug)]
pub(crate) struct RestorePlan {
    /// The journal's steps, in commit order.
    pub steps: Vec<Step>,
    /// For each step, the snapshot file (and mode) its temporary file is filled from.
    pub copies: Vec<Option<(PathBuf, u32)>>,
    /// The database, when one is put back (its step is among `steps`).
    pub database: Option<DbPlan>,
    /// Bytes the copies write.
    pub needed: u64,
    /// The snapshot's files put back as workspace files.
    pub restored_sources: BTreeSet<PathBuf>,
    /// A line per plugin that put files back.
    pub plugins: Vec<String>,
    /// Warnings.
    pub notes: Vec<String>,
    /// A partial restore (`--include`, `--exclude`).
    pub partial: bool,
}

/// Plan the restore of a checked source into `ctx`'s workspace. Plugins run here (into
/// private staging below `work`); nothing of the workspace changes.
pub(crate) fn make(
    ctx: &Context,
    source: &Checked,
    work: &Path,
    filter: Option<&Filter>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<RestorePlan> {
    let ws = &ctx.workspace;
    let (src, manifest) = (&source.dir, &source.manifest);
    let layout = layout::files(src, manifest, ws)?;
    let mut notes = source.notes.clone();
    notes.extend(ctx.set_note.clone());
    notes.extend(layout.notes.iter().cloned());
    let mut files = layout.files;
    let mut rebuild_sync = layout.rebuild_sync.clone();
    let (mut run_plugins, mut with_database) = (true, true);
    if let Some(f) = filter {
        let snapshot_files = &source.paths;
        f.check_matches(snapshot_files, &source.label)?;
        let rel = |p: &Path| {
            p.strip_prefix(src)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default()
        };
        let before = files.iter().filter(|p| p.source.is_some()).count();
        // Only the snapshot's files that match are put back; nothing is moved out.
        files.retain(|p| p.source.as_deref().is_some_and(|s| f.wants(&rel(s))));
        run_plugins = snapshot_files
            .iter()
            .any(|p| p.starts_with("plugins/") && f.wants(p));
        with_database = snapshot_files
            .iter()
            .any(|p| (p == DB_PATH || p.starts_with("local/")) && f.wants(p));
        if rebuild_sync.take().is_some() {
            notes.push("the sync worktree is not a healthy git worktree: a partial restore leaves it as it is (a whole restore rebuilds it)".into());
        }
        notes.push(format!(
            "partial restore: {} of the snapshot's {before} workspace files put back{}{}; everything else in the workspace is left as it is (files the snapshot lacks included)",
            files.len(),
            if with_database { ", and messages.db" } else { "" },
            if run_plugins { ", and the plugins' files" } else { "" },
        ));
    }
    let rebuild = match &rebuild_sync {
        Some(reason) => Some(worktree_step(ws, src, manifest, reason, &mut notes)?),
        None => None,
    };
    // A plugin that fails, or whose files could not be committed, is reported by name and
    // the rest of the restore goes on.
    let plugins = if run_plugins {
        plugins::restore(
            ctx, src, work, manifest, &mut files, &mut notes, progress, cancel,
        )?
    } else {
        Vec::new()
    };
    let database = if with_database {
        db::plan(ws, src, manifest, &source.label, &mut notes)?
    } else {
        None
    };
    let (steps, copies) = steps(
        &files,
        ws,
        rebuild,
        database.as_ref().map(|d| d.temp.as_path()),
    );
    let needed: u64 = files
        .iter()
        .filter_map(|p| p.source.as_ref())
        .filter_map(|s| fs::metadata(s).ok())
        .map(|m| m.len())
        .sum();
    if let Some(available) = fsx::available_space(&ws.thrum_dir)
        && needed > available
    {
        return Err(Error::NoSpace {
            path: ws.thrum_dir.clone(),
            needed,
            available,
        });
    }
    Ok(RestorePlan {
        steps,
        copies,
        database,
        needed,
        restored_sources: files.iter().filter_map(|p| p.source.clone()).collect(),
        plugins,
        notes,
        partial: filter.is_some(),
    })
}

/// What the workspace's own files spared a restore ([`spare_live`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Spared {
    /// Files the workspace already holds exactly: neither written nor moved aside.
    pub unchanged: u64,
    /// Files that are the snapshot's with bytes appended since (logs that grew): cut back to
    /// the snapshot's length instead of copied whole.
    pub trimmed: u64,
}

/// Spare the copies of the files the workspace already holds. A regular file of the snapshot
/// file's mode whose first bytes, as many as the snapshot file has, hash to the checksum the
/// snapshot's manifest records (the snapshot file itself was verified against it) is either
/// that file exactly — dropped from `plan`: a restore need neither write it nor move it aside,
/// after a restore it is what the snapshot holds either way — or that file with more appended
/// (a log that grew since), whose step becomes a trim ([`Step::trim`]): most of what a restore
/// over a newer workspace would otherwise copy and flush. The safety archive saves the live
/// files, these among them, like the rest of the live data. Files of a sync worktree that is
/// rebuilt stay (their folder is replaced).
pub(crate) fn spare_live(plan: &mut RestorePlan, source: &Checked) -> Result<Spared> {
    use std::os::unix::fs::PermissionsExt;
    let rebuilt: Vec<PathBuf> = plan
        .steps
        .iter()
        .filter(|s| s.worktree.is_some())
        .map(|s| s.target.clone())
        .collect();
    let entries: std::collections::BTreeMap<&str, &crate::manifest::FileEntry> = source
        .manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    // The snapshot's length of the live file, when the live file begins with the snapshot's.
    let begins_with = |step: &Step, copy: &Option<(PathBuf, u32)>| -> Result<Option<u64>> {
        let Some((from, mode)) = copy else {
            return Ok(None);
        };
        if step.temp.is_none() || rebuilt.iter().any(|r| step.target.starts_with(r)) {
            return Ok(None);
        }
        let Some(entry) = from
            .strip_prefix(&source.dir)
            .ok()
            .and_then(|rel| entries.get(rel.to_string_lossy().as_ref()))
        else {
            return Ok(None);
        };
        let same_shape = fs::symlink_metadata(&step.target).is_ok_and(|m| {
            m.is_file() && m.len() >= entry.size && m.permissions().mode() & 0o7777 == *mode
        });
        if !same_shape {
            return Ok(None);
        }
        let live = fsx::digest_prefix_with(&step.target, entry.size, entry.checksum.algorithm())?;
        Ok((live.size == entry.size && live.checksum == entry.checksum).then_some(entry.size))
    };
    let mut kept_steps = Vec::with_capacity(plan.steps.len());
    let mut kept_copies = Vec::with_capacity(plan.copies.len());
    let mut spared = Spared::default();
    for (step, copy) in std::mem::take(&mut plan.steps)
        .into_iter()
        .zip(std::mem::take(&mut plan.copies))
    {
        if let Some(len) = begins_with(&step, &copy)? {
            let live = fs::metadata(&step.target).map_or(0, |m| m.len());
            plan.needed = plan.needed.saturating_sub(len);
            if live == len {
                spared.unchanged += 1;
                continue;
            }
            // The copy goes (the snapshot's bytes are there); the tail needs room.
            plan.needed += live - len;
            spared.trimmed += 1;
            kept_steps.push(Step::trim(&step.target, len));
        } else {
            kept_steps.push(step);
        }
        kept_copies.push(copy);
    }
    plan.steps = kept_steps;
    plan.copies = kept_copies;
    Ok(spared)
}

/// The journal's steps for `files` (`config.json` first among them), a rebuilt sync
/// worktree and a prepared database, in commit order; and each step's copy.
fn steps(
    files: &[Planned],
    ws: &Workspace,
    rebuild: Option<WorktreeStep>,
    db_temp: Option<&Path>,
) -> (Vec<Step>, Vec<Option<(PathBuf, u32)>>) {
    // Each step with its copy.
    let mut steps: Vec<(Step, Option<(PathBuf, u32)>)> = Vec::new();
    // A rebuilt sync worktree replaces its folder: temporary files of its targets wait
    // beside it, not in it.
    let temp_dir = rebuild
        .is_some()
        .then(|| (ws.sync_dir.clone(), rand::random::<u32>()));
    if let Some(w) = rebuild {
        let mut s = Step::file(&ws.sync_dir, None);
        s.worktree = Some(w);
        steps.push((s, None));
    }
    let push = |steps: &mut Vec<(Step, _)>, p: &Planned| {
        let temp = p.source.as_ref().map(|_| match &temp_dir {
            Some((dir, nonce)) if p.target.starts_with(dir) => {
                dir.with_file_name(format!(".a-sync.restore-tmp-{nonce:08x}-{}", steps.len()))
            }
            _ => fsx::temp_sibling(&p.target, "restore-tmp"),
        });
        let mut step = Step::file(&p.target, temp);
        step.dir_mode = p.dir_mode;
        steps.push((step, p.source.clone().map(|s| (s, p.mode))));
    };
    let config = ws.thrum_dir.join("config.json");
    let first = files.iter().take_while(|p| p.target == config).count();
    for p in &files[..first] {
        push(&mut steps, p);
    }
    if let Some(temp) = db_temp {
        steps.push((Step::file(&ws.db_path, Some(temp.to_path_buf())), None));
        for side in ["-wal", "-shm"] {
            let t = fsx::with_suffix(&ws.db_path, side);
            if t.exists() {
                steps.push((Step::file(&t, None), None));
            }
        }
    }
    for p in &files[first..] {
        push(&mut steps, p);
    }
    steps.into_iter().unzip()
}

/// Decide how the sync worktree is rebuilt: where `a-sync` comes from (the local branch, the
/// remote's, or the snapshot's bundle, checked with git first), and what undoing needs.
fn worktree_step(
    ws: &Workspace,
    src: &Path,
    manifest: &Manifest,
    reason: &str,
    notes: &mut Vec<String>,
) -> Result<WorktreeStep> {
    let tip = manifest.sync.as_ref().map(|s| s.tip.clone());
    let bundle = manifest
        .sync
        .as_ref()
        .and_then(|s| s.bundle.as_ref())
        .map(|b| src.join(b))
        .filter(|b| b.is_file());
    if let Some(b) = &bundle {
        gitsync::verify_bundle(&ws.repo_root, b).map_err(|e| {
            Error::Invalid(format!(
                "the snapshot's history of a-sync ({}) is not a usable git bundle: {e}",
                b.display()
            ))
        })?;
    }
    let source = gitsync::branch_source(&ws.repo_root, tip.as_deref(), bundle.is_some());
    notes.push(format!(
        "the sync worktree {} was rebuilt as a git worktree on a-sync ({reason}; branch from {})",
        ws.sync_dir.display(),
        match &source {
            BranchSource::Local => "the local branch",
            BranchSource::Remote(_) => "origin/a-sync",
            BranchSource::Bundle => "the snapshot's bundle",
            BranchSource::Orphan => "a new empty branch: the snapshot has no history of it",
        }
    ));
    Ok(WorktreeStep {
        repo: ws.repo_root.clone(),
        source,
        bundle,
        tip,
        branch_before: gitsync::branch_tip(&ws.repo_root),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(root: &Path) -> Workspace {
        let thrum_dir = root.join(".thrum");
        Workspace {
            repo_root: root.to_path_buf(),
            repo_name: "repo".into(),
            in_git: true,
            sync_dir: thrum_dir.join("sync"),
            db_path: thrum_dir.join("var/messages.db"),
            thrum_dir,
        }
    }

    fn file(target: PathBuf, source: Option<&str>) -> Planned {
        Planned {
            target,
            source: source.map(PathBuf::from),
            mode: 0o640,
            dir_mode: None,
        }
    }

    #[test]
    fn config_goes_first_then_the_database_and_its_side_files_then_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let ws = workspace(dir.path());
        fs::create_dir_all(ws.db_path.parent().unwrap()).unwrap();
        fs::write(fsx::with_suffix(&ws.db_path, "-wal"), "").unwrap();
        let files = [
            file(
                ws.thrum_dir.join("config.json"),
                Some("snap/config/config.json"),
            ),
            file(ws.sync_dir.join("events.jsonl"), Some("snap/events.jsonl")),
            file(ws.thrum_dir.join("identities/old.json"), None),
        ];
        let db_temp = ws.db_path.with_file_name(".messages.db.restore-tmp-1");
        let (steps, copies) = steps(&files, &ws, None, Some(&db_temp));
        let targets: Vec<&Path> = steps.iter().map(|s| s.target.as_path()).collect();
        assert_eq!(
            targets,
            [
                ws.thrum_dir.join("config.json").as_path(),
                ws.db_path.as_path(),
                fsx::with_suffix(&ws.db_path, "-wal").as_path(),
                ws.sync_dir.join("events.jsonl").as_path(),
                ws.thrum_dir.join("identities/old.json").as_path(),
            ]
        );
        // A copy for each file the snapshot has, none for the database (prepared apart), the
        // stale side file, or a file moved out; a temporary file exactly where a copy goes.
        let copied: Vec<Option<&str>> = copies
            .iter()
            .map(|c| c.as_ref().map(|(p, _)| p.to_str().unwrap()))
            .collect();
        assert_eq!(
            copied,
            [
                Some("snap/config/config.json"),
                None,
                None,
                Some("snap/events.jsonl"),
                None
            ]
        );
        assert_eq!(steps[1].temp.as_deref(), Some(db_temp.as_path()));
        for (s, c) in steps
            .iter()
            .zip(&copies)
            .filter(|(s, _)| s.target != ws.db_path)
        {
            assert_eq!(s.temp.is_some(), c.is_some(), "{}", s.target.display());
        }
        // Temporary files wait beside their targets.
        assert_eq!(
            steps[3].temp.as_ref().unwrap().parent(),
            Some(ws.sync_dir.as_path())
        );
        assert!(steps.iter().all(|s| s.worktree.is_none()));
    }

    #[test]
    fn a_rebuilt_sync_worktree_is_the_first_step_and_its_files_wait_outside_it() {
        let dir = tempfile::tempdir().unwrap();
        let ws = workspace(dir.path());
        let rebuild = WorktreeStep {
            repo: ws.repo_root.clone(),
            source: BranchSource::Local,
            bundle: None,
            tip: None,
            branch_before: None,
        };
        let files = [
            file(ws.thrum_dir.join("config.json"), Some("c")),
            file(ws.sync_dir.join("messages/a.jsonl"), Some("a")),
        ];
        let (steps, copies) = steps(&files, &ws, Some(rebuild), None);
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].target, ws.sync_dir);
        assert!(steps[0].worktree.is_some() && steps[0].temp.is_none() && copies[0].is_none());
        assert_eq!(steps[1].target, ws.thrum_dir.join("config.json"));
        let temp = steps[2].temp.as_ref().unwrap();
        assert!(!temp.starts_with(&ws.sync_dir), "{}", temp.display());
        assert_eq!(temp.parent(), ws.sync_dir.parent());
        // The config's temporary file is its sibling, as any target outside the worktree.
        assert_eq!(
            steps[1].temp.as_ref().unwrap().parent(),
            Some(ws.thrum_dir.as_path())
        );
    }
}
