//! Filesystem primitives every write in the engine goes through.
//!
//! Nothing is written in place: content goes to a temporary name in the destination's
//! directory, is flushed to disk, and is renamed over the final name. Publishing a file that
//! must never replace another (an archive) uses a hard link, which fails if the name exists.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{IoContext, Result};

pub mod blocks;
mod drop_behind;

pub use drop_behind::DropBehind;

/// The hash functions a manifest may name. Snapshots are written with BLAKE3 (several times
/// faster than SHA-256 here, which made hashing the largest part of `verify`); SHA-256 is
/// read, as snapshots written before were hashed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// BLAKE3, 256-bit output.
    Blake3,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// The name manifests use for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Blake3 => "blake3",
            Self::Sha256 => "sha256",
        }
    }
}

/// A digest of a file's content: which hash function, and its value in lower-case hex. In a
/// manifest it is one key, `"blake3": "…"` or `"sha256": "…"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Checksum {
    /// BLAKE3.
    #[serde(rename = "blake3")]
    Blake3(String),
    /// SHA-256.
    #[serde(rename = "sha256")]
    Sha256(String),
}

impl Checksum {
    /// The hash function.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Blake3(_) => Algorithm::Blake3,
            Self::Sha256(_) => Algorithm::Sha256,
        }
    }

    /// The value, lower-case hex.
    pub fn hex(&self) -> &str {
        match self {
            Self::Blake3(h) | Self::Sha256(h) => h,
        }
    }
}

/// Size, checksum and newline count of a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// Bytes.
    pub size: u64,
    /// The content's checksum.
    pub checksum: Checksum,
    /// Number of `\n` bytes (thrum counts events this way).
    pub lines: u64,
    /// The content's CRC-32 (what a zip entry of it records): lets an archive check, for
    /// free, that what it holds is what the manifest describes.
    pub crc32: u32,
}

enum Hasher {
    /// BLAKE3 kept per block ([`blocks`]), which counts the CRC-32 and the lines too.
    Blake3(Box<blocks::BlockHasher>),
    Sha256 {
        hasher: Sha256,
        crc: crc32fast::Hasher,
        lines: u64,
    },
}

