//! thrum's `a-sync` branch and its sync worktree, through the real `git`.
//!
//! Capture keeps the branch's history as a git bundle (git's own format). Restore rebuilds the
//! sync worktree exactly the way thrum makes it (`internal/sync/branch.go` at v0.10.6: `git
//! worktree add -f --no-checkout`, non-cone sparse checkout of the wire-stream paths, checkout),
//! because thrum's daemon removes a sync directory that fails its health check at start, and
//! a plain directory of restored files would be wiped with it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// thrum's sync branch.
pub const BRANCH: &str = "a-sync";

/// The sparse-checkout patterns thrum v0.10.6 sets in the sync worktree.
pub const SPARSE: &[&str] = &[
    "/events.jsonl",
    "/messages/",
    "/messages.jsonl",
    "/state/",
    "/messages-v2/",
    "/receipts/",
];

/// Run git in `dir`; its trimmed stdout, or an error naming the command and git's message.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run git (is it installed?): {e}")))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit of a ref, if it exists.
pub fn rev(repo: &Path, name: &str) -> Option<String> {
    git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{name}^{{commit}}"),
        ],
    )
    .ok()
}

/// The commit of `refs/heads/a-sync`, if the branch exists.
pub fn branch_tip(repo: &Path) -> Option<String> {
    rev(repo, &format!("refs/heads/{BRANCH}"))
}

/// Whether `ancestor` is an ancestor of (or equal to) `of`.
pub fn is_ancestor(repo: &Path, ancestor: &str, of: &str) -> bool {
    git(repo, &["merge-base", "--is-ancestor", ancestor, of]).is_ok()
}

/// Write the history of `a-sync` to the bundle `out`; returns the commit it ends at, or
/// `None` when there is no branch.
pub fn bundle(repo: &Path, out: &Path) -> Result<Option<String>> {
    let Some(tip) = branch_tip(repo) else {
        return Ok(None);
    };
    if let Some(parent) = out.parent() {
        crate::fsx::create_dir_all(parent)?;
    }
    let target = out.to_string_lossy();
    git(
        repo,
        &[
            "bundle",
            "create",
            "--quiet",
            &target,
            &format!("refs/heads/{BRANCH}"),
        ],
    )?;
    Ok(Some(tip))
}

/// Check a bundle with git (`git bundle verify`: complete, readable, prerequisites present).
pub fn verify_bundle(repo: &Path, bundle: &Path) -> Result<()> {
    git(
        repo,
        &["bundle", "verify", "--quiet", &bundle.to_string_lossy()],
    )
    .map(|_| ())
}

/// Every working tree of the repository (`git worktree list`), main first.
pub fn worktrees(repo: &Path) -> Vec<PathBuf> {
    let Ok(list) = git(repo, &["worktree", "list", "--porcelain"]) else {
        return Vec::new();
    };
    list.lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .map(PathBuf::from)
        .collect()
}

fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

/// The git dir of a linked worktree, from its `.git` file (`gitdir: <path>`).
fn worktree_git_dir(sync_dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(sync_dir.join(".git")).ok()?;
    let dir = PathBuf::from(text.trim().strip_prefix("gitdir: ")?);
    Some(if dir.is_absolute() {
        dir
    } else {
        sync_dir.join(dir)
    })
}

/// Why thrum's daemon would remove `sync_dir` at its next start, or `None` when it is a
/// healthy sync worktree. The conditions are those of thrum v0.10.6's `isHealthyWorktree`:
/// a `.git` file (not a folder), listed by `git worktree list`, HEAD on `a-sync`, and sparse
/// patterns that include `events.jsonl`, `messages`, `state/`, `messages-v2/` and `receipts/`.
pub fn unhealthy(repo: &Path, sync_dir: &Path) -> Option<String> {
    match std::fs::metadata(sync_dir.join(".git")) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Some("its .git is a folder, not a worktree's .git file".into()),
        Err(_) => return Some("it has no .git file: it is not a git worktree".into()),
    }
    if !worktrees(repo).iter().any(|w| same_path(w, sync_dir)) {
        return Some("`git worktree list` does not list it".into());
    }
    match git(sync_dir, &["rev-parse", "--abbrev-ref", "HEAD"]) {
        Ok(head) if head == BRANCH => {}
        Ok(head) => return Some(format!("its HEAD is {head}, not {BRANCH}")),
        Err(e) => return Some(format!("its HEAD cannot be read: {e}")),
    }
    let Some(git_dir) = worktree_git_dir(sync_dir) else {
        return Some("its .git file does not name a git dir".into());
    };
    let sparse =
        std::fs::read_to_string(git_dir.join("info").join("sparse-checkout")).unwrap_or_default();
    for needed in [
        "events.jsonl",
        "messages",
        "state/",
        "messages-v2/",
        "receipts/",
    ] {
        if !sparse.contains(needed) {
            return Some(format!(
                "its sparse-checkout patterns do not include {needed}"
            ));
        }
    }
    None
}

/// Where `refs/heads/a-sync` should come from when the sync worktree is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BranchSource {
    /// The local branch already holds the snapshot's commit (or there is no commit to hold).
    Local,
    /// `refs/remotes/origin/a-sync` holds it: point the branch there, as thrum does on a clone.
    Remote(String),
    /// Only the snapshot's bundle holds it.
    Bundle,
    /// No branch anywhere and no bundle: an empty orphan commit, as `thrum init` makes.
    Orphan,
}

