//! `restore`: lossless, from current/ and from archives, as one transaction.

use crate::harness::*;
use serde_json::Value;

#[test]
fn restore_from_current_reproduces_every_byte_and_row() {
    let fx = Fx::new();
    let before = fx.state();
    fx.create();
    fx.wipe();
    assert_ne!(fx.state(), before);
    let r = fx.json(&["restore", "--yes"]);
    assert_eq!(r["database"], true);
    assert_eq!(
        fx.state(),
        before,
        "restored workspace differs from the original"
    );
    // The database is WAL again, as thrum keeps it, and intact.
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn the_restored_database_keeps_the_live_ones_mode_and_its_row_counts() {
    use std::os::unix::fs::PermissionsExt;
    let mut fx = Fx::new();
    let first = fx.create();
    fx.ws.add_messages(10).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&fx.ws.db_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = fx.json(&["restore", "--yes"]);
    assert_eq!(r["database_from"], "snapshot");
    assert_eq!(mode(&fx.ws.db_path), 0o640);
    // The rows are the snapshot's, as its manifest counted them, and its local tables were
    // already in the copy (nothing imported twice).
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    for (table, rows) in first["manifest"]["database"]["tables"].as_object().unwrap() {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(Some(n), rows.as_i64(), "{table}");
    }
    assert_eq!(r["local_rows"], first["manifest"]["local_tables"]);
    // Into a workspace without a database, it is made as SQLite and thrum make one.
    std::fs::remove_file(&fx.ws.db_path).unwrap();
    fx.json(&["restore", "--yes"]);
    assert_eq!(mode(&fx.ws.db_path), 0o644);
}

#[test]
fn restore_from_a_named_archive_brings_back_that_snapshot() {
    let mut fx = Fx::new();
    let old = fx.state();
    fx.create();
    fx.ws.add_messages(25).unwrap();
    let second = fx.create();
    let archived = second["archived"].as_str().unwrap();
    let name = std::path::Path::new(archived)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let newer = fx.state();
    let r = fx.json(&["restore", &name, "--yes"]);
    assert_eq!(
        fx.state(),
        old,
        "archive restore differs from the archived state"
    );
    // What it replaced was saved first, and that safety archive restores the newer state.
    let pre = r["pre_restore"].as_str().unwrap();
    assert!(
        std::path::Path::new(pre)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("pre-restore-")
    );
    fx.cmd().args(["restore", pre, "--yes"]).assert().success();
    assert_eq!(fx.state(), newer);
    // By path works as well as by name.
    fx.cmd()
        .args(["restore", archived, "--yes"])
        .assert()
        .success();
    assert_eq!(fx.state(), old);
}

/// Turn current/'s manifest into what the first versions of the engine wrote: SHA-256
/// checksums, no prefixes.
fn as_written_by_the_first_versions(fx: &Fx) {
    let path = fx.current().join("manifest.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for f in m["files"].as_array_mut().unwrap() {
        let file = fx.current().join(f["path"].as_str().unwrap());
        let d = thrum_backup::fsx::digest_file_with(&file, thrum_backup::fsx::Algorithm::Sha256)
            .unwrap();
        let f = f.as_object_mut().unwrap();
        assert!(f.remove("blake3").is_some());
        f.remove("prefix");
        f.insert("sha256".into(), d.checksum.hex().into());
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

#[test]
fn snapshots_hashed_with_sha256_still_verify_archive_and_restore() {
    let mut fx = Fx::new();
    let old = fx.state();
    fx.create();
    as_written_by_the_first_versions(&fx);
    let v = fx.json(&["verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["targets"][0]["algorithms"], serde_json::json!(["sha256"]));
    // A changed byte is still found, with SHA-256.
    let config = fx.current().join("config/config.json");
    let good = std::fs::read(&config).unwrap();
    let mut bad = good.clone();
    bad[0] ^= 0x20;
    std::fs::write(&config, &bad).unwrap();
    let out = fx.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config/config.json: sha256 does not match"),
        "{text}"
    );
    std::fs::write(&config, &good).unwrap();
    // The next create archives it as it is (its manifest says sha256) and hashes the new
    // snapshot with BLAKE3; both verify.
    fx.ws.add_messages(25).unwrap();
    let newer = fx.state();
    let second = fx.create();
    let archived = second["archived"].as_str().unwrap().to_owned();
    let v = fx.json(&["verify", "--all"]);
    assert_eq!(v["ok"], true, "{v}");
    let algorithms: Vec<&Value> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["algorithms"])
        .collect();
    assert!(algorithms.contains(&&serde_json::json!(["sha256"])), "{v}");
    assert!(algorithms.contains(&&serde_json::json!(["blake3"])), "{v}");
    // And it restores, checked against its SHA-256 checksums on the way.
    fx.cmd()
        .args(["restore", &archived, "--yes"])
        .assert()
        .success();
    assert_eq!(fx.state(), old);
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(fx.state(), newer);
}

#[test]
fn restore_removes_files_the_snapshot_does_not_have() {
    let fx = Fx::new();
    let before = fx.state();
    fx.create();
    let stray = fx.ws.sync_dir.join("messages/late-agent.jsonl");
    std::fs::write(&stray, b"{\"late\":true}\n").unwrap();
    std::fs::write(fx.thrum().join("identities/late.json"), b"{}").unwrap();
    let r = fx.json(&["restore", "--yes"]);
    assert!(!stray.exists());
    assert_eq!(fx.state(), before);
    let removed: Vec<String> = serde_json::from_value(r["removed"].clone()).unwrap();
    assert!(
        removed.iter().any(|p| p.ends_with("late-agent.jsonl")),
        "{removed:?}"
    );
    // ... and they are in the pre-restore archive.
    let pre = r["pre_restore"].as_str().unwrap();
    let zip = zip::ZipArchive::new(std::fs::File::open(pre).unwrap()).unwrap();
    assert!(
        zip.file_names()
            .any(|n| n.is_ok_and(|n| n == "messages/late-agent.jsonl"))
    );
}

#[test]
fn a_failure_mid_restore_puts_everything_back() {
    let mut fx = Fx::new();
    fx.create();
    fx.ws.add_messages(30).unwrap();
    std::fs::write(fx.thrum().join("context/new-notes.md"), b"# kept\n").unwrap();
    let live = fx.state();
    let archives_before = fx.archive_names();
    for after in [0, 1, 3, 7] {
        let out = fx
            .cmd()
            .env("THRUM_BACKUP_FAULT_RESTORE_AFTER", after.to_string())
            .args(["restore", "--yes"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("put back as it was"),
            "{}",
            stderr(&out)
        );
        assert_eq!(
            fx.state(),
            live,
            "workspace changed after a failed restore (fault at {after})"
        );
        // No temporary or set-aside file is left beside the targets.
        for dir in [
            fx.ws.sync_dir.join("messages"),
            fx.thrum().join("identities"),
            fx.thrum().join("var"),
        ] {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                assert!(!n.contains("restore-"), "leftover {n} in {}", dir.display());
            }
        }
        assert!(!fx.repo_dir().join(".tmp/restore-journal.json").exists());
    }
    // Each attempt replaced nothing in the end, so its safety archive went with it: nothing
    // changed in archives/.
    assert_eq!(fx.archive_names(), archives_before);
}

#[test]
fn thrum_made_archives_restore_and_import_local_tables() {
    let fx = Fx::new();
    // An archive as thrum writes it: no checksums, no database copy.
    let dir = fx.archives();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("2026-02-27T120000.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let add = |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, data: &[u8]| {
        zip.start_file(name, opts).unwrap();
        std::io::Write::write_all(zip, data).unwrap();
    };
    add(
        &mut zip,
        "events.jsonl",
        b"{\"type\":\"message.create\",\"n\":1}\n",
    );
    add(&mut zip, "messages/old-agent.jsonl", b"{\"n\":1}\n");
    add(
        &mut zip,
        "local/message_reads.jsonl",
        b"{\"agent_id\":\"a\",\"message_id\":\"thrum-m1\",\"read_at\":\"t\",\"session_id\":\"s9\"}\n",
    );
    add(&mut zip, "config/config.json", b"{\"backup\":{}}\n");
    add(
        &mut zip,
        "manifest.json",
        br#"{"version":1,"timestamp":"2026-02-27T12:00:00Z","thrum_version":"0.9.0","repo_name":"proj","counts":{"events":1,"message_files":1,"local_tables":1,"config_files":1}}"#,
    );
    zip.finish().unwrap();
    let rows_before = fx.state().rows.len();
    let r = fx.json(&["restore", "2026-02-27T120000.zip", "--yes"]);
    assert_eq!(r["local_rows"]["message_reads"], 1);
    assert_eq!(
        std::fs::read(fx.ws.sync_dir.join("events.jsonl")).unwrap(),
        b"{\"type\":\"message.create\",\"n\":1}\n"
    );
    // The live database was kept (thrum's restore deletes it) and gained the imported row.
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM message_reads WHERE message_id = 'thrum-m1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(fx.state().rows.len(), rows_before + 1);
    // verify says it has no checksums but is structurally fine.
    let v = fx.json(&["verify", "2026-02-27T120000.zip"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["targets"][0]["checksums"], false);
}

#[test]
fn restore_needs_confirmation_without_a_terminal() {
    let fx = Fx::new();
    fx.create();
    fx.wipe();
    let out = fx.cmd().arg("restore").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(
        !fx.ws.sync_dir.join("events.jsonl").exists(),
        "restored without confirmation"
    );
    let _: Value = fx.json(&["status"]);
}

#[test]
fn logs_that_only_grew_are_cut_back_in_place_and_the_safety_archive_keeps_what_was_cut() {
    use std::os::unix::fs::MetadataExt;
    let mut fx = Fx::new();
    let before = fx.state();
    fx.create();
    fx.ws.add_messages(40).unwrap();
    let events = fx.ws.sync_dir.join("events.jsonl");
    let inode = std::fs::metadata(&events).unwrap().ino();
    // A log that grew and was also changed in its snapshot part: copied back whole.
    let edited = std::fs::read_dir(fx.ws.sync_dir.join("messages"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap();
    let mut bytes = std::fs::read(&edited).unwrap();
    bytes[0] = b' ';
    bytes.extend_from_slice(b"{\"appended\":true}\n");
    std::fs::write(&edited, &bytes).unwrap();
    let edited_inode = std::fs::metadata(&edited).unwrap().ino();
    let live = fx.state();

    let dry = fx.json(&["restore", "--dry-run"]);
    assert!(dry["trimmed"].as_u64().unwrap() >= 2, "{dry}");
    assert_eq!(fx.state(), live, "a dry run changed the workspace");
    let r = fx.json(&["restore", "--yes"]);
    assert_eq!(fx.state(), before, "the workspace is not the snapshot");
    assert_eq!(r["trimmed"], dry["trimmed"], "{r}");
    let restored = r["restored"].as_array().unwrap();
    assert!(
        restored
            .iter()
            .any(|p| p.as_str().unwrap().ends_with("events.jsonl")),
        "{r}"
    );
    // The grown log is the same file, cut back; the edited one a copy renamed in.
    assert_eq!(std::fs::metadata(&events).unwrap().ino(), inode);
    assert_ne!(std::fs::metadata(&edited).unwrap().ino(), edited_inode);
    // Nothing of the cut tails is left beside the logs.
    for e in std::fs::read_dir(&fx.ws.sync_dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.contains("restore-"), "leftover {n}");
    }
    // The safety archive holds the logs as they were, tails and all.
    let pre = r["pre_restore"].as_str().unwrap();
    fx.cmd().args(["restore", pre, "--yes"]).assert().success();
    assert_eq!(fx.state(), live);
    let text = fx.cmd().args(["restore", "--yes"]).output().unwrap();
    assert!(text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("had only grown since the snapshot"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    assert_eq!(fx.state(), before);
}

#[test]
fn the_safety_archive_keeps_rows_still_in_the_live_databases_wal() {
    let mut fx = Fx::new();
    fx.create();
    fx.ws.add_messages(5).unwrap();
    let count = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    // Rows committed into the -wal and never checkpointed (a daemon that died): the live file
    // alone does not hold them, so the safety snapshot may not link it; it copies through
    // SQLite. The connection is never closed, so that nothing checkpoints them.
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE wal_only (x); INSERT INTO wal_only VALUES (1), (2), (3);
         INSERT INTO messages SELECT * FROM messages LIMIT 0;",
    )
    .unwrap();
    let wal = std::fs::metadata(format!("{}-wal", fx.ws.db_path.display())).unwrap();
    assert!(wal.len() > 0);
    let messages = count(&fx.ws.db_path);
    std::mem::forget(conn);
    let r = fx.json(&["restore", "--yes"]);
    let pre = r["pre_restore"].as_str().unwrap().to_owned();
    fx.cmd().args(["restore", &pre, "--yes"]).assert().success();
    let back = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    let wal_rows: i64 = back
        .query_row("SELECT count(*) FROM wal_only", [], |r| r.get(0))
        .unwrap();
    assert_eq!(wal_rows, 3, "the rows in the -wal were not saved");
    assert_eq!(count(&fx.ws.db_path), messages);
}

#[test]
fn files_already_as_in_the_snapshot_are_left_alone_and_the_rest_put_back() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let fx = Fx::new();
    let before = fx.state();
    fx.create();
    let ctx = fx.thrum().join("context");
    let mut md: Vec<_> = std::fs::read_dir(&ctx)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    md.sort();
    assert!(md.len() >= 2);
    // One file changed without changing its size or mode: only its bytes tell.
    let (edited, chmoded) = (&md[0], &md[1]);
    let mut bytes = std::fs::read(edited).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(edited, &bytes).unwrap();
    // One file with the same bytes and another mode.
    let mode = std::fs::metadata(chmoded).unwrap().permissions().mode() & 0o7777;
    std::fs::set_permissions(chmoded, std::fs::Permissions::from_mode(mode ^ 0o044)).unwrap();
    let config = fx.thrum().join("config.json");
    let inode = std::fs::metadata(&config).unwrap().ino();

    let r = fx.json(&["restore", "--yes"]);
    let restored: Vec<&str> = r["restored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let named = |p: &std::path::Path| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        restored.iter().any(|r| r.ends_with(&name))
    };
    assert!(named(edited) && named(chmoded), "{r}");
    assert!(!restored.iter().any(|r| r.ends_with("config.json")), "{r}");
    assert!(r["unchanged"].as_u64().unwrap() > 10, "{r}");
    // The unchanged file was not written again: the very same file.
    assert_eq!(std::fs::metadata(&config).unwrap().ino(), inode);
    assert_eq!(fx.state(), before, "the workspace is not the snapshot");
    let now = std::fs::metadata(chmoded).unwrap().permissions().mode() & 0o7777;
    assert_eq!(now, mode, "the mode was not put back");
    let text = fx.cmd().args(["restore", "--yes"]).output().unwrap();
    assert!(text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("already as in the snapshot"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}
