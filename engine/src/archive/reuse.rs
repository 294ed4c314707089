//! Writing a snapshot as a zip, reusing the compressed data of the archive before it where the
//! manifests prove the bytes unchanged or grown by appending.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};

use super::{
    ChunkIndex, PRIVATE, PageChanges, Written, entry_mode, load_index, load_page_changes,
    read_manifest, zip_time,
};
use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::manifest::{self, FileEntry, Manifest};
use crate::progress::{Cancel, Progress};
use crate::zipout::ChunkInfo;

/// How much of an archive was reused from an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Reuse {
    /// Files whose compressed data was copied whole (unchanged since the earlier archive).
    pub copied: u64,
    /// Append-only files whose earlier compressed data was continued.
    pub continued: u64,
    /// Changed files of which some chunks were copied (their bytes had not changed).
    pub rechunked: u64,
    /// Of those, files whose unchanged chunks were known from the record of the pages the
    /// snapshot wrote (the database copy), and copied without being read.
    pub patched: u64,
    /// Uncompressed bytes that did not have to be compressed again.
    pub bytes_saved: u64,
    /// Files whose earlier data could not be reused, and why (they were compressed afresh).
    pub refused: Vec<String>,
}

/// [`write_dir`], reusing the compressed data of `earlier` (an archive of an earlier snapshot
/// that this engine wrote) where `src`'s manifest shows a file unchanged (copied whole) or grown
/// by appending (the earlier stream continued). Both manifests' checksums decide; every reused
/// byte is inflated and checked against the earlier entry's CRC, and anything that does not
/// check out is compressed afresh. `archived` is told each entry once it is written: its file
/// is not read again. Returns the archive's size and what was reused.
pub fn write_dir_reusing(
    src: &Path,
    dst: &Path,
    level: i64,
    earlier: Option<&Path>,
    progress: &dyn Progress,
    archived: &dyn Fn(&str),
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
    let mut check = ManifestCheck::new(src, &files);
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
        let reused = match source.as_mut() {
            Some(source) => source.reuse(
                &mut zip,
                rel,
                &file,
                meta.len(),
                modified,
                progress,
                cancel,
                &mut reuse.refused,
            )?,
            None => None,
        };
        match reused {
            Some(done) => {
                reuse.count(done, meta.len());
            }
            None => add_fresh(
                &mut zip,
                rel,
                &path,
                file,
                meta.len(),
                modified,
                progress,
                cancel,
            )?,
        }
        zip.set_mode(check.mode(rel));
        check.entry(&zip, rel);
        // Nothing reads the file again: the caller may change it from now on.
        archived(rel);
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
    Ok(Written {
        size: end,
        reuse,
        index,
        damage: check.finish(),
    })
}

impl Reuse {
    fn count(&mut self, done: Reused, len: u64) {
        match done {
            Reused::Copied => self.copied += 1,
            Reused::Continued(_) => self.continued += 1,
            Reused::Rechunked(_) => self.rechunked += 1,
            Reused::Patched(_) => {
                self.rechunked += 1;
                self.patched += 1;
            }
        }
        self.bytes_saved += match done {
            Reused::Copied => len,
            Reused::Continued(n) | Reused::Rechunked(n) | Reused::Patched(n) => n,
        };
    }
}

