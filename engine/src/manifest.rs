//! `manifest.json`: thrum's version-1 fields, which thrum's reader needs, plus our
//! extensions (per-file size and checksum, the engine version, the database copy, each
//! plugin's result) as extra keys thrum's reader ignores.
//!
//! A file's checksum is one key named after its hash function: `"blake3"` in what this
//! engine writes, `"sha256"` in snapshots written by its first versions (still read, verified
//! and restored).

use std::collections::BTreeMap;

/// A JSON Lines file whose lines are not all JSON ([`Manifest::jsonl`]).
pub use crate::jsonl::Issue as JsonlIssue;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::fsx::{Algorithm, Checksum};

/// The manifest file name inside a snapshot.
pub const FILE_NAME: &str = "manifest.json";

/// A snapshot's manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Always 1 (thrum's format version).
    pub version: u32,
    /// When the snapshot was taken (UTC).
    pub timestamp: DateTime<Utc>,
    /// thrum writes its own version here; we write `thrum-backup <version>`.
    #[serde(default)]
    pub thrum_version: String,
    /// Base name of the repository.
    #[serde(default)]
    pub repo_name: String,
    /// thrum's counts.
    #[serde(default)]
    pub counts: Counts,
    /// The engine that wrote the snapshot (absent in thrum's manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineInfo>,
    /// A random id, unique per snapshot (absent in thrum's manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The workspace the snapshot is of (see [`crate::identity`]); absent in thrum's and in
    /// this engine's earlier snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<WorkspaceId>,
    /// Set only by this engine's first versions: the message log came from the thrum dir
    /// (they read a top-level `local_only` that way). A restore puts such a log back there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_only: bool,
    /// What of thrum's layout the snapshot covers (absent before the layout table: thrum's
    /// own backup layout, [`crate::layout::LEGACY_COVERED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<LayoutInfo>,
    /// The `a-sync` branch, when the repository had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncInfo>,
    /// Other git worktrees whose `.thrum/` is in `worktrees/<name>/`: name → path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub worktrees: BTreeMap<String, String>,
    /// Files in the thrum dir (`T/…`) and the sync worktree (`S/…`) that the layout table
    /// does not name: not captured, reported so that a newer thrum's files are seen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
    /// Entries the layout names that were not regular files (a folder or a symbolic link
    /// where a file belongs): not captured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// The snapshot holds only some of the workspace's files (the live files a partial
    /// restore replaced, saved before it): restoring it puts back exactly its files and moves
    /// nothing out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// What this snapshot lost against the one before it (the shrink guard, see
    /// [`crate::shrink`]): the last good archive before it is kept until accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shrink: Vec<String>,
    /// JSON Lines files whose bytes are not all JSON lines (a torn last line, say): backed up
    /// and restored exactly as they were, reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jsonl: Vec<JsonlIssue>,
    /// Every JSON Lines file of thrum's in the snapshot was checked (`jsonl` lists what was
    /// found): whole, or past a prefix that an earlier snapshot so marked holds. The next
    /// snapshot checks only what its grown files appended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub jsonl_checked: bool,
    /// How the database and the wire streams were captured relative to each other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureInfo>,
    /// Every file of the snapshot but the manifest, sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileEntry>,
    /// The consistent copy of `messages.db`, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseInfo>,
    /// Rows exported per local-only table.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub local_tables: BTreeMap<String, u64>,
    /// What each plugin did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugin_results: Vec<PluginReport>,
}

/// thrum's `counts` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Lines of `events.jsonl`.
    #[serde(default)]
    pub events: u64,
    /// Files in `messages/`.
    #[serde(default)]
    pub message_files: u64,
    /// Local-only tables exported.
    #[serde(default)]
    pub local_tables: u64,
    /// Files under `config/`.
    #[serde(default)]
    pub config_files: u64,
    /// Names of the plugins that succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
}

/// Which engine wrote a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EngineInfo {
    /// `thrum-backup`.
    pub name: String,
    /// The crate version.
    pub version: String,
}

