//! Growing a snapshot from the one before it: thrum's logs only grow, so a file that still
//! begins with exactly the earlier copy's bytes is hard-linked and only its tail appended,
//! once the earlier snapshot is archived; a failed or killed create cuts the earlier copies
//! back to their recorded sizes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{IoContext, Result};
use crate::fsx::blocks::{BLOCK, Blocks};
use crate::fsx::{self, FileDigest};
use crate::manifest::{self, Manifest, Prefix};
use crate::progress::Cancel;

/// Files of a new snapshot grown from the earlier one (see [`Base`]).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Grown {
    /// Files hard-linked from the earlier snapshot: unchanged, or appended to.
    pub files: u64,
    /// Bytes those files shared with the earlier snapshot (not written again).
    pub bytes_shared: u64,
    /// Pages of the database copy, when it was brought up to date page by page.
    pub database_pages: u64,
    /// Of those, the pages that differed and were written.
    pub database_pages_written: u64,
    /// Of those files, local-table exports grown from the earlier snapshot's: only rows were
    /// appended to the table, so only they were exported.
    pub local_appended: u64,
    /// 64 KiB blocks of the grown files and of the database copy whose hash was the earlier
    /// snapshot's (kept in the backup directory's `.index/`), not computed again.
    pub blocks_reused: u64,
}

/// Files smaller than this are copied when they grew: growing them saves too little to matter.
/// (Unchanged files of any size are linked: copying them cost a new inode each, ~10% of a
/// steady `create`'s time on ext4.)
pub(super) const GROW_MIN: u64 = 64 * 1024;

/// The earlier snapshot a new one may grow from, instead of copying every byte again.
///
/// thrum's logs only grow. When a workspace file still begins with exactly the bytes of the
/// earlier snapshot's copy, the new snapshot hard-links that copy and appends only the new
/// tail, so the earlier copy grows too: after it has been archived (the [`Gate`] says when),
/// it is needed again only if this create fails, and then it is cut back to the size its
/// manifest records ([`cut_back_grown`], run by the failure path and by every recovery).
///
/// The database copy is brought up to date the same way, page by page
/// ([`crate::database::pages`]): only the pages that differ are written into `current/`'s
/// copy once the gate opens, after their earlier contents are saved in an undo file in
/// `work`; [`roll_back_database`] (run with [`cut_back_grown`]) puts them back.
#[derive(Debug)]
pub struct Base<'a> {
    pub(super) dir: PathBuf,
    pub(super) files: BTreeMap<String, Prefix>,
    pub(super) gate: &'a Gate,
    /// Where the database copy's redo and undo files go (the backup directory's `.tmp/`).
    pub(super) work: PathBuf,
    /// The JSON Lines files the earlier snapshot checked and found sound (none when it did
    /// not check them all): a file grown from one needs only its tail checked.
    pub(super) jsonl_sound: std::collections::HashSet<String>,
    /// When the earlier snapshot's database was last found sound (see [`super::DbCheck`]).
    pub(super) db_checked: Option<chrono::DateTime<chrono::Utc>>,
    /// The blocks of the earlier snapshot's files, where the cache kept them and they merge to
    /// the manifest's checksums ([`load_blocks`]): a file grown from one, and the database copy
    /// brought up to date page by page, are hashed again only from where they changed.
    pub(super) blocks: std::collections::HashMap<String, Blocks>,
    /// Rows of each local table the earlier snapshot exported (`local/<table>.jsonl`).
    pub(super) local_rows: BTreeMap<String, u64>,
}

/// Name, in the backup directory's `.tmp/`, of the database copy's work files: `<name>.redo`,
/// `<name>.undo.part` and, once armed, `<name>.undo`.
pub const DB_WORK: &str = "db-pages";

/// The armed undo file of the database copy in the work directory `work`.
pub fn db_undo(work: &Path) -> PathBuf {
    work.join(format!("{DB_WORK}.undo"))
}

