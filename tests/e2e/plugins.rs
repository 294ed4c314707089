//! Shell plugins (thrum's form) and the post-backup hook.

use crate::harness::*;
use serde_json::Value;

fn set_backup(fx: &Fx, key: &str, value: Value) {
    let cfg = fx.thrum().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["backup"][key] = value;
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

#[test]
fn a_shell_plugin_collects_its_files() {
    let fx = Fx::new();
    std::fs::create_dir_all(fx.root().join("notes/deep")).unwrap();
    std::fs::write(fx.root().join("notes/deep/b.md"), b"deep\n").unwrap();
    fx.cmd()
        .args([
            "plugin",
            "add",
            "--name",
            "notes",
            "--command",
            "echo exported > notes/a.md",
            "--include",
            "notes/*",
        ])
        .assert()
        .success();
    let r = fx.create();
    assert_eq!(
        r["manifest"]["counts"]["plugins"],
        serde_json::json!(["notes"])
    );
    let p = &r["manifest"]["plugin_results"][0];
    assert_eq!(p["status"], "ok");
    assert_eq!(p["files"], 2);
    assert_eq!(
        std::fs::read(fx.current().join("plugins/notes/notes/a.md")).unwrap(),
        b"exported\n"
    );
    assert!(fx.current().join("plugins/notes/notes/deep/b.md").is_file());
    fx.cmd().arg("verify").assert().success();
}

#[test]
fn a_failing_plugin_is_reported_and_the_backup_completes() {
    let fx = Fx::new();
    std::fs::write(fx.root().join("data.txt"), b"x").unwrap();
    fx.cmd()
        .args([
            "plugin",
            "add",
            "--name",
            "broken",
            "--command",
            "echo boom >&2; exit 7",
            "--include",
            "data.txt",
        ])
        .assert()
        .success();
    fx.cmd()
        .args(["plugin", "add", "--name", "fine", "--include", "data.txt"])
        .assert()
        .success();
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("plugin broken: FAILED (command failed: exit status 7: boom)"),
        "{text}"
    );
    let m: Value =
        serde_json::from_slice(&std::fs::read(fx.current().join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["counts"]["plugins"], serde_json::json!(["fine"]));
    assert_eq!(m["plugin_results"][0]["status"], "failed");
    assert!(
        !fx.current().join("plugins/broken").exists(),
        "partial output left behind"
    );
    assert!(fx.current().join("plugins/fine/data.txt").is_file());
    fx.cmd().arg("verify").assert().success();
}

#[test]
fn include_patterns_cannot_reach_outside_the_repository() {
    let fx = Fx::new();
    let secret = fx.tmp.path().join("secret.txt");
    std::fs::write(&secret, b"outside").unwrap();
    std::os::unix::fs::symlink(&secret, fx.root().join("link-out.txt")).unwrap();
    for (name, pattern) in [
        ("dotdot", "../secret.txt"),
        ("absolute", "/etc/host*"),
        ("symlink", "link-out.txt"),
    ] {
        fx.cmd()
            .args(["plugin", "add", "--name", name, "--include", pattern])
            .assert()
            .success();
    }
    let r = fx.create();
    for p in r["manifest"]["plugin_results"].as_array().unwrap() {
        assert_eq!(p["status"], "failed", "{p}");
        let e = p["error"].as_str().unwrap();
        assert!(
            e.contains("outside the repository") || e.contains("absolute"),
            "{e}"
        );
    }
    assert!(!fx.current().join("plugins").exists());
    let all = thrum_backup::fsx::walk_files(&fx.backups).unwrap();
    assert!(
        !all.iter()
            .any(|f| f.ends_with("secret.txt") || f.contains("host")),
        "{all:?}"
    );
}

#[test]
fn presets_and_plugin_management() {
    let fx = Fx::new();
    // Without --yes (and no terminal to ask on) nothing is added.
    let out = fx
        .cmd()
        .args(["plugin", "add", "--preset", "beads"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    fx.cmd()
        .args(["plugin", "add", "--preset", "beads", "--yes"])
        .assert()
        .success();
    fx.cmd()
        .args(["plugin", "add", "--preset", "beads-rust", "--yes"])
        .assert()
        .success();
    let out = fx
        .cmd()
        .args(["plugin", "add", "--preset", "beads", "--yes"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let list = fx.json(&["plugin", "list"]);
    assert_eq!(list[0]["name"], "beads");
    assert_eq!(list[0]["kind"], "wasm");
    assert_eq!(list[0]["component"], "preset:beads");
    assert_eq!(
        list[0]["grants"],
        serde_json::json!(["read:.beads", "write:.beads"])
    );
    assert_eq!(list[1]["component"], "preset:beads-rust");
    // This workspace has no .beads: both fail with their reason, the backup completes.
    let r = fx.create();
    let results = r["manifest"]["plugin_results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for p in results {
        assert_eq!(p["status"], "failed");
        assert!(p["error"].as_str().unwrap().contains(".beads"), "{p}");
    }
    fx.cmd()
        .args(["plugin", "remove", "beads"])
        .assert()
        .success();
    let out = fx
        .cmd()
        .args(["plugin", "remove", "beads"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(fx.json(&["plugin", "list"]).as_array().unwrap().len(), 1);
    // Other keys of config.json survived every write.
    let v: Value =
        serde_json::from_slice(&std::fs::read(fx.thrum().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["daemon"]["sync_interval"], 60);
    assert_eq!(v["identity"]["daemon_id"], crate::sample::DAEMON_ID);
}

#[test]
fn post_backup_hook_gets_thrums_environment_and_cannot_fail_the_backup() {
    let fx = Fx::new();
    let out_file = fx.tmp.path().join("hook.env");
    set_backup(
        &fx,
        "post_backup",
        Value::String(format!(
            "echo \"$THRUM_BACKUP_DIR|$THRUM_BACKUP_REPO|$THRUM_BACKUP_CURRENT|$(pwd)\" > {}",
            out_file.display()
        )),
    );
    let r = fx.create();
    assert_eq!(r["hook"]["ok"], true);
    let line = std::fs::read_to_string(&out_file).unwrap();
    let parts: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(parts[0], fx.backups.to_str().unwrap());
    assert_eq!(parts[1], "proj");
    assert_eq!(parts[2], fx.current().to_str().unwrap());
    assert_eq!(
        std::fs::canonicalize(parts[3]).unwrap(),
        std::fs::canonicalize(fx.root()).unwrap()
    );

    set_backup(
        &fx,
        "post_backup",
        Value::String("echo nope >&2; exit 2".into()),
    );
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("post-backup hook: FAILED (exit status 2: nope)")
    );
    // The hook runs after the lock is released: it may call thrum-backup itself.
    set_backup(
        &fx,
        "post_backup",
        Value::String(format!(
            "{BIN} --repo . --dir {} --lock-timeout 2 status -q",
            fx.backups.display()
        )),
    );
    let r = fx.create();
    assert_eq!(r["hook"]["ok"], true, "{}", r["hook"]);
}
