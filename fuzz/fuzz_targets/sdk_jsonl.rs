//! The plugin SDK's JSON Lines check against serde_json: for any bytes, both accept the same
//! lines, and the first bad line they name is the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;

#[path = "../../plugin-sdk/src/jsonl.rs"]
#[allow(dead_code)]
mod jsonl;

fuzz_target!(|data: &[u8]| {
    let ours = jsonl::check_lines(data)
        .map(|l| (l.lines, l.values))
        .map_err(|e| e.line);
    let (mut lines, mut values, mut bad) = (0, 0, None);
    for line in data.split_inclusive(|&b| b == b'\n') {
        lines += 1;
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            continue;
        }
        if std::str::from_utf8(body).is_err() || serde_json::from_slice::<IgnoredAny>(body).is_err()
        {
            bad = Some(lines);
            break;
        }
        values += 1;
    }
    assert_eq!(ours, bad.map_or(Ok((lines, values)), Err));
});
