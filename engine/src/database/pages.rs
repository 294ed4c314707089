//! Bringing an earlier copy of `messages.db` up to a live database's state page by page,
//! writing only the pages that differ: `sqlite3_rsync`'s method (SQLite's `sqlite_dbpage`
//! virtual table gives each page image as of one read transaction), done locally, so pages are
//! compared byte for byte instead of by hash.
//!
//! It runs in two steps because the earlier copy is `current/`'s and may change only once
//! `current/` is archived:
//!
//! 1. [`Snapshot::diff`] reads every page of the live database at one instant (the snapshot's
//!    read transaction) beside the earlier copy, hashes the new content as it goes, and
//!    writes the pages that differ to a *redo* file and their earlier contents (and those of
//!    pages the database has since dropped) to an *undo* file. Nothing of the copy changes.
//! 2. [`Delta::apply`] arms the undo file (fsync, then a rename gives it its final name),
//!    hard-links the earlier copy as the new one and writes the redo pages into it. From the
//!    rename on, a failure or a kill is undone by [`roll_back`], which puts the earlier bytes
//!    and length back; it is idempotent, so an interrupted roll-back is simply run again.
//!
//! Why not SQLite's session extension or `sqlite3_rsync` itself: the session extension
//! records changes made through one connection (thrum's daemon's, not ours), and
//! `sqlite3_rsync` is a program that talks to a copy of itself over a pipe; its core is this
//! page comparison, which needs no protocol when both files are local.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{DbError, is_busy, sql};
use crate::error::{IoContext, Result};
use crate::fsx::blocks::{BLOCK, Block, Blocks};
use crate::fsx::{self, Checksum, FileDigest, HashingWriter};
use crate::progress::Cancel;

/// Offsets of the database header's "file format write/read version" bytes: 2 in WAL mode,
/// 1 in rollback-journal mode. A copy is a single file, so it is always 1 (what
/// `PRAGMA journal_mode = DELETE` writes there).
const FORMAT_VERSION_BYTES: std::ops::Range<usize> = 18..20;

/// How much of the live database [`Snapshot::diff`] reads through one memory map before it
/// maps afresh.
///
/// Reading pages through SQLite's memory map (`PRAGMA mmap_size`) instead of one `pread` per
/// page saves the copy into SQLite's page cache and most of the system time of the scan. One
/// map of the whole file would keep every page it touched resident in this process (its RSS
/// grows by the database's size), so the map is dropped and made again every window: the
/// pages of a window leave the process with it, and the peak stays a window. Tests use a small
/// window so that a test database crosses many.
#[cfg(not(test))]
const MAP_WINDOW: u64 = 4 << 20;
#[cfg(test)]
const MAP_WINDOW: u64 = 64 << 10;

/// The live database's memory map during [`Snapshot::diff`], renewed every [`MAP_WINDOW`].
///
/// SQLite reads a page through the map only when the read transaction sees no newer frame of
/// it in the WAL (else from the WAL, as before), so the pages are those of the snapshot's
/// instant either way. Setting `mmap_size` unmaps only while no mapped page is referenced, and
/// `sqlite_dbpage` lets go of each page once its column is read, so renewing between rows
/// takes effect (SQLite 3.54's `unixFileControl`/`dbpage` code, bundled by libsqlite3-sys).
/// Page 1 is never read through the map; pages past SQLite's 2 GiB cap on a map are read
/// by `pread` as without one.
struct MapWindow<'c> {
    conn: &'c Connection,
    /// Pages per window.
    pages: u64,
}

impl<'c> MapWindow<'c> {
    fn new(conn: &'c Connection, page_size: u64) -> Self {
        Self {
            conn,
            pages: (MAP_WINDOW / page_size).max(1),
        }
    }

    /// Drop the current map (and the pages it holds) and allow a new one.
    fn renew(&self) -> rusqlite::Result<()> {
        self.conn.pragma_update(None, "mmap_size", 0)?;
        self.conn.pragma_update(None, "mmap_size", i64::MAX)
    }
}