impl<'a> Base<'a> {
    /// The complete snapshot in `dir` (`current/`), usable once `gate` opens; `work` holds the
    /// database copy's work files.
    pub fn new(dir: PathBuf, manifest: &Manifest, gate: &'a Gate, work: PathBuf) -> Self {
        let files = manifest
            .files
            .iter()
            .map(|f| {
                let whole = Prefix {
                    size: f.size,
                    checksum: f.checksum.clone(),
                };
                (f.path.clone(), whole)
            })
            .collect();
        let issues: std::collections::HashSet<&str> =
            manifest.jsonl.iter().map(|i| i.path.as_str()).collect();
        let jsonl_sound = manifest
            .files
            .iter()
            .filter(|f| manifest.jsonl_checked && !issues.contains(f.path.as_str()))
            .map(|f| f.path.clone())
            .collect();
        let db_checked = manifest
            .database
            .as_ref()
            .and_then(|d| d.last_checked(manifest.timestamp));
        let blocks = load_blocks(&dir, manifest);
        Self {
            dir,
            files,
            gate,
            work,
            jsonl_sound,
            db_checked,
            blocks,
            local_rows: manifest.local_tables.clone(),
        }
    }
}

/// The cache of the blocks of `current/`'s files, beside it in the backup directory.
fn blocks_path(current: &Path) -> PathBuf {
    current
        .parent()
        .unwrap_or(current)
        .join(".index")
        .join("current-blocks.json")
}

/// The blocks cache: for each file, the size and checksum of the copy the blocks are of.
#[derive(serde::Serialize, serde::Deserialize)]
struct BlockCache {
    format: u32,
    files: BTreeMap<String, CachedBlocks>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedBlocks {
    size: u64,
    #[serde(flatten)]
    checksum: fsx::Checksum,
    blocks: Blocks,
}

/// Save the blocks of the files of the snapshot `manifest` describes, which becomes `current`
/// (see [`fsx::blocks`]). A cache, not part of the snapshot: an entry is used only for the
/// copy whose size and checksum it names, once its blocks merge to that checksum, so a stale,
/// torn or missing cache only costs the next create a full hash. Hence not flushed to disk.
pub fn save_blocks(current: &Path, blocks: BTreeMap<String, Blocks>, manifest: &Manifest) {
    let entries: std::collections::HashMap<&str, &manifest::FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let files = blocks
        .into_iter()
        .filter_map(|(rel, blocks)| {
            let f = entries.get(rel.as_str())?;
            (f.size == blocks.size()).then(|| {
                let cached = CachedBlocks {
                    size: f.size,
                    checksum: f.checksum.clone(),
                    blocks,
                };
                (rel, cached)
            })
        })
        .collect();
    let path = blocks_path(current);
    let saved = (|| -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(current);
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(
            std::io::BufWriter::new(tmp.as_file_mut()),
            &BlockCache { format: 2, files },
        )?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    })();
    if saved.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// The cached blocks of `manifest`'s files (the snapshot in `current`) that are theirs: same
/// size, and merging to the manifest's checksum and CRC-32.
fn load_blocks(current: &Path, manifest: &Manifest) -> std::collections::HashMap<String, Blocks> {
    let Some(mut cache) = std::fs::read(blocks_path(current))
        .ok()
        .and_then(|b| serde_json::from_slice::<BlockCache>(&b).ok())
        .filter(|c| c.format == 2)
    else {
        return std::collections::HashMap::new();
    };
    manifest
        .files
        .iter()
        .filter_map(|f| {
            let c = cache.files.remove(&f.path)?;
            let theirs = c.size == f.size
                && c.checksum == f.checksum
                && c.blocks.verify(f.size, &f.checksum, f.crc32);
            theirs.then(|| (f.path.clone(), c.blocks))
        })
        .collect()
}

/// What the archive of `current/` lets the next snapshot change in it, told from the archiving
/// thread to the staging threads: an entry the archive holds for good ([`Gate::archived`]),
/// and at the end whether the archive was written at all ([`Gate::open`]).
///
/// A file of `current/` may be grown or patched in place as soon as its own entry is written,
/// not only once the whole archive is: the archive never reads an entry's file again after
/// writing it (a refused reuse rewinds only the entry being written), so the database copy is
/// brought up to date while the archive still copies the logs after it. Should the archive
/// fail later, the create fails and the failure path puts back what was changed, as for any
/// failure after the archive ([`cut_back_grown`], [`roll_back_database`]).
#[derive(Debug, Default)]
pub struct Gate {
    state: std::sync::Mutex<GateState>,
    changed: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// Whether the archive was written (the first decision stands).
    decided: Option<bool>,
    /// The entries (paths in `current/`) the archive holds for good so far.
    archived: std::collections::HashSet<String>,
}

impl GateState {
    /// Whether `current/`'s copy of `rel` may change: `Some(true)` once its entry is written
    /// or the archive is, `Some(false)` when the archive failed before writing it.
    fn for_entry(&self, rel: &str) -> Option<bool> {
        if self.archived.contains(rel) {
            return Some(true);
        }
        self.decided
    }
}

impl Gate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decide the gate for every entry not yet archived (the first decision stands).
    pub fn open(&self, ok: bool) {
        let mut s = self.state();
        if s.decided.is_none() {
            s.decided = Some(ok);
            self.changed.notify_all();
        }
    }

