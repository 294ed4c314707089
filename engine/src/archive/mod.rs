//! Zip archives: writing a snapshot as a plain Deflate zip that thrum and `unzip` read, and
//! reading one defensively.
//!
//! The `zip` crate has no bomb protection of its own, so [`CheckedArchive::open`] inspects
//! the whole central directory before a byte is extracted: entry names (no `..`, absolute
//! paths, backslashes or NULs, no duplicates), entry types (no symlinks), compression methods,
//! declared sizes against a cap and the free space, compression ratios, and overlapping
//! entries. Extraction then enforces every declared size while it streams (a lying header is
//! caught), and the CRC and the manifest's checksum (BLAKE3; SHA-256 in the snapshots of the
//! first versions) are checked on the way.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::error::Result;
use crate::manifest::Manifest;
use crate::progress::{Cancel, Progress};
pub use crate::zipout::{ChunkChecks, ChunkInfo};

/// Deflate level thrum's archives use (Go's default).
pub const DEFAULT_LEVEL: i64 = 6;

pub use crate::error::ArchiveError;

mod index;
mod read;
mod reuse;

pub use index::{
    PageChanges, index_path, load_index, load_page_changes, page_changes_path, save_index,
    save_page_changes,
};
pub use read::{CheckedArchive, Entry, check_entry_name};
pub use reuse::{Reuse, write_dir_reusing};

/// Limits applied when reading an archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest total uncompressed size accepted.
    pub max_total: u64,
    /// Most entries accepted.
    pub max_entries: usize,
    /// Highest compression ratio accepted for an entry. Deflate cannot exceed ~1032:1, so a
    /// higher declared ratio is a lie.
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total: 64 << 30,
            max_entries: 200_000,
            max_ratio: 1_100,
        }
    }
}

/// Write every file below `src` into a new zip at `dst` (which must not exist), `manifest.json`
/// first. Returns the archive's size.
pub fn write_dir(
    src: &Path,
    dst: &Path,
    level: i64,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<u64> {
    write_dir_reusing(src, dst, level, None, progress, &|_| (), cancel).map(|w| w.size)
}

/// Chunk indexes of an archive's entries, by entry name (see [`crate::zipout::ChunkInfo`]).
pub type ChunkIndex = BTreeMap<String, Vec<ChunkInfo>>;

/// What [`write_dir_reusing`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The archive's size.
    pub size: u64,
    /// What was reused from the earlier archive.
    pub reuse: Reuse,
    /// Where each entry was cut into chunks: saved beside the archive ([`save_index`]) for
    /// the next archive to reuse unchanged chunks of changed files.
    pub index: ChunkIndex,
    /// Where the snapshot archived did not match its manifest (empty: it was sound).
    pub damage: Vec<String>,
}

/// The permission bits an archive gives a snapshot file: its live mode, never more than
/// owner-only for a secret; private for what has no live mode (the database copy, exports).
pub fn entry_mode(mode: Option<u32>, secret: bool) -> u32 {
    let mode = mode.unwrap_or(PRIVATE) & 0o777;
    if secret { mode & 0o700 } else { mode }
}

/// The mode of an archive entry nothing says more about.
pub(crate) const PRIVATE: u32 = 0o600;

pub(crate) fn zip_time(t: Option<std::time::SystemTime>) -> zip::DateTime {
    let fallback = zip::DateTime::default();
    let Some(t) = t else { return fallback };
    let t: DateTime<Utc> = t.into();
    zip::DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or(fallback)
}

