//! Zip archives: writing a snapshot as a plain Deflate zip that thrum and `unzip` read, and
//! reading one defensively.
//!
//! The `zip` crate has no bomb protection of its own, so [`CheckedArchive::open`] inspects
//! the whole central directory before a byte is extracted: entry names (no `..`, absolute
//! paths, backslashes or NULs, no duplicates), entry types (no symlinks), compression methods,
//! declared sizes against a cap and the free space, compression ratios, and overlapping
//! entries. Extraction then enforces every declared size while it streams (a lying header is
//! caught), and the CRC and the manifest's checksum (BLAKE3; SHA-256 in the snapshots of the
//! first versions) are checked on the way.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};
use zip::{CompressionMethod, ZipArchive};

use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::manifest::{self, FileEntry, Manifest};
use crate::progress::{Cancel, Progress};
use crate::zipout::{ChunkChecks, ChunkInfo};

/// Deflate level thrum's archives use (Go's default).
pub const DEFAULT_LEVEL: i64 = 6;

pub use crate::error::ArchiveError;

/// Limits applied when reading an archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest total uncompressed size accepted.
    pub max_total: u64,
    /// Most entries accepted.
    pub max_entries: usize,
    /// Highest compression ratio accepted for an entry. Deflate cannot exceed ~1032:1, so a
    /// higher declared ratio is a lie.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total: 64 << 30,
            max_entries: 200_000,
            max_ratio: 1_100,
        }
    }
}

/// Write every file below `src` into a new zip at `dst` (which must not exist), `manifest.json`
/// first. Returns the archive's size.
pub fn write_dir(
    src: &Path,
    dst: &Path,
    level: i64,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<u64> {
    write_dir_reusing(src, dst, level, None, progress, cancel).map(|w| w.size)
}

/// Chunk indexes of an archive's entries, by entry name (see [`crate::zipout::ChunkInfo`]).
pub type ChunkIndex = BTreeMap<String, Vec<ChunkInfo>>;

/// What [`write_dir_reusing`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The archive's size.
    pub size: u64,
    /// What was reused from the earlier archive.
    pub reuse: Reuse,
    /// Where each entry was cut into chunks: saved beside the archive ([`save_index`]) for
    /// the next archive to reuse unchanged chunks of changed files.
    pub index: ChunkIndex,
    /// Where the snapshot archived did not match its manifest (empty: it was sound).
    pub damage: Vec<String>,
}

/// Where an archive's chunk index is kept: `.index/<archive>.json` beside `archives/` (so that
/// `archives/` holds only what thrum expects there). It is a cache: a missing or unreadable
/// index only means less reuse.
pub fn index_path(archive: &Path) -> PathBuf {
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    let archives = archive.parent().unwrap_or(Path::new("."));
    archives
        .parent()
        .unwrap_or(archives)
        .join(".index")
        .join(format!("{name}.json"))
}

/// One chunk in an index file: `[len, packed, crc, packed_crc, "blake3 hex"]`, or
/// `[len, packed, crc]` as indexes were written before chunks had those checks.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum IndexRow {
    Checked(u32, u32, u32, u32, String),
    Plain(u32, u32, u32),
}

/// Save the chunk index of the archive at `archive` (atomically).
pub fn save_index(archive: &Path, index: &ChunkIndex) -> Result<()> {
    let row = |c: &ChunkInfo| match c.checks {
        Some(k) => IndexRow::Checked(c.len, c.packed, c.crc, k.packed_crc, hex::encode(k.hash)),
        None => IndexRow::Plain(c.len, c.packed, c.crc),
    };
    let rows: BTreeMap<&String, Vec<IndexRow>> = index
        .iter()
        .map(|(k, v)| (k, v.iter().map(row).collect()))
        .collect();
    let bytes = serde_json::to_vec(&rows).unwrap_or_default();
    fsx::write_atomic(&index_path(archive), &bytes)
}

