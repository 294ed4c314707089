//! A file's BLAKE3 hash, CRC-32 and line count kept per 64 KiB block, so that a file that
//! differs from an earlier copy in a few blocks (the database copy brought up to date page by
//! page, a log that grew) is hashed again only where it changed.
//!
//! BLAKE3 is a tree hash: every aligned, power-of-two run of its 1 KiB chunks that is not the
//! whole input has a *chaining value*, and the hash is the root of a binary tree of them. The
//! `blake3` crate's `hazmat` module (the interface it offers for this, as Bao uses it) computes
//! a block's chaining value at its offset and merges chaining values into parents and the
//! root, so the hash computed here from per-block values is exactly `blake3::hash` of the whole
//! file (the tests check that at the lengths where the tree's shape changes). A block also
//! records the file's CRC-32 up to its end and its own `\n` count, so that a file grown from a
//! known prefix of whole blocks resumes all three without reading that prefix again.
//!
//! Why we keep this rather than a crate: Bao (the crate for BLAKE3 trees) stores the tree
//! beside the data in its own encoding and does not carry a CRC or a line count; the block list
//! here is a cache in the backup directory, checked against the manifest's checksum every time
//! it is used ([`Blocks::verify`]).

use blake3::hazmat::{HasherExt, Mode, left_subtree_len, merge_subtrees_non_root};
use serde::{Deserialize, Serialize};

use super::{Checksum, FileDigest, count_newlines};

/// Bytes per block: 64 chunks, enough for BLAKE3's widest SIMD lanes, and a multiple of every
/// SQLite page size (512 B to 64 KiB), so a page never straddles two blocks.
pub const BLOCK: u64 = 64 * 1024;

/// One block of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The block's BLAKE3 chaining value (a non-root node of the file's tree).
    pub cv: [u8; 32],
    /// Its length: [`BLOCK`], but for a file's last block.
    pub len: u32,
    /// `\n` bytes in it.
    pub lines: u32,
    /// The CRC-32 of the file from its first byte to this block's end.
    pub crc_to: u32,
}

impl Block {
    /// The block `data` at byte `offset` of a file, whose bytes before it have CRC-32 `crc`.
    pub fn hash(offset: u64, data: &[u8], crc: &crc32fast::Hasher) -> Self {
        debug_assert!(offset.is_multiple_of(BLOCK) && data.len() as u64 <= BLOCK);
        let mut h = blake3::Hasher::new();
        h.set_input_offset(offset);
        h.update(data);
        let mut crc = crc.clone();
        crc.update(data);
        Self {
            cv: h.finalize_non_root(),
            len: data.len() as u32,
            lines: count_newlines(data) as u32,
            crc_to: crc.finalize(),
        }
    }
}

/// The blocks of a whole file, in order: every one [`BLOCK`] long but the last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocks(pub Vec<Block>);

impl Blocks {
    /// Bytes in all.
    pub fn size(&self) -> u64 {
        self.0.iter().map(|b| u64::from(b.len)).sum()
    }

    /// Whether these are the blocks of a file longer than one block: shorter files have no
    /// tree to keep (their hash is their only block's root, which a chaining value cannot
    /// give back), and are cheap to hash again.
    pub fn usable(&self) -> bool {
        self.0.len() >= 2
            && self.0[..self.0.len() - 1]
                .iter()
                .all(|b| u64::from(b.len) == BLOCK)
            && self.0.last().is_some_and(|b| b.len > 0)
    }

    /// The file's digest (size, BLAKE3, `\n` count, CRC-32); `None` unless [`Blocks::usable`].
    pub fn digest(&self) -> Option<FileDigest> {
        if !self.usable() {
            return None;
        }
        let size = self.size();
        let root = subtree(&self.0, size, true);
        Some(FileDigest {
            size,
            checksum: Checksum::Blake3(blake3::Hash::from_bytes(root).to_hex().to_string()),
            lines: self.0.iter().map(|b| u64::from(b.lines)).sum(),
            crc32: self.0.last().map_or(0, |b| b.crc_to),
        })
    }

    /// Whether these blocks are those of the file a manifest records as `size` bytes with
    /// `checksum` (and, when it records one, CRC-32 `crc32`): the root they merge to must be
    /// that checksum, so chaining values that are not the file's cannot pass.
    pub fn verify(&self, size: u64, checksum: &Checksum, crc32: Option<u32>) -> bool {
        self.digest().is_some_and(|d| {
            d.size == size && &d.checksum == checksum && crc32.is_none_or(|c| c == d.crc32)
        })
    }

    /// The first `n` blocks, when all of them are whole: the known start of a file that grew.
    pub fn whole_prefix(&self, n: usize) -> Option<&[Block]> {
        let p = self.0.get(..n)?;
        p.iter().all(|b| u64::from(b.len) == BLOCK).then_some(p)
    }
}

