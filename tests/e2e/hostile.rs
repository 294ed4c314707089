//! Bad input gets a clear error and changes nothing: hostile archives, broken workspaces.

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use crate::harness::*;

const MANIFEST: &[u8] = br#"{"version":1,"timestamp":"2026-02-27T12:00:00Z","thrum_version":"x","repo_name":"proj","counts":{"events":1,"message_files":0,"local_tables":0,"config_files":0}}"#;

/// Build a zip from (name, data) entries with the `zip` crate.
fn build(path: &Path, entries: &[(&str, &[u8])]) {
    build_zip(path, entries);
}

/// Replace every occurrence of `from` by `to` (same length) in the file.
fn patch(path: &Path, from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            hits += 1;
        }
        i += 1;
    }
    assert!(hits > 0, "pattern not found");
    std::fs::write(path, bytes).unwrap();
}

/// Set the uncompressed-size field of every local and central header.
fn lie_about_size(path: &Path, size: u32) {
    let mut b = std::fs::read(path).unwrap();
    let mut i = 0;
    while i + 4 <= b.len() {
        match &b[i..i + 4] {
            [0x50, 0x4b, 0x03, 0x04] => b[i + 22..i + 26].copy_from_slice(&size.to_le_bytes()),
            [0x50, 0x4b, 0x01, 0x02] => b[i + 24..i + 28].copy_from_slice(&size.to_le_bytes()),
            _ => {}
        }
        i += 1;
    }
    std::fs::write(path, b).unwrap();
}

struct Case {
    name: &'static str,
    make: Box<dyn Fn(&Path)>,
    expect: &'static str,
    extra: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "zip-slip",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("../../escaped.jsonl", b"{}\n"),
                    ],
                )
            }),
            expect: "escapes the archive",
            extra: vec![],
        },
        Case {
            name: "absolute path",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("/tmp/thrum-evil.jsonl", b"{}\n"),
                    ],
                )
            }),
            expect: "absolute path",
            extra: vec![],
        },
        Case {
            name: "symlink",
            make: Box::new(|p| {
                let mut zip = zip::ZipWriter::new(std::fs::File::create(p).unwrap());
                zip.start_file("manifest.json", SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(MANIFEST).unwrap();
                zip.add_symlink("events.jsonl", "/etc/passwd", SimpleFileOptions::default())
                    .unwrap();
                zip.finish().unwrap();
            }),
            expect: "symbolic links",
            extra: vec![],
        },
        Case {
            name: "duplicate entries",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("events.jsonl", b"{}\n"),
                        ("events.jsonX", b"{}\n"),
                    ],
                );
                patch(p, b"events.jsonX", b"events.jsonl");
            }),
            expect: "duplicate",
            extra: vec![],
        },
        Case {
            name: "zip bomb over the size cap",
            make: Box::new(|p| {
                let zeros = vec![0u8; 40 << 20];
                build(p, &[("manifest.json", MANIFEST), ("events.jsonl", &zeros)]);
            }),
            expect: "exceeds the limit",
            extra: vec!["--max-size", "10000000"],
        },
        Case {
            name: "entry larger than its header says",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("events.jsonl", &b"{\"a\":1}\n".repeat(200)),
                    ],
                );
                lie_about_size(p, 16);
            }),
            expect: "larger than",
            extra: vec![],
        },
        Case {
            name: "truncated zip",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("events.jsonl", &b"{\"a\":1}\n".repeat(500)),
                    ],
                );
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
            expect: "not a valid zip",
            extra: vec![],
        },
        Case {
            name: "not a zip at all",
            make: Box::new(|p| std::fs::write(p, b"hello, I am not a zip").unwrap()),
            expect: "not a valid zip",
            extra: vec![],
        },
        Case {
            name: "malformed JSONL in local/",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("events.jsonl", b"{}\n"),
                        (
                            "local/message_reads.jsonl",
                            b"{\"message_id\":\"m\"}\n{broken\n",
                        ),
                    ],
                )
            }),
            expect: "local/message_reads.jsonl: line 2",
            extra: vec![],
        },
        Case {
            name: "JSONL with a NUL byte",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("events.jsonl", b"{}\n{\"a\":\"\0\"}\n"),
                    ],
                )
            }),
            expect: "events.jsonl: line 2",
            extra: vec![],
        },
        Case {
            name: "very long name",
            make: Box::new(|p| {
                let long = format!("messages/{}.jsonl", "a".repeat(5000));
                build(p, &[("manifest.json", MANIFEST), (long.as_str(), b"{}\n")]);
            }),
            expect: "longer than",
            extra: vec![],
        },
        Case {
            name: "non-UTF-8 name",
            make: Box::new(|p| {
                build(
                    p,
                    &[
                        ("manifest.json", MANIFEST),
                        ("messages/\u{e9}t\u{e9}.jsonl", b"{}\n"),
                    ],
                );
                // Replace the UTF-8 bytes of the name with Latin-1 ones, flag left as it is.
                patch(p, "\u{e9}t\u{e9}".as_bytes(), b"\xe9t\xe9\x20\x20");
            }),
            expect: "entry",
            extra: vec![],
        },
        Case {
            name: "huge JSONL line",
            make: Box::new(|p| {
                let mut line = b"{\"a\":\"".to_vec();
                line.resize(65 << 20, b'x');
                line.extend_from_slice(b"\"}\n");
                build(p, &[("manifest.json", MANIFEST), ("events.jsonl", &line)]);
            }),
            expect: "longer than 64 MiB",
            extra: vec![],
        },
        Case {
            name: "no manifest",
            make: Box::new(|p| build(p, &[("events.jsonl", b"{}\n")])),
            expect: "no manifest.json",
            extra: vec![],
        },
        Case {
            name: "unknown column in a local table",
            make: Box::new(|p| {
                build(p, &[
                    ("manifest.json", MANIFEST),
                    ("events.jsonl", b"{}\n"),
                    ("local/message_reads.jsonl", b"{\"message_id\":\"m\",\"session_id\":\"s\",\"agent_id\":\"a\",\"read_at\":\"t\",\"evil\":1}\n"),
                ])
            }),
            expect: "column \"evil\" does not exist",
            extra: vec![],
        },
    ]
}

