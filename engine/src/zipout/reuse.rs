//! Reusing an earlier archive's compressed data: an unchanged entry copied whole, an
//! append-only entry continued, each copied byte checked on the way (against the CRC of each
//! compressed chunk, or by inflating it against the earlier entry's CRC).

use std::io::{self, Read, Write};

use flate2::Status;

use super::*;

impl<W: Write + Seek> ZipOut<W> {
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
        let t = self.deflate(Input::Stream(tail), CHUNK, dict, None, advance, check)?;
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

    /// Add `name`, a file that changed since the earlier archive but of which `patch` says
    /// which bytes did not (a database brought up to date page by page): cut where the
    /// earlier entry was cut (`chunks`, its index; `raw`, its compressed data), each earlier
    /// chunk whose bytes and dictionary are all unchanged is copied without reading the file
    /// (its compressed bytes checked against the index), and the rest is read at its offsets
    /// and compressed, or copied where it turns out the same. The whole entry must come out
    /// with the CRC-32 `patch` expects, else it is refused (the caller rewinds and reads the
    /// file). Returns the bytes not compressed again.
    #[allow(clippy::too_many_arguments)]
    pub fn add_patched(
        &mut self,
        name: &str,
        patch: Patch<'_>,
        modified: zip::DateTime,
        raw: &mut dyn Read,
        chunks: &[ChunkInfo],
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> Result<u64, ReuseError> {
        let (size, expect) = (patch.size, patch.crc);
        self.add_deflated(
            name,
            Input::Patched(patch),
            (size, Some(expect)),
            modified,
            size >= ZIP64_FROM,
            Some((raw, chunks)),
            advance,
            check,
        )
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
    pub(super) fn into_io(self) -> io::Error {
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
