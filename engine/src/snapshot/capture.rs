//! Capturing a workspace into a staging snapshot: the database lane (a consistent copy, then
//! its flush, check, hash and local-table export side by side), thrum's files, the sync
//! worktree's streams after the database instant, the `a-sync` bundle, and the JSON Lines
//! check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::grow::{self, Base, GROW_MIN, Growable, Grown, check_growable};
use super::{BUNDLE_PATH, CaptureOptions, Captured, DB_PATH, Staging};
use crate::database::{self, LOCAL_TABLES};
use crate::error::{IoContext as _, Result};
use crate::fsx::blocks::Blocks;
use crate::fsx::{self, FileDigest};
use crate::locate::Workspace;
use crate::manifest::{CaptureInfo, DatabaseInfo, LayoutInfo, Prefix, SyncInfo};
use crate::progress::{Cancel, Progress};
use crate::sources::{self, Source};

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
    let roots = sources::Roots::of(ws);
    let plan = sources::plan(&roots, opts.exclude_secrets)?;
    let mut cap = describe(ws, opts, &roots, &plan)?;
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
    let scratch = staging.is_scratch();
    let lanes = run_lanes(
        ws,
        opts,
        &plan,
        (staging.root(), scratch),
        base,
        progress,
        cancel,
    );
    let (copied, grown) = lanes.copied?;
    cap.grown = grown;
    cap.jsonl = lanes.jsonl?;
    cap.jsonl_checked = !scratch;
    for issue in &cap.jsonl {
        cap.notes.push(format!(
            "{issue}: backed up as it is, and restored as it is"
        ));
    }
    for (source, d, prefix, blocks) in copied {
        let rel = &source.rel;
        staging.record_full(rel, &d, prefix, source.mode, source.secret);
        staging.keep_blocks(rel, blocks);
        if opts.link {
            staging.linked.insert(rel.clone());
        }
        if rel == "events.jsonl" {
            cap.counts.events = d.lines;
        } else if rel.starts_with("messages/") {
            cap.counts.message_files += 1;
        } else if rel.starts_with("config/") {
            cap.counts.config_files += 1;
        }
    }
    if let Some(bundle) = lanes.bundle {
        record_bundle(ws, opts, roots.sync.is_some(), bundle, staging, &mut cap)?;
    }
    if let Some(db) = lanes.db {
        let db = db?;
        if let Some((pages, written, reused)) = db.pages {
            cap.grown.database_pages = pages;
            cap.grown.database_pages_written = written;
            cap.grown.blocks_reused += reused;
        }
        record_database(db, lanes.gap, staging, &mut cap);
    }
    closing_notes(opts, &mut cap);
    cancel.check()?;
    Ok(cap)
}

/// What the plan says of the snapshot before a byte is copied: the layout, the worktrees,
/// what the layout does not know and what it skips.
fn describe(
    ws: &Workspace,
    opts: &CaptureOptions,
    roots: &sources::Roots,
    plan: &sources::Plan,
) -> Result<Captured> {
    let mut cap = Captured {
        unknown: sources::unknown(roots, &opts.skip)?,
        skipped: plan.skipped.clone(),
        ..Captured::default()
    };
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
    Ok(cap)
}

/// What the lanes of a capture produced.
struct Lanes<'s> {
    copied: Result<(Vec<CopiedFile<'s>>, Grown)>,
    jsonl: Result<Vec<crate::jsonl::Issue>>,
    db: Option<Result<DbCapture>>,
    bundle: Option<Result<Option<String>>>,
    /// From the database's instant to the end of the streams' copy.
    gap: Option<Duration>,
}

