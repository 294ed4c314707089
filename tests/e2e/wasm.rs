//! WebAssembly plugins end to end: presets on real data, a third-party component with its
//! sha256 pin, and hostile components that must each fail alone while the backup completes.
//! Every component is built from source in this repository by the engine's build script.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;

/// A component built from `plugins/` (see engine/build.rs).
pub fn component(name: &str) -> PathBuf {
    Path::new(thrum_backup::plugin::presets::COMPONENTS_DIR).join(format!("{name}.wasm"))
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/beads-backup"
);

fn fixture_dir() -> Option<PathBuf> {
    let p = PathBuf::from(FIXTURE);
    p.is_dir().then_some(p)
}

/// Put the real `bd backup` output (or, without shared/, an equivalent) into `.beads/backup`.
fn install_beads_backup(fx: &Fx) -> PathBuf {
    let dest = fx.root().join(".beads/backup");
    std::fs::create_dir_all(&dest).unwrap();
    match fixture_dir() {
        Some(src) => {
            for e in std::fs::read_dir(src).unwrap().flatten() {
                let to = dest.join(e.file_name());
                std::fs::copy(e.path(), &to).unwrap();
                let mut perm = std::fs::metadata(&to).unwrap().permissions();
                #[allow(clippy::permissions_set_readonly_false)]
                perm.set_readonly(false);
                std::fs::set_permissions(&to, perm).unwrap();
            }
        }
        None => {
            std::fs::write(
                dest.join("issues.jsonl"),
                "{\"id\":\"a\"}\n{\"id\":\"b\"}\n",
            )
            .unwrap();
            std::fs::write(dest.join("backup_state.json"), r#"{"counts":{"issues":2}}"#).unwrap();
        }
    }
    std::fs::write(fx.root().join(".beads/issues.jsonl"), "{\"id\":\"a\"}\n").unwrap();
    dest
}

pub fn set_plugins(fx: &Fx, plugins: Value) {
    let cfg = fx.thrum().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["backup"]["plugins"] = plugins;
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Copy a built component into the repository and return its entry's path and pin.
pub fn vendor(fx: &Fx, name: &str, as_name: &str) -> (String, String) {
    let rel = format!(".thrum/plugins/{as_name}/plugin.wasm");
    let dest = fx.root().join(&rel);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(component(name), &dest).unwrap();
    let sha = sha256_of(&dest);
    (rel, sha)
}

/// `plugin add --preset <name> --yes`.
fn add_preset(fx: &Fx, name: &str) {
    fx.cmd()
        .args(["plugin", "add", "--preset", name, "--yes"])
        .assert()
        .success();
}

pub fn results(r: &Value) -> Vec<Value> {
    r["manifest"]["plugin_results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn beads_preset_validates_against_bd_state_and_restores() {
    let fx = Fx::new();
    let backup = install_beads_backup(&fx);
    add_preset(&fx, "beads");
    let r = fx.create();
    let p = &results(&r)[0];
    assert_eq!(p["status"], "ok", "{p}");
    assert_eq!(p["kind"], "wasm");
    let notes = p["notes"].to_string();
    if fixture_dir().is_some() {
        assert!(
            notes.contains("141 issues")
                && notes.contains("524 events")
                && notes.contains("150 dependencies"),
            "{notes}"
        );
        assert_eq!(p["files"], 8); // 7 files of bd backup + the issues.jsonl export
    }
    assert!(p.get("warnings").is_none(), "{p}");
    let snap = fx
        .current()
        .join("plugins/beads/.beads/backup/issues.jsonl");
    assert_eq!(
        std::fs::read(&snap).unwrap(),
        std::fs::read(backup.join("issues.jsonl")).unwrap()
    );
    let v = fx.json(&["verify"]);
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["targets"][0]["plugins"][0]
            .as_str()
            .unwrap()
            .starts_with("beads: ok")
    );

    // Lose .beads entirely; restore brings every file back, byte for byte.
    let before = tree(&fx.root().join(".beads"));
    std::fs::remove_dir_all(fx.root().join(".beads")).unwrap();
    let r = fx.json(&["restore", "--yes"]);
    assert!(r["plugins"].to_string().contains("plugin beads"), "{r}");
    assert_eq!(tree(&fx.root().join(".beads")), before);
}

#[test]
fn beads_count_mismatch_is_a_warning_not_a_failure() {
    let fx = Fx::new();
    let backup = install_beads_backup(&fx);
    std::fs::write(
        backup.join("backup_state.json"),
        r#"{"counts":{"issues":999}}"#,
    )
    .unwrap();
    add_preset(&fx, "beads");
    let p = results(&fx.create())[0].clone();
    assert_eq!(p["status"], "ok");
    assert!(
        p["warnings"][0]
            .as_str()
            .unwrap()
            .contains("backup_state.json counts 999"),
        "{p}"
    );
    // A line that does not parse fails the plugin, alone.
    std::fs::write(backup.join("labels.jsonl"), "{\"ok\":1}\nnot json\n").unwrap();
    let r = fx.create();
    let p = &results(&r)[0];
    assert_eq!(p["status"], "failed");
    assert!(
        p["error"]
            .as_str()
            .unwrap()
            .contains("labels.jsonl: line 2"),
        "{p}"
    );
    assert!(
        !fx.current().join("plugins/beads").exists(),
        "partial plugin output left in the snapshot"
    );
    fx.cmd().arg("verify").assert().success();
}

/// The preset reads each JSONL file once, in blocks, checking lines as it copies them: lines
/// that straddle blocks, a line longer than a block, CRLF and blank lines, a last line without
/// a newline are all counted and kept byte for byte; a bad line deep in the file is named by
/// its number and nothing of the plugin is kept.
#[test]
fn beads_preset_checks_every_line_of_large_files_while_copying_them() {
    let fx = Fx::new();
    let backup = install_beads_backup(&fx);
    for f in std::fs::read_dir(&backup).unwrap().flatten() {
        std::fs::remove_file(f.path()).unwrap();
    }
    let mut issues = Vec::new();
    let mut n = 0;
    for i in 0..30_000 {
        let end = if i % 7 == 0 { "\r\n" } else { "\n" };
        issues.extend_from_slice(
            format!("{{\"id\":\"bd-{i}\",\"title\":\"issue {i} \\u00e9t\u{e9}\"}}{end}").as_bytes(),
        );
        n += 1;
        if i == 12_345 {
            // One line of ~2.5 MB: longer than the block the plugin reads.
            let long = "x".repeat(2_500_000);
            issues.extend_from_slice(format!("{{\"long\":\"{long}\"}}\n").as_bytes());
            issues.extend_from_slice(b"\n   \n");
            n += 1;
        }
    }
    issues.extend_from_slice(b"{\"last\":true}"); // no newline at the end
    n += 1;
    std::fs::write(backup.join("issues.jsonl"), &issues).unwrap();
    std::fs::write(
        backup.join("backup_state.json"),
        format!(r#"{{"counts":{{"issues":{n}}}}}"#),
    )
    .unwrap();
    add_preset(&fx, "beads");
    let p = results(&fx.create())[0].clone();
    assert_eq!(p["status"], "ok", "{p}");
    assert!(p.get("warnings").is_none(), "{p}");
    assert!(
        p["notes"].to_string().contains(&format!("{n} issues")),
        "{p}"
    );
    let kept = fx
        .current()
        .join("plugins/beads/.beads/backup/issues.jsonl");
    assert!(std::fs::read(&kept).unwrap() == issues, "copy differs");

    // A line that is not JSON, past the long line; one that is not UTF-8 (byte 8 of its
    // line); and both, a few lines apart in the same block: the first in the file is named.
    let json = &b"{\"id\": oops}"[..];
    let utf8 = &b"{\"id\":\"\xff\"}"[..];
    for (bad, what) in [
        (vec![json], "not valid JSON"),
        (vec![utf8], "not UTF-8 (byte 8 of the line)"),
        (vec![json, utf8], "not valid JSON"),
    ] {
        let mut broken = issues.clone();
        let at = broken.len() - 20 * 1024 * 10;
        let at = at + broken[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let line = 1 + broken[..at].iter().filter(|&&b| b == b'\n').count();
        let mut inserted = Vec::new();
        for b in bad {
            inserted.extend_from_slice(b);
            inserted.extend_from_slice(b"\n{\"between\":1}\n");
        }
        broken.splice(at..at, inserted);
        std::fs::write(backup.join("issues.jsonl"), &broken).unwrap();
        let p = results(&fx.create())[0].clone();
        assert_eq!(p["status"], "failed", "{p}");
        let err = p["error"].as_str().unwrap();
        assert!(
            err.contains(&format!("issues.jsonl: line {line}: {what}")),
            "{err}"
        );
        assert!(!fx.current().join("plugins/beads").exists());
    }
}

/// A beads_rust-style workspace: SQLite (WAL) database plus its JSONL export.
fn make_br_workspace(fx: &Fx, issues: usize) -> PathBuf {
    let beads = fx.root().join(".beads");
    std::fs::create_dir_all(&beads).unwrap();
    std::fs::write(
        beads.join("metadata.json"),
        r#"{"database":"beads.db","jsonl_export":"issues.jsonl"}"#,
    )
    .unwrap();
    std::fs::write(beads.join("config.yaml"), "issue_prefix: br\n").unwrap();
    let db = beads.join("beads.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE issues (id TEXT PRIMARY KEY, title TEXT NOT NULL, status TEXT NOT NULL);
                        CREATE TABLE labels (issue_id TEXT NOT NULL, label TEXT NOT NULL);",
    )
    .unwrap();
    let mut jsonl = String::new();
    for i in 0..issues {
        conn.execute(
            "INSERT INTO issues VALUES (?1, ?2, 'open')",
            rusqlite::params![format!("br-{i}"), format!("issue {i}")],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO labels VALUES (?1, 'backup')",
            rusqlite::params![format!("br-{i}")],
        )
        .unwrap();
        jsonl.push_str(&format!(
            "{{\"id\":\"br-{i}\",\"title\":\"issue {i}\",\"status\":\"open\"}}\n"
        ));
    }
    std::fs::write(beads.join("issues.jsonl"), jsonl).unwrap();
    db
}

#[test]
fn beads_rust_preset_copies_the_database_consistently_and_restores_it() {
    let fx = Fx::new();
    let db = make_br_workspace(&fx, 200);
    add_preset(&fx, "beads-rust");
    // A writer keeps adding an issue and its label in one transaction while we back up.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, db) = (stop.clone(), db.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                conn.execute_batch(&format!(
                    "BEGIN; INSERT INTO issues VALUES ('w-{i}', 'live', 'open');
                    INSERT INTO labels VALUES ('w-{i}', 'live'); COMMIT;"
                ))
                .unwrap();
                i += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let r = fx.create();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    let p = &results(&r)[0];
    assert_eq!(p["status"], "ok", "{p}");
    let copy = fx.current().join("plugins/beads-rust/.beads/beads.db");
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let issues: i64 = conn
        .query_row("SELECT COUNT(*) FROM issues", [], |r| r.get(0))
        .unwrap();
    let labels: i64 = conn
        .query_row("SELECT COUNT(*) FROM labels", [], |r| r.get(0))
        .unwrap();
    assert!(issues >= 200);
    assert_eq!(issues, labels, "the copy is not one instant");
    drop(conn);

    // Delete .beads, restore, and the database holds exactly the snapshot's rows.
    let snapshot_rows = crate::sample::dump_database(&copy).unwrap();
    let jsonl = std::fs::read(fx.root().join(".beads/issues.jsonl")).unwrap();
    std::fs::remove_dir_all(fx.root().join(".beads")).unwrap();
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(crate::sample::dump_database(&db).unwrap(), snapshot_rows);
    assert_eq!(
        std::fs::read(fx.root().join(".beads/issues.jsonl")).unwrap(),
        jsonl
    );
    assert!(
        !fx.root().join(".beads/beads.db-wal").exists()
            || std::fs::metadata(fx.root().join(".beads/beads.db-wal"))
                .unwrap()
                .len()
                == 0
    );
}

#[test]
fn a_third_party_component_is_pinned_and_tampering_is_refused() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    std::fs::write(fx.root().join("notes/a.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
    // Added from outside the repository: copied into .thrum/plugins/<name>/ and pinned.
    let out = fx
        .cmd()
        .args(["plugin", "add", "--wasm"])
        .arg(component("jsonl_stats"))
        .arg("--yes")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("read:notes"),
        "the grants were not shown: {}",
        stderr(&out)
    );
    let vendored = fx.root().join(".thrum/plugins/jsonl-stats/plugin.wasm");
    assert!(vendored.is_file());
    let list = fx.json(&["plugin", "list"]);
    assert_eq!(list[0]["version"], "0.1.0");
    assert_eq!(list[0]["sha256"].as_str().unwrap(), sha256_of(&vendored));
    let r = fx.create();
    assert_eq!(results(&r)[0]["status"], "ok");
    let report =
        std::fs::read_to_string(fx.current().join("plugins/jsonl-stats/report.csv")).unwrap();
    assert_eq!(report, "file,lines,bytes\nnotes/a.jsonl,2,16\n");
    // Compiled once, then loaded from the cache.
    let cache = fx.tmp.path().join("cache/components");
    assert!(
        std::fs::read_dir(&cache).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "cwasm"))
    );

    // Flip one byte of the committed component: refused, the rest of the backup completes.
    let mut bytes = std::fs::read(&vendored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&vendored, bytes).unwrap();
    let r = fx.create();
    let p = &results(&r)[0];
    assert_eq!(p["status"], "failed");
    assert!(
        p["error"]
            .as_str()
            .unwrap()
            .contains("does not match its sha256 pin"),
        "{p}"
    );
    assert_eq!(r["manifest"]["counts"]["events"], 240);
    fx.cmd().arg("verify").assert().success();
    fx.cmd()
        .args(["plugin", "remove", "jsonl-stats"])
        .assert()
        .success();
    assert!(!vendored.exists());
}

