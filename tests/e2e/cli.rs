//! The CLI as a user meets it: status, config, schedule, daemon, archives, lock, demo, help.

use std::time::{Duration, Instant};

use crate::harness::*;
use serde_json::Value;

#[test]
fn status_and_archives_report_what_is_there() {
    let mut fx = Fx::new();
    let s = fx.json(&["status"]);
    assert!(s["last_backup"].is_null());
    fx.create();
    fx.ws.add_messages(5).unwrap();
    fx.create();
    let s = fx.json(&["status"]);
    assert_eq!(s["last_backup"]["counts"]["events"], 245);
    assert_eq!(s["archives"]["count"], 1);
    assert!(s["archives"]["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["archives"]["oldest"], s["archives"]["newest"]);
    let text = fx.cmd().arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Last backup:") && text.contains("Archives: 1"),
        "{text}"
    );
    let list = fx.json(&["archives"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["kind"], "snapshot");
}

#[test]
fn config_marks_defaults_and_schedule_keeps_other_keys() {
    let fx = Fx::new();
    let c = fx.json(&["config"]);
    assert_eq!(c["retention"]["daily"]["value"], 5);
    assert_eq!(c["retention"]["daily"]["default"], false); // the sample sets it
    assert_eq!(c["retention"]["last"]["default"], true);
    assert_eq!(c["dir"]["source"], "--dir");
    let text =
        String::from_utf8_lossy(&fx.cmd().arg("config").output().unwrap().stdout).into_owned();
    assert!(text.contains("monthly:    forever"), "{text}");
    assert!(text.contains("(default)"), "{text}");

    let cfg_path = fx.thrum().join("config.json");
    let before: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    fx.cmd().args(["schedule", "6h30m"]).assert().success();
    let after: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    // Our key, not thrum's: thrum's daemon starts its own backups whenever backup.schedule is set.
    assert_eq!(after["backup"]["thrum_backup_schedule"], "6h30m");
    assert!(after["backup"].get("schedule").is_none(), "{after}");
    assert_eq!(after["daemon"], before["daemon"]);
    assert_eq!(after["identity"], before["identity"]);
    assert_eq!(fx.json(&["schedule"])["interval_seconds"], 23400.0);
    let bad = fx.cmd().args(["schedule", "soon"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("Go duration"), "{}", stderr(&bad));
    fx.cmd().args(["schedule", "off"]).assert().success();
    let off: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    assert_eq!(
        off, before,
        "schedule off did not give back the original config"
    );
    // thrum's own scheduler: status warns, `schedule off --thrum` removes it.
    let mut with_thrum = before.clone();
    with_thrum["backup"]["schedule"] = Value::from("24h");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&with_thrum).unwrap()).unwrap();
    let status = fx.json(&["status"]);
    assert!(
        status["warnings"][0]
            .as_str()
            .unwrap()
            .contains("thrum's daemon runs thrum's own backup"),
        "{status}"
    );
    let shown = fx.cmd().arg("schedule").output().unwrap();
    assert!(
        stderr(&shown).contains("schedule off --thrum"),
        "{}",
        stderr(&shown)
    );
    let refused = fx
        .cmd()
        .args(["schedule", "6h", "--thrum"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    fx.cmd()
        .args(["schedule", "off", "--thrum"])
        .assert()
        .success();
    let cleared: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    assert_eq!(cleared, before);
    assert_eq!(fx.json(&["status"])["warnings"], serde_json::json!([]));
}

#[test]
fn a_held_lock_makes_commands_wait_then_fail_clearly() {
    let fx = Fx::new();
    fx.create();
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .open(fx.repo_dir().join(".lock"))
        .unwrap();
    lock.lock().unwrap();
    let start = Instant::now();
    let out = fx
        .cmd()
        .args(["--lock-timeout", "1", "create"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("busy"), "{}", stderr(&out));
    assert!(start.elapsed() >= Duration::from_millis(900));
    lock.unlock().unwrap();
    fx.cmd().arg("create").assert().success();
}

#[test]
fn concurrent_commands_are_serialized() {
    let fx = Fx::new();
    fx.create();
    let children: Vec<_> = (0..4)
        .map(|i| {
            let mut c = std::process::Command::new(BIN);
            c.arg("--repo")
                .arg(fx.root())
                .arg("--dir")
                .arg(&fx.backups)
                .arg("--json");
            match i % 4 {
                0 | 2 => c.args(["create", "--no-prune"]),
                1 => c.args(["prune"]),
                _ => c.args(["restore", "--yes"]),
            };
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    fx.cmd().args(["verify", "--all"]).assert().success();
}

#[test]
fn daemon_runs_on_schedule_and_stops_cleanly_on_sigterm() {
    let fx = Fx::new();
    fx.cmd().args(["schedule", "1s"]).assert().success();
    let child = std::process::Command::new(BIN)
        .arg("--repo")
        .arg(fx.root())
        .arg("--dir")
        .arg(&fx.backups)
        .arg("daemon")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fx.current().join("manifest.json").exists() {
        assert!(Instant::now() < deadline, "no scheduled backup within 30s");
        std::thread::sleep(Duration::from_millis(100));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("backup ok") && text.contains("stopped"),
        "{text}"
    );
    fx.cmd().arg("verify").assert().success();
    assert!(
        !fx.repo_dir()
            .join(".tmp")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    );

    // Without a schedule the daemon says how to set one.
    fx.cmd().args(["schedule", "off"]).assert().success();
    let out = fx.cmd().arg("daemon").output().unwrap();
    assert!(
        stderr(&out).contains("thrum-backup schedule 24h"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn demo_proves_the_round_trip() {
    let out = std::process::Command::new(BIN)
        .arg("demo")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("proved: the restored copy equals the original"),
        "{text}"
    );
    assert!(text.contains("Demo complete"), "{text}");
}

#[test]
fn help_teaches_and_errors_are_clear() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "create", "status", "config", "restore", "prune", "verify", "archives", "schedule",
        "daemon", "plugin", "demo",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}");
    }
    assert!(text.contains("Exit codes"), "{text}");
    let out = std::process::Command::new(BIN)
        .args(["restore", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("pre-restore"));
    // Outside any thrum workspace.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--repo")
        .arg(empty.path())
        .arg("create")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no thrum directory"),
        "{}",
        stderr(&out)
    );
    let out = std::process::Command::new(BIN)
        .args(["--json", "--repo"])
        .arg(empty.path())
        .arg("create")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("no thrum directory"));
    // Verify before any backup.
    let fx = Fx::new();
    let out = fx.cmd().arg("verify").output().unwrap();
    assert!(stderr(&out).contains("no backups yet"), "{}", stderr(&out));
}

#[test]
fn bench_reports_every_measurement_and_its_baselines() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("report.json");
    let run = std::process::Command::new(BIN)
        .args(["bench", "--scale", "0.005", "--runs", "1", "--work"])
        .arg(work.path().join("w"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let report: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let names: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "cp -r",
        "create (first, no earlier snapshot)",
        "create (steady: archive + 1% appended)",
        "verify (current/)",
        "restore (current/ into the workspace)",
        "prune --dry-run over 10 000 archives",
        "plugin start, warm (cached component)",
        "beads preset backup",
    ] {
        assert!(names.contains(&n), "missing {n}: {names:?}");
    }
    // Every measured row has a positive time; ratios are computed against baselines run here.
    for r in report["rows"].as_array().unwrap() {
        if r["skipped"].is_null() {
            assert!(r["wall"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    assert!(
        report["ratios"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["baseline"] == "cp -r")
    );
    // With Info-ZIP installed, the steady archive's size is compared with Info-ZIP's zip of
    // the same data: the workspace in the state the archive holds, and that snapshot.
    let zip_ran = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "zip -r -6 (Info-ZIP)" && r["skipped"].is_null());
    let sizes: Vec<&Value> = report["ratios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["of"] == "output")
        .collect();
    if zip_ran {
        assert_eq!(sizes.len(), 2, "{sizes:?}");
        for q in sizes {
            let r = q["ratio"].as_f64().unwrap();
            assert!(r > 0.5 && r < 2.0, "{q}");
        }
    }
    assert!(report["workspace_bytes"].as_u64().unwrap() > 1_000_000);
}

#[test]
fn config_writes_change_only_the_key_written_and_keep_mode_and_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fx::new();
    let real = fx.tmp.path().join("config-elsewhere.json");
    let text = "{\n    \"daemon\": {\"local_only\": true, \"big\": 12345678901234567890123, \"ratio\": 2.50},\n    \"backup\": {\n        \"retention\": {\"daily\": 5}\n    }\n}\n";
    std::fs::write(&real, text).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = fx.thrum().join("config.json");
    std::fs::remove_file(&cfg).unwrap();
    std::os::unix::fs::symlink(&real, &cfg).unwrap();

    fx.cmd().args(["schedule", "6h"]).assert().success();
    let after = std::fs::read_to_string(&real).unwrap();
    assert_eq!(
        after,
        text.replace(
            "{\"daily\": 5}\n",
            "{\"daily\": 5},\n        \"thrum_backup_schedule\": \"6h\"\n"
        ),
        "{after}"
    );
    assert!(
        std::fs::symlink_metadata(&cfg)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
        0o600
    );
    fx.cmd().args(["schedule", "off"]).assert().success();
    assert_eq!(std::fs::read_to_string(&real).unwrap(), text);
}

#[test]
fn daemon_json_is_one_object_per_line() {
    let fx = Fx::new();
    fx.cmd().args(["schedule", "1s"]).assert().success();
    let child = std::process::Command::new(BIN)
        .arg("--repo")
        .arg(fx.root())
        .arg("--dir")
        .arg(&fx.backups)
        .args(["--json", "daemon"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Two archives: three backups began, two of them reported.
    while fx.archive_names().len() < 2 {
        assert!(Instant::now() < deadline, "no third backup within 30s");
        std::thread::sleep(Duration::from_millis(100));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{text}");
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["ok"], true, "{line}");
    }
}
