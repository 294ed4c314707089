//! The one JSON Lines rule: the SDK's checker (`plugin-sdk/src/jsonl.rs`, compiled here from
//! the same file, held against serde_json by `plugin::sdk_jsonl_tests`), fed a file in blocks.
//!
//! What the rule is used for is the callers' business: `create` records what it finds as a
//! warning (thrum's daemon can leave a torn last line after a crash, and such a log must still
//! be backed up and restored exactly); `restore` refuses only a file it has no checksum to
//! trust (thrum's own archives).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

#[path = "../../plugin-sdk/src/jsonl.rs"]
#[allow(dead_code, missing_docs, unused_qualifications)]
pub(crate) mod rules;

/// Longest line buffered to check it (thrum's lines are a few KiB); a longer one is reported
/// as such, not read into memory.
pub const MAX_LINE: usize = 64 << 20;

/// The first line of a file that is not one JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The file (a snapshot path, or as shown to the user).
    pub path: String,
    /// 1-based line number.
    pub line: u64,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {}: {}", self.path, self.line, self.problem)
    }
}

/// A stream fed in blocks, cut into runs of whole lines: the unfinished last line is held
/// until its end comes, up to [`MAX_LINE`]. The one line splitter of `create`'s check and of
/// `diff` and `find`.
#[derive(Debug, Default)]
pub struct LineCarry {
    held: Vec<u8>,
}

/// A line longer than [`MAX_LINE`] (not held: a file could make it any size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line is longer than {} MiB", MAX_LINE >> 20)
    }
}

impl LineCarry {
    /// Feed the next bytes: `lines` gets every run of whole lines they end, each run ending
    /// with `\n` (a line begun in earlier bytes in a run of its own); the rest is held. A held
    /// line that grows past [`MAX_LINE`] is dropped and is an error.
    pub fn feed(&mut self, bytes: &[u8], mut lines: impl FnMut(&[u8])) -> Result<(), TooLong> {
        let Some(last) = bytes.iter().rposition(|&b| b == b'\n') else {
            return self.hold(bytes);
        };
        let mut whole = &bytes[..=last];
        if !self.held.is_empty() {
            // Only the held line is joined, not the whole block.
            let end = whole.iter().position(|&b| b == b'\n').unwrap_or(last);
            self.held.extend_from_slice(&whole[..=end]);
            lines(&self.held);
            self.held.clear();
            whole = &whole[end + 1..];
        }
        if !whole.is_empty() {
            lines(whole);
        }
        self.hold(&bytes[last + 1..])
    }

    fn hold(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        if self.held.len() + bytes.len() > MAX_LINE {
            self.held.clear();
            return Err(TooLong);
        }
        self.held.extend_from_slice(bytes);
        Ok(())
    }

    /// The last line, when the stream did not end with `\n` (empty when it did).
    pub fn finish(self) -> Vec<u8> {
        self.held
    }
}

/// Checks a stream of bytes, line by line, and keeps the first problem.
#[derive(Debug, Default)]
pub struct Checker {
    carry: LineCarry,
    found: Found,
}

/// What a [`Checker`] found so far.
#[derive(Debug, Default)]
struct Found {
    /// Lines checked.
    lines: u64,
    first: Option<(u64, String)>,
}

impl Checker {
    /// A checker whose first line is line `first_line` of the file.
    pub fn starting_at(first_line: u64) -> Self {
        Self {
            carry: LineCarry::default(),
            found: Found {
                lines: first_line.saturating_sub(1),
                first: None,
            },
        }
    }

    /// Check the next bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.found.first.is_some() {
            return;
        }
        let found = &mut self.found;
        if let Err(e) = self.carry.feed(bytes, |lines| found.check(lines)) {
            // Nothing after the first problem is looked at.
            found.first.get_or_insert((found.lines + 1, e.to_string()));
        }
    }

    /// The first problem, naming `path`; a last line without its newline that is not JSON
    /// is called torn (thrum's daemon leaves one when it dies mid-write).
    pub fn finish(self, path: &str) -> Option<Issue> {
        let Self { carry, mut found } = self;
        let last = carry.finish();
        if found.first.is_none() && !last.is_empty() {
            found.check(&last);
            if let Some((_, what)) = &mut found.first {
                *what = format!("torn last line (no newline, {what})");
            }
        }
        found.first.map(|(line, problem)| Issue {
            path: path.to_owned(),
            line,
            problem,
        })
    }
}

