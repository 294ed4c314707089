//! One way to run the configured plugins of an operation, whatever their kind.
//!
//! A backup runs each plugin into `plugins/<name>/` of the staged snapshot: a plugin that
//! fails leaves nothing there and is reported, and never fails the backup. Restore and verify
//! are calls of WebAssembly plugins only (thrum's shell form has neither); their results are
//! the caller's to weigh.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::shell;
use super::wasm::{self, Call, Outcome, PluginFailure, Setting};
use crate::config::{PluginEntry, WasmPlugin};
use crate::error::Result;
use crate::fsx;
use crate::locate::Workspace;
use crate::manifest::{Manifest, PluginReport};
use crate::progress::{Cancel, Progress};
use crate::snapshot::Staging;

/// Which plugins a backup runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kinds {
    /// Every configured plugin.
    All,
    /// WebAssembly plugins only (what a restore would put back: its safety snapshot).
    Wasm,
}

/// The plugins of one operation, in one workspace, about one snapshot.
#[derive(Debug)]
pub struct Runner<'a> {
    plugins: &'a [PluginEntry],
    setting: Setting,
    shell_timeout: Duration,
}

impl<'a> Runner<'a> {
    /// Run `plugins` in `ws` for the snapshot taken `at` (`None`: no new snapshot).
    pub fn new(ws: &Workspace, plugins: &'a [PluginEntry], at: Option<DateTime<Utc>>) -> Self {
        Self {
            plugins,
            setting: Setting::new(&ws.repo_root, &ws.repo_name, at),
            shell_timeout: shell::TIMEOUT,
        }
    }

    /// How long a shell plugin may run (thrum's 60 s by default).
    pub fn shell_timeout(mut self, timeout: Duration) -> Self {
        self.shell_timeout = timeout;
        self
    }

    /// The WebAssembly plugins.
    pub fn wasm(&self) -> impl Iterator<Item = &'a WasmPlugin> {
        self.plugins.iter().filter_map(|p| match p {
            PluginEntry::Wasm(w) => Some(w),
            PluginEntry::Shell(_) => None,
        })
    }

    /// Back up each plugin of `kinds` into `staging`, recording each run in `manifest` (and
    /// the name of each that succeeded in its counts).
    pub fn backup_all(
        &self,
        kinds: Kinds,
        staging: &mut Staging,
        manifest: &mut Manifest,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<()> {
        for plugin in self.plugins {
            if kinds == Kinds::Wasm && matches!(plugin, PluginEntry::Shell(_)) {
                continue;
            }
            cancel.check()?;
            progress.phase(&format!("running plugin {}", plugin.name()), None);
            let report = self.backup(plugin, staging)?;
            if report.status.is_ok() {
                manifest.counts.plugins.push(report.name.clone());
            } else {
                progress.note(&format!(
                    "plugin {} failed: {}",
                    report.name,
                    report.error.as_deref().unwrap_or("")
                ));
            }
            manifest.plugin_results.push(report);
        }
        Ok(())
    }

    /// Back up one plugin into `plugins/<name>/` of `staging`. Errors only when the staging
    /// itself fails; the plugin's own failure is in the report.
    pub fn backup(&self, plugin: &PluginEntry, staging: &mut Staging) -> Result<PluginReport> {
        match plugin {
            PluginEntry::Shell(p) => Ok(shell::run(
                p,
                &self.setting.repo_root,
                staging,
                self.shell_timeout,
            )),
            PluginEntry::Wasm(p) => self.backup_wasm(p, staging),
        }
    }

    fn backup_wasm(&self, plugin: &WasmPlugin, staging: &mut Staging) -> Result<PluginReport> {
        let prefix = format!("plugins/{}", plugin.name);
        let out = staging.root().join(&prefix);
        fsx::create_dir_all(&out)?;
        let (mut report, outcome) = wasm::backup_report(plugin, &self.setting, &out);
        match outcome {
            Ok(o) => {
                for (rel, _) in &o.files {
                    staging.adopt(&format!("{prefix}/{rel}"))?;
                }
                if o.files.is_empty() {
                    fsx::remove_any(&out)?;
                }
            }
            Err(_) => {
                staging.discard(&prefix)?;
                report.files = 0;
                report.bytes = 0;
            }
        }
        Ok(report)
    }

    /// A plugin's `restore` of its earlier output in `from`, into the staging folder `out`.
    pub fn restore(
        &self,
        plugin: &WasmPlugin,
        from: &Path,
        out: &Path,
    ) -> std::result::Result<Outcome, PluginFailure> {
        let call = Call::Restore {
            out: out.to_path_buf(),
            backup: from.to_path_buf(),
        };
        wasm::run_entry(plugin, call, &self.setting)
    }

    /// A plugin's `verify` of its earlier output in `from`.
    pub fn verify(
        &self,
        plugin: &WasmPlugin,
        from: &Path,
    ) -> std::result::Result<Outcome, PluginFailure> {
        let call = Call::Verify {
            backup: from.to_path_buf(),
        };
        wasm::run_entry(plugin, call, &self.setting)
    }
}
