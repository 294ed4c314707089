//! Building a snapshot in a staging directory: every file is written once, hashed and
//! counted while it is written, and the manifest goes in last. A staging directory without
//! `manifest.json` is unfinished by definition.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use crate::database::{self, LOCAL_TABLES};
use crate::error::{IoContext, Result};
use crate::fsx::{self, FileDigest};
use crate::locate::Workspace;
use crate::manifest::{
    self, CaptureInfo, Counts, DatabaseInfo, EngineInfo, FileEntry, LayoutInfo, Manifest, Prefix,
    SyncInfo,
};
use crate::progress::{Cancel, Progress};
use crate::sources::{self, Source};

/// Path of the database copy inside a snapshot.
pub const DB_PATH: &str = "db/messages.db";

/// A snapshot being written.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    files: BTreeMap<String, FileEntry>,
}

impl Staging {
    /// Start writing into the empty directory `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            files: BTreeMap::new(),
        }
    }

    /// The staging directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn record(&mut self, rel: &str, d: &FileDigest) {
        self.record_full(rel, d, None, None, false);
    }

    fn record_full(
        &mut self,
        rel: &str,
        d: &FileDigest,
        prefix: Option<Prefix>,
        mode: Option<u32>,
        secret: bool,
    ) {
        self.files.insert(
            rel.to_owned(),
            FileEntry {
                path: rel.to_owned(),
                size: d.size,
                checksum: d.checksum.clone(),
                prefix,
                mode,
                secret,
                crc32: Some(d.crc32),
            },
        );
    }

    /// Copy `src` to `rel` in the snapshot.
    pub fn copy_in(&mut self, src: &Path, rel: &str) -> Result<FileDigest> {
        let d = fsx::copy_new(src, &self.root.join(rel))?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Write `rel` from a closure.
    pub fn write(
        &mut self,
        rel: &str,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<FileDigest> {
        let d = fsx::write_new_with(&self.root.join(rel), fill)?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Record a file something else wrote at `rel` (the database copy).
    pub fn adopt(&mut self, rel: &str) -> Result<FileDigest> {
        let d = fsx::digest_file(&self.root.join(rel))?;
        self.record(rel, &d);
        Ok(d)
    }

    /// Drop everything under `prefix/` (a failed plugin's partial output).
    pub fn discard(&mut self, prefix: &str) -> Result<()> {
        fsx::remove_any(&self.root.join(prefix))?;
        let p = format!("{prefix}/");
        self.files.retain(|k, _| !k.starts_with(&p));
        Ok(())
    }

    /// Files and bytes recorded under `prefix/`.
    pub fn totals_under(&self, prefix: &str) -> (u64, u64) {
        let p = format!("{prefix}/");
        self.files
            .values()
            .filter(|f| f.path.starts_with(&p))
            .fold((0, 0), |(n, b), f| (n + 1, b + f.size))
    }

    /// The files recorded so far, sorted by path.
    pub fn entries(&self) -> Vec<FileEntry> {
        self.files.values().cloned().collect()
    }

    /// Write the manifest (with the file list) and flush the directory. The snapshot is
    /// complete once this returns.
    pub fn finish(self, mut manifest: Manifest) -> Result<Manifest> {
        manifest.files = self.files.into_values().collect();
        let path = self.root.join(manifest::FILE_NAME);
        fsx::write_atomic(&path, &manifest.to_vec())?;
        Ok(manifest)
    }
}

/// What [`capture_workspace`] collected.
#[derive(Debug, Default)]
pub struct Captured {
    /// thrum's counts (plugins filled in later).
    pub counts: Counts,
    /// The database copy.
    pub database: Option<DatabaseInfo>,
    /// Local-table rows.
    pub local_tables: BTreeMap<String, u64>,
    /// Things worth telling the user.
    pub notes: Vec<String>,
    /// Files grown from the earlier snapshot instead of copied.
    pub grown: Grown,
    /// What of thrum's layout was captured.
    pub layout: Option<LayoutInfo>,
    /// The `a-sync` branch.
    pub sync: Option<SyncInfo>,
    /// Other worktrees captured: name → path.
    pub worktrees: BTreeMap<String, String>,
    /// Files the layout does not name.
    pub unknown: Vec<String>,
    /// Entries the layout names that were not regular files.
    pub skipped: Vec<String>,
    /// The order of the database and the streams.
    pub capture: Option<CaptureInfo>,
    /// JSON Lines files that are not all JSON lines.
    pub jsonl: Vec<crate::jsonl::Issue>,
}

/// How to capture a workspace.
#[derive(Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Leave thrum's secrets out.
    pub exclude_secrets: bool,
    /// `daemon.local_only`: the `a-sync` history exists only here.
    pub sync_local_only: bool,
    /// Folders the unknown-file report passes over (the backup directory).
    pub skip: Vec<PathBuf>,
    /// How long to wait for a locked database.
    pub db_wait: Duration,
}

/// Where a snapshot keeps the history of the `a-sync` branch.
pub const BUNDLE_PATH: &str = "git/a-sync.bundle";

/// Files of a new snapshot grown from the earlier one (see [`Base`]).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Grown {
    /// Files hard-linked from the earlier snapshot and appended to.
    pub files: u64,
    /// Bytes those files shared with the earlier snapshot (not written again).
    pub bytes_shared: u64,
}