    /// The archive holds `rel` for good: `current/`'s copy of it may change from now on.
    pub fn archived(&self, rel: &str) {
        let mut s = self.state();
        if s.decided.is_none() {
            s.archived.insert(rel.to_owned());
            self.changed.notify_all();
        }
    }

    /// A guard that decides "no" when dropped undecided (a thread that panics).
    pub fn no_on_drop(&self) -> impl Drop + '_ {
        struct Guard<'g>(&'g Gate);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.0.open(false);
            }
        }
        Guard(self)
    }

    /// Whether `current/`'s copy of `rel` may change, if that is known yet.
    pub(super) fn decided(&self, rel: &str) -> Option<bool> {
        self.state().for_entry(rel)
    }

    /// Wait until it is known whether `current/`'s copy of `rel` may change; a cancellation
    /// ends the wait with "no".
    pub(super) fn wait(&self, rel: &str, cancel: &Cancel) -> bool {
        let mut s = self.state();
        loop {
            if let Some(ok) = s.for_entry(rel) {
                return ok;
            }
            if cancel.check().is_err() {
                return false;
            }
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A workspace file whose first `len` bytes are the earlier snapshot's whole copy.
pub(super) struct Growable {
    src: std::fs::File,
    pub(super) hashed: fsx::HashingWriter<std::io::Sink>,
    /// Blocks of the earlier copy whose hash was kept, not computed again.
    pub(super) reused: u64,
    /// The workspace file is exactly the earlier copy (nothing was appended).
    pub(super) unchanged: bool,
}

/// Compare `src` with the earlier copy `old` of `len` bytes. `Some` when `src` begins with
/// exactly those bytes; the workspace file is then positioned after them, already hashed. With
/// the earlier copy's `known` blocks (checked against its checksum), the whole blocks among
/// those bytes are compared, not hashed again: the hash resumes after them.
pub(super) fn check_growable(
    src: &Path,
    old: &Path,
    len: u64,
    known: Option<&Blocks>,
) -> Result<Option<Growable>> {
    use std::io::Read;
    let mut a = std::fs::File::open(src).at("open", src)?;
    let Ok(mut b) = std::fs::File::open(old) else {
        return Ok(None);
    };
    let (Ok(ma), Ok(mb)) = (a.metadata(), b.metadata()) else {
        return Ok(None);
    };
    // A copy linked from elsewhere too (`cp -al` of the backup dir, say) would grow there as
    // well: only a copy that is `current/`'s alone may grow.
    if mb.len() != len || ma.len() < len || std::os::unix::fs::MetadataExt::nlink(&mb) != 1 {
        return Ok(None);
    }
    let whole = known
        .filter(|k| k.size() == len)
        .and_then(|k| k.whole_prefix((len / BLOCK) as usize));
    let reused = whole.map_or(0, |w| w.len() as u64);
    let mut hashed = match whole {
        Some(prefix) => fsx::HashingWriter::resume(std::io::sink(), prefix),
        None => fsx::HashingWriter::new(std::io::sink()),
    };
    // Bytes before this offset are the known blocks': compared, not hashed.
    let skip = hashed.size();
    let mut at = 0u64;
    // Most files are small: zeroing two full blocks for each cost more than comparing them.
    let block = len.clamp(1, 256 * 1024) as usize;
    let (mut x, mut y) = (vec![0u8; block], vec![0u8; block]);
    while at < len {
        let n = (len - at).min(x.len() as u64) as usize;
        a.read_exact(&mut x[..n]).at("read", src)?;
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return Ok(None);
        }
        let from = skip.saturating_sub(at).min(n as u64) as usize;
        hashed.write_all(&x[from..n]).at("read", src)?;
        at += n as u64;
    }
    Ok(Some(Growable {
        src: a,
        hashed,
        reused,
        unchanged: ma.len() == len,
    }))
}

/// Link the earlier copy `old` as `dst` and append the rest of the workspace file to it.
/// An unchanged file ([`Growable::unchanged`]) is only linked: nothing is written to either,
/// which needs no [`Gate`], no new inode and no flush. `None` when the filesystem cannot link
/// (the caller copies instead).
pub(super) fn grow(
    g: Growable,
    old: &Path,
    dst: &Path,
) -> Result<Option<(FileDigest, Option<Blocks>)>> {
    let Growable {
        mut src,
        hashed,
        unchanged,
        ..
    } = g;
    if let Some(parent) = dst.parent() {
        fsx::create_dir_all(parent)?;
    }
    if std::fs::hard_link(old, dst).is_err() {
        return Ok(None);
    }
    if unchanged {
        let (_, d, blocks) = hashed.finish_blocks();
        return Ok(Some((d, blocks)));
    }
    let file = std::fs::File::options()
        .append(true)
        .open(dst)
        .at("open", dst)?;
    let mut w = fsx::buffered(hashed.redirect(file));
    std::io::copy(&mut src, &mut w).at("write", dst)?;
    // Flushed to disk with the rest of the snapshot (see `Staging::finish`).
    let (_, d, blocks) = fsx::finish_hashed_blocks(w).at("write", dst)?;
    Ok(Some((d, blocks)))
}

/// Cut every file of the snapshot in `dir` that is longer than its manifest records back to
/// that size: what a failed or killed create appended to the files it grew (see [`Base`]).
/// Returns the files cut.
pub fn cut_back_grown(dir: &Path) -> Result<Vec<String>> {
    let Ok(Some(manifest)) = manifest::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut cut = Vec::new();
    for f in &manifest.files {
        let path = dir.join(&f.path);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() && m.len() > f.size => {
                let file = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .at("open", &path)?;
                file.set_len(f.size).at("truncate", &path)?;
                file.sync_all().at("sync", &path)?;
                cut.push(f.path.clone());
            }
            _ => {}
        }
    }
    Ok(cut)
}