/// Run the lanes side by side: the database (its instant comes first; the streams are copied
/// once it is taken), the `a-sync` bundle, and thrum's files then the streams, whose JSON
/// Lines check reads what was just written while the database lane checks, hashes and
/// exports its copy.
fn run_lanes<'s>(
    ws: &Workspace,
    opts: &CaptureOptions,
    plan: &'s sources::Plan,
    (root, scratch): (&Path, bool),
    base: Option<&Base<'_>>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Lanes<'s> {
    std::thread::scope(|s| {
        let (taken, instant) = std::sync::mpsc::channel::<std::time::Instant>();
        let db = ws.db_path.is_file().then(|| {
            s.spawn(move || {
                capture_database(
                    &ws.db_path,
                    root,
                    base,
                    DbLane {
                        wait: opts.db_wait,
                        check: opts.db_check,
                        sync: !scratch,
                        link: opts.link,
                    },
                    &taken,
                    progress,
                    cancel,
                )
            })
        });
        let bundle = ws
            .in_git
            .then(|| s.spawn(|| crate::gitsync::bundle(&ws.repo_root, &root.join(BUNDLE_PATH))));
        let copy = |sources, waiting| {
            copy_files(sources, root, base, (opts.link, waiting), progress, cancel)
        };
        let thrum = copy(&plan.thrum, MAX_WAITING);
        let at = instant.recv().ok();
        // The streams are most of the bytes, and a log that grew is read twice (compared with
        // the earlier copy, and hashed): two threads share them, by size, each with half of
        // the handles that may wait for the gate.
        let (first, second) = plan.sync.split_at(half_by_size(&plan.sync));
        let other = (!second.is_empty()).then(|| s.spawn(move || copy(second, MAX_WAITING / 2)));
        let sync = copy(first, MAX_WAITING / 2);
        let sync = match other {
            Some(h) => merge(
                sync,
                h.join().unwrap_or_else(|_| {
                    Err(crate::Error::Invalid("a copy thread panicked".into()))
                }),
            ),
            None => sync,
        };
        let gap = at.map(|t| t.elapsed());
        let copied = merge(thrum, sync);
        let jsonl = match &copied {
            Ok((files, _)) if !scratch => check_jsonl(files, root, base, cancel),
            _ => Ok(Vec::new()),
        };
        let bundle = bundle.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(crate::Error::Invalid("the git thread panicked".into())))
        });
        Lanes {
            copied,
            jsonl,
            db: db.map(join_db),
            bundle,
            gap,
        }
    })
}

/// Record the `a-sync` bundle (its tip), or say why the history could not be saved.
fn record_bundle(
    ws: &Workspace,
    opts: &CaptureOptions,
    has_sync: bool,
    bundle: Result<Option<String>>,
    staging: &mut Staging,
    cap: &mut Captured,
) -> Result<()> {
    match bundle {
        Ok(Some(tip)) => {
            fsx::set_mode(&staging.root().join(BUNDLE_PATH), 0o600)?;
            staging.adopt(BUNDLE_PATH)?;
            cap.sync = Some(SyncInfo {
                tip,
                bundle: Some(BUNDLE_PATH.into()),
                local_only: opts.sync_local_only,
                worktree: has_sync
                    && crate::gitsync::unhealthy(&ws.repo_root, &ws.sync_dir).is_none(),
            });
        }
        Ok(None) => {}
        Err(e) => {
            let _ = fsx::remove_any(&staging.root().join("git"));
            cap.notes.push(format!(
                "the history of the a-sync branch could not be saved: {e}"
            ));
        }
    }
    Ok(())
}

/// Record the database copy, its local tables and the order of the capture.
fn record_database(
    db: DbCapture,
    gap: Option<Duration>,
    staging: &mut Staging,
    cap: &mut Captured,
) {
    staging.record(DB_PATH, &db.digest);
    staging.keep_blocks(DB_PATH, db.blocks);
    for (table, rows, digest, prefix) in db.local {
        if let Some(p) = &prefix {
            cap.grown.files += 1;
            cap.grown.bytes_shared += p.size;
            cap.grown.local_appended += 1;
        }
        staging.record_full(
            &format!("local/{table}.jsonl"),
            &digest,
            prefix,
            None,
            false,
        );
        cap.local_tables.insert(table.to_owned(), rows);
    }
    cap.notes.extend(db.notes);
    cap.counts.local_tables = cap.local_tables.len() as u64;
    let (quick_check, checked_at) = match db.checked {
        Checked::Now => (true, None),
        Checked::Before(at) => (false, at),
    };
    cap.database = Some(DatabaseInfo {
        path: DB_PATH.into(),
        tables: db.tables,
        quick_check,
        checked_at,
    });
    if let Some(gap) = gap {
        cap.capture = Some(CaptureInfo {
            order: "database-then-streams".into(),
            gap_ms: gap.as_millis() as u64,
        });
    }
}

