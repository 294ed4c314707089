//! The SDK's JSON Lines check (`plugin-sdk/src/jsonl.rs`) against serde_json, line by line.

use proptest::prelude::*;
use serde::de::IgnoredAny;

use super::sdk_jsonl::{Invalid, Lines, Problem, check_lines};

/// What serde_json says of each line: `Ok((lines, values))`, or the first bad line.
fn oracle(block: &[u8]) -> Result<(u64, u64), u64> {
    let (mut lines, mut values) = (0, 0);
    for line in block.split_inclusive(|&b| b == b'\n') {
        lines += 1;
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        if body.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            continue;
        }
        // Skipping a string, serde_json does not look at its UTF-8: check that apart.
        if std::str::from_utf8(body).is_err() || serde_json::from_slice::<IgnoredAny>(body).is_err()
        {
            return Err(lines);
        }
        values += 1;
    }
    Ok((lines, values))
}

fn agree(block: &[u8]) {
    let ours = check_lines(block)
        .map(|l| (l.lines, l.values))
        .map_err(|e| e.line);
    assert_eq!(
        ours,
        oracle(block),
        "{:?}: {:?}",
        String::from_utf8_lossy(block),
        check_lines(block)
    );
}

#[test]
fn every_short_line_over_json_bytes_is_judged_as_serde_json_judges_it() {
    const ALPHABET: &[u8] = b"[]{}\":,0-1.e\\ u";
    let mut line = Vec::new();
    for len in 1..=4u32 {
        for mut n in 0..ALPHABET.len().pow(len) {
            line.clear();
            for _ in 0..len {
                line.push(ALPHABET[n % ALPHABET.len()]);
                n /= ALPHABET.len();
            }
            agree(&line);
        }
    }
}

#[test]
fn hand_picked_lines_are_judged_as_serde_json_judges_them() {
    let lines: &[&[u8]] = &[
        br#"{"id":"bd-1","n":-0.5e+10,"ok":true,"x":null,"a":[1,[2,{}],[]]}"#,
        br#"  { "a" : [ 1 , 2 ] , "b" : { } }  "#,
        b"\t\"tab\"\r",
        br#""\u00e9\ud800\uDFFF\"\\\/\b\f\n\r\t""#,
        "\"caf\u{e9} \u{4e2d}\u{6587} \u{1f600}\"".as_bytes(),
        b"0",
        b"-0",
        b"1E5",
        b"true",
        b"[1,2]",
        br#"{"a":1}x"#,
        br#"{"a":1,}"#,
        b"[1,]",
        b"[,1]",
        b"{,}",
        br#"{"a"}"#,
        br#"{"a":}"#,
        br#"{1:2}"#,
        b"01",
        b"-",
        b"1.",
        b".5",
        b"1e",
        b"1e+",
        b"+1",
        b"tru",
        b"nulls",
        br#""\x""#,
        br#""\u12""#,
        br#""\u12g4""#,
        b"\"tab\tinside\"",
        b"\"nul\0\"",
        b"\"open",
        b"[1 2]",
        b"{} {}",
        b"\"\xff\"",
        b"\"\xc3\"",
        b"\"\xe2\x82\"",
        b"\"\xed\xa0\x80\"",
        b"\"\xf4\x90\x80\x80\"",
        b"\"\xc0\xaf\"",
        b"\xef\xbb\xbf{}",
        b"\x0c{}",
        "\u{a0}".as_bytes(),
    ];
    for line in lines {
        agree(line);
    }
}

#[test]
fn lines_are_counted_and_the_first_problem_is_placed() {
    let block = b"{\"a\":1}\n\n  \r\n[true]\r\n\"last, no newline\"";
    assert_eq!(
        check_lines(block),
        Ok(Lines {
            lines: 5,
            values: 3
        })
    );
    assert_eq!(check_lines(b""), Ok(Lines::default()));
    let at = |block: &[u8]| check_lines(block).unwrap_err();
    assert_eq!(
        at(b"{}\n[1,\n2]\n"),
        Invalid {
            line: 2,
            byte: 4,
            problem: Problem::Json("the line ends inside a value")
        }
    );
    assert_eq!(
        at(b"{}\n\"caf\xc3\"\n{x}"),
        Invalid {
            line: 2,
            byte: 5,
            problem: Problem::Utf8
        }
    );
    assert_eq!(
        at(b"{} \xff"),
        Invalid {
            line: 1,
            byte: 4,
            problem: Problem::Utf8
        }
    );
    assert_eq!(
        at(b"[1]\n{\"a\" 1}"),
        Invalid {
            line: 2,
            byte: 6,
            problem: Problem::Json("expected ':'")
        }
    );
}

#[test]
fn nesting_is_not_limited_by_the_stack() {
    let depth = 100_000;
    let mut line = vec![b'['; depth];
    line.extend(std::iter::repeat_n(b']', depth));
    agree(&line);
    line.pop();
    agree(&line);
}

/// A JSON value as serde_json writes it.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bytes that change what a line means when put in one.
const EDITS: &[&[u8]] = &[
    b" ",
    b"\t",
    b"\r",
    b"\n",
    b",",
    b":",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"\\",
    b"\\u",
    b"0",
    b"-",
    b".",
    b"e",
    b"+",
    b"x",
    b"\0",
    b"\x1f",
    b"\x7f",
    b"\xc3\xa9",
    b"\xc3",
    b"\x80",
    b"\xed\xa0\x80",
    b"\xf0\x9f\x98\x80",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Blocks of serde_json's own lines, then edited at random: judged alike, line by line.
    #[test]
    fn edited_blocks_are_judged_as_serde_json_judges_them(
        values in proptest::collection::vec(json_value(), 1..5),
        pretty in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0..EDITS.len() + 1), 0..4),
    ) {
        let mut block = Vec::new();
        for v in &values {
            let text = if pretty {
                serde_json::to_string_pretty(v).unwrap().replace('\n', " ")
            } else {
                serde_json::to_string(v).unwrap()
            };
            block.extend_from_slice(text.as_bytes());
            block.push(b'\n');
        }
        agree(&block);
        for (at, edit) in edits {
            let i = at.index(block.len() + 1);
            match EDITS.get(edit) {
                Some(bytes) => {
                    block.splice(i..i, bytes.iter().copied());
                }
                None if i < block.len() => {
                    block.remove(i);
                }
                None => {}
            }
            agree(&block);
        }
    }
}
