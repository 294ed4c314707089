//! What a thrum workspace holds, as one table: every path thrum v0.10.6 writes, what kind of
//! data it is, whether it is a secret, the mode thrum gives it, and where a snapshot keeps it.
//!
//! Capture, restore and the unknown-file report all read [`ITEMS`]; a new thrum version that
//! adds a file is one row here. The table was read from thrum's source at tag v0.10.6 (see
//! `shared/THRUM-0.10.6.md` in the project): T is the thrum dir, S the sync worktree, W the
//! `.thrum/` of each other git worktree of the repository.
//!
//! Invariant: every captured row maps its live paths to snapshot paths one to one, and no two
//! captured rows claim the same snapshot path (checked by a unit test), so a snapshot path
//! always leads back to exactly one live path.

use std::path::{Path, PathBuf};

use glob::{MatchOptions, Pattern};

use crate::error::{IoContext, Result};

/// Which directory a row's path is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Root {
    /// T: the thrum dir (`.thrum/`, or the target of `.thrum/redirect`).
    Thrum,
    /// S: the sync worktree, `<git-common-dir>/thrum-sync/a-sync/`.
    Sync,
    /// W: the `.thrum/` of another git worktree of the repository.
    Worktree,
}

impl Root {
    /// The letter used in row ids and reports.
    pub fn letter(self) -> &'static str {
        match self {
            Self::Thrum => "T",
            Self::Sync => "S",
            Self::Worktree => "W",
        }
    }
}

/// What kind of data a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The only copy of something: captured and restored.
    SourceOfTruth,
    /// Made by thrum from other data, captured because a user may have edited it.
    DerivedKept,
    /// Made by thrum from other data: not captured, thrum makes it again.
    Derived,
    /// Runtime state (pids, sockets, locks, ports, logs): never captured, never restored.
    Ephemeral,
    /// Belongs to the backup engine or to git, not to thrum: not captured, not reported.
    NotThrums,
}

/// One path (or family of paths) of a thrum workspace.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    /// Which directory `pattern` is relative to.
    pub root: Root,
    /// A glob relative to the root (`*` stays within one folder, `**` spans folders).
    pub pattern: &'static str,
    /// What it is.
    pub kind: Kind,
    /// A secret (tokens, keys): captured unless the user excludes secrets, always private.
    pub secret: bool,
    /// The mode thrum writes the files with.
    pub mode: u32,
    /// Where a snapshot keeps the files: it replaces the pattern's literal folder (or, for a
    /// single file, the whole path). Empty when not captured. For [`Root::Worktree`] rows it
    /// is relative to `worktrees/<name>/`.
    pub snapshot: &'static str,
}

const fn row(root: Root, pattern: &'static str, kind: Kind, snapshot: &'static str) -> Item {
    Item {
        root,
        pattern,
        kind,
        secret: false,
        mode: 0o644,
        snapshot,
    }
}

const fn private(mut item: Item) -> Item {
    item.mode = 0o600;
    item
}

const fn secret(mut item: Item) -> Item {
    item.mode = 0o600;
    item.secret = true;
    item
}

use Kind::{Derived, DerivedKept, Ephemeral, NotThrums, SourceOfTruth};
use Root::{Sync, Thrum, Worktree};

/// The thrum version the table describes.
pub const THRUM_VERSION: &str = "0.10.6";

