//! Everything a thrum v0.10.6 workspace holds, restored so that thrum's daemon accepts it:
//! on the same machine and on a fresh clone, with secrets kept private, a running daemon
//! respected, unknown files reported and the event sequence checked.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;
use serde_json::Value;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// thrum v0.10.6's health check of the sync worktree (`internal/sync/branch.go`,
/// `isHealthyWorktree`), written here from its four conditions: a `.git` file, listed by
/// `git worktree list`, HEAD on a-sync, sparse patterns with the v0.10.6 paths. The daemon
/// removes a sync directory that fails it.
fn thrum_would_keep(repo: &Path, sync: &Path) -> Result<(), String> {
    let dot_git = sync.join(".git");
    if !dot_git.is_file() {
        return Err("no .git file".into());
    }
    let list = git(repo, &["worktree", "list", "--porcelain"]);
    let want = std::fs::canonicalize(sync).unwrap();
    let listed = list
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .any(|p| std::fs::canonicalize(p).ok().as_ref() == Some(&want));
    if !listed {
        return Err(format!("not listed: {list}"));
    }
    let head = git(sync, &["rev-parse", "--abbrev-ref", "HEAD"]);
    if head != "a-sync" {
        return Err(format!("HEAD is {head}"));
    }
    let text = std::fs::read_to_string(&dot_git).unwrap();
    let gitdir = PathBuf::from(text.trim().strip_prefix("gitdir: ").unwrap());
    let sparse = std::fs::read_to_string(gitdir.join("info/sparse-checkout")).unwrap_or_default();
    for p in [
        "events.jsonl",
        "messages",
        "state/",
        "messages-v2/",
        "receipts/",
    ] {
        if !sparse.contains(p) {
            return Err(format!("sparse patterns lack {p}: {sparse}"));
        }
    }
    Ok(())
}