impl Found {
    fn check(&mut self, block: &[u8]) {
        if self.first.is_some() {
            return;
        }
        match rules::check_lines(block) {
            Ok(l) => self.lines += l.lines,
            Err(bad) => {
                let what = match bad.problem {
                    rules::Problem::Utf8 => "not UTF-8".to_owned(),
                    rules::Problem::Json(expected) => format!("not valid JSON ({expected})"),
                };
                self.first = Some((
                    self.lines + bad.line,
                    format!("{what} at byte {}", bad.byte),
                ));
            }
        }
    }
}

/// Check the file at `file` from byte `from` (the start of a line, line number `first_line`),
/// naming it `shown`.
pub fn check_file(file: &Path, from: u64, first_line: u64, shown: &str) -> Result<Option<Issue>> {
    use std::io::Seek;
    let mut f = std::fs::File::open(file).at("open", file)?;
    f.seek(std::io::SeekFrom::Start(from)).at("read", file)?;
    let mut checker = Checker::starting_at(first_line);
    let mut block = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).at("read", file),
        };
        checker.feed(&block[..n]);
    }
    Ok(checker.finish(shown))
}

/// Whether a snapshot path holds JSON Lines of thrum's (plugin output is the plugin's).
pub fn is_jsonl(rel: &str) -> bool {
    rel.ends_with(".jsonl") && !rel.starts_with("plugins/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(chunks: &[&[u8]]) -> Option<Issue> {
        let mut c = Checker::default();
        for ch in chunks {
            c.feed(ch);
        }
        c.finish("f")
    }

    /// Runs of whole lines come out as they were fed, the held line joined only to its own
    /// end; what is held never passes `MAX_LINE`.
    #[test]
    fn the_line_carry_joins_only_the_held_line_and_holds_no_more_than_max_line() {
        let mut runs: Vec<Vec<u8>> = Vec::new();
        let mut c = LineCarry::default();
        for block in [&b"a"[..], b"b\nc\nd", b"", b"e", b"\n", b"f\ng\n", b"h"] {
            c.feed(block, |r| runs.push(r.to_vec())).unwrap();
            assert!(runs.iter().all(|r| r.ends_with(b"\n")));
        }
        let want: [&[u8]; 5] = [b"ab\n", b"c\n", b"de\n", b"f\ng\n", b"h"];
        runs.push(c.finish());
        assert_eq!(runs, want);

        let mut c = LineCarry::default();
        let mib = vec![b'x'; 1 << 20];
        let mut fed = 0;
        let err = loop {
            match c.feed(&mib, |_| panic!("no line ended")) {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
            assert!(c.held.len() <= MAX_LINE);
        };
        assert_eq!(fed, MAX_LINE >> 20);
        assert_eq!(err.to_string(), "line is longer than 64 MiB");
        assert!(c.held.is_empty(), "the too long line is dropped");
    }

    #[test]
    fn lines_split_across_blocks_are_checked_whole() {
        assert_eq!(check(&[b"{\"a\":", b"1}\n{\"b\"", b":2}\n"]), None);
        let bad = check(&[b"{\"a\":1}\n{\"a\"", b"1}\n"]).unwrap();
        assert_eq!(bad.line, 2);
        assert!(bad.problem.contains("not valid JSON"), "{bad}");
    }

    #[test]
    fn a_torn_last_line_is_named_as_such() {
        let bad = check(&[b"{\"a\":1}\n{\"type\":\"message.create\",\"half\":"]).unwrap();
        assert_eq!(bad.line, 2);
        assert!(bad.problem.starts_with("torn last line"), "{bad}");
        // A complete last line without its newline is fine.
        assert_eq!(check(&[b"{\"a\":1}\n{\"a\":2}"]), None);
    }

    #[test]
    fn nul_bytes_bad_utf8_and_blank_lines() {
        assert_eq!(check(&[b"\n  \n{}\n\r\n"]), None);
        assert!(check(&[b"{\"a\":\"\0\"}\n"]).is_some());
        let bad = check(&[b"{}\n\"\xff\"\n"]).unwrap();
        assert_eq!(bad.line, 2);
        assert!(bad.problem.contains("UTF-8"), "{bad}");
    }

    #[test]
    fn an_overlong_line_is_reported_without_buffering_it() {
        let mut c = Checker::default();
        c.feed(b"{}\n");
        let block = vec![b' '; 1 << 20];
        for _ in 0..(MAX_LINE >> 20) + 1 {
            c.feed(&block);
        }
        c.feed(b"1\n{}\n");
        let bad = c.finish("f").unwrap();
        assert_eq!(bad.line, 2);
        assert!(bad.problem.contains("longer than"), "{bad}");
    }

    #[test]
    fn line_numbers_count_from_where_checking_starts() {
        let mut c = Checker::starting_at(41);
        c.feed(b"{}\nnope\n");
        assert_eq!(c.finish("f").unwrap().line, 42);
    }
}