/// The chaining value (or, at the top, the root hash) of the subtree made of `blocks`, which
/// hold `len` bytes: BLAKE3's left subtree is the largest power of two chunks shorter than the
/// whole, which for more than a block is a whole number of blocks.
fn subtree(blocks: &[Block], len: u64, root: bool) -> [u8; 32] {
    if blocks.len() == 1 {
        return blocks[0].cv;
    }
    let left = left_subtree_len(len);
    let n = (left / BLOCK) as usize;
    let l = subtree(&blocks[..n], left, false);
    let r = subtree(&blocks[n..], len - left, false);
    if root {
        *blake3::hazmat::merge_subtrees_root(&l, &r, Mode::Hash).as_bytes()
    } else {
        merge_subtrees_non_root(&l, &r, Mode::Hash)
    }
}

/// A hasher that keeps a file's [`Blocks`] as the bytes go by; it may resume after a known
/// prefix of whole blocks ([`BlockHasher::resume`]).
#[derive(Clone)]
pub struct BlockHasher {
    done: Vec<Block>,
    /// The block being filled, at `offset`.
    hasher: blake3::Hasher,
    offset: u64,
    len: u64,
    lines: u64,
    /// CRC-32 of everything so far.
    crc: crc32fast::Hasher,
}

impl Default for BlockHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockHasher {
    /// Start at a file's first byte.
    pub fn new() -> Self {
        Self {
            done: Vec::new(),
            hasher: blake3::Hasher::new(),
            offset: 0,
            len: 0,
            lines: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Go on after `prefix`, whole blocks of a file already hashed.
    pub fn resume(prefix: &[Block]) -> Self {
        debug_assert!(prefix.iter().all(|b| u64::from(b.len) == BLOCK));
        let offset = prefix.len() as u64 * BLOCK;
        let crc = prefix.last().map_or(0, |b| b.crc_to);
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(offset);
        Self {
            done: prefix.to_vec(),
            hasher,
            offset,
            len: 0,
            lines: 0,
            crc: crc32fast::Hasher::new_with_initial_len(crc, offset),
        }
    }

    /// Bytes hashed so far, the resumed prefix included.
    pub fn size(&self) -> u64 {
        self.offset + self.len
    }

    /// Hash the next bytes of the file.
    pub fn update(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.len == BLOCK {
                // A whole block closes only when more follows: a file of exactly one block
                // needs its root, which its chaining value cannot give.
                self.close();
                self.hasher = blake3::Hasher::new();
                self.hasher.set_input_offset(self.offset);
            }
            let n = (BLOCK - self.len).min(buf.len() as u64) as usize;
            let (now, rest) = buf.split_at(n);
            self.hasher.update(now);
            self.crc.update(now);
            self.lines += count_newlines(now);
            self.len += n as u64;
            buf = rest;
        }
    }

    fn close(&mut self) {
        self.done.push(Block {
            cv: self.hasher.finalize_non_root(),
            len: self.len as u32,
            lines: self.lines as u32,
            crc_to: self.crc.clone().finalize(),
        });
        self.offset += self.len;
        self.len = 0;
        self.lines = 0;
    }

    /// The digest of everything hashed, and its blocks (none for a file of one block or less).
    pub fn finish(mut self) -> (FileDigest, Blocks) {
        if self.done.is_empty() {
            // One block or less: its root is the hash, as `blake3::hash` gives it.
            let digest = FileDigest {
                size: self.len,
                checksum: Checksum::Blake3(self.hasher.finalize().to_hex().to_string()),
                lines: self.lines,
                crc32: self.crc.clone().finalize(),
            };
            return (digest, Blocks::default());
        }
        if self.len > 0 {
            self.close();
        }
        let blocks = Blocks(self.done);
        let digest = blocks
            .digest()
            .unwrap_or_else(|| unreachable!("a file of more than one block has a tree"));
        (digest, blocks)
    }
}

/// A block list in the backup directory's caches: one lowercase hex string of 44 bytes per
/// block (its chaining value, then its length, `\n` count and CRC-32, big-endian), compact and
/// parsed without an allocation per block.
impl Serialize for Blocks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut raw = Vec::with_capacity(self.0.len() * RECORD);
        for b in &self.0 {
            raw.extend_from_slice(&b.cv);
            raw.extend_from_slice(&b.len.to_be_bytes());
            raw.extend_from_slice(&b.lines.to_be_bytes());
            raw.extend_from_slice(&b.crc_to.to_be_bytes());
        }
        // Into one buffer: `hex::encode` pushes one `char` at a time, and a cache holds a
        // record per 64 KiB of every file.
        let mut text = vec![0u8; raw.len() * 2];
        hex::encode_to_slice(&raw, &mut text).map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?)
    }
}

/// Bytes per block in a cache.
const RECORD: usize = 44;

