//! `create`: layout, manifest, the database under load, archiving.

use std::time::Duration;

use crate::harness::*;
use serde_json::Value;
use thrum_backup::manifest::Manifest;

#[test]
fn snapshot_has_thrums_layout_and_a_complete_manifest() {
    let fx = Fx::new();
    let report = fx.create();
    let cur = fx.current();
    for rel in [
        "events.jsonl",
        "manifest.json",
        "config/config.json",
        "db/messages.db",
        "local/message_reads.jsonl",
        "local/subscriptions.jsonl",
        "local/sync_checkpoints.jsonl",
    ] {
        assert!(cur.join(rel).is_file(), "missing {rel}");
    }
    for a in &fx.ws.agents {
        assert!(cur.join(format!("messages/{a}.jsonl")).is_file());
        assert!(cur.join(format!("config/identities/{a}.json")).is_file());
        assert!(cur.join(format!("config/context/{a}.md")).is_file());
    }
    // Byte-identical copies of the log.
    assert_eq!(
        std::fs::read(cur.join("events.jsonl")).unwrap(),
        std::fs::read(fx.ws.sync_dir.join("events.jsonl")).unwrap()
    );
    let raw: Value =
        serde_json::from_slice(&std::fs::read(cur.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(raw["version"], 1);
    assert_eq!(raw["repo_name"], "proj");
    assert!(raw["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(raw["thrum_version"].as_str().is_some());
    assert_eq!(raw["counts"]["events"], 240);
    assert_eq!(raw["counts"]["message_files"], fx.ws.agents.len());
    assert_eq!(raw["counts"]["local_tables"], 3);
    // config.json, one identity and one context file per agent, and the project's state.
    assert_eq!(raw["counts"]["config_files"], 2 + 2 * fx.ws.agents.len());
    assert_eq!(report["manifest"], raw);
    // Every file is listed with the right size and checksum (BLAKE3), and nothing else is
    // there.
    let m = Manifest::from_slice(&std::fs::read(cur.join("manifest.json")).unwrap()).unwrap();
    let on_disk = thrum_backup::fsx::walk_files(&cur).unwrap();
    assert_eq!(on_disk.len(), m.files.len() + 1);
    for f in &m.files {
        let d = thrum_backup::fsx::digest_file(&cur.join(&f.path)).unwrap();
        assert!(
            matches!(f.checksum, thrum_backup::fsx::Checksum::Blake3(_)),
            "{}",
            f.path
        );
        assert_eq!((d.size, &d.checksum), (f.size, &f.checksum), "{}", f.path);
    }
    let db = m.database.unwrap();
    assert_eq!(db.tables["messages"], 240);
    assert_eq!(m.local_tables["message_reads"], 240);
    // The local tables are thrum's JSONL: one object per row, keys = columns.
    let reads = std::fs::read_to_string(cur.join("local/message_reads.jsonl")).unwrap();
    let first: Value = serde_json::from_str(reads.lines().next().unwrap()).unwrap();
    for k in ["message_id", "session_id", "agent_id", "read_at"] {
        assert!(first.get(k).is_some(), "{k}");
    }
}

#[test]
fn second_create_archives_the_first_snapshot() {
    let mut fx = Fx::new();
    let first = fx.create();
    let first_manifest = std::fs::read(fx.current().join("manifest.json")).unwrap();
    fx.ws.add_messages(10).unwrap();
    let second = fx.create();
    let archived = second["archived"].as_str().expect("archived path");
    let name = std::path::Path::new(archived)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Named by the archived snapshot's time, thrum's format.
    let ts: chrono::DateTime<chrono::Utc> = first["manifest"]["timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(name, format!("{}.zip", ts.format("%Y-%m-%dT%H%M%S")));
    // The archive holds exactly the first snapshot.
    let mut zip = zip::ZipArchive::new(std::fs::File::open(archived).unwrap()).unwrap();
    let mut inner = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("manifest.json").unwrap(), &mut inner).unwrap();
    assert_eq!(inner, first_manifest);
    assert_eq!(second["manifest"]["counts"]["events"], 250);
    // Info-ZIP reads it too.
    if let Ok(out) = std::process::Command::new("unzip")
        .arg("-tq")
        .arg(archived)
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    fx.cmd().args(["verify", &name]).assert().success();
}

#[test]
fn same_second_creates_never_overwrite_an_archive() {
    let fx = Fx::new();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let r = fx.json(&["create", "--no-prune"]);
        ids.insert(r["manifest"]["snapshot_id"].as_str().unwrap().to_owned());
    }
    let names = fx.archive_names();
    assert_eq!(names.len(), 4, "{names:?}");
    // Every archive holds a different snapshot, and current/ the fifth.
    let mut archived = std::collections::BTreeSet::new();
    for n in &names {
        let m = thrum_backup::archive::read_manifest(&fx.archives().join(n))
            .unwrap()
            .unwrap();
        archived.insert(m.snapshot_id.unwrap());
    }
    assert_eq!(archived.len(), 4);
    assert!(archived.is_subset(&ids));
}

#[test]
fn database_copy_is_consistent_while_another_process_writes() {
    let fx = Fx::new();
    let db = fx.ws.db_path.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // A message and its read receipt commit together: a consistent copy has
                // exactly as many of each.
                conn.execute_batch(&format!(
                    "BEGIN; INSERT INTO messages (message_id, agent_id, session_id, created_at, body_format, body_content)
                       VALUES ('w-{i}', 'a', 's', 't', 'markdown', 'load');
                     INSERT INTO message_reads VALUES ('w-{i}', 's-w', 'a', 't'); COMMIT;"
                ))
                .unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            i
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..3 {
        let r = fx.create();
        let tables = &r["manifest"]["database"]["tables"];
        assert_eq!(
            tables["messages"], tables["message_reads"],
            "copy is not one instant"
        );
        let copy = fx.current().join("db/messages.db");
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // The local-table export comes from the same instant as the copy.
        let exported = std::fs::read_to_string(fx.current().join("local/message_reads.jsonl"))
            .unwrap()
            .lines()
            .count() as u64;
        assert_eq!(Some(exported), tables["message_reads"].as_u64());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);
}

#[test]
fn local_only_mode_keeps_the_a_sync_history_and_old_snapshots_restore_where_they_were_taken() {
    let fx = Fx::new();
    // thrum v0.10.6 keeps local-only mode at daemon.local_only (the sample sets it): the log
    // stays in the sync worktree, and the branch's history exists only in this .git.
    let r = fx.create();
    let m = &r["manifest"];
    assert_eq!(m["counts"]["events"], 240);
    assert_eq!(m["sync"]["local_only"], true, "{m}");
    assert_eq!(m["sync"]["bundle"], "git/a-sync.bundle");
    assert_eq!(m["sync"]["worktree"], true);
    let bundle = fx.current().join("git/a-sync.bundle");
    let listed = std::process::Command::new("git")
        .args(["bundle", "list-heads"])
        .arg(&bundle)
        .current_dir(fx.root())
        .output()
        .unwrap();
    let heads = String::from_utf8_lossy(&listed.stdout);
    assert!(
        heads.contains(m["sync"]["tip"].as_str().unwrap()),
        "{heads}"
    );
    assert!(heads.contains("refs/heads/a-sync"), "{heads}");
    // The v0.10.6 event journal in the thrum dir is captured as well, apart from the log.
    assert!(fx.current().join("thrum/events.jsonl").is_file());

    // A snapshot by this engine's first versions, taken with a top-level local_only: its log
    // came from the thrum dir, and goes back there.
    build_zip(
        &fx.archives().join("2026-02-27T120000.zip"),
        &[
            ("events.jsonl", &b"{\"n\":1}\n"[..]),
            ("messages/old-agent.jsonl", b"{\"n\":2}\n"),
            (
                "manifest.json",
                br#"{"version":1,"timestamp":"2026-02-27T12:00:00Z","engine":{"name":"thrum-backup","version":"0.1.0"},"local_only":true,"counts":{"events":1,"message_files":1}}"#,
            ),
        ],
    );
    let sync_before = std::fs::read(fx.ws.sync_dir.join("events.jsonl")).unwrap();
    fx.json(&["restore", "2026-02-27T120000.zip", "--yes"]);
    let thrum = fx.thrum();
    assert_eq!(
        std::fs::read(thrum.join("events.jsonl")).unwrap(),
        b"{\"n\":1}\n"
    );
    assert_eq!(
        std::fs::read(thrum.join("messages/old-agent.jsonl")).unwrap(),
        b"{\"n\":2}\n"
    );
    // The sync worktree was not part of that snapshot: left as it was.
    assert_eq!(
        std::fs::read(fx.ws.sync_dir.join("events.jsonl")).unwrap(),
        sync_before
    );
}

#[test]
fn messages_v2_and_a_missing_sync_worktree() {
    let fx = Fx::new();
    let v2 = fx.ws.sync_dir.join("messages-v2/shard-a");
    std::fs::create_dir_all(&v2).unwrap();
    std::fs::write(v2.join("x.jsonl"), b"{\"v\":2}\n").unwrap();
    fx.create();
    assert!(fx.current().join("messages-v2/shard-a/x.jsonl").is_file());

    // Without a sync worktree (not yet synced) the backup still succeeds, with a note.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join(".thrum/identities")).unwrap();
    std::fs::write(other.path().join(".thrum/identities/a.json"), b"{}").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--json", "create", "--repo"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no sync worktree"));
    // Default backup dir: .thrum/backup/<repo name>; outside git the name is "unknown".
    assert!(
        other
            .path()
            .join(".thrum/backup/unknown/current/config/identities/a.json")
            .is_file()
    );
}

/// Every entry of a zip, by name.
fn unzip_all(path: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            (String::from_utf8_lossy(f.name_raw()).into_owned(), data)
        })
        .collect()
}