impl Drop for MapWindow<'_> {
    fn drop(&mut self) {
        // The connection goes on reading (counts, exports) by `pread`; a failure here leaves
        // a map that is dropped with the connection.
        let _ = self.conn.pragma_update(None, "mmap_size", 0);
    }
}

/// The first line of an undo file, in JSON.
#[derive(Debug, Serialize, Deserialize)]
struct UndoHeader {
    /// The undo format.
    format: u32,
    page_size: u64,
    /// The earlier copy's length, to cut it back to.
    old_len: u64,
    /// The earlier copy's checksum as its manifest records it: a roll-back applies only to
    /// the snapshot whose copy this was.
    base: Checksum,
}

/// A live database held at one instant: a read transaction on a read-only connection. In WAL
/// mode (thrum's) the daemon goes on writing meanwhile; in rollback-journal mode its writes
/// wait until this is dropped.
pub struct Snapshot {
    conn: Connection,
    path: PathBuf,
    /// When the instant was taken.
    pub taken: Instant,
}

impl Snapshot {
    /// Open `src` and start a read transaction on it, waiting up to `wait` while it is locked.
    /// `None` when this SQLite has no `sqlite_dbpage` table (built without
    /// `SQLITE_ENABLE_DBPAGE_VTAB`).
    pub fn open(src: &Path, wait: Duration) -> std::result::Result<Option<Self>, DbError> {
        super::readable(src)?;
        let conn = super::open_read_only(src, src, "open")?;
        conn.busy_timeout(Duration::from_millis(200))
            .map_err(sql(src, "configure"))?;
        if conn
            .prepare("SELECT pgno FROM sqlite_dbpage WHERE pgno = 1")
            .is_err()
        {
            return Ok(None);
        }
        let start = Instant::now();
        loop {
            // The first read of the transaction fixes its instant.
            let began = conn.execute_batch("BEGIN").and_then(|()| {
                conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                    r.get::<_, i64>(0)
                })
            });
            match began {
                Ok(_) => break,
                Err(e) if is_busy(&e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    if start.elapsed() > wait {
                        return Err(DbError::Locked {
                            path: src.to_path_buf(),
                            waited: start.elapsed(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(sql(src, "start a read transaction")(e)),
            }
        }
        Ok(Some(Self {
            conn,
            path: src.to_path_buf(),
            taken: Instant::now(),
        }))
    }

    /// The live database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, inside the snapshot's read transaction: whatever it reads is of the
    /// same instant as the pages.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Whether the earlier copy `old` can be brought up to date page by page: a database
    /// file of a whole number of pages of this database's page size.
    pub fn fits(&self, old: &Path) -> bool {
        let live = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
            .ok();
        let Ok(mut file) = File::open(old) else {
            return false;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(1);
        page_size_of(&mut file).is_some_and(|size| live == Some(size as i64) && len % size == 0)
    }

    /// Compare every page of the snapshot with the earlier copy `old` (whose manifest
    /// checksum is `base`; [`Snapshot::fits`] said yes). The pages that differ go to the redo
    /// file `<work>.redo`, their earlier contents to the undo file `<work>.undo.part`, not yet
    /// armed (see [`Delta::apply`]).
    ///
    /// With the earlier copy's `known` blocks (checked against `base`), a block of the new copy
    /// none of whose pages differ keeps its chaining value instead of being hashed again
    /// ([`fsx::blocks`]).
    pub fn diff(
        &self,
        old: &Path,
        (base, known): (&Checksum, Option<&Blocks>),
        work: &Path,
        cancel: &Cancel,
    ) -> Result<Delta> {
        let src = &self.path;
        let mut old_file = File::open(old).at("open", old)?;
        let old_meta = old_file.metadata().at("read metadata of", old)?;
        let unfit = || {
            crate::Error::Invalid(format!(
                "{}: not a copy of {}'s pages",
                old.display(),
                src.display()
            ))
        };
        let old_page_size = page_size_of(&mut old_file).ok_or_else(unfit)?;
        let mut old_reader = BufReader::with_capacity(1 << 20, old_file);
        let redo_path = fsx::with_suffix(work, ".redo");
        let undo_path = fsx::with_suffix(work, ".undo.part");
        let header = UndoHeader {
            format: 1,
            page_size: old_page_size,
            old_len: old_meta.len(),
            base: base.clone(),
        };
        let mut redo = BufWriter::with_capacity(1 << 20, create_new(&redo_path)?);
        let mut undo = TrailedWriter::new(create_new(&undo_path)?);
        let mut line = serde_json::to_vec(&header)
            .map_err(std::io::Error::other)
            .at("write", &undo_path)?;
        line.push(b'\n');
        undo.write_all(&line).at("write", &undo_path)?;

        let map = MapWindow::new(&self.conn, old_page_size);
        map.renew().map_err(sql(src, "map pages"))?;
        let mut stmt = self
            .conn
            .prepare("SELECT pgno, data FROM sqlite_dbpage")
            .map_err(sql(src, "read pages"))?;
        let mut rows = stmt.query([]).map_err(sql(src, "read pages"))?;
        let known = known.filter(|k| k.size() == old_meta.len());
        let mut tree = Tree::new(known);
        let mut old_page = vec![0u8; old_page_size as usize];
        let (mut pages, mut changed) = (0u64, 0u64);
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let old_pages = old_meta.len() / old_page_size;
        while let Some(row) = rows.next().map_err(sql(src, "read pages"))? {
            let pgno: i64 = row.get(0).map_err(sql(src, "read pages"))?;
            let mut data = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(sql(src, "read pages"))?;
            if data.len() as u64 != old_page_size || pgno != pages as i64 + 1 {
                return Err(unfit());
            }
            let page_1: Vec<u8>;
            if pgno == 1 {
                let mut p = data.to_vec();
                p[FORMAT_VERSION_BYTES].fill(1);
                page_1 = p;
                data = &page_1;
            }
            pages += 1;
            if pages % 4096 == 0 {
                cancel.check()?;
            }
            if pages % map.pages == 0 {
                map.renew().map_err(sql(src, "map pages"))?;
            }
            let had = pages <= old_pages;
            if had {
                old_reader.read_exact(&mut old_page).at("read", old)?;
            }
            let same = had && old_page == data;
            tree.page(data, !same);
            if same {
                continue;
            }
            if had {
                write_page(&mut undo, pages, &old_page).at("write", &undo_path)?;
            }
            write_page(&mut redo, pages, data).at("write", &redo_path)?;
            changed += 1;
            match ranges.last_mut() {
                Some((_, last)) if *last + 1 == pages => *last = pages,
                _ => ranges.push((pages, pages)),
            }
        }
        drop(rows);
        drop(stmt);
        drop(map);
        // Pages the database has dropped since: cutting the copy short loses them.
        for pgno in pages + 1..=old_pages {
            old_reader.read_exact(&mut old_page).at("read", old)?;
            write_page(&mut undo, pgno, &old_page).at("write", &undo_path)?;
        }
        redo.flush().at("write", &redo_path)?;
        undo.finish().at("write", &undo_path)?;
        let reused = tree.reused;
        let (digest, blocks) = tree.finish();
        Ok(Delta {
            page_size: old_page_size,
            pages,
            changed,
            ranges,
            old: old.to_path_buf(),
            old_id: (
                old_meta.dev(),
                old_meta.ino(),
                old_meta.len(),
                old_meta.mtime_nsec(),
            ),
            redo: redo_path,
            undo_part: undo_path,
            digest,
            blocks,
            reused,
        })
    }
}

/// What [`Snapshot::diff`] found: the pages to write, and the new copy's digest.
#[derive(Debug)]
pub struct Delta {
    /// Bytes per page.
    pub page_size: u64,
    /// Pages of the database at the snapshot's instant.
    pub pages: u64,
    /// Pages that differ from the earlier copy (or are new).
    pub changed: u64,
    /// Those pages (numbered from 1), as sorted inclusive ranges.
    pub ranges: Vec<(u64, u64)>,
    old: PathBuf,
    /// Device, inode, length and mtime of the earlier copy when it was read.
    old_id: (u64, u64, u64, i64),
    redo: PathBuf,
    undo_part: PathBuf,
    /// The digest of the new copy: every page of the snapshot, hashed as it was read (or, in
    /// blocks of unchanged pages, as the earlier copy's blocks say).
    pub digest: FileDigest,
    /// The new copy's blocks (see [`fsx::blocks`]), when it is longer than one.
    pub blocks: Option<Blocks>,
    /// Of those, the blocks whose hash was the earlier copy's, not hashed again.
    pub reused: u64,
}

/// The new copy's blocks, hashed as its pages go by: a block none of whose pages changed
/// keeps the earlier copy's chaining value and line count (see [`fsx::blocks`]). Pages are
/// hashed a block at a time, not one by one: BLAKE3 hashes 16 KiB and more several chunks at
/// a time (SIMD lanes), a 4 KiB page only four.
struct Tree<'k> {
    known: &'k [Block],
    done: Vec<Block>,
    /// The pages of the block being filled.
    buf: Vec<u8>,
    /// One of them differs from the earlier copy's.
    dirty: bool,
    /// CRC-32 of the copy up to the block being filled.
    crc: crc32fast::Hasher,
    /// Blocks that kept the earlier copy's chaining value.
    reused: u64,
}

impl<'k> Tree<'k> {
    fn new(known: Option<&'k Blocks>) -> Self {
        Self {
            known: known.map_or(&[], |k| &k.0[..]),
            done: Vec::new(),
            buf: Vec::with_capacity(BLOCK as usize),
            dirty: false,
            crc: crc32fast::Hasher::new(),
            reused: 0,
        }
    }

    /// The next page, and whether it differs from the earlier copy's. (A page size divides
    /// [`BLOCK`].)
    fn page(&mut self, data: &[u8], changed: bool) {
        // A whole block closes only once more follows: a copy of one block needs its root.
        if self.buf.len() as u64 == BLOCK {
            self.close();
        }
        self.buf.extend_from_slice(data);
        self.dirty |= changed;
    }

    fn close(&mut self) {
        let i = self.done.len();
        let offset = i as u64 * BLOCK;
        let block = match self.known.get(i) {
            // The same bytes at the same offset: the same chaining value.
            Some(k) if !self.dirty && k.len as usize == self.buf.len() => {
                self.reused += 1;
                self.crc.update(&self.buf);
                Block {
                    crc_to: self.crc.clone().finalize(),
                    ..*k
                }
            }
            _ => {
                let b = Block::hash(offset, &self.buf, &self.crc);
                self.crc = crc32fast::Hasher::new_with_initial_len(
                    b.crc_to,
                    offset + self.buf.len() as u64,
                );
                b
            }
        };
        self.done.push(block);
        self.buf.clear();
        self.dirty = false;
    }

    fn finish(mut self) -> (FileDigest, Option<Blocks>) {
        if self.done.is_empty() {
            // One block or less: hashed whole, as `blake3::hash` does.
            let mut h = HashingWriter::new(std::io::sink());
            let _ = h.write_all(&self.buf);
            return (h.finish().1, None);
        }
        if !self.buf.is_empty() {
            self.close();
        }
        let blocks = Blocks(self.done);
        match blocks.digest() {
            Some(d) => (d, Some(blocks)),
            None => unreachable!("a copy of more than one block has a tree"),
        }
    }
}

/// How [`Delta::apply`] made the new copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The earlier copy was hard-linked and changed in place; the armed undo file puts it
    /// back ([`roll_back`]) until the new snapshot is published.
    InPlace,
    /// The earlier copy was copied first (it could not change in place): no undo needed.
    Copied,
}

impl Delta {
    /// Write the new copy at `dst`. With `in_place`, the earlier copy is hard-linked and
    /// changed in place once `undo` (the armed undo file) is on disk; otherwise (or when the
    /// earlier copy is linked elsewhere too, or cannot be linked) it is copied first.
    pub fn apply(self, dst: &Path, in_place: bool, undo: &Path) -> Result<Applied> {
        let meta = std::fs::metadata(&self.old).at("read metadata of", &self.old)?;
        let id = (meta.dev(), meta.ino(), meta.len(), meta.mtime_nsec());
        if id != self.old_id {
            return Err(crate::Error::Invalid(format!(
                "{} changed while the backup read it",
                self.old.display()
            )));
        }
        if let Some(parent) = dst.parent() {
            fsx::create_dir_all(parent)?;
        }
        // A copy linked from elsewhere too (`cp -al` of the backup dir) would change there too.
        let applied = if in_place && meta.nlink() == 1 {
            let part = File::open(&self.undo_part).at("open", &self.undo_part)?;
            part.sync_all().at("sync", &self.undo_part)?;
            std::fs::rename(&self.undo_part, undo).at("rename", undo)?;
            fsx::sync_dir(undo.parent().unwrap_or(Path::new(".")))?;
            match std::fs::hard_link(&self.old, dst) {
                Ok(()) => Applied::InPlace,
                Err(_) => {
                    let _ = std::fs::remove_file(undo);
                    std::fs::copy(&self.old, dst).at("copy to", dst)?;
                    Applied::Copied
                }
            }
        } else {
            std::fs::copy(&self.old, dst).at("copy to", dst)?;
            Applied::Copied
        };
        let _ = std::fs::remove_file(&self.undo_part);
        let file = File::options().write(true).open(dst).at("open", dst)?;
        let mut redo =
            BufReader::with_capacity(1 << 20, File::open(&self.redo).at("open", &self.redo)?);
        let mut page = vec![0u8; self.page_size as usize];
        while let Some(pgno) = read_pgno(&mut redo).at("read", &self.redo)? {
            redo.read_exact(&mut page).at("read", &self.redo)?;
            file.write_all_at(&page, (pgno - 1) * self.page_size)
                .at("write", dst)?;
        }
        file.set_len(self.pages * self.page_size)
            .at("truncate", dst)?;
        file.sync_all().at("sync", dst)?;
        let _ = std::fs::remove_file(&self.redo);
        Ok(applied)
    }

    /// Remove the work files (when the delta is not applied).
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.redo);
        let _ = std::fs::remove_file(&self.undo_part);
    }
}