/// Load the chunk index of `archive`, if it has one that parses.
pub fn load_index(archive: &Path) -> Option<ChunkIndex> {
    let bytes = std::fs::read(index_path(archive)).ok()?;
    let rows: BTreeMap<String, Vec<IndexRow>> = serde_json::from_slice(&bytes).ok()?;
    let chunk = |row: IndexRow| {
        Some(match row {
            IndexRow::Checked(len, packed, crc, packed_crc, hash) => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(hash, &mut h).ok()?;
                ChunkInfo {
                    len,
                    packed,
                    crc,
                    checks: Some(ChunkChecks {
                        packed_crc,
                        hash: h,
                    }),
                }
            }
            IndexRow::Plain(len, packed, crc) => ChunkInfo {
                len,
                packed,
                crc,
                checks: None,
            },
        })
    };
    rows.into_iter()
        .map(|(k, v)| Some((k, v.into_iter().map(chunk).collect::<Option<Vec<_>>>()?)))
        .collect()
}

/// How much of an archive was reused from an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reuse {
    /// Files whose compressed data was copied whole (unchanged since the earlier archive).
    pub copied: u64,
    /// Append-only files whose earlier compressed data was continued.
    pub continued: u64,
    /// Changed files of which some chunks were copied (their bytes had not changed).
    pub rechunked: u64,
    /// Uncompressed bytes that did not have to be compressed again.
    pub bytes_saved: u64,
    /// Files whose earlier data could not be reused, and why (they were compressed afresh).
    pub refused: Vec<String>,
}

/// [`write_dir`], reusing the compressed data of `earlier` (an archive of an earlier snapshot
/// that this engine wrote) where `src`'s manifest shows a file unchanged (copied whole) or grown
/// by appending (the earlier stream continued). Both manifests' checksums decide; every reused
/// byte is inflated and checked against the earlier entry's CRC, and anything that does not
/// check out is compressed afresh. Returns the archive's size and what was reused.
pub fn write_dir_reusing(
    src: &Path,
    dst: &Path,
    level: i64,
    earlier: Option<&Path>,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Written> {
    let mut files = fsx::walk_files(src)?;
    // The manifest first: a streaming reader learns what it is reading before the data.
    if let Some(i) = files.iter().position(|f| f == manifest::FILE_NAME) {
        let m = files.remove(i);
        files.insert(0, m);
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(src.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let mut source = earlier.and_then(|e| EarlierArchive::open(src, e));
    // Each entry carries the mode of the file it was copied from, a secret always 0600, so
    // that any unzip of the archive keeps secrets private; and each is checked against the
    // manifest as it is written (size, and CRC-32 where the manifest has it): a damaged
    // snapshot is still archived, but said to be.
    let manifest = manifest::read_dir(src);
    let mut damage = Vec::new();
    let expected: std::collections::HashMap<String, (u32, u64, Option<u32>)> = match &manifest {
        Ok(Some(m)) => m
            .files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    (entry_mode(f.mode, f.secret), f.size, f.crc32),
                )
            })
            .collect(),
        Ok(None) => {
            damage.push(format!("{}: no manifest", manifest::FILE_NAME));
            Default::default()
        }
        Err(e) => {
            damage.push(format!("{}: unreadable: {e}", manifest::FILE_NAME));
            Default::default()
        }
    };
    // thrum's manifests list no files: there is nothing to check them against.
    let checked = !expected.is_empty();
    if checked {
        let present: HashSet<&String> = files.iter().collect();
        for listed in expected.keys() {
            if !present.contains(listed) {
                damage.push(format!("{listed}: listed in the manifest but missing"));
            }
        }
    }
    let modes: std::collections::HashMap<&str, u32> =
        expected.iter().map(|(k, v)| (k.as_str(), v.0)).collect();
    let mut check_entry = |zip: &crate::zipout::ZipOut<_>, rel: &str| {
        if !checked || rel == manifest::FILE_NAME {
            return;
        }
        let (Some(&(_, size, crc)), Some((got_crc, got_size))) =
            (expected.get(rel), zip.last_entry())
        else {
            damage.push(format!("{rel}: not in the manifest"));
            return;
        };
        if got_size != size {
            damage.push(format!("{rel}: {got_size} bytes, the manifest says {size}"));
        } else if crc.is_some_and(|c| c != got_crc) {
            damage.push(format!(
                "{rel}: content differs from the manifest's (CRC-32)"
            ));
        }
    };
    progress.phase("archiving the previous snapshot", Some(total));
    let out = File::options()
        .write(true)
        .create_new(true)
        .open(dst)
        .at("create", dst)?;
    let threads = crate::zipout::default_threads();
    let mut zip = crate::zipout::ZipOut::new(
        io::BufWriter::with_capacity(1 << 20, out),
        level.clamp(0, 9) as u32,
        threads,
    )
    .at("write", dst)?;
    let mut reuse = Reuse::default();
    for rel in &files {
        cancel.check()?;
        let path = src.join(rel);
        let file = File::open(&path).at("open", &path)?;
        let meta = file.metadata().at("inspect", &path)?;
        let modified = zip_time(meta.modified().ok());
        if let Some(source) = source.as_mut()
            && let Some(done) = source.reuse(
                &mut zip,
                rel,
                &file,
                meta.len(),
                modified,
                progress,
                cancel,
                &mut reuse.refused,
            )?
        {
            zip.set_mode(modes.get(rel.as_str()).copied().unwrap_or(PRIVATE));
            check_entry(&zip, rel);
            match done {
                Reused::Copied => reuse.copied += 1,
                Reused::Continued(_) => reuse.continued += 1,
                Reused::Rechunked(_) => reuse.rechunked += 1,
            }
            reuse.bytes_saved += match done {
                Reused::Copied => meta.len(),
                Reused::Continued(n) | Reused::Rechunked(n) => n,
            };
            continue;
        }
        // Reading for reuse may have moved the file's position.
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        io::Seek::seek(&mut reader, io::SeekFrom::Start(0)).at("read", &path)?;
        let mut cancelled = false;
        let added = zip.add(
            rel,
            &mut reader,
            meta.len(),
            modified,
            &mut |n| progress.advance(n),
            &mut || {
                if cancel.check().is_err() {
                    cancelled = true;
                    return Err(io::Error::other("cancelled"));
                }
                Ok(())
            },
        );
        if cancelled {
            return Err(Error::Cancelled);
        }
        added.at("archive", &path)?;
        zip.set_mode(modes.get(rel.as_str()).copied().unwrap_or(PRIVATE));
        check_entry(&zip, rel);
    }
    let index = zip.index();
    let (writer, end) = zip.finish().at("write", dst)?;
    let file = writer
        .into_inner()
        .map_err(|e| e.into_error())
        .at("write", dst)?;
    // A refused reuse may have written past where the archive now ends.
    file.set_len(end).at("write", dst)?;
    file.sync_all().at("sync", dst)?;
    damage.sort();
    Ok(Written {
        size: end,
        reuse,
        index,
        damage,
    })
}