/// A writer that hashes, counts bytes and counts lines as it writes.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wrap `inner`, hashing with BLAKE3 (what snapshots are written with).
    pub fn new(inner: W) -> Self {
        Self::with(inner, Algorithm::Blake3)
    }

    /// Wrap `inner`, hashing with `algorithm`.
    pub fn with(inner: W, algorithm: Algorithm) -> Self {
        let hasher = match algorithm {
            Algorithm::Blake3 => Hasher::Blake3(Box::default()),
            Algorithm::Sha256 => Hasher::Sha256 {
                hasher: Sha256::new(),
                crc: crc32fast::Hasher::new(),
                lines: 0,
            },
        };
        Self {
            inner,
            hasher,
            size: 0,
        }
    }

    /// Wrap `inner`, hashing with BLAKE3 what follows `prefix`, whole blocks of the same file
    /// hashed before (see [`blocks`]): those bytes count as written.
    pub fn resume(inner: W, prefix: &[blocks::Block]) -> Self {
        let hasher = blocks::BlockHasher::resume(prefix);
        Self {
            inner,
            size: hasher.size(),
            hasher: Hasher::Blake3(Box::new(hasher)),
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Go on hashing into another writer: what was written so far stays counted.
    pub fn redirect<V: Write>(self, inner: V) -> HashingWriter<V> {
        HashingWriter {
            inner,
            hasher: self.hasher,
            size: self.size,
        }
    }

    /// Finish, returning the inner writer and the digest of everything written.
    pub fn finish(self) -> (W, FileDigest) {
        let (inner, digest, _) = self.finish_blocks();
        (inner, digest)
    }

    /// [`HashingWriter::finish`], with the blocks of what was written when hashed with BLAKE3.
    pub fn finish_blocks(self) -> (W, FileDigest, Option<blocks::Blocks>) {
        match self.hasher {
            Hasher::Blake3(h) => {
                let (digest, blocks) = h.finish();
                (self.inner, digest, Some(blocks))
            }
            Hasher::Sha256 { hasher, crc, lines } => {
                let digest = FileDigest {
                    size: self.size,
                    checksum: Checksum::Sha256(hex::encode(hasher.finalize())),
                    lines,
                    crc32: crc.finalize(),
                };
                (self.inner, digest, None)
            }
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = &buf[..n];
        match &mut self.hasher {
            Hasher::Blake3(h) => h.update(done),
            Hasher::Sha256 { hasher, crc, lines } => {
                hasher.update(done);
                crc.update(done);
                *lines += count_newlines(done);
            }
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `\n` bytes in `buf`. Counted in runs of 255 into a `u8` so that the compiler can compare 32
/// or 64 bytes at a time (a plain `filter().count()` was 8% of a steady create).
fn count_newlines(buf: &[u8]) -> u64 {
    buf.chunks(255)
        .map(|run| u64::from(run.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>()))
        .sum()
}

/// The SHA-256 of `bytes` as lowercase hex: what plugin pins, bundles and the compiled
/// component cache record.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hash a file with BLAKE3 by reading it once.
pub fn digest_file(path: &Path) -> Result<FileDigest> {
    digest_file_with(path, Algorithm::Blake3)
}

/// [`digest_file`], with the file's blocks (see [`blocks`]).
pub fn digest_file_blocks(path: &Path) -> Result<(FileDigest, Option<blocks::Blocks>)> {
    let file = File::open(path).at("open", path)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut sink = HashingWriter::new(io::sink());
    io::copy(&mut reader, &mut sink).at("read", path)?;
    let (_, d, b) = sink.finish_blocks();
    Ok((d, b))
}

/// Hash a file with `algorithm` by reading it once.
pub fn digest_file_with(path: &Path, algorithm: Algorithm) -> Result<FileDigest> {
    digest_prefix_with(path, u64::MAX, algorithm)
}

/// Hash the first `len` bytes of a file (all of it when shorter) with `algorithm`: does a file
/// that grew still begin with a snapshot's file?
pub fn digest_prefix_with(path: &Path, len: u64, algorithm: Algorithm) -> Result<FileDigest> {
    let file = File::open(path).at("open", path)?;
    let mut reader = BufReader::with_capacity(256 * 1024, file.take(len));
    let mut sink = HashingWriter::with(io::sink(), algorithm);
    io::copy(&mut reader, &mut sink).at("read", path)?;
    Ok(sink.finish().1)
}

/// Hash the files `rels` below `root` on every core; `done` is called (on this thread) after
/// each file with its size. Returns the digests by relative path, or the first error.
pub fn digest_files(
    root: &Path,
    rels: &[(String, Algorithm)],
    done: &mut dyn FnMut(u64),
) -> Result<std::collections::BTreeMap<String, FileDigest>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(rels.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<FileDigest>)>();
    let mut out = std::collections::BTreeMap::new();
    std::thread::scope(|s| -> Result<()> {
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((rel, algorithm)) = rels.get(i) else {
                        break;
                    };
                    let d = digest_file_with(&root.join(rel), *algorithm);
                    let stop = tx.send((i, d)).is_err();
                    if stop {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, d) in rx.iter() {
            let d = match d {
                Ok(d) => d,
                Err(e) => {
                    // Let the workers run dry: no index is handed out again.
                    next.store(rels.len(), Ordering::Relaxed);
                    return Err(e);
                }
            };
            done(d.size);
            out.insert(rels[i].0.clone(), d);
        }
        Ok(())
    })?;
    Ok(out)
}

/// A temporary sibling name for `path`: same directory, so a rename is atomic.
///
/// A name, not a file (tempfile makes the file and its name at once): a restore writes the
/// names of its temporary files into its journal before they exist, so that the recovery
/// after a kill finds and removes them; archives are written under such a name and published
/// later, by another step.
pub fn temp_sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce: u32 = rand::random();
    path.with_file_name(format!(".{name}.{tag}-{nonce:08x}"))
}

/// `path` with `suffix` appended to its name: a SQLite database's `-wal`, `-shm`, `-journal`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Create `dir` and its parents.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).at("create directory", dir)
}

/// Flush a directory's entries (renames, creations) to disk.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("sync directory", dir)
}

/// fsync every file or directory in `paths`, several at a time: fsync waits for the disk, and
/// a journaling filesystem commits fsyncs that wait together in one transaction. Returns the
/// first error.
pub fn sync_paths(paths: &[PathBuf]) -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let threads = paths.len().min(8);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    while let Some(path) = paths.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let synced = File::open(path).and_then(|f| f.sync_all());
                        if let Err(e) = synced {
                            next.store(paths.len(), Ordering::Relaxed);
                            return Err(e).at("sync", path);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes)).map(|_| ())
}

