//! The restore transaction: a list of steps written to a journal before the first change,
//! committed in order, undone in reverse on any failure, and finished or undone by the next
//! command after a kill ([`recover`], which [`crate::recovery`] runs).
//!
//! A file step moves its target aside and renames its prepared replacement in; a trim step cuts
//! a file that only grew since the snapshot back to the snapshot's length, its tail kept (and
//! flushed) beside it until the restore ends, so that undoing writes the tail back. The worktree
//! step moves an unhealthy sync directory aside, makes `refs/heads/a-sync` hold the
//! snapshot's history and creates the sync worktree the way thrum does; undoing it removes the
//! new worktree, puts the old directory back and puts the branch back where it was.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::gitsync::{self, BranchSource};

/// The journal of a restore in progress, in the backup dir's `.tmp/`.
pub const JOURNAL: &str = "restore-journal.json";

/// One change to the workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Step {
    pub target: PathBuf,
    /// The prepared replacement; `None` removes the target.
    pub temp: Option<PathBuf>,
    /// Where the target's previous content is kept until commit.
    pub aside: PathBuf,
    pub existed: bool,
    /// The mode of folders the step creates (thrum keeps `var/tsnet/` 0700).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir_mode: Option<u32>,
    /// Set for the step that rebuilds the sync worktree at `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktree: Option<WorktreeStep>,
    /// Set for a step that cuts `target` back to its first bytes instead of replacing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trim: Option<Trim>,
}

/// A file that is the snapshot's file with bytes appended (a log that grew since): the restore
/// cuts it back to the snapshot's length rather than writing a copy and renaming it in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Trim {
    /// The snapshot's length: the target's first `len` bytes are the snapshot's file.
    pub len: u64,
    /// The target's bytes beyond `len`, copied (and flushed) before the commit cuts them off,
    /// and written back at `len` to undo it.
    pub tail: PathBuf,
}

/// What rebuilding the sync worktree needs, and what undoing it needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorktreeStep {
    /// The repository.
    pub repo: PathBuf,
    /// Where `a-sync` comes from.
    pub source: BranchSource,
    /// The snapshot's bundle of the branch (in private space until the restore ends).
    pub bundle: Option<PathBuf>,
    /// The snapshot's commit of the branch.
    pub tip: Option<String>,
    /// The branch's commit before the restore (`None`: there was no branch).
    pub branch_before: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub committed: bool,
    pub steps: Vec<Step>,
}

impl Step {
    /// A step that replaces (or, without `temp`, removes) `target`.
    pub fn file(target: &Path, temp: Option<PathBuf>) -> Self {
        Self {
            target: target.to_path_buf(),
            temp,
            aside: fsx::temp_sibling(target, "restore-old"),
            existed: fs::symlink_metadata(target).is_ok(),
            dir_mode: None,
            worktree: None,
            trim: None,
        }
    }

    /// A step that cuts `target`, whose first `len` bytes are the snapshot's file, back to them.
    pub fn trim(target: &Path, len: u64) -> Self {
        Self {
            trim: Some(Trim {
                len,
                tail: fsx::temp_sibling(target, "restore-tail"),
            }),
            ..Self::file(target, None)
        }
    }

    /// Whether the step leaves a file at `target` (replaced, created or cut back), rather than
    /// moving it out.
    pub fn puts_back(&self) -> bool {
        self.temp.is_some() || self.trim.is_some()
    }
}

pub(crate) fn write(path: &Path, j: &Journal) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(j).map_err(|e| Error::Invalid(e.to_string()))?;
    fsx::write_atomic(path, &bytes)
}

