//! The defensive reader: an archive's central directory checked whole before a byte is
//! extracted, then every declared size, CRC and checksum enforced while it streams.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use zip::{CompressionMethod, ZipArchive};

use super::{ArchiveError, Limits};
use crate::error::{Error, IoContext, Result};
use crate::fsx;
use crate::manifest::{self, Manifest};
use crate::progress::{Cancel, Progress};

/// One file entry that passed the checks.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Index in the archive.
    pub index: usize,
    /// Normalized `/`-separated relative path.
    pub path: String,
    /// Declared uncompressed size.
    pub size: u64,
    /// The modification time the central directory records (`YYYY-MM-DD HH:MM:SS`, in the
    /// writer's clock: zip times carry no zone).
    pub modified: Option<String>,
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
            let checked = check_entry(&f, archive_len, limits).map_err(bad)?;
            let modified = f.last_modified().map(|t| {
                format!(
                    "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            });
            if !seen.insert(checked.name.clone()) {
                return Err(bad("duplicate entry".into()).into());
            }
            ranges.push((checked.range.0, checked.range.1, raw_name.clone()));
            let Some(size) = checked.size else {
                continue;
            };
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
                path: checked.name,
                size,
                modified,
            });
        }
        check_overlaps(path, ranges)?;
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

    /// Stream the file entry `path` into `out`, its declared size and CRC enforced. Returns
    /// the bytes written, or `Ok(None)` if the archive has no such entry.
    pub fn stream_entry(&mut self, path: &str, out: &mut dyn Write) -> Result<Option<u64>> {
        let Some(entry) = self.entries.iter().find(|e| e.path == path).cloned() else {
            return Ok(None);
        };
        self.stream(&entry, out).map(Some)
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
        self.extract_some(dest, expected, &|_| true, progress, cancel)
    }

    /// [`Self::extract_all`] for the entries whose path `keep` accepts: a partial restore
    /// reads, checks and writes only what it puts back.
    pub fn extract_some(
        &mut self,
        dest: &Path,
        expected: &BTreeMap<String, (u64, fsx::Checksum)>,
        keep: &dyn Fn(&str) -> bool,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<BTreeMap<String, fsx::FileDigest>> {
        let entries: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| keep(&e.path))
            .cloned()
            .collect();
        let total: u64 = entries.iter().map(|e| e.size).sum();
        if let Some(avail) = fsx::available_space(dest) {
            // Leave a margin: the restore also writes temporary copies beside the targets.
            if total > avail {
                return Err(Error::NoSpace {
                    path: dest.to_path_buf(),
                    needed: total,
                    available: avail,
                });
            }
        }
        progress.phase("checking and extracting the archive", Some(total));
        let mut digests = BTreeMap::new();
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

/// What the checks of one entry found.
struct EntryChecks {
    /// Its normalized name.
    name: String,
    /// The bytes it spans in the archive, header included.
    range: (u64, u64),
    /// Its declared size, for a file (`None`: a folder).
    size: Option<u64>,
}

/// The checks of one entry on its own: its name, no link, no encryption, its data inside the
/// archive, a regular file or a folder, a known compression method, a believable ratio.
fn check_entry<R: Read>(
    f: &zip::read::ZipFile<'_, R>,
    archive_len: u64,
    limits: &Limits,
) -> std::result::Result<EntryChecks, String> {
    let name = check_entry_name(f.name_raw())?;
    if f.is_symlink() {
        return Err("symbolic links are not allowed".into());
    }
    if f.encrypted() {
        return Err("encrypted entries are not supported".into());
    }
    let start = f.header_start();
    let data_start = f.data_start().unwrap_or(start);
    let end = data_start.saturating_add(f.compressed_size());
    if end > archive_len {
        return Err("entry data extends past the end of the file".into());
    }
    if f.is_dir() {
        return Ok(EntryChecks {
            name,
            range: (start, end),
            size: None,
        });
    }
    if !f.is_file() {
        return Err("not a regular file".into());
    }
    match f.compression() {
        CompressionMethod::Stored | CompressionMethod::Deflated => {}
        other => return Err(format!("unsupported compression method {other:?}")),
    }
    let size = f.size();
    let ratio = size / f.compressed_size().max(1);
    if size > (1 << 20) && ratio > limits.max_ratio {
        return Err(format!(
            "compression ratio {ratio}:1 is above {}:1 (a zip bomb?)",
            limits.max_ratio
        ));
    }
    Ok(EntryChecks {
        name,
        range: (start, end),
        size: Some(size),
    })
}

/// No two entries may share bytes (`ranges`: start, end, name).
fn check_overlaps(path: &Path, mut ranges: Vec<(u64, u64, String)>) -> Result<()> {
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
    Ok(())
}
