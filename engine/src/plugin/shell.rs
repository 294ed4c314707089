//! thrum's shell plugins, with two fixes: the timeout kills the whole process group, and an
//! include pattern that reaches outside the repository (`../x`, `/etc/*`, a symlink out) is
//! refused instead of copied.

use std::path::{Component, Path};
use std::time::{Duration, Instant};

use crate::config::ShellPlugin;
use crate::error::Result;
use crate::fsx;
use crate::manifest::{PluginKind, PluginReport, PluginStatus};
use crate::process;
use crate::snapshot::Staging;

/// thrum's plugin timeout.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Run one shell plugin into `plugins/<name>/` of `staging`. Never fails the backup: the
/// report says what happened, and a failed plugin leaves nothing in the snapshot.
pub(crate) fn run(
    plugin: &ShellPlugin,
    repo_root: &Path,
    staging: &mut Staging,
    timeout: Duration,
) -> PluginReport {
    let start = Instant::now();
    let prefix = format!("plugins/{}", plugin.name);
    let result = run_inner(plugin, repo_root, staging, &prefix, timeout);
    let (files, bytes) = staging.totals_under(&prefix);
    let mut report = PluginReport {
        name: plugin.name.clone(),
        kind: PluginKind::Shell,
        status: PluginStatus::Ok,
        files,
        bytes,
        duration_ms: start.elapsed().as_millis() as u64,
        error: None,
        notes: Vec::new(),
        warnings: Vec::new(),
    };
    if let Err(message) = result {
        let _ = staging.discard(&prefix);
        report.status = PluginStatus::Failed;
        report.files = 0;
        report.bytes = 0;
        report.error = Some(message);
    }
    report
}

fn run_inner(
    plugin: &ShellPlugin,
    repo_root: &Path,
    staging: &mut Staging,
    prefix: &str,
    timeout: Duration,
) -> std::result::Result<(), String> {
    // Check the patterns before running anything.
    for pattern in &plugin.include {
        check_pattern(pattern)?;
    }
    if !plugin.command.trim().is_empty() {
        let out = process::run_shell(&plugin.command, repo_root, &[], timeout)
            .map_err(|e| format!("cannot start sh: {e}"))?;
        if !out.success() {
            return Err(format!("command failed: {}", out.describe_failure(timeout)));
        }
    }
    let root = repo_root
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", repo_root.display()))?;
    for pattern in &plugin.include {
        let full = format!(
            "{}/{}",
            glob::Pattern::escape(&root.to_string_lossy()),
            pattern
        );
        let matches = glob::glob(&full).map_err(|e| format!("include pattern {pattern:?}: {e}"))?;
        for m in matches {
            let m = m.map_err(|e| format!("include pattern {pattern:?}: {e}"))?;
            collect(&root, &m, staging, prefix).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn check_pattern(pattern: &str) -> std::result::Result<(), String> {
    let p = Path::new(pattern);
    if p.is_absolute() || pattern.starts_with('~') {
        return Err(format!(
            "include pattern {pattern:?} is absolute: patterns are relative to the repository"
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "include pattern {pattern:?} reaches outside the repository (`..`)"
        ));
    }
    Ok(())
}

fn collect(root: &Path, matched: &Path, staging: &mut Staging, prefix: &str) -> Result<()> {
    let real = match matched.canonicalize() {
        Ok(r) => r,
        Err(_) => return Ok(()), // vanished or dangling: nothing to copy
    };
    if !real.starts_with(root) {
        return Err(crate::Error::Invalid(format!(
            "{} leads outside the repository (to {}): refused",
            matched.display(),
            real.display()
        )));
    }
    let rel = matched
        .strip_prefix(root)
        .unwrap_or(matched)
        .to_string_lossy()
        .into_owned();
    if real.is_dir() {
        for inner in fsx::walk_files(&real)? {
            staging.copy_in(&real.join(&inner), &format!("{prefix}/{rel}/{inner}"))?;
        }
    } else if real.is_file() {
        staging.copy_in(&real, &format!("{prefix}/{rel}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_outside_are_refused() {
        for bad in ["../x", "/etc/*", "a/../../b", "~/x"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
        check_pattern(".beads/backup/*").unwrap();
    }
}