#[test]
fn hostile_plugins_each_fail_alone_with_their_reason() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    std::fs::write(fx.root().join("notes/n.jsonl"), "{}\n").unwrap();
    std::fs::write(fx.tmp.path().join("secret.txt"), "secret").unwrap();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    let (greedy, gsha) = vendor(&fx, "greedy", "greedy");
    let (future, fsha) = vendor(&fx, "future", "future");
    let entry = |name: &str, what: &str, limits: Value| {
        json!({"name": name, "component": misbehave, "sha256": sha, "grants": ["read:notes"],
               "limits": limits, "config": {"do": what}})
    };
    set_plugins(
        &fx,
        json!([
            entry("passwd", "read-passwd", json!({})),
            entry("parent", "read-parent", json!({})),
            entry("spin", "spin", json!({"timeout_secs": 2})),
            entry("hog", "hog", json!({"memory_mib": 64})),
            entry("flood", "flood", json!({"output_mib": 4})),
            entry("panic", "panic", json!({})),
            entry("badpath", "bad-path", json!({})),
            entry("abspath", "absolute-path", json!({})),
            {"name": "greedy", "component": greedy, "sha256": gsha, "grants": ["read:notes"]},
            {"name": "future", "component": future, "sha256": fsha, "grants": []},
            entry("good", "nothing", json!({})),
        ]),
    );
    let start = Instant::now();
    let r = fx.create();
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "hostile plugins took {:?}",
        start.elapsed()
    );
    let by_name = |n: &str| results(&r).into_iter().find(|p| p["name"] == n).unwrap();
    let expect = [
        ("passwd", "/etc/passwd"),
        ("parent", ".."),
        ("spin", "deadline of 2s exceeded"),
        ("hog", "memory limit of 64 MiB reached"),
        ("flood", "output limit of 4 MiB reached"),
        ("panic", "the plugin panicked on purpose"),
        ("badpath", "escapes the archive"),
        ("abspath", "absolute path"),
        (
            "greedy",
            "asks for grants the config does not give: read:., write:.git, exec:rm",
        ),
        ("future", "thrum:backup@9.0.0"),
    ];
    for (name, reason) in expect {
        let p = by_name(name);
        assert_eq!(p["status"], "failed", "{name} did not fail: {p}");
        let err = p["error"].as_str().unwrap();
        assert!(err.contains(reason), "{name}: {err:?} lacks {reason:?}");
        assert!(
            !fx.current().join("plugins").join(name).exists(),
            "{name} left output"
        );
    }
    assert!(
        by_name("future")["error"]
            .as_str()
            .unwrap()
            .contains("supports thrum:backup@0.1.x")
    );
    let good = by_name("good");
    assert_eq!(good["status"], "ok");
    assert_eq!(
        std::fs::read(fx.current().join("plugins/good/ok.txt")).unwrap(),
        b"fine\n"
    );
    assert_eq!(r["manifest"]["counts"]["plugins"], json!(["good"]));
    // Nothing escaped, and the snapshot verifies.
    assert!(!fx.tmp.path().join("escaped.txt").exists());
    assert!(!Path::new("/etc/evil").exists());
    let all = thrum_backup::fsx::walk_files(&fx.backups).unwrap();
    assert!(
        !all.iter()
            .any(|f| f.contains("passwd") || f.contains("flood")),
        "{all:?}"
    );
    fx.cmd().arg("verify").assert().success();
}

