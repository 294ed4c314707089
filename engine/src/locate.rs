//! Where thrum keeps a workspace's data, found exactly the way thrum finds it.
//!
//! - repo root: the git top level of `--repo` (or the directory itself outside git);
//! - thrum dir: `<repo>/.thrum`, or the absolute path in `.thrum/redirect`;
//! - sync worktree: `<git-common-dir>/thrum-sync/a-sync` (so nested worktrees share it),
//!   falling back to `<repo>/.git/thrum-sync/a-sync`;
//! - in local-only mode the message log lives in the thrum dir itself;
//! - the database: `<thrum dir>/var/messages.db`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::error::LocateError;

/// The paths of one thrum workspace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Workspace {
    /// The git top level (or the given directory outside git).
    pub repo_root: PathBuf,
    /// Base name of the repo root; `unknown` outside git.
    pub repo_name: String,
    /// Whether the repo root is inside a git repository.
    pub in_git: bool,
    /// The thrum directory (after following `.thrum/redirect`).
    pub thrum_dir: PathBuf,
    /// The sync worktree path (it may not exist: local-only mode or not yet synced).
    pub sync_dir: PathBuf,
    /// `messages.db`.
    pub db_path: PathBuf,
}

impl Workspace {
    /// Locate the workspace that contains `dir`.
    pub fn locate(dir: &Path) -> Result<Self, LocateError> {
        let dir = fs::canonicalize(dir).map_err(|_| LocateError::NoRepo(dir.to_path_buf()))?;
        if !dir.is_dir() {
            return Err(LocateError::NoRepo(dir));
        }
        let toplevel = toplevel(&dir)?;
        let (repo_root, in_git) = match toplevel {
            Some(top) => (PathBuf::from(top), true),
            None => (dir.clone(), false),
        };
        let repo_name = if in_git {
            repo_root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "unknown".to_owned())
        } else {
            "unknown".to_owned()
        };
        let thrum_dir = resolve_thrum_dir(&repo_root)?;
        let sync_dir = match git(&repo_root, &["rev-parse", "--git-common-dir"]) {
            Some(common) => {
                let common = PathBuf::from(common);
                let common = if common.is_absolute() {
                    common
                } else {
                    repo_root.join(common)
                };
                common.join("thrum-sync").join("a-sync")
            }
            None => repo_root.join(".git").join("thrum-sync").join("a-sync"),
        };
        if sync_dir.exists() && !sync_dir.is_dir() {
            return Err(LocateError::SyncNotDir(sync_dir));
        }
        let db_path = thrum_dir.join("var").join("messages.db");
        Ok(Self {
            repo_root,
            repo_name,
            in_git,
            thrum_dir,
            sync_dir,
            db_path,
        })
    }

    /// Fail unless the thrum directory exists (needed to back up).
    pub fn require_thrum_dir(&self) -> Result<(), LocateError> {
        if self.thrum_dir.is_dir() {
            Ok(())
        } else {
            Err(LocateError::NoThrumDir(self.thrum_dir.clone()))
        }
    }

    /// Where the JSONL message log lives: the thrum dir in local-only mode, else the sync
    /// worktree. `None` when there is no log to back up (no sync worktree yet).
    pub fn log_dir(&self, local_only: bool) -> Option<PathBuf> {
        if local_only {
            Some(self.thrum_dir.clone())
        } else if self.sync_dir.is_dir() {
            Some(self.sync_dir.clone())
        } else {
            None
        }
    }
}

fn resolve_thrum_dir(repo_root: &Path) -> Result<PathBuf, LocateError> {
    let local = repo_root.join(".thrum");
    let redirect = local.join("redirect");
    let text = match fs::read_to_string(&redirect) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(local),
        Err(e) => {
            return Err(LocateError::Redirect {
                path: redirect,
                reason: format!("cannot read: {e}"),
            });
        }
    };
    let target = text.trim();
    let fail = |reason: String| LocateError::Redirect {
        path: redirect.clone(),
        reason,
    };
    if target.is_empty() {
        return Err(fail(
            "redirect file is empty; it must hold the absolute path of the main .thrum directory"
                .into(),
        ));
    }
    let target = PathBuf::from(target);
    if !target.is_absolute() {
        return Err(fail(format!(
            "redirect target {} is relative; it must be an absolute path",
            target.display()
        )));
    }
    if !target.is_dir() {
        return Err(fail(format!(
            "redirect target {} does not exist or is not a directory",
            target.display()
        )));
    }
    Ok(target)
}

/// The git top level of `dir` (`None` outside git, or without git). git refuses a repository
/// another user owns ("dubious ownership"): that is an error that says so, rather than a
/// folder taken for one outside git and backed up as another workspace.
fn toplevel(dir: &Path) -> Result<Option<String>, LocateError> {
    let Ok(out) = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
    else {
        return Ok(None);
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && err.contains("dubious ownership") {
        let reason = err
            .lines()
            .find(|l| l.contains("dubious ownership"))
            .unwrap_or("detected dubious ownership")
            .trim_start_matches("fatal: ")
            .to_owned();
        return Err(LocateError::GitRefused {
            path: dir.to_path_buf(),
            reason,
        });
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((out.status.success() && !text.is_empty()).then_some(text))
}

/// Run a git query; `None` when git is missing or the directory is not in a repository.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_git_the_name_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(".thrum")).unwrap();
        let ws = Workspace::locate(dir.path()).unwrap();
        assert_eq!(ws.repo_name, "unknown");
        assert!(!ws.in_git);
        assert!(ws.db_path.ends_with(".thrum/var/messages.db"));
        assert_eq!(ws.log_dir(false), None);
        assert_eq!(ws.log_dir(true), Some(ws.thrum_dir.clone()));
    }

    #[test]
    fn redirect_must_be_absolute_and_exist() {
        let dir = tempfile::tempdir().unwrap();
        let thrum = dir.path().join(".thrum");
        fs::create_dir(&thrum).unwrap();
        for (content, needle) in [
            ("", "empty"),
            ("relative/path", "relative"),
            ("/nonexistent/thrum-target", "does not exist"),
        ] {
            fs::write(thrum.join("redirect"), content).unwrap();
            let err = Workspace::locate(dir.path()).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(err.contains("redirect"), "{err}");
        }
        let target = tempfile::tempdir().unwrap();
        fs::write(
            thrum.join("redirect"),
            format!("{}\n", target.path().display()),
        )
        .unwrap();
        let ws = Workspace::locate(dir.path()).unwrap();
        assert_eq!(ws.thrum_dir, target.path());
    }
}