/// The permission bits an archive gives a snapshot file: its live mode, never more than
/// owner-only for a secret; private for what has no live mode (the database copy, exports).
pub fn entry_mode(mode: Option<u32>, secret: bool) -> u32 {
    let mode = mode.unwrap_or(PRIVATE) & 0o777;
    if secret { mode & 0o700 } else { mode }
}

/// The mode of an archive entry nothing says more about.
const PRIVATE: u32 = 0o600;

/// Whether `file` begins with exactly the content `old` describes, hashing its first
/// `old.size` bytes. With that content's chunk index, each chunk's CRC is compared on the way,
/// so that a file changed near its start (a database: its header changes on every write) is
/// told apart after one chunk instead of after hashing all of it.
fn begins_with(file: &File, old: &FileEntry, chunks: Option<&Vec<ChunkInfo>>) -> bool {
    let mut h = fsx::HashingWriter::with(io::sink(), old.checksum.algorithm());
    let mut reader = BufReader::with_capacity(256 * 1024, Read::take(file, old.size));
    let chunks = chunks.filter(|c| c.iter().map(|c| u64::from(c.len)).sum::<u64>() == old.size);
    if let Some(chunks) = chunks {
        let mut buf = Vec::new();
        for chunk in chunks {
            buf.resize(chunk.len as usize, 0);
            if reader.read_exact(&mut buf).is_err() || crc32fast::hash(&buf) != chunk.crc {
                return false;
            }
            h.write_all(&buf).expect("hashing into a sink");
        }
    } else if io::copy(&mut reader, &mut h).is_err() {
        return false;
    }
    let d = h.finish().1;
    d.size == old.size && d.checksum == old.checksum
}

