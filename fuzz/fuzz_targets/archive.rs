//! Archive reading and the restore checks: any bytes, as a zip, must be refused or extracted
//! inside the destination, never panic, never write elsewhere.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thrum_backup::archive::{CheckedArchive, Limits};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.zip");
    std::fs::write(&path, data).expect("write");
    let limits = Limits {
        max_total: 8 << 20,
        max_entries: 1000,
        ..Limits::default()
    };
    let Ok(mut archive) = CheckedArchive::open(&path, &limits) else {
        return;
    };
    let _ = archive.manifest();
    let dest = dir.path().join("out");
    std::fs::create_dir(&dest).expect("mkdir");
    let progress = thrum_backup::progress::Silent;
    let _ = archive.extract_all(&dest, &Default::default(), &progress, &Default::default());
    let manifest = thrum_backup::manifest::Manifest::from_slice(
        br#"{"version": 1, "timestamp": "2026-01-01T00:00:00Z"}"#,
    )
    .expect("manifest");
    let _ = thrum_backup::restore::check_jsonl_tree(&dest, &manifest, "fuzz");
    // Nothing may appear beside the destination.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["in.zip", "out"]);
});
