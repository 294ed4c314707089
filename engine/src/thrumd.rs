//! What a restore must respect of thrum's daemon (read from thrum v0.10.6's source): it holds
//! an exclusive `flock` on `T/var/thrum.lock` while it runs; it numbers events with
//! `MAX(sequence) + 1` of its `events` table, and peers pull `WHERE sequence > checkpoint`;
//! it refuses a database whose schema is newer than its own.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::database::DbError;
use crate::error::{Error, Result};

/// The lock file thrum's daemon holds while it runs.
pub fn lock_path(thrum_dir: &Path) -> PathBuf {
    thrum_dir.join("var").join("thrum.lock")
}

/// thrum's daemon lock, held by us for the length of a restore so that no daemon starts in
/// the middle of one. Released on drop.
#[derive(Debug)]
pub struct DaemonLock {
    _file: Option<File>,
}

/// Take thrum's daemon lock; an error naming the command that stops the daemon when it runs.
/// A workspace without the lock file has no daemon to wait for.
pub fn hold_lock(thrum_dir: &Path) -> Result<DaemonLock> {
    let path = lock_path(thrum_dir);
    let file = match File::options().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DaemonLock { _file: None });
        }
        Err(source) => {
            return Err(Error::Io {
                action: "open",
                path,
                source,
            });
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(DaemonLock { _file: Some(file) }),
        Err(TryLockError::WouldBlock) => Err(Error::DaemonRunning(path)),
        Err(TryLockError::Error(source)) => Err(Error::Io {
            action: "lock",
            path,
            source,
        }),
    }
}

/// Run one query on `db` read-only, and leave no `-wal`/`-shm` behind that were not there
/// before (SQLite makes them to read a WAL database; thrum's daemon, which would own them, is
/// stopped while this runs).
fn query_ro<T>(db: &Path, query: &str) -> Option<T>
where
    T: rusqlite::types::FromSql,
{
    let sides: Vec<PathBuf> = ["-wal", "-shm"]
        .iter()
        .map(|s| crate::fsx::with_suffix(db, s))
        .filter(|p| !p.exists())
        .collect();
    let value = crate::database::open_read_only(db, db, "open")
        .ok()
        .and_then(|conn| {
            let v = conn.query_row(query, [], |r| r.get::<_, Option<T>>(0)).ok();
            drop(conn);
            v
        })
        .flatten();
    for side in sides {
        let _ = std::fs::remove_file(side);
    }
    value
}

fn sql(path: &Path, action: &'static str, source: rusqlite::Error) -> Error {
    DbError::Sqlite {
        path: path.to_path_buf(),
        action,
        source,
    }
    .into()
}

/// The highest event sequence of a thrum database (`None`: no `events` table or no event).
pub fn max_sequence(db: &Path) -> Option<i64> {
    if !db.is_file() {
        return None;
    }
    query_ro(db, "SELECT MAX(sequence) FROM events")
}

/// The schema version a thrum database was migrated to.
pub fn schema_version(db: &Path) -> Option<i64> {
    if !db.is_file() {
        return None;
    }
    query_ro(db, "SELECT MAX(version) FROM schema_version")
}

/// Renumber the newest event of `db` to `to`, so that the daemon's next event gets a sequence
/// above `to` (peers that already pulled up to `to` pull it). The event itself is a real one:
/// peers that have it skip it by its id. Returns the sequence it had.
pub fn raise_sequence(db: &Path, to: i64) -> Result<i64> {
    let conn = Connection::open(db).map_err(|e| sql(db, "open", e))?;
    let max: Option<i64> = conn
        .query_row("SELECT MAX(sequence) FROM events", [], |r| r.get(0))
        .map_err(|e| sql(db, "read the highest event sequence of", e))?;
    let Some(max) = max else {
        return Err(Error::Invalid(format!(
            "{}: the events table is empty: there is no event to raise the sequence with \
             (thrum numbers its next event from 1)",
            db.display()
        )));
    };
    if to <= max {
        return Err(Error::Invalid(format!(
            "{}: the highest event sequence is already {max}; --raise-sequence must name a higher one",
            db.display()
        )));
    }
    conn.execute(
        "UPDATE events SET sequence = ?1 WHERE sequence = ?2",
        rusqlite::params![to, max],
    )
    .map_err(|e| sql(db, "raise the event sequence of", e))?;
    // The last connection's close folds the WAL into the file and removes it.
    conn.close().map_err(|(_, e)| sql(db, "close", e))?;
    Ok(max)
}