/// Write `path` atomically with a closure that streams the content; returns its digest.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileDigest> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir_all(parent)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // tempfile makes the temporary sibling (removed if anything fails) and renames it in;
    // the flushes before and after the rename are ours. A new file gets the mode `File::create`
    // would give it; a file that is replaced keeps its mode (thrum keeps config.json 0600).
    let mode = mode_of(path).unwrap_or(0o666);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .tempfile_in(parent)
        .at("create a temporary file in", parent)?;
    if mode != 0o666 {
        // Exactly that mode, whatever the umask.
        set_mode(tmp.path(), mode)?;
    }
    let file = tmp.as_file().try_clone().at("write", tmp.path())?;
    let mut writer = hashed_file(file, Algorithm::Blake3);
    fill(&mut writer).at("write", tmp.path())?;
    let (file, digest) = finish_hashed(writer).at("write", tmp.path())?;
    file.sync_all().at("sync", tmp.path())?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .at("rename into place", path)?;
    sync_dir(parent)?;
    Ok(digest)
}

/// Copy `src` into a new file `dst` (which must not exist), hashing while writing and
/// flushing it to disk. Used inside staging directories, which are published as a whole.
pub fn copy_new(src: &Path, dst: &Path) -> Result<FileDigest> {
    let (file, digest, _) = copy_new_unsynced(src, dst)?;
    file.sync_all().at("sync", dst)?;
    Ok(digest)
}

/// [`copy_new`], leaving the flush to disk to the caller (one [`sync_paths`] for many files);
/// returns the new file and its blocks (see [`blocks`]) too.
pub fn copy_new_unsynced(
    src: &Path,
    dst: &Path,
) -> Result<(File, FileDigest, Option<blocks::Blocks>)> {
    let mut input = File::open(src).at("open", src)?;
    let mut writer = hashed_file(create_new(dst)?, Algorithm::Blake3);
    // 256 KiB at a time (`io::copy` into a `dyn Write` goes 8 KiB at a time), and each error
    // names its own file: a full disk is the backup's, an unreadable file the workspace's.
    let size = input.metadata().map_or(0, |m| m.len());
    let mut block = vec![0u8; size.clamp(4096, 256 * 1024) as usize];
    loop {
        let n = match input.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).at("read", src),
        };
        writer.write_all(&block[..n]).at("write", dst)?;
    }
    finish_hashed_blocks(writer).at("write", dst)
}

/// Copy `src` into a new file `dst` (which must not exist, created 0600) without hashing it or
/// flushing it to disk, and return its size: for a file whose bytes were just verified
/// against its checksum (a restore's source). The kernel copies it (`copy_file_range`, which
/// `io::copy` uses between two files), never through our memory.
pub fn copy_verified_unsynced(src: &Path, dst: &Path) -> Result<u64> {
    let mut input = File::open(src).at("open", src)?;
    let mut output = create_new(dst)?;
    io::copy(&mut input, &mut output).at("copy into", dst)
}