/// What was skipped, unknown or left out, said once.
fn closing_notes(opts: &CaptureOptions, cap: &mut Captured) {
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
}

/// Check every JSON Lines file of the snapshot, several at a time (each is read from the page
/// cache, just written).
fn check_jsonl(
    copied: &[CopiedFile<'_>],
    root: &Path,
    base: Option<&Base<'_>>,
    cancel: &Cancel,
) -> Result<Vec<crate::jsonl::Issue>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut files: Vec<(&str, u64, u64)> = Vec::new();
    for (source, d, prefix, _) in copied {
        let rel = source.rel.as_str();
        if !crate::jsonl::is_jsonl(rel) {
            continue;
        }
        let sound = base.is_some_and(|b| b.jsonl_sound.contains(rel));
        match prefix {
            Some(p) if sound => {
                if let Some(from) = unchecked_tail(&root.join(rel), p.size, d)? {
                    files.push((rel, from.0, from.1));
                }
            }
            _ => files.push((rel, 0, 1)),
        }
    }
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let found = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(files.len()))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    while let Some(&(rel, from, line)) =
                        files.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        cancel.check()?;
                        let path = root.join(rel);
                        if let Some(issue) = crate::jsonl::check_file(&path, from, line, rel)? {
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

/// What of the snapshot file `path` (digest `d`), grown from a sound earlier copy of
/// `prefix` bytes, is left to check: `None` when nothing was appended; else where its first
/// new line starts and that line's number. When the earlier copy does not end with a whole
/// line, the file is checked whole (`(0, 1)`): its last line goes on in the tail.
fn unchecked_tail(path: &Path, prefix: u64, d: &FileDigest) -> Result<Option<(u64, u64)>> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    if prefix == d.size {
        return Ok(None);
    }
    let file = std::fs::File::open(path).at("open", path)?;
    if prefix > 0 {
        let mut last = [0u8];
        file.read_exact_at(&mut last, prefix - 1).at("read", path)?;
        if last[0] != b'\n' {
            return Ok(Some((0, 1)));
        }
    }
    // The tail's lines: the lines before it are the file's less those.
    let mut tail = std::io::BufReader::with_capacity(256 * 1024, &file);
    std::io::Seek::seek(&mut tail, std::io::SeekFrom::Start(prefix)).at("read", path)?;
    let mut block = vec![0u8; 256 * 1024];
    let mut lines = 0u64;
    loop {
        let n = tail.read(&mut block).at("read", path)?;
        if n == 0 {
            break;
        }
        lines += block[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok(Some((prefix, d.lines.saturating_sub(lines) + 1)))
}

/// A file of the new snapshot: where it came from, its digest, what it is known to begin
/// with, and its blocks (see [`fsx::blocks`]).
type CopiedFile<'s> = (&'s Source, FileDigest, Option<Prefix>, Option<Blocks>);

/// Growable files waiting for the gate hold an open handle each: at most this many in all.
const MAX_WAITING: usize = 256;

/// Where to split `sources` so that both parts hold about as many bytes.
fn half_by_size(sources: &[Source]) -> usize {
    let sizes: Vec<u64> = sources
        .iter()
        .map(|s| std::fs::metadata(&s.path).map_or(0, |m| m.len()))
        .collect();
    let total: u64 = sizes.iter().sum();
    let mut sum = 0;
    sizes
        .iter()
        .position(|n| {
            sum += n;
            sum * 2 >= total
        })
        .map_or(0, |i| i + 1)
}

/// Two parts of a copy as one.
fn merge<'s>(
    a: Result<(Vec<CopiedFile<'s>>, Grown)>,
    b: Result<(Vec<CopiedFile<'s>>, Grown)>,
) -> Result<(Vec<CopiedFile<'s>>, Grown)> {
    let ((mut a, ga), (b, gb)) = (a?, b?);
    a.extend(b);
    Ok((
        a,
        Grown {
            files: ga.files + gb.files,
            bytes_shared: ga.bytes_shared + gb.bytes_shared,
            blocks_reused: ga.blocks_reused + gb.blocks_reused,
            ..Grown::default()
        },
    ))
}

/// An earlier snapshot's copy of a file, and its size and digest.
type Earlier<'b> = (PathBuf, &'b Prefix);

/// Copy (or grow, see [`Base`], or with `link` hard-link, see [`super::CaptureOptions`]) the
/// workspace files `sources` into `root`.
fn copy_files<'s>(
    sources: &'s [Source],
    root: &Path,
    base: Option<&Base<'_>>,
    (link, max_waiting): (bool, usize),
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<(Vec<CopiedFile<'s>>, Grown)> {
    let mut copied = Vec::with_capacity(sources.len());
    let mut waiting = Vec::new();
    let mut grown = Grown::default();
    let mut finish = |source: &'s Source, growable: Option<(Growable, Earlier<'_>)>| {
        let src = &source.path;
        let dst = root.join(&source.rel);
        let ((d, blocks), prefix) = match growable {
            Some((g, (old, prefix))) => {
                let (shared, reused) = (g.hashed.size(), g.reused);
                match grow::grow(g, &old, &dst)? {
                    Some(d) => {
                        grown.files += 1;
                        grown.bytes_shared += shared;
                        grown.blocks_reused += reused;
                        (d, Some(prefix.clone()))
                    }
                    None => (super::copy_unsynced_blocks(src, &dst)?, None),
                }
            }
            None if link => (fsx::link_new(src, &dst)?, None),
            None => (super::copy_unsynced_blocks(src, &dst)?, None),
        };
        progress.advance(d.size);
        copied.push((source, d, prefix, blocks));
        Ok::<_, crate::Error>(())
    };
    for source in sources {
        let (src, rel) = (&source.path, &source.rel);
        cancel.check()?;
        let earlier = base.and_then(|b| {
            let whole = b.files.get(rel)?;
            Some((b, b.dir.join(rel), whole))
        });
        let Some((b, old, whole)) = earlier else {
            finish(source, None)?;
            continue;
        };
        let Some(g) = check_growable(src, &old, whole.size, b.blocks.get(rel))? else {
            finish(source, None)?;
            continue;
        };
        // Unchanged: linked now (nothing is written to the earlier copy, so no gate).
        if g.unchanged {
            finish(source, Some((g, (old, whole))))?;
            continue;
        }
        if whole.size < GROW_MIN {
            finish(source, None)?;
            continue;
        }
        // The earlier copy may grow only once the archive holds it (see `Gate`).
        let open = match b.gate.decided(rel) {
            None if waiting.len() < max_waiting => {
                waiting.push((source, (old, whole), g));
                continue;
            }
            None => b.gate.wait(rel, cancel),
            Some(open) => open,
        };
        // Those waiting whose entries the archive has written by now.
        let mut i = 0;
        while i < waiting.len() {
            match b.gate.decided(&waiting[i].0.rel) {
                Some(open) => {
                    let (source, old, g) = waiting.remove(i);
                    finish(source, open.then_some((g, old)))?;
                }
                None => i += 1,
            }
        }
        finish(source, open.then_some((g, (old, whole))))?;
    }
    for (source, old, g) in waiting {
        cancel.check()?;
        let open = base.is_some_and(|b| b.gate.wait(&source.rel, cancel));
        finish(source, open.then_some((g, old)))?;
    }
    Ok((copied, grown))
}

