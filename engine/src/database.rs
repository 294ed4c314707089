//! `messages.db`: a consistent copy while a daemon may be writing, the local-only tables as
//! JSONL (thrum's format), and their import on restore.
//!
//! Measured on these machines with a writer committing every 5 ms: the online backup API
//! stepped in small batches restarts forever, while one `step(-1)` takes ~0.1 s and yields
//! a consistent snapshot. The local tables are exported from that copy, so they all come
//! from the same instant as the copy itself.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value};

/// thrum's local-only tables: not in the JSONL log, so exported on their own.
pub const LOCAL_TABLES: [&str; 3] = ["message_reads", "subscriptions", "sync_checkpoints"];

pub use crate::error::DbError;

pub mod appended;
pub mod pages;

fn sql<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(rusqlite::Error) -> DbError + 'a {
    move |source| DbError::Sqlite {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Open the database file `path` read-only, for one thread (no SQLite mutex); a failure is
/// reported against `shown` (the file the user knows: the live database, or the snapshot a copy
/// belongs to) as `action`.
pub(crate) fn open_read_only(
    path: &Path,
    shown: &Path,
    action: &'static str,
) -> Result<Connection, DbError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(shown, action))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Copy `src` into the new file `dst` as one consistent snapshot, check it, and return the
/// row count of every table. `dst` is a self-contained file (no `-wal`) when this returns.
pub fn copy_consistent(
    src: &Path,
    dst: &Path,
    wait: Duration,
) -> Result<BTreeMap<String, u64>, DbError> {
    copy_unchecked(src, dst, wait)?;
    sync_copy(dst)?;
    check_copy(dst, src)
}

/// Check the copy `dst` made by [`copy_unchecked`] (`PRAGMA quick_check`) and return the row
/// count of every table; errors name `src`, the database the copy came from.
pub fn check_copy(dst: &Path, src: &Path) -> Result<BTreeMap<String, u64>, DbError> {
    let conn = open_read_only(dst, dst, "open copy")?;
    check_integrity(&conn, src)?;
    table_counts(&conn, dst)
}

/// The row count of every table of the copy `dst`, unchecked.
pub fn count_copy(dst: &Path) -> Result<BTreeMap<String, u64>, DbError> {
    let conn = open_read_only(dst, dst, "open copy")?;
    table_counts(&conn, dst)
}