/// Files smaller than this are always copied: growing them saves too little to matter.
const GROW_MIN: u64 = 64 * 1024;

/// The earlier snapshot a new one may grow from, instead of copying every byte again.
///
/// thrum's logs only grow. When a workspace file still begins with exactly the bytes of the
/// earlier snapshot's copy, the new snapshot hard-links that copy and appends only the new
/// tail, so the earlier copy grows too: after it has been archived (the [`Gate`] says when),
/// it is needed again only if this create fails, and then it is cut back to the size its
/// manifest records ([`cut_back_grown`], run by the failure path and by every recovery).
#[derive(Debug)]
pub struct Base<'a> {
    dir: PathBuf,
    files: BTreeMap<String, Prefix>,
    gate: &'a Gate,
}

impl<'a> Base<'a> {
    /// The complete snapshot in `dir` (`current/`), usable once `gate` opens.
    pub fn new(dir: PathBuf, manifest: &Manifest, gate: &'a Gate) -> Self {
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
        Self { dir, files, gate }
    }
}

/// A one-shot signal between threads: closed until [`Gate::open`] says yes or no.
#[derive(Debug, Default)]
pub struct Gate {
    state: std::sync::Mutex<Option<bool>>,
    changed: std::sync::Condvar,
}

impl Gate {
    /// Decide the gate (the first decision stands).
    pub fn open(&self, ok: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.is_none() {
            *s = Some(ok);
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

    /// The decision, if made.
    fn decided(&self) -> Option<bool> {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for the decision; a cancellation ends the wait with "no".
    fn wait(&self, cancel: &Cancel) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ok) = *s {
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
struct Growable {
    src: std::fs::File,
    hashed: fsx::HashingWriter<std::io::Sink>,
}

/// Compare `src` with the earlier copy `old` of `len` bytes. `Some` when `src` begins with
/// exactly those bytes; the workspace file is then positioned after them, already hashed.
fn check_growable(src: &Path, old: &Path, len: u64) -> Result<Option<Growable>> {
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
    let mut hashed = fsx::HashingWriter::new(std::io::sink());
    let mut left = len;
    let (mut x, mut y) = (vec![0u8; 256 * 1024], vec![0u8; 256 * 1024]);
    while left > 0 {
        let n = left.min(x.len() as u64) as usize;
        a.read_exact(&mut x[..n]).at("read", src)?;
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return Ok(None);
        }
        hashed.write_all(&x[..n]).at("read", src)?;
        left -= n as u64;
    }
    Ok(Some(Growable { src: a, hashed }))
}

/// Link the earlier copy `old` as `dst` and append the rest of the workspace file to it.
/// `None` when the filesystem cannot link (the caller copies instead).
fn grow(g: Growable, old: &Path, dst: &Path) -> Result<Option<FileDigest>> {
    let Growable { mut src, hashed } = g;
    if let Some(parent) = dst.parent() {
        fsx::create_dir_all(parent)?;
    }
    if std::fs::hard_link(old, dst).is_err() {
        return Ok(None);
    }
    let file = std::fs::File::options()
        .append(true)
        .open(dst)
        .at("open", dst)?;
    let mut w = fsx::buffered(hashed.redirect(file));
    std::io::copy(&mut src, &mut w).at("write", dst)?;
    fsx::finish_synced(w, dst).map(Some)
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

/// Copy thrum's data from the workspace into `staging`: every path the layout table
/// captures ([`crate::layout`]), the database (a consistent copy plus thrum's local-table
/// JSONL) and the history of the `a-sync` branch as a git bundle. With a `base`, files that
/// only grew since it are grown from it rather than copied.
///
/// The database is copied first and the sync worktree's streams after it, so that the
/// streams are at least as new as the database (the time between is recorded).
pub fn capture_workspace(
    ws: &Workspace,
    opts: &CaptureOptions,
    staging: &mut Staging,
    base: Option<&Base<'_>>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Captured> {
    let mut cap = Captured::default();
    let roots = sources::Roots::of(ws);
    let plan = sources::plan(&roots, opts.exclude_secrets)?;
    cap.unknown = sources::unknown(&roots, &opts.skip)?;
    cap.skipped = plan.skipped.clone();
    cap.worktrees = plan
        .worktrees
        .iter()
        .map(|(n, p)| (n.clone(), p.parent().unwrap_or(p).display().to_string()))
        .collect();
    cap.layout = Some(LayoutInfo {
        thrum: crate::layout::THRUM_VERSION.into(),
        covered: plan.covered.clone(),
        secrets: if opts.exclude_secrets {
            "excluded"
        } else {
            "included"
        }
        .into(),
    });
    if roots.sync.is_none() {
        cap.notes.push(format!(
            "no sync worktree at {}: no message streams to back up",
            ws.sync_dir.display()
        ));
    }
    let db_size = std::fs::metadata(&ws.db_path).map(|m| m.len()).unwrap_or(0);
    let total: u64 = plan
        .thrum
        .iter()
        .chain(&plan.sync)
        .filter_map(|s| std::fs::metadata(&s.path).ok())
        .map(|m| m.len())
        .sum::<u64>()
        + db_size;
    progress.phase("copying the workspace", Some(total));
    let root = staging.root().to_path_buf();
    let root = root.as_path();
    let (copied, jsonl, db, bundle, gap) = std::thread::scope(|s| {
        // The database instant comes first; the streams are copied once it is taken.
        let (taken, instant) = std::sync::mpsc::channel::<std::time::Instant>();
        let db = ws.db_path.is_file().then(|| {
            s.spawn(move || {
                capture_database(&ws.db_path, root, opts.db_wait, &taken, progress, cancel)
            })
        });
        let bundle = ws
            .in_git
            .then(|| s.spawn(|| crate::gitsync::bundle(&ws.repo_root, &root.join(BUNDLE_PATH))));
        let thrum = copy_files(&plan.thrum, root, base, progress, cancel);
        let at = instant.recv().ok();
        let sync = copy_files(&plan.sync, root, base, progress, cancel);
        let gap = at.map(|t| t.elapsed());
        let copied = thrum.and_then(|(mut a, ga)| {
            let (b, gb) = sync?;
            a.extend(b);
            Ok((
                a,
                Grown {
                    files: ga.files + gb.files,
                    bytes_shared: ga.bytes_shared + gb.bytes_shared,
                },
            ))
        });
        // The JSON Lines check reads what was just written, while the database lane checks,
        // hashes and exports its copy.
        let jsonl = match &copied {
            Ok((files, _)) => check_jsonl(files, root, cancel),
            Err(_) => Ok(Vec::new()),
        };
        let bundle = bundle.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(crate::Error::Invalid("the git thread panicked".into())))
        });
        (copied, jsonl, db.map(join_db), bundle, gap)
    });
    let (copied, grown) = copied?;
    cap.grown = grown;
    cap.jsonl = jsonl?;
    for issue in &cap.jsonl {
        cap.notes.push(format!(
            "{issue}: backed up as it is, and restored as it is"
        ));
    }
    for (source, d, prefix) in copied {
        let rel = &source.rel;
        staging.record_full(rel, &d, prefix, source.mode, source.secret);
        if rel == "events.jsonl" {
            cap.counts.events = d.lines;
        } else if rel.starts_with("messages/") {
            cap.counts.message_files += 1;
        } else if rel.starts_with("config/") {
            cap.counts.config_files += 1;
        }
    }
    match bundle {
        Some(Ok(Some(tip))) => {
            fsx::set_mode(&staging.root().join(BUNDLE_PATH), 0o600)?;
            staging.adopt(BUNDLE_PATH)?;
            cap.sync = Some(SyncInfo {
                tip,
                bundle: Some(BUNDLE_PATH.into()),
                local_only: opts.sync_local_only,
                worktree: roots.sync.is_some()
                    && crate::gitsync::unhealthy(&ws.repo_root, &ws.sync_dir).is_none(),
            });
        }
        Some(Ok(None)) | None => {}
        Some(Err(e)) => {
            let _ = fsx::remove_any(&staging.root().join("git"));
            cap.notes.push(format!(
                "the history of the a-sync branch could not be saved: {e}"
            ));
        }
    }
    if let Some(db) = db {
        let db = db?;
        staging.record(DB_PATH, &db.digest);
        for (table, rows, digest) in db.local {
            staging.record(&format!("local/{table}.jsonl"), &digest);
            cap.local_tables.insert(table.to_owned(), rows);
        }
        cap.notes.extend(db.notes);
        cap.counts.local_tables = cap.local_tables.len() as u64;
        cap.database = Some(DatabaseInfo {
            path: DB_PATH.into(),
            tables: db.tables,
        });
        if let Some(gap) = gap {
            cap.capture = Some(CaptureInfo {
                order: "database-then-streams".into(),
                gap_ms: gap.as_millis() as u64,
            });
        }
    }
    for what in &cap.skipped {
        cap.notes
            .push(format!("not a regular file, not backed up: {what}"));
    }
    if !cap.unknown.is_empty() {
        let shown: Vec<&str> = cap.unknown.iter().take(10).map(String::as_str).collect();
        let more = cap.unknown.len().saturating_sub(shown.len());
        cap.notes.push(format!(
            "{} file(s) that thrum {} does not write, not backed up (a newer thrum?): {}{}",
            cap.unknown.len(),
            crate::layout::THRUM_VERSION,
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more (the manifest lists them all)")
            } else {
                String::new()
            }
        ));
    }
    if opts.exclude_secrets {
        cap.notes.push(
            "thrum's secrets were left out of this snapshot (backup.secrets: exclude)".into(),
        );
    }
    cancel.check()?;
    Ok(cap)
}

