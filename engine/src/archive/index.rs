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
/// `[len, packed, crc]` as indexes were written before chunks had those checks. Read and
/// written by hand: as an untagged enum each row was buffered and its hash allocated twice,
/// and an index holds a row per 16 KiB of the database (~25 000 at the bench's size), read
/// when an archive starts and written when it ends, both on its critical path.
struct Row(ChunkInfo);

impl serde::Serialize for Row {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeTuple as _};
        let c = &self.0;
        let mut row = s.serialize_tuple(if c.checks.is_some() { 5 } else { 3 })?;
        row.serialize_element(&c.len)?;
        row.serialize_element(&c.packed)?;
        row.serialize_element(&c.crc)?;
        if let Some(k) = c.checks {
            let mut hex = [0u8; 64];
            hex::encode_to_slice(k.hash, &mut hex).map_err(S::Error::custom)?;
            row.serialize_element(&k.packed_crc)?;
            row.serialize_element(std::str::from_utf8(&hex).map_err(S::Error::custom)?)?;
        }
        row.end()
    }
}

impl<'de> serde::Deserialize<'de> for Row {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Row;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[len, packed, crc] or [len, packed, crc, packed_crc, \"hash\"]")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Row, A::Error> {
                use serde::de::Error as _;
                let mut number = |i: usize| -> std::result::Result<u32, A::Error> {
                    seq.next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &Visitor))
                };
                let (len, packed, crc) = (number(0)?, number(1)?, number(2)?);
                let Some(packed_crc) = seq.next_element::<u32>()? else {
                    return Ok(Row(ChunkInfo {
                        len,
                        packed,
                        crc,
                        checks: None,
                    }));
                };
                // Borrowed from the file's bytes: a hex string has nothing to unescape.
                let hash: &str = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(4, &Visitor))?;
                let mut h = [0u8; 32];
                hex::decode_to_slice(hash, &mut h).map_err(A::Error::custom)?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(6, &Visitor));
                }
                Ok(Row(ChunkInfo {
                    len,
                    packed,
                    crc,
                    checks: Some(ChunkChecks {
                        packed_crc,
                        hash: h,
                    }),
                }))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// Save the chunk index of the archive at `archive` (atomically).
pub fn save_index(archive: &Path, index: &ChunkIndex) -> Result<()> {
    let rows: BTreeMap<&String, Vec<Row>> = index
        .iter()
        .map(|(k, v)| (k, v.iter().copied().map(Row).collect()))
        .collect();
    let bytes = serde_json::to_vec(&rows).unwrap_or_default();
    fsx::write_atomic(&index_path(archive), &bytes)
}

/// Load the chunk index of `archive`, if it has one that parses.
pub fn load_index(archive: &Path) -> Option<ChunkIndex> {
    let bytes = std::fs::read(index_path(archive)).ok()?;
    let rows: BTreeMap<String, Vec<Row>> = serde_json::from_slice(&bytes).ok()?;
    Some(
        rows.into_iter()
            .map(|(k, v)| (k, v.into_iter().map(|r| r.0).collect()))
            .collect(),
    )
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
