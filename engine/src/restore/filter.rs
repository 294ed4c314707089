//! A partial restore's selection (`--include`, `--exclude`): which of a snapshot's paths it
//! puts back, which it extracts from an archive to do so, and the check that every include
//! names something. Below both `source` (which extracts) and `plan` (which selects).

use crate::error::{Error, Result};
use crate::pattern::Pattern;
use crate::snapshot::DB_PATH;

/// Which of a snapshot's paths a partial restore puts back (`--include`, `--exclude`).
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
}

impl Filter {
    /// Whether the snapshot path `path` is put back.
    pub fn wants(&self, path: &str) -> bool {
        self.include.iter().any(|p| p.matches(path))
            && !self.exclude.iter().any(|p| p.matches(path))
    }

    /// Whether a partial restore extracts the snapshot path `path` from an archive (`all`:
    /// every path of the snapshot): what it puts back, the manifest, the whole database and
    /// its tables when it puts that back, and the whole folder of a plugin it restores.
    pub fn extracts(&self, path: &str, all: &[String]) -> bool {
        if path == crate::manifest::FILE_NAME || self.wants(path) {
            return true;
        }
        let database = |p: &str| p == DB_PATH || p.starts_with("local/");
        if database(path) {
            return all.iter().any(|p| database(p) && self.wants(p));
        }
        if let Some(plugin) = path
            .strip_prefix("plugins/")
            .and_then(|r| r.split('/').next())
        {
            let prefix = format!("plugins/{plugin}/");
            return all.iter().any(|p| p.starts_with(&prefix) && self.wants(p));
        }
        false
    }

    /// Every include must match a file of the snapshot: a pattern naming nothing is an
    /// error, before anything changes (the workspace's file of that name stays as it is).
    pub fn check_matches(&self, snapshot_files: &[String], label: &str) -> Result<()> {
        for p in &self.include {
            if !snapshot_files.iter().any(|f| p.matches(f)) {
                return Err(Error::NotFound(format!(
                    "{label}: nothing in the snapshot matches {:?}, so nothing would be put back for it (a workspace file of that name is left as it is; `thrum-backup ls` shows the snapshot's paths)",
                    p.text()
                )));
            }
        }
        Ok(())
    }
}