/// Every path of a thrum v0.10.6 workspace. Rows are matched in order: the first whose
/// pattern matches a path decides what it is.
pub const ITEMS: &[Item] = &[
    // The sync worktree: wire streams (v0.10.6), per-daemon state, the legacy log.
    row(Sync, "events.jsonl", SourceOfTruth, "events.jsonl"),
    row(Sync, "messages/*.jsonl", SourceOfTruth, "messages"),
    row(Sync, "messages.jsonl", SourceOfTruth, "messages.jsonl"),
    row(Sync, "messages-v2/**", SourceOfTruth, "messages-v2"),
    row(Sync, "receipts/**", SourceOfTruth, "receipts"),
    row(Sync, "state/**", SourceOfTruth, "state"),
    // The worktree's link to the repository: made again by `git worktree add` on restore.
    row(Sync, ".git", NotThrums, ""),
    // The thrum dir: config, identities, context (thrum's own backup layout).
    secret(row(
        Thrum,
        "config.json",
        SourceOfTruth,
        "config/config.json",
    )),
    private(row(
        Thrum,
        "identities/*.json",
        SourceOfTruth,
        "config/identities",
    )),
    row(Thrum, "context/*.md", SourceOfTruth, "config/context"),
    // The rest of what thrum v0.10.6 keeps in T (thrum's own backup misses these).
    row(Thrum, "events.jsonl", SourceOfTruth, "thrum/events.jsonl"),
    row(Thrum, "messages/*.jsonl", SourceOfTruth, "thrum/messages"),
    row(
        Thrum,
        "messages.jsonl",
        SourceOfTruth,
        "thrum/messages.jsonl",
    ),
    private(row(
        Thrum,
        "legacy_ingested",
        SourceOfTruth,
        "thrum/legacy_ingested",
    )),
    row(Thrum, "archive/**", SourceOfTruth, "thrum/archive"),
    secret(row(Thrum, ".env", SourceOfTruth, "thrum/.env")),
    secret(row(
        Thrum,
        "var/peers.json",
        SourceOfTruth,
        "thrum/var/peers.json",
    )),
    secret(row(
        Thrum,
        "var/peers.json.pre-rotation-bak",
        SourceOfTruth,
        "thrum/var/peers.json.pre-rotation-bak",
    )),
    secret(row(Thrum, "var/tsnet/**", SourceOfTruth, "thrum/var/tsnet")),
    row(
        Thrum,
        "var/guard-daemon.json",
        SourceOfTruth,
        "thrum/var/guard-daemon.json",
    ),
    row(
        Thrum,
        "role_templates/**",
        DerivedKept,
        "thrum/role_templates",
    ),
    // The database: copied consistently through SQLite (db/messages.db, local/*.jsonl).
    row(Thrum, "var/messages.db", NotThrums, ""),
    row(Thrum, "var/messages.db-wal", Ephemeral, ""),
    row(Thrum, "var/messages.db-shm", Ephemeral, ""),
    // Made again by thrum.
    row(Thrum, "strategies/**", Derived, ""),
    row(Thrum, "llms.txt", Derived, ""),
    row(Thrum, "schema_version", Derived, ""),
    row(Thrum, "sync/**", Derived, ""),
    // Runtime state: never restored.
    row(Thrum, "spool/**", Ephemeral, ""),
    row(Thrum, "restart/**", Ephemeral, ""),
    row(Thrum, "var/thrum.pid", Ephemeral, ""),
    row(Thrum, "var/thrum.sock", Ephemeral, ""),
    row(Thrum, "var/thrum.lock", Ephemeral, ""),
    row(Thrum, "var/ws.port", Ephemeral, ""),
    row(Thrum, "var/sync.lock", Ephemeral, ""),
    row(Thrum, "var/*-listener.pid", Ephemeral, ""),
    row(Thrum, "var/migration.status", Ephemeral, ""),
    row(Thrum, "var/daemon.log*", Ephemeral, ""),
    row(Thrum, "daemon.log*", Ephemeral, ""),
    // Not thrum's: where `.thrum/redirect` points, our default backup dir, installed plugins.
    row(Thrum, "redirect", NotThrums, ""),
    row(Thrum, "backup/**", NotThrums, ""),
    row(Thrum, "plugins/**", NotThrums, ""),
    // Another worktree's own `.thrum/` (thrum keeps identities and context per worktree).
    private(row(
        Worktree,
        "identities/*.json",
        SourceOfTruth,
        "identities",
    )),
    row(Worktree, "context/*.md", SourceOfTruth, "context"),
    row(Worktree, "redirect", NotThrums, ""),
    row(Worktree, "restart/**", Ephemeral, ""),
];

