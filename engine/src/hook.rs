//! The post-backup hook: `backup.post_backup`, run with `sh -c` in the repo root after a
//! successful backup, with `THRUM_BACKUP_DIR`, `THRUM_BACKUP_REPO` and `THRUM_BACKUP_CURRENT`.
//! A failure is reported and does not fail the backup.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::process;

/// thrum's hook timeout.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How the hook went.
#[derive(Debug, Clone, Serialize)]
pub struct HookReport {
    /// The command.
    pub command: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Run the hook.
pub fn run(
    command: &str,
    repo_root: &Path,
    backup_dir: &Path,
    repo_name: &str,
    current: &Path,
    timeout: Duration,
) -> HookReport {
    let env = [
        ("THRUM_BACKUP_DIR", backup_dir.as_os_str()),
        ("THRUM_BACKUP_REPO", std::ffi::OsStr::new(repo_name)),
        ("THRUM_BACKUP_CURRENT", current.as_os_str()),
    ];
    match process::run_shell(command, repo_root, &env, timeout) {
        Ok(out) => HookReport {
            command: command.to_owned(),
            ok: out.success(),
            error: (!out.success()).then(|| out.describe_failure(timeout)),
            duration_ms: out.elapsed.as_millis() as u64,
        },
        Err(e) => HookReport {
            command: command.to_owned(),
            ok: false,
            error: Some(format!("cannot start sh: {e}")),
            duration_ms: 0,
        },
    }
}