impl EngineInfo {
    /// This engine.
    pub fn current() -> Self {
        Self {
            name: "thrum-backup".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// One file of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// `/`-separated path relative to the snapshot root.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// The content's checksum.
    #[serde(flatten)]
    pub checksum: Checksum,
    /// What the file is known to begin with: set when the snapshot grew it from the snapshot
    /// before (see `snapshot::Base`), after comparing those bytes one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Prefix>,
    /// The live file's permission bits when it was captured (restored as they were).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// A secret of thrum's (a token or key): private in every copy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    /// The content's CRC-32: an archive compares each entry's CRC with it as it writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

/// A workspace's identity, as recorded in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceId {
    /// `git:<first commit>`, `daemon:<id>` or `path:<hash>`.
    pub id: String,
    /// thrum's `identity.daemon_id`, when the workspace has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_id: Option<String>,
}

impl WorkspaceId {
    /// Whether a snapshot of `other` belongs to this workspace.
    pub fn same_as(&self, other: &WorkspaceId) -> bool {
        self.id == other.id
            && match (&self.daemon_id, &other.daemon_id) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// A short, stable tag for a backup set name that must differ from another's.
    pub fn tag(&self) -> String {
        let key = format!("{}|{}", self.id, self.daemon_id.as_deref().unwrap_or(""));
        blake3::hash(key.as_bytes()).to_hex()[..8].to_owned()
    }
}

impl std::fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.daemon_id {
            Some(d) => write!(f, "{} (daemon {d})", self.id),
            None => f.write_str(&self.id),
        }
    }
}

/// What of thrum's layout a snapshot covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayoutInfo {
    /// The thrum version the layout table describes.
    pub thrum: String,
    /// Ids of the layout rows captured (`S/messages-v2/**`, `T/var/peers.json`): a restore
    /// makes exactly these match the snapshot and leaves every other path alone.
    pub covered: Vec<String>,
    /// `included` or `excluded` (`backup.secrets`, `create --exclude-secrets`).
    pub secrets: String,
}

/// The `a-sync` branch as the snapshot found it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncInfo {
    /// The branch's commit.
    pub tip: String,
    /// The snapshot path of its history as a git bundle (`git/a-sync.bundle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// `daemon.local_only`: the history was never pushed, the bundle is its only other copy.
    #[serde(default)]
    pub local_only: bool,
    /// Whether the sync worktree existed as a git worktree when captured.
    #[serde(default)]
    pub worktree: bool,
}

/// The order of the database copy and the wire streams, and the time between them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaptureInfo {
    /// `database-then-streams`: the streams are at least as new as the database, so none of
    /// the database's events is missing from them (thrum's walker restarts after the
    /// database's newest event).
    pub order: String,
    /// Milliseconds between the database's instant and the end of the stream copy: events
    /// the daemon wrote in that window are in the streams but not in the database copy.
    pub gap_ms: u64,
}

/// The first `size` bytes of a file: an earlier snapshot's whole copy of it, with that copy's
/// checksum. An archive of the earlier snapshot holds those bytes compressed, so the next
/// archive can continue that stream without reading them again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Prefix {
    /// Bytes.
    pub size: u64,
    /// Their checksum.
    #[serde(flatten)]
    pub checksum: Checksum,
}

/// The database copy in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Path of the copy inside the snapshot (`db/messages.db`).
    pub path: String,
    /// Rows per table at the instant of the copy.
    pub tables: BTreeMap<String, u64>,
    /// Whether SQLite's `PRAGMA quick_check` found the database sound at the instant of this
    /// copy. A copy brought up to date page by page from the previous snapshot's is checked
    /// on a schedule (`backup.db_check_every`) instead: it is then proven to hold exactly the
    /// live database's pages of that instant, not that they are sound, and a restore checks it
    /// before putting it back. Absent in manifests from before the schedule, whose copies were
    /// all checked.
    #[serde(default = "checked")]
    pub quick_check: bool,
    /// For a copy not checked itself: when the newest check it follows found the database
    /// sound (the schedule counts from there). `None` when it was never checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<DateTime<Utc>>,
}

fn checked() -> bool {
    true
}

impl DatabaseInfo {
    /// When the database was last found sound, as far as this snapshot knows: at `taken`
    /// (the snapshot's time) when this copy was checked.
    pub fn last_checked(&self, taken: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.quick_check {
            Some(taken)
        } else {
            self.checked_at
        }
    }
}

/// What one plugin did during a backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PluginReport {
    /// The plugin's name.
    pub name: String,
    /// Which kind of plugin it is.
    pub kind: PluginKind,
    /// How it went.
    pub status: PluginStatus,
    /// Files it contributed.
    pub files: u64,
    /// Bytes it contributed.
    pub bytes: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the plugin reported (counts, checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Problems the plugin found that did not stop it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A plugin's kind, as manifests name it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// thrum's shell form.
    Shell,
    /// A sandboxed WebAssembly component.
    Wasm,
    /// A kind a later version wrote (read, never written).
    #[serde(other)]
    Other,
}

/// How a plugin's run went, as manifests name it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PluginStatus {
    /// Its files are in the snapshot.
    Ok,
    /// It failed: nothing of it is in the snapshot.
    Failed,
    /// A status a later version wrote (read, never written).
    #[serde(other)]
    Other,
}

impl PluginStatus {
    /// Whether the plugin's files are in the snapshot.
    pub fn is_ok(self) -> bool {
        self == Self::Ok
    }
}