#[test]
fn archives_reuse_unchanged_files_and_continue_appended_logs_byte_for_byte() {
    let mut fx = Fx::new();
    fx.json(&["create", "--no-prune"]);
    fx.ws.add_messages(300).unwrap();
    fx.json(&["create", "--no-prune"]); // archives snapshot 1: nothing earlier to reuse
    let snapshot_2 = tree(&fx.current());
    fx.ws.add_messages(300).unwrap();
    let r = fx.json(&["create", "--no-prune"]); // archives snapshot 2, reusing the archive of snapshot 1
    let reuse = &r["archive_reuse"];
    assert!(reuse["continued"].as_u64().unwrap() >= 1, "{reuse}");
    assert!(reuse["copied"].as_u64().unwrap() >= 1, "{reuse}");
    // The database changed: its unchanged chunks were copied from the chunk index, known
    // unchanged from the record of the pages the create of snapshot 2 wrote.
    assert!(reuse["rechunked"].as_u64().unwrap() >= 1, "{reuse}");
    assert_eq!(reuse["patched"], 1, "{reuse}");
    assert!(reuse["bytes_saved"].as_u64().unwrap() > 0, "{reuse}");
    assert_eq!(reuse["refused"], serde_json::json!([]), "{reuse}");
    let archived = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    assert_eq!(
        unzip_all(&archived),
        snapshot_2,
        "the reused archive differs from its snapshot"
    );
    fx.cmd().args(["verify", "--all"]).assert().success();
    if let Ok(out) = std::process::Command::new("unzip")
        .arg("-tq")
        .arg(&archived)
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    // Once more on top of a continued stream.
    fx.ws.add_messages(300).unwrap();
    let snapshot_3 = tree(&fx.current());
    let r = fx.json(&["create", "--no-prune"]);
    assert!(r["archive_reuse"]["continued"].as_u64().unwrap() >= 1);
    assert_eq!(r["archive_reuse"]["patched"], 1);
    let archived = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    assert_eq!(unzip_all(&archived), snapshot_3);

    // A page record that lies (it says no page changed) costs speed, never bytes: the
    // database entry it puts together does not have the manifest's CRC-32, so the database is
    // read after all, and the archive is exact.
    let record = fx
        .current()
        .parent()
        .unwrap()
        .join(".index/current-pages.json");
    let mut lie: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert!(!lie["changed"].as_array().unwrap().is_empty(), "{lie}");
    lie["changed"] = serde_json::json!([]);
    std::fs::write(&record, lie.to_string()).unwrap();
    fx.ws.add_messages(300).unwrap();
    let snapshot_lied = tree(&fx.current());
    let r = fx.json(&["create", "--no-prune"]);
    let reuse = &r["archive_reuse"];
    assert_eq!(reuse["patched"], 0, "{reuse}");
    assert!(reuse["rechunked"].as_u64().unwrap() >= 1, "{reuse}");
    assert_eq!(reuse["refused"], serde_json::json!([]), "{reuse}");
    let archived = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    assert_eq!(unzip_all(&archived), snapshot_lied);

    // A damaged earlier archive is never carried over: its data is compressed afresh. The
    // newest is the one just written (of several in one second, the highest `-N`).
    let newest = fx.archives().join(&archived);
    let (start, len) = {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&newest).unwrap()).unwrap();
        let i = zip.index_for_name("events.jsonl").unwrap();
        let f = zip.by_index_raw(i).unwrap();
        (f.data_start().unwrap(), f.compressed_size())
    };
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[(start + len / 2) as usize] ^= 0x20;
    std::fs::write(&newest, bytes).unwrap();
    fx.ws.add_messages(300).unwrap();
    let snapshot_4 = tree(&fx.current());
    let r = fx.json(&["create", "--no-prune"]);
    let archived = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    assert_eq!(unzip_all(&archived), snapshot_4);
    let refused = r["archive_reuse"]["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].as_str().unwrap().contains("earlier entry"),
        "{refused:?}"
    );
}