enum Reused {
    Copied,
    /// Continued; the earlier bytes not compressed again.
    Continued(u64),
    /// Some chunks copied; their bytes.
    Rechunked(u64),
}

/// An earlier archive of ours and the two manifests that say what can be reused from it.
struct EarlierArchive {
    zip: ZipArchive<BufReader<File>>,
    chunks: ChunkIndex,
    earlier: BTreeMap<String, FileEntry>,
    now: BTreeMap<String, FileEntry>,
}

impl EarlierArchive {
    fn open(src: &Path, earlier: &Path) -> Option<Self> {
        let now = manifest::read_dir(src).ok().flatten()?;
        let before = read_manifest(earlier).ok().flatten()?;
        if !now.has_checksums() || !before.has_checksums() {
            return None;
        }
        let zip = ZipArchive::new(BufReader::new(File::open(earlier).ok()?)).ok()?;
        let index = |m: Manifest| m.files.into_iter().map(|f| (f.path.clone(), f)).collect();
        Some(Self {
            zip,
            chunks: load_index(earlier).unwrap_or_default(),
            earlier: index(before),
            now: index(now),
        })
    }

    /// Add `rel` from the earlier archive if its content allows; `Ok(None)`: compress it.
    #[allow(clippy::too_many_arguments)]
    fn reuse(
        &mut self,
        zip: &mut crate::zipout::ZipOut<io::BufWriter<File>>,
        rel: &str,
        file: &File,
        size: u64,
        modified: zip::DateTime,
        progress: &dyn Progress,
        cancel: &Cancel,
        refused: &mut Vec<String>,
    ) -> Result<Option<Reused>> {
        use crate::zipout::{Earlier, ReuseError};
        use std::os::unix::fs::FileExt as _;
        let (Some(old), Some(new)) = (self.earlier.get(rel), self.now.get(rel)) else {
            return Ok(None);
        };
        let (old_size, new_size) = (old.size, new.size);
        if new_size != size {
            return Ok(None);
        }
        let Some(index) = self.zip.index_for_name(rel) else {
            return Ok(None);
        };
        let unchanged = old_size == new_size && old.checksum == new.checksum;
        // The earlier content must be exactly this file's beginning: known when the snapshot
        // grew the file from that content, or else read and hashed here.
        let appended = old_size > 0
            && old_size < new_size
            && match &new.prefix {
                Some(p) if p.size == old.size && p.checksum == old.checksum => true,
                _ => begins_with(file, old, self.chunks.get(rel)),
            };
        let rechunk = !unchanged && !appended && self.chunks.contains_key(rel);
        if !unchanged && !appended && !rechunk {
            return Ok(None);
        }
        let Ok(mut raw) = self.zip.by_index_raw(index) else {
            return Ok(None);
        };
        if raw.compression() != CompressionMethod::Deflated {
            return Ok(None);
        }
        let earlier = Earlier {
            crc: raw.crc32(),
            size: raw.size(),
            compressed: raw.compressed_size(),
        };
        if earlier.size != old_size {
            return Ok(None);
        }
        // The earlier entry's chunk index, if it describes exactly that entry.
        let chunks = self.chunks.get(rel).filter(|c| {
            c.iter().map(|c| u64::from(c.len)).sum::<u64>() == earlier.size
                && c.iter().map(|c| u64::from(c.packed)).sum::<u64>() + 2 == earlier.compressed
        });
        let start = zip.position();
        let result = if unchanged {
            zip.add_copied(rel, &mut raw, earlier, chunks.cloned(), modified)
                .map(|()| Reused::Copied)
        } else if rechunk {
            let Some(chunks) = chunks else {
                return Ok(None);
            };
            let mut data = BufReader::with_capacity(256 * 1024, file);
            io::Seek::seek(&mut data, io::SeekFrom::Start(0)).at("read", Path::new(rel))?;
            zip.add_rechunked(
                rel,
                &mut data,
                size,
                modified,
                &mut raw,
                chunks,
                &mut |n| progress.advance(n),
                &mut || cancel.check().map_err(|_| io::Error::other("cancelled")),
            )
            .map(Reused::Rechunked)
        } else {
            let keep = old_size.min(32 * 1024);
            let mut dict = vec![0u8; keep as usize];
            if file.read_exact_at(&mut dict, old_size - keep).is_err() {
                return Ok(None);
            }
            let mut tail = BufReader::with_capacity(256 * 1024, file);
            if io::Seek::seek(&mut tail, io::SeekFrom::Start(old_size)).is_err() {
                return Ok(None);
            }
            progress.advance(old_size);
            zip.add_continued(
                rel,
                &mut raw,
                earlier,
                chunks.cloned(),
                &mut tail,
                dict,
                size,
                modified,
                &mut |n| progress.advance(n),
                &mut || cancel.check().map_err(|_| io::Error::other("cancelled")),
            )
            .map(|()| Reused::Continued(old_size))
        };
        match result {
            Ok(done) => {
                if matches!(done, Reused::Copied) {
                    progress.advance(size);
                }
                Ok(Some(done))
            }
            Err(ReuseError::Refused(why)) => {
                drop(raw);
                refused.push(format!("{rel}: {why}"));
                zip.rewind(start).at("write", Path::new(rel))?;
                Ok(None)
            }
            Err(ReuseError::Io(e)) => {
                cancel.check()?;
                Err(e).at("archive", Path::new(rel))
            }
        }
    }
}