/// Put back the earlier copy `target` from the armed undo file `undo`, if `target` is still
/// the copy whose manifest checksum is `expected` (the undo file names the one it belongs
/// to; a snapshot published since has another). Returns whether it rolled back. Idempotent.
pub fn roll_back(undo: &Path, target: &Path, expected: &Checksum) -> Result<bool> {
    let (header, body) = read_undo(undo)?;
    if header.base != *expected {
        return Ok(false);
    }
    let file = File::options()
        .write(true)
        .open(target)
        .at("open", target)?;
    let mut reader = BufReader::new(File::open(undo).at("open", undo)?);
    reader
        .seek(std::io::SeekFrom::Start(body.start))
        .at("read", undo)?;
    let mut reader = reader.take(body.end - body.start);
    let mut page = vec![0u8; header.page_size as usize];
    while let Some(pgno) = read_pgno(&mut reader).at("read", undo)? {
        if pgno == 0 {
            return Err(crate::Error::Invalid(format!(
                "{}: damaged undo file",
                undo.display()
            )));
        }
        reader.read_exact(&mut page).at("read", undo)?;
        file.write_all_at(&page, (pgno - 1) * header.page_size)
            .at("write", target)?;
    }
    file.set_len(header.old_len).at("truncate", target)?;
    file.sync_all().at("sync", target)?;
    Ok(true)
}

