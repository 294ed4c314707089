//! Local-table JSONL import: any bytes are rows or an error naming the line; never a panic,
//! and a failed import leaves the table as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thrum_backup::database::{LocalFile, import_local_tables};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("m.db");
    let mut conn = rusqlite::Connection::open(&db).expect("open");
    conn.execute_batch(
        "CREATE TABLE message_reads (message_id TEXT NOT NULL, session_id TEXT NOT NULL,
         agent_id TEXT NOT NULL, read_at TEXT NOT NULL, PRIMARY KEY (message_id, session_id));
         INSERT INTO message_reads VALUES ('m', 's', 'a', 't');",
    )
    .expect("schema");
    let file = dir.path().join("message_reads.jsonl");
    std::fs::write(&file, data).expect("write");
    let files = [LocalFile {
        table: "message_reads".into(),
        path: file.clone(),
        shown: file,
    }];
    if import_local_tables(&mut conn, &db, &files).is_err() {
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM message_reads", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 1, "a failed import changed the table");
    }
});