impl<'de> Deserialize<'de> for Blocks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Hex;
        impl serde::de::Visitor<'_> for Hex {
            type Value = Blocks;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a hex string of 44-byte block records")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Blocks, E> {
                let s = s.as_bytes();
                if !s.len().is_multiple_of(2 * RECORD) {
                    return Err(E::custom("not a whole number of block records"));
                }
                let mut out = Vec::with_capacity(s.len() / (2 * RECORD));
                let mut raw = [0u8; RECORD];
                for record in s.chunks(2 * RECORD) {
                    hex::decode_to_slice(record, &mut raw).map_err(E::custom)?;
                    let word =
                        |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
                    let mut cv = [0u8; 32];
                    cv.copy_from_slice(&raw[..32]);
                    out.push(Block {
                        cv,
                        len: word(32),
                        lines: word(36),
                        crc_to: word(40),
                    });
                }
                Ok(Blocks(out))
            }
        }
        d.deserialize_str(Hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                if i % 97 == 0 {
                    b'\n'
                } else {
                    (i * 31 % 251) as u8
                }
            })
            .collect()
    }

    fn expected(bytes: &[u8]) -> FileDigest {
        FileDigest {
            size: bytes.len() as u64,
            checksum: Checksum::Blake3(blake3::hash(bytes).to_hex().to_string()),
            lines: bytes.iter().filter(|&&b| b == b'\n').count() as u64,
            crc32: crc32fast::hash(bytes),
        }
    }

    const B: usize = BLOCK as usize;

    /// Lengths where BLAKE3's tree changes shape, and where blocks begin and end.
    fn lengths() -> Vec<usize> {
        vec![
            0,
            1,
            1024,
            B - 1,
            B,
            B + 1,
            2 * B,
            2 * B + 7,
            3 * B,
            3 * B + 1,
            4 * B,
            5 * B - 3,
            8 * B + 1,
            13 * B + 4095,
        ]
    }

    #[test]
    fn the_digest_from_blocks_is_blake3_crc32_and_lines_of_the_whole_file() {
        for len in lengths() {
            let bytes = data(len);
            // Fed in uneven pieces, as a copy's buffers feed it.
            let mut h = BlockHasher::new();
            for piece in bytes.chunks(7919) {
                h.update(piece);
            }
            let (d, blocks) = h.finish();
            assert_eq!(d, expected(&bytes), "length {len}");
            assert_eq!(blocks.usable(), len > B, "length {len}");
            if blocks.usable() {
                assert_eq!(blocks.size(), len as u64);
                assert_eq!(blocks.digest(), Some(d.clone()), "length {len}");
                assert!(blocks.verify(d.size, &d.checksum, Some(d.crc32)));
                assert!(!blocks.verify(d.size, &d.checksum, Some(d.crc32 ^ 1)));
            }
        }
    }

    #[test]
    fn a_file_grown_from_whole_blocks_resumes_after_them_and_single_blocks_rehash() {
        let old = data(5 * B + 100);
        let (_, blocks) = {
            let mut h = BlockHasher::new();
            h.update(&old);
            h.finish()
        };
        let mut grown = old.clone();
        grown.extend_from_slice(&data(3 * B + 5));
        let whole = (old.len() as u64 / BLOCK) as usize;
        let mut h = BlockHasher::resume(blocks.whole_prefix(whole).unwrap());
        assert_eq!(h.size(), whole as u64 * BLOCK);
        h.update(&grown[whole * B..]);
        let (d, again) = h.finish();
        assert_eq!(d, expected(&grown));

        // A block changed in the middle: its chaining value hashed again, the rest kept.
        let mut edited = grown.clone();
        edited[2 * B + 10] ^= 0xff;
        let mut crc = crc32fast::Hasher::new();
        let mut list = Vec::new();
        for (i, piece) in edited.chunks(B).enumerate() {
            if i == 2 || list.is_empty() {
                list.push(Block::hash(i as u64 * BLOCK, piece, &crc));
            } else {
                let mut b = again.0[i];
                let mut c = crc.clone();
                c.update(piece);
                b.crc_to = c.finalize();
                list.push(b);
            }
            crc.update(piece);
        }
        assert_eq!(Blocks(list).digest(), Some(expected(&edited)));
    }

    #[test]
    fn block_lists_round_trip_and_wrong_chaining_values_fail_verification() {
        let bytes = data(3 * B + 9);
        let mut h = BlockHasher::new();
        h.update(&bytes);
        let (d, blocks) = h.finish();
        let json = serde_json::to_string(&blocks).unwrap();
        let back: Blocks = serde_json::from_str(&json).unwrap();
        assert_eq!(back, blocks);
        let mut bad = blocks.clone();
        bad.0[1].cv[0] ^= 1;
        assert!(!bad.verify(d.size, &d.checksum, None));
        assert!(serde_json::from_str::<Blocks>("\"zz\"").is_err());
        assert!(serde_json::from_str::<Blocks>("\"00\"").is_err());
    }
}