/// Put `current/`'s database copy (in `dir`) back as its manifest records it, when a failed
/// or killed create had brought it up to date in place (an armed undo file in `work`, see
/// [`Base`]), then drop the undo file. Returns whether it was put back.
pub fn roll_back_database(dir: &Path, work: &Path) -> Result<bool> {
    let undo = db_undo(work);
    if !undo.exists() {
        return Ok(false);
    }
    let entry = manifest::read_dir(dir)
        .ok()
        .flatten()
        .and_then(|m| m.files.into_iter().find(|f| f.path == super::DB_PATH));
    let rolled = match entry {
        Some(f) => crate::database::pages::roll_back(&undo, &dir.join(&f.path), &f.checksum)?,
        None => false,
    };
    fsx::remove_any(&undo)?;
    Ok(rolled)
}

/// Remove the database copy's work files from `work`: once the new snapshot is published
/// (its undo file is no longer needed), or after a failed create has rolled back.
pub fn drop_db_work(work: &Path) -> Result<()> {
    for suffix in ["redo", "undo.part", "undo"] {
        fsx::remove_any(&work.join(format!("{DB_WORK}.{suffix}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_entry_by_entry_and_a_failure_closes_the_rest() {
        let gate = Gate::default();
        let cancel = Cancel::new();
        assert_eq!(gate.decided("db/messages.db"), None);
        // The archiver writes the database's entry while a stager waits for it.
        std::thread::scope(|s| {
            let waiter = s.spawn(|| gate.wait("db/messages.db", &cancel));
            gate.archived("db/messages.db");
            assert!(waiter.join().expect("the waiting thread"));
        });
        assert_eq!(gate.decided("db/messages.db"), Some(true));
        assert_eq!(gate.decided("messages/a.jsonl"), None);
        // The archive fails before the logs: they stay closed, what was written stays open.
        gate.open(false);
        assert_eq!(gate.decided("messages/a.jsonl"), Some(false));
        assert!(!gate.wait("messages/a.jsonl", &cancel));
        assert_eq!(gate.decided("db/messages.db"), Some(true));
        // Nothing opens after the decision, and the first decision stands.
        gate.archived("messages/a.jsonl");
        gate.open(true);
        assert_eq!(gate.decided("messages/a.jsonl"), Some(false));
        // A cancelled wait is a "no".
        let other = Gate::default();
        cancel.cancel();
        assert!(!other.wait("events.jsonl", &cancel));
    }
}