/// Decide where the branch comes from for a snapshot whose branch was at `tip`.
pub fn branch_source(repo: &Path, tip: Option<&str>, have_bundle: bool) -> BranchSource {
    let local = branch_tip(repo);
    let remote = rev(repo, &format!("refs/remotes/origin/{BRANCH}"));
    let holds = |c: &str| tip.is_none_or(|t| is_ancestor(repo, t, c));
    match (&local, &remote) {
        (Some(l), _) if holds(l) => BranchSource::Local,
        (None, Some(r)) if holds(r) => BranchSource::Remote(r.clone()),
        _ if have_bundle && tip.is_some() => BranchSource::Bundle,
        (Some(_), _) => BranchSource::Local,
        (None, Some(r)) => BranchSource::Remote(r.clone()),
        (None, None) => BranchSource::Orphan,
    }
}

/// Make `refs/heads/a-sync` hold the snapshot's history. Returns the branch's previous
/// commit (`None`: it did not exist), for [`reset_branch`] to undo.
///
/// A local branch that already has the snapshot's commit is left alone. A local branch that
/// does not is moved forward to it when that loses nothing (the snapshot's commit descends
/// from it); otherwise it is left where it is and the snapshot's history is kept beside it as
/// `refs/thrum-backup/restored-a-sync`, named in the returned note.
pub fn ensure_branch(
    repo: &Path,
    source: &BranchSource,
    bundle: Option<&Path>,
    tip: Option<&str>,
) -> Result<(Option<String>, Option<String>)> {
    let before = branch_tip(repo);
    let branch_ref = format!("refs/heads/{BRANCH}");
    let fetch_bundle = |dst: &str| -> Result<()> {
        let bundle = bundle.ok_or_else(|| Error::Invalid("no bundle of a-sync".into()))?;
        git(
            repo,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                &bundle.to_string_lossy(),
                &format!("+{branch_ref}:{dst}"),
            ],
        )
        .map(|_| ())
    };
    let mut note = None;
    match source {
        BranchSource::Local => {}
        BranchSource::Remote(commit) => {
            git(repo, &["update-ref", &branch_ref, commit])?;
            // thrum tracks origin/a-sync; best effort, as thrum does.
            let _ = git(
                repo,
                &[
                    "branch",
                    &format!("--set-upstream-to=origin/{BRANCH}"),
                    BRANCH,
                ],
            );
        }
        BranchSource::Bundle => match &before {
            None => fetch_bundle(&branch_ref)?,
            Some(local) => {
                let keep = "refs/thrum-backup/restored-a-sync";
                fetch_bundle(keep)?;
                let t = tip.unwrap_or_default();
                if is_ancestor(repo, local, t) {
                    git(repo, &["update-ref", &branch_ref, t, local])?;
                    let _ = git(repo, &["update-ref", "-d", keep]);
                } else {
                    note = Some(format!(
                        "the local {BRANCH} branch has commits the snapshot's does not: it was left as it is, and the snapshot's history was kept as {keep}"
                    ));
                }
            }
        },
        BranchSource::Orphan => {
            // The empty tree, written (and named) in the repository's own hash function.
            let empty = git(repo, &["hash-object", "-t", "tree", "-w", "/dev/null"])?;
            let commit = git(
                repo,
                &["commit-tree", &empty, "-m", "Initialize Thrum sync"],
            )?;
            git(repo, &["update-ref", &branch_ref, &commit])?;
        }
    }
    Ok((before, note))
}

/// Put `refs/heads/a-sync` back to `before` (delete it when it did not exist).
pub fn reset_branch(repo: &Path, before: Option<&str>) {
    let branch_ref = format!("refs/heads/{BRANCH}");
    let _ = match before {
        Some(commit) => git(repo, &["update-ref", &branch_ref, commit]),
        None => git(repo, &["update-ref", "-d", &branch_ref]),
    };
}

/// Create the sync worktree at `sync_dir` (which must not exist) on `a-sync`, as thrum does.
pub fn add_worktree(repo: &Path, sync_dir: &Path) -> Result<()> {
    let _ = git(repo, &["worktree", "prune"]);
    if let Some(parent) = sync_dir.parent() {
        crate::fsx::create_dir_all_mode(parent, 0o750)?;
    }
    let dir = sync_dir.to_string_lossy();
    git(
        repo,
        &["worktree", "add", "-f", "--no-checkout", &dir, BRANCH],
    )?;
    let configured = git(sync_dir, &["sparse-checkout", "init", "--no-cone"]).and_then(|_| {
        let mut args = vec!["sparse-checkout", "set"];
        args.extend_from_slice(SPARSE);
        git(sync_dir, &args)
    });
    let checked_out = configured.and_then(|_| git(sync_dir, &["checkout", "--quiet", BRANCH]));
    if let Err(e) = checked_out {
        remove_worktree(repo, sync_dir);
        return Err(e);
    }
    // git 2.38+ may switch sparse checkout on in the main repository as a side effect.
    let _ = git(repo, &["config", "core.sparseCheckout", "false"]);
    Ok(())
}

/// Remove the worktree at `sync_dir` and git's record of it (best effort, like thrum).
pub fn remove_worktree(repo: &Path, sync_dir: &Path) {
    let dir = sync_dir.to_string_lossy();
    let _ = git(repo, &["worktree", "remove", "--force", &dir]);
    let _ = crate::fsx::remove_any(sync_dir);
    let _ = git(repo, &["worktree", "prune"]);
}