/// What snapshots written before the table existed cover: thrum's own backup layout.
pub const LEGACY_COVERED: &[&str] = &[
    "S/events.jsonl",
    "S/messages/*.jsonl",
    "S/messages-v2/**",
    "T/config.json",
    "T/identities/*.json",
    "T/context/*.md",
];

const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// The table's patterns, compiled once.
fn compiled(pattern: &str) -> Option<&'static Pattern> {
    static COMPILED: std::sync::LazyLock<std::collections::HashMap<&'static str, Pattern>> =
        std::sync::LazyLock::new(|| {
            ITEMS
                .iter()
                .filter_map(|i| Some((i.pattern, Pattern::new(i.pattern).ok()?)))
                .collect()
        });
    COMPILED.get(pattern)
}

impl Item {
    /// A stable id: the root letter and the pattern (`T/var/peers.json`).
    pub fn id(&self) -> String {
        format!("{}/{}", self.root.letter(), self.pattern)
    }

    /// Whether snapshots keep these files.
    pub fn captured(&self) -> bool {
        !self.snapshot.is_empty()
    }

    /// Whether `rel` (relative to the row's root, `/`-separated) is one of this row's paths.
    pub fn matches(&self, rel: &str) -> bool {
        // `**` also matches nothing, but a tree's own folder is not one of its files.
        compiled(self.pattern).is_some_and(|p| p.matches_with(rel, MATCH))
            && (self.is_single_file() || rel != self.base())
    }

    /// Whether this row names a single file.
    pub fn is_single_file(&self) -> bool {
        !self.pattern.contains('*')
    }

    /// The literal folder of the pattern (or, for a single file, the file itself).
    pub fn base(&self) -> &'static str {
        if self.is_single_file() {
            return self.pattern;
        }
        let star = self.pattern.find('*').unwrap_or(self.pattern.len());
        match self.pattern[..star].rfind('/') {
            Some(slash) => &self.pattern[..slash],
            None => "",
        }
    }

    /// Whether the files of this row may lie in subfolders of [`Item::base`].
    pub fn is_tree(&self) -> bool {
        self.pattern.contains("**")
    }

    /// The snapshot path of the live path `rel` (which [`Item::matches`]).
    pub fn to_snapshot(&self, rel: &str) -> String {
        let rest = &rel[self.base().len()..];
        format!("{}{rest}", self.snapshot)
    }

    /// The live path (relative to the root) of the snapshot path `snap`, if it is one of
    /// this row's.
    pub fn from_snapshot(&self, snap: &str) -> Option<String> {
        if !self.captured() {
            return None;
        }
        let rest = snap.strip_prefix(self.snapshot)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let rel = format!("{}{rest}", self.base());
        self.matches(&rel).then_some(rel)
    }
}

/// The row that decides what `rel` below `root` is.
pub fn classify(root: Root, rel: &str) -> Option<&'static Item> {
    ITEMS.iter().find(|i| i.root == root && i.matches(rel))
}

/// Rows of `root` that snapshots capture.
pub fn captured(root: Root) -> impl Iterator<Item = &'static Item> {
    ITEMS.iter().filter(move |i| i.root == root && i.captured())
}

/// Every entry below `dir` that is not a folder (see [`crate::fsx::walk_all`]).
pub fn scan(dir: &Path) -> Result<Vec<crate::fsx::Walked>> {
    crate::fsx::walk_all(dir)
}