/// Schema versions of thrum's releases (thrum's `internal/schema.CurrentVersion` at each tag
/// where it changed): what each release can open.
pub const SCHEMAS: &[((u32, u32, u32), i64)] = &[
    ((0, 1, 0), 7),
    ((0, 4, 0), 12),
    ((0, 4, 1), 13),
    ((0, 5, 4), 14),
    ((0, 6, 2), 15),
    ((0, 7, 0), 16),
    ((0, 8, 0), 19),
    ((0, 8, 2), 20),
    ((0, 9, 0), 24),
    ((0, 10, 5), 32),
    ((0, 10, 6), 51),
];

/// The newest schema a thrum release opens; `None` for a release newer than the table
/// (it opens at least the newest schema known here) or an unreadable version.
pub fn schema_of_release(version: &str) -> Option<i64> {
    let v = version.trim().trim_start_matches('v');
    let core = v.split(['-', '+', ' ']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    let key = (parts.next()??, parts.next()??, parts.next()??);
    let newest = SCHEMAS.last()?.0;
    if key > newest {
        return None;
    }
    SCHEMAS
        .iter()
        .rev()
        .find(|(release, _)| *release <= key)
        .map(|(_, schema)| *schema)
}

/// The version of the `thrum` on PATH (`thrum version --json`), if one is installed.
pub fn installed_thrum_version() -> Option<String> {
    let out = std::process::Command::new("thrum")
        .args(["version", "--json"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get("version")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_schemas() {
        assert_eq!(schema_of_release("0.10.6"), Some(51));
        assert_eq!(schema_of_release("v0.10.6"), Some(51));
        assert_eq!(schema_of_release("0.10.5"), Some(32));
        assert_eq!(schema_of_release("0.9.2"), Some(24));
        assert_eq!(schema_of_release("0.10.4"), Some(24));
        assert_eq!(schema_of_release("0.10.6-rc.3"), Some(51));
        assert_eq!(schema_of_release("0.10.7"), None);
        assert_eq!(schema_of_release("1.0.0"), None);
        assert_eq!(schema_of_release("dev"), None);
    }

    #[test]
    fn a_running_daemon_is_seen_through_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        // No lock file: no daemon.
        hold_lock(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("var")).unwrap();
        let daemon = File::create(lock_path(dir.path())).unwrap();
        daemon.lock().unwrap();
        let err = hold_lock(dir.path()).unwrap_err().to_string();
        assert!(err.contains("thrum daemon stop"), "{err}");
        drop(daemon);
        let held = hold_lock(dir.path()).unwrap();
        // While we hold it, a daemon cannot start.
        let other = File::open(lock_path(dir.path())).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
    }

    #[test]
    fn raising_the_sequence_renumbers_the_newest_event() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE events (event_id TEXT PRIMARY KEY, sequence INTEGER UNIQUE NOT NULL);
             INSERT INTO events VALUES ('a', 1), ('b', 2);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(max_sequence(&db), Some(2));
        assert!(raise_sequence(&db, 2).is_err());
        assert_eq!(raise_sequence(&db, 500).unwrap(), 2);
        assert_eq!(max_sequence(&db), Some(500));
        let conn = Connection::open(&db).unwrap();
        let id: String = conn
            .query_row(
                "SELECT event_id FROM events WHERE sequence = 500",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(id, "b");
    }
}
