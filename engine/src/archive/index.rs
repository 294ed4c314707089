//! The chunk index kept beside each archive we write: where each entry was cut into chunks,
//! and each chunk's checks, so the next archive can reuse unchanged chunks of changed files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ChunkIndex;
use crate::error::Result;
use crate::fsx;
use crate::zipout::{ChunkChecks, ChunkInfo};

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
        Some(k) => {
            // BLAKE3's own hex, into one fixed buffer: `hex::encode` pushes a `char` at a
            // time, and an index holds a row per 16 KiB of the database (~25 000 at the
            // bench's size).
            let hash = blake3::Hash::from_bytes(k.hash)
                .to_hex()
                .as_str()
                .to_owned();
            IndexRow::Checked(c.len, c.packed, c.crc, k.packed_crc, hash)
        }
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
                // Read back the way it was written: BLAKE3's own hex.
                let hash = *blake3::Hash::from_hex(hash).ok()?.as_bytes();
                ChunkInfo {
                    len,
                    packed,
                    crc,
                    checks: Some(ChunkChecks { packed_crc, hash }),
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

/// What changed in one file of `current/` since the snapshot before it, page by page: the
/// database copy a `create` brought up to date in place. Kept in `.index/current-pages.json`
/// (a cache like the chunk indexes: without it the next archive reads and hashes the whole
/// file), it lets that archive copy every earlier chunk whose pages, and the pages of its
/// dictionary, did not change, without reading them. It applies only between the two
/// contents it names, and the entry it helps write must still come out with the CRC-32 the
/// manifest records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageChanges {
    /// The file's path in the snapshot (`db/messages.db`).
    pub entry: String,
    /// Bytes per page.
    pub page_size: u64,
    /// The earlier content: its size and checksum.
    pub from_len: u64,
    /// See `from_len`.
    pub from: fsx::Checksum,
    /// The content now.
    pub to_len: u64,
    /// See `to_len`.
    pub to: fsx::Checksum,
    /// The pages (numbered from 1) that differ or are new, as sorted, disjoint inclusive
    /// ranges. Pages past `to_len` are gone; pages past `from_len` are all new.
    pub changed: Vec<(u64, u64)>,
}

impl PageChanges {
    /// Whether bytes `from..to` are the same in both contents.
    pub fn unchanged(&self, from: u64, to: u64) -> bool {
        if to > self.from_len.min(self.to_len) || self.page_size == 0 {
            return false;
        }
        if from >= to {
            return true;
        }
        let (first, last) = (from / self.page_size + 1, (to - 1) / self.page_size + 1);
        // The first range that ends at or after `first` must start after `last`.
        let i = self.changed.partition_point(|&(_, end)| end < first);
        self.changed.get(i).is_none_or(|&(start, _)| start > last)
    }
}

/// Where the page record of the snapshot in `current` is kept.
pub fn page_changes_path(current: &Path) -> PathBuf {
    current
        .parent()
        .unwrap_or(current)
        .join(".index")
        .join("current-pages.json")
}

/// Save the page record of the snapshot in `current` (atomically).
pub fn save_page_changes(current: &Path, changes: &PageChanges) -> Result<()> {
    let bytes = serde_json::to_vec(changes).unwrap_or_default();
    fsx::write_atomic(&page_changes_path(current), &bytes)
}

/// The page record of the snapshot in `current`, if one parses.
pub fn load_page_changes(current: &Path) -> Option<PageChanges> {
    let bytes = std::fs::read(page_changes_path(current)).ok()?;
    let c: PageChanges = serde_json::from_slice(&bytes).ok()?;
    let sorted =
        c.changed.iter().all(|&(a, b)| a <= b) && c.changed.windows(2).all(|w| w[0].1 < w[1].0);
    sorted.then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_record_says_which_byte_ranges_are_unchanged() {
        let sum = fsx::Checksum::Blake3("00".into());
        let record = PageChanges {
            entry: "db/messages.db".into(),
            page_size: 100,
            from_len: 1000,
            from: sum.clone(),
            to_len: 1200,
            to: sum,
            // Pages 3 and 5..=6 (bytes 200..300 and 400..600), and the new pages 11..=12.
            changed: vec![(3, 3), (5, 6), (11, 12)],
        };
        assert!(record.unchanged(0, 200));
        assert!(!record.unchanged(0, 201));
        assert!(!record.unchanged(199, 250));
        assert!(record.unchanged(300, 400));
        assert!(!record.unchanged(300, 401));
        assert!(!record.unchanged(599, 600));
        assert!(record.unchanged(600, 1000));
        assert!(record.unchanged(250, 250));
        // Past the earlier content nothing is the same, whatever the ranges say.
        assert!(!record.unchanged(900, 1001));
        let shrunk = PageChanges {
            to_len: 500,
            ..record.clone()
        };
        assert!(!shrunk.unchanged(300, 501));
        assert!(shrunk.unchanged(300, 400));

        let dir = tempfile::tempdir().unwrap();
        let current = dir.path().join("current");
        assert_eq!(load_page_changes(&current), None);
        save_page_changes(&current, &record).unwrap();
        assert_eq!(load_page_changes(&current), Some(record.clone()));
        // Ranges out of order are not trusted.
        let unsorted = PageChanges {
            changed: vec![(5, 6), (3, 3)],
            ..record
        };
        save_page_changes(&current, &unsorted).unwrap();
        assert_eq!(load_page_changes(&current), None);
    }
}
