//! A streaming zip writer whose Deflate runs on every core, as pigz does.
//!
//! Each file is cut into chunks of [`CHUNK`] bytes. Every chunk is compressed on its own, as
//! raw Deflate primed with the last 32 KiB of the chunk before it (so the ratio stays that of
//! one stream), and ended with a sync flush, which closes it on a byte boundary; the last chunk
//! ends the stream. The chunks' outputs, in order, are one valid Deflate stream: any zip reader
//! (thrum's Go `archive/zip`, Info-ZIP `unzip`, the `zip` crate) reads the entry as usual.
//! Chunks are compressed a batch at a time on scoped threads, so memory stays bounded by the
//! batch (a few MiB), whatever the file sizes.
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
/// Above this uncompressed size an entry gets ZIP64 fields from the start (its compressed size
/// could pass 4 GiB by a few bytes per chunk).
const ZIP64_FROM: u64 = 0xF000_0000;

struct Central {
    name: Vec<u8>,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
    time: u16,
    date: u16,
    zip64: bool,
}

/// Writes a zip, one entry at a time.
pub struct ZipOut<W: Write + Seek> {
    out: W,
    pos: u64,
    entries: Vec<Central>,
    level: u32,
    threads: usize,
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
        let name = name.as_bytes().to_vec();
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
        header.extend_from_slice(&[0; 12]); // crc, sizes: patched below
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
        header.extend_from_slice(&name);
        if zip64 {
            header.extend_from_slice(&1u16.to_le_bytes());
            header.extend_from_slice(&16u16.to_le_bytes());
            header.extend_from_slice(&[0; 16]); // sizes: patched below
        }
        self.out.write_all(&header)?;
        self.pos += header.len() as u64;

        let (crc, read, compressed) = self.deflate(data, advance, check)?;
        if read != size {
            return Err(io::Error::other(format!(
                "{} changed while being archived ({size} bytes expected, {read} read)",
                String::from_utf8_lossy(&name)
            )));
        }
        if !zip64 && (compressed >= 0xFFFF_FFFF || read >= 0xFFFF_FFFF) {
            return Err(io::Error::other("entry too large for its header"));
        }
        // Patch the CRC and sizes into the local header.
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
            name,
            crc,
            compressed,
            size: read,
            offset,
            time: modified.timepart(),
            date: modified.datepart(),
            zip64,
        });
        Ok(())
    }

    /// Compress `data` into the output; returns (CRC-32, bytes read, bytes written).
    fn deflate(
        &mut self,
        data: &mut dyn Read,
        advance: &mut dyn FnMut(u64),
        check: &mut dyn FnMut() -> io::Result<()>,
    ) -> io::Result<(u32, u64, u64)> {
        let batch = self.threads * 4;
        let mut crc = crc32fast::Hasher::new();
        let mut read = 0u64;
        let mut written = 0u64;
        let mut dict: Vec<u8> = Vec::new();
        let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(batch + 1);
        // One chunk of look-ahead tells whether a chunk is the last.
        let mut next = read_chunk(data)?;
        loop {
            check()?;
            chunks.clear();
            while chunks.len() < batch {
                let chunk = std::mem::take(&mut next);
                let at_end = chunk.len() < CHUNK;
                chunks.push(chunk);
                if at_end {
                    break;
                }
                next = read_chunk(data)?;
                if next.is_empty() {
                    break;
                }
            }
            let last_batch = chunks.last().is_none_or(|c| c.len() < CHUNK) || next.is_empty();
            for c in &chunks {
                crc.update(c);
                read += c.len() as u64;
            }
            let outputs = compress_batch(&chunks, &dict, self.level, last_batch, self.threads)?;
            for o in &outputs {
                self.out.write_all(o)?;
                written += o.len() as u64;
                self.pos += o.len() as u64;
            }
            for c in &chunks {
                advance(c.len() as u64);
            }
            if last_batch {
                break;
            }
            let tail = chunks
                .last()
                .map_or(&[][..], |c| &c[c.len().saturating_sub(WINDOW)..]);
            dict = tail.to_vec();
        }
        Ok((crc.finalize(), read, written))
    }

    /// Write the central directory and the end records; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
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
            cd.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes()); // a regular file, rw-r--r--
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
        Ok(self.out)
    }
}

/// Read up to [`CHUNK`] bytes (fewer only at the end of the data).
fn read_chunk(data: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK);
    data.take(CHUNK as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Compress a batch of consecutive chunks in parallel. Chunk `i` is primed with the last
/// 32 KiB of chunk `i - 1` (`dict` for the first); the very last chunk of the data ends the
/// stream when `last_batch`.
fn compress_batch(
    chunks: &[Vec<u8>],
    dict: &[u8],
    level: u32,
    last_batch: bool,
    threads: usize,
) -> io::Result<Vec<Vec<u8>>> {
    let dicts: Vec<&[u8]> = (0..chunks.len())
        .map(|i| {
            if i == 0 {
                dict
            } else {
                let prev = &chunks[i - 1];
                &prev[prev.len().saturating_sub(WINDOW)..]
            }
        })
        .collect();
    let n = chunks.len();
    if threads <= 1 || n == 1 {
        return (0..n)
            .map(|i| deflate_chunk(&chunks[i], dicts[i], level, last_batch && i + 1 == n))
            .collect();
    }
    let mut results: Vec<Option<io::Result<Vec<u8>>>> = (0..n).map(|_| None).collect();
    std::thread::scope(|s| {
        let per = n.div_ceil(threads);
        for (t, slots) in results.chunks_mut(per).enumerate() {
            let dicts = &dicts;
            s.spawn(move || {
                for (j, slot) in slots.iter_mut().enumerate() {
                    let i = t * per + j;
                    *slot = Some(deflate_chunk(
                        &chunks[i],
                        dicts[i],
                        level,
                        last_batch && i + 1 == n,
                    ));
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(io::Error::other("a compression thread failed"))))
        .collect()
}

/// Raw Deflate of one chunk: primed with `dict`, ended by a sync flush, or by the end of the
/// stream when `last`.
fn deflate_chunk(data: &[u8], dict: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let before = out.len();
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == data.len();
        match status {
            Status::StreamEnd => break,
            _ if !last && done_input && out.len() < out.capacity() => break,
            Status::BufError if out.len() == before && done_input => break,
            _ => {}
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
        z.finish().unwrap().into_inner()
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