#[test]
fn exec_grants_run_a_named_program_without_a_shell() {
    let fx = Fx::new();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    set_plugins(
        &fx,
        json!([
            {"name": "runs", "component": misbehave, "sha256": sha, "grants": ["read:notes", "exec:printf"], "config": {"do": "exec"}},
            {"name": "nosh", "component": misbehave, "sha256": sha, "grants": ["read:notes", "exec:printf"], "config": {"do": "exec-shell"}},
        ]),
    );
    let r = fx.create();
    let rs = results(&r);
    assert_eq!(rs[0]["status"], "ok", "{}", rs[0]);
    assert_eq!(
        std::fs::read_to_string(fx.current().join("plugins/runs/exec.txt")).unwrap(),
        "hello-world; $(touch /tmp/pwned)"
    );
    assert!(
        !Path::new("/tmp/pwned").exists(),
        "an argument went through a shell"
    );
    assert_eq!(rs[1]["status"], "failed");
    assert!(
        rs[1]["error"]
            .as_str()
            .unwrap()
            .contains("no exec grant for \"sh\""),
        "{}",
        rs[1]
    );
}

#[test]
fn unknown_contracts_and_non_components_are_refused_at_add() {
    let fx = Fx::new();
    let out = fx
        .cmd()
        .args(["plugin", "add", "--yes", "--wasm"])
        .arg(component("future"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("thrum:backup@9.0.0") && err.contains("thrum:backup@0.1.x"),
        "{err}"
    );
    let junk = fx.tmp.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm not really").unwrap();
    let out = fx
        .cmd()
        .args(["plugin", "add", "--yes", "--wasm"])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("not a valid WebAssembly component"),
        "{}",
        stderr(&out)
    );
    assert!(fx.json(&["plugin", "list"]).as_array().unwrap().is_empty());
}