/// Copy the bytes of `src` from offset `from` to its end into a new file `dst` (which must not
/// exist, created 0600), without flushing it, by the kernel as [`copy_verified_unsynced`];
/// returns how many bytes.
pub fn copy_tail_unsynced(src: &Path, from: u64, dst: &Path) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut input = File::open(src).at("open", src)?;
    input.seek(SeekFrom::Start(from)).at("read", src)?;
    let mut output = create_new(dst)?;
    io::copy(&mut input, &mut output).at("copy into", dst)
}

/// Hard-link `src` as the new name `dst` and hash it; where the filesystem cannot link (another
/// device), copy it as [`copy_new`] does.
pub fn link_new(src: &Path, dst: &Path) -> Result<(FileDigest, Option<blocks::Blocks>)> {
    if let Some(parent) = dst.parent() {
        create_dir_all(parent)?;
    }
    match fs::hard_link(src, dst) {
        Ok(()) => digest_file_blocks(dst),
        Err(_) => Ok((copy_new(src, dst)?, None)),
    }
}

/// Create the new file `dst` with streamed content, flush it to disk and return its digest.
pub fn write_new_with(
    dst: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileDigest> {
    write_new_hashed(dst, Algorithm::Blake3, fill)
}

/// [`write_new_with`], hashing with `algorithm`.
pub fn write_new_hashed(
    dst: &Path,
    algorithm: Algorithm,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<FileDigest> {
    let (file, digest) = write_new_unsynced(dst, algorithm, fill)?;
    file.sync_all().at("sync", dst)?;
    Ok(digest)
}

/// [`write_new_hashed`], leaving the flush to disk to the caller (see [`copy_new_unsynced`]).
pub fn write_new_unsynced(
    dst: &Path,
    algorithm: Algorithm,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(File, FileDigest)> {
    let mut writer = hashed_file(create_new(dst)?, algorithm);
    fill(&mut writer).at("write", dst)?;
    finish_hashed(writer).at("write", dst)
}

/// Create the new file `dst` (it must not exist) and its parent folders. The file is
/// private (0600): what is written this way is a backup's copy, a restore's temporary file
/// (given its final mode with [`set_mode`] before it is renamed into place) or an extracted
/// archive entry, and any of them may hold a secret.
fn create_new(dst: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = dst.parent() {
        create_dir_all(parent)?;
    }
    File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .at("create", dst)
}

/// Set the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777)).at("set the mode of", path)
}

/// The permission bits of `path` (not following a symbolic link).
pub fn mode_of(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// Create `dir` (and missing parents) with `mode` for the folders it creates.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .at("create directory", dir)
}

/// A buffered writer to `file` that hashes what it writes with `algorithm`.
fn hashed_file(file: File, algorithm: Algorithm) -> io::BufWriter<HashingWriter<File>> {
    buffered(HashingWriter::with(file, algorithm))
}

/// Buffer the writes to a hashing file writer. The buffer comes first, so the hash is fed
/// whole 256 KiB blocks however small the writes are: BLAKE3 hashes many 1 KiB chunks at once
/// (AVX-512 here) only when it is given many at once, and a JSONL export writes one short line
/// at a time. [`finish_synced`] takes what this returns.
pub fn buffered(hashed: HashingWriter<File>) -> io::BufWriter<HashingWriter<File>> {
    io::BufWriter::with_capacity(256 * 1024, hashed)
}

/// Flush a [`hashed_file`] writer; returns the file and the digest of everything written.
/// The file is not flushed to disk (see [`finish_synced`] and [`sync_paths`]).
pub fn finish_hashed(writer: io::BufWriter<HashingWriter<File>>) -> io::Result<(File, FileDigest)> {
    let hashed = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(hashed.finish())
}

/// [`finish_hashed`], with the blocks of what was written (see [`blocks`]) when it was hashed
/// with BLAKE3.
pub fn finish_hashed_blocks(
    writer: io::BufWriter<HashingWriter<File>>,
) -> io::Result<(File, FileDigest, Option<blocks::Blocks>)> {
    let hashed = writer.into_inner().map_err(|e| e.into_error())?;
    Ok(hashed.finish_blocks())
}

/// Flush a [`hashed_file`] writer, flush the file `dst` to disk and return the digest.
pub fn finish_synced(writer: io::BufWriter<HashingWriter<File>>, dst: &Path) -> Result<FileDigest> {
    let (file, digest) = finish_hashed(writer).at("write", dst)?;
    file.sync_all().at("sync", dst)?;
    Ok(digest)
}

/// Give the finished file `tmp` the name `dst` only if no file has that name yet.
///
/// Returns `Ok(false)` (and leaves `tmp` alone) when `dst` exists. A hard link is atomic and
/// never replaces an existing name, unlike `rename`.
pub fn publish_no_clobber(tmp: &Path, dst: &Path) -> Result<bool> {
    // tempfile's no-clobber rename (`renameat2(RENAME_NOREPLACE)`, or a hard link and an
    // unlink where the filesystem lacks it); the flush of the folder is ours.
    let tmp = tempfile::TempPath::try_from_path(tmp).at("publish", tmp)?;
    match tmp.persist_noclobber(dst) {
        Ok(()) => {
            if let Some(parent) = dst.parent() {
                sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) => {
            // The temporary file stays where it is: the caller tries another name.
            let kind = e.error.kind();
            let error = e.error;
            let _ = e.path.keep();
            if kind == io::ErrorKind::AlreadyExists {
                Ok(false)
            } else {
                Err(error).at("publish", dst)
            }
        }
    }
}

/// Remove a file or a directory tree if it exists.
pub fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).at("remove", path),
        Ok(_) => fs::remove_file(path).at("remove", path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at("inspect", path),
    }
}

/// Every regular file below `root`, as sorted `/`-separated relative paths.
///
/// Symbolic links are not followed and not listed: a snapshot holds plain files only.
pub fn walk_files(root: &Path) -> Result<Vec<String>> {
    Ok(walk_all(root)?
        .into_iter()
        .filter(|f| f.odd.is_none())
        .map(|f| f.rel)
        .collect())
}

/// An entry below a folder that is not a folder: its path relative to the folder, and what
/// it is when not a regular file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    /// `/`-separated path relative to the root.
    pub rel: String,
    /// `a symbolic link` or `not a regular file`; `None` for a regular file.
    pub odd: Option<&'static str>,
}