/// Where [`commit`] fails on purpose: the test suite's stand-in for a full disk or a vanished
/// folder at step N. Only a debug build reads it from the environment.
pub(crate) fn fault_at() -> Option<usize> {
    if cfg!(debug_assertions) {
        std::env::var("THRUM_BACKUP_FAULT_RESTORE_AFTER")
            .ok()
            .and_then(|v| v.parse().ok())
    } else {
        None
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Apply every step in order; returns what is worth telling the user.
pub(crate) fn commit(steps: &[Step], fault_at: Option<usize>) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut trimmed = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if fault_at == Some(i) {
            return Err(Error::Io {
                action: "rename into place",
                path: s.target.clone(),
                source: std::io::Error::other("fault injected by the test suite"),
            });
        }
        if let Some(w) = &s.worktree {
            let (_, note) =
                gitsync::ensure_branch(&w.repo, &w.source, w.bundle.as_deref(), w.tip.as_deref())?;
            notes.extend(note);
            if exists(&s.target) {
                fs::rename(&s.target, &s.aside).at("move aside", &s.target)?;
            }
            gitsync::add_worktree(&w.repo, &s.target)?;
            continue;
        }
        if let Some(t) = &s.trim {
            // Its tail was flushed before the commit began (see `apply::fill_temps`).
            fs::OpenOptions::new()
                .write(true)
                .open(&s.target)
                .and_then(|f| f.set_len(t.len))
                .at("cut back", &s.target)?;
            trimmed.push(s.target.clone());
            continue;
        }
        if let Some(parent) = s.target.parent() {
            match s.dir_mode {
                Some(mode) => fsx::create_dir_all_mode(parent, mode)?,
                None => fsx::create_dir_all(parent)?,
            }
        }
        // What is there now is moved aside, whatever the plan saw: a rebuilt sync worktree
        // has checked out files the old folder did not have.
        if exists(&s.target) {
            fs::rename(&s.target, &s.aside).at("move aside", &s.target)?;
        }
        if let Some(temp) = &s.temp {
            fs::rename(temp, &s.target).at("rename into place", &s.target)?;
        }
    }
    // A cut is a change of the file's length: flushed before the journal says committed.
    fsx::sync_paths(&trimmed)?;
    let mut dirs: Vec<&Path> = steps.iter().filter_map(|s| s.target.parent()).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        fsx::sync_dir(d)?;
    }
    Ok(notes)
}

/// Undo every step whatever state it reached. Safe to run more than once. Returns whether
/// everything was put back (no step's old content is left aside).
pub(crate) fn rollback(steps: &[Step]) -> bool {
    for s in steps.iter().rev() {
        if let Some(t) = &s.trim {
            untrim(&s.target, t);
            continue;
        }
        if let Some(w) = &s.worktree {
            // Ours when the old folder was moved aside, or when there was none.
            if exists(&s.aside) || (!s.existed && exists(&s.target)) {
                gitsync::remove_worktree(&w.repo, &s.target);
            }
            if exists(&s.aside) {
                let _ = fs::rename(&s.aside, &s.target);
            }
            gitsync::reset_branch(&w.repo, w.branch_before.as_deref());
            continue;
        }
        if exists(&s.aside) {
            let _ = fs::rename(&s.aside, &s.target);
        } else if !s.existed && s.temp.is_some() && exists(&s.target) {
            // Put in by us (it did not exist before): only if our temp is gone, i.e. renamed.
            if s.temp.as_ref().is_some_and(|t| !t.exists()) {
                let _ = fs::remove_file(&s.target);
            }
        }
        if let Some(t) = &s.temp {
            remove_temp(t);
        }
    }
    steps
        .iter()
        .all(|s| !exists(&s.aside) && s.trim.as_ref().is_none_or(|t| !exists(&t.tail)))
}

/// Undo a trim step whatever state it reached: its tail, when there is one, is written back at
/// the snapshot's length (the same bytes the file holds there if it was never cut, or held
/// before), flushed, then removed. The tail stays when that fails, for the next try.
fn untrim(target: &Path, t: &Trim) {
    use std::io::{Seek, SeekFrom};
    let Ok(mut tail) = fs::File::open(&t.tail) else {
        // No tail: it was never flushed, so nothing was cut.
        return;
    };
    let put_back = fs::OpenOptions::new()
        .write(true)
        .open(target)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(t.len))?;
            std::io::copy(&mut tail, &mut f)?;
            f.sync_all()
        });
    if put_back.is_ok() {
        let _ = fs::remove_file(&t.tail);
    }
}