/// Compress `file` afresh as the entry `rel`.
#[allow(clippy::too_many_arguments)]
fn add_fresh<W: Write + io::Seek>(
    zip: &mut crate::zipout::ZipOut<W>,
    rel: &str,
    path: &Path,
    file: File,
    len: u64,
    modified: zip::DateTime,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<()> {
    // Reading for reuse may have moved the file's position.
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    io::Seek::seek(&mut reader, io::SeekFrom::Start(0)).at("read", path)?;
    let mut cancelled = false;
    let added = zip.add(
        rel,
        &mut reader,
        len,
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
    added.at("archive", path)
}

/// Each entry checked against the snapshot's manifest as it is written (size, and CRC-32
/// where the manifest has it), and given the mode of the file it was copied from (a secret
/// never more than 0600), so that any unzip keeps secrets private. A damaged snapshot is
/// still archived, but said to be.
struct ManifestCheck {
    /// Path → (mode, size, CRC-32).
    expected: HashMap<String, (u32, u64, Option<u32>)>,
    damage: Vec<String>,
}

impl ManifestCheck {
    fn new(src: &Path, files: &[String]) -> Self {
        let mut damage = Vec::new();
        let expected: HashMap<String, (u32, u64, Option<u32>)> = match manifest::read_dir(src) {
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
                HashMap::new()
            }
            Err(e) => {
                damage.push(format!("{}: unreadable: {e}", manifest::FILE_NAME));
                HashMap::new()
            }
        };
        let present: HashSet<&String> = files.iter().collect();
        for listed in expected.keys() {
            if !present.contains(listed) {
                damage.push(format!("{listed}: listed in the manifest but missing"));
            }
        }
        Self { expected, damage }
    }

    /// The mode of the entry `rel`.
    fn mode(&self, rel: &str) -> u32 {
        self.expected.get(rel).map_or(PRIVATE, |e| e.0)
    }

    /// Check the entry just written.
    fn entry<W: Write + io::Seek>(&mut self, zip: &crate::zipout::ZipOut<W>, rel: &str) {
        // thrum's manifests list no files: there is nothing to check them against.
        if self.expected.is_empty() || rel == manifest::FILE_NAME {
            return;
        }
        let (Some(&(_, size, crc)), Some((got_crc, got_size))) =
            (self.expected.get(rel), zip.last_entry())
        else {
            self.damage.push(format!("{rel}: not in the manifest"));
            return;
        };
        if got_size != size {
            self.damage
                .push(format!("{rel}: {got_size} bytes, the manifest says {size}"));
        } else if crc.is_some_and(|c| c != got_crc) {
            self.damage.push(format!(
                "{rel}: content differs from the manifest's (CRC-32)"
            ));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.damage.sort();
        self.damage
    }
}

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
    /// Some chunks copied unread, by the page record; their bytes.
    Patched(u64),
}

/// An earlier archive of ours and the two manifests that say what can be reused from it.
struct EarlierArchive {
    /// Read once, its pages dropped behind ([`fsx::DropBehind`]): the new archive's writes
    /// take them.
    zip: ZipArchive<BufReader<fsx::DropBehind>>,
    chunks: ChunkIndex,
    earlier: BTreeMap<String, FileEntry>,
    now: BTreeMap<String, FileEntry>,
    /// The record of the pages `src`'s database copy changed since the earlier snapshot.
    pages: Option<PageChanges>,
}

impl EarlierArchive {
    fn open(src: &Path, earlier: &Path) -> Option<Self> {
        let now = manifest::read_dir(src).ok().flatten()?;
        let before = read_manifest(earlier).ok().flatten()?;
        if !now.has_checksums() || !before.has_checksums() {
            return None;
        }
        let file = fsx::DropBehind::new(File::open(earlier).ok()?);
        let zip = ZipArchive::new(BufReader::with_capacity(256 * 1024, file)).ok()?;
        let index = |m: Manifest| m.files.into_iter().map(|f| (f.path.clone(), f)).collect();
        Some(Self {
            zip,
            chunks: load_index(earlier).unwrap_or_default(),
            earlier: index(before),
            now: index(now),
            pages: load_page_changes(src),
        })
    }

    /// How `rel` (`size` bytes now) can reuse the earlier archive, if it can: copied whole
    /// (unchanged), continued (the earlier content is exactly its beginning: known when the
    /// snapshot grew the file from that content, or else read and hashed here), or rechunked
    /// (changed, with a chunk index to copy unchanged chunks by).
    fn how(&self, rel: &str, file: &File, size: u64) -> Option<How> {
        let (old, new) = (self.earlier.get(rel)?, self.now.get(rel)?);
        if new.size != size {
            return None;
        }
        if old.size == new.size && old.checksum == new.checksum {
            return Some(How::Copy);
        }
        let appended = old.size > 0
            && old.size < new.size
            && match &new.prefix {
                Some(p) if p.size == old.size && p.checksum == old.checksum => true,
                _ => begins_with(file, old, self.chunks.get(rel)),
            };
        if appended {
            return Some(How::Continue(old.size));
        }
        let patch = self.pages.as_ref().is_some_and(|p| {
            p.entry == rel
                && (p.from_len, &p.from) == (old.size, &old.checksum)
                && (p.to_len, &p.to) == (new.size, &new.checksum)
                && new.crc32.is_some()
        });
        let how = if patch { How::Patch } else { How::Rechunk };
        self.chunks.contains_key(rel).then_some(how)
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
        use crate::zipout::ReuseError;
        let Some(index) = self.zip.index_for_name(rel) else {
            return Ok(None);
        };
        let Some(how) = self.how(rel, file, size) else {
            return Ok(None);
        };
        let start = zip.position();
        let mut result = self.add_from(
            zip,
            rel,
            (index, how),
            file,
            size,
            modified,
            progress,
            cancel,
        )?;
        if let (How::Patch, Some(Err(ReuseError::Refused(_)))) = (how, &result) {
            // The page record did not hold: read the file after all.
            zip.rewind(start).at("write", Path::new(rel))?;
            let how = (index, How::Rechunk);
            result = self.add_from(zip, rel, how, file, size, modified, progress, cancel)?;
        }
        match result {
            None => Ok(None),
            Some(Ok(done)) => Ok(Some(done)),
            Some(Err(ReuseError::Refused(why))) => {
                refused.push(format!("{rel}: {why}"));
                zip.rewind(start).at("write", Path::new(rel))?;
                Ok(None)
            }
            Some(Err(ReuseError::Io(e))) => {
                cancel.check()?;
                Err(e).at("archive", Path::new(rel))
            }
        }
    }

    /// Add `rel` (entry `index` of the earlier archive) as `how` says; `Ok(None)` when the
    /// earlier entry is not one to reuse.
    #[allow(clippy::too_many_arguments)]
    fn add_from(
        &mut self,
        zip: &mut crate::zipout::ZipOut<io::BufWriter<File>>,
        rel: &str,
        (index, how): (usize, How),
        file: &File,
        size: u64,
        modified: zip::DateTime,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<Option<std::result::Result<Reused, crate::zipout::ReuseError>>> {
        use crate::zipout::{Earlier, Patch};
        let old_size = self.earlier.get(rel).map_or(0, |e| e.size);
        let chunk_index = self.chunks.get(rel).cloned();
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
        let chunks = chunk_index.filter(|c| {
            c.iter().map(|c| u64::from(c.len)).sum::<u64>() == earlier.size
                && c.iter().map(|c| u64::from(c.packed)).sum::<u64>() + 2 == earlier.compressed
        });
        let advance = &mut |n| progress.advance(n);
        let check = &mut || cancel.check().map_err(|_| io::Error::other("cancelled"));
        Ok(Some(match how {
            How::Copy => zip
                .add_copied(rel, &mut raw, earlier, chunks, modified)
                .map(|()| {
                    progress.advance(size);
                    Reused::Copied
                }),
            How::Rechunk => {
                let Some(chunks) = chunks else {
                    return Ok(None);
                };
                let mut data = BufReader::with_capacity(256 * 1024, file);
                io::Seek::seek(&mut data, io::SeekFrom::Start(0)).at("read", Path::new(rel))?;
                zip.add_rechunked(
                    rel, &mut data, size, modified, &mut raw, &chunks, advance, check,
                )
                .map(Reused::Rechunked)
            }
            How::Patch => {
                let (Some(chunks), Some(pages), Some(crc)) = (
                    chunks,
                    self.pages.as_ref(),
                    self.now.get(rel).and_then(|f| f.crc32),
                ) else {
                    return Ok(None);
                };
                let unchanged = |from, to| pages.unchanged(from, to);
                let patch = Patch {
                    file,
                    size,
                    unchanged: &unchanged,
                    crc,
                };
                zip.add_patched(rel, patch, modified, &mut raw, &chunks, advance, check)
                    .map(Reused::Patched)
            }
            How::Continue(from) => {
                let Some((dict, mut tail)) = dictionary_and_tail(file, from) else {
                    return Ok(None);
                };
                progress.advance(from);
                zip.add_continued(
                    rel, &mut raw, earlier, chunks, &mut tail, dict, size, modified, advance, check,
                )
                .map(|()| Reused::Continued(from))
            }
        }))
    }
}

/// How a file reuses the earlier archive ([`EarlierArchive::how`]).
#[derive(Debug, Clone, Copy)]
enum How {
    Copy,
    /// The earlier content is the first N bytes.
    Continue(u64),
    Rechunk,
    /// Rechunked, knowing from the page record which chunks are unchanged.
    Patch,
}

/// The 32 KiB before byte `from` of `file` (the dictionary the continued stream is primed
/// with), and a reader of the rest.
fn dictionary_and_tail(file: &File, from: u64) -> Option<(Vec<u8>, BufReader<&File>)> {
    use std::os::unix::fs::FileExt as _;
    let keep = from.min(32 * 1024);
    let mut dict = vec![0u8; keep as usize];
    file.read_exact_at(&mut dict, from - keep).ok()?;
    let mut tail = BufReader::with_capacity(256 * 1024, file);
    io::Seek::seek(&mut tail, io::SeekFrom::Start(from)).ok()?;
    Some((dict, tail))
}
