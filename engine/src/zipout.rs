//! A streaming zip writer whose Deflate runs on every core, as pigz does.
//!
//! Each file is cut into chunks of [`CHUNK`] bytes. Every chunk is compressed on its own, as
//! raw Deflate primed with the last 32 KiB of the chunk before it (so the ratio stays that of
//! one stream), and ended with a sync flush, which closes it on a byte boundary; after the last
//! chunk an empty final block ([`END`]) ends the stream. The chunks' outputs, in order, are one
//! valid Deflate stream: any zip reader (thrum's Go `archive/zip`, Info-ZIP `unzip`, the `zip`
//! crate) reads the entry as usual.
//!
//! That ending is what makes an append-only file cheap the next time: its earlier compressed
//! data, minus the two bytes of [`END`], ends on a byte boundary with the whole earlier
//! content, so a later archive copies it as it is, compresses only the appended bytes (primed
//! with the earlier content's last 32 KiB) and adds [`END`] again ([`ZipOut::add_continued`]).
//! An unchanged file's data is copied whole ([`ZipOut::add_copied`]). Copied bytes are checked
//! on the way, against the CRC of each compressed chunk recorded when it was written (or, for
//! an index without those, by inflating them against the earlier entry's CRC), so damage is
//! never carried over. Chunks are compressed a batch at a time by a pool of threads that lives
//! as long as the writer, so memory stays bounded by the batch (a few MiB), whatever the file
//! sizes.
//!
//! The writer emits plain zip: a local header (sizes patched once known: the output is
//! seekable), the data, then the central directory; ZIP64 records where sizes, offsets or the
//! entry count need them.

use std::io::{self, Read, Seek, SeekFrom, Write};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes per independently compressed chunk.
pub const CHUNK: usize = 256 * 1024;
/// Deflate's window: the dictionary handed from one chunk to the next.
const WINDOW: usize = 32 * 1024;
/// An empty final block with fixed Huffman codes: the end of every stream we write.
pub const END: [u8; 2] = [0x03, 0x00];
/// What a sync flush leaves at the end of the data: an empty stored block.
const SYNC: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Above this uncompressed size an entry gets ZIP64 fields from the start (its compressed size
/// could pass 4 GiB by a few bytes per chunk).
const ZIP64_FROM: u64 = 0xF000_0000;

/// One chunk of an entry as we wrote it: its uncompressed length, its compressed length, the
/// CRC-32 of its bytes and of its compressed bytes, and the BLAKE3 hash of what it encodes
/// (its bytes after the 32 KiB before them). An archive's chunk index lets the next archive
/// copy the chunks of a changed file whose bytes did not change (see
/// [`ZipOut::add_rechunked`]), and copy or continue an entry after checking only its
/// compressed bytes against what was written (see [`ZipOut::add_copied`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Uncompressed bytes.
    pub len: u32,
    /// Compressed bytes (ending with a sync flush).
    pub packed: u32,
    /// CRC-32 of the uncompressed bytes.
    pub crc: u32,
    /// CRC-32 of the compressed bytes, and BLAKE3 of the dictionary the chunk was compressed
    /// with followed by its bytes (both absent in indexes written before they were recorded).
    pub checks: Option<ChunkChecks>,
}

/// What proves an earlier chunk's compressed bytes can be copied without inflating them: they
/// are the bytes that were written (`packed_crc`), and those encoded the same dictionary and
/// data as the new chunk (`hash`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkChecks {
    /// CRC-32 of the compressed bytes.
    pub packed_crc: u32,
    /// BLAKE3 of the 32 KiB dictionary (less at the start of an entry) and the chunk's bytes.
    pub hash: [u8; 32],
}

/// BLAKE3 of a chunk's dictionary followed by its bytes.
fn chunk_hash(dict: &[u8], data: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(dict);
    h.update(data);
    *h.finalize().as_bytes()
}

/// What compressing an entry's data produced.
struct Deflated {
    crc: u32,
    read: u64,
    written: u64,
    chunks: Vec<ChunkInfo>,
    reused: u64,
}

/// One chunk to write: its bytes, the 32 KiB before them, and an earlier chunk's compressed
/// bytes that may encode the same.
struct Job {
    data: Vec<u8>,
    crc: u32,
    dict: Vec<u8>,
    earlier: Option<(Vec<u8>, Option<ChunkChecks>)>,
}

struct Central {
    chunks: Option<Vec<ChunkInfo>>,
    name: Vec<u8>,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
    time: u16,
    date: u16,
    zip64: bool,
    /// Unix permission bits, in the central directory's external attributes.
    mode: u32,
}

/// Permission bits of an entry unless [`ZipOut::set_mode`] says otherwise.
pub const DEFAULT_MODE: u32 = 0o644;

/// Writes a zip, one entry at a time.
pub struct ZipOut<W: Write + Seek> {
    out: W,
    pos: u64,
    entries: Vec<Central>,
    level: u32,
    threads: usize,
    pool: Option<Pool>,
}

/// How many threads compress: the machine's cores, at most 8.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

