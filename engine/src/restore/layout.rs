//! What a restore puts where: the layout table ([`crate::layout`]) read backwards.
//!
//! Every layout row the snapshot covers is made exactly equal to the snapshot (its live files
//! that the snapshot does not have are moved out, into the pre-restore archive); every row it
//! does not cover is left alone. Snapshots written before the table cover thrum's own backup
//! layout ([`crate::layout::LEGACY_COVERED`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fsx;
use crate::layout::{self, Item, Root};
use crate::locate::Workspace;
use crate::manifest::{FileEntry, Manifest};
use crate::sources;

/// One file the restore writes or moves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    /// The live path.
    pub target: PathBuf,
    /// The snapshot's file; `None` moves the target out.
    pub source: Option<PathBuf>,
    /// The mode to give it.
    pub mode: u32,
    /// The mode of folders created for it (thrum's secret folders are 0700).
    pub dir_mode: Option<u32>,
}

/// The files of a restore, and what it must do first.
#[derive(Debug, Default)]
pub(crate) struct LayoutPlan {
    /// Files, in the order they are committed: `config.json` first.
    pub files: Vec<Planned>,
    /// Why the sync worktree must be rebuilt before its files go in, when it must.
    pub rebuild_sync: Option<String>,
    /// Warnings.
    pub notes: Vec<String>,
}

/// Snapshot paths that are not workspace files: restored some other way or not at all.
const NOT_LAYOUT: &[&str] = &["manifest.json", "db/", "local/", "plugins/", "git/"];

/// Plan the restore of the snapshot in `src` (described by `manifest`) into `ws`.
pub(crate) fn files(src: &Path, manifest: &Manifest, ws: &Workspace) -> Result<LayoutPlan> {
    let mut out = LayoutPlan::default();
    let snapshot_files = fsx::walk_files(src)?;
    let entries: BTreeMap<&str, &FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let covered = covered(manifest, &snapshot_files);
    // This engine's first versions took the log from the thrum dir in local-only mode.
    let log_in_thrum = manifest.layout.is_none() && manifest.local_only;
    let mut claimed: BTreeSet<String> = BTreeSet::new();
    let mut restores_sync = false;
    for item in layout::ITEMS.iter().filter(|i| i.captured()) {
        if item.root == Root::Worktree || !covered.contains(&item.id()) {
            continue;
        }
        let dir = match item.root {
            Root::Sync if log_in_thrum => ws.thrum_dir.clone(),
            Root::Sync => {
                restores_sync = true;
                ws.sync_dir.clone()
            }
            _ => ws.thrum_dir.clone(),
        };
        plan_item(
            item,
            "",
            &dir,
            src,
            &snapshot_files,
            &entries,
            &mut claimed,
            &mut out,
        )?;
    }
    let live_worktrees = sources::other_worktrees(ws);
    for (name, was_at) in &manifest.worktrees {
        let prefix = sources::worktree_prefix(name);
        match live_worktrees.get(name) {
            Some(dir) => {
                for item in layout::captured(Root::Worktree) {
                    plan_item(
                        item,
                        &prefix,
                        dir,
                        src,
                        &snapshot_files,
                        &entries,
                        &mut claimed,
                        &mut out,
                    )?;
                }
            }
            None => {
                claimed.extend(
                    snapshot_files
                        .iter()
                        .filter(|f| f.starts_with(&prefix))
                        .cloned(),
                );
                out.notes.push(format!(
                    "the worktree {name} (at {was_at} when backed up) has no .thrum/ here: its identities and context stay in the backup ({prefix}); create the worktree and restore again to put them back"
                ));
            }
        }
    }
    let ignored: Vec<&String> = snapshot_files
        .iter()
        .filter(|f| !claimed.contains(*f) && !NOT_LAYOUT.iter().any(|p| f.starts_with(p)))
        .collect();
    if !ignored.is_empty() {
        let shown: Vec<&str> = ignored.iter().take(10).map(|s| s.as_str()).collect();
        out.notes.push(format!(
            "{} file(s) of the snapshot are not paths this version restores, left in the backup: {}",
            ignored.len(),
            shown.join(", ")
        ));
    }
    if restores_sync {
        if ws.in_git {
            out.rebuild_sync = crate::gitsync::unhealthy(&ws.repo_root, &ws.sync_dir);
        } else if !ws.sync_dir.is_dir() {
            out.notes.push(format!(
                "{} is outside git: the sync folder {} was created as a plain folder",
                ws.repo_root.display(),
                ws.sync_dir.display()
            ));
        }
    }
    // config.json (with thrum's daemon_id) goes in first.
    let config = ws.thrum_dir.join("config.json");
    out.files.sort_by_key(|p| p.target != config);
    Ok(out)
}

/// Ids of the layout rows the snapshot covers.
fn covered(manifest: &Manifest, files: &[String]) -> BTreeSet<String> {
    if let Some(layout) = &manifest.layout {
        return layout.covered.iter().cloned().collect();
    }
    // Before the table: the log when the snapshot has one, config when it has config/.
    let has_log = files.iter().any(|f| {
        f == "events.jsonl" || f.starts_with("messages/") || f.starts_with("messages-v2/")
    });
    let has_config = files.iter().any(|f| f.starts_with("config/"));
    layout::LEGACY_COVERED
        .iter()
        .filter(|id| {
            if id.starts_with("S/") {
                has_log
            } else {
                has_config
            }
        })
        .map(|id| (*id).to_owned())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn plan_item(
    item: &Item,
    prefix: &str,
    dir: &Path,
    src: &Path,
    snapshot_files: &[String],
    entries: &BTreeMap<&str, &FileEntry>,
    claimed: &mut BTreeSet<String>,
    out: &mut LayoutPlan,
) -> Result<()> {
    let dir_mode = item.secret.then_some(0o700);
    let mut wanted = BTreeSet::new();
    for f in snapshot_files {
        let Some(rel) = f
            .strip_prefix(prefix)
            .and_then(|inner| item.from_snapshot(inner))
        else {
            continue;
        };
        let mode = entries
            .get(f.as_str())
            .and_then(|e| e.mode)
            .unwrap_or(item.mode);
        let mode = if item.secret { mode & 0o700 } else { mode };
        out.files.push(Planned {
            target: dir.join(&rel),
            source: Some(src.join(f)),
            mode,
            dir_mode,
        });
        claimed.insert(f.clone());
        wanted.insert(rel);
    }
    for rel in layout::list(item, dir)?.files {
        if !wanted.contains(&rel) {
            out.files.push(Planned {
                target: dir.join(&rel),
                source: None,
                mode: item.mode,
                dir_mode: None,
            });
        }
    }
    Ok(())
}