/// The database part of a snapshot: the copy's digest, its row counts and the local tables
/// exported as JSONL.
struct DbCapture {
    digest: FileDigest,
    /// The copy's blocks (see [`fsx::blocks`]), for the next create.
    blocks: Option<Blocks>,
    tables: BTreeMap<String, u64>,
    /// The local tables exported: rows, digest and, for an export grown from the earlier
    /// snapshot's, that export's size and checksum.
    local: Vec<(&'static str, u64, FileDigest, Option<Prefix>)>,
    notes: Vec<String>,
    /// Pages of the copy, pages written and blocks whose hash was kept, when it was brought up
    /// to date page by page.
    pages: Option<(u64, u64, u64)>,
    checked: Checked,
}

/// Whether a database copy was found sound by `PRAGMA quick_check` (see [`super::DbCheck`]).
enum Checked {
    /// At its own instant.
    Now,
    /// Not itself: the database was last found sound then (never, as far as we know, if
    /// `None`).
    Before(Option<chrono::DateTime<chrono::Utc>>),
}

fn join_db(h: std::thread::ScopedJoinHandle<'_, Result<DbCapture>>) -> Result<DbCapture> {
    h.join()
        .unwrap_or_else(|_| Err(crate::Error::Invalid("the database thread panicked".into())))
}

/// How the database lane copies: from [`CaptureOptions`] and the staging's durability.
#[derive(Debug, Clone, Copy)]
struct DbLane {
    /// How long to wait for a locked database.
    wait: Duration,
    check: super::DbCheck,
    /// Flush the copy (not for a scratch staging).
    sync: bool,
    /// Hard-link the live file when it alone holds the whole database ([`CaptureOptions::link`]).
    link: bool,
}

/// Copy the database into `root` as one consistent snapshot: page by page from the earlier
/// snapshot's copy when there is one ([`capture_incremental`]), otherwise whole.
fn capture_database(
    db_path: &Path,
    root: &Path,
    base: Option<&Base<'_>>,
    lane: DbLane,
    taken: &std::sync::mpsc::Sender<std::time::Instant>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<DbCapture> {
    let dst = root.join(DB_PATH);
    fsx::create_dir_all(dst.parent().unwrap_or(root))?;
    let size = std::fs::metadata(db_path).map(|m| m.len()).unwrap_or(0);
    let earlier = base.and_then(|b| {
        let whole = b.files.get(DB_PATH)?;
        let old = b.dir.join(DB_PATH);
        std::fs::metadata(&old)
            .is_ok_and(|m| m.len() == whole.size)
            .then_some((b, old, whole))
    });
    if let Some((b, old, whole)) = earlier
        && let Some(snap) = database::pages::Snapshot::open(db_path, lane.wait)?
        && snap.fits(&old)
    {
        let _ = taken.send(snap.taken);
        let done = capture_incremental(snap, (b, &old, whole), root, lane.check, cancel)?;
        progress.advance(size);
        return Ok(done);
    }
    capture_whole(db_path, root, lane, taken, progress, cancel)
}

/// Bring the earlier snapshot's copy `old` up to the state of the live database `snap` holds,
/// writing only the pages that differ ([`database::pages`]). The integrity check (when `check`
/// says it is due), the row counts and the local tables are read from the live database
/// inside the same read transaction, so they describe the very instant the pages are of, and
/// all of it runs before the gate opens, beside the archive of the earlier snapshot; once the
/// gate opens, the pages are written into `current/`'s copy (hard-linked, with an undo file).
fn capture_incremental(
    snap: database::pages::Snapshot,
    (base, old, whole): (&Base<'_>, &Path, &Prefix),
    root: &Path,
    check: super::DbCheck,
    cancel: &Cancel,
) -> Result<DbCapture> {
    let db_path = snap.path().to_path_buf();
    let work = base.work.join(super::DB_WORK);
    let known = base.blocks.get(DB_PATH);
    let mut delta = snap.diff(old, (&whole.checksum, known), &work, cancel)?;
    let checked = check.due(base.db_checked, delta.changed, delta.pages);
    let read = (|| -> Result<_> {
        let conn = snap.conn();
        if checked {
            database::check_integrity(conn, &db_path)?;
        }
        let tables = database::table_counts(conn, &db_path)?;
        let mut local = Vec::new();
        let mut notes = Vec::new();
        for table in LOCAL_TABLES {
            cancel.check()?;
            if !tables.contains_key(table) {
                notes.push(format!("messages.db has no table {table}: not exported"));
                continue;
            }
            match kept_local(conn, (base, old), table, &delta, (root, &db_path))? {
                Some(kept) => local.push((table, kept)),
                None => {
                    let (rows, d) = export_local(root, table, |w| {
                        database::export_table_from(conn, &db_path, table, w)
                    })?;
                    local.push((table, Local::Done(rows, d)));
                }
            }
        }
        Ok((tables, local, notes))
    })();
    drop(snap);
    let (tables, local, notes) = match read {
        Ok(r) => r,
        Err(e) => {
            delta.discard();
            return Err(e);
        }
    };
    // `current/`'s copy may change only once the archive holds it (see `Gate`): the archive
    // writes it near its start, so the pages go in while it still copies the logs.
    let open = base.gate.wait(DB_PATH, cancel);
    if let Err(e) = cancel.check() {
        delta.discard();
        return Err(e);
    }
    let (pages, written, digest) = (delta.pages, delta.changed, delta.digest.clone());
    let reused = delta.reused;
    let blocks = delta.blocks.take();
    let record = crate::archive::PageChanges {
        entry: DB_PATH.into(),
        page_size: delta.page_size,
        from_len: whole.size,
        from: whole.checksum.clone(),
        to_len: digest.size,
        to: digest.checksum.clone(),
        changed: std::mem::take(&mut delta.ranges),
    };
    let dst = root.join(DB_PATH);
    delta.apply(&dst, open, &super::db_undo(&base.work))?;
    fsx::set_mode(&dst, 0o600)?;
    let local = local
        .into_iter()
        .map(|(table, l)| match l {
            Local::Done(rows, d) => Ok((table, rows, d, None)),
            Local::Appended(a) => {
                let (rows, prefix) = (a.rows, a.prefix.clone());
                let rel = format!("local/{table}.jsonl");
                let open = base.gate.wait(&rel, cancel);
                let d = a.grow(&root.join(rel), open)?;
                Ok((table, rows, d, Some(prefix)))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    // For the next archive, which will archive this copy (see `archive::PageChanges`). A
    // cache: the archive of `current/` read the record of `current/`'s own pages when it
    // began, and has written the database (the gate), so nothing reads it any more; once
    // this snapshot is published, the record is of it. Unsaved, the next archive reads the
    // whole copy.
    let _ = crate::archive::save_page_changes(&base.dir, &record);
    Ok(DbCapture {
        digest,
        blocks,
        tables,
        local,
        notes,
        pages: Some((pages, written, reused)),
        checked: if checked {
            Checked::Now
        } else {
            Checked::Before(base.db_checked)
        },
    })
}

/// The earlier snapshot's export of the local table `table`, kept for this snapshot when the
/// table's rows are the earlier copy `old`'s ([`database::appended::since`], by the pages
/// `delta` found different): linked when they are the same rows, grown when rows were only
/// appended ([`AppendedExport`]). `None`: export it afresh (also when the earlier export is
/// no longer what its manifest says).
fn kept_local(
    conn: &rusqlite::Connection,
    (base, old): (&Base<'_>, &Path),
    table: &str,
    delta: &database::pages::Delta,
    (root, db_path): (&Path, &Path),
) -> Result<Option<Local>> {
    use database::appended::Since;
    let rel = format!("local/{table}.jsonl");
    let (Some(entry), Some(&rows)) = (base.files.get(&rel), base.local_rows.get(table)) else {
        return Ok(None);
    };
    let kept = match database::appended::since(conn, old, table, &delta.ranges) {
        Since::Unchanged => unchanged_local(base, &rel, entry, root)?.map(|d| Local::Done(rows, d)),
        Since::AppendedAfter(after) => {
            let earlier = (base.dir.join(&rel), entry, rows);
            appended_local(conn, earlier, table, after, db_path)?.map(Local::Appended)
        }
        Since::Changed => None,
    };
    Ok(kept)
}

/// The earlier snapshot's export `rel` of a table whose rows are unchanged, hard-linked into
/// `root`: its export would be the same bytes. The linked file is hashed to be sure it is
/// still what the earlier manifest `entry` says; if not, `None`.
fn unchanged_local(
    base: &Base<'_>,
    rel: &str,
    entry: &Prefix,
    root: &Path,
) -> Result<Option<FileDigest>> {
    let dst = root.join(rel);
    fsx::create_dir_all(dst.parent().unwrap_or(root))?;
    if std::fs::hard_link(base.dir.join(rel), &dst).is_err() {
        return Ok(None);
    }
    let d = fsx::digest_file(&dst)?;
    if d.size != entry.size || d.checksum != entry.checksum {
        fsx::remove_any(&dst)?;
        return Ok(None);
    }
    Ok(Some(d))
}

/// A local table's export, as the database lane leaves it until the gate opens.
enum Local {
    /// Written or linked: its rows and digest.
    Done(u64, FileDigest),
    /// To be grown from the earlier snapshot's export.
    Appended(AppendedExport),
}

/// Above this many bytes, the rows appended to a local table are exported with the rest
/// instead of held in memory until the gate opens.
const MOST_APPENDED: usize = 16 << 20;

/// The earlier snapshot's export of a local table whose rows were only appended to since
/// ([`database::appended::appended_after`]), checked against its manifest entry and hashed,
/// and the export of the new rows: once the earlier snapshot is archived, the export is grown
/// in place like a log ([`Base`]; a failed create cuts it back).
struct AppendedExport {
    earlier: PathBuf,
    prefix: Prefix,
    hashed: fsx::HashingWriter<std::io::Sink>,
    tail: Vec<u8>,
    rows: u64,
}

/// `table`'s export as the `earlier` snapshot's (its path, manifest entry and rows) plus the
/// rows after `after` ([`AppendedExport`]); `None`: export it whole.
fn appended_local(
    conn: &rusqlite::Connection,
    (earlier, entry, rows): (PathBuf, &Prefix, u64),
    table: &str,
    after: i64,
    db_path: &Path,
) -> Result<Option<AppendedExport>> {
    use std::io::{Read as _, Seek as _};
    use std::os::unix::fs::MetadataExt as _;
    // Grown in place: a copy linked from elsewhere too would grow there as well.
    match std::fs::symlink_metadata(&earlier) {
        Ok(m) if m.is_file() && m.len() == entry.size && m.nlink() == 1 => {}
        _ => return Ok(None),
    }
    let mut tail = Bounded(Vec::new());
    let added = match database::export_table_after(conn, db_path, table, after, &mut tail) {
        Ok(n) => n,
        Err(_) if tail.0.len() >= MOST_APPENDED => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (d, blocks) = fsx::digest_file_blocks(&earlier)?;
    if d.size != entry.size || d.checksum != entry.checksum {
        return Ok(None);
    }
    let whole = blocks
        .as_ref()
        .and_then(|b| b.whole_prefix((d.size / fsx::blocks::BLOCK) as usize));
    let mut hashed = match whole {
        Some(prefix) => fsx::HashingWriter::resume(std::io::sink(), prefix),
        None => fsx::HashingWriter::new(std::io::sink()),
    };
    // The bytes after the whole blocks: hashed again so that the hash can go on.
    let mut file = std::fs::File::open(&earlier).at("open", &earlier)?;
    file.seek(std::io::SeekFrom::Start(hashed.size()))
        .at("read", &earlier)?;
    std::io::copy(&mut file.take(d.size - hashed.size()), &mut hashed).at("read", &earlier)?;
    Ok(Some(AppendedExport {
        earlier,
        prefix: entry.clone(),
        hashed,
        tail: tail.0,
        rows: rows + added,
    }))
}

impl AppendedExport {
    /// Make `dst` the earlier export followed by the new rows: the earlier file itself,
    /// linked and appended to, when the gate is `open` (the earlier snapshot is archived);
    /// else a copy of it. Returns the digest of the whole.
    fn grow(self, dst: &Path, open: bool) -> Result<FileDigest> {
        use std::io::Write as _;
        if let Some(parent) = dst.parent() {
            fsx::create_dir_all(parent)?;
        }
        let linked = open && std::fs::hard_link(&self.earlier, dst).is_ok();
        if !linked {
            fsx::copy_verified_unsynced(&self.earlier, dst)?;
        }
        let file = std::fs::File::options()
            .append(true)
            .open(dst)
            .at("open", dst)?;
        let mut w = self.hashed.redirect(file);
        w.write_all(&self.tail).at("write", dst)?;
        // Flushed to disk with the rest of the snapshot (see `Staging::finish`).
        let (_, d) = w.finish();
        Ok(d)
    }
}

/// A `Vec` that refuses to grow past [`MOST_APPENDED`].
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MOST_APPENDED {
            self.0.resize(MOST_APPENDED, 0);
            return Err(std::io::Error::other(
                "more appended rows than are held in memory",
            ));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Copy the database into `root` whole as one consistent snapshot, then flush it to disk,
/// check it, hash it and export thrum's local tables side by side: all four only read the
/// copy, and the flush mostly waits for the disk while the others use the CPU.
fn capture_whole(
    db_path: &Path,
    root: &Path,
    lane: DbLane,
    taken: &std::sync::mpsc::Sender<std::time::Instant>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<DbCapture> {
    let (sync, check) = (lane.sync, lane.check);
    let dst = root.join(DB_PATH);
    let size = std::fs::metadata(db_path).map(|m| m.len()).unwrap_or(0);
    // A live file that alone holds its whole database (nothing in a `-wal`, no `-journal`)
    // while nothing writes to it is its own consistent copy: a restore's safety snapshot
    // links it (the restore only ever renames it aside) instead of writing every page again.
    // It is read where it lives, so that SQLite's side files stay beside the live file.
    let linked =
        lane.link && database::self_contained(db_path) && std::fs::hard_link(db_path, &dst).is_ok();
    let read = if linked { db_path } else { dst.as_path() };
    if !linked {
        database::copy_unchecked(db_path, &dst, lane.wait)?;
        // Every file of a snapshot is private; SQLite made this one with the default mode.
        fsx::set_mode(&dst, 0o600)?;
    }
    let _ = taken.send(std::time::Instant::now());
    progress.advance(size);
    cancel.check()?;
    let present = database::table_names(read)?;
    std::thread::scope(|s| {
        // A scratch copy is not flushed: only its archive must last (it is synced).
        let synced = (sync && !linked).then(|| s.spawn(|| database::sync_copy(&dst)));
        let checked = (!check.never).then(|| s.spawn(|| database::check_copy(read, db_path)));
        let digest = s.spawn(|| fsx::digest_file_blocks(&dst));
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
            match export_local(root, table, |w| database::export_table(read, table, w)) {
                Ok((rows, d)) => local.push((table, rows, d, None)),
                Err(e) => {
                    exported = Err(e);
                    break;
                }
            }
        }
        let panicked = || crate::Error::Invalid("a database thread panicked".into());
        // The integrity check's verdict comes first: a corrupt database is the real news.
        let (tables, sound) = match checked {
            Some(h) => (h.join().map_err(|_| panicked())??, Checked::Now),
            // Unchecked, kept as it is: a damaged copy may not even count its rows.
            None => match database::count_copy(read) {
                Ok(tables) => (tables, Checked::Before(None)),
                Err(e) => {
                    notes.push(format!("{e}: the copy is saved as it is"));
                    (BTreeMap::new(), Checked::Before(None))
                }
            },
        };
        let (digest, blocks) = digest.join().map_err(|_| panicked())??;
        exported?;
        if let Some(synced) = synced {
            synced.join().map_err(|_| panicked())??;
        }
        Ok(DbCapture {
            digest,
            blocks,
            tables,
            local,
            notes,
            pages: None,
            checked: sound,
        })
    })
}

/// Write `local/<table>.jsonl` below `root` with `export` (one of the database's exports).
fn export_local(
    root: &Path,
    table: &str,
    export: impl FnOnce(&mut dyn std::io::Write) -> std::result::Result<u64, database::DbError>,
) -> Result<(u64, FileDigest)> {
    let mut rows = 0;
    let mut failure = None;
    let path = root.join(format!("local/{table}.jsonl"));
    let written = fsx::write_new_unsynced(&path, fsx::Algorithm::Blake3, |w| match export(w) {
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
    Ok((rows, written.1))
}
