//! The plugin sandbox's escapes, closed: each attack by a hostile component built from
//! `plugins/hostile/`, driven through the binary; the attack fails that plugin alone, named,
//! nothing lands outside its grants, thrum's own data is backed up and restored, and the run
//! ends within the deadline plus the grace.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::wasm::{results, set_plugins, vendor};

fn by_name(r: &Value, n: &str) -> Value {
    results(r)
        .into_iter()
        .find(|p| p["name"] == n)
        .unwrap_or_else(|| panic!("no plugin {n}: {r}"))
}

fn checksums(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    tree(dir)
}

#[test]
fn restore_never_writes_through_a_symbolic_link() {
    let fx = Fx::new();
    let outside = fx.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    std::fs::create_dir_all(fx.root().join(".beads")).unwrap();
    // What a committed repository can carry: links out of the grant, and a grant root that
    // is itself a link out of the repository.
    std::os::unix::fs::symlink("..", fx.root().join(".beads/up")).unwrap();
    std::os::unix::fs::symlink(&outside, fx.root().join(".beads/out")).unwrap();
    std::os::unix::fs::symlink(&outside, fx.root().join(".linked")).unwrap();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    let entry = |name: &str, grant: &str, paths: Value| {
        json!({"name": name, "component": misbehave, "sha256": sha,
               "grants": ["read:notes", grant], "config": {"restore": paths}})
    };
    set_plugins(
        &fx,
        json!([
            entry("out", "write:.beads", json!([".beads/out/x"])),
            entry(
                "up",
                "write:.beads",
                json!([
                    ".beads/up/.thrum/config.json",
                    ".beads/up/.git/hooks/post-checkout"
                ])
            ),
            entry("rooted", "write:.linked", json!([".linked/x"])),
            entry("fine", "write:.beads", json!([".beads/restored.txt"])),
        ]),
    );
    fx.create();
    let config_before = std::fs::read(fx.thrum().join("config.json")).unwrap();
    let git_before = checksums(&fx.root().join(".git/hooks"));
    let r = fx.json(&["restore", "--yes"]);
    let notes = r["notes"].to_string();
    for name in ["out", "up", "rooted"] {
        assert!(
            notes.contains(&format!("plugin {name} was not restored"))
                && notes.contains("symbolic link"),
            "{name}: {notes}"
        );
    }
    // Nothing landed outside the grants; thrum's data and the honest plugin were restored.
    assert!(checksums(&outside).is_empty(), "{:?}", checksums(&outside));
    assert_eq!(
        std::fs::read(fx.thrum().join("config.json")).unwrap(),
        config_before
    );
    assert_eq!(checksums(&fx.root().join(".git/hooks")), git_before);
    assert_eq!(
        std::fs::read_to_string(fx.root().join(".beads/restored.txt")).unwrap(),
        ".beads/restored.txt"
    );
    assert!(
        r["plugins"].to_string().contains("plugin fine: 1 files"),
        "{r}"
    );
}

#[test]
fn a_plugin_whose_files_cannot_be_committed_fails_alone() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    std::fs::create_dir_all(fx.root().join(".beads")).unwrap();
    std::fs::write(fx.root().join(".beads/issues.jsonl"), "{}\n").unwrap();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    let long = format!(".beads/{}", "n".repeat(236));
    set_plugins(
        &fx,
        json!([
            {"name": "overdir", "component": misbehave, "sha256": sha,
             "grants": ["read:notes", "write:.beads"], "config": {"restore": [".beads/issues.jsonl/x"]}},
            {"name": "long", "component": misbehave, "sha256": sha,
             "grants": ["read:notes", "write:.beads"], "config": {"restore": [long]}},
        ]),
    );
    fx.create();
    let before = fx.state();
    fx.wipe();
    let r = fx.json(&["restore", "--yes"]);
    let notes = r["notes"].to_string();
    assert!(
        notes.contains("plugin overdir was not restored") && notes.contains("is a file"),
        "{notes}"
    );
    assert!(
        notes.contains("plugin long was not restored") && notes.contains("longer than"),
        "{notes}"
    );
    assert_eq!(fx.state(), before);
    assert_eq!(
        std::fs::read(fx.root().join(".beads/issues.jsonl")).unwrap(),
        b"{}\n"
    );
}

