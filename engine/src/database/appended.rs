//! Telling from the pages that changed that a table's rows are the same as in an earlier copy,
//! or were only appended to ([`since`]): its export is then the earlier export, or the earlier
//! export followed by the export of the new rows, so a steady backup need not read, encode and
//! write a local table whole every time.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Statement};

use super::{open_read_only, quote, table_schema};

/// Above this many rows to compare, the table is exported whole: the changes are not a few
/// appended rows.
const MOST_ROWS: usize = 20_000;

/// A table's pages, as SQLite's `dbstat` table lists them, with their kind.
type Pages = BTreeMap<u64, Kind>;

/// What a page of a table's b-tree holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Pointers to other pages only.
    Internal,
    /// Rows (their cells).
    Leaf,
    /// The rest of a row too long for its cell.
    Overflow,
}

/// What became of a table's rows since an earlier copy of its database, as [`since`] tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The same rows: none of the table's pages changed. Its export is the earlier export.
    Unchanged,
    /// The earlier rows, unchanged, followed by rows with larger rowids than this one (the
    /// earlier largest): the export is the earlier export followed by
    /// [`super::export_table_after`] this rowid.
    AppendedAfter(i64),
    /// Anything else, or it could not be told: export the table whole.
    Changed,
}

/// What became of `table`'s rows in the database that `conn` reads (inside its read
/// transaction, a [`super::pages::Snapshot`]'s) since the earlier copy `old` of the same
/// database, decided from `changed`, the sorted inclusive ranges of pages where the two files
/// differ. One walk of the table's pages (SQLite's `dbstat` table) answers both questions:
///
/// - [`Since::Unchanged`]: the same schema entry (root page and SQL), and none of the table's
///   pages (b-tree and overflow) among `changed`. A b-tree whose every page is byte for byte
///   the earlier one's, from the same root, holds the same rows, so their export is the same.
/// - [`Since::AppendedAfter`]: a leaf page of the table's b-tree that is byte for byte the
///   same, and the table's in both copies, holds the same rows. Every other leaf page, in
///   either copy, is read, and each row on it up to the earlier largest rowid is compared,
///   value by value, in both copies. The export (a scan in rowid order,
///   [`super::export_table_from`]) is then the earlier export followed by the new rows'.
/// - [`Since::Changed`] otherwise, or whenever it cannot be told: a different schema entry,
///   an export that would not scan in rowid order, a changed overflow page (a row's value can
///   change there while its cell does not), a row changed, gone or inserted among the earlier
///   ones, too many rows to compare, no `dbstat`, an unreadable copy.
pub fn since(conn: &Connection, old: &Path, table: &str, changed: &[(u64, u64)]) -> Since {
    compare(conn, old, table, changed).unwrap_or(Since::Changed)
}

fn compare(conn: &Connection, old: &Path, table: &str, changed: &[(u64, u64)]) -> Option<Since> {
    let earlier = open_read_only(old, old, "open").ok()?;
    // Each page is read once: a page cache would only hold memory.
    earlier.pragma_update(None, "cache_size", -64).ok()?;
    let schema = table_schema(conn, table)?;
    if table_schema(&earlier, table)? != schema {
        return None;
    }
    let is_changed = |p: u64| {
        let i = changed.partition_point(|&(_, last)| last < p);
        changed.get(i).is_some_and(|&(first, _)| first <= p)
    };
    let now = table_pages(conn, table)?;
    if !now.keys().any(|&p| is_changed(p)) {
        return Some(Since::Unchanged);
    }
    if !scans_in_rowid_order(conn, table)? || !scans_in_rowid_order(&earlier, table)? {
        return None;
    }
    let last: i64 = earlier
        .query_row(
            &format!("SELECT max(rowid) FROM {}", quote(table)),
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .ok()??;
    let page_size = earlier
        .query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n > 0)?;
    let before = table_pages(&earlier, table)?;
    // The leaf pages of `mine` that may hold rows other than `other`'s same page does.
    let touched = |mine: &Pages, other: &Pages| -> Option<Vec<u64>> {
        let mut leaves = Vec::new();
        for (&p, kind) in mine {
            if !is_changed(p) && other.get(&p) == Some(kind) {
                continue;
            }
            match kind {
                Kind::Internal => {}
                Kind::Leaf if p > 1 => leaves.push(p),
                _ => return None,
            }
        }
        Some(leaves)
    };
    let (now_touched, before_touched) = (touched(&now, &before)?, touched(&before, &now)?);
    let mut rowids = BTreeSet::new();
    let old_file = std::fs::File::open(old).ok()?;
    let mut page = vec![0u8; usize::try_from(page_size).ok()?];
    for p in before_touched {
        old_file
            .read_exact_at(&mut page, (p - 1) * page_size)
            .ok()?;
        rowids.extend(leaf_rowids(&page)?);
    }
    let mut read = conn
        .prepare("SELECT data FROM sqlite_dbpage WHERE pgno = ?1")
        .ok()?;
    for p in now_touched {
        let data: Vec<u8> = read.query_row([p as i64], |r| r.get(0)).ok()?;
        rowids.extend(leaf_rowids(&data)?.into_iter().filter(|&r| r <= last));
    }
    if rowids.len() > MOST_ROWS {
        return None;
    }
    let query = format!("SELECT * FROM {} WHERE rowid = ?1", quote(table));
    let (mut a, mut b) = (earlier.prepare(&query).ok()?, conn.prepare(&query).ok()?);
    for r in rowids {
        let was = row(&mut a, r)?;
        if was.is_none() || was != row(&mut b, r)? {
            return None;
        }
    }
    Some(Since::AppendedAfter(last))
}