/// The first half of [`copy_consistent`]: the copy, neither flushed to disk nor checked.
/// Flushing ([`sync_copy`]), checking, hashing and exporting only read the copy, so a caller
/// may run them side by side; the copy is durable only once [`sync_copy`] has returned.
pub fn copy_unchecked(src: &Path, dst: &Path, wait: Duration) -> Result<(), DbError> {
    readable(src)?;
    let source = open_read_only(src, src, "open")?;
    source
        .busy_timeout(Duration::from_millis(200))
        .map_err(sql(src, "configure"))?;
    let mut dest = Connection::open(dst).map_err(sql(dst, "create copy"))?;
    // The copy is a new private file: no journal and no syncs while it is written (a failed
    // copy is thrown away whole), one fsync once it is complete.
    dest.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;")
        .map_err(sql(dst, "configure copy"))?;
    let start = Instant::now();
    {
        let backup = Backup::new(&source, &mut dest).map_err(sql(src, "start backup"))?;
        loop {
            // One step of every page: the copy holds one read transaction on the source,
            // so it is a single instant even while a writer commits.
            match backup.step(-1) {
                Ok(StepResult::Done) => break,
                Ok(StepResult::More | StepResult::Busy | StepResult::Locked) => {}
                Ok(_) => {}
                Err(e) if is_busy(&e) => {}
                Err(e) => {
                    return Err(DbError::Sqlite {
                        path: src.to_path_buf(),
                        action: if dst.exists() {
                            "copy (writing the copy failed)"
                        } else {
                            "copy"
                        },
                        source: e,
                    });
                }
            }
            if start.elapsed() > wait {
                return Err(DbError::Locked {
                    path: src.to_path_buf(),
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    drop(source);
    // The copy is private: make it a single file whatever the source's journal mode was.
    dest.pragma_update(None, "journal_mode", "DELETE")
        .map_err(sql(dst, "set journal mode"))?;
    dest.close().map_err(|(_, e)| sql(dst, "close")(e))
}

/// SQLite's own report of an unreadable file is only "unable to open database file": say
/// what it is.
fn readable(src: &Path) -> Result<(), DbError> {
    match std::fs::File::open(src) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(DbError::Unreadable {
            path: src.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Whether the database file at `path` alone holds the whole database: no `-wal` with
/// anything in it, no `-journal` (a rollback journal may be hot). Such a file, while nothing
/// writes to it, is a consistent copy of itself.
pub fn self_contained(path: &Path) -> bool {
    let empty_or_absent = |side: &str| {
        std::fs::symlink_metadata(crate::fsx::with_suffix(path, side)).map_or_else(
            |e| e.kind() == std::io::ErrorKind::NotFound,
            |m| m.len() == 0,
        )
    };
    empty_or_absent("-wal") && empty_or_absent("-journal")
}

/// Flush the copy made by [`copy_unchecked`] to disk.
pub fn sync_copy(dst: &Path) -> Result<(), DbError> {
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(|source| DbError::Io {
            path: dst.to_path_buf(),
            action: "flush the copy to disk",
            source,
        })
}

/// `PRAGMA quick_check`; `reported` names the file in the error.
pub fn check_integrity(conn: &Connection, reported: &Path) -> Result<(), DbError> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check")
        .map_err(sql(reported, "check integrity"))?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(sql(reported, "check integrity"))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(DbError::Corrupt {
            path: reported.to_path_buf(),
            detail: rows.join("; "),
        })
    }
}

/// Row counts of every user table.
pub fn table_counts(conn: &Connection, path: &Path) -> Result<BTreeMap<String, u64>, DbError> {
    let names = list_tables(conn, path)?;
    let mut out = BTreeMap::new();
    for name in names {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {}", quote(&name)), [], |r| {
                r.get(0)
            })
            .map_err(sql(path, "count rows"))?;
        out.insert(name, n as u64);
    }
    Ok(out)
}

/// Names of the user tables, through an open connection.
pub fn table_names_from(conn: &Connection, path: &Path) -> Result<Vec<String>, DbError> {
    list_tables(conn, path)
}

fn list_tables(conn: &Connection, path: &Path) -> Result<Vec<String>, DbError> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(sql(path, "list tables"))?;
    stmt.query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(sql(path, "list tables"))
}

/// Quote an identifier for SQL.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Names of the user tables of the database at `db`.
pub fn table_names(db: &Path) -> Result<Vec<String>, DbError> {
    let conn = open_read_only(db, db, "open")?;
    list_tables(&conn, db)
}

/// The root page and SQL of `table` in the schema `c` reads, if it has that table.
fn table_schema(c: &Connection, table: &str) -> Option<(i64, Option<String>)> {
    c.query_row(
        "SELECT rootpage, sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [table],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?)),
    )
    .ok()
}

/// Export `table` of the database at `db` as JSONL into `out`: one object per row, keys in
/// column order. Returns the number of rows.
pub fn export_table(db: &Path, table: &str, out: &mut dyn Write) -> Result<u64, DbError> {
    let conn = open_read_only(db, db, "open")?;
    export_table_from(&conn, db, table, out)
}

/// [`export_table`] through an open connection (a [`pages::Snapshot`]'s: the rows are of its
/// instant); `db` names the database in errors.
pub fn export_table_from(
    conn: &Connection,
    db: &Path,
    table: &str,
    out: &mut dyn Write,
) -> Result<u64, DbError> {
    export_rows(conn, db, table, None, out)
}

/// [`export_table_from`], of the rows whose rowid is above `after` only: what follows the
/// earlier export when the table's rows were only appended to ([`appended::since`] says
/// when). A scan of the table in rowid order, as the whole export's is.
pub fn export_table_after(
    conn: &Connection,
    db: &Path,
    table: &str,
    after: i64,
    out: &mut dyn Write,
) -> Result<u64, DbError> {
    export_rows(conn, db, table, Some(after), out)
}

fn export_rows(
    conn: &Connection,
    db: &Path,
    table: &str,
    after: Option<i64>,
    out: &mut dyn Write,
) -> Result<u64, DbError> {
    let query = match after {
        None => format!("SELECT * FROM {}", quote(table)),
        Some(_) => format!("SELECT * FROM {} WHERE rowid > ?1", quote(table)),
    };
    let mut stmt = conn.prepare(&query).map_err(sql(db, "export table"))?;
    let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let mut rows = match after {
        None => stmt.query([]),
        Some(after) => stmt.query([after]),
    }
    .map_err(sql(db, "export table"))?;
    let mut count = 0u64;
    let write_err = |line: u64, e: std::io::Error| DbError::Import {
        path: db.to_path_buf(),
        line,
        message: format!("cannot write export: {e}"),
    };
    // Each line is what serializing the row as a JSON object gives (`{"column":value,...}`),
    // written straight into one reused buffer: the keys are encoded once, and a row costs no
    // map, no copies of its strings.
    let keys: Vec<Vec<u8>> = columns
        .iter()
        .map(|c| json_bytes(&Value::String(c.clone())))
        .collect();
    let mut line = Vec::with_capacity(512);
    while let Some(row) = rows.next().map_err(sql(db, "export table"))? {
        line.clear();
        line.push(b'{');
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(key);
            line.push(b':');
            let v = row.get_ref(i).map_err(sql(db, "export table"))?;
            let text = match v {
                ValueRef::Text(b) | ValueRef::Blob(b) => std::str::from_utf8(b).ok(),
                _ => None,
            };
            let written = match (v, text) {
                (ValueRef::Integer(n), _) => write!(line, "{n}"),
                (_, Some(text)) => serde_json::to_writer(&mut line, text).map_err(Into::into),
                _ => line.write_all(&json_bytes(&to_json(v))),
            };
            written.map_err(|e| write_err(count + 1, e))?;
        }
        line.extend_from_slice(b"}\n");
        out.write_all(&line).map_err(|e| write_err(count + 1, e))?;
        count += 1;
    }
    Ok(count)
}

/// A JSON value's compact encoding.
fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The key of a single-key object that carries bytes that are not UTF-8.
const BLOB_KEY: &str = "$base64";

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        // thrum writes text and blobs as JSON strings; we do the same when they are UTF-8.
        ValueRef::Text(b) | ValueRef::Blob(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => {
                let mut m = Map::new();
                m.insert(
                    BLOB_KEY.into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                );
                Value::Object(m)
            }
        },
    }
}