/// Read just the manifest of an archive (for `status`, naming, idempotent archiving).
pub fn read_manifest(path: &Path) -> Result<Option<Manifest>> {
    CheckedArchive::open(path, &Limits::default())?.manifest()
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;
    use std::path::PathBuf;

    use super::*;
    use crate::fsx;
    use crate::progress::Silent;

    fn zip_with(entries: &[(&str, &[u8])]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zip");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        (dir, path)
    }

    #[test]
    fn names_that_escape_are_refused() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\b",
            "a//b",
            "./a",
            "C:/x",
            "a\0b",
        ] {
            assert!(check_entry_name(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            check_entry_name(b"messages/a.jsonl").unwrap(),
            "messages/a.jsonl"
        );
        assert_eq!(check_entry_name(b"config/").unwrap(), "config");
    }

    proptest::proptest! {
        #[test]
        fn accepted_names_never_escape(name in "[a-z./\\\\]{1,24}") {
            if let Ok(n) = check_entry_name(name.as_bytes()) {
                let p = Path::new(&n);
                proptest::prop_assert!(p.is_relative());
                proptest::prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }

    #[test]
    fn round_trip_through_write_dir() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("messages")).unwrap();
        std::fs::write(src.path().join("manifest.json"), b"{}").unwrap();
        std::fs::write(src.path().join("messages/a.jsonl"), b"{\"a\":1}\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let zip_path = out.path().join("x.zip");
        write_dir(src.path(), &zip_path, 6, &Silent, &Cancel::new()).unwrap();
        let mut a = CheckedArchive::open(&zip_path, &Limits::default()).unwrap();
        assert_eq!(a.entries()[0].path, "manifest.json");
        let dest = out.path().join("x");
        std::fs::create_dir(&dest).unwrap();
        a.extract_all(&dest, &BTreeMap::new(), &Silent, &Cancel::new())
            .unwrap();
        assert_eq!(
            std::fs::read(dest.join("messages/a.jsonl")).unwrap(),
            b"{\"a\":1}\n"
        );
    }

    #[test]
    fn chunk_indexes_round_trip_and_old_ones_still_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("archives")).unwrap();
        let archive = dir.path().join("archives/2026-01-01T000000.zip");
        let checked = ChunkInfo {
            len: 262_144,
            packed: 70_001,
            crc: 0xdead_beef,
            checks: Some(ChunkChecks {
                packed_crc: 7,
                hash: [0xab; 32],
            }),
        };
        let plain = ChunkInfo {
            checks: None,
            ..checked
        };
        let index: ChunkIndex = [("db/messages.db".to_owned(), vec![checked, plain])].into();
        save_index(&archive, &index).unwrap();
        assert_eq!(load_index(&archive), Some(index));
        // As indexes were written before chunks had checks: rows of three numbers.
        std::fs::write(
            index_path(&archive),
            br#"{"events.jsonl":[[262144,70001,3735928559]]}"#,
        )
        .unwrap();
        assert_eq!(load_index(&archive).unwrap()["events.jsonl"], vec![plain]);
        // Anything else is no index (it is a cache: the next archive compresses afresh).
        for bad in [
            &br#"{"a":[[1,2]]}"#[..],
            br#"{"a":[[1,2,3,4]]}"#,
            br#"{"a":[[1,2,3,4,"abcd"]]}"#,
            br#"{"a":[[1,2,3,4,"zz"]]}"#,
            br#"{"a":[[1,2,3,4,"abababababababababababababababababababababababababababababababab",6]]}"#,
            br#"{"a":[[1,-2,3]]}"#,
        ] {
            std::fs::write(index_path(&archive), bad).unwrap();
            assert_eq!(load_index(&archive), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn duplicates_and_totals_are_refused() {
        let (_d, p) = zip_with(&[("a", b"1"), ("b", b"22")]);
        let limits = Limits {
            max_total: 2,
            ..Limits::default()
        };
        let err = CheckedArchive::open(&p, &limits).unwrap_err().to_string();
        assert!(err.contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn sha_mismatch_is_refused() {
        let (_d, p) = zip_with(&[("events.jsonl", b"{}\n")]);
        let mut a = CheckedArchive::open(&p, &Limits::default()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut expected = BTreeMap::new();
        expected.insert(
            "events.jsonl".to_owned(),
            (3u64, fsx::Checksum::Blake3("00".repeat(32))),
        );
        let err = a
            .extract_all(dest.path(), &expected, &Silent, &Cancel::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("blake3 checksum"), "{err}");
        // A manifest of SHA-256 checksums is checked with SHA-256.
        let dest = tempfile::tempdir().unwrap();
        expected.insert(
            "events.jsonl".to_owned(),
            (3u64, fsx::Checksum::Sha256(fsx::sha256_hex(b"{}\n"))),
        );
        let digests = a
            .extract_all(dest.path(), &expected, &Silent, &Cancel::new())
            .unwrap();
        assert_eq!(
            digests["events.jsonl"].checksum,
            fsx::Checksum::Sha256(fsx::sha256_hex(b"{}\n"))
        );
    }
}
