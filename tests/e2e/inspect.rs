//! Looking inside backups: `ls`, `dump`, `restore --dry-run`, and the CLI's completions and
//! manual page.

use std::process::Command;

use serde_json::Value;

use crate::harness::{BIN, Fx, stderr};

fn paths(listing: &Value) -> Vec<String> {
    listing["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ls_lists_current_and_an_archive_from_its_central_directory_and_narrows_by_path() {
    let fx = Fx::new();
    fx.create();
    let created = fx.create();
    let archive = created["archived"].as_str().unwrap().to_owned();
    let name = std::path::Path::new(&archive)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let current = fx.json(&["ls"]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fx.current().join("manifest.json")).unwrap())
            .unwrap();
    let listed = paths(&current);
    for f in manifest["files"].as_array().unwrap() {
        assert!(
            listed.contains(&f["path"].as_str().unwrap().to_owned()),
            "{f}"
        );
    }
    let cfg = current["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "config/config.json")
        .unwrap();
    assert_eq!(cfg["secret"], true);
    assert!(cfg["checksum"].as_str().unwrap().starts_with("blake3:"));

    // An archive, by name and by path, narrowed by a folder and a glob.
    let by_name = fx.json(&["ls", &name, "config/identities", "messages/*.jsonl"]);
    let by_path = fx.json(&["ls", &archive, "config/identities", "messages/*.jsonl"]);
    assert_eq!(paths(&by_name), paths(&by_path));
    let p = paths(&by_name);
    assert!(!p.is_empty());
    assert!(
        p.iter().all(|p| p.starts_with("config/identities/")
            || (p.starts_with("messages/")
                && p.ends_with(".jsonl")
                && p.matches('/').count() == 1)),
        "{p:?}"
    );
    assert!(by_name["files"][0]["modified"].is_string());

    // Bad input: a clear error, exit 1.
    for (args, says) in [
        (vec!["ls", "current", "no/such/file"], "nothing matches"),
        (vec!["ls", "current", "../escape"], "inside the snapshot"),
        (vec!["ls", "2020-01-01T000000.zip"], "2020-01-01T000000.zip"),
    ] {
        let out = fx.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn dump_streams_one_file_checked_and_says_when_it_does_not_match() {
    let fx = Fx::new();
    fx.create();
    let created = fx.create();
    let archive = created["archived"].as_str().unwrap().to_owned();
    let path = "config/identities";
    let id = std::fs::read_dir(fx.current().join(path))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let file = format!("{path}/{id}");
    let want = std::fs::read(fx.current().join(&file)).unwrap();
    for snapshot in ["current", archive.as_str()] {
        let out = fx.cmd().args(["dump", snapshot, &file]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(out.stdout, want, "dump {snapshot} {file}");
    }

    // A folder, a missing file: refused, named.
    let out = fx.cmd().args(["dump", "current", path]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a folder"), "{}", stderr(&out));
    let out = fx
        .cmd()
        .args(["dump", "current", "config/nope.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no file"), "{}", stderr(&out));

    // The bytes changed behind the manifest's back: written, then exit 3 and said on stderr.
    let mut damaged = want.clone();
    damaged[0] ^= 0x20;
    std::fs::write(fx.current().join(&file), &damaged).unwrap();
    let out = fx.cmd().args(["dump", "current", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(out.stdout, damaged);
    assert!(
        stderr(&out).contains("does not match its manifest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dry_run_lists_what_a_restore_would_change_and_changes_nothing() {
    let fx = Fx::new();
    fx.create();
    let ctx = fx.thrum().join("context");
    let gone = std::fs::read_dir(&ctx)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "md"))
        .unwrap()
        .path();
    let gone_name = gone.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::remove_file(&gone).unwrap();
    std::fs::write(ctx.join("new-since.md"), "written after the backup\n").unwrap();
    let before = fx.state();
    let archives = fx.archive_names();

    let r = fx.json(&["restore", "--dry-run"]);
    let changes = r["dry_run"].as_array().expect("the planned changes");
    let action = |name: &str| {
        changes
            .iter()
            .find(|c| c["path"].as_str().unwrap().ends_with(name))
            .map(|c| c["action"].as_str().unwrap().to_owned())
    };
    assert_eq!(action(&gone_name).as_deref(), Some("create"), "{r}");
    assert_eq!(action("new-since.md").as_deref(), Some("move out"), "{r}");
    // Files the workspace already holds exactly are left alone, so they are no change.
    assert_eq!(action("config.json"), None, "{r}");
    assert!(r["unchanged"].as_u64().unwrap() > 10, "{r}");
    assert_eq!(r["database"], true);
    assert!(r["pre_restore"].is_null(), "{r}");
    // Nothing changed: not the workspace, not the backups.
    assert!(fx.state() == before, "a dry run changed the workspace");
    assert_eq!(fx.archive_names(), archives);
    // Text too, without --yes: a dry run asks nothing.
    let out = fx.cmd().args(["restore", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Nothing was changed"), "{text}");
    assert!(text.contains(&gone_name), "{text}");
}

#[test]
fn completions_for_every_shell_and_the_manual_page() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("replica"),
            "{shell}: no subcommand in the script"
        );
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH thrum-backup 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for page in [
        "thrum-backup.1",
        "thrum-backup-restore.1",
        "thrum-backup-replica-sync.1",
    ] {
        assert!(dir.path().join(page).is_file(), "no {page}");
    }
}

fn first_file(dir: &std::path::Path, ext: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    names.sort();
    names.remove(0)
}

#[test]
fn a_partial_restore_puts_back_only_what_it_names_in_one_transaction() {
    let fx = Fx::new();
    fx.create();
    let snapshot = fx.state();
    let ids = fx.thrum().join("identities");
    let id = first_file(&ids, ".json");
    let msgs = fx.ws.sync_dir.join("messages");
    let agent = first_file(&msgs, ".jsonl");
    let ctx_dir = fx.thrum().join("context");
    let ctx_file = first_file(&ctx_dir, ".md");
    // The accident: an identity and a message log damaged, a context file edited, a new file.
    std::fs::write(ids.join(&id), "{}").unwrap();
    std::fs::write(msgs.join(&agent), "").unwrap();
    std::fs::write(ctx_dir.join(&ctx_file), "edited since\n").unwrap();
    std::fs::write(ctx_dir.join("new-since.md"), "new\n").unwrap();
    let before = fx.state();
    let archives = fx.archive_names().len();

    // A pattern naming nothing in the snapshot: refused before anything changes.
    let out = fx
        .cmd()
        .args([
            "restore",
            "--yes",
            "--include",
            "config/identities/nobody.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing in the snapshot matches"),
        "{}",
        stderr(&out)
    );
    let out = fx
        .cmd()
        .args(["restore", "--yes", "--include", "../../etc/passwd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        fx.state() == before,
        "a refused partial restore changed the workspace"
    );
    assert_eq!(fx.archive_names().len(), archives);

    let r = fx.json(&[
        "restore",
        "--yes",
        "--include",
        &format!("config/identities/{id}"),
        &format!("messages/{agent}"),
    ]);
    assert_eq!(r["restored"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["removed"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(r["database"], false, "{r}");
    let after = fx.state();
    let key_id = format!("thrum/identities/{id}");
    let key_msg = format!("sync/messages/{agent}");
    assert!(after.files.contains_key(&key_id) && after.files.contains_key(&key_msg));
    for (k, v) in &after.files {
        let want = if *k == key_id || *k == key_msg {
            snapshot.files.get(k)
        } else {
            before.files.get(k)
        };
        assert!(
            Some(v) == want,
            "{k} is not as it should be after the partial restore"
        );
    }
    assert_eq!(after.files.len(), before.files.len());
    assert_eq!(
        after.rows, before.rows,
        "the database is not part of this restore"
    );
    // The replaced live files were saved first, and only they: a partial safety snapshot,
    // which a restore of it puts back exactly, moving nothing out.
    assert_eq!(fx.archive_names().len(), archives + 1);
    let pre = r["pre_restore"].as_str().unwrap().to_owned();
    let listing = fx.json(&["ls", &pre]);
    assert_eq!(
        paths(&listing),
        vec![
            format!("config/identities/{id}"),
            "manifest.json".to_owned(),
            format!("messages/{agent}"),
        ],
        "{listing}"
    );
    let undo = fx.json(&["restore", &pre, "--yes"]);
    assert_eq!(undo["removed"].as_array().unwrap().len(), 0, "{undo}");
    assert!(
        fx.state() == before,
        "restoring the safety snapshot did not undo the partial restore"
    );
    fx.json(&[
        "restore",
        "--yes",
        "--include",
        &format!("config/identities/{id}"),
        &format!("messages/{agent}"),
    ]);
    assert!(
        fx.state() == after,
        "the partial restore again gives the same workspace"
    );

    // The database alone, with db/: the rows come back, the files stay.
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    conn.execute_batch("DELETE FROM message_reads;").unwrap();
    drop(conn);
    assert!(fx.state().rows != snapshot.rows);
    let r = fx.json(&["restore", "--yes", "--include", "db/"]);
    assert_eq!(r["database"], true, "{r}");
    assert!(
        fx.state().rows == snapshot.rows,
        "the rows did not come back"
    );
    assert_eq!(
        std::fs::read(ctx_dir.join(&ctx_file)).unwrap(),
        b"edited since\n"
    );
}

#[test]
fn restore_into_a_target_folder_lays_the_snapshot_out_and_leaves_the_workspace_alone() {
    let fx = Fx::new();
    fx.create();
    std::fs::write(fx.thrum().join("context/new-since.md"), "new\n").unwrap();
    let before = fx.state();
    let look = fx.tmp.path().join("look");
    let r = fx.json(&["restore", "--target", &look.to_string_lossy()]);
    assert!(r["restored"].as_array().unwrap().len() > 10, "{r}");
    assert!(fx.state() == before, "--target changed the workspace");
    // Laid out as the workspace: .thrum/ and the sync worktree's files, secrets private.
    let config = look.join(".thrum/config.json");
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(fx.current().join("config/config.json")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let rel = fx.ws.sync_dir.strip_prefix(fx.root()).unwrap();
    assert!(look.join(rel).join("events.jsonl").is_file());
    assert!(look.join(".thrum/var/messages.db").is_file());
    assert!(!look.join(".thrum/context/new-since.md").exists());
    // Never over anything.
    let out = fx
        .cmd()
        .args(["restore", "--target"])
        .arg(&look)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("new or empty folder"),
        "{}",
        stderr(&out)
    );
    // Partial into a target: only what is named.
    let some = fx.tmp.path().join("some");
    let r = fx.json(&[
        "restore",
        "--target",
        &some.to_string_lossy(),
        "--include",
        "config/identities",
    ]);
    let written = r["restored"].as_array().unwrap();
    assert!(!written.is_empty());
    assert!(
        written
            .iter()
            .all(|p| p.as_str().unwrap().starts_with(".thrum/identities/")),
        "{r}"
    );
}

#[test]
fn diff_and_find_answer_what_changed_and_when_it_disappeared() {
    let fx = Fx::new();
    fx.create();
    let msgs = fx.ws.sync_dir.join("messages");
    let agent = first_file(&msgs, ".jsonl");
    let agent_name = agent.trim_end_matches(".jsonl").to_owned();
    let mut log = std::fs::read(msgs.join(&agent)).unwrap();
    log.extend_from_slice(
        br#"{"type":"message.create","event_id":"ev-new-1","message_id":"msg-new-1","agent_id":"x","body":{"content":"hello"}}"#,
    );
    log.push(b'\n');
    std::fs::write(msgs.join(&agent), log).unwrap();
    std::fs::write(
        fx.thrum().join("identities/newcomer.json"),
        r#"{"name":"newcomer"}"#,
    )
    .unwrap();
    let ctx_dir = fx.thrum().join("context");
    let ctx_file = first_file(&ctx_dir, ".md");
    std::fs::remove_file(ctx_dir.join(&ctx_file)).unwrap();
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    let reads: i64 = conn
        .query_row("SELECT COUNT(*) FROM message_reads", [], |r| r.get(0))
        .unwrap();
    assert!(reads > 0);
    conn.execute_batch(
        "DELETE FROM message_reads WHERE rowid IN (SELECT rowid FROM message_reads LIMIT 1)",
    )
    .unwrap();
    drop(conn);
    let created = fx.create();
    let archive = created["archived"].as_str().unwrap().to_owned();

    let d = fx.json(&["diff", &archive, "current"]);
    let messages = d["messages"].as_array().unwrap();
    let log = messages
        .iter()
        .find(|m| m["path"] == format!("messages/{agent}"))
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(log["added"], 1, "{d}");
    assert_eq!(log["removed"], 0, "{d}");
    let reads = d["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "message_reads")
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(reads["removed"], 1, "{d}");
    assert_eq!(
        d["identities_added"],
        serde_json::json!(["newcomer.json"]),
        "{d}"
    );
    assert_eq!(d["context_removed"], serde_json::json!([ctx_file]), "{d}");
    assert!(d["unchanged"].as_u64().unwrap() > 0);
    // The same in text.
    let out = fx.cmd().args(["diff", &archive]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 messages new"), "{text}");

    // find: the new message only in current; the context file gone since current.
    let f = fx.json(&["find", "--message", "msg-new-1"]);
    assert_eq!(f["holding"].as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f["first_seen"], "current", "{f}");
    let f = fx.json(&["find", &format!("config/context/{ctx_file}")]);
    assert_eq!(
        f["last_seen"].as_str().unwrap(),
        archive.rsplit('/').next().unwrap(),
        "{f}"
    );
    assert_eq!(f["gone_since"], "current", "{f}");
    let f = fx.json(&["find", "--agent", &agent_name]);
    assert_eq!(f["holding"].as_array().unwrap().len(), 2, "{f}");
    assert!(f["gone_since"].is_null(), "{f}");
    // Nothing found: said, exit 1.
    let out = fx
        .cmd()
        .args(["find", "--message", "msg-never"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("in none of the"));
    let out = fx.cmd().args(["diff", "no-such.zip"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_partial_restore_from_an_archive_extracts_only_what_it_puts_back() {
    let fx = Fx::new();
    fx.create();
    let created = fx.create();
    let archive = created["archived"].as_str().unwrap().to_owned();
    let ids = fx.thrum().join("identities");
    let id = first_file(&ids, ".json");
    let want = std::fs::read(ids.join(&id)).unwrap();
    std::fs::write(ids.join(&id), "{}").unwrap();
    let before = fx.state();
    let r = fx.json(&[
        "restore",
        &archive,
        "--yes",
        "--include",
        &format!("config/identities/{id}"),
    ]);
    assert_eq!(r["restored"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(std::fs::read(ids.join(&id)).unwrap(), want);
    // Everything else as it was.
    let after = fx.state();
    let key = format!("thrum/identities/{id}");
    for (k, v) in &after.files {
        if *k != key {
            assert!(before.files.get(k) == Some(v), "{k} changed");
        }
    }
    // The snapshot's other files were used for nothing, and said so.
    let left = r["snapshot_files"]["left"].as_u64().unwrap_or(0);
    assert!(left > 10, "{r}");
}

#[test]
fn a_partial_restore_that_fails_midway_puts_everything_back() {
    let fx = Fx::new();
    fx.create();
    let ids = fx.thrum().join("identities");
    let msgs = fx.ws.sync_dir.join("messages");
    let (id, agent) = (first_file(&ids, ".json"), first_file(&msgs, ".jsonl"));
    std::fs::write(ids.join(&id), "{}").unwrap();
    std::fs::write(msgs.join(&agent), "").unwrap();
    let live = fx.state();
    for after in [0, 1] {
        let out = fx
            .cmd()
            .env("THRUM_BACKUP_FAULT_RESTORE_AFTER", after.to_string())
            .args(["restore", "--yes", "--include"])
            .arg(format!("config/identities/{id}"))
            .arg(format!("messages/{agent}"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("put back as it was"),
            "{}",
            stderr(&out)
        );
        assert!(
            fx.state() == live,
            "a failed partial restore changed the workspace (fault at {after})"
        );
    }
}

#[test]
fn a_damaged_archive_is_refused_by_ls_dump_diff_and_a_partial_restore() {
    let fx = Fx::new();
    fx.create();
    let bad = fx.archives();
    std::fs::create_dir_all(&bad).unwrap();
    let junk = bad.join("2020-01-01T000000.zip");
    std::fs::write(&junk, b"PK\x03\x04 this is not a zip archive at all").unwrap();
    let name = "2020-01-01T000000.zip";
    let before = fx.state();
    for args in [
        vec!["ls", name],
        vec!["dump", name, "events.jsonl"],
        vec!["diff", name, "current"],
        vec!["restore", name, "--yes", "--include", "config/"],
        vec!["restore", name, "--dry-run"],
    ] {
        let out = fx.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(name), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not a valid zip"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(
        fx.state() == before,
        "a refused command changed the workspace"
    );
    // `find` searches the rest and says what it could not read.
    let out = fx.cmd().args(["find", "config/"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(name), "{}", stderr(&out));
}