/// The header of the undo file `undo` and the byte range of its pages, once its trailer
/// proves it whole.
fn read_undo(undo: &Path) -> Result<(UndoHeader, std::ops::Range<u64>)> {
    let damaged = || crate::Error::Invalid(format!("{}: damaged undo file", undo.display()));
    let mut file = File::open(undo).at("open", undo)?;
    let len = file.metadata().at("read metadata of", undo)?.len();
    let Some(body_end) = len.checked_sub(32) else {
        return Err(damaged());
    };
    let mut hasher = blake3::Hasher::new();
    let mut left = body_end;
    let mut buf = vec![0u8; 1 << 20];
    let mut first_line = Vec::new();
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        file.read_exact(&mut buf[..n]).at("read", undo)?;
        if first_line.len() < 4096 && !first_line.contains(&b'\n') {
            first_line.extend_from_slice(&buf[..n.min(4096)]);
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    let mut trailer = [0u8; 32];
    file.read_exact(&mut trailer).at("read", undo)?;
    if hasher.finalize().as_bytes() != &trailer {
        return Err(damaged());
    }
    let end = first_line
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(damaged)?;
    let header: UndoHeader = serde_json::from_slice(&first_line[..end]).map_err(|_| damaged())?;
    if header.format != 1 || header.page_size == 0 {
        return Err(damaged());
    }
    Ok((header, end as u64 + 1..body_end))
}

/// The page size in the header of the database file `file`; `None` if it has no valid one.
fn page_size_of(file: &mut File) -> Option<u64> {
    let mut header = [0u8; 100];
    file.read_exact(&mut header).ok()?;
    file.rewind().ok()?;
    if &header[..16] != b"SQLite format 3\0" {
        return None;
    }
    let size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        _ => return None,
    };
    Some(size)
}

