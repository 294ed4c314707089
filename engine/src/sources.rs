//! Which workspace files a snapshot copies, and where it keeps them: the layout table
//! ([`crate::layout`]) applied to one workspace (its thrum dir, sync worktree and other git
//! worktrees), plus what the table does not know.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::gitsync;
use crate::layout::{self, Root};
use crate::locate::Workspace;

/// One file to copy into a snapshot.
#[derive(Debug, Clone)]
pub struct Source {
    /// The live file.
    pub path: PathBuf,
    /// Its path in the snapshot.
    pub rel: String,
    /// The live file's permission bits.
    pub mode: Option<u32>,
    /// Whether it is one of thrum's secrets.
    pub secret: bool,
}

/// What a snapshot of a workspace copies.
#[derive(Debug, Default)]
pub struct Plan {
    /// Files of the thrum dir and the other worktrees.
    pub thrum: Vec<Source>,
    /// Files of the sync worktree (the wire streams and the legacy log): copied after the
    /// database, so that they are at least as new as it (see [`crate::manifest::CaptureInfo`]).
    pub sync: Vec<Source>,
    /// Ids of the layout rows captured.
    pub covered: Vec<String>,
    /// Other worktrees whose `.thrum/` is captured: name → path.
    pub worktrees: BTreeMap<String, PathBuf>,
    /// Entries named by the layout that are not regular files (`T/…`, `S/…`, with what they are).
    pub skipped: Vec<String>,
}

/// The roots of a workspace the layout's rows are relative to.
#[derive(Debug, Clone)]
pub struct Roots {
    /// T.
    pub thrum: PathBuf,
    /// S, when it exists.
    pub sync: Option<PathBuf>,
    /// W: name → `<worktree>/.thrum` for every other git worktree that has one.
    pub worktrees: BTreeMap<String, PathBuf>,
}

impl Roots {
    /// Find the roots of `ws`.
    pub fn of(ws: &Workspace) -> Self {
        Self {
            thrum: ws.thrum_dir.clone(),
            sync: ws.sync_dir.is_dir().then(|| ws.sync_dir.clone()),
            worktrees: other_worktrees(ws),
        }
    }
}

/// The `.thrum/` folders of the repository's other git worktrees (not the sync worktree, not
/// the one that is the thrum dir), by a name unique among them: the worktree folder's name.
pub fn other_worktrees(ws: &Workspace) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    if !ws.in_git {
        return out;
    }
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let thrum = canon(&ws.thrum_dir);
    let sync = canon(&ws.sync_dir);
    for wt in gitsync::worktrees(&ws.repo_root) {
        let dot = wt.join(".thrum");
        if canon(&wt) == sync || !dot.is_dir() || canon(&dot) == thrum {
            continue;
        }
        let base = wt
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "worktree".into());
        let mut name = base.clone();
        let mut n = 2;
        while out.contains_key(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        out.insert(name, dot);
    }
    out
}

/// The snapshot folder of another worktree's `.thrum/`.
pub fn worktree_prefix(name: &str) -> String {
    format!("worktrees/{name}/")
}

/// Plan the copy of every captured row of the layout below `roots`.
pub fn plan(roots: &Roots, exclude_secrets: bool) -> Result<Plan> {
    let mut plan = Plan::default();
    let add = |root: Root,
               dir: &Path,
               prefix: &str,
               label: &str,
               into_sync: bool,
               plan: &mut Plan|
     -> Result<()> {
        for item in layout::captured(root) {
            if item.secret && exclude_secrets {
                continue;
            }
            let found = layout::list(item, dir)?;
            for (rel, what) in found.skipped {
                plan.skipped.push(format!("{label}{rel} ({what})"));
            }
            for rel in found.files {
                let path = dir.join(&rel);
                let source = Source {
                    mode: crate::fsx::mode_of(&path),
                    rel: format!("{prefix}{}", item.to_snapshot(&rel)),
                    path,
                    secret: item.secret,
                };
                if into_sync {
                    plan.sync.push(source);
                } else {
                    plan.thrum.push(source);
                }
            }
            if root != Root::Worktree {
                plan.covered.push(item.id());
            }
        }
        Ok(())
    };
    add(Root::Thrum, &roots.thrum, "", "T/", false, &mut plan)?;
    if let Some(sync) = &roots.sync {
        add(Root::Sync, sync, "", "S/", true, &mut plan)?;
    }
    for (name, dir) in &roots.worktrees {
        let prefix = worktree_prefix(name);
        add(
            Root::Worktree,
            dir,
            &prefix,
            &format!("W/{name}/"),
            false,
            &mut plan,
        )?;
        plan.worktrees.insert(name.clone(), dir.clone());
    }
    Ok(plan)
}

/// Files below the roots that the layout does not name (`T/…`, `S/…`, `W/<name>/…`), passing
/// over the folders in `skip` (the backup directory, when it lies in the thrum dir).
pub fn unknown(roots: &Roots, skip: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for rel in layout::unknown(Root::Thrum, &roots.thrum, skip)? {
        out.push(format!("T/{rel}"));
    }
    if let Some(sync) = &roots.sync {
        for rel in layout::unknown(Root::Sync, sync, skip)? {
            out.push(format!("S/{rel}"));
        }
    }
    for (name, dir) in &roots.worktrees {
        for rel in layout::unknown(Root::Worktree, dir, skip)? {
            out.push(format!("W/{name}/{rel}"));
        }
    }
    Ok(out)
}
