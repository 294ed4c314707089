//! `diff`: two snapshots compared — which files were added, removed or changed (by the
//! manifests' checksums, without reading the files), then what that means to a thrum user:
//! new events, messages added, changed or gone per agent's log, rows added and removed per
//! local table, identities and context files added or removed, plugin data changed. Only the
//! files that changed are read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Listed, Reader, Snapshot, ls};
use crate::error::Result;

/// A file added, removed or changed.
#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    /// The snapshot path.
    pub path: String,
    /// Bytes in the first snapshot (`None`: added).
    pub size_a: Option<u64>,
    /// Bytes in the second snapshot (`None`: removed).
    pub size_b: Option<u64>,
}

/// What changed in one agent's message log (or the event log), by message or event id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogChange {
    /// The snapshot path of the log.
    pub path: String,
    /// Ids in the second snapshot only.
    pub added: u64,
    /// Ids in the first snapshot only.
    pub removed: u64,
    /// Ids in both, with another line.
    pub changed: u64,
    /// Lines without an id (or not JSON), counted by their text.
    pub other_lines_added: u64,
    /// Lines without an id that are gone.
    pub other_lines_removed: u64,
}

/// Rows of a local table added and removed (each row is a line of `local/<table>.jsonl`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableChange {
    /// The table.
    pub table: String,
    /// Rows added.
    pub added: u64,
    /// Rows removed.
    pub removed: u64,
}

/// What `diff` found.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The first snapshot.
    pub a: String,
    /// When it was taken.
    pub a_time: Option<DateTime<Utc>>,
    /// The second snapshot.
    pub b: String,
    /// When it was taken.
    pub b_time: Option<DateTime<Utc>>,
    /// Files added.
    pub added: Vec<FileChange>,
    /// Files removed.
    pub removed: Vec<FileChange>,
    /// Files changed.
    pub changed: Vec<FileChange>,
    /// Files the same in both.
    pub unchanged: u64,
    /// Events in the second snapshot's log that the first's lacks (by event id).
    pub events: Option<LogChange>,
    /// Each changed message log (`messages/`, `messages-v2/`), by message or event id.
    pub messages: Vec<LogChange>,
    /// Each changed local table.
    pub tables: Vec<TableChange>,
    /// Identities (`config/identities/*.json`) added and removed, by name.
    pub identities_added: Vec<String>,
    /// Identities removed.
    pub identities_removed: Vec<String>,
    /// Context files added.
    pub context_added: Vec<String>,
    /// Context files removed.
    pub context_removed: Vec<String>,
    /// Plugins whose data changed, with the number of their files added, removed or changed.
    pub plugins: BTreeMap<String, u64>,
}