#[test]
fn unchanged_files_are_linked_from_the_previous_snapshot_not_copied() {
    use std::os::unix::fs::MetadataExt;
    let fx = Fx::new();
    fx.json(&["create", "--no-prune"]);
    let ino = |rel: &str| std::fs::metadata(fx.current().join(rel)).unwrap().ino();
    let a = &fx.ws.agents[0];
    let (same, changed) = (
        "config/config.json".to_owned(),
        format!("config/identities/{a}.json"),
    );
    let before = (ino(&same), ino(&changed));
    let snapshot_1 = tree(&fx.current());
    let identity = fx.ws.root.join(format!(".thrum/identities/{a}.json"));
    std::fs::write(&identity, br#"{"changed": true}"#).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    // The unchanged file is the same inode, now current/'s alone; the changed one is new.
    assert_eq!(ino(&same), before.0);
    assert_eq!(
        std::fs::metadata(fx.current().join(&same)).unwrap().nlink(),
        1
    );
    assert_ne!(ino(&changed), before.1);
    assert_eq!(
        std::fs::read(fx.current().join(&changed)).unwrap(),
        br#"{"changed": true}"#
    );
    // Linked files count as grown (by nothing), and their manifest entries say so.
    assert!(r["grown"]["files"].as_u64().unwrap() > 10, "{}", r["grown"]);
    // The archive of the first snapshot holds it exactly, and every snapshot verifies.
    let archived = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    assert_eq!(unzip_all(&archived), snapshot_1);
    fx.cmd().args(["verify", "--all"]).assert().success();
}

#[test]
fn hashes_of_unchanged_blocks_are_kept_from_the_previous_snapshot_and_a_bad_cache_is_ignored() {
    let mut fx = Fx::with_scale(crate::sample::Scale {
        agents: 2,
        messages: 3_000,
    });
    fx.json(&["create", "--no-prune"]);
    let cache = fx.repo_dir().join(".index/current-blocks.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    // Every file longer than one 64 KiB block has its blocks kept, the database copy too.
    let files = saved["files"].as_object().unwrap();
    assert!(files.contains_key("db/messages.db"), "{:?}", files.keys());
    assert!(files.contains_key("events.jsonl"), "{:?}", files.keys());

    // The next create hashes only what changed: blocks of grown logs and unchanged pages of
    // the database keep their hashes, and every checksum is still the file's own.
    fx.ws.add_messages(30).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    let reused = r["grown"]["blocks_reused"].as_u64().unwrap();
    assert!(reused > 10, "{}", r["grown"]);
    fx.cmd().args(["verify", "--all"]).assert().success();
    let text = fx.cmd().args(["create", "--no-prune"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("64 KiB blocks not hashed again"), "{text}");

    // A cache whose hashes are not the files' (damaged, or edited) is not used: its entries
    // no longer merge to the manifest's checksums. The snapshot is as right as ever.
    let mut bad: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    for entry in bad["files"].as_object_mut().unwrap().values_mut() {
        let blocks = entry["blocks"].as_str().unwrap().to_owned();
        let flipped = if blocks.starts_with('0') { "1" } else { "0" };
        entry["blocks"] = Value::String(format!("{flipped}{}", &blocks[1..]));
    }
    std::fs::write(&cache, serde_json::to_vec(&bad).unwrap()).unwrap();
    fx.ws.add_messages(30).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    assert_eq!(r["grown"]["blocks_reused"], 0, "{}", r["grown"]);
    fx.cmd().args(["verify", "--all"]).assert().success();
    // Nor is one that does not parse; the create saves a sound one again.
    std::fs::write(&cache, b"{ not json").unwrap();
    fx.ws.add_messages(30).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    assert_eq!(r["grown"]["blocks_reused"], 0, "{}", r["grown"]);
    fx.cmd().args(["verify", "--all"]).assert().success();
    fx.ws.add_messages(30).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    assert!(r["grown"]["blocks_reused"].as_u64().unwrap() > 10);
    fx.cmd().args(["verify", "--all"]).assert().success();
    // The prune after a create (the default) keeps `current/`'s caches: they are no archive's
    // chunk index.
    fx.ws.add_messages(30).unwrap();
    fx.json(&["create"]);
    assert!(cache.is_file());
    assert!(fx.repo_dir().join(".index/current-pages.json").is_file());
    fx.ws.add_messages(30).unwrap();
    let r = fx.json(&["create"]);
    assert!(
        r["grown"]["blocks_reused"].as_u64().unwrap() > 10,
        "{}",
        r["grown"]
    );
    assert!(
        r["archive_reuse"]["patched"].as_u64().unwrap() > 0,
        "{}",
        r["archive_reuse"]
    );
    fx.cmd().args(["verify", "--all"]).assert().success();
    let live = fx.state();
    fx.ws.add_messages(5).unwrap();
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(fx.state(), live);
}

#[test]
fn local_tables_whose_pages_did_not_change_are_linked_not_exported_again() {
    use std::os::unix::fs::MetadataExt;
    let mut fx = Fx::new();
    fx.json(&["create", "--no-prune"]);
    let current = fx.current();
    let ino = |rel: &str| std::fs::metadata(current.join(rel)).unwrap().ino();
    let (subs, reads) = ("local/subscriptions.jsonl", "local/message_reads.jsonl");
    let before = (ino(subs), ino(reads));
    let rows = |r: &Value, t: &str| r["manifest"]["local_tables"][t].as_u64().unwrap();
    // New messages add read receipts, not subscriptions: subscriptions is linked, and
    // message_reads, only appended to, is the earlier export grown by the new rows alone.
    let earlier_reads = std::fs::read(current.join(reads)).unwrap();
    let earlier_rows = earlier_reads.iter().filter(|&&b| b == b'\n').count() as u64;
    fx.ws.add_messages(20).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    assert_eq!(ino(subs), before.0, "subscriptions was exported again");
    assert_eq!(ino(reads), before.1, "message_reads was not grown in place");
    assert_eq!(r["grown"]["local_appended"], 1, "{r}");
    let now_reads = std::fs::read(current.join(reads)).unwrap();
    assert!(now_reads.starts_with(&earlier_reads) && now_reads.len() > earlier_reads.len());
    let lines = now_reads.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(rows(&r, "message_reads"), lines);
    assert_eq!(lines, earlier_rows + 20, "one read receipt per new message");
    let entry = r["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == reads)
        .unwrap()
        .clone();
    assert_eq!(
        entry["prefix"]["size"],
        earlier_reads.len() as u64,
        "{entry}"
    );
    // A read receipt changed among the earlier rows: exported whole again.
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    conn.execute(
        "UPDATE message_reads SET read_at = '2026-12-03T00:00:00Z' WHERE rowid = 1",
        [],
    )
    .unwrap();
    drop(conn);
    let r = fx.json(&["create", "--no-prune"]);
    assert_eq!(r["grown"]["local_appended"], 0, "{r}");
    assert_ne!(ino(reads), before.1);
    let text = std::fs::read_to_string(fx.current().join(reads)).unwrap();
    assert!(text.contains("2026-12-03T00:00:00Z"), "{text}");
    fx.cmd().args(["verify", "--all"]).assert().success();
    let subscribed = rows(&r, "subscriptions");
    assert!(subscribed > 0);
    fx.cmd().args(["verify", "--all"]).assert().success();
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    conn.execute(
        "INSERT INTO subscriptions (session_id, scope_type, scope_value, created_at) VALUES ('s-new', 'thread', 't-new', '2026-12-02T09:00:00Z')",
        [],
    )
    .unwrap();
    drop(conn);
    // A subscription added: its export grows by the new row, in place.
    let earlier_subs = std::fs::read(fx.current().join(subs)).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    assert_eq!(ino(subs), before.0, "subscriptions was not grown in place");
    assert_eq!(r["grown"]["local_appended"], 1, "{r}");
    assert!(
        std::fs::read(fx.current().join(subs))
            .unwrap()
            .starts_with(&earlier_subs)
    );
    assert_eq!(rows(&r, "subscriptions"), subscribed + 1);
    let text = std::fs::read_to_string(fx.current().join(subs)).unwrap();
    assert!(text.contains("\"t-new\""), "{text}");
    fx.cmd().args(["verify", "--all"]).assert().success();
    // A linked export that no longer matches its manifest (damage in current/) is exported
    // again, not carried over.
    let linked = ino(subs);
    let path = fx.current().join(subs);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    fx.ws.add_messages(5).unwrap();
    fx.json(&["create", "--no-prune"]);
    assert_ne!(ino(subs), linked);
    assert_eq!(
        std::fs::read_to_string(fx.current().join(subs)).unwrap(),
        text
    );
    let live = fx.state();
    fx.ws.add_messages(5).unwrap();
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(fx.state(), live);
}

#[test]
fn logs_that_only_grew_are_grown_from_the_previous_snapshot() {
    let mut fx = Fx::with_scale(crate::sample::Scale {
        agents: 3,
        messages: 1_500,
    });
    fx.json(&["create", "--no-prune"]);
    let snapshot_1 = tree(&fx.current());
    fx.ws.add_messages(200).unwrap();
    // A copy in current/ that no longer matches the workspace's start (damage, or a log that
    // was rewritten) is copied afresh, never grown.
    let rewritten = fx
        .ws
        .sync_dir
        .join("messages")
        .join(format!("{}.jsonl", fx.ws.agents[1]));
    let mut log = std::fs::read(&rewritten).unwrap();
    log[10] ^= 0x01;
    std::fs::write(&rewritten, &log).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    // The logs and streams that only grew were grown; the rewritten one was copied.
    let prefixed = |rel: &str| {
        r["manifest"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == rel)
            .unwrap_or_else(|| panic!("{rel} not in the manifest"))
            .get("prefix")
            .is_some()
    };
    assert!(prefixed("events.jsonl"));
    for (i, a) in fx.ws.agents.iter().enumerate() {
        assert_eq!(prefixed(&format!("messages/{a}.jsonl")), i != 1, "{a}");
    }
    assert!(r["grown"]["files"].as_u64().unwrap() >= 3, "{}", r["grown"]);
    assert!(r["grown"]["bytes_shared"].as_u64().unwrap() > 100_000);
    // The archive of the first snapshot holds it as it was, not the grown files.
    let archived = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    assert_eq!(unzip_all(&archived), snapshot_1);
    // The new snapshot is the workspace, byte for byte.
    let mut rels = vec!["events.jsonl".to_owned()];
    rels.extend(fx.ws.agents.iter().map(|a| format!("messages/{a}.jsonl")));
    for rel in &rels {
        let src = fx.ws.sync_dir.join(rel);
        assert_eq!(
            std::fs::read(fx.current().join(rel)).unwrap(),
            std::fs::read(&src).unwrap(),
            "{rel}"
        );
    }
    fx.cmd().args(["verify", "--all"]).assert().success();
    // The manifest says what each grown file begins with: the first snapshot's whole copy.
    let before: Value = serde_json::from_slice(&snapshot_1["manifest.json"]).unwrap();
    let now: Value =
        serde_json::from_slice(&std::fs::read(fx.current().join("manifest.json")).unwrap())
            .unwrap();
    let entry = |m: &Value, rel: &str| {
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == rel)
            .cloned()
            .unwrap()
    };
    let rewritten_rel = format!("messages/{}.jsonl", fx.ws.agents[1]);
    for rel in &rels {
        let (old, new) = (entry(&before, rel), entry(&now, rel));
        if *rel == rewritten_rel {
            assert!(new.get("prefix").is_none(), "{new}");
        } else {
            assert_eq!(new["prefix"]["size"], old["size"], "{rel}");
            assert_eq!(new["prefix"]["blake3"], old["blake3"], "{rel}");
        }
    }
    let snapshot_2 = tree(&fx.current());
    // A copy in current/ that is also linked from elsewhere (a `cp -al` of the backup dir)
    // is never grown: the other name would change too.
    let elsewhere = fx.tmp.path().join("linked-elsewhere.jsonl");
    std::fs::hard_link(fx.current().join("events.jsonl"), &elsewhere).unwrap();
    let kept = std::fs::read(&elsewhere).unwrap();
    fx.ws.add_messages(20).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    let grown: Vec<&str> = r["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("prefix").is_some())
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(!grown.contains(&"events.jsonl"), "{grown:?}");
    assert!(grown.len() >= 3, "{grown:?}");
    assert_eq!(r["grown"]["files"], grown.len(), "{}", r["grown"]);
    assert_eq!(std::fs::read(&elsewhere).unwrap(), kept);
    // Its archive continued the first archive's streams of the grown logs (known to begin
    // with them from the manifest, not hashed again) and holds the second snapshot exactly.
    assert!(
        r["archive_reuse"]["continued"].as_u64().unwrap() >= 3,
        "{}",
        r["archive_reuse"]
    );
    let archived = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    assert_eq!(unzip_all(&archived), snapshot_2);
    std::fs::remove_file(&elsewhere).unwrap();
    // Unchanged since: all of them are shared again, events.jsonl too (and said so), and so is
    // every other file copied from the workspace (small ones too: linked, not copied); the
    // snapshot verifies.
    let r = fx.json(&["create", "--no-prune"]);
    let all = r["grown"]["files"].as_u64().unwrap();
    let from_workspace: Vec<&Value> = r["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let p = f["path"].as_str().unwrap();
            !(p.starts_with("db/") || p.starts_with("local/") || p.starts_with("git/"))
        })
        .collect();
    assert!(all > grown.len() as u64, "{}", r["grown"]);
    assert_eq!(all, from_workspace.len() as u64, "{}", r["grown"]);
    for f in &from_workspace {
        assert_eq!(f["prefix"]["size"], f["size"], "{f}");
    }
    let text = fx.cmd().args(["create", "--no-prune"]).output().unwrap();
    assert!(text.status.success());
    assert!(
        String::from_utf8_lossy(&text.stdout).contains(&format!(
            "{all} files unchanged or only appended to: linked from the previous snapshot"
        )),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
    fx.cmd().args(["verify", "--all"]).assert().success();
}

#[test]
fn a_create_that_fails_after_growing_logs_cuts_them_back() {
    let mut fx = Fx::with_scale(crate::sample::Scale {
        agents: 3,
        messages: 1_500,
    });
    fx.json(&["create", "--no-prune"]);
    let before = tree(&fx.current());
    fx.ws.add_messages(200).unwrap();
    // The database fails its check while the logs are being grown from current/.
    let db = &fx.ws.db_path;
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    drop(conn);
    let mut bytes = std::fs::read(db).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 2..len / 2 + 8192] {
        *b = 0x5a;
    }
    std::fs::write(db, bytes).unwrap();
    let out = fx
        .cmd()
        .args(["create", "--no-prune", "--check-db"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("messages.db"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // current/ is the previous snapshot again, byte for byte, and verifies.
    assert_eq!(tree(&fx.current()), before);
    fx.cmd().args(["verify", "--all"]).assert().success();

    // A kill after growing (simulated: a grown file and the unfinished stage left behind):
    // the next command cuts the file back before anything reads current/.
    let grown = fx.current().join("events.jsonl");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&grown)
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"type\":\"appended by a killed create\"}\n").unwrap();
    drop(f);
    std::fs::create_dir_all(fx.repo_dir().join(".tmp/stage-0000dead")).unwrap();
    let status = fx.json(&["status"]);
    assert!(
        status.to_string().contains("cut current/events.jsonl back"),
        "{status}"
    );
    assert_eq!(tree(&fx.current()), before);
    fx.cmd().args(["verify"]).assert().success();
}

#[test]
fn a_create_that_fails_or_dies_after_updating_the_database_copy_in_place_puts_it_back() {
    let mut fx = Fx::with_scale(crate::sample::Scale {
        agents: 3,
        messages: 1_500,
    });
    fx.json(&["create", "--no-prune"]);
    let before = tree(&fx.current());
    let db = fx.current().join("db/messages.db");
    let tmp_files = |fx: &Fx| {
        std::fs::read_dir(fx.repo_dir().join(".tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    fx.ws.add_messages(200).unwrap();
    const FAULT: &str = "THRUM_BACKUP_FAULT_CREATE_BEFORE_PUBLISH";

    // Failing after current/'s database copy was brought up to date in place (and its logs
    // grown): the failure path puts both back before it exits.
    let out = fx
        .cmd()
        .args(["create", "--no-prune"])
        .env(FAULT, "fail")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(tree(&fx.current()), before);
    let db_work = |fx: &Fx| {
        std::fs::read_dir(fx.repo_dir().join(".tmp"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("db-pages"))
    };
    assert!(!db_work(&fx), "the database copy's work files were left");
    // (The unpublished stage goes with the next command's recovery, as after any failed
    // publish.)
    fx.cmd().args(["verify", "--all"]).assert().success();
    assert_eq!(tmp_files(&fx), 0, "work files left in .tmp");

    // Dying at that instant: current/'s copy is left changed, with its undo file armed, and
    // the next command puts it back before anything reads current/.
    let old_db = std::fs::read(&db).unwrap();
    let out = fx
        .cmd()
        .args(["create", "--no-prune"])
        .env(FAULT, "exit")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_ne!(
        std::fs::read(&db).unwrap(),
        old_db,
        "the copy was not changed in place"
    );
    assert!(fx.repo_dir().join(".tmp/db-pages.undo").is_file());
    let status = fx.json(&["status"]);
    assert!(
        status
            .to_string()
            .contains("put current/db/messages.db back as its snapshot records it"),
        "{status}"
    );
    assert_eq!(tree(&fx.current()), before);
    assert_eq!(tmp_files(&fx), 0, "work files left in .tmp");
    fx.cmd().args(["verify", "--all"]).assert().success();

    // Then a create writes only the pages that changed, and its snapshot restores.
    let report = fx.json(&["create", "--no-prune"]);
    let (pages, written) = (
        report["grown"]["database_pages"].as_u64().unwrap(),
        report["grown"]["database_pages_written"].as_u64().unwrap(),
    );
    assert!(
        written > 0 && written < pages / 2,
        "{written} of {pages} pages"
    );
    assert_eq!(tmp_files(&fx), 0, "work files left in .tmp");
    fx.cmd().args(["verify", "--all"]).assert().success();
    let live = fx.state();
    fx.ws.add_messages(10).unwrap();
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(fx.state(), live);
}
