//! Retention through the CLI on real archives: thrum's scenarios and ours.

use chrono::{DateTime, Duration, Utc};

use crate::harness::*;

/// Write a real (small) archive for each time, and set the retention in config.json.
fn setup(fx: &Fx, times: &[DateTime<Utc>], retention: serde_json::Value) {
    let dir = fx.archives();
    std::fs::create_dir_all(&dir).unwrap();
    for t in times {
        let name = format!("{}.zip", t.format("%Y-%m-%dT%H%M%S"));
        let mut zip = zip::ZipWriter::new(std::fs::File::create(dir.join(name)).unwrap());
        zip.start_file("events.jsonl", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, b"{}\n").unwrap();
        zip.start_file("manifest.json", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, SMALL_MANIFEST).unwrap();
        zip.finish().unwrap();
    }
    let cfg = fx.thrum().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["backup"]["retention"] = retention;
    std::fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

fn base() -> DateTime<Utc> {
    "2026-02-27T12:00:00Z".parse().unwrap()
}

fn snapshot_archives(fx: &Fx) -> Vec<String> {
    fx.archive_names()
        .into_iter()
        .filter(|n| !n.starts_with("pre-restore-"))
        .collect()
}

#[test]
fn thrum_scenario_daily() {
    let fx = Fx::new();
    let times: Vec<_> = (0..7).map(|i| base() - Duration::days(i)).collect();
    setup(
        &fx,
        &times,
        serde_json::json!({"daily": 5, "weekly": 0, "monthly": 0}),
    );
    fx.cmd().arg("prune").assert().success();
    assert_eq!(snapshot_archives(&fx).len(), 5);
}

#[test]
fn thrum_scenario_weekly() {
    let fx = Fx::new();
    let times: Vec<_> = (0..8).map(|i| base() - Duration::days(7 * i)).collect();
    setup(
        &fx,
        &times,
        serde_json::json!({"daily": 0, "weekly": 4, "monthly": 0}),
    );
    fx.cmd().arg("prune").assert().success();
    assert_eq!(snapshot_archives(&fx).len(), 4);
}

#[test]
fn thrum_scenario_monthly_forever() {
    let fx = Fx::new();
    let times: Vec<_> = (0..12)
        .map(|i| {
            "2026-02-15T12:00:00Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
                .checked_sub_months(chrono::Months::new(i))
                .unwrap()
        })
        .collect();
    setup(
        &fx,
        &times,
        serde_json::json!({"daily": 0, "weekly": 0, "monthly": -1}),
    );
    fx.cmd().arg("prune").assert().success();
    assert_eq!(snapshot_archives(&fx).len(), 12);
}

#[test]
fn pre_restore_and_foreign_files_are_exempt() {
    let fx = Fx::new();
    let times: Vec<_> = (0..3).map(|i| base() - Duration::days(i)).collect();
    setup(
        &fx,
        &times,
        serde_json::json!({"daily": 1, "weekly": 0, "monthly": 0}),
    );
    std::fs::write(
        fx.archives().join("pre-restore-2026-02-28T091500.zip"),
        b"safety",
    )
    .unwrap();
    std::fs::write(fx.archives().join("my-notes.zip"), b"mine").unwrap();
    let r = fx.json(&["prune"]);
    assert_eq!(r["removed"].as_array().unwrap().len(), 2);
    let names = fx.archive_names();
    assert!(names.contains(&"pre-restore-2026-02-28T091500.zip".to_owned()));
    assert!(names.contains(&"my-notes.zip".to_owned()));
    assert_eq!(names.len(), 3);
}

#[test]
fn dry_run_explains_and_changes_nothing() {
    let fx = Fx::new();
    let times: Vec<_> = (0..6).map(|i| base() - Duration::days(i)).collect();
    setup(
        &fx,
        &times,
        serde_json::json!({"daily": 3, "weekly": 0, "monthly": 0}),
    );
    let before = fx.archive_names();
    let out = fx.cmd().args(["prune", "--dry-run"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("keep   ").count(), 3, "{text}");
    assert_eq!(text.matches("remove ").count(), 3, "{text}");
    assert!(text.contains("daily 2026-02-27"), "{text}");
    assert_eq!(fx.archive_names(), before);
    let j = fx.json(&["prune", "--dry-run"]);
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["decisions"][0]["reasons"][0]["rule"], "daily");
    assert_eq!(fx.archive_names(), before);
}

#[test]
fn all_zero_policy_keeps_everything_and_newest_always_stays() {
    let fx = Fx::new();
    let times: Vec<_> = (0..4).map(|i| base() - Duration::days(i)).collect();
    setup(
        &fx,
        &times,
        serde_json::json!({"daily": 0, "weekly": 0, "monthly": 0}),
    );
    fx.cmd().arg("prune").assert().success();
    assert_eq!(snapshot_archives(&fx).len(), 4);
}

#[test]
fn safety_archives_of_restores_keep_the_newest_five_and_the_last_thirty_days() {
    let fx = Fx::new();
    fx.create();
    let dir = fx.archives();
    std::fs::create_dir_all(&dir).unwrap();
    let now = Utc::now();
    let mut names = Vec::new();
    // Eight a year and more old, and two from this week.
    for d in (400..408).chain([1, 2]) {
        let t = now - Duration::days(d);
        let name = format!("pre-restore-{}.zip", t.format("%Y-%m-%dT%H%M%S"));
        std::fs::copy(
            fx.tmp.path().join("backups/proj/current/manifest.json"),
            dir.join(&name),
        )
        .unwrap();
        names.push(name);
    }
    let dry = fx.json(&["prune", "--dry-run"]);
    assert_eq!(dry["pre_restore"].as_array().unwrap().len(), 10);
    fx.json(&["prune"]);
    let left: Vec<String> = fx
        .archive_names()
        .into_iter()
        .filter(|n| n.starts_with("pre-restore-"))
        .collect();
    // The two recent ones, and the newest three of the old (five newest in all).
    assert_eq!(left.len(), 5, "{left:?}");
    for n in names[8..].iter().chain(&names[..3]) {
        assert!(left.contains(n), "{n}");
    }
    for n in &names[3..8] {
        assert!(!left.contains(n), "{n} kept");
    }
}