/// Compare `a` with `b` (changes are what happened from `a` to `b`).
pub fn diff(a: &Snapshot, b: &Snapshot) -> Result<Diff> {
    let la = ls(a, &[])?;
    let lb = ls(b, &[])?;
    let fa: BTreeMap<&str, &Listed> = la.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let fb: BTreeMap<&str, &Listed> = lb.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut d = Diff {
        a: la.snapshot.clone(),
        a_time: la.time,
        b: lb.snapshot.clone(),
        b_time: lb.time,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        unchanged: 0,
        events: None,
        messages: Vec::new(),
        tables: Vec::new(),
        identities_added: Vec::new(),
        identities_removed: Vec::new(),
        context_added: Vec::new(),
        context_removed: Vec::new(),
        plugins: BTreeMap::new(),
    };
    let paths: BTreeSet<&str> = fa.keys().chain(fb.keys()).copied().collect();
    for path in paths {
        if path == crate::manifest::FILE_NAME {
            continue;
        }
        let (x, y) = (fa.get(path), fb.get(path));
        let change = FileChange {
            path: path.to_owned(),
            size_a: x.map(|f| f.size),
            size_b: y.map(|f| f.size),
        };
        match (x, y) {
            (Some(_), None) => d.removed.push(change),
            (None, Some(_)) => d.added.push(change),
            (Some(x), Some(y)) if same(x, y) => d.unchanged += 1,
            _ => d.changed.push(change),
        }
    }
    let mut ra = Reader::open(a)?;
    let mut rb = Reader::open(b)?;
    for c in d.added.iter().chain(&d.removed).chain(&d.changed) {
        let p = c.path.as_str();
        if let Some(name) = p.strip_prefix("plugins/").and_then(|r| r.split('/').next()) {
            *d.plugins.entry(name.to_owned()).or_insert(0) += 1;
        }
    }
    let named = |list: &[FileChange], dir: &str| -> Vec<String> {
        list.iter()
            .filter_map(|c| c.path.strip_prefix(dir))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect()
    };
    d.identities_added = named(&d.added, "config/identities/");
    d.identities_removed = named(&d.removed, "config/identities/");
    d.context_added = named(&d.added, "config/context/");
    d.context_removed = named(&d.removed, "config/context/");
    let touched: Vec<String> = d
        .added
        .iter()
        .chain(&d.removed)
        .chain(&d.changed)
        .map(|c| c.path.clone())
        .collect();
    for p in &touched {
        let is_log = is_log(p);
        let table = p
            .strip_prefix("local/")
            .and_then(|t| t.strip_suffix(".jsonl"));
        if !is_log && table.is_none() {
            continue;
        }
        if let Some(t) = table {
            let mut rows = Multiset::default();
            ra.for_each_line(p, &mut |l| rows.count(l, -1))?;
            rb.for_each_line(p, &mut |l| rows.count(l, 1))?;
            let (added, removed) = rows.added_removed();
            d.tables.push(TableChange {
                table: t.to_owned(),
                added,
                removed,
            });
        } else {
            let (mut old, mut new) = (LogIndex::default(), LogIndex::default());
            ra.for_each_line(p, &mut |l| old.add(l))?;
            rb.for_each_line(p, &mut |l| new.add(l))?;
            let change = log_diff(p, old, new);
            if p == "events.jsonl" {
                d.events = Some(change);
            } else {
                d.messages.push(change);
            }
        }
    }
    Ok(d)
}

/// Whether `path` is one of thrum's logs whose lines carry message or event ids: the event
/// log, or an agent's message log (legacy or v2).
pub(super) fn is_log(path: &str) -> bool {
    path == "events.jsonl"
        || ((path.starts_with("messages/") || path.starts_with("messages-v2/"))
            && path.ends_with(".jsonl"))
}

/// Whether two listed files have the same content: by checksum when both have one of one
/// kind, else by size (thrum's archives carry no checksums).
fn same(x: &Listed, y: &Listed) -> bool {
    match (&x.checksum, &y.checksum) {
        (Some(a), Some(b)) if a.split(':').next() == b.split(':').next() => a == b,
        _ => x.size == y.size,
    }
}

/// A line's (or an id's) fingerprint: the first 128 bits of its BLAKE3 hash. `diff` keeps
/// these instead of the lines, so that comparing two logs of millions of lines holds a few
/// dozen bytes per line, not the logs; two different lines sharing one is a 2^-128 chance.
type Fingerprint = [u8; 16];

fn fingerprint(bytes: &[u8]) -> Fingerprint {
    let mut f = [0u8; 16];
    f.copy_from_slice(&blake3::hash(bytes).as_bytes()[..16]);
    f
}

/// Blank lines count for nothing.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// Lines counted with their multiplicity: `-1` for each line of the old file, `+1` for each
/// of the new.
#[derive(Default)]
struct Multiset(HashMap<Fingerprint, i64>);

impl Multiset {
    fn count(&mut self, line: &[u8], by: i64) {
        if !is_blank(line) {
            self.count_fingerprint(fingerprint(line), by);
        }
    }