#[test]
fn hostile_archives_are_refused_and_nothing_changes() {
    let fx = Fx::new();
    fx.create();
    let outside = fx.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for case in cases() {
        let path: PathBuf = fx
            .tmp
            .path()
            .join(format!("{}.zip", case.name.replace([' ', '/'], "-")));
        (case.make)(&path);
        let ws_before = tree(fx.root());
        let backup_before = tree(&fx.repo_dir());
        let out = fx
            .cmd()
            .arg("restore")
            .arg(&path)
            .arg("--yes")
            .args(&case.extra)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{}: accepted", case.name);
        assert!(
            err.contains(case.expect),
            "{}: message {err:?} lacks {:?}",
            case.name,
            case.expect
        );
        assert!(
            err.contains(".zip") || err.contains(".jsonl"),
            "{}: error does not name the file: {err}",
            case.name
        );
        assert_eq!(
            tree(fx.root()),
            ws_before,
            "{}: the workspace changed",
            case.name
        );
        assert_eq!(
            tree(&fx.repo_dir()),
            backup_before,
            "{}: the backup dir changed",
            case.name
        );
        assert!(!fx.tmp.path().join("escaped.jsonl").exists());
        assert!(!Path::new("/tmp/thrum-evil.jsonl").exists());
    }
}

#[test]
fn overlapping_entries_are_refused() {
    let fx = Fx::new();
    fx.create();
    let path = fx.tmp.path().join("overlap.zip");
    build(
        &path,
        &[
            ("manifest.json", MANIFEST),
            ("events.jsonl", b"{}\n"),
            ("messages/x.jsonl", b"{}\n"),
        ],
    );
    // Point the last central record at the second entry's local header.
    let mut b = std::fs::read(&path).unwrap();
    let centrals: Vec<usize> = (0..b.len() - 4)
        .filter(|&i| b[i..i + 4] == [0x50, 0x4b, 0x01, 0x02])
        .collect();
    let second_offset = b[centrals[1] + 42..centrals[1] + 46].to_vec();
    let last = centrals[2];
    b[last + 42..last + 46].copy_from_slice(&second_offset);
    std::fs::write(&path, b).unwrap();
    let before = tree(fx.root());
    let out = fx
        .cmd()
        .arg("restore")
        .arg(&path)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("overlap") || err.contains("not a valid zip") || err.contains("entry"),
        "{err}"
    );
    assert_eq!(tree(fx.root()), before);
}

