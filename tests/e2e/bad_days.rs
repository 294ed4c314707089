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
    fx.json(&["restore", &pre, "--yes"]);
    assert_eq!(fx.state(), live);
}

#[test]
fn a_thrum_archive_with_a_bad_line_is_refused_naming_file_and_line() {
    let fx = Fx::new();
    fx.create();
    let dir = fx.archives();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("2026-02-27T120000.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for (name, data) in [
        ("events.jsonl", &b"{}\n{\"half\":"[..]),
        (
            "manifest.json",
            br#"{"version":1,"timestamp":"2026-02-27T12:00:00Z","counts":{"events":2}}"#,
        ),
    ] {
        zip.start_file(name, opts).unwrap();
        std::io::Write::write_all(&mut zip, data).unwrap();
    }
    zip.finish().unwrap();
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
