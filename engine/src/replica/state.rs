//! What each replica last did, kept in `<backup dir>/replicas.json` for `status` and
//! `replica list`: when it last took a snapshot, and its last error.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fsx;

/// The file's name in the backup directory.
pub const FILE_NAME: &str = "replicas.json";

/// One replica's record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaState {
    /// When a push or sync last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<DateTime<Utc>>,
    /// The replica's id of the last snapshot pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<String>,
    /// When the last failure happened, and what it was (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<(DateTime<Utc>, String)>,
}

/// Every replica's record, by name.
pub fn load(backup_root: &Path) -> BTreeMap<String, ReplicaState> {
    std::fs::read(backup_root.join(FILE_NAME))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Record a success or a failure of `name` (written atomically; a backup directory that does
/// not exist yet is left alone).
pub fn record(
    backup_root: &Path,
    name: &str,
    outcome: std::result::Result<Option<&str>, &str>,
) -> Result<()> {
    if !backup_root.is_dir() {
        return Ok(());
    }
    let mut all = load(backup_root);
    let entry = all.entry(name.to_owned()).or_default();
    let now = Utc::now();
    match outcome {
        Ok(snapshot) => {
            entry.last_success = Some(now);
            if let Some(s) = snapshot {
                entry.last_snapshot = Some(s.to_owned());
            }
            entry.last_error = None;
        }
        Err(message) => entry.last_error = Some((now, message.to_owned())),
    }
    let mut bytes = serde_json::to_vec_pretty(&all).unwrap_or_default();
    bytes.push(b'\n');
    fsx::write_atomic(&backup_root.join(FILE_NAME), &bytes)
}