/// The files of one row below `root_dir`: regular files it names, and what it names that is
/// not a regular file (a folder where a file belongs, a symbolic link, a FIFO).
#[derive(Debug, Default)]
pub struct ItemFiles {
    /// Regular files, relative to the root, sorted.
    pub files: Vec<String>,
    /// `(path, what it is)` of entries that were not copied.
    pub skipped: Vec<(String, &'static str)>,
}

/// List the live files of `item` below `root_dir`.
pub fn list(item: &Item, root_dir: &Path) -> Result<ItemFiles> {
    let mut out = ItemFiles::default();
    let base = item.base();
    if item.is_single_file() {
        let path = root_dir.join(base);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => out.files.push(base.to_owned()),
            Ok(m) if m.is_dir() => out.skipped.push((base.to_owned(), "a directory")),
            Ok(m) if m.file_type().is_symlink() => {
                out.skipped.push((base.to_owned(), "a symbolic link"));
            }
            Ok(_) => out.skipped.push((base.to_owned(), "not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at("inspect", &path),
        }
        return Ok(out);
    }
    let dir = if base.is_empty() {
        root_dir.to_path_buf()
    } else {
        root_dir.join(base)
    };
    let prefix = if base.is_empty() {
        String::new()
    } else {
        format!("{base}/")
    };
    if !item.is_tree() {
        // One folder: its direct entries, folders among them included (a folder named like a
        // message log is reported, not silently passed over).
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).at("read directory", &dir),
        };
        for entry in entries {
            let entry = entry.at("read directory", &dir)?;
            let rel = format!("{prefix}{}", entry.file_name().to_string_lossy());
            if !item.matches(&rel) {
                continue;
            }
            let kind = entry.file_type().at("inspect", &entry.path())?;
            if kind.is_file() {
                out.files.push(rel);
            } else if kind.is_dir() {
                out.skipped.push((rel, "a directory"));
            } else if kind.is_symlink() {
                out.skipped.push((rel, "a symbolic link"));
            } else {
                out.skipped.push((rel, "not a regular file"));
            }
        }
        out.files.sort();
        out.skipped.sort();
        return Ok(out);
    }
    for found in scan(&dir)? {
        let rel = format!("{prefix}{}", found.rel);
        match found.odd {
            None => out.files.push(rel),
            Some(what) => out.skipped.push((rel, what)),
        }
    }
    Ok(out)
}

