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

/// Checks a stream of bytes, line by line, and keeps the first problem.
#[derive(Debug, Default)]
pub struct Checker {
    /// The unfinished last line of what was fed.
    carry: Vec<u8>,
    /// Lines before `carry`.
    lines: u64,
    /// Inside a line too long to buffer: skip to its end.
    skipping: bool,
    first: Option<(u64, String)>,
}

impl Checker {
    /// A checker whose first line is line `first_line` of the file.
    pub fn starting_at(first_line: u64) -> Self {
        Self {
            lines: first_line.saturating_sub(1),
            ..Self::default()
        }
    }

    /// Check the next bytes.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.first.is_some() {
            return;
        }
        if self.skipping {
            match bytes.iter().position(|&b| b == b'\n') {
                None => return,
                Some(nl) => {
                    self.skipping = false;
                    self.lines += 1;
                    bytes = &bytes[nl + 1..];
                }
            }
        }
        let Some(last_nl) = bytes.iter().rposition(|&b| b == b'\n') else {
            self.carry_on(bytes);
            return;
        };
        let (complete, rest) = bytes.split_at(last_nl + 1);
        if self.carry.is_empty() {
            self.check(complete);
        } else {
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(complete);
            self.check(&joined);
        }
        self.carry_on(rest);
    }

    fn carry_on(&mut self, bytes: &[u8]) {
        if self.carry.len() + bytes.len() > MAX_LINE {
            self.first = Some((
                self.lines + 1,
                format!("line is longer than {} MiB", MAX_LINE >> 20),
            ));
            self.carry.clear();
            self.skipping = true;
            return;
        }
        self.carry.extend_from_slice(bytes);
    }

    fn check(&mut self, block: &[u8]) {
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

    /// The first problem, naming `path`; a last line without its newline that is not JSON
    /// is called torn (thrum's daemon leaves one when it dies mid-write).
    pub fn finish(mut self, path: &str) -> Option<Issue> {
        if self.first.is_none() && !self.carry.is_empty() && !self.skipping {
            let last = std::mem::take(&mut self.carry);
            self.check(&last);
            if let Some((_, what)) = &mut self.first {
                *what = format!("torn last line (no newline, {what})");
            }
        }
        self.first.map(|(line, problem)| Issue {
            path: path.to_owned(),
            line,
            problem,
        })
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