impl Manifest {
    /// Parse a manifest, accepting thrum's (no extensions) and ours.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.version != 1 {
            return Err(format!(
                "manifest version {} is not supported (this engine reads version 1)",
                m.version
            ));
        }
        Ok(m)
    }

    /// Serialize with two-space indentation and a final newline, as thrum does.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Each listed file's size and checksum, by path (empty without a manifest): what an
    /// archive's entries are checked against as they are extracted.
    pub fn expected(manifest: Option<&Manifest>) -> BTreeMap<String, (u64, Checksum)> {
        manifest
            .iter()
            .flat_map(|m| m.files.iter())
            .map(|f| (f.path.clone(), (f.size, f.checksum.clone())))
            .collect()
    }

    /// Whether every file listed has a checksum (thrum's manifests have none).
    pub fn has_checksums(&self) -> bool {
        !self.files.is_empty()
    }
}

/// Read `<dir>/manifest.json`; `None` when the directory or the manifest is absent.
pub fn read_dir(dir: &std::path::Path) -> crate::Result<Option<Manifest>> {
    use crate::error::IoContext;
    let path = dir.join(FILE_NAME);
    match std::fs::read(&path) {
        Ok(bytes) => Manifest::from_slice(&bytes)
            .map(Some)
            .map_err(|m| crate::Error::Invalid(format!("{}: {m}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at("read", &path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_thrums_manifest() {
        let thrum = br#"{
  "version": 1,
  "timestamp": "2026-02-27T12:00:00.123456789Z",
  "thrum_version": "0.9.1",
  "repo_name": "demo",
  "counts": {"events": 12, "message_files": 2, "local_tables": 3, "config_files": 4, "plugins": ["beads"]}
}"#;
        let m = Manifest::from_slice(thrum).unwrap();
        assert_eq!(m.counts.events, 12);
        assert_eq!(m.counts.plugins, vec!["beads"]);
        assert!(!m.has_checksums());
        assert!(m.engine.is_none());
    }

    #[test]
    fn ours_keeps_thrum_fields_and_round_trips() {
        let m = Manifest {
            version: 1,
            timestamp: "2026-11-25T10:00:00Z".parse().unwrap(),
            thrum_version: "thrum-backup 0.1.0".into(),
            repo_name: "r".into(),
            counts: Counts::default(),
            engine: Some(EngineInfo::current()),
            snapshot_id: Some("abc".into()),
            local_only: false,
            workspace: None,
            layout: None,
            sync: None,
            worktrees: BTreeMap::new(),
            unknown: vec![],
            skipped: vec![],
            jsonl: vec![],
            jsonl_checked: true,
            shrink: vec![],
            partial: false,
            capture: None,
            files: vec![FileEntry {
                path: "events.jsonl".into(),
                size: 3,
                checksum: Checksum::Blake3("00".into()),
                prefix: Some(Prefix {
                    size: 2,
                    checksum: Checksum::Blake3("01".into()),
                }),
                mode: Some(0o600),
                secret: true,
                crc32: Some(7),
            }],
            database: None,
            local_tables: BTreeMap::new(),
            plugin_results: vec![],
        };
        let bytes = m.to_vec();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for key in [
            "version",
            "timestamp",
            "thrum_version",
            "repo_name",
            "counts",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(Manifest::from_slice(&bytes).unwrap(), m);
        assert_eq!(v["files"][0]["blake3"], "00");
        assert_eq!(v["files"][0]["prefix"]["blake3"], "01");
    }

    #[test]
    fn reads_checksums_of_either_hash_function() {
        let m = Manifest::from_slice(
            br#"{"version": 1, "timestamp": "2026-11-25T10:00:00Z", "files": [
                {"path": "a", "size": 1, "sha256": "aa"},
                {"path": "b", "size": 2, "blake3": "bb", "prefix": {"size": 1, "sha256": "cc"}}
            ]}"#,
        )
        .unwrap();
        assert_eq!(m.files[0].checksum, Checksum::Sha256("aa".into()));
        assert_eq!(m.files[1].checksum, Checksum::Blake3("bb".into()));
        assert_eq!(
            m.files[1].prefix.as_ref().unwrap().checksum,
            Checksum::Sha256("cc".into())
        );
        // A file without a checksum, or with an unknown hash function, is not a manifest.
        for bad in [
            r#"{"path": "a", "size": 1}"#,
            r#"{"path": "a", "size": 1, "md5": "aa"}"#,
        ] {
            let text = format!(
                r#"{{"version": 1, "timestamp": "2026-11-25T10:00:00Z", "files": [{bad}]}}"#
            );
            assert!(Manifest::from_slice(text.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn refuses_unknown_versions() {
        let err = Manifest::from_slice(br#"{"version": 2, "timestamp": "2026-01-01T00:00:00Z"}"#)
            .unwrap_err();
        assert!(err.contains("version 2"));
    }
}