/// Check every JSON Lines file of the snapshot, several at a time (each is read from the page
/// cache, just written).
fn check_jsonl(
    copied: &[CopiedFile<'_>],
    root: &Path,
    cancel: &Cancel,
) -> Result<Vec<crate::jsonl::Issue>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let files: Vec<&str> = copied
        .iter()
        .map(|(s, _, _)| s.rel.as_str())
        .filter(|rel| crate::jsonl::is_jsonl(rel))
        .collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let found = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(files.len()))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    while let Some(rel) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        cancel.check()?;
                        if let Some(issue) = crate::jsonl::check_file(&root.join(rel), 0, 1, rel)? {
                            found.lock().unwrap_or_else(|p| p.into_inner()).push(issue);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })?;
    let mut found = found.into_inner().unwrap_or_else(|p| p.into_inner());
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// A file of the new snapshot: where it came from, its digest, and what it is known to begin
/// with.
type CopiedFile<'s> = (&'s Source, FileDigest, Option<Prefix>);

/// An earlier snapshot's copy of a file, and its size and digest.
type Earlier<'b> = (PathBuf, &'b Prefix);

/// Copy (or grow, see [`Base`]) the workspace files `sources` into `root`.
fn copy_files<'s>(
    sources: &'s [Source],
    root: &Path,
    base: Option<&Base<'_>>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(Vec<CopiedFile<'s>>, Grown)> {
    /// Growable files waiting for the gate hold an open handle each: at most this many.
    const MAX_WAITING: usize = 256;
    let mut copied = Vec::with_capacity(sources.len());
    let mut waiting = Vec::new();
    let mut grown = Grown::default();
    let mut finish = |source: &'s Source, growable: Option<(Growable, Earlier<'_>)>| {
        let src = &source.path;
        let dst = root.join(&source.rel);
        let (d, prefix) = match growable {
            Some((g, (old, prefix))) => {
                let shared = g.hashed.size();
                match grow(g, &old, &dst)? {
                    Some(d) => {
                        grown.files += 1;
                        grown.bytes_shared += shared;
                        (d, Some(prefix.clone()))
                    }
                    None => (fsx::copy_new(src, &dst)?, None),
                }
            }
            None => (fsx::copy_new(src, &dst)?, None),
        };
        progress.advance(d.size);
        copied.push((source, d, prefix));
        Ok::<_, crate::Error>(())
    };
    for source in sources {
        let (src, rel) = (&source.path, &source.rel);
        cancel.check()?;
        let earlier = base.and_then(|b| {
            let whole = b.files.get(rel)?;
            (whole.size >= GROW_MIN).then(|| (b, b.dir.join(rel), whole))
        });
        let Some((b, old, whole)) = earlier else {
            finish(source, None)?;
            continue;
        };
        let Some(g) = check_growable(src, &old, whole.size)? else {
            finish(source, None)?;
            continue;
        };
        // The earlier copy may grow only once its archive is written.
        let open = match b.gate.decided() {
            None if waiting.len() < MAX_WAITING => {
                waiting.push((source, (old, whole), g));
                continue;
            }
            None => b.gate.wait(cancel),
            Some(open) => open,
        };
        for (source, old, g) in waiting.drain(..) {
            finish(source, open.then_some((g, old)))?;
        }
        finish(source, open.then_some((g, (old, whole))))?;
    }
    if !waiting.is_empty() {
        let open = base.is_some_and(|b| b.gate.wait(cancel));
        for (source, old, g) in waiting {
            cancel.check()?;
            finish(source, open.then_some((g, old)))?;
        }
    }
    Ok((copied, grown))
}