fn create_new(path: &Path) -> Result<File> {
    File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .at("create", path)
}

fn write_page(w: &mut impl Write, pgno: u64, page: &[u8]) -> std::io::Result<()> {
    let pgno = u32::try_from(pgno).map_err(std::io::Error::other)?;
    w.write_all(&pgno.to_le_bytes())?;
    w.write_all(page)
}

/// The next record's page number, or `None` at the end.
fn read_pgno(r: &mut impl Read) -> std::io::Result<Option<u64>> {
    let mut b = [0u8; 4];
    match r.read_exact(&mut b) {
        Ok(()) => Ok(Some(u64::from(u32::from_le_bytes(b)))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// A buffered file writer that ends the file with the BLAKE3 of everything before it.
struct TrailedWriter {
    inner: BufWriter<File>,
    hasher: blake3::Hasher,
}

impl TrailedWriter {
    fn new(file: File) -> Self {
        Self {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: blake3::Hasher::new(),
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        let trailer = *self.hasher.finalize().as_bytes();
        self.inner.write_all(&trailer)?;
        self.inner.flush()
    }
}

impl Write for TrailedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsx::digest_file;
    use rusqlite::OpenFlags;

    fn live_db(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE m (id INTEGER PRIMARY KEY, body TEXT);
             CREATE INDEX m_body ON m (body);",
        )
        .unwrap();
        insert(&c, 0..4000);
        c
    }

    fn insert(c: &Connection, ids: std::ops::Range<i64>) {
        c.execute_batch("BEGIN").unwrap();
        for i in ids {
            c.execute(
                "INSERT INTO m VALUES (?1, ?2)",
                rusqlite::params![i, format!("message {i} {}", "x".repeat((i % 97) as usize))],
            )
            .unwrap();
        }
        c.execute_batch("COMMIT").unwrap();
    }

    fn rows(path: &Path) -> Vec<(i64, String)> {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut s = c.prepare("SELECT id, body FROM m ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    /// A copy of `live` as a snapshot holds it, and its manifest checksum.
    fn earlier_copy(live: &Path, old: &Path) -> Checksum {
        super::super::copy_consistent(live, old, Duration::from_secs(5)).unwrap();
        digest_file(old).unwrap().checksum
    }

    fn bring_up_to_date(live: &Path, old: &Path, base: &Checksum, dir: &Path) -> (Delta, PathBuf) {
        bring_up_to_date_with(live, old, (base, None), dir)
    }

    fn bring_up_to_date_with(
        live: &Path,
        old: &Path,
        base: (&Checksum, Option<&Blocks>),
        dir: &Path,
    ) -> (Delta, PathBuf) {
        let snap = Snapshot::open(live, Duration::from_secs(5))
            .unwrap()
            .expect("sqlite_dbpage");
        assert!(snap.fits(old));
        let delta = snap
            .diff(old, base, &dir.join("work"), &Cancel::new())
            .unwrap();
        (delta, dir.join("work.undo"))
    }

    #[test]
    fn blocks_of_unchanged_pages_keep_the_earlier_copys_hash_and_the_digest_is_the_files() {
        let t = tempfile::tempdir().unwrap();
        let (live, old, new) = (
            t.path().join("live.db"),
            t.path().join("old.db"),
            t.path().join("new.db"),
        );
        let c = live_db(&live);
        insert(&c, 4000..30000);
        let base = earlier_copy(&live, &old);
        let (_, known) = fsx::digest_file_blocks(&old).unwrap();
        let known = known.unwrap();
        assert!(known.usable() && known.0.len() > 8, "{}", known.0.len());
        insert(&c, 30000..30040);
        c.execute("UPDATE m SET body = 'edited' WHERE id = 7", [])
            .unwrap();
        let (mut delta, undo) = bring_up_to_date_with(&live, &old, (&base, Some(&known)), t.path());
        assert!(
            delta.reused > 0 && delta.reused < known.0.len() as u64,
            "{} of {}",
            delta.reused,
            known.0.len()
        );
        let digest = delta.digest.clone();
        let blocks = delta.blocks.take().unwrap();
        delta.apply(&new, true, &undo).unwrap();
        let (whole, again) = fsx::digest_file_blocks(&new).unwrap();
        assert_eq!(whole, digest);
        assert_eq!(again, Some(blocks));
        // Blocks that are not the earlier copy's (a stale cache) cannot give a wrong digest:
        // the caller checks them first ([`Blocks::verify`]), and they fail.
        let mut stale = known.clone();
        stale.0[0].cv[0] ^= 1;
        assert!(!stale.verify(known.size(), &base, None));
    }

    #[test]
    fn only_changed_pages_are_written_and_the_undo_puts_the_earlier_copy_back() {
        let t = tempfile::tempdir().unwrap();
        let (live, old, new) = (
            t.path().join("live.db"),
            t.path().join("old.db"),
            t.path().join("new.db"),
        );
        let c = live_db(&live);
        let base = earlier_copy(&live, &old);
        let before = std::fs::read(&old).unwrap();
        insert(&c, 4000..4040);
        c.execute("UPDATE m SET body = 'edited' WHERE id = 7", [])
            .unwrap();
        let snap = Snapshot::open(&live, Duration::from_secs(5))
            .unwrap()
            .expect("sqlite_dbpage");
        let delta = snap
            .diff(&old, (&base, None), &t.path().join("work"), &Cancel::new())
            .unwrap();
        assert!(
            delta.changed > 0 && delta.changed < delta.pages / 4,
            "{delta:?}"
        );
        // The scan crossed several map windows, and left the connection unmapped.
        assert!(delta.pages > 3 * MAP_WINDOW / delta.page_size, "{delta:?}");
        let mapped: i64 = snap
            .conn()
            .query_row("PRAGMA mmap_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mapped, 0);
        drop(snap);
        let undo = t.path().join("work.undo");
        let digest = delta.digest.clone();
        assert_eq!(delta.apply(&new, true, &undo).unwrap(), Applied::InPlace);
        // The new copy: live's rows, sound, a single file, and hashed right as it was read.
        assert_eq!(rows(&new), rows(&live));
        let copy = Connection::open_with_flags(&new, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        super::super::check_integrity(&copy, &new).unwrap();
        let mode: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        drop(copy);
        assert_eq!(digest_file(&new).unwrap(), digest);
        // It was changed in place: the earlier copy is the same file, and the undo file puts
        // it back byte for byte, as often as it is run.
        assert_eq!(std::fs::read(&old).unwrap(), std::fs::read(&new).unwrap());
        assert!(roll_back(&undo, &old, &base).unwrap());
        assert!(roll_back(&undo, &old, &base).unwrap());
        assert_eq!(std::fs::read(&old).unwrap(), before);
    }

    #[test]
    fn a_database_that_shrank_is_cut_short_and_rolled_back_to_its_length() {
        let t = tempfile::tempdir().unwrap();
        let (live, old, new) = (
            t.path().join("live.db"),
            t.path().join("old.db"),
            t.path().join("new.db"),
        );
        let c = live_db(&live);
        let base = earlier_copy(&live, &old);
        let before = std::fs::read(&old).unwrap();
        c.execute("DELETE FROM m WHERE id >= 1000", []).unwrap();
        c.execute_batch("VACUUM").unwrap();
        let (delta, undo) = bring_up_to_date(&live, &old, &base, t.path());
        delta.apply(&new, true, &undo).unwrap();
        assert!(std::fs::metadata(&new).unwrap().len() < before.len() as u64);
        assert_eq!(rows(&new), rows(&live));
        assert!(roll_back(&undo, &old, &base).unwrap());
        assert_eq!(std::fs::read(&old).unwrap(), before);
    }

    #[test]
    fn without_the_gate_the_earlier_copy_is_copied_and_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let (live, old, new) = (
            t.path().join("live.db"),
            t.path().join("old.db"),
            t.path().join("new.db"),
        );
        let c = live_db(&live);
        let base = earlier_copy(&live, &old);
        let before = std::fs::read(&old).unwrap();
        insert(&c, 4000..4100);
        let (delta, undo) = bring_up_to_date(&live, &old, &base, t.path());
        assert_eq!(delta.apply(&new, false, &undo).unwrap(), Applied::Copied);
        assert!(!undo.exists());
        assert_eq!(std::fs::read(&old).unwrap(), before);
        assert_eq!(rows(&new), rows(&live));
    }

    #[test]
    fn an_undo_file_of_another_snapshot_or_damaged_is_not_applied() {
        let t = tempfile::tempdir().unwrap();
        let (live, old, new) = (
            t.path().join("live.db"),
            t.path().join("old.db"),
            t.path().join("new.db"),
        );
        let c = live_db(&live);
        let base = earlier_copy(&live, &old);
        insert(&c, 4000..4100);
        let (delta, undo) = bring_up_to_date(&live, &old, &base, t.path());
        let digest = delta.digest.clone();
        delta.apply(&new, true, &undo).unwrap();
        let after = std::fs::read(&new).unwrap();
        // The snapshot published since has another checksum: nothing is put back.
        assert!(!roll_back(&undo, &new, &digest.checksum).unwrap());
        assert_eq!(std::fs::read(&new).unwrap(), after);
        // A damaged undo file is refused whole, before a byte is written.
        let mut bytes = std::fs::read(&undo).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&undo, &bytes).unwrap();
        let err = roll_back(&undo, &old, &base).unwrap_err().to_string();
        assert!(err.contains("damaged undo file"), "{err}");
        assert_eq!(std::fs::read(&new).unwrap(), after);
    }

    #[test]
    fn the_copy_is_one_instant_while_a_writer_commits_every_5_ms() {
        let t = tempfile::tempdir().unwrap();
        let (live, old, new) = (
            t.path().join("live.db"),
            t.path().join("old.db"),
            t.path().join("new.db"),
        );
        let c = live_db(&live);
        let base = earlier_copy(&live, &old);
        drop(c);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let writer = s.spawn(|| {
                let c = Connection::open(&live).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let mut next = 10_000;
                // Every transaction adds two rows: a consistent copy has an even count.
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    insert(&c, next..next + 2);
                    next += 2;
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            std::thread::sleep(Duration::from_millis(50));
            let (delta, undo) = bring_up_to_date(&live, &old, &base, t.path());
            delta.apply(&new, true, &undo).unwrap();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            writer.join().unwrap();
        });
        let n = rows(&new).len();
        assert!(n > 4000 && n.is_multiple_of(2), "{n} rows");
        let copy = Connection::open_with_flags(&new, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        super::super::check_integrity(&copy, &new).unwrap();
    }
}
