//! Everything an operation needs: the workspace, its config, and its backup directory.

use std::path::{Path, PathBuf};

use crate::backup_dir::BackupDir;
use crate::config::ThrumConfig;
use crate::error::Result;
use crate::locate::Workspace;

/// A located workspace with its config and backup directory.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where thrum keeps the data.
    pub workspace: Workspace,
    /// `.thrum/config.json`.
    pub config: ThrumConfig,
    /// `<backup dir>/<repo name>/`.
    pub backup: BackupDir,
    /// Where the backup dir setting came from: `--dir`, `backup.dir` or the default.
    pub dir_source: &'static str,
    /// Which workspace this is (recorded in every manifest it writes).
    pub identity: crate::identity::WorkspaceId,
    /// Why the backup set is not `<backup dir>/<repo name>`, when it is not.
    pub set_note: Option<String>,
}

impl Context {
    /// Locate the workspace containing `repo` and resolve the backup directory:
    /// `dir_override` (`--dir`) > `backup.dir` > `<thrum dir>/backup`.
    pub fn open(repo: &Path, dir_override: Option<&Path>) -> Result<Self> {
        let workspace = Workspace::locate(repo)?;
        let config = ThrumConfig::load(&workspace.thrum_dir)?;
        let (base, dir_source): (PathBuf, _) = match (dir_override, config.backup.dir.as_deref()) {
            (Some(d), _) => (
                absolute(d, &std::env::current_dir().unwrap_or_default()),
                "--dir",
            ),
            (None, Some(d)) => (absolute(Path::new(d), &workspace.repo_root), "backup.dir"),
            (None, None) => (workspace.thrum_dir.join("backup"), "default"),
        };
        let identity = crate::identity::of(&workspace, &config);
        let (set, set_note) = crate::identity::choose_set(&base, &workspace.repo_name, &identity);
        let backup = BackupDir::new(set);
        Ok(Self {
            workspace,
            config,
            backup,
            dir_source,
            identity,
            set_note,
        })
    }

    /// Refuse a snapshot of another workspace (unless `force`), naming both.
    pub fn check_same_workspace(&self, m: &crate::manifest::Manifest, what: &str) -> Result<()> {
        match &m.workspace {
            Some(theirs) if !self.identity.same_as(theirs) => Err(crate::Error::Invalid(format!(
                "{what} is a snapshot of another workspace ({theirs}), not of this one ({}) at {}: pass --force if that is what you mean",
                self.identity,
                self.workspace.repo_root.display()
            ))),
            _ => Ok(()),
        }
    }

    /// How `create` (and a restore's safety snapshot) capture this workspace.
    pub(crate) fn capture_options(
        &self,
        exclude_secrets: bool,
        db_wait: std::time::Duration,
    ) -> crate::snapshot::CaptureOptions {
        crate::snapshot::CaptureOptions {
            exclude_secrets: exclude_secrets
                || self.config.backup.secrets == crate::config::Secrets::Exclude,
            sync_local_only: self.config.sync_local_only(),
            // The backup directory may lie in the thrum dir (the default): it is ours.
            skip: self
                .backup
                .root()
                .parent()
                .into_iter()
                .map(Path::to_path_buf)
                .collect(),
            db_wait,
            link: false,
            db_check: crate::snapshot::DbCheck {
                every: self.config.backup.db_check_every(),
                ..Default::default()
            },
        }
    }
}

fn absolute(p: &Path, base: &Path) -> PathBuf {
    if let Some(rest) = p.to_str().and_then(|s| s.strip_prefix("~/"))
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}