    fn count_fingerprint(&mut self, f: Fingerprint, by: i64) {
        *self.0.entry(f).or_insert(0) += by;
    }

    /// Lines added and removed.
    fn added_removed(&self) -> (u64, u64) {
        let added = self.0.values().filter(|&&n| n > 0).map(|&n| n as u64).sum();
        let removed = self
            .0
            .values()
            .filter(|&&n| n < 0)
            .map(|&n| n.unsigned_abs())
            .sum();
        (added, removed)
    }
}

/// The id of a thrum log line: its `message_id`, else its `event_id`, else its `id`.
fn line_id(line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    ["message_id", "event_id", "id"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_owned))
}

/// One side of a log compared by id: each id's last line (an id seen again, a message edited
/// later, is represented by its last line), and the lines without an id.
#[derive(Default)]
struct LogIndex {
    by_id: HashMap<Fingerprint, Fingerprint>,
    other: Vec<Fingerprint>,
}

impl LogIndex {
    fn add(&mut self, line: &[u8]) {
        if is_blank(line) {
            return;
        }
        match line_id(line) {
            Some(id) => {
                self.by_id
                    .insert(fingerprint(id.as_bytes()), fingerprint(line));
            }
            None => self.other.push(fingerprint(line)),
        }
    }
}

fn log_diff(path: &str, a: LogIndex, b: LogIndex) -> LogChange {
    let mut other = Multiset::default();
    a.other
        .into_iter()
        .for_each(|f| other.count_fingerprint(f, -1));
    b.other
        .into_iter()
        .for_each(|f| other.count_fingerprint(f, 1));
    let (other_added, other_removed) = other.added_removed();
    LogChange {
        path: path.to_owned(),
        added: b.by_id.keys().filter(|k| !a.by_id.contains_key(*k)).count() as u64,
        removed: a.by_id.keys().filter(|k| !b.by_id.contains_key(*k)).count() as u64,
        changed: a
            .by_id
            .iter()
            .filter(|(k, v)| b.by_id.get(*k).is_some_and(|w| w != *v))
            .count() as u64,
        other_lines_added: other_added,
        other_lines_removed: other_removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(bytes: &[u8]) -> LogIndex {
        let mut i = LogIndex::default();
        bytes.split(|&b| b == b'\n').for_each(|l| i.add(l));
        i
    }

    fn rows(old: &[u8], new: &[u8]) -> (u64, u64) {
        let mut m = Multiset::default();
        old.split(|&b| b == b'\n').for_each(|l| m.count(l, -1));
        new.split(|&b| b == b'\n').for_each(|l| m.count(l, 1));
        m.added_removed()
    }

    #[test]
    fn logs_are_compared_by_id_and_tables_by_line() {
        let old = b"{\"message_id\":\"m1\",\"b\":1}\n{\"message_id\":\"m2\",\"b\":1}\nnot json\n";
        let new = b"{\"message_id\":\"m2\",\"b\":2}\n{\"message_id\":\"m3\",\"b\":1}\n";
        let c = log_diff("messages/a.jsonl", index(old), index(new));
        assert_eq!((c.added, c.removed, c.changed), (1, 1, 1));
        assert_eq!((c.other_lines_added, c.other_lines_removed), (0, 1));
        assert_eq!(rows(b"a\nb\nb\n", b"b\nc\n"), (1, 2));
        assert_eq!(rows(b"a\n\n  \n", b"a"), (0, 0));
        // Each line without an id counts, and an id seen again stands for itself once.
        let old = b"x\ny\n{\"event_id\":\"e\",\"v\":1}\n";
        let new = b"y\nz\nw\n{\"event_id\":\"e\",\"v\":2}\n{\"event_id\":\"e\",\"v\":1}\n";
        let c = log_diff("events.jsonl", index(old), index(new));
        assert_eq!((c.added, c.removed, c.changed), (0, 0, 0));
        assert_eq!((c.other_lines_added, c.other_lines_removed), (2, 1));
    }
}
