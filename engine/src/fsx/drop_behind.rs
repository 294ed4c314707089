//! Reading a file that will not be read again soon without keeping it in the page cache.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::num::NonZeroU64;

/// Bytes read before the kernel is told to drop them: large enough that the advice costs one
/// system call per few megabytes, small enough that the pages are free again while the
/// writes they make room for are still going.
const DROP_EVERY: u64 = 4 << 20;

/// How far behind the latest read pages are kept: a zip reader seeks back a little (from the
/// data of one entry to the header of the next, which its buffer had read past), and a page
/// dropped there would be read again from disk.
const KEEP_BEHIND: u64 = 2 << 20;

/// A reader of a file read once from start to end and then left alone (the earlier archive
/// whose compressed data `create` copies into the new one): the pages it has read are dropped
/// from the page cache as it goes (`POSIX_FADV_DONTNEED`), so that the writes of the new
/// archive reuse them instead of taking pages the page cache has not used yet. On a virtual
/// machine whose host takes back free memory (virtio-balloon free page reporting), a page the
/// guest has not touched lately costs a fault in the host: copying a 190 MB archive took
/// 1.0 s of system time that way and 0.1 s with its input dropped behind (`dd iflag=nocache`,
/// docs/PERFORMANCE.md). Dropping is advice, and only of clean pages: the data stays on disk;
/// a later reader reads it from there.
#[derive(Debug)]
pub struct DropBehind {
    file: File,
    pos: u64,
    /// Where the pages read and not dropped yet begin.
    kept_from: u64,
}

impl DropBehind {
    /// Read `file` from its start.
    pub fn new(file: File) -> Self {
        Self {
            file,
            pos: 0,
            kept_from: 0,
        }
    }

    /// Drop the pages before `to`, from where the last drop ended.
    fn drop_before(&mut self, to: u64) {
        if let Some(len) = NonZeroU64::new(to.saturating_sub(self.kept_from)) {
            // Advice: if the kernel ignores it, the pages stay cached, as without it.
            let _ = rustix::fs::fadvise(
                &self.file,
                self.kept_from,
                Some(len),
                rustix::fs::Advice::DontNeed,
            );
            self.kept_from = to;
        }
    }
}

impl Read for DropBehind {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        let behind = self.pos.saturating_sub(KEEP_BEHIND);
        if behind >= self.kept_from + DROP_EVERY {
            self.drop_before(behind);
        }
        Ok(n)
    }
}

impl Seek for DropBehind {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let from = self.pos;
        self.pos = self.file.seek(to)?;
        // A jump (to a zip's central directory at its end, back to its first entry, past
        // entries not wanted): what was read up to here is done with, and reading starts
        // over there. Only pages that were read are ever dropped.
        if self.pos.abs_diff(from) > KEEP_BEHIND {
            self.drop_before(from);
            self.kept_from = self.pos;
        }
        Ok(self.pos)
    }
}

impl Drop for DropBehind {
    fn drop(&mut self) {
        // Everything read (a position behind `kept_from` drops nothing).
        self.drop_before(self.pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_seeks_like_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(9u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut r = DropBehind::new(File::open(&path).unwrap());
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, data);
        // Back to a part already read (and dropped): still the same bytes.
        assert_eq!(r.seek(SeekFrom::Start(1 << 20)).unwrap(), 1 << 20);
        let mut some = vec![0u8; 100];
        r.read_exact(&mut some).unwrap();
        assert_eq!(some, data[1 << 20..(1 << 20) + 100]);
        assert_eq!(r.seek(SeekFrom::End(-10)).unwrap(), data.len() as u64 - 10);
        let mut end = Vec::new();
        r.read_to_end(&mut end).unwrap();
        assert_eq!(end, data[data.len() - 10..]);
    }
}
