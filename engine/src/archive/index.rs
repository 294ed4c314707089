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
        Some(k) => IndexRow::Checked(c.len, c.packed, c.crc, k.packed_crc, hex::encode(k.hash)),
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
                let mut h = [0u8; 32];
                hex::decode_to_slice(hash, &mut h).ok()?;
                ChunkInfo {
                    len,
                    packed,
                    crc,
                    checks: Some(ChunkChecks {
                        packed_crc,
                        hash: h,
                    }),
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
