//! Which workspace a backup belongs to.
//!
//! A workspace's id is what a fresh clone computes the same way: the repository's first
//! commit; outside git, thrum's `identity.daemon_id`, else the folder's path. (thrum's
//! `identity.repo_name` is not part of it: it lives in config.json, which a fresh machine does
//! not have until the restore.) thrum's `identity.daemon_id` tells two
//! clones of one repository apart; a workspace that has none yet (a fresh clone before its
//! restore) matches on the id alone. Every manifest records both, so that `create` never
//! archives, and `restore` never restores, another workspace's snapshot by accident, and a
//! renamed folder finds its backups.

use std::path::{Path, PathBuf};

use crate::config::ThrumConfig;
use crate::locate::Workspace;

pub use crate::manifest::WorkspaceId;

fn daemon_id(config: &ThrumConfig) -> Option<String> {
    config
        .document()
        .get("identity")
        .and_then(|i| i.get("daemon_id"))
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

/// The identity of `ws`.
pub fn of(ws: &Workspace, config: &ThrumConfig) -> WorkspaceId {
    let daemon = daemon_id(config);
    let first_commit = ws
        .in_git
        .then(|| crate::gitsync::git(&ws.repo_root, &["rev-list", "--max-parents=0", "HEAD"]).ok())
        .flatten()
        .and_then(|roots| roots.lines().map(str::to_owned).min());
    let id = match (first_commit, &daemon) {
        (Some(c), _) => format!("git:{c}"),
        (None, Some(d)) => format!("daemon:{d}"),
        (None, None) => {
            let path = std::fs::canonicalize(&ws.repo_root).unwrap_or(ws.repo_root.clone());
            format!(
                "path:{}",
                &blake3::hash(path.to_string_lossy().as_bytes()).to_hex()[..16]
            )
        }
    };
    WorkspaceId {
        id,
        daemon_id: daemon,
    }
}

/// The identity recorded by the snapshot a backup set holds now (its `current/`, else its
/// newest archive), if it recorded one.
fn recorded(set: &Path) -> Option<WorkspaceId> {
    if let Ok(Some(m)) = crate::manifest::read_dir(&set.join("current")) {
        return m.workspace;
    }
    let dir = crate::backup_dir::BackupDir::new(set.to_path_buf());
    let newest = dir.newest_snapshot_archive(chrono::Utc::now())?;
    crate::archive::read_manifest(&newest).ok()??.workspace
}

/// Which backup set under `base` belongs to the workspace `me` whose folder is named `name`:
/// `<base>/<name>` as thrum names it, unless another workspace's backups are there (then
/// `<name>-<tag>`); a set elsewhere under `base` that holds this workspace's snapshots is
/// found when `<base>/<name>` has none (a renamed folder). Returns the set and, when it is
/// not `<base>/<name>`, why.
pub fn choose_set(base: &Path, name: &str, me: &WorkspaceId) -> (PathBuf, Option<String>) {
    let plain = base.join(name);
    let plain_owner = plain.is_dir().then(|| recorded(&plain)).flatten();
    match &plain_owner {
        Some(owner) if me.same_as(owner) => return (plain, None),
        // Snapshots that recorded no identity (written before it was recorded): ours.
        None if plain.join("current").is_dir() => return (plain, None),
        _ => {}
    }
    // This workspace's backups under another name (a renamed folder, or a set of its own).
    if let Ok(entries) = std::fs::read_dir(base) {
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p != &plain && p.is_dir())
            .filter(|p| recorded(p).is_some_and(|r| me.same_as(&r)))
            .collect();
        found.sort();
        if let Some(set) = found.into_iter().next() {
            let note = format!(
                "this workspace's backups are in {} (the folder was renamed, or another workspace named {name} backs up to {})",
                set.display(),
                plain.display()
            );
            return (set, Some(note));
        }
    }
    match plain_owner {
        Some(owner) => {
            let own = base.join(format!("{name}-{}", me.tag()));
            let note = format!(
                "{} holds the backups of another workspace ({owner}); this one ({me}) backs up to {}",
                plain.display(),
                own.display()
            );
            (own, Some(note))
        }
        None => (plain, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(id: &str, daemon: Option<&str>) -> WorkspaceId {
        WorkspaceId {
            id: id.into(),
            daemon_id: daemon.map(Into::into),
        }
    }

    #[test]
    fn clones_are_told_apart_by_their_daemon_and_a_fresh_clone_matches_its_own() {
        let a = id("git:abc", Some("d1"));
        assert!(a.same_as(&id("git:abc", Some("d1"))));
        assert!(!a.same_as(&id("git:abc", Some("d2"))));
        assert!(!a.same_as(&id("git:xyz", Some("d1"))));
        // A fresh clone has no daemon id until its config is restored.
        assert!(id("git:abc", None).same_as(&a));
        assert_ne!(a.tag(), id("git:abc", Some("d2")).tag());
    }
}