/// Whether `SELECT * FROM table` (the export's query) scans the table's own b-tree, in rowid
/// order, rather than an index.
fn scans_in_rowid_order(c: &Connection, table: &str) -> Option<bool> {
    let mut stmt = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN SELECT * FROM {}",
            quote(table)
        ))
        .ok()?;
    let plan: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(3))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    Some(matches!(plan.as_slice(), [d] if d.starts_with("SCAN ") && !d.contains("INDEX")))
}

/// The pages of `table`'s b-tree and their kinds.
fn table_pages(c: &Connection, table: &str) -> Option<Pages> {
    let mut stmt = c
        .prepare("SELECT pageno, pagetype FROM dbstat WHERE name = ?1")
        .ok()?;
    let pages = stmt
        .query_map([table], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .ok()?;
    let mut out = Pages::new();
    for p in pages {
        let (pgno, kind) = p.ok()?;
        let kind = match kind.as_str() {
            "internal" => Kind::Internal,
            "leaf" => Kind::Leaf,
            "overflow" => Kind::Overflow,
            _ => return None,
        };
        out.insert(u64::try_from(pgno).ok().filter(|&p| p > 0)?, kind);
    }
    (!out.is_empty()).then_some(out)
}

/// One row's values by rowid: `Some(None)` when there is no such row.
fn row(stmt: &mut Statement<'_>, rowid: i64) -> Option<Option<Vec<Value>>> {
    let n = stmt.column_count();
    stmt.query_row([rowid], |r| {
        (0..n)
            .map(|i| r.get::<_, Value>(i))
            .collect::<Result<Vec<_>, _>>()
    })
    .optional()
    .ok()
}

/// The rowids of the cells of a table b-tree leaf page (SQLite's file format: page type
/// 13, the cell count at offset 3, the cell pointers from offset 8, each cell a payload length
/// and then the rowid, both varints). `None` when it is not such a page.
fn leaf_rowids(page: &[u8]) -> Option<Vec<i64>> {
    if page.first() != Some(&0x0D) {
        return None;
    }
    let be16 = |at: usize| {
        Some(usize::from(u16::from_be_bytes([
            *page.get(at)?,
            *page.get(at + 1)?,
        ])))
    };
    let cells = be16(3)?;
    let mut rowids = Vec::with_capacity(cells);
    for i in 0..cells {
        let cell = page.get(be16(8 + 2 * i)?..)?;
        let (_, len) = varint(cell)?;
        let (rowid, _) = varint(cell.get(len..)?)?;
        rowids.push(rowid as i64);
    }
    Some(rowids)
}

/// SQLite's variable-length integer at the start of `b`, and its length in bytes.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(byte), 9));
        }
        v = (v << 7) | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database in WAL mode with a table shaped like thrum's `message_reads`.
    fn live(path: &Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE reads (message_id TEXT NOT NULL, session_id TEXT NOT NULL,
                 agent_id TEXT NOT NULL, read_at TEXT NOT NULL,
                 PRIMARY KEY (message_id, session_id));
             CREATE INDEX reads_agent ON reads(agent_id, message_id);
             CREATE TABLE other (id INTEGER PRIMARY KEY, body TEXT);",
        )
        .unwrap();
        c
    }

    fn add(c: &Connection, from: u64, n: u64, body: usize) {
        let tx = c.unchecked_transaction().unwrap();
        for k in from..from + n {
            tx.execute(
                "INSERT INTO reads VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![
                    format!("msg-{k:07}"),
                    format!("s-{}", k % 3),
                    format!("agent-{}-{}", k % 5, "x".repeat(body)),
                    format!("2026-12-{:02}", 1 + k % 28)
                ],
            )
            .unwrap();
            tx.execute("INSERT INTO other (body) VALUES (?1)", [format!("b{k}")])
                .unwrap();
        }
        tx.commit().unwrap();
    }

    /// A consistent copy of the live database, page for page (what `current/` holds).
    fn copy(c: &Connection, to: &Path) {
        let _ = std::fs::remove_file(to);
        c.backup(
            rusqlite::MAIN_DB,
            to,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .unwrap();
    }

    /// The sorted inclusive ranges of pages where `a` differs from `b`.
    fn changed(a: &Path, b: &Path, page: usize) -> Vec<(u64, u64)> {
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        let mut out: Vec<(u64, u64)> = Vec::new();
        for p in 0..a.len().max(b.len()).div_ceil(page) {
            let x = a.get(p * page..((p + 1) * page).min(a.len()));
            let y = b.get(p * page..((p + 1) * page).min(b.len()));
            if x != y {
                let n = p as u64 + 1;
                match out.last_mut() {
                    Some((_, l)) if *l + 1 == n => *l = n,
                    _ => out.push((n, n)),
                }
            }
        }
        out
    }

    fn export(c: &Connection, after: Option<i64>) -> Vec<u8> {
        let mut out = Vec::new();
        match after {
            None => super::super::export_table_from(c, Path::new("db"), "reads", &mut out),
            Some(a) => super::super::export_table_after(c, Path::new("db"), "reads", a, &mut out),
        }
        .unwrap();
        out
    }

    /// Apply `change` to the live database after copying it, then ask; whenever the answer
    /// is "unchanged", the earlier export must be the export of the table now, byte for byte,
    /// and whenever it is "appended after N", the earlier export and the export after N.
    fn ask(change: impl FnOnce(&Connection)) -> Since {
        let dir = tempfile::tempdir().unwrap();
        let (db, old, now) = (
            dir.path().join("live.db"),
            dir.path().join("old.db"),
            dir.path().join("now.db"),
        );
        let c = live(&db);
        add(&c, 0, 600, 8);
        copy(&c, &old);
        let before = export(&Connection::open(&old).unwrap(), None);
        change(&c);
        copy(&c, &now);
        let ranges = changed(&now, &old, 4096);
        let snap = Connection::open(&now).unwrap();
        let answer = since(&snap, &old, "reads", &ranges);
        match answer {
            Since::Unchanged => assert_eq!(before, export(&snap, None), "unchanged"),
            Since::AppendedAfter(after) => {
                let mut joined = before;
                joined.extend(export(&snap, Some(after)));
                assert_eq!(joined, export(&snap, None), "appended after {after}");
            }
            Since::Changed => {}
        }
        answer
    }

    #[test]
    fn rows_appended_are_told_and_their_export_follows_the_earlier_one() {
        assert_eq!(ask(|c| add(c, 10_000, 300, 8)), Since::AppendedAfter(600));
        // Nothing appended, other tables changed: the export is the earlier one.
        assert_eq!(
            ask(|c| {
                c.execute("INSERT INTO other (body) VALUES ('x')", [])
                    .unwrap();
            }),
            Since::Unchanged
        );
        // The table's SQL changed (a column added): its rows are not the earlier ones.
        assert_eq!(
            ask(|c| {
                c.execute("ALTER TABLE reads ADD COLUMN extra TEXT", [])
                    .unwrap();
            }),
            Since::Changed
        );
        // Rows long enough to overflow: which row an overflow page is of is not told, so
        // the table is exported whole.
        assert_eq!(ask(|c| add(c, 10_000, 20, 6000)), Since::Changed);
    }

    #[test]
    fn a_row_changed_removed_or_inserted_among_the_earlier_ones_is_not_an_append() {
        assert_eq!(
            ask(|c| {
                add(c, 10_000, 50, 8);
                c.execute("UPDATE reads SET read_at = 'later' WHERE rowid = 7", [])
                    .unwrap();
            }),
            Since::Changed
        );
        assert_eq!(
            ask(|c| {
                add(c, 10_000, 50, 8);
                c.execute("DELETE FROM reads WHERE rowid = 300", [])
                    .unwrap();
            }),
            Since::Changed
        );
        assert_eq!(
            ask(|c| {
                c.execute("DELETE FROM reads WHERE rowid = 600", [])
                    .unwrap();
            }),
            Since::Changed
        );
        assert_eq!(
            ask(|c| {
                c.execute(
                    "INSERT OR REPLACE INTO reads VALUES ('msg-0000005', 's-2', 'a', 'b')",
                    [],
                )
                .unwrap();
            }),
            Since::Changed
        );
        assert_eq!(
            ask(|c| {
                c.execute("DELETE FROM reads WHERE rowid = 2", []).unwrap();
                c.execute(
                    "INSERT INTO reads (rowid, message_id, session_id, agent_id, read_at) \
                     VALUES (2, 'm', 's', 'a', 'r')",
                    [],
                )
                .unwrap();
            }),
            Since::Changed
        );
    }

    #[test]
    fn random_changes_never_give_a_wrong_export() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut unchanged, mut appended, mut refused) = (0, 0, 0);
        for round in 0..24 {
            let ops: Vec<u64> = (0..4).map(|_| next()).collect();
            let answer = ask(|c| {
                for (i, op) in ops.iter().enumerate() {
                    let k = 20_000 + round * 1000 + i as u64 * 100;
                    match op % 6 {
                        0..=2 => add(c, k, 1 + op % 40, (op % 3000) as usize),
                        3 => {
                            c.execute(
                                "UPDATE reads SET agent_id = agent_id || 'y' WHERE rowid = ?1",
                                [1 + (op >> 8) as i64 % 600],
                            )
                            .unwrap();
                        }
                        4 => {
                            c.execute(
                                "DELETE FROM reads WHERE rowid = ?1",
                                [1 + (op >> 8) as i64 % 600],
                            )
                            .unwrap();
                        }
                        _ => {
                            c.execute(
                                "DELETE FROM other WHERE id % 7 = ?1",
                                [(op >> 8) as i64 % 7],
                            )
                            .unwrap();
                        }
                    }
                }
            });
            match answer {
                Since::Unchanged => unchanged += 1,
                Since::AppendedAfter(_) => appended += 1,
                Since::Changed => refused += 1,
            }
        }
        // Both answers that keep the earlier export came up, and each was checked against
        // the export now.
        assert!(
            appended > 0 && refused > 0,
            "{unchanged} unchanged, {appended} appended, {refused} refused"
        );
    }

    #[test]
    fn leaf_pages_are_parsed_and_anything_else_refused() {
        assert_eq!(varint(&[0x7F]), Some((127, 1)));
        assert_eq!(varint(&[0x81, 0x00]), Some((128, 2)));
        assert_eq!(varint(&[0xFF; 9]), Some((u64::MAX, 9)));
        assert_eq!(varint(&[0x81]), None);
        let mut page = vec![0u8; 64];
        page[0] = 0x0D;
        page[4] = 2;
        page[8..12].copy_from_slice(&[0, 40, 0, 50]);
        page[40..43].copy_from_slice(&[5, 0x81, 0x00]);
        page[50..52].copy_from_slice(&[9, 3]);
        assert_eq!(leaf_rowids(&page), Some(vec![128, 3]));
        page[0] = 0x0A;
        assert_eq!(leaf_rowids(&page), None);
        page[0] = 0x0D;
        page[11] = 63;
        assert_eq!(leaf_rowids(&page), None);
    }
}
