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

mod pool;
mod reuse;

use pool::{Pool, pack};
pub use reuse::{Earlier, ReuseError};

/// Bytes per independently compressed chunk.
pub const CHUNK: usize = 256 * 1024;
/// Bytes per chunk of a SQLite database (an entry whose name ends in `.db`). A database
/// changes in pages scattered over the file (thrum's indexes: a 1% append of messages changes
/// ~3% of `messages.db`'s 4 KiB pages, and 90% of its 256 KiB chunks with their 32 KiB
/// dictionaries), so the next archive can reuse only what is cut fine enough. Measured on the
/// bench's database: 16 KiB chunks (each primed with the 32 KiB before it) also compress it
/// 1.6% smaller than 256 KiB ones, every chunk getting Huffman codes of its own pages.
pub const DB_CHUNK: usize = 16 * 1024;

/// The chunk size of the entry `name`.
fn chunk_size(name: &str) -> usize {
    if name.ends_with(".db") {
        DB_CHUNK
    } else {
        CHUNK
    }
}
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
    /// BLAKE3 of the 32 KiB dictionary (less at the start of an entry) and the chunk's bytes;
    /// all zeros when it was not computed (a chunk of a [`Patch`]), which matches nothing.
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
    dict: Vec<u8>,
    earlier: Option<Candidate>,
    /// Hash the chunk (see [`ChunkChecks::hash`]): not for a [`Patch`], whose chunks that
    /// are not copied unread are known to differ from the earlier ones in bytes or
    /// dictionary, so that a hash could only disagree.
    hash: bool,
}

impl Job {
    /// The earlier chunk's compressed bytes, taken, when they are known to encode this
    /// one's: nothing to read, hash or compress. Else `None`, and the job is unchanged.
    fn take_proven(&mut self) -> Option<pool::Packed> {
        match self.earlier.take() {
            Some(Candidate {
                packed,
                checks: Some(k),
                proven: true,
            }) => Some((packed, true, k.hash)),
            earlier => {
                self.earlier = earlier;
                None
            }
        }
    }
}

/// An earlier chunk's compressed bytes, and what proves they encode a new chunk's bytes: its
/// index entry's checks, or (`proven`) the caller's knowledge that the chunk's bytes and
/// dictionary did not change (the job then holds no bytes; see [`Patch`]).
struct Candidate {
    packed: Vec<u8>,
    checks: Option<ChunkChecks>,
    proven: bool,
}

/// A changed file of which the caller knows which bytes are still the earlier entry's (see
/// [`ZipOut::add_patched`]): a database brought up to date page by page, with the record of
/// the pages it wrote.
pub struct Patch<'a> {
    /// The file, read at the offsets of the chunks that changed.
    pub file: &'a std::fs::File,
    /// Its size.
    pub size: u64,
    /// Whether bytes `from..to` of the file are exactly the earlier entry's bytes there.
    pub unchanged: &'a dyn Fn(u64, u64) -> bool,
    /// The CRC-32 the whole file must have (its snapshot manifest's): the entry is refused
    /// otherwise, however it was put together.
    pub crc: u32,
}