/// Files below `root_dir` that no row names: what a newer thrum may have added. Folders the
/// backup itself lives in are passed over (`skip`, absolute).
pub fn unknown(root: Root, root_dir: &Path, skip: &[PathBuf]) -> Result<Vec<String>> {
    if !root_dir.is_dir() || skip.iter().any(|s| s == root_dir) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for found in scan(root_dir)? {
        let full = root_dir.join(&found.rel);
        if skip.iter().any(|s| full.starts_with(s)) {
            continue;
        }
        if classify(root, &found.rel).is_none() {
            out.push(found.rel);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_captured_path_maps_back_to_itself_and_no_two_rows_share_a_snapshot_path() {
        let samples = [
            (Sync, "events.jsonl"),
            (Sync, "messages/coder.jsonl"),
            (Sync, "messages-v2/coder.jsonl"),
            (Sync, "messages-v2/deep/er/x.jsonl"),
            (Sync, "receipts/coder.jsonl"),
            (Sync, "state/agents/coder.json"),
            (Sync, "state/bridge-groups/g.json"),
            (Thrum, "config.json"),
            (Thrum, "identities/coder.json"),
            (Thrum, "context/coder.md"),
            (Thrum, "events.jsonl"),
            (Thrum, "messages/a.jsonl"),
            (Thrum, "legacy_ingested"),
            (Thrum, "archive/m-1.jsonl"),
            (Thrum, ".env"),
            (Thrum, "var/peers.json"),
            (Thrum, "var/tsnet/tailscaled.state"),
            (Thrum, "var/guard-daemon.json"),
            (Thrum, "role_templates/coder.md"),
            (Worktree, "identities/x.json"),
            (Worktree, "context/x.md"),
        ];
        let mut seen = std::collections::BTreeMap::new();
        for (root, rel) in samples {
            let item = classify(root, rel).unwrap_or_else(|| panic!("{rel} unclassified"));
            assert!(item.captured(), "{rel}");
            let snap = item.to_snapshot(rel);
            // The snapshot path leads back to this row only.
            let back: Vec<_> = captured(root)
                .filter_map(|i| i.from_snapshot(&snap).map(|r| (i.id(), r)))
                .collect();
            assert_eq!(back, vec![(item.id(), rel.to_owned())], "{snap}");
            if root != Worktree {
                assert!(seen.insert(snap.clone(), rel).is_none(), "{snap} twice");
            }
        }
        // Across roots too: no snapshot path of T is one of S's.
        for t in captured(Thrum) {
            for s in captured(Sync) {
                assert!(
                    !(t.snapshot == s.snapshot
                        || t.snapshot.starts_with(&format!("{}/", s.snapshot))
                        || s.snapshot.starts_with(&format!("{}/", t.snapshot))),
                    "{} and {} overlap",
                    t.id(),
                    s.id()
                );
            }
        }
    }

    #[test]
    fn runtime_files_are_declared_and_never_captured() {
        for rel in [
            "var/thrum.pid",
            "var/thrum.sock",
            "var/thrum.lock",
            "var/ws.port",
            "var/coder-listener.pid",
            "var/daemon.log",
            "var/daemon.log.1",
            "var/messages.db-wal",
            "spool/a/b",
        ] {
            let item = classify(Thrum, rel).unwrap_or_else(|| panic!("{rel}"));
            assert_eq!(item.kind, Ephemeral, "{rel}");
            assert!(!item.captured());
        }
        assert!(classify(Thrum, "var/something-new.json").is_none());
        assert!(classify(Thrum, "identities/sub/x.json").is_none());
        assert!(classify(Sync, "notes.txt").is_none());
    }

    #[test]
    fn secrets_are_private() {
        for item in ITEMS.iter().filter(|i| i.secret) {
            assert_eq!(item.mode, 0o600, "{}", item.id());
        }
        let ids: Vec<String> = ITEMS.iter().filter(|i| i.secret).map(Item::id).collect();
        for want in [
            "T/config.json",
            "T/.env",
            "T/var/peers.json",
            "T/var/tsnet/**",
        ] {
            assert!(ids.iter().any(|i| i == want), "{want}");
        }
    }

    #[test]
    fn every_pattern_compiles() {
        for item in ITEMS {
            assert!(compiled(item.pattern).is_some(), "{}", item.id());
        }
    }

    #[test]
    fn legacy_coverage_names_real_rows() {
        for id in LEGACY_COVERED {
            assert!(ITEMS.iter().any(|i| i.id() == *id), "{id}");
        }
    }

    #[test]
    fn listing_reports_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path();
        std::fs::create_dir_all(s.join("messages/odd.jsonl")).unwrap();
        std::fs::write(s.join("messages/a.jsonl"), "{}\n").unwrap();
        std::fs::write(s.join("messages/notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", s.join("messages/link.jsonl")).unwrap();
        std::fs::create_dir_all(s.join("events.jsonl")).unwrap();
        let item = classify(Sync, "messages/a.jsonl").unwrap();
        let found = list(item, s).unwrap();
        assert_eq!(found.files, vec!["messages/a.jsonl"]);
        assert_eq!(
            found.skipped,
            vec![
                ("messages/link.jsonl".to_owned(), "a symbolic link"),
                ("messages/odd.jsonl".to_owned(), "a directory"),
            ]
        );
        let events = list(classify(Sync, "events.jsonl").unwrap(), s).unwrap();
        assert_eq!(
            events.skipped,
            vec![("events.jsonl".to_owned(), "a directory")]
        );
        let unknown = unknown(Sync, s, &[]).unwrap();
        assert!(
            unknown.contains(&"messages/notes.txt".to_owned()),
            "{unknown:?}"
        );
    }
}