fn to_sql(v: &Value) -> Result<SqlValue, String> {
    Ok(match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().ok_or("number out of range")?),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(m) if m.len() == 1 && m.contains_key(BLOB_KEY) => {
            let text = m[BLOB_KEY].as_str().ok_or("$base64 must be a string")?;
            SqlValue::Blob(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| format!("bad $base64 value: {e}"))?,
            )
        }
        other => SqlValue::Text(other.to_string()),
    })
}

/// A local-table JSONL file to import.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// The table.
    pub table: String,
    /// Where the file is.
    pub path: PathBuf,
    /// How to name it in errors (relative to the backup it came from).
    pub shown: PathBuf,
}

/// Import `local/<table>.jsonl` files into `conn` in one transaction (`INSERT OR IGNORE`),
/// checking every key against the table's columns. Returns rows read per table.
///
/// A file whose table the database lacks is an error, as is an unknown column: the caller
/// runs this on a private copy, so an error changes nothing.
pub fn import_local_tables(
    conn: &mut Connection,
    db_path: &Path,
    files: &[LocalFile],
) -> Result<BTreeMap<String, u64>, DbError> {
    // thrum's local rows reference messages its daemon projects from the log later (and
    // thrum's own driver does not enforce foreign keys): keep every row.
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(sql(db_path, "configure import"))?;
    let tx = conn.transaction().map_err(sql(db_path, "begin import"))?;
    let mut counts = BTreeMap::new();
    let tables = list_tables(&tx, db_path)?;
    for LocalFile {
        table,
        path: file,
        shown,
    } in files
    {
        if !tables.iter().any(|t| t == table) {
            return Err(DbError::Import {
                path: shown.clone(),
                line: 0,
                message: format!("table {table:?} does not exist in {}", db_path.display()),
            });
        }
        let columns: Vec<String> = {
            let mut stmt = tx
                .prepare(&format!("PRAGMA table_info({})", quote(table)))
                .map_err(sql(db_path, "read columns"))?;
            stmt.query_map([], |r| r.get::<_, String>(1))
                .and_then(|rows| rows.collect())
                .map_err(sql(db_path, "read columns"))?
        };
        let reader = std::fs::File::open(file).map_err(|e| DbError::Import {
            path: shown.clone(),
            line: 0,
            message: format!("cannot open: {e}"),
        })?;
        let mut n = 0u64;
        for (i, line) in std::io::BufReader::new(reader).lines().enumerate() {
            let line_no = i as u64 + 1;
            let fail = |message: String| DbError::Import {
                path: shown.clone(),
                line: line_no,
                message,
            };
            let line = line.map_err(|e| fail(format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let obj: Map<String, Value> =
                serde_json::from_str(&line).map_err(|e| fail(format!("not a JSON object: {e}")))?;
            if obj.is_empty() {
                continue;
            }
            let mut cols = Vec::with_capacity(obj.len());
            let mut vals = Vec::with_capacity(obj.len());
            for (k, v) in &obj {
                if !columns.iter().any(|c| c == k) {
                    return Err(fail(format!(
                        "column {k:?} does not exist in table {table:?} (columns: {})",
                        columns.join(", ")
                    )));
                }
                cols.push(quote(k));
                vals.push(to_sql(v).map_err(|m| fail(format!("column {k:?}: {m}")))?);
            }
            let placeholders = vec!["?"; cols.len()].join(", ");
            let stmt = format!(
                "INSERT OR IGNORE INTO {} ({}) VALUES ({placeholders})",
                quote(table),
                cols.join(", ")
            );
            tx.prepare_cached(&stmt)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(vals.iter())))
                .map_err(|e| fail(format!("insert into {table}: {e}")))?;
            n += 1;
        }
        counts.insert(table.clone(), n);
    }
    tx.commit().map_err(sql(db_path, "commit import"))?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(table: &str, path: PathBuf) -> LocalFile {
        LocalFile {
            table: table.into(),
            shown: path.clone(),
            path,
        }
    }

    fn sample_db(path: &Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(
            "CREATE TABLE message_reads (message_id TEXT NOT NULL, session_id TEXT NOT NULL,
                agent_id TEXT NOT NULL, read_at TEXT NOT NULL, PRIMARY KEY (message_id, session_id));
             CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB, r REAL);
             INSERT INTO message_reads VALUES ('m1','s1','a1','2026-01-01T00:00:00Z');
             INSERT INTO message_reads VALUES ('m2','s1','a1','2026-01-01T00:00:01Z');
             INSERT INTO blobs VALUES (1, x'00ff10', 1.5), (2, 'text', NULL);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn copy_sees_wal_content_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("messages.db");
        let _live = sample_db(&src); // kept open: its rows are in the -wal
        let dst = dir.path().join("copy.db");
        let counts = copy_consistent(&src, &dst, Duration::from_secs(5)).unwrap();
        assert_eq!(counts["message_reads"], 2);
        assert_eq!(counts["blobs"], 2);
        assert!(!dir.path().join("copy.db-wal").exists());
    }

    #[test]
    fn export_then_import_round_trips_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.db");
        drop(sample_db(&src));
        let mut out = Vec::new();
        assert_eq!(export_table(&src, "blobs", &mut out).unwrap(), 2);
        assert!(!table_names(&src).unwrap().contains(&"missing".to_owned()));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("$base64"), "{text}");
        let jsonl = dir.path().join("blobs.jsonl");
        std::fs::write(&jsonl, &out).unwrap();
        let dst = dir.path().join("b.db");
        let mut conn = Connection::open(&dst).unwrap();
        conn.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB, r REAL);")
            .unwrap();
        import_local_tables(&mut conn, &dst, &[local("blobs", jsonl)]).unwrap();
        let data: Vec<u8> = conn
            .query_row("SELECT data FROM blobs WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(data, vec![0, 0xff, 0x10]);
        let r: f64 = conn
            .query_row("SELECT r FROM blobs WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(r, 1.5);
    }

    #[test]
    fn export_lines_are_each_row_serialized_as_a_json_object() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (\"a \"\"q\"\"\" INTEGER, b TEXT, c REAL, d BLOB, e);
             INSERT INTO t VALUES (-9223372036854775808, 'quote \" back \\ tab 	 nl
 é ✓ \u{1}', 2.5, X'00FF', NULL);
             INSERT INTO t VALUES (42, '', -0.0, 'text blob', 1e300);",
        )
        .unwrap();
        drop(conn);
        let mut out = Vec::new();
        assert_eq!(export_table(&db, "t", &mut out).unwrap(), 2);
        // What serde_json writes for the same row as an object, column order kept.
        let conn = Connection::open(&db).unwrap();
        let mut stmt = conn.prepare("SELECT * FROM t").unwrap();
        let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let mut expected = Vec::new();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let mut obj = Map::new();
            for (i, name) in names.iter().enumerate() {
                obj.insert(name.clone(), to_json(row.get_ref(i).unwrap()));
            }
            serde_json::to_writer(&mut expected, &Value::Object(obj)).unwrap();
            expected.push(b'\n');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn import_refuses_unknown_columns_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let mut conn = sample_db(&db);
        let jsonl = dir.path().join("message_reads.jsonl");
        std::fs::write(
            &jsonl,
            "{\"message_id\":\"m9\",\"session_id\":\"s\",\"agent_id\":\"a\",\"read_at\":\"t\"}\n{\"nope\":1}\n",
        )
        .unwrap();
        let err = import_local_tables(&mut conn, &db, &[local("message_reads", jsonl)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("\"nope\""), "{err}");
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM message_reads", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2, "the first line must have been rolled back");
    }

    #[test]
    fn not_a_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("messages.db");
        std::fs::write(&src, vec![b'x'; 8192]).unwrap();
        let err = copy_consistent(&src, &dir.path().join("c.db"), Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("messages.db") && err.contains("not an SQLite database"),
            "{err}"
        );
    }
}
