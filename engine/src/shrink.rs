//! The shrink guard: what a new snapshot lost against the one before it, as a pure function
//! of the two manifests.
//!
//! thrum's logs and streams only grow, identities are not deleted in passing, and a database
//! does not lose most of its rows in a day: when a snapshot shows any of that, the workspace
//! was probably damaged (a moved sync worktree, an emptied log, a 0-byte database), and the
//! last good backup must not be rotated away by the backups of the damage. `create` records
//! the findings, says so loudly, and retention keeps the newest sound archive taken before the
//! shrink until the user accepts it (`prune --accept-shrink`).
//!
//! What counts (documented in the README):
//! - the sync worktree gone after earlier snapshots had it;
//! - a log or wire stream (`events.jsonl`, `messages/`, `messages-v2/`, `receipts/`, thrum's
//!   legacy log in T) that vanished or got shorter; thrum's two-day journal `T/events.jsonl`
//!   is trimmed by thrum, and is not counted;
//! - an identity file gone (this worktree's or another's);
//! - the database gone, or one of its tables that lost all its rows or more than half of them
//!   (thrum trims `events` and archives messages, a little at a time: that is not counted).

use crate::manifest::Manifest;

/// Tables whose rows thrum keeps: losing most of them at once is a shrink.
pub const WATCHED_TABLES: &[&str] = &[
    "messages",
    "message_reads",
    "subscriptions",
    "sync_checkpoints",
    "agents",
    "sessions",
    "groups",
    "group_members",
];

fn is_log(path: &str) -> bool {
    crate::jsonl::is_jsonl(path)
        && path != "thrum/events.jsonl"
        && !path.starts_with("local/")
        && (path == "events.jsonl"
            || path == "messages.jsonl"
            || [
                "messages/",
                "messages-v2/",
                "receipts/",
                "thrum/messages/",
                "thrum/archive/",
            ]
            .iter()
            .any(|p| path.starts_with(p)))
}

fn is_identity(path: &str) -> bool {
    path.starts_with("config/identities/")
        || (path.starts_with("worktrees/") && path.contains("/identities/"))
}

fn covers_sync(m: &Manifest) -> bool {
    match &m.layout {
        Some(l) => l.covered.iter().any(|id| id.starts_with("S/")),
        None => m.files.iter().any(|f| {
            f.path == "events.jsonl"
                || f.path.starts_with("messages/")
                || f.path.starts_with("messages-v2/")
        }),
    }
}

fn lost_most(before: u64, after: u64) -> bool {
    before > 0 && (after == 0 || after.saturating_mul(2) < before)
}

/// What `new` lost against `prev`; empty when nothing did.
pub fn findings(prev: &Manifest, new: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    let sync_gone = covers_sync(prev) && !covers_sync(new);
    if sync_gone {
        out.push("the sync worktree is gone (earlier snapshots had its message streams)".into());
    }
    let excluded = new.layout.as_ref().is_some_and(|l| l.secrets == "excluded");
    for f in &prev.files {
        if f.secret && excluded {
            continue;
        }
        let log = is_log(&f.path);
        if !(log || is_identity(&f.path)) {
            continue;
        }
        match new.files.iter().find(|n| n.path == f.path) {
            None if log && sync_gone && !f.path.starts_with("thrum/") => {}
            None => out.push(format!("{} is gone", f.path)),
            Some(n) if log && n.size < f.size => out.push(format!(
                "{} got shorter ({} -> {} bytes)",
                f.path, f.size, n.size
            )),
            Some(_) => {}
        }
    }
    match (&prev.database, &new.database) {
        (Some(_), None) => out.push("messages.db is gone".into()),
        (Some(p), Some(n)) => {
            for t in WATCHED_TABLES {
                let before = p.tables.get(*t).copied().unwrap_or(0);
                let after = n.tables.get(*t).copied().unwrap_or(0);
                if lost_most(before, after) {
                    out.push(format!(
                        "messages.db table {t} lost rows ({before} -> {after})"
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DatabaseInfo, FileEntry, LayoutInfo};
    use std::collections::BTreeMap;

    fn manifest(files: &[(&str, u64)], sync: bool, rows: &[(&str, u64)]) -> Manifest {
        let mut m = Manifest::from_slice(br#"{"version": 1, "timestamp": "2026-11-30T00:00:00Z"}"#)
            .unwrap();
        m.files = files
            .iter()
            .map(|(p, size)| FileEntry {
                path: (*p).into(),
                size: *size,
                checksum: crate::fsx::Checksum::Blake3("00".into()),
                prefix: None,
                mode: None,
                secret: false,
                crc32: None,
            })
            .collect();
        m.layout = Some(LayoutInfo {
            thrum: "0.10.6".into(),
            covered: if sync {
                vec!["S/messages-v2/**".into(), "T/config.json".into()]
            } else {
                vec!["T/config.json".into()]
            },
            secrets: "included".into(),
        });
        m.database = Some(DatabaseInfo {
            path: "db/messages.db".into(),
            tables: rows
                .iter()
                .map(|(t, n)| ((*t).to_owned(), *n))
                .collect::<BTreeMap<_, _>>(),
            quick_check: true,
            checked_at: None,
        });
        m
    }

    #[test]
    fn growth_and_ordinary_churn_are_not_shrinks() {
        let a = manifest(
            &[
                ("events.jsonl", 100),
                ("thrum/events.jsonl", 900),
                ("config/context/a.md", 5),
            ],
            true,
            &[("messages", 1000), ("events", 500), ("subscriptions", 10)],
        );
        let b = manifest(
            &[("events.jsonl", 150), ("thrum/events.jsonl", 300)],
            true,
            &[("messages", 990), ("events", 20), ("subscriptions", 8)],
        );
        assert_eq!(findings(&a, &b), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_shrink_is_found() {
        let a = manifest(
            &[
                ("events.jsonl", 100),
                ("messages-v2/a.jsonl", 50),
                ("config/identities/a.json", 5),
                ("worktrees/w/identities/b.json", 5),
            ],
            true,
            &[("messages", 21384), ("message_reads", 100)],
        );
        let b = manifest(
            &[("events.jsonl", 0), ("messages-v2/a.jsonl", 50)],
            true,
            &[("messages", 0), ("message_reads", 49)],
        );
        let f = findings(&a, &b);
        assert_eq!(
            f,
            vec![
                "events.jsonl got shorter (100 -> 0 bytes)",
                "config/identities/a.json is gone",
                "worktrees/w/identities/b.json is gone",
                "messages.db table messages lost rows (21384 -> 0)",
                "messages.db table message_reads lost rows (100 -> 49)",
            ]
        );
        // A vanished sync worktree is one finding, not one per stream.
        let c = manifest(&[], false, &[("messages", 21384), ("message_reads", 100)]);
        assert_eq!(
            findings(&a, &c),
            vec![
                "the sync worktree is gone (earlier snapshots had its message streams)",
                "config/identities/a.json is gone",
                "worktrees/w/identities/b.json is gone",
            ]
        );
        let mut d = a.clone();
        d.database = None;
        assert_eq!(findings(&a, &d), vec!["messages.db is gone"]);
    }
}