fn files_of(m: &Value) -> Vec<(String, Value)> {
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

#[test]
fn every_path_of_a_v0_10_6_workspace_is_captured_private_and_restored_with_its_mode() {
    let fx = Fx::new();
    // A file thrum v0.10.6 does not write, in each place, and a folder where a log belongs.
    std::fs::write(fx.thrum().join("var/new-feature.json"), b"{}").unwrap();
    std::fs::write(fx.ws.sync_dir.join("notes.txt"), b"x").unwrap();
    std::fs::create_dir_all(fx.ws.sync_dir.join("messages/odd.jsonl")).unwrap();
    let r = fx.create();
    let m = &r["manifest"];
    let cur = fx.current();
    let files = files_of(m);
    let has = |p: &str| files.iter().any(|(f, _)| f == p);
    for p in [
        "thrum/var/peers.json",
        "thrum/.env",
        "thrum/var/tsnet/tailscaled.state",
        "thrum/events.jsonl",
        "thrum/legacy_ingested",
        "thrum/archive/msg-archived-0001.jsonl",
        "thrum/var/guard-daemon.json",
        "thrum/role_templates/coder.md",
        "state/bridge-groups/ops.json",
        "git/a-sync.bundle",
        "worktrees/proj-feature/identities/feature-agent.json",
        "worktrees/proj-feature/context/feature-agent.md",
    ] {
        assert!(has(p), "{p} not captured");
    }
    for a in &fx.ws.agents {
        for p in [
            format!("messages-v2/{a}.jsonl"),
            format!("receipts/{a}.jsonl"),
            format!("state/agents/{a}.json"),
        ] {
            assert!(has(&p), "{p} not captured");
        }
    }
    // Runtime files and what thrum makes again are never captured.
    for (f, _) in &files {
        for never in [
            "thrum.pid",
            "ws.port",
            "thrum.lock",
            "daemon.log",
            "llms.txt",
            "strategies",
        ] {
            assert!(!f.contains(never), "{f} captured");
        }
    }
    // Secrets: marked, private in current/ and in the archive made of it.
    for (f, entry) in &files {
        let secret = entry.get("secret") == Some(&Value::Bool(true));
        let want = matches!(
            f.as_str(),
            "config/config.json" | "thrum/.env" | "thrum/var/peers.json"
        ) || f.starts_with("thrum/var/tsnet/");
        assert_eq!(secret, want, "{f}");
        assert_eq!(mode(&cur.join(f)), 0o600, "{f} in current/");
    }
    assert_eq!(mode(&fx.repo_dir()), 0o700);
    // Unknown files and odd entries are reported, not silently passed over.
    let unknown: Vec<&str> = m["unknown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(unknown, vec!["T/var/new-feature.json", "S/notes.txt"]);
    assert!(
        m["skipped"][0]
            .as_str()
            .unwrap()
            .contains("S/messages/odd.jsonl (a directory)"),
        "{}",
        m["skipped"]
    );
    let status = fx.json(&["status"]);
    assert_eq!(status["last_backup"]["unknown_files"], 2);
    assert_eq!(status["last_backup"]["secrets"], "included");
    // (Not backed up, so not restored: out of the way of the round trip below.)
    std::fs::remove_dir(fx.ws.sync_dir.join("messages/odd.jsonl")).unwrap();
    std::fs::remove_file(fx.ws.sync_dir.join("notes.txt")).unwrap();
    std::fs::remove_file(fx.thrum().join("var/new-feature.json")).unwrap();
    // The database came first, the streams after it.
    assert_eq!(m["capture"]["order"], "database-then-streams");

    // The next create archives it: every entry keeps its mode, secrets 0600.
    let second = fx.create();
    let zip_path = PathBuf::from(second["archived"].as_str().unwrap());
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    for (f, entry) in &files {
        let mode = zip.by_name(f).unwrap().unix_mode().unwrap() & 0o777;
        let secret = entry.get("secret") == Some(&Value::Bool(true));
        match entry["mode"].as_u64() {
            Some(live) if !secret => assert_eq!(mode as u64, live, "{f} in the archive"),
            // Secrets, and what has no live mode (the database copy, exports): private.
            _ => assert_eq!(mode, 0o600, "{f} in the archive"),
        }
    }

    // Lose everything; restore brings back every file, byte for byte and mode for mode.
    let before = fx.state();
    let feature_identity = fx
        .ws
        .other_worktree
        .join(".thrum/identities/feature-agent.json");
    let feature_before = std::fs::read(&feature_identity).unwrap();
    fx.wipe();
    std::fs::remove_file(&feature_identity).unwrap();
    let restored = fx.json(&["restore", "--yes"]);
    assert_eq!(fx.state(), before);
    assert_eq!(std::fs::read(&feature_identity).unwrap(), feature_before);
    assert_eq!(mode(&feature_identity), 0o600);
    assert_eq!(mode(&fx.thrum().join("var/tsnet")), 0o700);
    assert_eq!(restored["sync_worktree_rebuilt"], false);
    thrum_would_keep(fx.root(), &fx.ws.sync_dir).unwrap();
    // The runtime files were left as they were, never restored.
    assert!(!fx.thrum().join("var/thrum.pid").exists());
}

#[test]
fn a_fresh_clone_gets_everything_back_with_a_sync_worktree_thrums_daemon_keeps() {
    let fx = Fx::new();
    fx.create();
    let before = fx.state();
    let tip = git(fx.root(), &["rev-parse", "a-sync"]);
    let commits = git(fx.root(), &["rev-list", "--count", "a-sync"]);
    let rows = before.rows.clone();

    // A new machine: a clone of the main branch only (in local-only mode a-sync was never
    // pushed), no .thrum/, no sync worktree. The backups are all that is left.
    let machine = fx.tmp.path().join("new-machine");
    std::fs::create_dir_all(&machine).unwrap();
    git(
        &machine,
        &[
            "clone",
            "-q",
            "--single-branch",
            "--branch",
            "main",
            &fx.root().to_string_lossy(),
            "proj",
        ],
    );
    let clone = machine.join("proj");
    assert!(!clone.join(".thrum").exists());
    let out = Command::new(BIN)
        .arg("--repo")
        .arg(&clone)
        .arg("--dir")
        .arg(&fx.backups)
        .args(["--json", "restore", "--yes"])
        .env("THRUM_BACKUP_CACHE_DIR", fx.tmp.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["sync_worktree_rebuilt"], true, "{r}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("the snapshot's bundle"), "{notes}");
    // The other worktree does not exist here: said so, its files kept in the backup.
    assert!(notes.contains("worktree proj-feature"), "{notes}");

    let sync = clone.join(".git/thrum-sync/a-sync");
    thrum_would_keep(&clone, &sync).unwrap();
    assert_eq!(git(&clone, &["rev-parse", "a-sync"]), tip);
    assert_eq!(git(&clone, &["rev-list", "--count", "a-sync"]), commits);
    // Every file back byte for byte with its mode, every row.
    let restored = State::of(&sync, &clone.join(".thrum"));
    assert_eq!(restored.files, before.files);
    assert_eq!(restored.rows, rows);
}

#[test]
fn a_clone_that_has_origin_a_sync_takes_the_branch_from_there() {
    let fx = Fx::new();
    fx.create();
    let tip = git(fx.root(), &["rev-parse", "a-sync"]);
    let machine = fx.tmp.path().join("m2");
    std::fs::create_dir_all(&machine).unwrap();
    git(
        &machine,
        &["clone", "-q", &fx.root().to_string_lossy(), "proj"],
    );
    let clone = machine.join("proj");
    let out = Command::new(BIN)
        .arg("--repo")
        .arg(&clone)
        .arg("--dir")
        .arg(&fx.backups)
        .args(["--json", "restore", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["notes"].to_string().contains("origin/a-sync"), "{r}");
    assert_eq!(git(&clone, &["rev-parse", "a-sync"]), tip);
    thrum_would_keep(&clone, &clone.join(".git/thrum-sync/a-sync")).unwrap();
}

#[test]
fn a_plain_sync_folder_is_rebuilt_inside_the_transaction_and_a_failure_puts_it_back() {
    let fx = Fx::new();
    fx.create();
    // What an older restore left: the sync worktree as a plain folder of files. thrum's
    // daemon would remove it at its next start.
    let sync = &fx.ws.sync_dir;
    std::fs::remove_file(sync.join(".git")).unwrap();
    git(fx.root(), &["worktree", "prune"]);
    assert!(thrum_would_keep(fx.root(), sync).is_err());
    let plain = tree(sync);
    let branch = git(fx.root(), &["rev-parse", "a-sync"]);

    // A failure after the worktree step: everything is put back, the plain folder too.
    let out = fx
        .cmd()
        .args(["restore", "--yes"])
        .env("THRUM_BACKUP_FAULT_RESTORE_AFTER", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("put back as it was"),
        "{}",
        stderr(&out)
    );
    assert_eq!(tree(sync), plain);
    assert!(!sync.join(".git").exists());
    assert_eq!(git(fx.root(), &["rev-parse", "a-sync"]), branch);

    let r = fx.json(&["restore", "--yes"]);
    assert_eq!(r["sync_worktree_rebuilt"], true);
    thrum_would_keep(fx.root(), sync).unwrap();
    let mut now = tree(sync);
    now.remove(".git");
    assert_eq!(now, plain);
}

#[test]
fn restore_is_refused_while_thrums_daemon_runs() {
    let fx = Fx::new();
    fx.create();
    std::fs::write(fx.ws.sync_dir.join("messages-v2/late.jsonl"), b"{}\n").unwrap();
    let before = fx.state();
    // thrum's daemon holds an exclusive flock on var/thrum.lock while it runs.
    let daemon = std::fs::File::open(fx.thrum().join("var/thrum.lock")).unwrap();
    daemon.lock().unwrap();
    let out = fx.cmd().args(["restore", "--yes"]).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("thrum daemon stop"), "{err}");
    assert!(err.contains("var/thrum.lock"), "{err}");
    assert_eq!(fx.state(), before);
    assert!(
        fx.archive_names()
            .iter()
            .all(|n| !n.starts_with("pre-restore-"))
    );
    drop(daemon);
    fx.json(&["restore", "--yes"]);
    assert!(!fx.ws.sync_dir.join("messages-v2/late.jsonl").exists());
}

#[test]
fn secrets_can_be_left_out_and_a_restore_then_leaves_the_live_ones_alone() {
    let fx = Fx::new();
    let r = fx.json(&["create", "--exclude-secrets"]);
    let m = &r["manifest"];
    assert_eq!(m["layout"]["secrets"], "excluded");
    for (f, _) in files_of(m) {
        assert!(
            !matches!(
                f.as_str(),
                "config/config.json" | "thrum/.env" | "thrum/var/peers.json"
            ) && !f.contains("tsnet"),
            "{f} captured"
        );
    }
    assert_eq!(fx.json(&["status"])["last_backup"]["secrets"], "excluded");
    std::fs::write(fx.thrum().join(".env"), b"THRUM_TS_AUTHKEY=rotated\n").unwrap();
    fx.json(&["restore", "--yes"]);
    assert_eq!(
        std::fs::read(fx.thrum().join(".env")).unwrap(),
        b"THRUM_TS_AUTHKEY=rotated\n"
    );
    assert!(fx.thrum().join("config.json").is_file());
    // The same from config.json: backup.secrets = "exclude".
    let cfg = fx.thrum().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["backup"]["secrets"] = Value::from("exclude");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let r = fx.create();
    assert_eq!(r["manifest"]["layout"]["secrets"], "excluded");
    v["backup"]["secrets"] = Value::from("sometimes");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("backup.secrets"), "{}", stderr(&out));
}

#[test]
fn an_older_database_is_reported_against_the_sequence_peers_reached_and_can_be_raised() {
    let mut fx = Fx::new();
    fx.create();
    let older = fx.current();
    let older_max = thrum_backup::thrumd::max_sequence(&older.join("db/messages.db")).unwrap();
    fx.ws.add_messages(50).unwrap();
    let r = fx.create();
    let archive = PathBuf::from(r["archived"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    let newer_max = thrum_backup::thrumd::max_sequence(&fx.ws.db_path).unwrap();
    assert!(newer_max > older_max);

    // Going back to the older database: said, with the fix.
    let r = fx.json(&["restore", &name, "--yes"]);
    assert_eq!(r["sequence"]["restored"], older_max);
    assert_eq!(r["sequence"]["live"], newer_max);
    assert!(
        r["notes"].to_string().contains("--raise-sequence"),
        "{}",
        r["notes"]
    );
    // Back to the newer state, then the older one again with the fix applied.
    fx.json(&["restore", "--yes"]);
    let r = fx.json(&["restore", &name, "--yes", "--raise-sequence"]);
    assert_eq!(r["sequence"]["raised_to"], newer_max);
    assert_eq!(
        thrum_backup::thrumd::max_sequence(&fx.ws.db_path),
        Some(newer_max)
    );
    // An explicit sequence, and one that is not above the newest: refused, nothing changed.
    let r = fx.json(&["restore", &name, "--yes", "--raise-sequence", "100000"]);
    assert_eq!(r["sequence"]["raised_to"], 100000);
    let before = fx.state();
    let out = fx
        .cmd()
        .args(["restore", &name, "--yes", "--raise-sequence", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("higher"), "{}", stderr(&out));
    assert_eq!(fx.state(), before);
}

#[test]
fn the_streams_are_copied_after_the_database_so_none_of_its_messages_is_missing() {
    let fx = Fx::new();
    let db = fx.ws.db_path.clone();
    let stream = fx.ws.sync_dir.join("messages-v2/writer.jsonl");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let id = format!("w-{n}");
                // The stream row is written no later than the database row.
                let mut f = std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(&stream)
                    .unwrap();
                std::io::Write::write_all(
                    &mut f,
                    format!("{{\"message_id\":\"{id}\"}}\n").as_bytes(),
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO messages (message_id, agent_id, session_id, created_at, body_format, body_content) VALUES (?1, 'writer', 's', 't', 'markdown', 'x')",
                    [&id],
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let r = fx.json(&["create", "--no-prune"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.join().unwrap() > 0);
    assert_eq!(r["manifest"]["capture"]["order"], "database-then-streams");
    assert!(r["manifest"]["capture"]["gap_ms"].is_u64());
    let conn = rusqlite::Connection::open(fx.current().join("db/messages.db")).unwrap();
    let in_db: Vec<String> = conn
        .prepare("SELECT message_id FROM messages WHERE agent_id = 'writer'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let streamed = std::fs::read_to_string(fx.current().join("messages-v2/writer.jsonl")).unwrap();
    for id in &in_db {
        assert!(
            streamed.contains(&format!("\"{id}\"")),
            "{id} is in the database copy but not in the streams"
        );
    }
}

#[test]
fn status_counts_a_current_snapshot_that_thrum_made() {
    let fx = Fx::new();
    // thrum's own backup wrote current/: files, and a manifest that lists none of them.
    let cur = fx.current();
    std::fs::create_dir_all(cur.join("messages")).unwrap();
    std::fs::write(cur.join("events.jsonl"), b"{\"a\":1}\n{\"a\":2}\n").unwrap();
    std::fs::write(cur.join("messages/a.jsonl"), b"{\"a\":1}\n").unwrap();
    std::fs::write(
        cur.join("manifest.json"),
        br#"{"version":1,"timestamp":"2026-02-27T12:00:00Z","thrum_version":"0.10.6","repo_name":"proj","counts":{"events":2,"message_files":1}}"#,
    )
    .unwrap();
    let s = fx.json(&["status"]);
    assert_eq!(s["last_backup"]["made_by"], "thrum");
    assert_eq!(s["last_backup"]["files"], 2);
    assert_eq!(s["last_backup"]["bytes"], 24);
    let text = fx.cmd().arg("status").output().unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("made by thrum's own backup"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );
}