/// Remove a temporary file and what SQLite may have left beside it: the prepared database is
/// opened (to import the local tables), and a kill while it is open leaves its `-wal`, `-shm`
/// or `-journal` behind, which nothing else would ever remove from the workspace.
fn remove_temp(t: &Path) {
    let _ = fs::remove_file(t);
    for side in ["-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(fsx::with_suffix(t, side));
    }
}

/// Drop what a committed restore kept to undo itself.
pub(crate) fn finish(steps: &[Step]) {
    for s in steps {
        let _ = fsx::remove_any(&s.aside);
        if let Some(t) = &s.trim {
            let _ = fs::remove_file(&t.tail);
        }
        if let Some(t) = &s.temp {
            remove_temp(t);
        }
    }
}

/// Finish a committed restore whose journal is in `tmp`, roll back any other; what was done.
pub(crate) fn recover(tmp: &Path) -> Result<Option<String>> {
    let path = tmp.join(JOURNAL);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at("read", &path),
    };
    let journal: Journal = serde_json::from_slice(&bytes).map_err(|e| {
        Error::Invalid(format!(
            "{}: unreadable restore journal: {e}",
            path.display()
        ))
    })?;
    let action = if journal.committed {
        finish(&journal.steps);
        "finished an interrupted restore (it had committed)".to_owned()
    } else {
        let _ = rollback(&journal.steps);
        format!(
            "rolled back an interrupted restore ({} files put back as they were)",
            journal.steps.len()
        )
    };
    fs::remove_file(&path).at("remove", &path)?;
    Ok(Some(action))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A folder with `keep` (replaced), `gone` (removed), `grown` (cut back to its first
    /// bytes, its tail copied as `apply::fill_temps` does) and, after the restore, `new`
    /// (created, in a folder that does not exist yet). Returns the steps.
    fn setup(root: &Path) -> Vec<Step> {
        fs::write(root.join("keep"), "old keep").unwrap();
        fs::write(root.join("gone"), "old gone").unwrap();
        fs::write(root.join("grown"), "snapshot's lines\nappended since\n").unwrap();
        let mut steps = vec![Step::trim(&root.join("grown"), 17)];
        let tail = &steps[0].trim.as_ref().unwrap().tail;
        fsx::copy_tail_unsynced(&root.join("grown"), 17, tail).unwrap();
        for (name, content) in [
            ("keep", Some("new keep")),
            ("gone", None),
            ("sub/new", Some("new")),
        ] {
            let target = root.join(name);
            let temp = content.map(|c| {
                let t = root.join(format!(".{}.tmp", name.replace('/', "_")));
                fs::write(&t, c).unwrap();
                t
            });
            steps.push(Step::file(&target, temp));
        }
        steps
    }

    /// Every file below `root` (but the journal) and its content.
    fn tree(root: &Path) -> BTreeMap<String, String> {
        fsx::walk_files(root)
            .unwrap()
            .into_iter()
            .filter(|f| f != JOURNAL)
            .map(|f| {
                let c = fs::read_to_string(root.join(&f)).unwrap();
                (f, c)
            })
            .collect()
    }

    fn before() -> BTreeMap<String, String> {
        [
            ("gone", "old gone"),
            ("grown", "snapshot's lines\nappended since\n"),
            ("keep", "old keep"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .into()
    }

    fn after() -> BTreeMap<String, String> {
        [
            ("grown", "snapshot's lines\n"),
            ("keep", "new keep"),
            ("sub/new", "new"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .into()
    }

    #[test]
    fn a_commit_replaces_creates_and_removes_and_finish_leaves_nothing_aside() {
        let dir = tempfile::tempdir().unwrap();
        let steps = setup(dir.path());
        commit(&steps, None).unwrap();
        finish(&steps);
        assert_eq!(tree(dir.path()), after());
    }

    #[test]
    fn a_failure_at_any_step_rolls_back_to_exactly_what_was_there() {
        for fault in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            let steps = setup(dir.path());
            let temps_before = tree(dir.path());
            assert!(commit(&steps, Some(fault)).is_err(), "step {fault}");
            assert!(rollback(&steps), "step {fault}: everything put back");
            assert_eq!(tree(dir.path()), before(), "step {fault}");
            // Rolling back twice changes nothing.
            assert!(rollback(&steps));
            assert_eq!(tree(dir.path()), before(), "step {fault}");
            assert!(temps_before.len() > before().len());
        }
    }

    #[test]
    fn recovery_rolls_back_an_uncommitted_journal_killed_at_any_step() {
        for killed_at in 0..=4 {
            let dir = tempfile::tempdir().unwrap();
            let steps = setup(dir.path());
            let journal = Journal {
                committed: false,
                steps: steps.clone(),
            };
            write(&dir.path().join(JOURNAL), &journal).unwrap();
            // A kill after `killed_at` steps: the fault stands in for the kill, nothing undone.
            let _ = commit(&steps, (killed_at < 4).then_some(killed_at));
            let action = recover(dir.path()).unwrap().expect("a journal to recover");
            assert!(action.starts_with("rolled back"), "{action}");
            assert_eq!(tree(dir.path()), before(), "killed after {killed_at} steps");
            assert!(!dir.path().join(JOURNAL).exists());
            assert_eq!(recover(dir.path()).unwrap(), None);
        }
    }

    #[test]
    fn a_trim_undone_before_its_tail_was_copied_or_after_it_was_put_back_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let grown = dir.path().join("grown");
        fs::write(&grown, "abcdef").unwrap();
        let step = Step::trim(&grown, 2);
        // Killed before the tail was copied: nothing was cut.
        assert!(rollback(std::slice::from_ref(&step)));
        assert_eq!(fs::read(&grown).unwrap(), b"abcdef");
        // Cut, undone, undone again.
        fsx::copy_tail_unsynced(&grown, 2, &step.trim.as_ref().unwrap().tail).unwrap();
        commit(std::slice::from_ref(&step), None).unwrap();
        assert_eq!(fs::read(&grown).unwrap(), b"ab");
        assert!(rollback(std::slice::from_ref(&step)));
        assert!(rollback(std::slice::from_ref(&step)));
        assert_eq!(fs::read(&grown).unwrap(), b"abcdef");
        assert_eq!(fsx::walk_files(dir.path()).unwrap(), ["grown"]);
    }

    #[test]
    fn recovery_finishes_a_committed_journal() {
        let dir = tempfile::tempdir().unwrap();
        let steps = setup(dir.path());
        commit(&steps, None).unwrap();
        let journal = Journal {
            committed: true,
            steps,
        };
        write(&dir.path().join(JOURNAL), &journal).unwrap();
        let action = recover(dir.path()).unwrap().expect("a journal to recover");
        assert!(action.starts_with("finished"), "{action}");
        assert_eq!(tree(dir.path()), after());
    }

    #[test]
    fn recovery_removes_what_sqlite_left_beside_a_prepared_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("messages.db");
        fs::write(&db, "old db").unwrap();
        let temp = dir.path().join(".messages.db.restore-tmp-1");
        fs::write(&temp, "new db").unwrap();
        // Killed while the prepared copy was open: SQLite's files beside it.
        for side in ["-wal", "-shm", "-journal"] {
            fs::write(
                dir.path().join(format!(".messages.db.restore-tmp-1{side}")),
                "x",
            )
            .unwrap();
        }
        let journal = Journal {
            committed: false,
            steps: vec![Step::file(&db, Some(temp))],
        };
        write(&dir.path().join(JOURNAL), &journal).unwrap();
        recover(dir.path()).unwrap();
        let left: Vec<String> = tree(dir.path()).into_keys().collect();
        assert_eq!(left, ["messages.db"]);
        assert_eq!(fs::read(&db).unwrap(), b"old db");
    }

    #[test]
    fn an_unreadable_journal_is_an_error_naming_it_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL);
        fs::write(&path, "{ torn").unwrap();
        let e = recover(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(path.exists());
    }
}