fn zip_time(t: Option<std::time::SystemTime>) -> zip::DateTime {
    let fallback = zip::DateTime::default();
    let Some(t) = t else { return fallback };
    let t: DateTime<Utc> = t.into();
    zip::DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or(fallback)
}

/// One file entry that passed the checks.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Index in the archive.
    pub index: usize,
    /// Normalized `/`-separated relative path.
    pub path: String,
    /// Declared uncompressed size.
    pub size: u64,
}

/// An archive whose central directory passed every structural check.
pub struct CheckedArchive {
    path: PathBuf,
    zip: ZipArchive<BufReader<File>>,
    entries: Vec<Entry>,
    total: u64,
}

impl std::fmt::Debug for CheckedArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedArchive")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish()
    }
}

/// Normalize and check an entry name: relative, no `..`, no empty or `.` components.
pub fn check_entry_name(raw: &[u8]) -> std::result::Result<String, String> {
    let name = std::str::from_utf8(raw).map_err(|_| "name is not UTF-8".to_owned())?;
    if name.is_empty() {
        return Err("empty name".into());
    }
    if name.contains('\0') {
        return Err("name contains a NUL byte".into());
    }
    if name.contains('\\') {
        return Err("name contains a backslash".into());
    }
    if name.len() > 4096 {
        return Err("name is longer than 4096 bytes".into());
    }
    if name.starts_with('/') || (name.len() > 1 && name.as_bytes()[1] == b':') {
        return Err("absolute path".into());
    }
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    let mut parts = Vec::new();
    for part in trimmed.split('/') {
        match part {
            ".." => return Err("path escapes the archive (`..`)".into()),
            "" | "." => return Err("empty or `.` path component".into()),
            p if p.len() > 255 => return Err("a path component is longer than 255 bytes".into()),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl CheckedArchive {
    /// Open `path` and check its whole central directory against `limits`.
    pub fn open(path: &Path, limits: &Limits) -> Result<Self> {
        let corrupt = |message: String| ArchiveError::Corrupt {
            path: path.to_path_buf(),
            message,
        };
        let refused = |reason: String| ArchiveError::Refused {
            path: path.to_path_buf(),
            reason,
        };
        let file = File::open(path).at("open", path)?;
        let archive_len = file.metadata().at("inspect", path)?.len();
        let mut zip = ZipArchive::new(BufReader::new(file)).map_err(|e| corrupt(e.to_string()))?;
        if zip.len() > limits.max_entries {
            return Err(refused(format!(
                "{} entries is more than the limit of {} (raise it with --max-entries if you trust the archive)",
                zip.len(),
                limits.max_entries
            ))
            .into());
        }
        if zip.has_duplicate_names() {
            return Err(refused(
                "duplicate entries: two entries share a name (which one would be restored?)".into(),
            )
            .into());
        }
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        let mut ranges: Vec<(u64, u64, String)> = Vec::new();
        let mut total: u64 = 0;
        for index in 0..zip.len() {
            let f = zip
                .by_index_raw(index)
                .map_err(|e| corrupt(e.to_string()))?;
            let raw_name = String::from_utf8_lossy(f.name_raw()).into_owned();
            let bad = |reason: String| ArchiveError::Entry {
                path: path.to_path_buf(),
                entry: raw_name.clone(),
                reason,
            };
            let name = check_entry_name(f.name_raw()).map_err(bad)?;
            if f.is_symlink() {
                return Err(bad("symbolic links are not allowed".into()).into());
            }
            if f.encrypted() {
                return Err(bad("encrypted entries are not supported".into()).into());
            }
            if !seen.insert(name.clone()) {
                return Err(bad("duplicate entry".into()).into());
            }
            let start = f.header_start();
            let data_start = f.data_start().unwrap_or(start);
            let end = data_start.saturating_add(f.compressed_size());
            if end > archive_len {
                return Err(bad("entry data extends past the end of the file".into()).into());
            }
            ranges.push((start, end, raw_name.clone()));
            if f.is_dir() {
                continue;
            }
            if !f.is_file() {
                return Err(bad("not a regular file".into()).into());
            }
            match f.compression() {
                CompressionMethod::Stored | CompressionMethod::Deflated => {}
                other => {
                    return Err(bad(format!("unsupported compression method {other:?}")).into());
                }
            }
            let size = f.size();
            let ratio = size / f.compressed_size().max(1);
            if size > (1 << 20) && ratio > limits.max_ratio {
                return Err(bad(format!(
                    "compression ratio {ratio}:1 is above {}:1 (a zip bomb?)",
                    limits.max_ratio
                ))
                .into());
            }
            total = total.saturating_add(size);
            if total > limits.max_total {
                return Err(refused(format!(
                    "uncompressed size exceeds the limit of {} bytes (a zip bomb?)",
                    limits.max_total
                ))
                .into());
            }
            entries.push(Entry {
                index,
                path: name,
                size,
            });
        }
        ranges.sort();
        for pair in ranges.windows(2) {
            if pair[1].0 < pair[0].1 {
                return Err(ArchiveError::Entry {
                    path: path.to_path_buf(),
                    entry: pair[1].2.clone(),
                    reason: format!("overlaps entry {:?} (a zip bomb?)", pair[0].2),
                }
                .into());
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            zip,
            entries,
            total,
        })
    }

    /// The file entries.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Total declared uncompressed size.
    pub fn total_size(&self) -> u64 {
        self.total
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the manifest, if the archive has one (refusing one over 64 MiB).
    pub fn manifest(&mut self) -> Result<Option<Manifest>> {
        let Some(entry) = self
            .entries
            .iter()
            .find(|e| e.path == manifest::FILE_NAME)
            .cloned()
        else {
            return Ok(None);
        };
        if entry.size > 64 << 20 {
            return Err(self.entry_err(&entry.path, "manifest is larger than 64 MiB".into()));
        }
        let mut bytes = Vec::new();
        self.stream(&entry, &mut bytes)?;
        Manifest::from_slice(&bytes)
            .map(Some)
            .map_err(|m| self.entry_err(&entry.path, format!("invalid manifest: {m}")))
    }

    /// Read the file entry `path` into memory, refusing one declared larger than `max` bytes.
    /// `Ok(None)` if the archive has no such entry.
    pub fn read_entry(&mut self, path: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some(entry) = self.entries.iter().find(|e| e.path == path).cloned() else {
            return Ok(None);
        };
        if entry.size > max {
            return Err(self.entry_err(
                &entry.path,
                format!("{} bytes is more than the limit of {max}", entry.size),
            ));
        }
        let mut bytes = Vec::with_capacity(entry.size as usize);
        self.stream(&entry, &mut bytes)?;
        Ok(Some(bytes))
    }

    fn entry_err(&self, entry: &str, reason: String) -> Error {
        ArchiveError::Entry {
            path: self.path.clone(),
            entry: entry.to_owned(),
            reason,
        }
        .into()
    }

    /// Stream one entry into `out`, enforcing its declared size and CRC.
    fn stream(&mut self, entry: &Entry, out: &mut dyn Write) -> Result<u64> {
        let path = self.path.clone();
        let corrupt = |message: String| -> Error {
            ArchiveError::Entry {
                path: path.clone(),
                entry: entry.path.clone(),
                reason: message,
            }
            .into()
        };
        let options = zip::read::ZipReadOptions::new().enforce_header_consistency(true);
        let f = self
            .zip
            .by_index_with_options(entry.index, options)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut limited = f.take(entry.size + 1);
        let mut buf = vec![0u8; 256 * 1024];
        let mut n_total = 0u64;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(format!("cannot decompress: {e}"))),
            };
            n_total += n as u64;
            if n_total > entry.size {
                return Err(corrupt(format!(
                    "is larger than its header declares ({} bytes): refused",
                    entry.size
                )));
            }
            out.write_all(&buf[..n]).map_err(|e| Error::Io {
                action: "write",
                path: PathBuf::from(&entry.path),
                source: e,
            })?;
        }
        if n_total != entry.size {
            return Err(corrupt(format!(
                "holds {n_total} bytes but its header declares {}",
                entry.size
            )));
        }
        Ok(n_total)
    }

    /// Extract every file entry below `dest` (a fresh private directory), checking sizes,
    /// CRCs and, when `expected` has the path, its size and checksum. Returns the digests.
    pub fn extract_all(
        &mut self,
        dest: &Path,
        expected: &BTreeMap<String, (u64, fsx::Checksum)>,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<BTreeMap<String, fsx::FileDigest>> {
        if let Some(avail) = fsx::available_space(dest) {
            // Leave a margin: the restore also writes temporary copies beside the targets.
            if self.total > avail {
                return Err(Error::NoSpace {
                    path: dest.to_path_buf(),
                    needed: self.total,
                    available: avail,
                });
            }
        }
        progress.phase("checking and extracting the archive", Some(self.total));
        let mut digests = BTreeMap::new();
        let entries = self.entries.clone();
        for entry in &entries {
            cancel.check()?;
            let target = dest.join(&entry.path);
            let mut result = Ok(0);
            let algorithm = expected
                .get(&entry.path)
                .map_or(fsx::Algorithm::Blake3, |(_, c)| c.algorithm());
            let digest = fsx::write_new_hashed(&target, algorithm, |w| {
                result = self.stream(entry, w);
                match &result {
                    Ok(_) => Ok(()),
                    Err(_) => Err(io::Error::other("entry refused")),
                }
            });
            result?;
            let digest = digest?;
            if let Some((size, checksum)) = expected.get(&entry.path)
                && (digest.size != *size || digest.checksum != *checksum)
            {
                return Err(self.entry_err(
                    &entry.path,
                    format!(
                        "content does not match the manifest's {} checksum",
                        algorithm.name()
                    ),
                ));
            }
            progress.advance(digest.size);
            digests.insert(entry.path.clone(), digest);
        }
        Ok(digests)
    }

    /// Read every entry through a hasher (the one `algorithm_of` names for its path), without
    /// writing anything. Returns the digests.
    pub fn digest_all(
        &mut self,
        algorithm_of: &dyn Fn(&str) -> fsx::Algorithm,
        progress: &dyn Progress,
    ) -> Result<BTreeMap<String, fsx::FileDigest>> {
        progress.phase("reading the archive", Some(self.total));
        let entries = self.entries.clone();
        let mut out = BTreeMap::new();
        for entry in &entries {
            let mut sink = fsx::HashingWriter::with(io::sink(), algorithm_of(&entry.path));
            self.stream(entry, &mut sink)?;
            let digest = sink.finish().1;
            progress.advance(digest.size);
            out.insert(entry.path.clone(), digest);
        }
        Ok(out)
    }
}

/// Read just the manifest of an archive (for `status`, naming, idempotent archiving).
pub fn read_manifest(path: &Path) -> Result<Option<Manifest>> {
    CheckedArchive::open(path, &Limits::default())?.manifest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    fn zip_with(entries: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zip");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        (dir, path)
    }

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\b",
            "a//b",
            "./a",
            "C:/x",
            "a\0b",
        ] {
            assert!(check_entry_name(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            check_entry_name(b"messages/a.jsonl").unwrap(),
            "messages/a.jsonl"
        );
        assert_eq!(check_entry_name(b"config/").unwrap(), "config");
    }

    proptest::proptest! {
        #[test]
        fn accepted_names_never_escape(name in "[a-z./\\\\]{1,24}") {
            if let Ok(n) = check_entry_name(name.as_bytes()) {
                let p = Path::new(&n);
                proptest::prop_assert!(p.is_relative());
                proptest::prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }

    #[test]
    fn round_trip_through_write_dir() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("messages")).unwrap();
        std::fs::write(src.path().join("manifest.json"), b"{}").unwrap();
        std::fs::write(src.path().join("messages/a.jsonl"), b"{\"a\":1}\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let zip_path = out.path().join("x.zip");
        write_dir(src.path(), &zip_path, 6, &Silent, &Cancel::new()).unwrap();
        let mut a = CheckedArchive::open(&zip_path, &Limits::default()).unwrap();
        assert_eq!(a.entries()[0].path, "manifest.json");
        let dest = out.path().join("x");
        std::fs::create_dir(&dest).unwrap();
        a.extract_all(&dest, &BTreeMap::new(), &Silent, &Cancel::new())
            .unwrap();
        assert_eq!(
            std::fs::read(dest.join("messages/a.jsonl")).unwrap(),
            b"{\"a\":1}\n"
        );
    }

    #[test]
    fn chunk_indexes_round_trip_and_old_ones_still_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("archives")).unwrap();
        let archive = dir.path().join("archives/2026-01-01T000000.zip");
        let checked = ChunkInfo {
            len: 262_144,
            packed: 70_001,
            crc: 0xdead_beef,
            checks: Some(ChunkChecks {
                packed_crc: 7,
                hash: [0xab; 32],
            }),
        };
        let plain = ChunkInfo {
            checks: None,
            ..checked
        };
        let index: ChunkIndex = [("db/messages.db".to_owned(), vec![checked, plain])].into();
        save_index(&archive, &index).unwrap();
        assert_eq!(load_index(&archive), Some(index));
        // As indexes were written before chunks had checks: rows of three numbers.
        std::fs::write(
            index_path(&archive),
            br#"{"events.jsonl":[[262144,70001,3735928559]]}"#,
        )
        .unwrap();
        assert_eq!(load_index(&archive).unwrap()["events.jsonl"], vec![plain]);
        // Anything else is no index (it is a cache: the next archive compresses afresh).
        std::fs::write(index_path(&archive), br#"{"a":[[1,2]]}"#).unwrap();
        assert_eq!(load_index(&archive), None);
    }

    #[test]
    fn duplicates_and_totals_are_refused() {
        let (_d, p) = zip_with(&[("a", b"1"), ("b", b"22")]);
        let limits = Limits {
            max_total: 2,
            ..Limits::default()
        };
        let err = CheckedArchive::open(&p, &limits).unwrap_err().to_string();
        assert!(err.contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn sha_mismatch_is_refused() {
        let (_d, p) = zip_with(&[("events.jsonl", b"{}\n")]);
        let mut a = CheckedArchive::open(&p, &Limits::default()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut expected = BTreeMap::new();
        expected.insert(
            "events.jsonl".to_owned(),
            (3u64, fsx::Checksum::Blake3("00".repeat(32))),
        );
        let err = a
            .extract_all(dest.path(), &expected, &Silent, &Cancel::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("blake3 checksum"), "{err}");
        // A manifest of SHA-256 checksums is checked with SHA-256.
        let dest = tempfile::tempdir().unwrap();
        expected.insert(
            "events.jsonl".to_owned(),
            (3u64, fsx::Checksum::Sha256(fsx::sha256_hex(b"{}\n"))),
        );
        let digests = a
            .extract_all(dest.path(), &expected, &Silent, &Cancel::new())
            .unwrap();
        assert_eq!(
            digests["events.jsonl"].checksum,
            fsx::Checksum::Sha256(fsx::sha256_hex(b"{}\n"))
        );
    }
}