impl<W: Write + Seek> ZipOut<W> {
    /// Start a zip at the current position of `out` (normally an empty file).
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        let pos = out.stream_position()?;
        Ok(Self {
            out,
            pos,
            entries: Vec::new(),
            level: level.min(9),
            threads: threads.max(1),
            pool: (threads > 1).then(|| Pool::new(threads, level.min(9))),
        })
    }

    /// Add the entry `name` with the bytes of `data` (`size` of them, as the file's metadata
    /// says; a file that turns out longer or shorter is an error). `advance` is told of every
    /// chunk read; `check` is asked between batches whether to go on.
    pub fn add(
        &mut self,
        name: &str,
        data: &mut dyn Read,
        size: u64,
        modified: zip::DateTime,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        self.add_inner(
            name,
            data,
            size,
            modified,
            size >= ZIP64_FROM,
            advance,
            check,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn add_inner(
        &mut self,
        name: &str,
        data: &mut dyn Read,
        size: u64,
        modified: zip::DateTime,
        zip64: bool,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        self.add_deflated(name, data, size, modified, zip64, None, advance, check)
            .map(|_| ())
            .map_err(ReuseError::into_io)
    }

    /// Add `name` (a file that changed since the earlier archive), cutting it where the
    /// earlier entry's chunks were cut (`chunks`, that entry's index) and copying each earlier
    /// chunk (`raw` is the earlier entry's compressed data) whose bytes are the same: a copied
    /// chunk is first inflated, primed with the 32 KiB before it, and compared with the new
    /// bytes. Returns the bytes not compressed again.
    #[allow(clippy::too_many_arguments)]
    pub fn add_rechunked(
        &mut self,
        name: &str,
        data: &mut dyn Read,
        size: u64,
        modified: zip::DateTime,
        raw: &mut dyn Read,
        chunks: &[ChunkInfo],
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<u64, ReuseError> {
        let zip64 = size >= ZIP64_FROM;
        let earlier = Some((raw, chunks));
        self.add_deflated(name, data, size, modified, zip64, earlier, advance, check)
    }

    /// One entry compressed by [`ZipOut::deflate`] (copying the `earlier` entry's unchanged
    /// chunks, if given) between its local header and its descriptor. Returns the bytes reused.
    #[allow(clippy::too_many_arguments)]
    fn add_deflated(
        &mut self,
        name: &str,
        data: &mut dyn Read,
        size: u64,
        modified: zip::DateTime,
        zip64: bool,
        earlier: Option<(&mut dyn Read, &[ChunkInfo])>,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<u64, ReuseError> {
        let offset = self.start_entry(name, modified, zip64)?;
        let d = self.deflate(data, Vec::new(), earlier, advance, check)?;
        self.finish_entry(
            name,
            offset,
            modified,
            zip64,
            size,
            (d.crc, d.read, d.written),
            Some(d.chunks),
        )?;
        Ok(d.reused)
    }

    /// Write the local header; returns its offset.
    fn start_entry(&mut self, name: &str, modified: zip::DateTime, zip64: bool) -> io::Result<u64> {
        let name = name.as_bytes();
        if name.len() > u16::MAX as usize {
            return Err(io::Error::other("entry name longer than 65535 bytes"));
        }
        let offset = self.pos;
        let mut header = Vec::with_capacity(30 + name.len() + 20);
        header.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        header.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
        header.extend_from_slice(&0x0800u16.to_le_bytes()); // names are UTF-8
        header.extend_from_slice(&8u16.to_le_bytes()); // Deflate
        header.extend_from_slice(&modified.timepart().to_le_bytes());
        header.extend_from_slice(&modified.datepart().to_le_bytes());
        header.extend_from_slice(&[0; 12]); // crc, sizes: patched by finish_entry
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
        header.extend_from_slice(name);
        if zip64 {
            header.extend_from_slice(&1u16.to_le_bytes());
            header.extend_from_slice(&16u16.to_le_bytes());
            header.extend_from_slice(&[0; 16]); // sizes: patched by finish_entry
        }
        self.out.write_all(&header)?;
        self.pos += header.len() as u64;
        Ok(offset)
    }

    /// Patch the CRC and sizes into the local header and record the central entry.
    #[allow(clippy::too_many_arguments)]
    fn finish_entry(
        &mut self,
        name: &str,
        offset: u64,
        modified: zip::DateTime,
        zip64: bool,
        size: u64,
        (crc, read, compressed): (u32, u64, u64),
        chunks: Option<Vec<ChunkInfo>>,
    ) -> io::Result<()> {
        if read != size {
            return Err(io::Error::other(format!(
                "{name} changed while being archived ({size} bytes expected, {read} read)"
            )));
        }
        if !zip64 && (compressed >= 0xFFFF_FFFF || read >= 0xFFFF_FFFF) {
            return Err(io::Error::other("entry too large for its header"));
        }
        let end = self.pos;
        self.out.seek(SeekFrom::Start(offset + 14))?;
        self.out.write_all(&crc.to_le_bytes())?;
        if zip64 {
            self.out.write_all(&[0xFF; 8])?;
            self.out
                .seek(SeekFrom::Start(offset + 30 + name.len() as u64 + 4))?;
            self.out.write_all(&read.to_le_bytes())?;
            self.out.write_all(&compressed.to_le_bytes())?;
        } else {
            self.out.write_all(&(compressed as u32).to_le_bytes())?;
            self.out.write_all(&(read as u32).to_le_bytes())?;
        }
        self.out.seek(SeekFrom::Start(end))?;
        self.entries.push(Central {
            chunks,
            name: name.as_bytes().to_vec(),
            crc,
            compressed,
            size: read,
            offset,
            time: modified.timepart(),
            date: modified.datepart(),
            zip64,
            mode: DEFAULT_MODE,
        });
        Ok(())
    }

    /// The CRC-32 and size of the entry written last.
    pub fn last_entry(&self) -> Option<(u32, u64)> {
        self.entries.last().map(|e| (e.crc, e.size))
    }

    /// Set the Unix permission bits of the entry written last (an unzip of the archive gives
    /// the file these bits: a secret stays 0600).
    pub fn set_mode(&mut self, mode: u32) {
        if let Some(e) = self.entries.last_mut() {
            e.mode = mode & 0o777;
        }
    }

    /// The chunk index of every entry written so far whose chunks are known.
    pub fn index(&self) -> std::collections::BTreeMap<String, Vec<ChunkInfo>> {
        self.entries
            .iter()
            .filter_map(|e| {
                let chunks = e.chunks.clone()?;
                Some((String::from_utf8_lossy(&e.name).into_owned(), chunks))
            })
            .collect()
    }

    /// Where the next entry will start (to [`ZipOut::rewind`] to).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Drop whatever was written from `to` on (an entry whose reuse was refused).
    pub fn rewind(&mut self, to: u64) -> io::Result<()> {
        self.out.seek(SeekFrom::Start(to))?;
        self.pos = to;
        Ok(())
    }

    /// Add `name` by copying an earlier entry's compressed data (`raw`, `earlier.compressed`
    /// bytes) as it is, checked on the way: against the CRC of each compressed chunk when its
    /// index (`chunks`) records them, else by inflating it and comparing with `earlier`'s CRC
    /// and size. The file must be unchanged since; the caller knows that from the two
    /// manifests.
    pub fn add_copied(
        &mut self,
        name: &str,
        raw: &mut dyn Read,
        earlier: Earlier,
        chunks: Option<Vec<ChunkInfo>>,
        modified: zip::DateTime,
    ) -> Result<(), ReuseError> {
        let zip64 = earlier.size >= ZIP64_FROM;
        let offset = self.start_entry(name, modified, zip64)?;
        let mut check = RawCheck::new(chunks.as_deref(), &earlier)?;
        let copied = self.copy_raw(raw, earlier.compressed, &mut check)?;
        check.expect(&earlier, true)?;
        self.finish_entry(
            name,
            offset,
            modified,
            zip64,
            earlier.size,
            (earlier.crc, earlier.size, copied),
            chunks,
        )?;
        Ok(())
    }

    /// Add `name`, whose first `earlier.size` bytes are an earlier entry's whole content (an
    /// append-only log): the earlier compressed data is copied without its [`END`] (checked as
    /// in [`ZipOut::add_copied`]), then the rest of the file (`tail`, `size - earlier.size`
    /// bytes) is compressed primed with `dict`, the last 32 KiB of the earlier content.
    #[allow(clippy::too_many_arguments)]
    pub fn add_continued(
        &mut self,
        name: &str,
        raw: &mut dyn Read,
        earlier: Earlier,
        chunks: Option<Vec<ChunkInfo>>,
        tail: &mut dyn Read,
        dict: Vec<u8>,
        size: u64,
        modified: zip::DateTime,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<(), ReuseError> {
        let zip64 = size >= ZIP64_FROM;
        let body = earlier
            .compressed
            .checked_sub(END.len() as u64)
            .ok_or_else(|| ReuseError::Refused("the earlier entry is too short".into()))?;
        let offset = self.start_entry(name, modified, zip64)?;
        let mut checked = RawCheck::new(chunks.as_deref(), &earlier)?;
        let copied = self.copy_raw(&mut raw.take(body), body, &mut checked)?;
        let mut end = [0u8; 2];
        raw.read_exact(&mut end)
            .map_err(|e| ReuseError::Refused(format!("cannot read the earlier entry: {e}")))?;
        if end != END || !checked.ends_with_sync() {
            return Err(ReuseError::Refused(
                "the earlier entry does not end with a sync flush and an empty final block".into(),
            ));
        }
        checked.expect(&earlier, false)?;
        let t = self.deflate(tail, dict, None, advance, check)?;
        let mut crc = crc32fast::Hasher::new_with_initial_len(earlier.crc, earlier.size);
        crc.combine(&crc32fast::Hasher::new_with_initial_len(t.crc, t.read));
        let chunks = chunks.map(|mut c| {
            c.extend(t.chunks);
            c
        });
        self.finish_entry(
            name,
            offset,
            modified,
            zip64,
            size,
            (crc.finalize(), earlier.size + t.read, copied + t.written),
            chunks,
        )?;
        Ok(())
    }

    /// Copy exactly `n` raw bytes from `raw` to the output, feeding them to `check`.
    fn copy_raw(
        &mut self,
        raw: &mut dyn Read,
        n: u64,
        check: &mut RawCheck,
    ) -> Result<u64, ReuseError> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut left = n;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let got = raw
                .read(&mut buf[..want])
                .map_err(|e| ReuseError::Refused(format!("cannot read the earlier entry: {e}")))?;
            if got == 0 {
                return Err(ReuseError::Refused("the earlier entry ended early".into()));
            }
            check.feed(&buf[..got])?;
            self.out.write_all(&buf[..got])?;
            self.pos += got as u64;
            left -= got as u64;
        }
        Ok(n)
    }

    /// Compress `data` into the output, every chunk primed with the 32 KiB before it (`window`
    /// before the first) and ended by a sync flush, then [`END`]. With `earlier` (an earlier
    /// entry's compressed data and chunk index), chunks are cut where the earlier ones were and
    /// an earlier chunk whose bytes are unchanged is copied (after inflating it to check).
    fn deflate(
        &mut self,
        data: &mut dyn Read,
        mut window: Vec<u8>,
        mut earlier: Option<(&mut dyn Read, &[ChunkInfo])>,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<Deflated, ReuseError> {
        let batch = self.threads * 4;
        let mut crc = crc32fast::Hasher::new();
        let mut out = Deflated {
            crc: 0,
            read: 0,
            written: 0,
            chunks: Vec::new(),
            reused: 0,
        };
        let mut plan = 0usize;
        let mut at_end = false;
        while !at_end {
            check()?;
            let mut jobs: Vec<Job> = Vec::with_capacity(batch);
            while jobs.len() < batch {
                // Cut where the earlier entry was cut while it has chunks left; then CHUNK.
                let (want, candidate) = match earlier.as_mut() {
                    Some((raw, chunks)) if plan < chunks.len() => {
                        let c = chunks[plan];
                        let mut packed = vec![0u8; c.packed as usize];
                        raw.read_exact(&mut packed).map_err(|e| {
                            ReuseError::Refused(format!("cannot read the earlier entry: {e}"))
                        })?;
                        plan += 1;
                        (c.len as usize, Some((c, packed)))
                    }
                    _ => (CHUNK, None),
                };
                let mut chunk = Vec::with_capacity(want);
                data.take(want as u64).read_to_end(&mut chunk)?;
                at_end = chunk.len() < want;
                if chunk.is_empty() {
                    break;
                }
                let dict = window.clone();
                window.extend_from_slice(&chunk);
                let cut = window.len().saturating_sub(WINDOW);
                window.drain(..cut);
                let chunk_crc = crc32fast::hash(&chunk);
                let earlier_bytes = candidate
                    .filter(|(c, _)| c.len as usize == chunk.len() && c.crc == chunk_crc)
                    .map(|(c, packed)| (packed, c.checks));
                jobs.push(Job {
                    data: chunk,
                    crc: chunk_crc,
                    dict,
                    earlier: earlier_bytes,
                });
                if at_end {
                    break;
                }
            }
            if jobs.is_empty() {
                break;
            }
            let infos: Vec<(usize, u32)> = jobs.iter().map(|j| (j.data.len(), j.crc)).collect();
            for &(len, chunk_crc) in &infos {
                crc.combine(&crc32fast::Hasher::new_with_initial_len(
                    chunk_crc, len as u64,
                ));
                out.read += len as u64;
            }
            let results = match &self.pool {
                Some(pool) => pool.run(jobs)?,
                None => jobs
                    .into_iter()
                    .map(|j| pack(j, self.level))
                    .collect::<io::Result<_>>()?,
            };
            for ((packed, reused, hash), (len, chunk_crc)) in results.into_iter().zip(infos) {
                self.out.write_all(&packed)?;
                out.written += packed.len() as u64;
                self.pos += packed.len() as u64;
                if reused {
                    out.reused += len as u64;
                }
                out.chunks.push(ChunkInfo {
                    len: len as u32,
                    packed: packed.len() as u32,
                    crc: chunk_crc,
                    checks: Some(ChunkChecks {
                        packed_crc: crc32fast::hash(&packed),
                        hash,
                    }),
                });
                advance(len as u64);
            }
        }
        self.out.write_all(&END)?;
        self.pos += END.len() as u64;
        out.written += END.len() as u64;
        out.crc = crc.finalize();
        Ok(out)
    }

    /// Write the central directory and the end records; returns the output and where the
    /// archive ends in it (anything after was written by a rewound entry).
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let cd_offset = self.pos;
        let mut cd = Vec::new();
        for e in &self.entries {
            let big_sizes = e.zip64 || e.size >= 0xFFFF_FFFF || e.compressed >= 0xFFFF_FFFF;
            let big_offset = e.offset >= 0xFFFF_FFFF;
            let mut extra = Vec::new();
            if big_sizes {
                extra.extend_from_slice(&e.size.to_le_bytes());
                extra.extend_from_slice(&e.compressed.to_le_bytes());
            }
            if big_offset {
                extra.extend_from_slice(&e.offset.to_le_bytes());
            }
            let version: u16 = if extra.is_empty() { 20 } else { 45 };
            cd.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            cd.extend_from_slice(&((3u16 << 8) | version).to_le_bytes()); // made by: Unix
            cd.extend_from_slice(&version.to_le_bytes());
            cd.extend_from_slice(&0x0800u16.to_le_bytes());
            cd.extend_from_slice(&8u16.to_le_bytes());
            cd.extend_from_slice(&e.time.to_le_bytes());
            cd.extend_from_slice(&e.date.to_le_bytes());
            cd.extend_from_slice(&e.crc.to_le_bytes());
            let c32 = if big_sizes {
                0xFFFF_FFFF
            } else {
                e.compressed as u32
            };
            let s32 = if big_sizes {
                0xFFFF_FFFF
            } else {
                e.size as u32
            };
            cd.extend_from_slice(&c32.to_le_bytes());
            cd.extend_from_slice(&s32.to_le_bytes());
            cd.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            let extra_len = if extra.is_empty() { 0 } else { 4 + extra.len() };
            cd.extend_from_slice(&(extra_len as u16).to_le_bytes());
            cd.extend_from_slice(&0u16.to_le_bytes()); // comment
            cd.extend_from_slice(&0u16.to_le_bytes()); // disk
            cd.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            cd.extend_from_slice(&((0o100_000 | e.mode) << 16).to_le_bytes()); // a regular file
            let o32 = if big_offset {
                0xFFFF_FFFF
            } else {
                e.offset as u32
            };
            cd.extend_from_slice(&o32.to_le_bytes());
            cd.extend_from_slice(&e.name);
            if !extra.is_empty() {
                cd.extend_from_slice(&1u16.to_le_bytes());
                cd.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                cd.extend_from_slice(&extra);
            }
        }
        self.out.write_all(&cd)?;
        let cd_size = cd.len() as u64;
        let count = self.entries.len() as u64;
        let end_of_cd = cd_offset + cd_size;
        let zip64 = count >= 0xFFFF || cd_offset >= 0xFFFF_FFFF || cd_size >= 0xFFFF_FFFF;
        let mut tail = Vec::new();
        if zip64 {
            tail.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            tail.extend_from_slice(&44u64.to_le_bytes());
            tail.extend_from_slice(&((3u16 << 8) | 45).to_le_bytes());
            tail.extend_from_slice(&45u16.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes());
            tail.extend_from_slice(&count.to_le_bytes());
            tail.extend_from_slice(&count.to_le_bytes());
            tail.extend_from_slice(&cd_size.to_le_bytes());
            tail.extend_from_slice(&cd_offset.to_le_bytes());
            tail.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes());
            tail.extend_from_slice(&end_of_cd.to_le_bytes());
            tail.extend_from_slice(&1u32.to_le_bytes());
        }
        tail.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        let c16 = count.min(0xFFFF) as u16;
        tail.extend_from_slice(&c16.to_le_bytes());
        tail.extend_from_slice(&c16.to_le_bytes());
        tail.extend_from_slice(&(cd_size.min(0xFFFF_FFFF) as u32).to_le_bytes());
        tail.extend_from_slice(&(cd_offset.min(0xFFFF_FFFF) as u32).to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        self.out.write_all(&tail)?;
        self.out.flush()?;
        let end = end_of_cd + tail.len() as u64;
        Ok((self.out, end))
    }
}

/// Why reusing an earlier entry did not work.
#[derive(Debug)]
pub enum ReuseError {
    /// The earlier entry cannot be reused (damaged, not ending as we end streams, unreadable):
    /// rewind with [`ZipOut::rewind`] and compress the file instead.
    Refused(String),
    /// Writing the output failed: the archive cannot be finished.
    Io(io::Error),
}

impl From<io::Error> for ReuseError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl ReuseError {
    fn into_io(self) -> io::Error {
        match self {
            ReuseError::Io(e) => e,
            ReuseError::Refused(m) => io::Error::other(m),
        }
    }
}

/// The CRC and size of an earlier archive's entry, from its central directory, and the size
/// of its compressed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Earlier {
    /// CRC-32 of the content.
    pub crc: u32,
    /// Uncompressed size.
    pub size: u64,
    /// Compressed size.
    pub compressed: u64,
}

/// Checks an earlier entry's compressed bytes as they are copied: against the CRC of each
/// compressed chunk its index recorded when it was written (the bytes are then what was
/// written, whose content the index describes), or, for an index without those CRCs, by
/// inflating them.
enum RawCheck {
    Packed(PackedCrcs),
    Inflated(Box<Inflated>),
}

impl RawCheck {
    fn new(chunks: Option<&[ChunkInfo]>, earlier: &Earlier) -> Result<Self, ReuseError> {
        let Some(chunks) = chunks else {
            return Ok(Self::Inflated(Box::new(Inflated::new())));
        };
        let Some(crcs) = chunks
            .iter()
            .map(|c| c.checks.map(|k| (c.packed, k.packed_crc)))
            .collect::<Option<Vec<_>>>()
            .filter(|crcs| crcs.iter().all(|&(len, _)| len > 0))
        else {
            return Ok(Self::Inflated(Box::new(Inflated::new())));
        };
        // The index must describe the entry the central directory describes.
        let mut crc = crc32fast::Hasher::new();
        for c in chunks {
            crc.combine(&crc32fast::Hasher::new_with_initial_len(
                c.crc,
                u64::from(c.len),
            ));
        }
        let size: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
        if size != earlier.size || crc.finalize() != earlier.crc {
            return Err(ReuseError::Refused(
                "the earlier entry's chunk index does not match its header".into(),
            ));
        }
        Ok(Self::Packed(PackedCrcs {
            crcs,
            at: 0,
            in_chunk: 0,
            hasher: crc32fast::Hasher::new(),
            after: Vec::new(),
            last: [0; 4],
        }))
    }

    fn feed(&mut self, input: &[u8]) -> Result<(), ReuseError> {
        match self {
            Self::Packed(p) => p.feed(input),
            Self::Inflated(i) => i.feed(input),
        }
    }

    fn ends_with_sync(&self) -> bool {
        match self {
            Self::Packed(p) => p.at == p.crcs.len() && p.after.is_empty() && p.last == SYNC,
            Self::Inflated(i) => i.ends_with_sync(),
        }
    }

    /// Whether everything fed was the earlier entry's whole data (with its [`END`] when
    /// `with_end`).
    fn expect(self, earlier: &Earlier, with_end: bool) -> Result<(), ReuseError> {
        match self {
            Self::Packed(p) => {
                let end: &[u8] = if with_end { &END } else { &[] };
                if p.at != p.crcs.len() || p.after != end {
                    return Err(ReuseError::Refused(
                        "the earlier entry's compressed data does not match its chunk index".into(),
                    ));
                }
                Ok(())
            }
            Self::Inflated(i) => i.expect(earlier),
        }
    }
}

/// The compressed chunks expected, (length, CRC-32), and how far the bytes fed got.
struct PackedCrcs {
    crcs: Vec<(u32, u32)>,
    at: usize,
    in_chunk: u32,
    hasher: crc32fast::Hasher,
    /// Bytes after the last chunk (the stream's [`END`]).
    after: Vec<u8>,
    /// The last 4 bytes of the last chunk.
    last: [u8; 4],
}

impl PackedCrcs {
    fn feed(&mut self, mut input: &[u8]) -> Result<(), ReuseError> {
        while !input.is_empty() {
            let Some(&(len, crc)) = self.crcs.get(self.at) else {
                if self.after.len() + input.len() > END.len() {
                    return Err(ReuseError::Refused(
                        "the earlier entry is longer than its chunk index".into(),
                    ));
                }
                self.after.extend_from_slice(input);
                return Ok(());
            };
            let take = input.len().min((len - self.in_chunk) as usize);
            let (now, rest) = input.split_at(take);
            self.hasher.update(now);
            for &b in now.iter().rev().take(4).rev() {
                self.last.rotate_left(1);
                self.last[3] = b;
            }
            self.in_chunk += take as u32;
            input = rest;
            if self.in_chunk == len {
                let got = std::mem::take(&mut self.hasher).finalize();
                if got != crc {
                    return Err(ReuseError::Refused(format!(
                        "the earlier entry is damaged (compressed chunk {} has crc {got:08x}, its index says {crc:08x})",
                        self.at
                    )));
                }
                self.at += 1;
                self.in_chunk = 0;
            }
        }
        Ok(())
    }
}

/// Inflates copied raw bytes to check them: their CRC and size, and whether the data seen so
/// far ends with a sync flush.
struct Inflated {
    inflater: flate2::Decompress,
    crc: crc32fast::Hasher,
    size: u64,
    last: [u8; 4],
    seen: u64,
    out: Vec<u8>,
}

impl Inflated {
    fn new() -> Self {
        Self {
            inflater: flate2::Decompress::new(false),
            crc: crc32fast::Hasher::new(),
            size: 0,
            last: [0; 4],
            seen: 0,
            out: vec![0; 256 * 1024],
        }
    }

    fn feed(&mut self, mut input: &[u8]) -> Result<(), ReuseError> {
        if input.len() >= 4 {
            self.last.copy_from_slice(&input[input.len() - 4..]);
        } else {
            for &b in input {
                self.last.rotate_left(1);
                self.last[3] = b;
            }
        }
        self.seen += input.len() as u64;
        loop {
            let before_in = self.inflater.total_in();
            let before_out = self.inflater.total_out();
            let status = self
                .inflater
                .decompress(input, &mut self.out, flate2::FlushDecompress::None)
                .map_err(|e| ReuseError::Refused(format!("the earlier entry is damaged: {e}")))?;
            let used = (self.inflater.total_in() - before_in) as usize;
            let made = (self.inflater.total_out() - before_out) as usize;
            self.crc.update(&self.out[..made]);
            self.size += made as u64;
            input = &input[used..];
            if status == Status::StreamEnd || (input.is_empty() && made < self.out.len()) {
                return Ok(());
            }
            if used == 0 && made == 0 {
                return Err(ReuseError::Refused(
                    "the earlier entry is damaged (inflate made no progress)".into(),
                ));
            }
        }
    }

    fn ends_with_sync(&self) -> bool {
        self.seen >= 4 && self.last == SYNC
    }

    fn expect(self, earlier: &Earlier) -> Result<(), ReuseError> {
        let crc = self.crc.finalize();
        if self.size != earlier.size || crc != earlier.crc {
            return Err(ReuseError::Refused(format!(
                "the earlier entry does not inflate to what its header says ({} bytes, crc {crc:08x}; expected {} bytes, crc {:08x})",
                self.size, earlier.size, earlier.crc
            )));
        }
        Ok(())
    }
}

/// A chunk's compressed bytes, whether they are an earlier chunk's, and its [`chunk_hash`].
type Packed = (Vec<u8>, bool, [u8; 32]);

/// One chunk's compressed bytes: the earlier chunk's when they encode exactly its dictionary
/// and data, or its data compressed afresh. The earlier chunk's index entry proves that by its
/// CRC of the compressed bytes and its hash of what they encode; an index without them, by
/// inflating (primed with the dictionary) and comparing.
fn pack(j: Job, level: u32) -> io::Result<Packed> {
    let hash = chunk_hash(&j.dict, &j.data);
    if let Some((packed, checks)) = j.earlier {
        let same = match checks {
            Some(k) => k.hash == hash && crc32fast::hash(&packed) == k.packed_crc,
            None => inflates_to(&packed, &j.dict, &j.data),
        };
        if same {
            return Ok((packed, true, hash));
        }
    }
    deflate_chunk(&j.data, &j.dict, level).map(|p| (p, false, hash))
}

/// The threads that [`pack`] chunks for one [`ZipOut`], started once (a thread per batch left
/// glibc holding tens of MiB of freed memory in per-thread arenas).
struct Pool {
    jobs: Option<std::sync::mpsc::Sender<(usize, Job)>>,
    done: std::sync::mpsc::Receiver<(usize, io::Result<Packed>)>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize, level: u32) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<(usize, Job)>();
        let (finished, done) = std::sync::mpsc::channel();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let workers = (0..threads)
            .map(|_| {
                let queue = std::sync::Arc::clone(&queue);
                let finished = finished.clone();
                std::thread::spawn(move || {
                    loop {
                        let next = queue.lock().map(|q| q.recv());
                        let Ok(Ok((i, job))) = next else { break };
                        let packed = std::panic::catch_unwind(move || pack(job, level))
                            .unwrap_or_else(|_| {
                                Err(io::Error::other("a compression thread failed"))
                            });
                        if finished.send((i, packed)).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        Self {
            jobs: Some(jobs),
            done,
            workers,
        }
    }

    /// [`pack`] every job, on the pool's threads; the results in the jobs' order.
    fn run(&self, jobs: Vec<Job>) -> io::Result<Vec<Packed>> {
        let stopped = || io::Error::other("the compression threads stopped");
        let n = jobs.len();
        let queue = self.jobs.as_ref().ok_or_else(stopped)?;
        for (i, job) in jobs.into_iter().enumerate() {
            queue.send((i, job)).map_err(|_| stopped())?;
        }
        let mut out: Vec<Option<io::Result<Packed>>> = (0..n).map(|_| None).collect();
        for _ in 0..n {
            let (i, packed) = self.done.recv().map_err(|_| stopped())?;
            out[i] = Some(packed);
        }
        out.into_iter()
            .map(|p| p.unwrap_or_else(|| Err(stopped())))
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends every worker's loop.
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Whether raw Deflate `packed`, primed with `dict`, inflates to exactly `data` (and nothing
/// is left over).
fn inflates_to(packed: &[u8], dict: &[u8], data: &[u8]) -> bool {
    let mut d = flate2::Decompress::new(false);
    if !dict.is_empty() && d.set_dictionary(dict).is_err() {
        return false;
    }
    let mut out = vec![0u8; data.len() + 1];
    match d.decompress(packed, &mut out, flate2::FlushDecompress::Sync) {
        Ok(_) => {
            d.total_in() as usize == packed.len()
                && d.total_out() as usize == data.len()
                && out[..data.len()] == *data
        }
        Err(_) => false,
    }
}

/// Raw Deflate of one chunk, primed with `dict`, ended by a sync flush.
fn deflate_chunk(data: &[u8], dict: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // Done once every byte went in and the flush did not fill the output.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn sample(len: usize, seed: u64) -> Vec<u8> {
        // English-ish JSON lines: compressible, not repetitive.
        let words = [
            "agent", "merge", "review", "build", "the", "message", "thread", "ok",
        ];
        let mut s = seed;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let w = words[(s % words.len() as u64) as usize];
            out.extend_from_slice(format!("{{\"n\":{},\"w\":\"{w}\"}}\n", s % 1000).as_bytes());
        }
        out.truncate(len);
        out
    }

    fn write(files: &[(&str, Vec<u8>)], threads: usize, force64: bool) -> Vec<u8> {
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, threads).unwrap();
        for (name, data) in files {
            z.add_inner(
                name,
                &mut &data[..],
                data.len() as u64,
                zip::DateTime::default(),
                force64,
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap();
        }
        z.finish().unwrap().0.into_inner()
    }

    #[test]
    fn every_size_round_trips_through_the_zip_crate() {
        let sizes = [
            0,
            1,
            100,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            3 * CHUNK + 17,
            40 * CHUNK + 5,
        ];
        let files: Vec<(String, Vec<u8>)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (format!("dir/f{i}.jsonl"), sample(n, i as u64 + 1)))
            .collect();
        let files: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        for threads in [1, 2, 3] {
            for force64 in [false, true] {
                let bytes = write(&files, threads, force64);
                let mut zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
                assert_eq!(zip.len(), files.len());
                for (name, data) in &files {
                    let options = zip::read::ZipReadOptions::new().enforce_header_consistency(true);
                    let index = zip.index_for_name(name).unwrap();
                    let mut f = zip.by_index_with_options(index, options).unwrap();
                    let mut got = Vec::new();
                    f.read_to_end(&mut got).unwrap();
                    assert_eq!(&got, data, "{name} threads={threads} zip64={force64}");
                }
            }
        }
    }

    #[test]
    fn parallel_output_compresses_like_one_stream() {
        let data = sample(64 * CHUNK, 7);
        let one = write(&[("a", data.clone())], 1, false);
        let par = write(&[("a", data.clone())], 4, false);
        assert_eq!(one, par, "the output does not depend on the thread count");
        let mut whole = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(6));
        whole.write_all(&data).unwrap();
        let whole = whole.finish().unwrap();
        assert!(
            (par.len() as f64) < whole.len() as f64 * 1.02,
            "{} vs {}",
            par.len(),
            whole.len()
        );
    }

    fn earlier(zip: &mut zip::ZipArchive<Cursor<&Vec<u8>>>, name: &str) -> Earlier {
        let f = zip.by_index_raw(zip.index_for_name(name).unwrap()).unwrap();
        Earlier {
            crc: f.crc32(),
            size: f.size(),
            compressed: f.compressed_size(),
        }
    }

    fn read_back(bytes: &[u8], name: &str) -> Vec<u8> {
        let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let options = zip::read::ZipReadOptions::new().enforce_header_consistency(true);
        let index = zip.index_for_name(name).unwrap();
        let mut f = zip.by_index_with_options(index, options).unwrap();
        let mut got = Vec::new();
        f.read_to_end(&mut got).unwrap();
        got
    }

    #[test]
    fn earlier_entries_are_copied_and_continued() {
        for old_len in [10, CHUNK, 5 * CHUNK + 100] {
            let old = sample(old_len, 1);
            let mut new = old.clone();
            new.extend(sample(CHUNK / 3, 2));
            let same = sample(3 * CHUNK, 5);
            let first = write(&[("log", old.clone()), ("same", same.clone())], 2, false);
            let mut a = zip::ZipArchive::new(Cursor::new(&first)).unwrap();
            let (e_log, e_same) = (earlier(&mut a, "log"), earlier(&mut a, "same"));
            let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
            let dict = old[old.len().saturating_sub(WINDOW)..].to_vec();
            z.add_continued(
                "log",
                &mut a.by_index_raw(a.index_for_name("log").unwrap()).unwrap(),
                e_log,
                None,
                &mut &new[old.len()..],
                dict,
                new.len() as u64,
                zip::DateTime::default(),
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap();
            z.add_copied(
                "same",
                &mut a.by_index_raw(a.index_for_name("same").unwrap()).unwrap(),
                e_same,
                None,
                zip::DateTime::default(),
            )
            .unwrap();
            let second = z.finish().unwrap().0.into_inner();
            assert_eq!(read_back(&second, "log"), new, "old_len {old_len}");
            assert_eq!(read_back(&second, "same"), same);
            // Continued twice still reads back (the ending is preserved).
            let mut b = zip::ZipArchive::new(Cursor::new(&second)).unwrap();
            let e2 = earlier(&mut b, "log");
            let mut newer = new.clone();
            newer.extend(sample(1000, 3));
            let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 1).unwrap();
            z.add_continued(
                "log",
                &mut b.by_index_raw(b.index_for_name("log").unwrap()).unwrap(),
                e2,
                None,
                &mut &newer[new.len()..],
                new[new.len() - WINDOW.min(new.len())..].to_vec(),
                newer.len() as u64,
                zip::DateTime::default(),
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap();
            let third = z.finish().unwrap().0.into_inner();
            assert_eq!(read_back(&third, "log"), newer);
        }
    }

    #[test]
    fn damaged_or_foreign_earlier_entries_are_refused() {
        let data = sample(4 * CHUNK, 11);
        // Written by the zip crate: a stream that ends with its own final block.
        let mut foreign = zip::ZipWriter::new(Cursor::new(Vec::new()));
        foreign
            .start_file("log", zip::write::SimpleFileOptions::default())
            .unwrap();
        foreign.write_all(&data).unwrap();
        let foreign = foreign.finish().unwrap().into_inner();
        let mut a = zip::ZipArchive::new(Cursor::new(&foreign)).unwrap();
        let e = earlier(&mut a, "log");
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        let r = z.add_continued(
            "log",
            &mut a.by_index_raw(a.index_for_name("log").unwrap()).unwrap(),
            e,
            None,
            &mut &b"more\n"[..],
            Vec::new(),
            data.len() as u64 + 5,
            zip::DateTime::default(),
            &mut |_| {},
            &mut || Ok(()),
        );
        assert!(matches!(r, Err(ReuseError::Refused(_))), "{r:?}");
        // ... but copying it whole is fine.
        z.rewind(0).unwrap();
        z.add_copied(
            "log",
            &mut a.by_index_raw(a.index_for_name("log").unwrap()).unwrap(),
            e,
            None,
            zip::DateTime::default(),
        )
        .unwrap();
        assert_eq!(read_back(&z.finish().unwrap().0.into_inner(), "log"), data);

        // A flipped byte in our own entry: refused, never carried over.
        let ours = write(&[("log", data.clone())], 2, false);
        let mut damaged = ours.clone();
        let mid = 30 + 3 + (damaged.len() / 3);
        damaged[mid] ^= 0x10;
        let mut d = zip::ZipArchive::new(Cursor::new(&damaged)).unwrap();
        let e = earlier(&mut d, "log");
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        let r = z.add_copied(
            "log",
            &mut d.by_index_raw(d.index_for_name("log").unwrap()).unwrap(),
            e,
            None,
            zip::DateTime::default(),
        );
        assert!(matches!(r, Err(ReuseError::Refused(_))), "{r:?}");
    }

    #[test]
    fn a_changed_file_reuses_its_unchanged_chunks() {
        let old = sample(20 * CHUNK + 999, 21);
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        z.add(
            "db",
            &mut &old[..],
            old.len() as u64,
            zip::DateTime::default(),
            &mut |_| {},
            &mut || Ok(()),
        )
        .unwrap();
        let index = z.index();
        let first = z.finish().unwrap().0.into_inner();
        let chunks = &index["db"];
        assert_eq!(chunks.len(), 21);
        // Change a few bytes in two places and grow the file, as a database does.
        let mut new = old.clone();
        new[5 * CHUNK + 10] ^= 1;
        new[12 * CHUNK + 77] ^= 1;
        new.extend(sample(3 * CHUNK, 22));
        // Rechunk `new` against the first archive's "db" with the index `index`: the bytes
        // reused, and what the entry reads back as.
        let rechunk = |index: &[ChunkInfo]| {
            let mut a = zip::ZipArchive::new(Cursor::new(&first)).unwrap();
            let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
            let reused = z
                .add_rechunked(
                    "db",
                    &mut &new[..],
                    new.len() as u64,
                    zip::DateTime::default(),
                    &mut a.by_index_raw(a.index_for_name("db").unwrap()).unwrap(),
                    index,
                    &mut |_| {},
                    &mut || Ok(()),
                )
                .unwrap();
            (reused, read_back(&z.finish().unwrap().0.into_inner(), "db"))
        };
        // Chunks 5, 6 (its dictionary changed), 12, 13 and the last, short one are new.
        let (reused, read) = rechunk(chunks);
        assert!(reused >= 15 * CHUNK as u64, "{reused}");
        assert_eq!(read, new);
        let altered = |change: &dyn Fn(&mut ChunkInfo)| -> Vec<ChunkInfo> {
            chunks
                .iter()
                .map(|c| {
                    let mut c = *c;
                    change(&mut c);
                    c
                })
                .collect()
        };
        // A chunk index that lies (wrong CRCs, hashes or compressed CRCs) costs reuse, never
        // correctness: every chunk is compressed again.
        let lies: [&dyn Fn(&mut ChunkInfo); 3] = [
            &|c| c.crc ^= 1,
            &|c| c.checks.as_mut().unwrap().hash[7] ^= 1,
            &|c| c.checks.as_mut().unwrap().packed_crc ^= 1,
        ];
        for (i, lie) in lies.into_iter().enumerate() {
            assert_eq!(rechunk(&altered(lie)), (0, new.clone()), "lie {i}");
        }
        // An index written before chunks had checks: the same chunks are reused, each proved
        // by inflating it.
        let (reused_plain, read) = rechunk(&altered(&|c| c.checks = None));
        assert!(reused_plain >= 15 * CHUNK as u64, "{reused_plain}");
        assert_eq!(read, new);
    }

    #[test]
    fn indexed_entries_are_copied_by_their_compressed_crcs() {
        let old = sample(5 * CHUNK + 100, 31);
        let same = sample(3 * CHUNK, 32);
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        for (name, data) in [("log", &old), ("same", &same)] {
            z.add(
                name,
                &mut &data[..],
                data.len() as u64,
                zip::DateTime::default(),
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap();
        }
        let index = z.index();
        assert!(index.values().flatten().all(|c| c.checks.is_some()));
        let first = z.finish().unwrap().0.into_inner();
        let mut new = old.clone();
        new.extend(sample(CHUNK / 3, 33));
        let mut a = zip::ZipArchive::new(Cursor::new(&first)).unwrap();
        let (e_log, e_same) = (earlier(&mut a, "log"), earlier(&mut a, "same"));
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        z.add_continued(
            "log",
            &mut a.by_index_raw(a.index_for_name("log").unwrap()).unwrap(),
            e_log,
            Some(index["log"].clone()),
            &mut &new[old.len()..],
            old[old.len() - WINDOW..].to_vec(),
            new.len() as u64,
            zip::DateTime::default(),
            &mut |_| {},
            &mut || Ok(()),
        )
        .unwrap();
        z.add_copied(
            "same",
            &mut a.by_index_raw(a.index_for_name("same").unwrap()).unwrap(),
            e_same,
            Some(index["same"].clone()),
            zip::DateTime::default(),
        )
        .unwrap();
        let continued = z.index();
        assert_eq!(continued["log"][..6], index["log"][..]);
        assert_eq!(continued["log"].len(), 7);
        let second = z.finish().unwrap().0.into_inner();
        assert_eq!(read_back(&second, "log"), new);
        assert_eq!(read_back(&second, "same"), same);

        // A flipped byte in the compressed data: its chunk's CRC tells, and it is refused.
        let at = a.by_name("same").unwrap().data_start().unwrap() as usize + CHUNK / 8;
        let mut damaged = first.clone();
        damaged[at] ^= 0x10;
        let mut d = zip::ZipArchive::new(Cursor::new(&damaged)).unwrap();
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        let r = z.add_copied(
            "same",
            &mut d.by_index_raw(d.index_for_name("same").unwrap()).unwrap(),
            e_same,
            Some(index["same"].clone()),
            zip::DateTime::default(),
        );
        assert!(
            matches!(&r, Err(ReuseError::Refused(why)) if why.contains("damaged")),
            "{r:?}"
        );
        // An index that does not describe the entry (another content's chunk CRCs): refused.
        let mut wrong = index["same"].clone();
        wrong[1].crc ^= 1;
        z.rewind(0).unwrap();
        let r = z.add_copied(
            "same",
            &mut a.by_index_raw(a.index_for_name("same").unwrap()).unwrap(),
            e_same,
            Some(wrong),
            zip::DateTime::default(),
        );
        assert!(matches!(r, Err(ReuseError::Refused(_))), "{r:?}");
    }

    #[test]
    fn a_file_that_changes_size_is_an_error() {
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        let data = sample(1000, 3);
        let err = z
            .add(
                "x",
                &mut &data[..],
                999,
                zip::DateTime::default(),
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap_err();
        assert!(err.to_string().contains("changed while being archived"));
    }

    #[test]
    fn unzip_reads_it() {
        let Ok(status) = std::process::Command::new("unzip").arg("-v").output() else {
            return; // Info-ZIP is not installed
        };
        if !status.status.success() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("a/b.jsonl", sample(5 * CHUNK + 3, 9)),
            ("c.txt", b"hi\n".to_vec()),
        ];
        for force64 in [false, true] {
            let path = dir.path().join(format!("t{force64}.zip"));
            std::fs::write(&path, write(&files, 2, force64)).unwrap();
            let out = std::process::Command::new("unzip")
                .arg("-t")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}
