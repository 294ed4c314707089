//! `find`: which snapshots — `current/`, every archive, thrum's and the pre-restore ones — hold
//! a file matching a pattern, a message (by id, searched in the message and event logs), or an
//! agent (its message logs, identity or context); first and last seen, and the first snapshot
//! after that without it: "when did it disappear?".

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Reader, Snapshot, all_snapshots, ls};
use crate::context::Context;
use crate::error::Result;
use crate::pattern::Pattern;

/// What to look for.
#[derive(Debug, Clone)]
pub enum Query {
    /// Files whose path matches one of these patterns.
    Paths(Vec<String>),
    /// A message (or event) id.
    Message(String),
    /// An agent's files: message logs, identity, context.
    Agent(String),
}

/// One snapshot that holds what was looked for.
#[derive(Debug, Clone, Serialize)]
pub struct Holding {
    /// `current` or the archive's name.
    pub snapshot: String,
    /// When it was taken.
    pub time: Option<DateTime<Utc>>,
    /// Where in it (snapshot paths).
    pub files: Vec<String>,
}

/// What `find` found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The query, as text.
    pub query: String,
    /// Snapshots searched.
    pub searched: usize,
    /// The snapshots that hold it, oldest first.
    pub holding: Vec<Holding>,
    /// The oldest snapshot holding it.
    pub first_seen: Option<String>,
    /// The newest snapshot holding it.
    pub last_seen: Option<String>,
    /// The first snapshot after the last one holding it that does not (when it is gone).
    pub gone_since: Option<String>,
    /// Archives that could not be read, with why.
    pub skipped: Vec<(String, String)>,
}

/// Search every snapshot of `ctx`'s backup directory for `query`.
pub fn find(ctx: &Context, query: &Query) -> Result<Found> {
    let patterns = match query {
        Query::Paths(p) => Pattern::all(p)?,
        _ => Vec::new(),
    };
    let (snaps, mut skipped) = all_snapshots(ctx)?;
    let mut listed = Vec::new();
    for s in snaps {
        match ls(&s, &[]) {
            Ok(l) => listed.push((s, l)),
            Err(e) => skipped.push((s.label(), e.to_string())),
        }
    }
    // Oldest first by the time each snapshot was taken; `current/` last among equals.
    listed.sort_by_key(|(s, l)| (l.time, matches!(s, Snapshot::Current(_))));
    let mut rows = Vec::new();
    for (snap, listing) in &listed {
        let files: Vec<String> = match query {
            Query::Paths(_) => listing
                .files
                .iter()
                .filter(|f| patterns.iter().any(|p| p.matches(&f.path)))
                .map(|f| f.path.clone())
                .collect(),
            Query::Agent(name) => {
                let own = [
                    format!("messages/{name}.jsonl"),
                    format!("messages-v2/{name}.jsonl"),
                    format!("receipts/{name}.jsonl"),
                    format!("config/identities/{name}.json"),
                    format!("config/context/{name}.md"),
                ];
                listing
                    .files
                    .iter()
                    .filter(|f| own.contains(&f.path))
                    .map(|f| f.path.clone())
                    .collect()
            }
            Query::Message(id) => {
                let mut reader = Reader::open(snap)?;
                let mut hits = Vec::new();
                for f in &listing.files {
                    let p = &f.path;
                    let mut found = false;
                    if super::diff::is_log(p) {
                        reader.for_each_line(p, &mut |l| found = found || holds_id(l, id))?;
                    }
                    if found {
                        hits.push(p.clone());
                    }
                }
                hits
            }
        };
        rows.push((listing.snapshot.clone(), listing.time, files));
    }
    let last = rows.iter().rposition(|(_, _, f)| !f.is_empty());
    let gone_since = last
        .and_then(|i| rows.get(i + 1))
        .map(|(s, _, _)| s.clone());
    let holding: Vec<Holding> = rows
        .into_iter()
        .filter(|(_, _, f)| !f.is_empty())
        .map(|(snapshot, time, files)| Holding {
            snapshot,
            time,
            files,
        })
        .collect();
    Ok(Found {
        query: match query {
            Query::Paths(p) => p.join(" "),
            Query::Message(id) => format!("message {id}"),
            Query::Agent(a) => format!("agent {a}"),
        },
        searched: listed.len(),
        first_seen: holding.first().map(|h| h.snapshot.clone()),
        last_seen: holding.last().map(|h| h.snapshot.clone()),
        gone_since,
        holding,
        skipped,
    })
}

/// Whether a log line's message or event id is `id`.
fn holds_id(line: &[u8], id: &str) -> bool {
    let needle = id.as_bytes();
    line.windows(needle.len().max(1)).any(|w| w == needle)
        && serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| {
                ["message_id", "event_id"]
                    .iter()
                    .any(|k| v.get(*k).and_then(|x| x.as_str()) == Some(id))
            })
}