/// Where [`ZipOut::deflate`] reads an entry's bytes from.
enum Input<'a> {
    /// A stream, read in order.
    Stream(&'a mut dyn Read),
    /// A file read at the offsets needed, with what is known of it.
    Patched(Patch<'a>),
}

impl Input<'_> {
    /// The earlier chunk `c` at `pos` encodes the same bytes, known without reading them: its
    /// checks, when it and its dictionary are unchanged.
    fn known_unchanged(&self, pos: u64, c: &ChunkInfo) -> Option<ChunkChecks> {
        let Input::Patched(p) = self else {
            return None;
        };
        let end = pos + u64::from(c.len);
        (end <= p.size && (p.unchanged)(pos.saturating_sub(WINDOW as u64), end))
            .then_some(c.checks)
            .flatten()
    }

    /// Whether the entry ends at `pos` (known only of a file of known size).
    fn ends_at(&self, pos: u64) -> bool {
        matches!(self, Input::Patched(p) if pos >= p.size)
    }

    /// Bytes `from..to` (a [`Patch`]'s file only: a stream is never left behind).
    fn read_at(&self, from: u64, to: u64) -> Result<Vec<u8>, ReuseError> {
        let Input::Patched(p) = self else {
            return Err(ReuseError::Io(io::Error::other(
                "a stream read out of order",
            )));
        };
        let mut buf = vec![0u8; (to - from) as usize];
        std::os::unix::fs::FileExt::read_exact_at(p.file, &mut buf, from)
            .map_err(|e| ReuseError::Refused(format!("cannot read the file: {e}")))?;
        Ok(buf)
    }

    /// The next chunk, at `pos`: `want` bytes, fewer at the end.
    fn next(&mut self, pos: u64, want: usize) -> Result<Vec<u8>, ReuseError> {
        match self {
            Input::Stream(data) => {
                let mut chunk = Vec::with_capacity(want);
                data.take(want as u64).read_to_end(&mut chunk)?;
                Ok(chunk)
            }
            Input::Patched(p) => {
                let end = p.size.min(pos + want as u64);
                self.read_at(pos, end)
            }
        }
    }
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
        let input = Input::Stream(data);
        self.add_deflated(
            name,
            input,
            (size, None),
            modified,
            zip64,
            None,
            advance,
            check,
        )
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
        let input = Input::Stream(data);
        self.add_deflated(
            name,
            input,
            (size, None),
            modified,
            zip64,
            earlier,
            advance,
            check,
        )
    }

    /// One entry compressed by [`ZipOut::deflate`] (copying the `earlier` entry's unchanged
    /// chunks, if given) between its local header and its descriptor: `size` bytes, and when
    /// `expect` gives a CRC-32, with that CRC or refused. Returns the bytes reused.
    #[allow(clippy::too_many_arguments)]
    fn add_deflated(
        &mut self,
        name: &str,
        input: Input<'_>,
        (size, expect): (u64, Option<u32>),
        modified: zip::DateTime,
        zip64: bool,
        earlier: Option<(&mut dyn Read, &[ChunkInfo])>,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<u64, ReuseError> {
        let offset = self.start_entry(name, modified, zip64)?;
        let d = self.deflate(input, chunk_size(name), Vec::new(), earlier, advance, check)?;
        if let Some(expect) = expect
            && (d.crc != expect || d.read != size)
        {
            return Err(ReuseError::Refused(format!(
                "put together from its unchanged chunks it is {} bytes with CRC-32 {:08x}, not {size} bytes with {expect:08x}",
                d.read, d.crc
            )));
        }
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

    /// Compress `input` into the output, every chunk primed with the 32 KiB before it (`window`
    /// before the first) and ended by a sync flush, then [`END`]. With `earlier` (an earlier
    /// entry's compressed data and chunk index), chunks are cut where the earlier ones were and
    /// an earlier chunk is copied where it encodes the same bytes: proven by its index (the hash
    /// of its dictionary and bytes) or by inflating it, or, for a [`Patch`], known unchanged
    /// without reading the file at all.
    fn deflate(
        &mut self,
        mut input: Input<'_>,
        chunk_len: usize,
        mut window: Vec<u8>,
        mut earlier: Option<(&mut dyn Read, &[ChunkInfo])>,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<Deflated, ReuseError> {
        // About as much memory per batch whatever the chunk size: each job holds its chunk and
        // its dictionary.
        let batch = (self.threads * 4 * (CHUNK + WINDOW) / (chunk_len + WINDOW)).max(1);
        let mut crc = crc32fast::Hasher::new();
        let mut out = Deflated {
            crc: 0,
            read: 0,
            written: 0,
            chunks: Vec::new(),
            reused: 0,
        };
        let mut plan = 0usize;
        // Where the next chunk starts, and whether `window` holds the bytes just before it (a
        // chunk copied unread leaves it stale).
        let (mut pos, mut window_ok) = (0u64, true);
        let mut at_end = false;
        while !at_end {
            check()?;
            let mut jobs: Vec<Job> = Vec::with_capacity(batch);
            // Each job's length and CRC-32, and its compressed bytes' CRC-32 when it is
            // already known (a proven chunk's, checked above: not computed a second time).
            let mut infos: Vec<(usize, u32, Option<u32>)> = Vec::with_capacity(batch);
            while jobs.len() < batch {
                // Cut where the earlier entry was cut while it has chunks left (and was cut
                // at least as finely: an entry cut coarser before chunk sizes were per entry
                // is cut afresh); then `chunk_len`.
                let (want, candidate) = match earlier.as_mut() {
                    Some((raw, chunks))
                        if plan < chunks.len() && chunks[plan].len as usize <= chunk_len =>
                    {
                        let c = chunks[plan];
                        let mut packed = vec![0u8; c.packed as usize];
                        raw.read_exact(&mut packed).map_err(|e| {
                            ReuseError::Refused(format!("cannot read the earlier entry: {e}"))
                        })?;
                        plan += 1;
                        (c.len as usize, Some((c, packed)))
                    }
                    _ => (chunk_len, None),
                };
                if let Some((c, packed)) = &candidate
                    && let Some(k) = input.known_unchanged(pos, c)
                {
                    if crc32fast::hash(packed) != k.packed_crc {
                        return Err(ReuseError::Refused(format!(
                            "the earlier entry is damaged (compressed chunk {} does not match its index)",
                            plan - 1
                        )));
                    }
                    let (c, packed) = candidate.expect("matched above");
                    jobs.push(Job {
                        data: Vec::new(),
                        dict: Vec::new(),
                        earlier: Some(Candidate {
                            packed,
                            checks: Some(k),
                            proven: true,
                        }),
                        hash: false,
                    });
                    infos.push((c.len as usize, c.crc, Some(k.packed_crc)));
                    pos += u64::from(c.len);
                    window_ok = false;
                    at_end = input.ends_at(pos);
                    if at_end {
                        break;
                    }
                    continue;
                }
                if !window_ok {
                    window = input.read_at(pos.saturating_sub(WINDOW as u64), pos)?;
                    window_ok = true;
                }
                let chunk = input.next(pos, want)?;
                pos += chunk.len() as u64;
                at_end = chunk.len() < want || input.ends_at(pos);
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
                    .map(|(c, packed)| Candidate {
                        packed,
                        checks: c.checks,
                        proven: false,
                    });
                infos.push((chunk.len(), chunk_crc, None));
                jobs.push(Job {
                    data: chunk,
                    dict,
                    earlier: earlier_bytes,
                    hash: matches!(input, Input::Stream(_)),
                });
                if at_end {
                    break;
                }
            }
            if jobs.is_empty() {
                break;
            }
            for &(len, chunk_crc, _) in &infos {
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
            for ((packed, reused, hash), (len, chunk_crc, packed_crc)) in
                results.into_iter().zip(infos)
            {
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
                        packed_crc: packed_crc.unwrap_or_else(|| crc32fast::hash(&packed)),
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
        let mut whole = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
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
        // A chunk index that lies (wrong CRCs or compressed CRCs) costs reuse, never
        // correctness: every chunk is compressed again.
        let lies: [&dyn Fn(&mut ChunkInfo); 2] = [&|c| c.crc ^= 1, &|c| {
            c.checks.as_mut().unwrap().packed_crc ^= 1
        }];
        for (i, lie) in lies.into_iter().enumerate() {
            assert_eq!(rechunk(&altered(lie)), (0, new.clone()), "lie {i}");
        }
        // A wrong hash (of what a chunk encodes) proves nothing either way: each chunk is then
        // inflated against its bytes, as when its dictionary changed, and reused only where
        // that gives exactly them.
        let (reused_lied, read) = rechunk(&altered(&|c| {
            c.checks.as_mut().unwrap().hash[7] ^= 1;
        }));
        assert!(reused_lied >= 15 * CHUNK as u64, "{reused_lied}");
        assert_eq!(read, new);
        // An index written before chunks had checks: the same chunks are reused, each proved
        // by inflating it.
        let (reused_plain, read) = rechunk(&altered(&|c| c.checks = None));
        assert!(reused_plain >= 15 * CHUNK as u64, "{reused_plain}");
        assert_eq!(read, new);
    }

    #[test]
    fn a_database_is_cut_finely_so_scattered_page_changes_cost_little() {
        let zip_of = |name: &str, data: &[u8], earlier: Option<(&[u8], &[ChunkInfo])>| {
            let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
            let reused = match earlier {
                None => {
                    z.add(
                        name,
                        &mut &data[..],
                        data.len() as u64,
                        zip::DateTime::default(),
                        &mut |_| {},
                        &mut || Ok(()),
                    )
                    .unwrap();
                    0
                }
                Some((bytes, index)) => {
                    let mut a = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
                    let mut raw = a.by_index_raw(a.index_for_name(name).unwrap()).unwrap();
                    z.add_rechunked(
                        name,
                        &mut &data[..],
                        data.len() as u64,
                        zip::DateTime::default(),
                        &mut raw,
                        index,
                        &mut |_| {},
                        &mut || Ok(()),
                    )
                    .unwrap()
                }
            };
            let index = z.index().remove(name).unwrap();
            (z.finish().unwrap().0.into_inner(), index, reused)
        };
        let old = sample(8 * CHUNK, 41);
        // A 4 KiB page changed in each 256 KiB: every chunk of a log-sized cut would change.
        let mut new = old.clone();
        for i in 0..8 {
            new[i * CHUNK + 100_000] ^= 1;
        }
        let (first, index, _) = zip_of("messages.db", &old, None);
        assert!(index.iter().all(|c| c.len as usize == DB_CHUNK));
        let (second, _, reused) = zip_of("messages.db", &new, Some((&first, &index)));
        // Each changed chunk costs itself and the two after it (their dictionaries).
        assert!(reused >= (8 * CHUNK - 8 * 3 * DB_CHUNK) as u64, "{reused}");
        assert_eq!(read_back(&second, "messages.db"), new);
        // A log keeps its 256 KiB chunks.
        let (_, index, _) = zip_of("events.jsonl", &old, None);
        assert!(index.iter().all(|c| c.len as usize == CHUNK));
        // An earlier entry cut coarser (before databases were cut finely) is cut afresh: nothing
        // reused this once, the new entry cut finely, and its bytes exact.
        let (coarse, coarse_index, _) = zip_of("messages.log", &old, None);
        let mut a = zip::ZipArchive::new(Cursor::new(&coarse)).unwrap();
        let mut raw = a
            .by_index_raw(a.index_for_name("messages.log").unwrap())
            .unwrap();
        let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        let reused = z
            .add_rechunked(
                "messages.db",
                &mut &new[..],
                new.len() as u64,
                zip::DateTime::default(),
                &mut raw,
                &coarse_index,
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap();
        assert_eq!(reused, 0);
        assert!(
            z.index()["messages.db"]
                .iter()
                .all(|c| c.len as usize == DB_CHUNK)
        );
        assert_eq!(
            read_back(&z.finish().unwrap().0.into_inner(), "messages.db"),
            new
        );
    }

    #[test]
    fn a_patched_database_copies_its_unchanged_chunks_and_refuses_a_false_record() {
        const PAGE: usize = 4096;
        let old = sample(4 * CHUNK, 43);
        // Three pages changed, far apart, and two pages appended.
        let changed = [3usize, 70, 200];
        let mut new = old.clone();
        for &p in &changed {
            new[p * PAGE + 10] ^= 0x5a;
        }
        new.extend_from_slice(&sample(2 * PAGE, 44));
        let mut first = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        first
            .add(
                "messages.db",
                &mut &old[..],
                old.len() as u64,
                zip::DateTime::default(),
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap();
        let index = first.index().remove("messages.db").unwrap();
        let first = first.finish().unwrap().0.into_inner();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("messages.db");
        std::fs::write(&path, &new).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let patched = |unchanged: &dyn Fn(u64, u64) -> bool| {
            let mut a = zip::ZipArchive::new(Cursor::new(&first)).unwrap();
            let mut raw = a
                .by_index_raw(a.index_for_name("messages.db").unwrap())
                .unwrap();
            let mut z = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
            let patch = Patch {
                file: &file,
                size: new.len() as u64,
                unchanged,
                crc: crc32fast::hash(&new),
            };
            let r = z.add_patched(
                "messages.db",
                patch,
                zip::DateTime::default(),
                &mut raw,
                &index,
                &mut |_| {},
                &mut || Ok(()),
            );
            r.map(|reused| {
                let index = z.index().remove("messages.db").unwrap();
                (reused, index, z.finish().unwrap().0.into_inner())
            })
        };
        // The truth: bytes outside the changed and appended pages are the earlier ones.
        let truth = |from: u64, to: u64| {
            to <= old.len() as u64
                && changed
                    .iter()
                    .all(|&p| to <= (p * PAGE) as u64 || from >= ((p + 1) * PAGE) as u64)
        };
        let (reused, got_index, bytes) = patched(&truth).unwrap();
        assert_eq!(read_back(&bytes, "messages.db"), new);
        // Each changed page costs its chunk and the two whose dictionaries hold it, at most.
        let most = (changed.len() * 3 * DB_CHUNK) as u64;
        assert!(reused >= old.len() as u64 - most, "{reused}");
        // The index is the one compressing it afresh gives (the next archive reuses it alike),
        // but for the hashes: carried over for the chunks copied unread, not computed for the
        // others (all zeros, which match nothing).
        let mut fresh = ZipOut::new(Cursor::new(Vec::new()), 6, 2).unwrap();
        fresh
            .add(
                "messages.db",
                &mut &new[..],
                new.len() as u64,
                zip::DateTime::default(),
                &mut |_| {},
                &mut || Ok(()),
            )
            .unwrap();
        let fresh = fresh.index().remove("messages.db").unwrap();
        assert_eq!(got_index.len(), fresh.len());
        let mut pos = 0u64;
        for (got, want) in got_index.iter().zip(&fresh) {
            let (g, w) = (got.checks.unwrap(), want.checks.unwrap());
            assert_eq!(
                (got.len, got.packed, got.crc),
                (want.len, want.packed, want.crc)
            );
            assert_eq!(g.packed_crc, w.packed_crc);
            let end = pos + u64::from(got.len);
            if truth(pos.saturating_sub(WINDOW as u64), end) {
                assert_eq!(g.hash, w.hash);
            } else {
                assert_eq!(g.hash, [0; 32]);
            }
            pos = end;
        }
        // A record that says nothing changed puts together the earlier bytes: refused by the
        // CRC-32, never written as the new content.
        match patched(&|_, to| to <= old.len() as u64) {
            Err(ReuseError::Refused(why)) => assert!(why.contains("CRC-32"), "{why}"),
            other => panic!("a false record was accepted: {:?}", other.map(|r| r.0)),
        }
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