#[test]
fn blocking_host_calls_end_at_the_deadline_plus_the_grace() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    let fifo = fx.root().join("notes/fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    let entry = |name: &str, what: &str| {
        json!({"name": name, "component": misbehave, "sha256": sha, "grants": ["read:notes"],
               "limits": {"timeout_secs": 2}, "config": {"do": what}})
    };
    set_plugins(&fx, json!([entry("sleep", "sleep"), entry("fifo", "fifo")]));
    let start = Instant::now();
    let r = fx.create();
    // Two plugins of 2 s each, plus the grace: far from the 60 s sleep or a FIFO with no
    // writer, which blocked the backup forever.
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    for name in ["sleep", "fifo"] {
        let p = by_name(&r, name);
        assert_eq!(p["status"], "failed", "{p}");
        assert!(
            p["error"]
                .as_str()
                .unwrap()
                .contains("deadline of 2s exceeded"),
            "{p}"
        );
    }
    assert_eq!(r["manifest"]["counts"]["events"], 240);
    fx.cmd().arg("verify").assert().success();
}

#[test]
fn exec_runs_with_an_empty_environment_and_takes_everything_it_started_along() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    set_plugins(
        &fx,
        json!([
            {"name": "env", "component": misbehave, "sha256": sha,
             "grants": ["read:notes", "exec:printenv"], "config": {"do": "printenv"}},
            {"name": "daemon", "component": misbehave, "sha256": sha,
             "grants": ["read:notes", "exec:setsid"], "allow_dangerous": true, "config": {"do": "setsid"}},
            {"name": "unconfirmed", "component": misbehave, "sha256": sha,
             "grants": ["read:notes", "exec:setsid"], "config": {"do": "setsid"}},
        ]),
    );
    let start = Instant::now();
    let out = fx
        .cmd()
        .args(["--json", "create"])
        .env("THRUM_TEST_SECRET", "hunter2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(by_name(&r, "env")["status"], "ok");
    let env = std::fs::read_to_string(fx.current().join("plugins/env/env.txt")).unwrap();
    assert!(!env.contains("hunter2"), "{env}");
    assert!(env.lines().all(|l| l.starts_with("PATH=")), "{env}");
    assert!(
        by_name(&r, "unconfirmed")["error"]
            .as_str()
            .unwrap()
            .contains("allow_dangerous"),
        "{r}"
    );
    // The setsid descendant was killed with its command: it never touches its marker.
    std::thread::sleep(Duration::from_secs(6));
    assert!(!fx.root().join("notes/survived").exists());
}

#[test]
fn files_handles_grants_and_stack_have_their_limits_and_reasons() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    let (grants, gsha) = vendor(&fx, "grants", "grants");
    let entry = |name: &str, what: &str, limits: Value| {
        json!({"name": name, "component": misbehave, "sha256": sha, "grants": ["read:notes"],
               "limits": limits, "config": {"do": what}})
    };
    set_plugins(
        &fx,
        json!([
            entry("many", "many-files", json!({"max_files": 1000})),
            entry("open", "open-files", json!({})),
            entry("stack", "stack", json!({})),
            {"name": "grants", "component": grants, "sha256": gsha, "grants": []},
        ]),
    );
    let r = fx.create();
    for (name, reason) in [
        ("many", "file limit of 1000 reached (limits.max_files)"),
        ("open", "output files open at once"),
        ("stack", "call stack exhausted"),
        ("grants", "at most 64 are accepted"),
    ] {
        let p = by_name(&r, name);
        assert_eq!(p["status"], "failed", "{p}");
        assert!(p["error"].as_str().unwrap().contains(reason), "{name}: {p}");
        assert!(!fx.current().join("plugins").join(name).exists());
    }
    let manifest = std::fs::read(fx.current().join("manifest.json")).unwrap();
    assert!(manifest.len() < 200_000, "{} bytes", manifest.len());
    fx.cmd().arg("verify").assert().success();
}