/// Build a crate made by `plugin new` with the one command its README gives (the target dir
/// is shared between runs); returns the folder holding the built components.
pub fn build_rust_scaffold(dir: &Path) -> PathBuf {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scaffold-test");
    let mut build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(dir)
        .args(["build", "--release"])
        .env("CARGO_TARGET_DIR", &target);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let out = build.output().unwrap();
    assert!(
        out.status.success(),
        "scaffold did not build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("wasm32-wasip2/release")
}

#[test]
fn plugin_new_scaffolds_a_crate_that_builds_and_runs() {
    let fx = Fx::new();
    let dir = fx.tmp.path().join("my-notes");
    fx.cmd()
        .args(["plugin", "new", "my-notes", "--path"])
        .arg(&dir)
        .assert()
        .success();
    // Refuses to overwrite.
    let out = fx
        .cmd()
        .args(["plugin", "new", "my-notes", "--path"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    let wasm = build_rust_scaffold(&dir).join("my_notes.wasm");
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    std::fs::write(fx.root().join("notes/todo.jsonl"), "{\"todo\":\"ship\"}\n").unwrap();
    fx.cmd()
        .args(["plugin", "add", "--yes", "--wasm"])
        .arg(&wasm)
        .assert()
        .success();
    let r = fx.create();
    assert_eq!(
        results(&r)[0]["status"],
        "ok",
        "{}",
        r["manifest"]["plugin_results"]
    );
    assert!(
        fx.current()
            .join("plugins/my-notes/notes/todo.jsonl")
            .is_file()
    );
    // The SDK's default restore puts the file back.
    std::fs::remove_dir_all(fx.root().join("notes")).unwrap();
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(
        std::fs::read_to_string(fx.root().join("notes/todo.jsonl")).unwrap(),
        "{\"todo\":\"ship\"}\n"
    );
}

/// The real beads_rust `br` (set THRUM_BACKUP_BR; `.ci/run` builds it once per machine).
fn real_br() -> Option<PathBuf> {
    std::env::var_os("THRUM_BACKUP_BR")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

fn br(bin: &Path, dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "br {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn beads_rust_preset_round_trips_a_real_br_workspace() {
    let Some(bin) = real_br() else {
        eprintln!(
            "SKIPPED: no real br (set THRUM_BACKUP_BR; .ci/run builds it with cargo +nightly install beads_rust)"
        );
        return;
    };
    let fx = Fx::new();
    let root = fx.root().to_path_buf();
    br(&bin, &root, &["init"]);
    let a = br(&bin, &root, &["q", "Ship the backup engine"]);
    let b = br(&bin, &root, &["q", "Write the plugin guide"]);
    br(&bin, &root, &["label", "add", &a, "urgent"]);
    br(
        &bin,
        &root,
        &["comments", "add", &a, "restore must be lossless"],
    );
    br(&bin, &root, &["dep", "add", &b, &a]);
    br(&bin, &root, &["close", &a]);
    let before = br(&bin, &root, &["list", "--json", "--all"]);
    let shown = br(&bin, &root, &["show", &a, "--json"]);
    add_preset(&fx, "beads-rust");
    let r = fx.create();
    assert_eq!(
        results(&r)[0]["status"],
        "ok",
        "{}",
        r["manifest"]["plugin_results"]
    );
    std::fs::remove_dir_all(root.join(".beads")).unwrap();
    fx.cmd().args(["restore", "--yes"]).assert().success();
    assert_eq!(br(&bin, &root, &["list", "--json", "--all"]), before);
    assert_eq!(br(&bin, &root, &["show", &a, "--json"]), shown);
}

/// The sha256 pin of a component file (plugin pins are SHA-256, as users see them).
fn sha256_of(path: &Path) -> String {
    let d = thrum_backup::fsx::digest_file_with(path, thrum_backup::fsx::Algorithm::Sha256);
    d.unwrap().checksum.hex().to_owned()
}