/// Every entry below `root` that is not a folder, symbolic links not followed, sorted; empty
/// if `root` is absent.
pub fn walk_all(root: &Path) -> Result<Vec<Walked>> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = match entry {
            Ok(entry) => entry,
            // Absent (or gone while walking): nothing there.
            Err(e)
                if e.io_error()
                    .is_some_and(|io| io.kind() == io::ErrorKind::NotFound) =>
            {
                continue;
            }
            Err(e) => {
                let path = e.path().unwrap_or(root).to_path_buf();
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("a folder loop"));
                return Err(source).at("read directory", &path);
            }
        };
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let odd = if kind.is_file() {
            None
        } else if kind.is_symlink() {
            Some("a symbolic link")
        } else {
            Some("not a regular file")
        };
        out.push(Walked { rel, odd });
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Free bytes available to this user on the filesystem holding `path`.
pub fn available_space(path: &Path) -> Option<u64> {
    let mut probe = path;
    loop {
        if probe.exists() {
            break;
        }
        probe = probe.parent()?;
    }
    let stat = rustix::fs::statvfs(probe).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// Read a whole file, attaching the path to any error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).at("read", path)
}

/// Exchange two directory entries atomically (`renameat2(RENAME_EXCHANGE)`).
///
/// Returns `Ok(false)` where the filesystem does not support it; the caller then falls
/// back to two renames, which its recovery knows how to finish.
pub fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => Ok(false),
        Err(e) => Err(io::Error::from(e)).at("exchange", a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_counted_at_every_length_and_offset() {
        let text: Vec<u8> = (0..3000u32)
            .map(|i| {
                if i % 7 == 0 || i % 255 == 3 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        for len in [0, 1, 254, 255, 256, 511, 1000, 3000] {
            for start in [0, 1, 13] {
                let buf = &text[start.min(len)..len];
                let naive = buf.iter().filter(|&&b| b == b'\n').count() as u64;
                assert_eq!(count_newlines(buf), naive, "{start}..{len}");
            }
        }
        assert_eq!(count_newlines(&[b'\n'; 1000]), 1000);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"one\n").unwrap();
        write_atomic(&path, b"two\nlines\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two\nlines\n");
        assert_eq!(walk_files(dir.path()).unwrap(), vec!["a.txt"]);
    }

    #[test]
    fn atomic_write_keeps_the_mode_and_a_failed_fill_changes_nothing() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let failed = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.unwrap_err().to_string().contains("disk full"));
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(walk_files(dir.path()).unwrap(), vec!["config.json"]);
    }

    #[test]
    fn the_walk_lists_nested_files_flags_links_and_takes_an_absent_root_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("a/b")).unwrap();
        fs::write(dir.path().join("a/b/c.txt"), b"c").unwrap();
        fs::write(dir.path().join("a.txt"), b"a").unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        let walked: Vec<(String, Option<&str>)> = walk_all(dir.path())
            .unwrap()
            .into_iter()
            .map(|w| (w.rel, w.odd))
            .collect();
        assert_eq!(
            walked,
            [
                ("a.txt".to_owned(), None),
                ("a/b/c.txt".to_owned(), None),
                ("link".to_owned(), Some("a symbolic link")),
            ]
        );
        assert!(walk_all(&dir.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn digest_counts_lines_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        let d = write_atomic_with(&path, |w| w.write_all(b"a\nb\n")).unwrap();
        assert_eq!(d.size, 4);
        assert_eq!(d.lines, 2);
        assert_eq!(d, digest_file(&path).unwrap());
        assert_eq!(
            d.checksum,
            Checksum::Blake3(blake3::hash(b"a\nb\n").to_hex().to_string())
        );
        let sha = digest_file_with(&path, Algorithm::Sha256).unwrap();
        assert_eq!((sha.size, sha.lines), (4, 2));
        assert_eq!(
            sha.checksum,
            Checksum::Sha256(
                "911169ddaaf146aff539f58c26c489af3b892dff0fe283c1c264c65ae5aa59a2".into()
            )
        );
    }

    #[test]
    fn sync_paths_syncs_files_and_folders_and_names_what_it_cannot() {
        let d = tempfile::tempdir().unwrap();
        let mut paths = vec![d.path().to_path_buf()];
        for i in 0..20 {
            let p = d.path().join(format!("f{i}"));
            fs::write(&p, vec![i as u8; 1000 * i]).unwrap();
            paths.push(p);
        }
        sync_paths(&paths).unwrap();
        sync_paths(&[]).unwrap();
        let missing = d.path().join("gone");
        paths.insert(7, missing.clone());
        let err = sync_paths(&paths).unwrap_err().to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn publish_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.tmp");
        let dst = dir.path().join("a.zip");
        fs::write(&a, b"first").unwrap();
        assert!(publish_no_clobber(&a, &dst).unwrap());
        let b = dir.path().join("b.tmp");
        fs::write(&b, b"second").unwrap();
        assert!(!publish_no_clobber(&b, &dst).unwrap());
        assert_eq!(fs::read(&dst).unwrap(), b"first");
        assert!(b.exists());
    }

    #[test]
    fn exchange_swaps_directories() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("in-a"), b"").unwrap();
        if exchange(&a, &b).unwrap() {
            assert!(b.join("in-a").exists());
            assert!(!a.join("in-a").exists());
        }
    }
}