#[test]
fn grants_that_amount_to_running_code_need_allow_dangerous() {
    let fx = Fx::new();
    let wasm = crate::wasm::component("misbehave");
    for grant in ["exec:sh", "write:.git", "write:.thrum/config", "read:."] {
        let out = fx
            .cmd()
            .args(["plugin", "add", "--wasm"])
            .arg(&wasm)
            .args(["--name", "m", "--grant", grant, "--yes"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{grant} was accepted");
        let err = stderr(&out);
        assert!(
            err.contains("--allow-dangerous") && err.contains("WARNING"),
            "{grant}: {err}"
        );
    }
    let out = fx
        .cmd()
        .args(["plugin", "add", "--wasm"])
        .arg(&wasm)
        .args(["--name", "m", "--grant", "write:.", "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("whole repository"),
        "{}",
        stderr(&out)
    );
    fx.cmd()
        .args(["plugin", "add", "--wasm"])
        .arg(&wasm)
        .args([
            "--name",
            "m",
            "--grant",
            "exec:sh",
            "--yes",
            "--allow-dangerous",
        ])
        .assert()
        .success();
    let v: Value =
        serde_json::from_slice(&std::fs::read(fx.thrum().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["backup"]["plugins"][0]["allow_dangerous"], true);
}

#[test]
fn the_safety_archive_of_a_restore_holds_what_plugins_replace() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    std::fs::create_dir_all(fx.root().join(".beads")).unwrap();
    std::fs::write(fx.root().join(".beads/data.txt"), "old\n").unwrap();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    // Its backup copies nothing of .beads; its restore (the SDK's default) puts back what its
    // backup kept: the file `ok.txt`... so give it a read grant and a copying config instead.
    set_plugins(
        &fx,
        json!([{"name": "keeper", "component": misbehave, "sha256": sha,
                "grants": ["read:notes", "write:.beads"], "config": {}}]),
    );
    fx.create();
    let r = fx.json(&["restore", "--yes"]);
    let pre = r["pre_restore"].as_str().unwrap();
    let mut zip = zip::ZipArchive::new(std::fs::File::open(pre).unwrap()).unwrap();
    assert!(
        zip.by_name("plugins/keeper/ok.txt").is_ok(),
        "the safety archive lacks the plugin's data"
    );
}

#[test]
fn a_read_grant_through_a_link_is_refused_and_hard_links_are_reported() {
    let fx = Fx::new();
    // `notes` links to git's own folder: inside the repository, but not what was granted.
    std::os::unix::fs::symlink(".git", fx.root().join("notes")).unwrap();
    std::fs::create_dir_all(fx.root().join("shared")).unwrap();
    std::fs::hard_link(
        fx.root().join(".git/config"),
        fx.root().join("shared/innocent.txt"),
    )
    .unwrap();
    let (misbehave, sha) = vendor(&fx, "misbehave", "misbehave");
    set_plugins(
        &fx,
        json!([
            {"name": "linked", "component": misbehave, "sha256": sha, "grants": ["read:notes"]},
            {"name": "hard", "component": misbehave, "sha256": sha, "grants": ["read:notes", "read:shared"]},
        ]),
    );
    let r = fx.create();
    let linked = by_name(&r, "linked");
    assert_eq!(linked["status"], "failed");
    assert!(
        linked["error"].as_str().unwrap().contains("symbolic link"),
        "{linked}"
    );
    // With a real folder for notes, the plugin runs, and the hard link is reported.
    std::fs::remove_file(fx.root().join("notes")).unwrap();
    std::fs::create_dir_all(fx.root().join("notes")).unwrap();
    let r = fx.create();
    let hard = by_name(&r, "hard");
    assert_eq!(hard["status"], "ok", "{hard}");
    assert!(
        hard["warnings"].to_string().contains("shared/innocent.txt"),
        "{hard}"
    );
}

#[test]
fn the_entry_limit_of_restore_and_verify_can_be_raised() {
    let fx = Fx::new();
    fx.create();
    let mut entries: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("messages/agent-{i}.jsonl"), b"{}\n".to_vec()))
        .collect();
    entries.push((
        "manifest.json".into(),
        br#"{"version":1,"timestamp":"2026-02-27T12:00:00Z"}"#.to_vec(),
    ));
    build_zip(&fx.archives().join("2026-02-27T120000.zip"), &entries);
    let before = fx.state();
    for args in [
        vec!["verify", "2026-02-27T120000.zip", "--max-entries", "100"],
        vec![
            "restore",
            "2026-02-27T120000.zip",
            "--yes",
            "--max-entries",
            "100",
        ],
    ] {
        let out = fx.cmd().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains("--max-entries"), "{}", stderr(&out));
    }
    assert_eq!(fx.state(), before);
    fx.cmd()
        .args(["verify", "2026-02-27T120000.zip", "--max-entries", "1000"])
        .assert()
        .success();
}
