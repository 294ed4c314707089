//! Ordinary bad days must never cost the last good backup, nor restore the wrong data: what
//! `create` accepts, `restore` puts back; a shrunk workspace does not rotate its last good copy
//! away; junk and damage in the backup directory never displace a sound archive.

use crate::harness::*;
use serde_json::Value;

#[test]
fn jsonl_that_create_accepts_is_restored_exactly_torn_line_and_all() {
    let mut fx = Fx::new();
    let journal = fx.thrum().join("events.jsonl");
    let stream = fx
        .ws
        .sync_dir
        .join(format!("messages-v2/{}.jsonl", fx.ws.agents[0]));
    let legacy = fx.ws.sync_dir.join("events.jsonl");
    // A torn last line (thrum's daemon died mid-write), a line that is not JSON, a NUL byte.
    let append = |p: &std::path::Path, b: &[u8]| {
        let mut f = std::fs::File::options().append(true).open(p).unwrap();
        std::io::Write::write_all(&mut f, b).unwrap();
    };
    append(&journal, br#"{"type":"message.create","half":"#);
    append(&stream, b"not json at all\n{\"ok\":1}\n");
    append(&legacy, b"{\"a\":\"\0\"}\n");
    let out = fx.cmd().args(["--json", "create"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let issues = r["manifest"]["jsonl"].as_array().unwrap();
    let paths: Vec<&str> = issues.iter().map(|i| i["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        vec![
            "events.jsonl".to_owned(),
            format!("messages-v2/{}.jsonl", fx.ws.agents[0]),
            "thrum/events.jsonl".to_owned(),
        ]
    );
    let torn = &issues[2];
    assert!(
        torn["problem"]
            .as_str()
            .unwrap()
            .starts_with("torn last line"),
        "{torn}"
    );
    assert!(stderr(&out).contains("torn last line"), "{}", stderr(&out));
    fx.cmd().args(["verify"]).assert().success();
    // Restore after losing everything: the bytes come back exactly, with a warning.
    let before = fx.state();
    fx.wipe();
    let out = fx.cmd().args(["restore", "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("restored exactly as it was backed up"),
        "{}",
        stderr(&out)
    );
    // Each of the three, named with its line: what the snapshot's manifest found when it was
    // taken (its checksums vouch for the same bytes, so they are not read again).
    for issue in issues {
        let line = format!(
            "current: {}: line {}: {}",
            issue["path"].as_str().unwrap(),
            issue["line"],
            issue["problem"].as_str().unwrap()
        );
        assert!(stderr(&out).contains(&line), "{line}: {}", stderr(&out));
    }
    assert_eq!(fx.state(), before);
    // The snapshot saved before a restore holds the same: that restore can be undone.
    let second = fx.create();
    let older = std::path::PathBuf::from(second["archived"].as_str().unwrap());
    fx.ws.add_messages(5).unwrap();
    let live = fx.state();
    let r = fx.json(&[
        "restore",
        older.file_name().unwrap().to_str().unwrap(),
        "--yes",
    ]);
    let pre = r["pre_restore"].as_str().unwrap().to_owned();
    // The safety snapshot keeps the live logs without checking them (it says so), so
    // restoring it reads them, and warns of the same lines.
    let out = fx
        .cmd()
        .args(["dump", &pre, "manifest.json"])
        .output()
        .unwrap();
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m.get("jsonl_checked"), None, "{m}");
    assert_eq!(m.get("jsonl"), None, "{m}");
    let out = fx.cmd().args(["restore", &pre, "--yes"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["thrum/events.jsonl", "events.jsonl"] {
        assert!(
            stderr(&out).contains(&format!("{file}: line")),
            "{file}: {}",
            stderr(&out)
        );
    }
    assert!(
        stderr(&out).contains("restored exactly as it was backed up"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fx.state(), live);
}

#[test]
fn a_bad_line_appended_to_a_grown_log_is_found_by_checking_only_the_tail() {
    let mut fx = Fx::with_scale(crate::sample::Scale {
        agents: 3,
        messages: 1_500,
    });
    let r = fx.json(&["create", "--no-prune"]);
    assert_eq!(r["manifest"]["jsonl_checked"], true);
    assert_eq!(r["manifest"].get("jsonl"), None);
    // The log grows by sound lines and one that is not JSON, then a sound one.
    fx.ws.add_messages(50).unwrap();
    let log = fx.ws.sync_dir.join("events.jsonl");
    let mut f = std::fs::File::options().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"not json\n{\"ok\":1}\n").unwrap();
    drop(f);
    let bad_line = std::fs::read(&log)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        - 1;
    let r = fx.json(&["create", "--no-prune"]);
    let grown = r["manifest"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "events.jsonl")
        .unwrap()
        .clone();
    assert!(grown.get("prefix").is_some(), "{grown}");
    // Found in the tail, with the line number it has in the whole file.
    let issues = r["manifest"]["jsonl"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["path"], "events.jsonl");
    assert_eq!(issues[0]["line"], bad_line as u64, "{issues:?}");
    // A snapshot with an issue is not sound to grow from unchecked: the next one checks the
    // whole file again and finds the same line.
    fx.ws.add_messages(10).unwrap();
    let r = fx.json(&["create", "--no-prune"]);
    let issues = r["manifest"]["jsonl"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0]["line"], bad_line as u64, "{issues:?}");
    fx.cmd().args(["verify", "--all"]).assert().success();
}

#[test]
fn a_thrum_archive_with_a_bad_line_is_refused_naming_file_and_line() {
    let fx = Fx::new();
    fx.create();
    build_zip(
        &fx.archives().join("2026-02-27T120000.zip"),
        &[
            ("events.jsonl", &b"{}\n{\"half\":"[..]),
            (
                "manifest.json",
                br#"{"version":1,"timestamp":"2026-02-27T12:00:00Z","counts":{"events":2}}"#,
            ),
        ],
    );
    let before = fx.state();
    let out = fx
        .cmd()
        .args(["restore", "2026-02-27T120000.zip", "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("events.jsonl: line 2"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fx.state(), before);
}

fn set_retention(fx: &Fx, daily: i64, weekly: i64, monthly: i64) {
    let cfg = fx.thrum().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["backup"]["retention"] =
        serde_json::json!({"daily": daily, "weekly": weekly, "monthly": monthly});
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// `create --json`, whatever its exit code; the code and the report.
fn create_json(fx: &Fx) -> (i32, Value) {
    let out = fx.cmd().args(["--json", "create"]).output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    (out.status.code().unwrap(), v)
}

#[test]
fn a_shrunk_workspace_never_rotates_away_the_last_good_backup() {
    let fx = Fx::new();
    // One archive a day is all the policy keeps: without the guard, two creates after the
    // damage would leave only backups of the damage.
    set_retention(&fx, 1, 0, 0);
    fx.create();
    let good = fx.state();
    let r = fx.create();
    let last_good = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    let last_good_name = last_good.file_name().unwrap().to_str().unwrap().to_owned();
    // The sync worktree is moved away (a bad day), and a log is emptied.
    let moved = fx.tmp.path().join("moved-away");
    std::fs::rename(&fx.ws.sync_dir, &moved).unwrap();
    std::fs::write(
        fx.thrum()
            .join("identities")
            .join(format!("{}.json", fx.ws.agents[0])),
        b"",
    )
    .unwrap();
    std::fs::remove_file(
        fx.thrum()
            .join("identities")
            .join(format!("{}.json", fx.ws.agents[1])),
    )
    .unwrap();
    let (code, r) = create_json(&fx);
    assert_eq!(code, 5, "{r}");
    let shrink = r["shrink"].to_string();
    assert!(shrink.contains("the sync worktree is gone"), "{shrink}");
    assert!(
        shrink.contains(&format!(
            "config/identities/{}.json is gone",
            fx.ws.agents[1]
        )),
        "{shrink}"
    );
    assert_eq!(r["manifest"]["shrink"], r["shrink"]);
    // The archive of the last good snapshot (taken by this create) is the one kept.
    let kept = r["kept_before_shrink"].as_str().unwrap().to_owned();
    assert_ne!(kept, last_good_name);
    // More backups of the shrunk workspace: no new shrink, and the good one stays.
    for _ in 0..2 {
        let (code, r) = create_json(&fx);
        assert_eq!(code, 0, "{r}");
    }
    assert!(
        fx.archive_names().contains(&kept),
        "{:?}",
        fx.archive_names()
    );
    let status = fx.json(&["status"]);
    assert_eq!(status["kept_before_shrink"][0]["archive"], kept.as_str());
    let dry = fx.json(&["prune", "--dry-run"]);
    let decision = dry["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["archive"]["name"] == kept.as_str())
        .unwrap()
        .clone();
    assert!(
        decision["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "before_shrink"),
        "{decision}"
    );
    // It restores the good state.
    std::fs::rename(&moved, &fx.ws.sync_dir).unwrap();
    fx.json(&["restore", &kept, "--yes"]);
    assert_eq!(fx.state(), good);
    // Once the shrink is accepted, it is pruned like any other archive.
    let p = fx.json(&["prune", "--accept-shrink"]);
    assert_eq!(p["accepted"][0]["archive"], kept.as_str());
    assert!(!p["decisions"].to_string().contains("before_shrink"), "{p}");
    assert!(!fx.archive_names().contains(&kept), "{p}");
    assert_eq!(
        fx.json(&["status"])["kept_before_shrink"],
        serde_json::json!([])
    );
}

#[test]
fn a_database_that_lost_its_rows_is_a_shrink() {
    let fx = Fx::new();
    fx.create();
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    conn.execute_batch("DELETE FROM message_reads; DELETE FROM messages;")
        .unwrap();
    drop(conn);
    let (code, r) = create_json(&fx);
    assert_eq!(code, 5);
    assert!(
        r["shrink"]
            .to_string()
            .contains("table messages lost rows (240 -> 0)"),
        "{}",
        r["shrink"]
    );
}

#[test]
fn a_damaged_current_snapshot_is_archived_marked_and_never_counted() {
    let mut fx = Fx::new();
    set_retention(&fx, 1, 0, 0);
    fx.create();
    fx.ws.add_messages(30).unwrap();
    let r = fx.create();
    let sound = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    let sound = sound.file_name().unwrap().to_str().unwrap().to_owned();
    // Damage current/: a flipped byte in what changed since the archive before (a file that
    // did not change is archived from that archive's checked bytes: the new archive is sound
    // whatever its copy in current/ holds), a deleted file, a stray file.
    let cur = fx.current();
    let log = cur.join("events.jsonl");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 0x20;
    std::fs::write(&log, bytes).unwrap();
    std::fs::remove_file(cur.join(format!("config/context/{}.md", fx.ws.agents[1]))).unwrap();
    std::fs::write(cur.join("stray.txt"), b"x").unwrap();
    let (code, r) = create_json(&fx);
    assert_eq!(code, 0, "{r}");
    let damage = r["previous_damaged"].to_string();
    assert!(damage.contains("events.jsonl: content differs"), "{damage}");
    assert!(damage.contains("missing"), "{damage}");
    assert!(
        damage.contains("stray.txt: not in the manifest"),
        "{damage}"
    );
    let damaged = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    let damaged = damaged.file_name().unwrap().to_str().unwrap().to_owned();
    // Retention keeps the sound archive as the day's, and keeps the damaged one uncounted.
    let p = fx.json(&["prune"]);
    let names = fx.archive_names();
    assert!(names.contains(&sound), "{names:?} {p}");
    assert!(names.contains(&damaged), "{names:?}");
    assert!(
        p["unsound"][0]
            .as_str()
            .unwrap()
            .contains("damaged snapshot"),
        "{p}"
    );
    assert_eq!(
        fx.json(&["status"])["unsound_archives"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_junk_file_with_an_archives_name_never_displaces_a_real_archive() {
    let fx = Fx::new();
    fx.create();
    let r = fx.create();
    let real = std::path::PathBuf::from(r["archived"].as_str().unwrap());
    let real = real.file_name().unwrap().to_str().unwrap().to_owned();
    let junk = format!("{}T235959.zip", &real[..10]);
    std::fs::write(fx.archives().join(&junk), b"junk\n").unwrap();
    let p = fx.json(&["prune"]);
    let names = fx.archive_names();
    assert!(
        names.contains(&real) && names.contains(&junk),
        "{names:?} {p}"
    );
    assert!(p["unsound"][0].as_str().unwrap().starts_with(&junk), "{p}");
    // verify --all goes on past it, names it, and exits 3.
    let out = fx.cmd().args(["verify", "--all"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("FAIL {junk}")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("OK") && l.contains(&real)),
        "{text}"
    );
    assert!(fx.json(&["status"])["warnings"].to_string().contains(&junk));
}

/// The sample workspace `proj` under another parent, as a second clone would be: its own
/// thrum daemon id.
fn second_proj(fx: &Fx) -> crate::sample::SampleWorkspace {
    let parent = fx.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&parent).unwrap();
    let ws = crate::sample::SampleWorkspace::generate(
        &parent,
        "proj",
        crate::sample::Scale {
            agents: 2,
            messages: 30,
        },
    )
    .unwrap();
    let cfg = ws.root.join(".thrum/config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["identity"]["daemon_id"] = Value::from("d_01JSECONDCLONE00000000000");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    ws
}

fn cmd_in(fx: &Fx, repo: &std::path::Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(BIN);
    c.arg("--repo").arg(repo).arg("--dir").arg(&fx.backups);
    c
}

#[test]
fn two_workspaces_with_one_name_never_share_or_swap_backups() {
    let fx = Fx::new();
    fx.create();
    let a_state = fx.state();
    let other = second_proj(&fx);
    let out = cmd_in(&fx, &other.root)
        .args(["--json", "create"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let current = r["current"].as_str().unwrap();
    assert!(
        !current.starts_with(&fx.repo_dir().display().to_string()) || current.contains("proj-"),
        "{current}"
    );
    assert!(
        r["notes"].to_string().contains("another workspace"),
        "{}",
        r["notes"]
    );
    // Each workspace restores its own data.
    let out = cmd_in(&fx, &other.root)
        .args(["--json", "restore", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    fx.json(&["restore", "--yes"]);
    assert_eq!(fx.state(), a_state);
    // A snapshot of the other workspace, named by path: refused unless --force.
    let r = cmd_in(&fx, &other.root)
        .args(["--json", "create"])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&r.stdout).unwrap();
    let their_archive = r["archived"].as_str().unwrap().to_owned();
    let before = fx.state();
    let out = fx
        .cmd()
        .args(["restore", &their_archive, "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another workspace"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fx.state(), before);
    fx.cmd()
        .args(["restore", &their_archive, "--yes", "--force"])
        .assert()
        .success();
}

#[test]
fn a_renamed_folder_finds_its_backups() {
    let fx = Fx::new();
    fx.create();
    let renamed = fx.tmp.path().join("proj-renamed");
    std::fs::rename(fx.root(), &renamed).unwrap();
    // git records the sync worktree's path: repair it as git does after a move.
    let out = std::process::Command::new("git")
        .args(["worktree", "repair"])
        .current_dir(&renamed)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = cmd_in(&fx, &renamed)
        .args(["--json", "status"])
        .output()
        .unwrap();
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(s["last_backup"].is_object(), "{s}");
    assert_eq!(
        s["backup_dir"].as_str().unwrap(),
        fx.repo_dir().display().to_string()
    );
    assert!(s["warnings"].to_string().contains("renamed"), "{s}");
}

#[test]
fn a_repository_git_refuses_is_an_error_not_a_new_backup_set() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to own a repository as another user");
        return;
    }
    let fx = Fx::new();
    let chown = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(fx.root())
        .status()
        .unwrap();
    assert!(chown.success());
    let home = fx.tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = fx
        .cmd()
        .arg("status")
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("dubious ownership"), "{err}");
    assert!(err.contains("safe.directory"), "{err}");
    assert!(!fx.backups.join("unknown").exists());
}

/// Random bad days, through the binary: creates, appends, a shrunk workspace, a damaged
/// `current/`, junk in `archives/`, prunes, restores. Always: the last good archive from
/// before a shrink exists until the shrink is accepted, and every archive `verify` calls
/// sound restores.
#[test]
fn random_bad_days_never_cost_the_last_good_backup() {
    let seeds: Vec<u64> = match std::env::var("THRUM_BACKUP_BAD_DAYS_SEEDS") {
        Ok(n) => (1..=n.parse::<u64>().unwrap_or(2)).collect(),
        Err(_) => vec![1, 2],
    };
    for seed in seeds {
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut fx = Fx::new();
        set_retention(&fx, 1, 0, 0);
        fx.create();
        let aside = fx.tmp.path().join("aside");
        let mut shrunk = false;
        let mut protected: Option<String> = None;
        let mut junk = 0;
        for step in 0..14 {
            let what = next(8);
            match what {
                // (The sample writes into the sync worktree: not while it is away.)
                0 if !shrunk => fx.ws.add_messages(5).unwrap(),
                1 if !shrunk => {
                    std::fs::rename(&fx.ws.sync_dir, &aside).unwrap();
                    shrunk = true;
                }
                1 => {
                    std::fs::rename(&aside, &fx.ws.sync_dir).unwrap();
                    shrunk = false;
                }
                2 => {
                    let log = fx.current().join("thrum/events.jsonl");
                    if let Ok(mut b) = std::fs::read(&log)
                        && !b.is_empty()
                    {
                        let at = b.len() - 1 - next(b.len().min(50) as u64) as usize;
                        b[at] ^= 0x20;
                        std::fs::write(&log, b).unwrap();
                    }
                }
                3 => {
                    junk += 1;
                    let name = format!("2099-01-0{}T000000.zip", junk.min(9));
                    std::fs::create_dir_all(fx.archives()).unwrap();
                    std::fs::write(fx.archives().join(name), b"junk").unwrap();
                }
                4 => {
                    fx.json(&["prune"]);
                }
                5 if protected.is_some() && next(3) == 0 => {
                    fx.json(&["prune", "--accept-shrink"]);
                    protected = None;
                }
                _ => {}
            }
            let out = fx.cmd().args(["--json", "create"]).output().unwrap();
            let code = out.status.code();
            assert!(
                matches!(code, Some(0 | 5)),
                "seed {seed} step {step}: {}",
                stderr(&out)
            );
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            if let Some(kept) = r["kept_before_shrink"].as_str() {
                protected = Some(kept.to_owned());
            }
            if let Some(p) = &protected {
                assert!(
                    fx.archive_names().contains(p),
                    "seed {seed} step {step}: the last good archive {p} is gone"
                );
            }
        }
        // Every archive verify calls sound restores.
        let v = fx
            .cmd()
            .args(["--json", "verify", "--all"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&v.stdout).unwrap();
        if shrunk {
            std::fs::rename(&aside, &fx.ws.sync_dir).unwrap();
        }
        for t in v["targets"].as_array().unwrap() {
            let target = t["target"].as_str().unwrap();
            if target == "current" || !t["problems"].as_array().unwrap().is_empty() {
                continue;
            }
            let out = fx
                .cmd()
                .args(["restore", target, "--yes"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "seed {seed}: {target} verifies but does not restore: {}",
                stderr(&out)
            );
        }
    }
}

/// Set `backup.db_check_every` in config.json.
fn set_db_check_every(fx: &Fx, every: &str) {
    let cfg = fx.thrum().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["backup"]["db_check_every"] = every.into();
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn a_database_damaged_between_full_checks_is_refused_by_restore_and_by_the_next_check() {
    let mut fx = Fx::with_scale(crate::sample::Scale {
        agents: 3,
        messages: 1_500,
    });
    let db_of = |r: &Value| r["manifest"]["database"].clone();
    let first = fx.json(&["create", "--no-prune"]);
    assert_eq!(
        db_of(&first)["quick_check"],
        true,
        "a whole copy is checked"
    );

    // Brought up to date page by page within the day: compared and hashed, not checked.
    fx.ws.add_messages(50).unwrap();
    let second = fx.json(&["create", "--no-prune"]);
    assert!(second["grown"]["database_pages_written"].as_u64().unwrap() > 0);
    assert_eq!(db_of(&second)["quick_check"], false, "{second}");
    assert_eq!(db_of(&second)["checked_at"], first["manifest"]["timestamp"]);
    // Checked when asked, and at every backup with "0".
    fx.ws.add_messages(50).unwrap();
    let asked = fx.json(&["create", "--no-prune", "--check-db"]);
    assert_eq!(db_of(&asked)["quick_check"], true);
    set_db_check_every(&fx, "0");
    fx.ws.add_messages(50).unwrap();
    assert_eq!(
        db_of(&fx.json(&["create", "--no-prune"]))["quick_check"],
        true
    );
    set_db_check_every(&fx, "24h");

    // A sound copy that was not checked is checked by restore, and put back.
    fx.ws.add_messages(50).unwrap();
    let sound = fx.json(&["create", "--no-prune"]);
    assert_eq!(db_of(&sound)["quick_check"], false);
    let live = fx.state();
    fx.ws.add_messages(10).unwrap();
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(fx.state(), live);

    // The live database damaged where reading it never goes (its header's count of free
    // pages): the next copy holds the damage faithfully, pages compared and hashed ...
    let db = fx.ws.db_path.clone();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[36..40].copy_from_slice(&7u32.to_be_bytes());
    std::fs::write(&db, &bytes).unwrap();
    let damaged = fx.json(&["create", "--no-prune"]);
    assert_eq!(db_of(&damaged)["quick_check"], false);
    // ... so restore checks it, refuses it, naming it, and changes nothing.
    let before = (
        fx.state(),
        std::fs::read(&db).unwrap(),
        tree(&fx.repo_dir()),
    );
    let out = fx.cmd().args(["restore", "--yes"]).output().unwrap();
    assert!(!out.status.success(), "a damaged copy was restored");
    let err = stderr(&out);
    assert!(
        err.contains("current: db/messages.db: database is corrupt")
            && err.contains("not checked when it was taken")
            && err.contains("nothing was changed"),
        "{err}"
    );
    let after = (
        fx.state(),
        std::fs::read(&db).unwrap(),
        tree(&fx.repo_dir()),
    );
    assert!(after == before, "a refused restore changed something");
    // The next full check finds it and refuses the backup, changing nothing.
    let out = fx
        .cmd()
        .args(["create", "--no-prune", "--check-db"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a damaged database was checked sound"
    );
    assert!(
        stderr(&out).contains("messages.db: database is corrupt"),
        "{}",
        stderr(&out)
    );
    assert!(
        tree(&fx.repo_dir()) == before.2,
        "a failed create changed the backups"
    );
    // The snapshot from before the damage is there, and restores over the damaged database
    // (which the restore's safety archive keeps as it is).
    let good = std::path::Path::new(damaged["archived"].as_str().unwrap());
    let good = good.file_name().unwrap().to_str().unwrap();
    let restored = fx.json(&["restore", good, "--yes"]);
    assert_eq!(fx.state(), live);
    let saved = restored["pre_restore"].as_str().unwrap();
    let out = fx
        .cmd()
        .args(["dump", saved, "db/messages.db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        out.stdout[36..40],
        7u32.to_be_bytes(),
        "the damage was not kept"
    );
    // That copy was not checked when it was saved (its manifest says so), so restoring it
    // checks it, and refuses it, changing nothing.
    let out = fx
        .cmd()
        .args(["dump", saved, "manifest.json"])
        .output()
        .unwrap();
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["database"]["quick_check"], false, "{m}");
    assert!(m["database"]["checked_at"].is_null(), "{m}");
    let before = (fx.state(), tree(&fx.repo_dir()));
    let saved = std::path::Path::new(saved)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let out = fx.cmd().args(["restore", saved, "--yes"]).output().unwrap();
    assert!(!out.status.success(), "a damaged safety copy was restored");
    assert!(
        stderr(&out).contains("database is corrupt")
            && stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    assert!(
        (fx.state(), tree(&fx.repo_dir())) == before,
        "a refused restore changed something"
    );
}