/// The database part of a snapshot: the copy's digest, its row counts and the local tables
/// exported as JSONL.
struct DbCapture {
    digest: FileDigest,
    tables: BTreeMap<String, u64>,
    local: Vec<(&'static str, u64, FileDigest)>,
    notes: Vec<String>,
}

fn join_db(h: std::thread::ScopedJoinHandle<'_, Result<DbCapture>>) -> Result<DbCapture> {
    h.join()
        .unwrap_or_else(|_| Err(crate::Error::Invalid("the database thread panicked".into())))
}

/// Copy the database into `root` as one consistent snapshot, then flush it to disk, check it,
/// hash it and export thrum's local tables side by side: all four only read the copy, and the
/// flush mostly waits for the disk while the others use the CPU.
fn capture_database(
    db_path: &Path,
    root: &Path,
    db_wait: Duration,
    taken: &std::sync::mpsc::Sender<std::time::Instant>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<DbCapture> {
    let dst = root.join(DB_PATH);
    fsx::create_dir_all(dst.parent().unwrap_or(root))?;
    let size = std::fs::metadata(db_path).map(|m| m.len()).unwrap_or(0);
    database::copy_unchecked(db_path, &dst, db_wait)?;
    let _ = taken.send(std::time::Instant::now());
    // Every file of a snapshot is private; SQLite made this one with the default mode.
    fsx::set_mode(&dst, 0o600)?;
    progress.advance(size);
    cancel.check()?;
    let present = database::table_names(&dst)?;
    std::thread::scope(|s| {
        let synced = s.spawn(|| database::sync_copy(&dst));
        let checked = s.spawn(|| database::check_copy(&dst, db_path));
        let digest = s.spawn(|| fsx::digest_file(&dst));
        let mut local = Vec::new();
        let mut notes = Vec::new();
        let mut exported = Ok(());
        for table in LOCAL_TABLES {
            if let Err(e) = cancel.check() {
                exported = Err(e);
                break;
            }
            if !present.iter().any(|t| t == table) {
                notes.push(format!("messages.db has no table {table}: not exported"));
                continue;
            }
            match export_local(&dst, root, table) {
                Ok((rows, d)) => local.push((table, rows, d)),
                Err(e) => {
                    exported = Err(e);
                    break;
                }
            }
        }
        let panicked = || crate::Error::Invalid("a database thread panicked".into());
        // The integrity check's verdict comes first: a corrupt database is the real news.
        let tables = checked.join().map_err(|_| panicked())??;
        let digest = digest.join().map_err(|_| panicked())??;
        exported?;
        synced.join().map_err(|_| panicked())??;
        Ok(DbCapture {
            digest,
            tables,
            local,
            notes,
        })
    })
}

/// Export `table` of the database copy `db` to `local/<table>.jsonl` below `root`.
fn export_local(db: &Path, root: &Path, table: &str) -> Result<(u64, FileDigest)> {
    let mut rows = 0;
    let mut failure = None;
    let path = root.join(format!("local/{table}.jsonl"));
    let digest = fsx::write_new_with(&path, |w| match database::export_table(db, table, w) {
        Ok(n) => {
            rows = n;
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            failure = Some(e);
            Err(std::io::Error::other(msg))
        }
    })
    .map_err(|e| failure.take().map_or(e, Into::into))?;
    Ok((rows, digest))
}

/// A manifest for a snapshot of the workspace `repo_name` (identified by `workspace`) taken
/// now.
pub fn new_manifest(
    repo_name: &str,
    workspace: &crate::identity::WorkspaceId,
    captured: Captured,
) -> Manifest {
    let id: u128 = rand::random();
    Manifest {
        version: 1,
        timestamp: Utc::now(),
        thrum_version: format!("thrum-backup {}", env!("CARGO_PKG_VERSION")),
        repo_name: repo_name.to_owned(),
        counts: captured.counts,
        engine: Some(EngineInfo::current()),
        snapshot_id: Some(format!("{id:032x}")),
        local_only: false,
        workspace: Some(workspace.clone()),
        layout: captured.layout,
        sync: captured.sync,
        worktrees: captured.worktrees,
        unknown: captured.unknown,
        skipped: captured.skipped,
        jsonl: captured.jsonl,
        shrink: Vec::new(),
        capture: captured.capture,
        files: Vec::new(),
        database: captured.database,
        local_tables: captured.local_tables,
        plugin_results: Vec::new(),
    }
}

/// Names of the regular files in `dir` ending in `suffix`, sorted; none if `dir` is absent.
pub fn list_files(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at("read directory", dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at("read directory", dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(suffix) && entry.file_type().at("inspect", &entry.path())?.is_file() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}