#[test]
fn tampered_archive_content_fails_its_checksum() {
    let mut fx = Fx::new();
    fx.create();
    fx.ws.add_messages(3).unwrap();
    let r = fx.create();
    let archived = PathBuf::from(r["archived"].as_str().unwrap());
    // Rewrite the archive with one event changed; the zip itself stays valid (fresh CRCs).
    let tampered = fx.tmp.path().join("tampered.zip");
    {
        let mut src = zip::ZipArchive::new(std::fs::File::open(&archived).unwrap()).unwrap();
        let mut out = zip::ZipWriter::new(std::fs::File::create(&tampered).unwrap());
        for i in 0..src.len() {
            let mut f = src.by_index(i).unwrap();
            let name = f.name().unwrap().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            if name == "events.jsonl" {
                data[10] ^= 0x01;
            }
            out.start_file(name, SimpleFileOptions::default()).unwrap();
            out.write_all(&data).unwrap();
        }
        out.finish().unwrap();
    }
    let before = tree(fx.root());
    let out = fx
        .cmd()
        .arg("restore")
        .arg(&tampered)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("blake3 checksum"), "{}", stderr(&out));
    assert_eq!(tree(fx.root()), before);
    let v = fx.cmd().arg("verify").arg(&tampered).output().unwrap();
    assert_eq!(v.status.code(), Some(3));
}

#[test]
fn verify_finds_a_changed_file_in_current() {
    let fx = Fx::new();
    fx.create();
    fx.cmd().arg("verify").assert().success();
    let f = fx.current().join("config/config.json");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[0] ^= 0x20;
    std::fs::write(&f, bytes).unwrap();
    std::fs::write(fx.current().join("intruder.txt"), b"x").unwrap();
    let out = fx.cmd().arg("verify").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("config/config.json: blake3 does not match"),
        "{text}"
    );
    assert!(text.contains("intruder.txt: not listed"), "{text}");
    // restore refuses a current/ that does not verify.
    let out = fx.cmd().args(["restore", "--yes"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn broken_workspaces_get_clear_errors_and_keep_the_previous_backup() {
    let fx = Fx::new();
    fx.create();
    let backup_before = tree(&fx.repo_dir());
    let cfg = fx.thrum().join("config.json");
    let good_cfg = std::fs::read(&cfg).unwrap();
    let db = fx.ws.db_path.clone();
    let good_db = std::fs::read(&db).unwrap();

    // config.json with a wrong type.
    std::fs::write(&cfg, br#"{"backup": {"retention": {"daily": "five"}}}"#).unwrap();
    let out = fx.cmd().arg("create").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("backup.retention.daily: expected an integer"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("config.json"));
    std::fs::write(&cfg, br#"{"backup": "#).unwrap();
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
    std::fs::write(&cfg, &good_cfg).unwrap();

    // messages.db that is not a database, then a corrupt one.
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
    std::fs::write(&db, vec![b'z'; 16384]).unwrap();
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("messages.db"), "{}", stderr(&out));
    let mut corrupt = good_db.clone();
    for b in corrupt.iter_mut().skip(4096).take(8192) {
        *b = 0xA5;
    }
    std::fs::write(&db, &corrupt).unwrap();
    // The full check runs now (between scheduled checks a copy is compared page by page and
    // restore checks it: bad_days::a_database_damaged_between_full_checks_…).
    let out = fx.cmd().args(["create", "--check-db"]).output().unwrap();
    assert!(!out.status.success(), "a corrupt database was backed up");
    assert!(stderr(&out).contains("messages.db"), "{}", stderr(&out));
    assert_eq!(
        tree(&fx.repo_dir()),
        backup_before,
        "a failed create changed the backup dir"
    );
    std::fs::write(&db, &good_db).unwrap();

    // A redirect that points nowhere.
    std::fs::write(fx.thrum().join("redirect"), b"/nonexistent/main/.thrum\n").unwrap();
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(stderr(&out).contains("redirect"), "{}", stderr(&out));
    std::fs::remove_file(fx.thrum().join("redirect")).unwrap();

    // A sync worktree that is a file.
    let sync = fx.ws.sync_dir.clone();
    let moved = fx.tmp.path().join("sync-moved");
    std::fs::rename(&sync, &moved).unwrap();
    std::fs::write(&sync, b"not a dir").unwrap();
    let out = fx.cmd().arg("create").output().unwrap();
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(&sync).unwrap();
    std::fs::rename(&moved, &sync).unwrap();

    assert_eq!(tree(&fx.repo_dir()), backup_before);
    fx.cmd().arg("verify").assert().success();
    fx.cmd().arg("create").assert().success();
}

#[test]
fn a_locked_database_is_waited_for_then_reported() {
    let fx = Fx::new();
    // Rollback-journal mode with an exclusive lock held: readers cannot get in.
    let conn = rusqlite::Connection::open(&fx.ws.db_path).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let started = std::time::Instant::now();
    let out = fx
        .cmd()
        .env("THRUM_BACKUP_DB_WAIT", "1")
        .arg("create")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("locked"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(!fx.current().exists());
}
